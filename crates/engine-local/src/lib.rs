//! The local native engine: Procfile commands as OS processes (`sh -c`) on
//! this machine, one process group each, with the process model's lifecycle
//! (readiness, crash back-off, rolling replacement, graceful termination).
//!
//! Layout:
//! - `state`: what the engine adds to the process table of
//!   `drycc_engine_runtime` (settings, logs, control groups, exec
//!   sessions) and the adoption of a previous controller's processes; the
//!   table, the reconcile loop and the supervisor of every process (probes,
//!   crash restart, termination, or letting go when the engine is
//!   released) are the runtime's, shared with the Docker engine;
//! - `runner`: how one native process runs (spawn or adopt, wait, signal
//!   its process group);
//! - `runtime`: the record of every running process, which the next
//!   engine adopts (processes outlive the controller);
//! - `command`: `sh -c <command>`, or the program itself for a command of
//!   plain words (the one-shot shortcut of `bash -c`);
//! - `probe`: readiness and liveness checks;
//! - `logs`: one output file per process, kept bounded as a ring;
//! - `exec`: commands run in a process's environment, with pipes or a pty;
//! - `os`: signals, process ports, `/proc` readings, exec sessions' pid
//!   files.
//!
//! Native processes get a clean environment: `LocalConfig::base_env`
//! (`PATH`, `HOME`, `LANG=C.UTF-8` by default), then the release's values,
//! then `PORT` (a free port of `LocalConfig::process_ports` on 127.0.0.1,
//! this process's own while it exists, kept across crash restarts unless
//! another program took it), `HOSTNAME` (the process name) and `PWD` (its
//! working directory). stdout and stderr both go to its log file, written
//! by the process itself.
//!
//! Processes are told apart by template hash: a deployment whose hash
//! differs from a process's is a new template and rolls; the same hash with
//! another replica count only scales.

mod command;
mod exec;
mod isolate;
mod logs;
mod os;
mod probe;
mod runner;
mod runtime;
mod state;
mod usage;

use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use nix::sys::signal::Signal;
use tokio::sync::watch;

pub use drycc_model::lifecycle::BackoffPolicy;
pub use isolate::prepare_home;
pub use logs::MAX_LINE as DEFAULT_MAX_LOG_LINE;
pub use os::{default_process_ports, ephemeral_ports};

use drycc_engine::{
    Capabilities, Deployment, Engine, EngineError, Env, ExecRequest, ExecSession, LogLine,
    LogStream, ProcessStatus, ProcessUsage, Result,
};
use state::Shared;

/// The `PATH` of native processes unless configured otherwise.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Settings of the local engine.
#[derive(Clone, Debug)]
pub struct LocalConfig {
    /// Where the pid files of running processes live (one `<name>.pid` each:
    /// pid and start time), so that a restarted controller can kill the
    /// processes of one that crashed.
    pub run_dir: PathBuf,
    /// Where process output goes (`<app>/<process>.log`); `None`: `logs`
    /// under `run_dir`.
    pub log_dir: Option<PathBuf>,
    /// Bytes of output kept per process; older output is cut off.
    pub log_file_bytes: u64,
    /// Longest line of output kept as one log line; longer lines are cut
    /// into lines of this many bytes.
    pub max_log_line: usize,
    /// Where the private homes of apps that run as their own user go
    /// (`<app>`, mode 0700, owned by the app's user); `None`: next to
    /// `run_dir` (`<run_dir>-homes`). Its parents must be searchable by
    /// those users.
    pub homes_dir: Option<PathBuf>,
    /// The environment every process starts from (not the controller's).
    pub base_env: Env,
    /// Delays between crash restarts.
    pub crash_backoff: BackoffPolicy,
    /// How often a `web` process without a probe is tried for readiness.
    pub readiness_poll: Duration,
    /// The `PORT`s given to processes: by default outside the kernel's
    /// ephemeral range (see [`default_process_ports`]).
    pub process_ports: RangeInclusive<u16>,
    /// The control group (relative to the controller's own) under which
    /// every process gets `<app>/<name>`; one per controller.
    pub cgroup_parent: String,
    /// Whether dropping the engine without `close` or `stop_all` kills its
    /// processes (a test's safety net). The controller says no: an error
    /// on its way out must leave apps running for the next controller,
    /// as a crash does.
    pub kill_on_drop: bool,
}

