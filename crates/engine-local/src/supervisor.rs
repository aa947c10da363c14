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

use chrono::Utc;
use nix::sys::signal::Signal;
use tokio::process::{Child, Command};
use tokio::sync::watch;
use tokio::time::{sleep, Instant};

use super::command::{self, Launch};
use super::probe::Target;
use super::state::{workdir_of, Shared};
use super::{isolate, os, runtime};
use drycc_engine::{Env, ProcessState, ProcessTemplate};
use drycc_engine_runtime::orders::{Ended, Order};
use drycc_engine_runtime::probe::{self, Readiness};
use drycc_engine_runtime::status::record_exit;

/// How often we look whether the rest of a group left after its leader.
const GROUP_POLL: Duration = Duration::from_millis(20);

/// A process found running (or found dead) when the engine started.
pub(crate) struct Adopted {
    pub pid: u32,
    pub port: u16,
    pub alive: bool,
}

/// The process of one run: our child, or one adopted from a previous
/// controller (not our child: its exit is seen through a pidfd, its exit
/// status went to its first parent).
enum Running {
    Child(Child),
    Adopted(runtime::PidFd),
}

impl Running {
    /// Wait for the process to exit; its status when we can know it.
    async fn wait(&mut self) -> std::io::Result<Option<ExitStatus>> {
        match self {
            Running::Child(child) => child.wait().await.map(Some),
            Running::Adopted(pidfd) => {
                pidfd.exited().await;
                Ok(None)
            }
        }
    }
}

pub(crate) async fn supervise(
    shared: Arc<Shared>,
    app: String,
    name: String,
    template: Arc<ProcessTemplate>,
    mut orders: watch::Receiver<Order>,
    adopted: Option<Adopted>,
) {
    let mut port: Option<u16> = adopted.as_ref().map(|a| a.port);
    // One that died while no controller watched is started again now.
    let mut adopted = adopted.filter(|a| a.alive);
    let mut streak = 0u32;
    // Whether `port` was found free just now.
    let mut fresh_port = false;
    loop {
        let order = *orders.borrow();
        if order == Order::Detach {
            return shared.detached(&app, &name);
        }
        // An adopted process is followed even when told to stop at once:
        // following it is how it gets terminated.
        if adopted.is_none() && (order == Order::Terminate || shared.lock().closed) {
            break;
        }
        let began = Instant::now();
        let ended = match (adopted.take(), port) {
            (Some(found), _) => {
                follow_adopted(&shared, &app, &name, &template, found, &mut orders).await
            }
            // A port someone else took since it was checked would only
            // crash-loop the process on EADDRINUSE: give it another.
            (None, Some(taken)) if !fresh_port && !os::port_free(taken) => {
                shared.release_port(taken);
                port = None;
                shared.logs.event(
                    &app,
                    &format!("{name}: port {taken} is taken by another program; assigning another"),
                );
                continue;
            }
            (None, Some(port)) => {
                fresh_port = false;
                run_once(&shared, &app, &name, &template, port, &mut orders).await
            }
            (None, None) => match shared.assign_port() {
                Ok(assigned) => {
                    fresh_port = true;
                    port = Some(assigned);
                    continue;
                }
                Err(e) => Ended::Failed(format!("no free port: {e}")),
            },
        };
        let (reason, state) = match ended {
            Ended::Stopped => break,
            Ended::Detached => return shared.detached(&app, &name),
            Ended::Exited(reason) => (reason, ProcessState::Crashed),
            Ended::Failed(reason) => (reason, ProcessState::Error),
        };
        let policy = shared.config.crash_backoff;
        streak = policy.next_streak(streak, began.elapsed());
        let delay = policy.delay(streak);
        let crashed = shared.update(&app, &name, |p| {
            record_exit(&mut p.status, p.stopping, &reason, state)
        });
        if crashed != Some(true) || shared.lock().closed {
            break;
        }
        shared.logs.event(
            &app,
            &format!("{name} {state}: {reason}; restarting in {}", human(delay)),
        );
        {
            // A not-ready process may now be the preferred victim.
            let mut inner = shared.lock();
            shared.reconcile(&mut inner, &app, &template.ptype);
        }
        tokio::select! {
            _ = sleep(delay) => {}
            order = orders.wait_for(|o| *o != Order::Run) => match order.map(|o| *o) {
                Ok(Order::Detach) => return shared.detached(&app, &name),
                _ => break,
            },
        }
    }
    runtime::remove(&shared.config.run_dir, &name);
    let group = shared.cgroup_of(&app, &name);
    let _ = shared.cgroups.kill_all(&group);
    if let Err(e) = shared.cgroups.remove(&group) {
        tracing::debug!(%group, error = %e, "could not remove a control group");
    }
    shared.remove_proc(&app, &name, port);
}

