//! The state a process-table engine shares between its handle and its
//! supervisor tasks, and the `Engine` operations that only touch it.
//!
//! One table per engine, under one short-held mutex: desired deployments
//! per (app, type) and one entry per process (`table`), the change
//! counters waiters watch, the promised ports, the last CPU readings, and
//! the supervisor tasks (tracked, ended at `close` and `stop_all`). What
//! differs between engines is behind [`Host`]: what an entry carries, how
//! one process runs ([`Runner`]), and where the engine's notes go (the
//! app's log). Slow work (spawning, Docker calls, probing) happens in the
//! supervisors, never under the mutex.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, Utc};
use drycc_engine::{Deployment, EngineError, ProcessState, ProcessStatus, ProcessTemplate, Result};
use drycc_engine_changes::{wait_until, Changes};
use drycc_model::lifecycle::BackoffPolicy;
use drycc_model::naming;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::orders::Order;
use crate::ports::Ports;
use crate::reconcile::{converge, restart};
use crate::supervisor::{supervise, Runner};
use crate::table::{AppEntry, Desired, Table, Tracked};
use crate::usage::CpuSamples;

/// What an engine plugs into its process table.
pub trait Host: Send + Sync + Sized + 'static {
    /// How the engine is named in its errors ("the local engine").
    const NAME: &'static str;
    /// What the engine adds to each process entry.
    type Extra: Default + Send + 'static;
    /// What the engine knows of a process it found when it started.
    type Found: Send + 'static;
    /// How one process runs.
    type Runner: Runner;

    /// The runner of the supervisor of `proc`, taking over `found` when
    /// set. Called under the table's lock: it must not take it.
    fn runner(
        table: &Arc<ProcessTable<Self>>,
        proc: &Tracked<Self::Extra>,
        found: Option<Self::Found>,
    ) -> Self::Runner;

    /// Write one of the engine's notes (a crash, a SIGKILL after the grace
    /// period) to the app's log, where its users see it.
    fn note(&self, app: &str, text: &str);

    /// The image the status of a new process of `template` shows.
    fn image(&self, _template: &ProcessTemplate) -> Option<String> {
        None
    }

    /// A process is gone for good (its supervisor ended).
    fn process_gone(&self, _app: &str, _name: &str) {}

    /// A removed app has no process left: forget what is kept for it.
    fn app_gone(&self, _app: &str) {}
}

/// The lifecycle settings every supervisor follows.
#[derive(Clone, Copy, Debug)]
pub struct Policy {
    /// Delays between crash restarts.
    pub backoff: BackoffPolicy,
    /// How often a `web` process without a probe is tried for readiness.
    pub readiness_poll: Duration,
}

/// What the table's mutex guards.
pub struct State<X> {
    pub apps: HashMap<String, AppEntry<X>>,
    /// Creation order of processes ("newest" for scale-down victims).
    next_seq: u64,
    /// Set by `stop_all`, `close` (and an engine's drop): nothing starts
    /// or restarts any more.
    pub closed: bool,
    /// Set by `close`: the processes are left running for the next engine.
    pub released: bool,
}

/// The table of one engine. It dereferences to the engine's own part.
pub struct ProcessTable<H: Host> {
    pub host: H,
    pub policy: Policy,
    /// Ports promised to processes.
    pub ports: Ports,
    /// The last CPU reading of each process.
    pub cpu: CpuSamples,
    /// Supervisors and the engine's other tasks; ended by `end_tasks`.
    pub tasks: TaskTracker,
    /// Cancelled when the engine is released or stopped: tasks still
    /// running (a supervisor still terminating after the deadline of
    /// `close`, a log follower) end.
    pub cancel: CancellationToken,
    state: Mutex<State<H::Extra>>,
    changes: Changes,
    runtime: tokio::runtime::Handle,
}

impl<H: Host> std::ops::Deref for ProcessTable<H> {
    type Target = H;

    fn deref(&self) -> &H {
        &self.host
    }
}

impl<H: Host> ProcessTable<H> {
    /// An empty table whose tasks run on `runtime`.
    pub fn new(
        host: H,
        policy: Policy,
        ports: Ports,
        runtime: tokio::runtime::Handle,
    ) -> ProcessTable<H> {
        ProcessTable {
            host,
            policy,
            ports,
            cpu: CpuSamples::default(),
            tasks: TaskTracker::new(),
            cancel: CancellationToken::new(),
            state: Mutex::new(State {
                apps: HashMap::new(),
                next_seq: 0,
                closed: false,
                released: false,
            }),
            changes: Changes::default(),
            runtime,
        }
    }