impl Default for LocalConfig {
    /// `run_dir` on a tmpfs (see [`default_run_dir`]), 1000 log lines,
    /// `PATH` = [`DEFAULT_PATH`], `HOME` = the controller's `HOME` (tools
    /// need a writable home for their caches; `/` when unset),
    /// `LANG=C.UTF-8`, the standard back-off, a 100 ms readiness poll.
    fn default() -> Self {
        let uid = nix::unistd::getuid();
        let home = std::env::var("HOME").unwrap_or_else(|_| "/".to_string());
        let base_env = [
            ("PATH", DEFAULT_PATH.to_string()),
            ("HOME", home),
            ("LANG", "C.UTF-8".to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        LocalConfig {
            run_dir: default_run_dir(uid.as_raw()),
            log_dir: None,
            homes_dir: None,
            log_file_bytes: DEFAULT_LOG_FILE_BYTES,
            max_log_line: logs::MAX_LINE,
            base_env,
            crash_backoff: BackoffPolicy::default(),
            readiness_poll: Duration::from_millis(100),
            process_ports: default_process_ports(ephemeral_ports()),
            cgroup_parent: "drycc".to_string(),
            kill_on_drop: true,
        }
    }
}

/// How long `close` waits for supervisors busy terminating a process.
const CLOSE_DEADLINE: Duration = Duration::from_secs(2);

/// Output kept per process unless configured otherwise.
pub const DEFAULT_LOG_FILE_BYTES: u64 = 4 * 1024 * 1024;

impl LocalConfig {
    /// Where process output goes.
    pub fn log_dir(&self) -> PathBuf {
        self.log_dir
            .clone()
            .unwrap_or_else(|| self.run_dir.join("logs"))
    }

    /// Where the homes of apps that run as their own user go.
    pub fn homes_dir(&self) -> PathBuf {
        self.homes_dir.clone().unwrap_or_else(|| {
            let mut dir = self.run_dir.clone().into_os_string();
            dir.push("-homes");
            PathBuf::from(dir)
        })
    }
}

/// Where pid files go by default: `$XDG_RUNTIME_DIR/drycc-local`, else
/// `/dev/shm/drycc-local-<uid>`, else the temporary directory. A tmpfs,
/// because pid files are runtime state (meaningless after a reboot, like
/// everything under `/run`) and because creating and deleting a file per
/// process on a disk file system is a measurable part of a mass scale-up.
pub fn default_run_dir(uid: u32) -> PathBuf {
    if let Some(dir) = std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir).join("drycc-local");
    }
    let shm = std::path::Path::new("/dev/shm");
    if shm.is_dir() {
        return shm.join(format!("drycc-local-{uid}"));
    }
    std::env::temp_dir().join(format!("drycc-local-{uid}"))
}

/// The native engine. Create it with [`LocalEngine::new`] inside a tokio
/// runtime; call [`Engine::shutdown`] before exit. Dropping it without a
/// shutdown still kills every process group it started (SIGKILL).
pub struct LocalEngine {
    shared: Arc<Shared>,
    /// The exclusive lock on `run_dir`, held until the engine is released.
    lock: std::sync::Mutex<Option<std::fs::File>>,
}

impl LocalEngine {
    /// Prepare `run_dir`, kill the exec sessions a previous controller
    /// left, and adopt the processes it recorded: those still running are
    /// followed as they are (same pid, name, port), those that died
    /// meanwhile are restarted (same name, one restart more). Must be
    /// called from within a tokio runtime (the one that will run the
    /// supervisors).
    pub fn new(config: LocalConfig) -> Result<Arc<LocalEngine>> {
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|_| EngineError::unavailable("the local engine needs a tokio runtime"))?;
        let lock = os::prepare_run_dir(&config.run_dir)?;
        let killed = os::kill_orphans(&config.run_dir)?;
        if !killed.is_empty() {
            tracing::warn!(
                count = killed.len(),
                "killed exec sessions left by a previous controller"
            );
        }
        os::raise_nofile_limit();
        let records = runtime::read_all(&config.run_dir)?;
        let shared = Arc::new(state::new_shared(config, runtime));
        if !records.is_empty() {
            let found = records.len();
            let alive = state::adopt(&shared, records);
            tracing::info!(
                alive,
                restarting = found - alive,
                "adopted the processes of a previous controller"
            );
        }
        Ok(Arc::new(LocalEngine {
            shared,
            lock: std::sync::Mutex::new(Some(lock)),
        }))
    }

    /// The settings this engine runs with.
    pub fn config(&self) -> &LocalConfig {
        &self.shared.config
    }
}

fn validate(deployment: &Deployment) -> Result<()> {
    let t = &deployment.template;
    let bad = |what: &str| Err(EngineError::Invalid(format!("invalid deployment: {what}")));
    if t.app.is_empty() || t.app.contains('/') {
        return bad("the app name is empty or contains '/'");
    }
    if t.ptype.is_empty() || t.ptype.contains('/') {
        return bad("the process type is empty or contains '/'");
    }
    if t.hash.is_empty() || t.hash.contains('/') {
        return bad("the template hash is empty or contains '/'");
    }
    let empty = match &t.command {
        drycc_engine::Command::Line(line) => line.trim().is_empty(),
        drycc_engine::Command::Args(args) => args.is_empty(),
    };
    if empty {
        return bad("the command is empty");
    }
    if let drycc_engine::Artifact::Image(image) = &t.artifact {
        return Err(EngineError::Unsupported(format!(
            "the local engine runs checkouts, not container images ({})",
            image.reference
        )));
    }
    Ok(())
}

