//! The local native engine.
