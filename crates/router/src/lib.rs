//! The HTTP router: a request for a host of an app goes to one of that
//! app's ready `web` processes, round robin.
//!
//! The router knows nothing of engines or stores: it is fed a routing table
//! ([`table`]) on a `watch`, computed and pushed by the controller (or
//! followed over the controller's stream by a standalone router,
//! [`follow`]). A request reads the current snapshot without a lock or any
//! I/O; backend connections are pooled ([`proxy`]); [`headers`] adds the
//! forwarding headers; [`serve`] owns connections and error answers;
//! [`threads`] runs one router per core; [`tls`] terminates TLS with the
//! table's certificates, chosen by SNI.

// Input from users, files and the network must never panic the program.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod access;
pub mod follow;
pub mod headers;
pub mod metrics;
pub mod proxy;
pub mod serve;
pub mod table;
pub mod threads;
pub mod tls;

pub use metrics::Metrics;
pub use serve::{Config, Router};
pub use table::{AppRoute, HostCert, RouteTable, Routes};

/// A watch of the current table, and its first (empty, not loaded) value.
pub fn channel() -> (
    tokio::sync::watch::Sender<std::sync::Arc<RouteTable>>,
    tokio::sync::watch::Receiver<std::sync::Arc<RouteTable>>,
) {
    tokio::sync::watch::channel(std::sync::Arc::new(RouteTable::default()))
}
