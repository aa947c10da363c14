//! Domain rules of the process model, free of I/O: names, states,
//! validation, lifecycle decisions. Everything here is tested by fast unit
//! tests; the crates that do I/O call into it.

// Input from users, files and the network must never panic the program.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod app;
pub mod autoscale;
pub mod domain;
pub mod lifecycle;
pub mod limits;
pub mod naming;
pub mod scale;
pub mod state;
