//! The access log: one line per answered request (method, host, path,
//! status, bytes, duration, backend), at info level under the target
//! [`TARGET`], when [`crate::Config::access_log`] is on. A proxied answer
//! is logged once its body was sent (or abandoned), with the bytes sent.

use std::net::SocketAddr;

use hyper::http::uri::PathAndQuery;
use hyper::Method;
use tokio::time::Instant;

/// The `tracing` target of access log lines, for filters
/// (`DRYCC_LOG=info,drycc_router::access=off`).
pub const TARGET: &str = "drycc_router::access";

/// One request, filled in as it is answered.
#[derive(Debug)]
pub struct Record {
    pub method: Method,
    pub host: String,
    pub path: Option<PathAndQuery>,
    pub status: u16,
    pub bytes: u64,
    pub backend: Option<SocketAddr>,
    pub started: Instant,
}

impl Record {
    pub fn emit(&self) {
        let path = self.path.as_ref().map_or("/", |p| p.as_str());
        let micros = u64::try_from(self.started.elapsed().as_micros()).unwrap_or(u64::MAX);
        match self.backend {
            Some(backend) => tracing::info!(
                target: TARGET,
                method = %self.method,
                host = %self.host,
                path,
                status = self.status,
                bytes = self.bytes,
                micros,
                %backend,
                "Request answered."
            ),
            None => tracing::info!(
                target: TARGET,
                method = %self.method,
                host = %self.host,
                path,
                status = self.status,
                bytes = self.bytes,
                micros,
                "Request answered by the router."
            ),
        }
    }
}
