//! One task per process: it spawns the command in its own process group,
//! pumps its output into the log, runs its probes, restarts it after a crash
//! (with the lifecycle back-off, same name), and terminates it when asked
//! (SIGTERM to the group, SIGKILL after the grace period). The process entry
//! lives as long as this task; the task removes it when it ends.

use std::future::pending;
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::time::Duration;

use nix::fcntl::OFlag;
use nix::sys::signal::Signal;
use tokio::net::unix::pipe;
use tokio::process::{Child, Command};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::{sleep, timeout, Instant};

use super::command::{self, Launch};
use super::os;
use super::probe::{self, Readiness, Target};
use super::state::{workdir_of, Shared};
use crate::{Env, ProcessState, ProcessTemplate};

/// How long we wait for the output pumps after the group is gone: only a
/// process that escaped the group (setsid) can keep a pipe open longer.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(1);
/// How often we look whether the rest of a group left after its leader.
const GROUP_POLL: Duration = Duration::from_millis(20);

/// How one run of the command ended.
enum Ended {
    /// It exited by itself (or failed its liveness probe and was stopped).
    Exited(String),
    /// It could not be started at all.
    Failed(String),
    /// We were asked to stop it, and it is gone.
    Stopped,
}

pub(crate) async fn supervise(
    shared: Arc<Shared>,
    app: String,
    name: String,
    template: Arc<ProcessTemplate>,
    mut stop: watch::Receiver<bool>,
) {
    let mut port: Option<u16> = None;
    let mut streak = 0u32;
    loop {
        if *stop.borrow() || shared.lock().closed {
            break;
        }
        let began = Instant::now();
        let ended = match port {
            Some(port) => run_once(&shared, &app, &name, &template, port, &mut stop).await,
            None => match shared.assign_port() {
                Ok(assigned) => {
                    port = Some(assigned);
                    continue;
                }
                Err(e) => Ended::Failed(format!("no free port: {e}")),
            },
        };
        let (reason, state) = match ended {
            Ended::Stopped => break,
            Ended::Exited(reason) => (reason, ProcessState::Crashed),
            Ended::Failed(reason) => (reason, ProcessState::Error),
        };
        let policy = shared.config.crash_backoff;
        streak = policy.next_streak(streak, began.elapsed());
        let delay = policy.delay(streak);
        let crashed = shared.update(&app, &name, |p| {
            p.status.pid = None;
            p.status.ready = false;
            p.status.last_exit = Some(reason.clone());
            if p.stopping {
                // It exited while being asked to stop: not a crash.
                return false;
            }
            p.status.state = state;
            p.status.restarts = p.status.restarts.saturating_add(1);
            true
        });
        if crashed != Some(true) || shared.lock().closed {
            break;
        }
        shared.logs.push(
            &app,
            "controller",
            format!("{name} {state}: {reason}; restarting in {}", human(delay)),
        );
        {
            // A not-ready process may now be the preferred victim.
            let mut inner = shared.lock();
            shared.reconcile(&mut inner, &app, &template.ptype);
        }
        tokio::select! {
            _ = sleep(delay) => {}
            _ = stopped(&mut stop) => break,
        }
    }
    shared.remove_proc(&app, &name, port);
}

/// Resolves once a stop was requested (or the entry is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// Spawn the command once and follow it until it exits or is stopped.
async fn run_once(
    shared: &Arc<Shared>,
    app: &str,
    name: &str,
    template: &ProcessTemplate,
    port: u16,
    stop: &mut watch::Receiver<bool>,
) -> Ended {
    let env = shared.process_env(template, port, name);
    let workdir = workdir_of(template);
    let (mut child, output) = match spawn(template, &env, workdir) {
        Ok(spawned) => spawned,
        Err(e) => return Ended::Failed(format!("could not start: {e}")),
    };
    let Some(pid) = child.id() else {
        return Ended::Failed("started but has no pid".to_string());
    };
    let run_dir = &shared.config.run_dir;
    os::write_pid_file(run_dir, name, pid);
    let pump = start_pump(shared, app, name, output);
    let plan = Readiness::of(template, shared.config.readiness_poll);
    // A process without a readiness check is ready now: one update (and
    // one change event) instead of two, which counts at 500 processes.
    let ready_now = matches!(plan, Readiness::Immediate);
    shared.started(app, name, pid, port, ready_now);
    let target = Target {
        port,
        env: &env,
        workdir,
    };
    let monitor = async {
        let readiness =
            probe::readiness_loop(&plan, &target, |ready| shared.set_ready(app, name, ready));
        let liveness = async {
            match &template.liveness {
                Some(probe) => probe::liveness_loop(probe, &target).await,
                None => pending().await,
            }
        };
        // Only a liveness failure ends the monitor.
        tokio::select! {
            _ = readiness => pending().await,
            _ = liveness => {}
        }
    };

    enum Why {
        Exit(std::io::Result<ExitStatus>),
        Stop,
        Liveness,
    }
    let why = tokio::select! {
        status = child.wait() => Why::Exit(status),
        _ = stopped(stop) => Why::Stop,
        _ = monitor => Why::Liveness,
    };
    let ended = match why {
        Why::Exit(Ok(status)) => {
            // Like a container whose main process exited: the rest of the
            // group goes with it.
            os::signal_group(pid, Signal::SIGKILL);
            Ended::Exited(os::describe_exit(&status))
        }
        Why::Exit(Err(e)) => {
            os::signal_group(pid, Signal::SIGKILL);
            Ended::Exited(format!("could not wait for it: {e}"))
        }
        Why::Stop => {
            let (status, killed) = terminate(&mut child, pid, template.grace_period).await;
            if killed {
                shared
                    .logs
                    .push(app, "controller", sigkill_note(name, template.grace_period));
            }
            shared.update(app, name, |p| {
                p.status.last_exit = status.as_ref().map(os::describe_exit)
            });
            Ended::Stopped
        }
        Why::Liveness => {
            shared.logs.push(
                app,
                "controller",
                format!("{name} failed its liveness probe; restarting it"),
            );
            let (_, killed) = terminate(&mut child, pid, template.grace_period).await;
            if killed {
                shared
                    .logs
                    .push(app, "controller", sigkill_note(name, template.grace_period));
            }
            Ended::Exited("liveness probe failed".to_string())
        }
    };
    os::remove_pid_file(run_dir, name);
    drain(pump).await;
    ended
}

