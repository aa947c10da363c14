//! The controller's background loops, each started and stopped by
//! `server.rs` and each owning its own state: the leader election, the
//! leader's duties (the reconciler, the autoscaler, the change listener),
//! the routing table's computation and the router's threads. They call
//! `service`, never `http`.

pub mod autoscaler;
pub mod duties;
pub mod leader;
pub mod router;
pub mod routes;