/// The reason shown for a process the kernel killed over its memory limit.
pub(crate) const OOM_KILLED: &str = "OOMKilled";

/// Put a process just spawned into its own control group with the
/// template's limits (when it has any). A process can fork before it is moved; its children
/// stay in its process group, which is signalled as a whole. Where control
/// groups cannot be used the limits are only recorded.
fn confine(shared: &Shared, app: &str, name: &str, template: &ProcessTemplate, pid: u32) {
    // A group costs a few cgroupfs directories and writes per process:
    // only processes with a limit get one (a mass scale-up of unlimited
    // processes stays as fast as without control groups).
    if template.cpu_millis.is_none() && template.memory_bytes.is_none() {
        return;
    }
    if shared.cgroups.enforced().is_err() {
        return;
    }
    let group = shared.cgroup_of(app, name);
    let limits = drycc_cgroups::Limits {
        cpu_millis: template.cpu_millis,
        memory_bytes: template.memory_bytes,
    };
    let result = shared
        .cgroups
        .create(&group, limits)
        .and_then(|()| shared.cgroups.add(&group, pid));
    if let Err(e) = result {
        tracing::warn!(%group, error = %e, "could not confine a process to its control group; its limits are not enforced");
    }
}

/// Spawn the command once and follow it until it exits or is stopped.
async fn run_once(
    shared: &Arc<Shared>,
    app: &str,
    name: &str,
    template: &ProcessTemplate,
    port: u16,
    orders: &mut watch::Receiver<Order>,
) -> Ended {
    let env = shared.process_env(template, port, name);
    let workdir = workdir_of(template);
    let output = match shared.logs.open_output(app, name) {
        Ok(file) => file,
        Err(e) => return Ended::Failed(format!("could not open its log file: {e}")),
    };
    // Recorded before it exists: a controller that dies between the spawn
    // and the record with its pid leaves a record that names it (see
    // `runtime::find_spawned`), never a process nobody knows about.
    let started = Utc::now();
    let restarts = shared
        .lock()
        .apps
        .get(app)
        .and_then(|a| a.procs.get(name))
        .map_or(0, |p| p.status.restarts);
    let mut record = runtime::Record {
        name: name.to_string(),
        pid: 0,
        start_time: 0,
        port,
        restarts,
        started,
        template: template.clone(),
    };
    if let Some(user) = template.user {
        let homes = shared.config.homes_dir();
        if let Err(e) = isolate::prepare_home(&homes, app, user) {
            return Ended::Failed(format!("could not prepare its home: {e}"));
        }
    }
    let run_dir = &shared.config.run_dir;
    runtime::write(run_dir, &record);
    let (child, argv) = match spawn(template, &env, workdir, output) {
        Ok(spawned) => spawned,
        Err(e) => return Ended::Failed(format!("could not start: {e}")),
    };
    let Some(pid) = child.id() else {
        return Ended::Failed("started but has no pid".to_string());
    };
    let plan = Readiness::of(template, shared.config.readiness_poll);
    // A process without a readiness check is ready now: one update (and
    // one change event) instead of two, which counts at 500 processes.
    let ready_now = matches!(plan, Readiness::Immediate);
    shared.set_argv(app, name, argv);
    shared.started(app, name, pid, port, started, ready_now);
    record.pid = pid;
    record.start_time = os::start_time(pid).unwrap_or(0);
    runtime::write(run_dir, &record);
    confine(shared, app, name, template, pid);
    let running = Running::Child(child);
    follow(
        shared, app, name, template, port, pid, running, plan, orders,
    )
    .await
}

