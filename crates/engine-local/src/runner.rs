//! How one native process runs, for the supervisor of
//! `drycc_engine_runtime` (a `Runner`): its command spawned in its own
//! process group with stdout and stderr on its log file, and a record of it
//! in the run directory; or a process a previous controller started, taken
//! over through a pidfd. Signals go to the process group; a SIGKILL also
//! ends what is left in its control group.

use std::future::pending;
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;

use chrono::Utc;
use nix::sys::signal::Signal as OsSignal;
use tokio::process::{Child, Command};

use super::command::{self, Launch};
use super::probe::Target;
use super::state::{endpoint, workdir_of, Shared};
use super::{isolate, os, runtime};
use drycc_engine::{Env, ProcessTemplate};
use drycc_engine_runtime::ports::bindable;
use drycc_engine_runtime::{Run, Runner, Signal};

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

/// What the last exit of an adopted process is called: its status went to
/// the controller that started it.
const ADOPTED_EXIT: &str = "exited (status unknown: started by a previous controller)";

/// The runner of one native process.
pub(crate) struct LocalRunner {
    shared: Arc<Shared>,
    app: String,
    name: String,
    template: Arc<ProcessTemplate>,
    /// Its `PORT`, kept across restarts unless another program took it.
    port: Option<u16>,
    /// Whether `port` was found free just now.
    fresh_port: bool,
    /// The live process a previous controller started, to follow first.
    adopted: Option<Adopted>,
    /// The current run and its process group.
    running: Option<Running>,
    pid: u32,
    /// OOM kills of its control group before the current run: only new
    /// ones concern it.
    oom_before: u64,
}

impl LocalRunner {
    pub(crate) fn new(
        shared: &Arc<Shared>,
        name: &str,
        template: &Arc<ProcessTemplate>,
        found: Option<Adopted>,
    ) -> LocalRunner {
        LocalRunner {
            shared: Arc::clone(shared),
            app: template.app.clone(),
            name: name.to_string(),
            template: Arc::clone(template),
            port: found.as_ref().map(|a| a.port),
            fresh_port: false,
            // One that died while no controller watched is started again.
            adopted: found.filter(|a| a.alive),
            running: None,
            pid: 0,
            oom_before: 0,
        }
    }

    fn group(&self) -> String {
        self.shared.cgroup_of(&self.app, &self.name)
    }

    /// The checks of its probes, against its port and environment.
    fn checker(&self, port: u16) -> Target {
        Target {
            port,
            env: self.shared.process_env(&self.template, port, &self.name),
            workdir: workdir_of(&self.template).to_path_buf(),
            user: self.template.user,
        }
    }

    /// Its port: the one it had unless another program took it since
    /// (which would only crash-loop it on EADDRINUSE), else a free one.
    fn port(&mut self) -> Result<u16, String> {
        loop {
            match self.port {
                Some(taken) if !self.fresh_port && !bindable(taken) => {
                    self.shared.ports.release([taken]);
                    self.port = None;
                    let (name, app) = (&self.name, &self.app);
                    self.shared.logs.event(
                        app,
                        &format!(
                            "{name}: port {taken} is taken by another program; assigning another"
                        ),
                    );
                }
                Some(port) => {
                    self.fresh_port = false;
                    return Ok(port);
                }
                None => match self.shared.ports.take(1) {
                    Ok(ports) => {
                        self.fresh_port = true;
                        self.port = ports.first().copied();
                    }
                    Err(e) => return Err(format!("no free port: {e}")),
                },
            }
        }
    }

    /// Take over a process a previous controller started.
    fn take_over(&mut self, found: Adopted) -> Result<Run<Target>, String> {
        let pidfd = runtime::PidFd::open(found.pid)
            .map_err(|_| "exited before it could be followed".to_string())?;
        // Its stdout, to steer the offset of its log ring (see `logs`).
        let (app, name) = (&self.app, &self.name);
        self.shared.logs.adopt(app, name, pidfd.descriptor(1).ok());
        let started = self
            .shared
            .lock()
            .apps
            .get(app)
            .and_then(|a| a.procs.get(name))
            .map(|p| p.status.started)
            .unwrap_or_else(Utc::now);
        self.pid = found.pid;
        self.oom_before = self.oom_kills();
        self.running = Some(Running::Adopted(pidfd));
        Ok(Run {
            pid: Some(found.pid),
            started,
            // What a previous controller started: as the kernel shows it.
            argv: os::cmdline(found.pid),
            checker: self.checker(found.port),
        })
    }

