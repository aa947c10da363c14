//! Readiness and liveness checks of native processes: TCP connect, a plain
//! HTTP/1.1 GET over TCP (no client library needed for a status line), and
//! a command run in the process's environment.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::Signal;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{sleep, timeout};

use super::os;
use drycc_engine::{Env, Probe, ProbeAction, ProcessTemplate};

/// Kubernetes' default probe timeout, used when a probe says 0.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1);

/// Where a probe looks: the process's port, environment and directory.
pub(crate) struct Target<'a> {
    pub port: u16,
    pub env: &'a Env,
    pub workdir: &'a Path,
}

/// How a process becomes ready.
pub(crate) enum Readiness {
    /// Ready once spawned (non-web types without a probe).
    Immediate,
    /// `web` without a probe: ready once its PORT accepts a TCP connection,
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
        ProbeAction::Tcp { port } => tcp(port.unwrap_or(target.port), limit).await,
        ProbeAction::Http { path, port } => http(port.unwrap_or(target.port), path, limit).await,
        ProbeAction::Exec { command } => exec(command, target, limit).await,
    }
}

async fn tcp(port: u16, limit: Duration) -> bool {
    matches!(
        timeout(limit, TcpStream::connect(("127.0.0.1", port))).await,
        Ok(Ok(_))
    )
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

async fn exec(command: &[String], target: &Target<'_>, limit: Duration) -> bool {
    let Some((program, args)) = command.split_first() else {
        return false;
    };
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args)
        .env_clear()
        .envs(target.env)
        .current_dir(target.workdir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .kill_on_drop(true);
    let Ok(mut child) = cmd.spawn() else {
        return false;
    };
    match timeout(limit, child.wait()).await {
        Ok(Ok(status)) => {
            // Helpers the check left in the background are not wanted.
            if let Some(pid) = child.id() {
                os::signal_group(pid, Signal::SIGKILL);
            }
            status.success()
        }
        Ok(Err(_)) => false,
        Err(_) => {
            if let Some(pid) = child.id() {
                os::signal_group(pid, Signal::SIGKILL);
            }
            let _ = child.wait().await;
            false
        }
    }
}

/// Report readiness through `set_ready` for as long as the process lives
/// (the caller drops this future when the process exits). Never returns.
pub(crate) async fn readiness_loop<F>(plan: &Readiness, target: &Target<'_>, mut set_ready: F)
where
    F: FnMut(bool),
{
    match plan {
        // Reported with the spawn itself (see the supervisor).
        Readiness::Immediate => {}
        Readiness::Port { poll } => loop {
            if tcp(target.port, DEFAULT_TIMEOUT).await {
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
    std::future::pending::<()>().await;
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
    async fn exec_probe_uses_exit_code_and_env() {
        let env: Env = [("PATH", "/usr/bin:/bin"), ("X", "1")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let target = Target {
            port: 1,
            env: &env,
            workdir: Path::new("/"),
        };
        let limit = Duration::from_secs(5);
        let cmd = |s: &str| vec!["sh".to_string(), "-c".to_string(), s.to_string()];
        assert!(exec(&cmd("test \"$X\" = 1"), &target, limit).await);
        assert!(!exec(&cmd("exit 1"), &target, limit).await);
        assert!(!exec(&cmd("sleep 5"), &target, Duration::from_millis(100)).await);
        assert!(!exec(&[], &target, limit).await);
    }
}