#[async_trait]
impl Engine for LocalEngine {
    async fn apply(&self, deployment: Deployment) -> Result<()> {
        validate(&deployment)?;
        self.shared.apply(deployment)
    }

    async fn remove_type(&self, app: &str, ptype: &str) -> Result<()> {
        self.shared.remove_type(app, ptype);
        Ok(())
    }

    async fn remove_app(&self, app: &str) -> Result<()> {
        self.shared.remove_app(app);
        Ok(())
    }

    async fn processes(&self, app: &str) -> Result<Vec<ProcessStatus>> {
        Ok(self.shared.processes(app))
    }

    async fn restart_process(&self, app: &str, name: &str) -> Result<()> {
        self.shared.restart_process(app, name)
    }

    async fn exec(&self, app: &str, name: &str, request: ExecRequest) -> Result<ExecSession> {
        let target = self.shared.running(app, name, |proc| {
            let port = proc.status.endpoint.map_or(0, |e| e.port());
            exec::Target {
                name: name.to_string(),
                env: self.shared.process_env(&proc.template, port, name),
                workdir: state::workdir_of(&proc.template).to_path_buf(),
                user: proc.template.user,
            }
        })?;
        exec::start(&self.shared, target, request)
    }

    async fn logs(&self, app: &str, lines: usize, process: Option<&str>) -> Result<Vec<LogLine>> {
        let logs = Arc::clone(&self.shared.logs);
        let (app, process) = (app.to_string(), process.map(str::to_string));
        tokio::task::spawn_blocking(move || logs.tail(&app, lines, process.as_deref()))
            .await
            .map_err(|e| EngineError::unavailable(format!("reading logs failed: {e}")))
    }

    fn follow_logs(&self, app: &str) -> LogStream {
        drycc_engine::follow_broadcast(self.shared.logs.subscribe(app))
    }

    fn changes(&self, app: Option<&str>) -> watch::Receiver<u64> {
        self.shared.changes(app)
    }

    async fn usage(&self, app: &str) -> Result<Vec<ProcessUsage>> {
        usage::sample(&self.shared, app).await
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            checkouts: true,
            images: false,
            limits: self.shared.cgroups.enforced(),
            autoscaler: false,
        }
    }

    async fn apps(&self) -> Result<Vec<String>> {
        Ok(self.shared.app_names())
    }

    async fn close(&self) {
        let shared = &self.shared;
        shared.let_go();
        // An exec session belongs to a client connection, which ends here.
        for pgid in shared.exec_groups() {
            os::signal_group(pgid, Signal::SIGKILL);
        }
        // Supervisors let go at once, except those terminating a process:
        // they get a short while, and whatever they leave is adopted by the
        // next engine, which finishes the job.
        let deadline = tokio::time::Instant::now() + CLOSE_DEADLINE;
        shared.wait_idle(Some(deadline)).await;
        shared.end_tasks().await;
        // With no process left to adopt, nothing here is of use to anyone.
        os::remove_idle_run_dir(&shared.config.run_dir);
        shared.remove_idle_groups(&shared.app_names());
        drop(self.lock.lock().unwrap_or_else(|e| e.into_inner()).take());
    }

    async fn stop_all(&self) {
        let shared = &self.shared;
        // The logs of the apps stay (files on disk, read after a stop).
        let apps = shared.stop_everything(false);
        for pgid in shared.exec_groups() {
            os::signal_group(pgid, Signal::SIGKILL);
        }
        // Every supervisor removes its entry once its group is gone.
        shared.wait_idle(None).await;
        shared.end_tasks().await;
        os::remove_idle_run_dir(&shared.config.run_dir);
        shared.remove_idle_groups(&apps);
    }
}

impl Drop for LocalEngine {
    /// Last resort when `shutdown` was not awaited (a panic, an early
    /// return): no process group may outlive the engine that owns it.
    fn drop(&mut self) {
        let groups: Vec<(u32, String)> = {
            let mut inner = self.shared.lock();
            if inner.released || !self.shared.config.kill_on_drop {
                // Handed over on purpose (`close`), or left for the next
                // controller to adopt: the processes run on.
                return;
            }
            inner.closed = true;
            inner
                .apps
                .values_mut()
                .flat_map(|e| e.procs.values_mut())
                .filter_map(|p| {
                    p.request_stop();
                    p.status.pid.map(|pid| (pid, p.status.name.clone()))
                })
                .collect()
        };
        for (pid, name) in groups {
            os::signal_group(pid, Signal::SIGKILL);
            runtime::remove(&self.shared.config.run_dir, &name);
        }
        for pgid in self.shared.exec_groups() {
            os::signal_group(pgid, Signal::SIGKILL);
        }
    }
}
