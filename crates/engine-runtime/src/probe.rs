//! Readiness and liveness probes as every engine runs them: how a process
//! becomes ready, the probe loops with their thresholds and periods, and
//! the TCP and HTTP checks against a port on 127.0.0.1. Where a check goes
//! (which port, how a command runs) is the engine's, behind `Checker`.

use std::future::{pending, Future};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{sleep, timeout};

use drycc_engine::{Probe, ProbeAction, ProcessTemplate};

/// Kubernetes' default probe timeout, used when a probe says 0.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1);

/// How a process becomes ready.
#[derive(Debug, Clone)]
pub enum Readiness {
    /// Ready once started (non-web types without a probe).
    Immediate,
    /// `web` without a probe: ready once its port accepts a TCP connection,
    /// tried every `poll`.
    Port { poll: Duration },
    /// The configured probe, run for the whole life of the process.
    Probe(Probe),
}

impl Readiness {
    pub fn of(template: &ProcessTemplate, poll: Duration) -> Readiness {
        match &template.readiness {
            Some(probe) => Readiness::Probe(probe.clone()),
            None if template.ptype == "web" => Readiness::Port { poll },
            None => Readiness::Immediate,
        }
    }
}

/// The checks of one process, as its engine runs them.
pub trait Checker: Sync {
    /// Run one check within `limit` (never zero); `true` when it passes.
    fn check(&self, action: &ProbeAction, limit: Duration) -> impl Future<Output = bool> + Send;

    /// The check of `web` without a probe: its own port accepts a TCP
    /// connection (within [`DEFAULT_TIMEOUT`]).
    fn port_open(&self) -> impl Future<Output = bool> + Send;
}

/// Run one check of `action`; a zero `limit` means [`DEFAULT_TIMEOUT`].
pub async fn check<C: Checker>(checker: &C, action: &ProbeAction, limit: Duration) -> bool {
    let limit = if limit.is_zero() {
        DEFAULT_TIMEOUT
    } else {
        limit
    };
    checker.check(action, limit).await
}

/// Report readiness through `set_ready` for as long as the process lives
/// (the caller drops this future when the process exits). Never returns.
/// `Immediate` reports nothing: the caller reports it with the start.
pub async fn readiness_loop<C, F>(plan: &Readiness, checker: &C, mut set_ready: F)
where
    C: Checker,
    F: FnMut(bool),
{
    match plan {
        Readiness::Immediate => {}
        Readiness::Port { poll } => loop {
            if checker.port_open().await {
                set_ready(true);
                break;
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
                if check(checker, &probe.action, probe.timeout).await {
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
pub async fn liveness_loop<C: Checker>(probe: &Probe, checker: &C) {
    sleep(probe.initial_delay).await;
    let period = period_of(probe);
    let threshold = probe.failure_threshold.max(1);
    let mut failures = 0u32;
    loop {
        if check(checker, &probe.action, probe.timeout).await {
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

/// A TCP connection to `port` on 127.0.0.1 opens within `limit`.
pub async fn tcp(port: u16, limit: Duration) -> bool {
    matches!(
        timeout(limit, TcpStream::connect(("127.0.0.1", port))).await,
        Ok(Ok(_))
    )
}

/// GET `path` from `port` on 127.0.0.1; 2xx and 3xx pass, as in Kubernetes.
/// A plain HTTP/1.1 request: no client library is needed for a status line.
pub async fn http(port: u16, path: &str, limit: Duration) -> bool {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_line_parsing() {
        assert_eq!(parse_status(b"HTTP/1.1 200"), Some(200));
        assert_eq!(parse_status(b"HTTP/1.0 302"), Some(302));
        assert_eq!(parse_status(b"HTTP/1.1 50"), None);
        assert_eq!(parse_status(b"SSH-2.0-Open"), None);
        assert_eq!(parse_status(b""), None);
    }

    #[tokio::test]
    async fn http_probe_against_a_tiny_server() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            for answer in [
                "HTTP/1.1 204 No Content\r\n\r\n",
                "HTTP/1.1 503 Busy\r\n\r\n",
            ] {
                let (mut s, _) = listener.accept().await.unwrap();
                let mut buf = [0u8; 256];
                let _ = s.read(&mut buf).await;
                s.write_all(answer.as_bytes()).await.unwrap();
            }
        });
        let limit = Duration::from_secs(2);
        assert!(http(port, "/health", limit).await);
        assert!(!http(port, "health", limit).await);
        server.await.unwrap();
        assert!(!http(port, "/", limit).await);
        assert!(!http(port, "/a b", limit).await);
    }

    #[tokio::test]
    async fn tcp_needs_a_listener() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        assert!(tcp(port, Duration::from_secs(2)).await);
        drop(listener);
        assert!(!tcp(port, Duration::from_secs(2)).await);
    }
}
