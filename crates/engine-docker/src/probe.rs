//! The checks of containers (the probe loops that run them are in
//! `drycc_engine_runtime::probe`). TCP and HTTP checks go to
//! the container port's published host port on 127.0.0.1, the address the
//! router uses too; exec checks run in the container (`docker exec`).
//!
//! A published port accepts connections as soon as the container runs,
//! whether or not anything listens inside: Docker's userland proxy
//! (`docker-proxy`) accepts, then closes the connection when it cannot
//! reach the container's port. So a TCP check passes only when the
//! connection stays open (or says something) for `settle`: a proxy with
//! nothing behind it closes within a millisecond, a server waits for its
//! client. A daemon without the proxy (DNAT only) refuses the connection
//! outright, which fails the check too.

use std::collections::BTreeMap;
use std::time::Duration;

use bollard::exec::{CreateExecOptions, StartExecResults};
use bollard::Docker;
use futures::StreamExt;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::time::{sleep, timeout};

use drycc_engine::ProbeAction;
use drycc_engine_runtime::probe::{http, Checker, DEFAULT_TIMEOUT};

/// Where a probe looks.
pub(crate) struct Target {
    pub docker: Docker,
    pub container: String,
    /// Container port -> host port.
    pub ports: BTreeMap<u16, u16>,
    /// The process's own `PORT`.
    pub port: u16,
    /// How long a connection must stay open to count (see the module doc).
    pub settle: Duration,
}

impl Target {
    fn host_port(&self, port: Option<u16>) -> Option<u16> {
        self.ports.get(&port.unwrap_or(self.port)).copied()
    }
}

impl Checker for Target {
    async fn check(&self, action: &ProbeAction, limit: Duration) -> bool {
        match action {
            ProbeAction::Tcp { port } => match self.host_port(*port) {
                Some(host) => tcp(host, limit, self.settle).await,
                None => false,
            },
            ProbeAction::Http { path, port } => match self.host_port(*port) {
                Some(host) => http(host, path, limit).await,
                None => false,
            },
            ProbeAction::Exec { command } => exec(self, command, limit).await,
        }
    }

    async fn port_open(&self) -> bool {
        match self.host_port(None) {
            Some(host) => tcp(host, DEFAULT_TIMEOUT, self.settle).await,
            None => false,
        }
    }
}

/// Connect, then see that the connection is not closed at once.
pub(crate) async fn tcp(port: u16, limit: Duration, settle: Duration) -> bool {
    let attempt = async {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).await.ok()?;
        let mut byte = [0u8; 1];
        match timeout(settle, stream.read(&mut byte)).await {
            // Open and quiet: a server waiting for its client.
            Err(_) => Some(true),
            // A banner.
            Ok(Ok(n)) if n > 0 => Some(true),
            // Closed or reset: a proxy with nothing behind it.
            Ok(_) => Some(false),
        }
    };
    matches!(timeout(limit + settle, attempt).await, Ok(Some(true)))
}

/// Run the command in the container; exit 0 passes. A command still
/// running at the limit fails the check (Docker cannot stop an exec; it
/// ends with the container or by itself).
async fn exec(target: &Target, command: &[String], limit: Duration) -> bool {
    if command.is_empty() {
        return false;
    }
    let run = async {
        let options = CreateExecOptions {
            cmd: Some(command.to_vec()),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            ..CreateExecOptions::default()
        };
        let created = target
            .docker
            .create_exec(&target.container, options)
            .await
            .ok()?;
        // Attached, so that the end of the output tells when it finished.
        if let StartExecResults::Attached { mut output, .. } =
            target.docker.start_exec(&created.id, None).await.ok()?
        {
            while output.next().await.is_some() {}
        }
        // The output can end a moment before the daemon records the code.
        for _ in 0..50 {
            let inspect = target.docker.inspect_exec(&created.id).await.ok()?;
            if inspect.running != Some(true) {
                return inspect.exit_code;
            }
            sleep(Duration::from_millis(20)).await;
        }
        None
    };
    matches!(timeout(limit, run).await, Ok(Some(0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn tcp_tells_a_quiet_server_from_a_proxy_that_closes() {
        let settle = Duration::from_millis(100);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        // Like docker-proxy with nothing behind it: accept, then close.
        let closer = tokio::spawn(async move {
            let (s, _) = listener.accept().await.unwrap();
            drop(s);
            listener
        });
        assert!(!tcp(port, Duration::from_secs(2), settle).await);
        let listener = closer.await.unwrap();
        // A server: accept, then wait for the client.
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 1];
            let _ = s.read(&mut buf).await;
        });
        assert!(tcp(port, Duration::from_secs(2), settle).await);
        server.await.unwrap();
    }
}
