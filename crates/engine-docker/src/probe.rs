//! Readiness and liveness checks of containers. TCP and HTTP checks go to
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
use std::future::pending;
use std::time::Duration;

use bollard::exec::{CreateExecOptions, StartExecResults};
use bollard::Docker;
use futures::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{sleep, timeout};

use drycc_engine::{Probe, ProbeAction, ProcessTemplate};

/// Kubernetes' default probe timeout, used when a probe says 0.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1);

/// Where a probe looks.
pub(crate) struct Target<'a> {
    pub docker: &'a Docker,
    pub container: &'a str,
    /// Container port -> host port.
    pub ports: &'a BTreeMap<u16, u16>,
    /// The process's own `PORT`.
    pub port: u16,
    /// How long a connection must stay open to count (see the module doc).
    pub settle: Duration,
}

impl Target<'_> {
    fn host_port(&self, port: Option<u16>) -> Option<u16> {
        self.ports.get(&port.unwrap_or(self.port)).copied()
    }
}

/// How a process becomes ready.
pub(crate) enum Readiness {
    /// Ready once started (non-web types without a probe).
    Immediate,
    /// `web` without a probe: ready once its port accepts a TCP connection,
    /// tried every `poll`.
    Port { poll: Duration },
    /// The configured probe, run for the whole life of the process.
    Probe(Probe),
}

impl Readiness {
    pub(crate) fn of(template: &ProcessTemplate, poll: Duration) -> Readiness {
        match &template.readiness {
            Some(probe) => Readiness::Probe(probe.clone()),
            None if template.ptype == "web" => Readiness::Port { poll },
            None => Readiness::Immediate,
        }
    }
}

/// Run one check; `true` when it passes.
pub(crate) async fn check(action: &ProbeAction, target: &Target<'_>, limit: Duration) -> bool {
    let limit = if limit.is_zero() {
        DEFAULT_TIMEOUT
    } else {
        limit
    };
    match action {
        ProbeAction::Tcp { port } => match target.host_port(*port) {
            Some(host) => tcp(host, limit, target.settle).await,
            None => false,
        },
        ProbeAction::Http { path, port } => match target.host_port(*port) {
            Some(host) => http(host, path, limit).await,
            None => false,
        },
        ProbeAction::Exec { command } => exec(target, command, limit).await,
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

/// GET `path`; 2xx and 3xx pass, as in Kubernetes.
async fn http(port: u16, path: &str, limit: Duration) -> bool {
    // A path with blanks or control characters would break the request line.
    if path.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return false;
    }
    let path = if path.starts_with('/') {
        path.to_string()
    } else {
        format!("/{path}")
    };
    let request = async {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).await?;
        stream
            .write_all(
                format!(
                    "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUser-Agent: drycc-probe\r\nAccept: */*\r\nConnection: close\r\n\r\n"
                )
                .as_bytes(),
            )
            .await?;
        // "HTTP/1.1 200" is 12 bytes; read until we have them or EOF.
        let mut head = [0u8; 12];
        let mut filled = 0;
        while filled < head.len() {
            let n = stream.read(&mut head[filled..]).await?;
            if n == 0 {
                break;
            }
            filled += n;
        }
        Ok::<_, std::io::Error>(parse_status(&head[..filled]))
    };
    matches!(timeout(limit, request).await, Ok(Ok(Some(code))) if (200..400).contains(&code))
}

fn parse_status(head: &[u8]) -> Option<u16> {
    let text = std::str::from_utf8(head).ok()?;
    let rest = text.strip_prefix("HTTP/")?;
    let (_, code) = rest.split_once(' ')?;
    code.get(..3)?.parse().ok()
}

/// Run the command in the container; exit 0 passes. A command still
/// running at the limit fails the check (Docker cannot stop an exec; it
/// ends with the container or by itself).
async fn exec(target: &Target<'_>, command: &[String], limit: Duration) -> bool {
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
            .create_exec(target.container, options)
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

/// Report readiness through `set_ready` for as long as the process lives
/// (the caller drops this future when the process exits). Never returns.
pub(crate) async fn readiness_loop<F>(plan: &Readiness, target: &Target<'_>, mut set_ready: F)
where
    F: FnMut(bool),
{
    match plan {
        // Reported with the start itself (see the supervisor).
        Readiness::Immediate => {}
        Readiness::Port { poll } => loop {
            if let Some(host) = target.host_port(None) {
                if tcp(host, DEFAULT_TIMEOUT, target.settle).await {
                    set_ready(true);
                    break;
                }
            }
            sleep(*poll).await;
        },
        Readiness::Probe(probe) => {
            sleep(probe.initial_delay).await;
            let period = period_of(probe);
            let threshold = probe.failure_threshold.max(1);
            let mut ready = false;
            let mut failures = 0u32;
            loop {
                if check(&probe.action, target, probe.timeout).await {
                    failures = 0;
                    if !ready {
                        ready = true;
                        set_ready(true);
                    }
                } else {
                    failures = failures.saturating_add(1);
                    // Before the first success a failure only means "not yet".
                    if ready && failures >= threshold {
                        ready = false;
                        set_ready(false);
                    }
                }
                sleep(period).await;
            }
        }
    }
    pending::<()>().await;
}

/// Returns once the liveness probe failed `failure_threshold` times in a
/// row; never returns while it passes.
pub(crate) async fn liveness_loop(probe: &Probe, target: &Target<'_>) {
    sleep(probe.initial_delay).await;
    let period = period_of(probe);
    let threshold = probe.failure_threshold.max(1);
    let mut failures = 0u32;
    loop {
        if check(&probe.action, target, probe.timeout).await {
            failures = 0;
        } else {
            failures = failures.saturating_add(1);
            if failures >= threshold {
                return;
            }
        }
        sleep(period).await;
    }
}

/// A zero period would spin; Kubernetes' minimum is one second, we allow
/// shorter for tests but not zero.
fn period_of(probe: &Probe) -> Duration {
    probe.period.max(Duration::from_millis(10))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_line_parsing() {
        assert_eq!(parse_status(b"HTTP/1.1 200"), Some(200));
        assert_eq!(parse_status(b"HTTP/1.0 302"), Some(302));
        assert_eq!(parse_status(b"HTTP/1.1 50"), None);
        assert_eq!(parse_status(b""), None);
    }

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
