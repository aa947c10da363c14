//! The checks of native processes: TCP connect and HTTP GET to the
//! process's port (from `drycc_engine_runtime::probe`, which also runs the
//! probe loops), and a command run in the process's environment.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::Signal;
use tokio::time::timeout;

use super::os;
use drycc_engine::{Env, ProbeAction};
use drycc_engine_runtime::probe::{http, tcp, Checker, DEFAULT_TIMEOUT};

/// Where a probe looks: the process's port, environment and directory.
pub(crate) struct Target {
    pub port: u16,
    pub env: Env,
    pub workdir: PathBuf,
    /// The process's user: exec checks run as it.
    pub user: Option<drycc_engine::RunAs>,
}

impl Checker for Target {
    async fn check(&self, action: &ProbeAction, limit: Duration) -> bool {
        match action {
            ProbeAction::Tcp { port } => tcp(port.unwrap_or(self.port), limit).await,
            ProbeAction::Http { path, port } => http(port.unwrap_or(self.port), path, limit).await,
            ProbeAction::Exec { command } => exec(command, self, limit).await,
        }
    }

    async fn port_open(&self) -> bool {
        tcp(self.port, DEFAULT_TIMEOUT).await
    }
}

async fn exec(command: &[String], target: &Target, limit: Duration) -> bool {
    let Some((program, args)) = command.split_first() else {
        return false;
    };
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args)
        .env_clear()
        .envs(&target.env)
        .current_dir(&target.workdir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .kill_on_drop(true);
    super::isolate::run_as(&mut cmd, target.user);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn exec_probe_uses_exit_code_and_env() {
        let env: Env = [("PATH", "/usr/bin:/bin"), ("X", "1")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let target = Target {
            port: 1,
            env,
            workdir: PathBuf::from("/"),
            user: None,
        };
        let limit = Duration::from_secs(5);
        let cmd = |s: &str| vec!["sh".to_string(), "-c".to_string(), s.to_string()];
        assert!(exec(&cmd("test \"$X\" = 1"), &target, limit).await);
        assert!(!exec(&cmd("exit 1"), &target, limit).await);
        assert!(!exec(&cmd("sleep 5"), &target, Duration::from_millis(100)).await);
        assert!(!exec(&[], &target, limit).await);
    }
}