/// Take over a process a previous controller started.
async fn follow_adopted(
    shared: &Arc<Shared>,
    app: &str,
    name: &str,
    template: &ProcessTemplate,
    found: Adopted,
    orders: &mut watch::Receiver<Order>,
) -> Ended {
    let pidfd = match runtime::PidFd::open(found.pid) {
        Ok(pidfd) => pidfd,
        // Gone between the look at /proc and now.
        Err(_) => return Ended::Exited(ADOPTED_EXIT.to_string()),
    };
    // Its stdout, to steer the offset of its log ring (see `logs`).
    shared.logs.adopt(app, name, pidfd.descriptor(1).ok());
    let plan = Readiness::of(template, shared.config.readiness_poll);
    let ready_now = matches!(plan, Readiness::Immediate);
    let started = shared
        .lock()
        .apps
        .get(app)
        .and_then(|a| a.procs.get(name))
        .map(|p| p.status.started)
        .unwrap_or_else(Utc::now);
    // What a previous controller started: as the kernel shows it.
    shared.set_argv(app, name, os::cmdline(found.pid));
    shared.started(app, name, found.pid, found.port, started, ready_now);
    let running = Running::Adopted(pidfd);
    follow(
        shared, app, name, template, found.port, found.pid, running, plan, orders,
    )
    .await
}

/// What the last exit of an adopted process is called: its status went to
/// the controller that started it.
const ADOPTED_EXIT: &str = "exited (status unknown: started by a previous controller)";

/// Follow a running process until it exits, fails its liveness probe, or
/// an order comes.
#[allow(clippy::too_many_arguments)]
async fn follow(
    shared: &Arc<Shared>,
    app: &str,
    name: &str,
    template: &ProcessTemplate,
    port: u16,
    pid: u32,
    mut running: Running,
    plan: Readiness,
    orders: &mut watch::Receiver<Order>,
) -> Ended {
    let env = shared.process_env(template, port, name);
    let workdir = workdir_of(template);
    // OOM kills are counted per group: only new ones concern this run.
    let oom_before = shared
        .cgroups
        .stats(&shared.cgroup_of(app, name))
        .map_or(0, |s| s.oom_kills);
    let target = Target {
        port,
        env: &env,
        workdir,
        user: template.user,
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
        Exit(std::io::Result<Option<ExitStatus>>),
        Order(Order),
        Liveness,
    }
    let why = tokio::select! {
        status = running.wait() => Why::Exit(status),
        order = orders.wait_for(|o| *o != Order::Run) => Why::Order(order.map(|o| *o).unwrap_or(Order::Terminate)),
        _ = monitor => Why::Liveness,
    };
    match why {
        Why::Exit(status) => {
            // Like a container whose main process exited: the rest of the
            // group (and of its control group) goes with it.
            os::signal_group(pid, Signal::SIGKILL);
            let group = shared.cgroup_of(app, name);
            let oom_killed = shared
                .cgroups
                .stats(&group)
                .is_ok_and(|s| s.oom_kills > oom_before);
            let _ = shared.cgroups.kill_all(&group);
            Ended::Exited(match status {
                _ if oom_killed => OOM_KILLED.to_string(),
                Ok(Some(status)) => os::describe_exit(&status),
                Ok(None) => ADOPTED_EXIT.to_string(),
                Err(e) => format!("could not wait for it: {e}"),
            })
        }
        Why::Order(Order::Detach) | Why::Order(Order::Run) => Ended::Detached,
        Why::Order(Order::Terminate) => {
            let (status, killed) = terminate(&mut running, pid, template.grace_period).await;
            if killed {
                shared
                    .logs
                    .event(app, &sigkill_note(name, template.grace_period));
            }
            // Whatever left the process group is still in the control group.
            let _ = shared.cgroups.kill_all(&shared.cgroup_of(app, name));
            shared.update(app, name, |p| {
                p.status.last_exit = Some(match status {
                    Some(status) => os::describe_exit(&status),
                    None => "terminated".to_string(),
                })
            });
            Ended::Stopped
        }
        Why::Liveness => {
            shared.logs.event(
                app,
                &format!("{name} failed its liveness probe; restarting it"),
            );
            let (_, killed) = terminate(&mut running, pid, template.grace_period).await;
            if killed {
                shared
                    .logs
                    .event(app, &sigkill_note(name, template.grace_period));
            }
            Ended::Exited("liveness probe failed".to_string())
        }
    }
}