/// The command in a new process group (under `sh -c` unless it is a plain
/// command, see `command`), stdout and stderr into one pipe (the log does
/// not tell them apart, and one pipe is one descriptor and one task less per
/// process). No `pre_exec` and absolute program paths (no PATH lookup in a
/// changed environment), so that std uses posix_spawn (vfork speed) instead
/// of fork.
fn spawn(
    template: &ProcessTemplate,
    env: &Env,
    workdir: &Path,
) -> std::io::Result<(Child, pipe::Receiver)> {
    let (read, write) = nix::unistd::pipe2(OFlag::O_CLOEXEC)?;
    let path = env.get("PATH").map(String::as_str);
    let mut cmd = match command::plan(&template.command, path, workdir) {
        Launch::Direct { program, argv } => {
            let mut cmd = Command::new(program);
            if let Some((argv0, args)) = argv.split_first() {
                cmd.arg0(argv0).args(args);
            }
            cmd
        }
        Launch::Shell => {
            let mut cmd = Command::new("/bin/sh");
            cmd.arg("-c").arg(&template.command);
            cmd
        }
    };
    cmd.env_clear()
        .envs(env)
        .current_dir(workdir)
        .stdin(Stdio::null())
        .stdout(Stdio::from(write.try_clone()?))
        .stderr(Stdio::from(write))
        .process_group(0);
    let child = cmd.spawn()?;
    // The command holds our copies of the write end; only the child may
    // keep it open, or the pump would never see the end.
    drop(cmd);
    Ok((child, pipe::Receiver::from_owned_fd(read)?))
}

fn start_pump(
    shared: &Arc<Shared>,
    app: &str,
    name: &str,
    output: pipe::Receiver,
) -> JoinHandle<()> {
    let (shared, app, name) = (Arc::clone(shared), app.to_string(), name.to_string());
    shared
        .runtime
        .clone()
        .spawn(async move { super::logs::pump_lines(&shared.logs, &app, &name, output).await })
}

/// Let the pumps log what is still in the pipes; give up on pipes held open
/// by processes that left the group.
async fn drain(pump: JoinHandle<()>) {
    let abort = pump.abort_handle();
    if timeout(DRAIN_TIMEOUT, pump).await.is_err() {
        abort.abort();
    }
}

/// The app-log line that tells a user why a process was killed.
fn sigkill_note(name: &str, grace: Duration) -> String {
    format!(
        "{name} did not exit within {} of SIGTERM; sent SIGKILL",
        human(grace)
    )
}

/// SIGTERM to the group; SIGKILL to the group once `grace` has passed and
/// anything of it is still there. The leader exiting early does not cut the
/// grace of the rest of its group. Returns the leader's exit status and
/// whether anything of the group needed the SIGKILL.
async fn terminate(child: &mut Child, pid: u32, grace: Duration) -> (Option<ExitStatus>, bool) {
    let deadline = Instant::now() + grace;
    os::signal_group(pid, Signal::SIGTERM);
    let status = match tokio::time::timeout_at(deadline, child.wait()).await {
        Ok(status) => status.ok(),
        Err(_) => {
            os::signal_group(pid, Signal::SIGKILL);
            return (child.wait().await.ok(), true);
        }
    };
    while os::group_exists(pid) && Instant::now() < deadline {
        sleep(GROUP_POLL).await;
    }
    let lingering = os::group_exists(pid);
    os::signal_group(pid, Signal::SIGKILL);
    (status, lingering)
}

fn human(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}