    /// Spawn the command once.
    fn spawn_run(&mut self) -> Result<Run<Target>, String> {
        let port = self.port()?;
        let (app, name) = (self.app.clone(), self.name.clone());
        let template = Arc::clone(&self.template);
        let shared = Arc::clone(&self.shared);
        let env = shared.process_env(&template, port, &name);
        let output = shared
            .logs
            .open_output(&app, &name)
            .map_err(|e| format!("could not open its log file: {e}"))?;
        // Recorded before it exists: a controller that dies between the
        // spawn and the record with its pid leaves a record that names it
        // (see `runtime::find_spawned`), never a process nobody knows about.
        let started = Utc::now();
        let restarts = {
            let mut inner = shared.lock();
            let proc = inner
                .apps
                .get_mut(&app)
                .and_then(|a| a.procs.get_mut(&name));
            proc.map_or(0, |p| {
                // Shown with the start that follows (one change, not two).
                p.status.endpoint = Some(endpoint(port));
                p.status.restarts
            })
        };
        let mut record = runtime::Record {
            name: name.clone(),
            pid: 0,
            start_time: 0,
            port,
            restarts,
            started,
            template: (*template).clone(),
        };
        if let Some(user) = template.user {
            let homes = shared.config.homes_dir();
            isolate::prepare_home(&homes, &app, user)
                .map_err(|e| format!("could not prepare its home: {e}"))?;
        }
        let run_dir = &shared.config.run_dir;
        runtime::write(run_dir, &record);
        let workdir = workdir_of(&template);
        let (child, argv) =
            spawn(&template, &env, workdir, output).map_err(|e| format!("could not start: {e}"))?;
        let pid = child
            .id()
            .ok_or_else(|| "started but has no pid".to_string())?;
        record.pid = pid;
        record.start_time = os::start_time(pid).unwrap_or(0);
        runtime::write(run_dir, &record);
        confine(&shared, &app, &name, &template, pid);
        self.pid = pid;
        self.oom_before = self.oom_kills();
        self.running = Some(Running::Child(child));
        Ok(Run {
            pid: Some(pid),
            started,
            argv,
            checker: self.checker(port),
        })
    }

    fn oom_kills(&self) -> u64 {
        self.shared
            .cgroups
            .stats(&self.group())
            .map_or(0, |s| s.oom_kills)
    }
}

impl Runner for LocalRunner {
    type Checker = Target;

    async fn start(&mut self) -> Result<Run<Target>, String> {
        // Nothing of the last run is signalled any more.
        self.running = None;
        match self.adopted.take() {
            Some(found) => self.take_over(found),
            None => self.spawn_run(),
        }
    }

    async fn wait(&mut self) -> String {
        let Some(running) = self.running.as_mut() else {
            return pending().await;
        };
        let status = running.wait().await;
        let oom_killed = self
            .shared
            .cgroups
            .stats(&self.group())
            .is_ok_and(|s| s.oom_kills > self.oom_before);
        match status {
            _ if oom_killed => OOM_KILLED.to_string(),
            Ok(Some(status)) => os::describe_exit(&status),
            Ok(None) => ADOPTED_EXIT.to_string(),
            Err(e) => format!("could not wait for it: {e}"),
        }
    }

    async fn signal(&mut self, signal: Signal) {
        if self.running.is_none() {
            return;
        }
        match signal {
            Signal::Term => os::signal_group(self.pid, OsSignal::SIGTERM),
            Signal::Kill => {
                os::signal_group(self.pid, OsSignal::SIGKILL);
                // Whatever left the process group is still in the control
                // group.
                let _ = self.shared.cgroups.kill_all(&self.group());
            }
        }
    }

    async fn inspect(&mut self) -> bool {
        self.running.is_some() && os::group_alive(self.pid)
    }

    async fn remove(&mut self) {
        runtime::remove(&self.shared.config.run_dir, &self.name);
        let group = self.group();
        let _ = self.shared.cgroups.kill_all(&group);
        if let Err(e) = self.shared.cgroups.remove(&group) {
            tracing::debug!(%group, error = %e, "could not remove a control group");
        }
        if let Some(port) = self.port.take() {
            self.shared.ports.release([port]);
        }
    }
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