    /// The table. Poisoning is ignored: every critical section leaves the
    /// table consistent before anything that could panic.
    pub fn lock(&self) -> MutexGuard<'_, State<H::Extra>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Run a task of the engine, tracked and ended with the engine.
    pub fn spawn(&self, task: impl std::future::Future<Output = ()> + Send + 'static) {
        self.tasks.spawn_on(task, &self.runtime);
    }

    /// Tell the watchers of `app` (of every app with `None`) and the
    /// watchers of all apps that something changed.
    pub fn bump(&self, app: Option<&str>) {
        self.changes.bump(app);
    }

    /// A receiver of the changes of `app`, or of every app with `None`.
    pub fn changes(&self, app: Option<&str>) -> watch::Receiver<u64> {
        self.changes.subscribe(app)
    }

    /// Processes in the table, of every app.
    pub fn process_count(&self) -> usize {
        self.lock().apps.values().map(|e| e.procs.len()).sum()
    }

    /// Apply `f` to a process's entry, then publish the change. Returns
    /// `None` when the process is gone.
    pub fn update<R>(
        &self,
        app: &str,
        name: &str,
        f: impl FnOnce(&mut Tracked<H::Extra>) -> R,
    ) -> Option<R> {
        let mut inner = self.lock();
        let proc = inner.apps.get_mut(app)?.procs.get_mut(name)?;
        let result = f(proc);
        drop(inner);
        self.bump(Some(app));
        Some(result)
    }

    /// A run of a process began (or was taken over): its pid, start and
    /// command, and its readiness when it needs no check.
    pub fn started(
        self: &Arc<Self>,
        app: &str,
        name: &str,
        pid: Option<u32>,
        started: DateTime<Utc>,
        argv: Vec<String>,
        ready: bool,
    ) {
        let mut inner = self.lock();
        let Some(proc) = inner.apps.get_mut(app).and_then(|a| a.procs.get_mut(name)) else {
            return;
        };
        proc.status.pid = pid;
        proc.status.started = started;
        // What it runs stays shown across its exits until the next start.
        if !argv.is_empty() {
            proc.status.argv = argv;
        }
        if !proc.stopping {
            proc.status.ready = ready;
            proc.status.state = if ready {
                ProcessState::Up
            } else {
                ProcessState::Starting
            };
        }
        if ready {
            let ptype = proc.status.ptype.clone();
            self.reconcile(&mut inner, app, &ptype);
        }
        drop(inner);
        self.bump(Some(app));
    }

    /// Readiness changed: publish, and let the deployment move on (a ready
    /// process may allow an old one to go).
    pub fn set_ready(self: &Arc<Self>, app: &str, name: &str, ready: bool) {
        let mut inner = self.lock();
        let Some(proc) = inner.apps.get_mut(app).and_then(|a| a.procs.get_mut(name)) else {
            return;
        };
        if proc.stopping || proc.status.pid.is_none() || proc.status.ready == ready {
            return;
        }
        proc.status.ready = ready;
        proc.status.state = if ready {
            ProcessState::Up
        } else {
            ProcessState::Starting
        };
        let ptype = proc.status.ptype.clone();
        self.reconcile(&mut inner, app, &ptype);
        drop(inner);
        self.bump(Some(app));
    }

    /// The supervisor let go of its process (engine released): forget the
    /// entry, leave the process alone.
    pub fn detached(&self, app: &str, name: &str) {
        let mut inner = self.lock();
        if let Some(entry) = inner.apps.get_mut(app) {
            entry.procs.remove(name);
        }
        drop(inner);
        self.bump(Some(app));
    }

    /// The supervisor of a process is done: forget the process and let the
    /// deployment fill the gap; a removed app with nothing left goes too.
    pub fn remove_proc(self: &Arc<Self>, app: &str, name: &str) {
        let mut inner = self.lock();
        let removed = inner.apps.get_mut(app).and_then(|e| e.procs.remove(name));
        if let Some(proc) = removed {
            self.reconcile(&mut inner, app, &proc.status.ptype);
        }
        let mut forget_app = false;
        if let Some(entry) = inner.apps.get(app) {
            if entry.removed && entry.procs.is_empty() && entry.types.is_empty() {
                inner.apps.remove(app);
                forget_app = true;
            }
        }
        drop(inner);
        self.cpu.forget(name);
        self.host.process_gone(app, name);
        if forget_app {
            self.host.app_gone(app);
        }
        self.bump(Some(app));
    }