/// The command in a new process group (under `sh -c` unless it is a plain
/// command, see `command`), stdout and stderr appended to its log file, so
/// that its output never passes through (or depends on) the controller.
/// Under the engine's own user: no `pre_exec` and absolute program paths
/// (no PATH lookup in a changed environment), so that std uses posix_spawn
/// (vfork speed) instead of fork. Under the app's user (see `isolate`) the
/// switch needs a fork.
fn spawn(
    template: &ProcessTemplate,
    env: &Env,
    workdir: &Path,
    output: std::fs::File,
) -> std::io::Result<(Child, Vec<String>)> {
    let path = env.get("PATH").map(String::as_str);
    let line = match &template.command {
        drycc_engine::Command::Line(line) => line.clone(),
        // Exact arguments: each quoted for the shell, so none is split or
        // expanded again.
        drycc_engine::Command::Args(args) => args
            .iter()
            .map(|a| format!("'{}'", a.replace('\'', "'\\''")))
            .collect::<Vec<_>>()
            .join(" "),
    };
    let (mut cmd, shown) = match command::plan(&line, path, workdir) {
        Launch::Direct { program, argv } => {
            let mut shown = vec![program.display().to_string()];
            let mut cmd = Command::new(program);
            if let Some((argv0, args)) = argv.split_first() {
                cmd.arg0(argv0).args(args);
                shown.extend(args.iter().cloned());
            }
            (cmd, shown)
        }
        Launch::Shell => {
            let mut cmd = Command::new("/bin/sh");
            cmd.arg("-c").arg(&line);
            let shown = vec!["/bin/sh".into(), "-c".into(), line.clone()];
            (cmd, shown)
        }
    };
    cmd.env_clear()
        .envs(env)
        .current_dir(workdir)
        .stdin(Stdio::null())
        .stdout(Stdio::from(output.try_clone()?))
        .stderr(Stdio::from(output))
        .process_group(0);
    isolate::run_as(&mut cmd, template.user);
    Ok((cmd.spawn()?, shown))
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
/// grace of the rest of its group. Returns the leader's exit status (when
/// it can be known) and whether anything of the group needed the SIGKILL.
async fn terminate(running: &mut Running, pid: u32, grace: Duration) -> (Option<ExitStatus>, bool) {
    let deadline = Instant::now() + grace;
    os::signal_group(pid, Signal::SIGTERM);
    let status = match tokio::time::timeout_at(deadline, running.wait()).await {
        Ok(status) => status.ok().flatten(),
        Err(_) => {
            os::signal_group(pid, Signal::SIGKILL);
            return (running.wait().await.ok().flatten(), true);
        }
    };
    while os::group_alive(pid) && Instant::now() < deadline {
        sleep(GROUP_POLL).await;
    }
    let lingering = os::group_alive(pid);
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