    /// Converge one (app, type): ask the lifecycle rules for the next step
    /// and carry it out, until they have nothing more to do right now.
    /// Terminations and starts take effect in the table at once (the new
    /// entries are `starting`, victims `terminating`); the slow work
    /// follows in the supervisors.
    pub fn reconcile(self: &Arc<Self>, inner: &mut State<H::Extra>, app: &str, ptype: &str) {
        converge(&mut Reconciling { table: self, inner }, app, ptype);
    }

    /// Create the entry of a new process (`starting`, nothing run yet) and
    /// its supervisor task, which starts it.
    fn start_process(
        self: &Arc<Self>,
        inner: &mut State<H::Extra>,
        template: &Arc<ProcessTemplate>,
    ) {
        let Some(entry) = inner.apps.get(&template.app) else {
            return;
        };
        let name = naming::unique_process_name(
            &mut rand::thread_rng(),
            &template.app,
            &template.ptype,
            &template.hash,
            |name| entry.procs.contains_key(name),
        );
        let image = self.host.image(template);
        let status = new_status(&name, template, image, Utc::now());
        let extra = H::Extra::default();
        self.add_process(inner, status, Arc::clone(template), extra, None, false);
    }

    /// Enter a process in the table (the newest one) and start its
    /// supervisor, which takes over `found` first when it is `running`
    /// (followed even if told to stop at once: following it is how it gets
    /// terminated), or starts the process.
    pub fn add_process(
        self: &Arc<Self>,
        inner: &mut State<H::Extra>,
        status: ProcessStatus,
        template: Arc<ProcessTemplate>,
        extra: H::Extra,
        found: Option<H::Found>,
        running: bool,
    ) {
        let seq = inner.next_seq;
        inner.next_seq += 1;
        let (orders, orders_rx) = watch::channel(Order::Run);
        let name = status.name.clone();
        let app = template.app.clone();
        let proc = Tracked::new(status, Arc::clone(&template), seq, orders, extra);
        let runner = H::runner(self, &proc, found);
        inner
            .apps
            .entry(app.clone())
            .or_default()
            .procs
            .insert(name.clone(), proc);
        let task = supervise(
            Arc::clone(self),
            app,
            name,
            template,
            runner,
            orders_rx,
            running,
        );
        let cancel = self.cancel.clone();
        self.spawn(async move {
            tokio::select! {
                _ = cancel.cancelled() => {}
                _ = task => {}
            }
        });
    }

    /// `Engine::apply`, once the engine checked the deployment: the new
    /// desired state of its type, converged at once.
    pub fn apply(self: &Arc<Self>, deployment: Deployment) -> Result<()> {
        let mut inner = self.lock();
        if inner.closed {
            return Err(EngineError::unavailable(format!(
                "{} is shut down",
                H::NAME
            )));
        }
        let app = deployment.template.app.clone();
        let ptype = deployment.template.ptype.clone();
        let entry = inner.apps.entry(app.clone()).or_default();
        entry.removed = false;
        let template = match entry.types.get(&ptype) {
            // Same template: keep sharing the one the processes hold.
            Some(d) if *d.template == deployment.template => Arc::clone(&d.template),
            _ => Arc::new(deployment.template),
        };
        let replicas = deployment.replicas;
        entry
            .types
            .insert(ptype.clone(), Desired { replicas, template });
        self.reconcile(&mut inner, &app, &ptype);
        drop(inner);
        self.bump(Some(&app));
        Ok(())
    }

    /// Whether the engine is shut down (`apply` refuses then).
    pub fn refuse_if_closed(&self) -> Result<()> {
        if self.lock().closed {
            return Err(EngineError::unavailable(format!(
                "{} is shut down",
                H::NAME
            )));
        }
        Ok(())
    }

    /// `Engine::remove_type`: its processes terminate.
    pub fn remove_type(&self, app: &str, ptype: &str) {
        let mut inner = self.lock();
        if let Some(entry) = inner.apps.get_mut(app) {
            entry.types.remove(ptype);
            for proc in entry.procs.values_mut() {
                if proc.status.ptype == ptype {
                    proc.request_stop();
                }
            }
        }
        drop(inner);
        self.bump(Some(app));
    }

    /// `Engine::remove_app`: every process terminates; the app is
    /// forgotten once the last is gone.
    pub fn remove_app(&self, app: &str) {
        let mut inner = self.lock();
        let mut forget = false;
        if let Some(entry) = inner.apps.get_mut(app) {
            entry.types.clear();
            entry.removed = true;
            for proc in entry.procs.values_mut() {
                proc.request_stop();
            }
            if entry.procs.is_empty() {
                inner.apps.remove(app);
                forget = true;
            }
        }
        drop(inner);
        if forget {
            self.host.app_gone(app);
        }
        self.bump(Some(app));
    }

    /// `Engine::processes`.
    pub fn processes(&self, app: &str) -> Vec<ProcessStatus> {
        let inner = self.lock();
        inner
            .apps
            .get(app)
            .map(|e| e.statuses())
            .unwrap_or_default()
    }

    /// `Engine::restart_process`: a successor first, then this one goes.
    pub fn restart_process(self: &Arc<Self>, app: &str, name: &str) -> Result<()> {
        let mut inner = self.lock();
        restart(
            &mut Reconciling {
                table: self,
                inner: &mut *inner,
            },
            app,
            name,
        )?;
        drop(inner);
        self.bump(Some(app));
        Ok(())
    }

    /// Apply `f` to process `name` of `app` if its command runs now (what
    /// `exec` needs).
    pub fn running<R>(
        &self,
        app: &str,
        name: &str,
        f: impl FnOnce(&Tracked<H::Extra>) -> R,
    ) -> Result<R> {
        let inner = self.lock();
        let proc = inner
            .apps
            .get(app)
            .and_then(|e| e.procs.get(name))
            .ok_or_else(|| EngineError::ProcessNotFound(name.to_string()))?;
        if !proc.is_running() {
            return Err(EngineError::Invalid(format!(
                "process {name} is not running (state {}); exec needs a running process",
                proc.status.state
            )));
        }
        Ok(f(proc))
    }

    /// The apps in the table, sorted.
    pub fn app_names(&self) -> Vec<String> {
        let mut apps: Vec<String> = self.lock().apps.keys().cloned().collect();
        apps.sort();
        apps
    }

    /// The first half of `close`: nothing starts any more, and every
    /// supervisor lets go of its process (one terminating goes on).
    pub fn let_go(&self) {
        let mut inner = self.lock();
        inner.closed = true;
        inner.released = true;
        for proc in inner.apps.values().flat_map(|e| e.procs.values()) {
            proc.detach();
        }
        drop(inner);
        self.bump(None);
    }

    /// The first half of `stop_all`: nothing starts any more, and every
    /// process terminates. With `forget`, apps go from the table with
    /// their last process (the engine keeps nothing of them after a stop).
    /// Returns the apps the table had.
    pub fn stop_everything(&self, forget: bool) -> Vec<String> {
        let mut inner = self.lock();
        inner.closed = true;
        for entry in inner.apps.values_mut() {
            entry.types.clear();
            entry.removed |= forget;
            for proc in entry.procs.values_mut() {
                proc.request_stop();
            }
        }
        let apps = inner.apps.keys().cloned().collect();
        drop(inner);
        self.bump(None);
        apps
    }

    /// Wait until the table is empty (every supervisor removed its entry
    /// or let go), or until `deadline`.
    pub async fn wait_idle(&self, deadline: Option<tokio::time::Instant>) -> bool {
        let mut changes = self.changes(None);
        wait_until(&mut changes, deadline, || self.process_count() == 0).await
    }

    /// End every task of the engine: those still running are cancelled
    /// (whatever a supervisor leaves is the next engine's to adopt), and
    /// waited for.
    pub async fn end_tasks(&self) {
        self.cancel.cancel();
        self.tasks.close();
        self.tasks.wait().await;
    }
}

/// The table as the reconcile loop sees it.
struct Reconciling<'a, H: Host> {
    table: &'a Arc<ProcessTable<H>>,
    inner: &'a mut State<H::Extra>,
}

impl<H: Host> Table for Reconciling<'_, H> {
    type Extra = H::Extra;

    fn apps(&self) -> &HashMap<String, AppEntry<H::Extra>> {
        &self.inner.apps
    }

    fn apps_mut(&mut self) -> &mut HashMap<String, AppEntry<H::Extra>> {
        &mut self.inner.apps
    }

    fn closed(&self) -> bool {
        self.inner.closed
    }

    fn start(&mut self, template: &Arc<ProcessTemplate>) {
        self.table.start_process(self.inner, template);
    }
}

/// The status of a process of `template` that has not run yet.
pub fn new_status(
    name: &str,
    template: &ProcessTemplate,
    image: Option<String>,
    started: DateTime<Utc>,
) -> ProcessStatus {
    ProcessStatus {
        name: name.to_string(),
        app: template.app.clone(),
        ptype: template.ptype.clone(),
        release: template.release,
        hash: template.hash.clone(),
        state: ProcessState::Starting,
        started,
        ready: false,
        restarts: 0,
        pid: None,
        endpoint: None,
        last_exit: None,
        command: template.command.display(),
        argv: Vec::new(),
        image,
    }
}
