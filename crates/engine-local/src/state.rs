//! The process table of the local engine and the reconciling glue: desired
//! deployments per (app, type), one entry per process (the entries of
//! `drycc_engine_runtime::table`), assigned ports, and `reconcile`, which runs
//! `drycc_engine_runtime::reconcile` (the rules of `drycc_model::lifecycle`)
//! on the table. Everything here runs under one short-held mutex;
//! slow work (spawning, waiting, probing) happens in the per-process
//! supervisor tasks.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, Utc};
use drycc_engine_changes::Changes;
use drycc_engine_runtime::reconcile::converge;
use drycc_engine_runtime::table::{Table, Tracked};
use drycc_engine_runtime::usage::CpuSamples;
use drycc_model::naming;
use tokio::sync::watch;

use super::logs::LogStore;
use super::supervisor::Adopted;
use super::{os, runtime, supervisor, LocalConfig};
use drycc_engine::{Env, ProcessState, ProcessStatus, ProcessTemplate};
use drycc_engine_runtime::orders::Order;

/// State shared by the engine handle and every supervisor task.
pub(crate) struct Shared {
    pub(crate) config: LocalConfig,
    state: Mutex<Inner>,
    pub(crate) logs: Arc<LogStore>,
    changes: Changes,
    pub(crate) runtime: tokio::runtime::Handle,
    /// Process groups of running exec sessions, killed at shutdown.
    execs: Mutex<HashSet<u32>>,
    /// Control groups: limits, usage, OOM kills, killing what escaped.
    pub(crate) cgroups: Arc<dyn drycc_cgroups::Cgroups>,
    /// The last CPU reading of each process (for usage in millicores).
    pub(crate) cpu_samples: CpuSamples,
}

#[derive(Default)]
pub(crate) struct Inner {
    pub(crate) apps: HashMap<String, AppEntry>,
    /// Ports assigned to existing processes; never handed out twice.
    ports: HashSet<u16>,
    /// Where the round-robin search for a free port goes on.
    next_port: u16,
    /// Creation order of processes ("newest" for scale-down victims).
    next_seq: u64,
    /// Set by `stop_all`, `close` (and drop): nothing starts or restarts
    /// any more.
    pub(crate) closed: bool,
    /// Set by `close`: the processes are left running for the next engine.
    pub(crate) released: bool,
}

pub(crate) use drycc_engine_runtime::table::Desired;

pub(crate) type AppEntry = drycc_engine_runtime::table::AppEntry<()>;
pub(crate) type Proc = Tracked<()>;

impl Shared {
    pub(crate) fn new(config: LocalConfig, runtime: tokio::runtime::Handle) -> Self {
        let cgroups = drycc_cgroups::detect(&config.cgroup_parent);
        if let Err(reason) = cgroups.enforced() {
            tracing::warn!(%reason, "CPU and memory limits are recorded but not enforced");
        }
        let logs = Arc::new(LogStore::new(
            config.log_dir(),
            config.log_file_bytes,
            config.max_log_line,
        ));
        let ports = config.process_ports.clone();
        let next_port = if ports.is_empty() {
            *ports.start()
        } else {
            rand::Rng::gen_range(&mut rand::thread_rng(), ports)
        };
        if let Err(e) = super::logs::start_watcher(Arc::downgrade(&logs)) {
            tracing::error!(error = %e, "could not start the log watcher: log files are not bounded");
        }
        Shared {
            config,
            state: Mutex::new(Inner {
                // Engines on one machine share the port range: each starts
                // its round robin somewhere else, so two of them rarely
                // promise the same free port before either process binds it.
                next_port,
                ..Inner::default()
            }),
            logs,
            changes: Changes::default(),
            runtime,
            execs: Mutex::new(HashSet::new()),
            cgroups,
            cpu_samples: CpuSamples::default(),
        }
    }

    /// The table. Poisoning is ignored: every critical section leaves the
    /// table consistent before anything that could panic.
    pub(crate) fn lock(&self) -> MutexGuard<'_, Inner> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The control group of a process.
    pub(crate) fn cgroup_of(&self, app: &str, name: &str) -> String {
        format!(
            "{}/{app}/{name}",
            self.config.cgroup_parent.trim_matches('/')
        )
    }

    /// Processes in the table, of every app.
    pub(crate) fn process_count(&self) -> usize {
        self.lock().apps.values().map(|e| e.procs.len()).sum()
    }

    /// Tell the watchers of `app` (of every app with `None`) and the
    /// watchers of all apps that something changed.
    pub(crate) fn bump(&self, app: Option<&str>) {
        self.changes.bump(app);
    }

    pub(crate) fn subscribe_changes(&self, app: Option<&str>) -> watch::Receiver<u64> {
        self.changes.subscribe(app)
    }

    pub(crate) fn add_exec(&self, pgid: u32) {
        self.execs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(pgid);
    }

    pub(crate) fn remove_exec(&self, pgid: u32) {
        self.execs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&pgid);
    }

    pub(crate) fn exec_groups(&self) -> Vec<u32> {
        self.execs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .copied()
            .collect()
    }

    /// The environment of a process: the clean base, the release's values,
    /// then what the engine owns (`PORT`, `HOSTNAME`), which always wins so
    /// that the router and the process agree on the port.
    pub(crate) fn process_env(&self, template: &ProcessTemplate, port: u16, name: &str) -> Env {
        let mut env = self.config.base_env.clone();
        env.extend(template.env.iter().map(|(k, v)| (k.clone(), v.clone())));
        env.insert("PORT".to_string(), port.to_string());
        // What `sh` would export; set here so that direct and shell launches
        // see the same environment.
        env.insert(
            "PWD".to_string(),
            workdir_of(template).display().to_string(),
        );
        env.insert("HOSTNAME".to_string(), name.to_string());
        if template.user.is_some() {
            // Its private home (see `isolate::prepare_home`), never the
            // engine's.
            let home = self.config.homes_dir().join(&template.app);
            env.insert("HOME".to_string(), home.display().to_string());
        }
        env
    }

    /// Assign a free port to a process, never one already assigned.
    pub(crate) fn assign_port(&self) -> std::io::Result<u16> {
        let mut inner = self.lock();
        // Binding under the lock keeps "free and not promised" atomic; it is
        // one syscall pair, cheap next to a spawn.
        let mut cursor = inner.next_port;
        let port = os::free_port(&inner.ports, &self.config.process_ports, &mut cursor)?;
        inner.next_port = cursor;
        inner.ports.insert(port);
        Ok(port)
    }

    /// Give back a port (its process is gone or moved to another port).
    pub(crate) fn release_port(&self, port: u16) {
        self.lock().ports.remove(&port);
    }

    /// Apply `f` to a process's entry, then publish the change. Returns
    /// `None` when the process is gone.
    pub(crate) fn update<R>(
        self: &Arc<Self>,
        app: &str,
        name: &str,
        f: impl FnOnce(&mut Proc) -> R,
    ) -> Option<R> {
        let mut inner = self.lock();
        let proc = inner.apps.get_mut(app)?.procs.get_mut(name)?;
        let result = f(proc);
        drop(inner);
        self.bump(Some(app));
        Some(result)
    }

    /// A run of the process was spawned (or adopted): record its pid, port
    /// and start, and its readiness when it needs no check. Returns its
    /// restart count, `None` when the entry is gone.
    /// What a process runs (see [`ProcessStatus::argv`]); kept across its
    /// exits until the next start.
    pub(crate) fn set_argv(&self, app: &str, name: &str, argv: Vec<String>) {
        if argv.is_empty() {
            return;
        }
        let mut inner = self.lock();
        if let Some(proc) = inner.apps.get_mut(app).and_then(|a| a.procs.get_mut(name)) {
            proc.status.argv = argv;
        }
    }

    pub(crate) fn started(
        self: &Arc<Self>,
        app: &str,
        name: &str,
        pid: u32,
        port: u16,
        started: DateTime<Utc>,
        ready: bool,
    ) -> Option<u32> {
        let mut inner = self.lock();
        let proc = inner
            .apps
            .get_mut(app)
            .and_then(|a| a.procs.get_mut(name))?;
        let restarts = proc.status.restarts;
        proc.status.pid = Some(pid);
        proc.status.endpoint = Some(endpoint(port));
        proc.status.started = started;
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
        Some(restarts)
    }

    /// The supervisor let go of its process (engine released): forget the
    /// entry, leave the process and its record alone.
    pub(crate) fn detached(&self, app: &str, name: &str) {
        let mut inner = self.lock();
        if let Some(entry) = inner.apps.get_mut(app) {
            entry.procs.remove(name);
        }
        drop(inner);
        self.bump(Some(app));
    }

    /// Take over the processes a previous controller recorded: the live
    /// ones are followed as they run, the dead ones restarted at once (same
    /// name, one restart more), as after a crash.
    pub(crate) fn adopt(self: &Arc<Self>, mut records: Vec<runtime::Record>) -> usize {
        records.sort_by_key(|r| r.started);
        let mut inner = self.lock();
        let mut alive_count = 0;
        for mut record in records {
            if record.pid == 0 {
                // Spawned (or about to be) when the last controller died.
                if let Some(pid) = runtime::find_spawned(&record.name) {
                    record.pid = pid;
                    record.start_time = os::start_time(pid).unwrap_or(0);
                    runtime::write(&self.config.run_dir, &record);
                }
            }
            let alive = runtime::is_alive(&record);
            alive_count += usize::from(alive);
            inner.ports.insert(record.port);
            let template = Arc::new(record.template);
            let mut status = new_status(&record.name, &template, record.started);
            status.restarts = record.restarts + u32::from(!alive);
            status.endpoint = Some(endpoint(record.port));
            if alive {
                status.pid = Some(record.pid);
            } else {
                status.state = ProcessState::Crashed;
                status.last_exit = Some("exited while no controller was running".to_string());
            }
            let adopted = Adopted {
                pid: record.pid,
                port: record.port,
                alive,
            };
            self.add_process(&mut inner, status, template, Some(adopted));
        }
        drop(inner);
        self.bump(None);
        alive_count
    }

    /// Readiness changed: publish, and let the deployment move on (a ready
    /// process may allow an old one to go).
    pub(crate) fn set_ready(self: &Arc<Self>, app: &str, name: &str, ready: bool) {
        let mut inner = self.lock();
        let Some(proc) = inner.apps.get_mut(app).and_then(|a| a.procs.get_mut(name)) else {
            return;
        };
        if proc.stopping || proc.status.pid.is_none() {
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

    /// The supervisor of a process is done: forget the process, free its
    /// port, and let the deployment fill the gap.
    pub(crate) fn remove_proc(self: &Arc<Self>, app: &str, name: &str, port: Option<u16>) {
        let mut inner = self.lock();
        if let Some(port) = port {
            inner.ports.remove(&port);
        }
        let mut forget_app = false;
        let removed = inner.apps.get_mut(app).and_then(|e| e.procs.remove(name));
        if let Some(proc) = removed {
            self.logs.ended(app, name);
            self.reconcile(&mut inner, app, &proc.status.ptype);
        }
        if let Some(entry) = inner.apps.get(app) {
            if entry.removed && entry.procs.is_empty() && entry.types.is_empty() {
                inner.apps.remove(app);
                forget_app = true;
            }
        }
        drop(inner);
        if forget_app {
            self.logs.forget(app);
            let _ = self.cgroups.remove(&self.app_group(app));
        }
        self.bump(Some(app));
    }

    /// The control group of an app's processes.
    fn app_group(&self, app: &str) -> String {
        format!("{}/{app}", self.config.cgroup_parent.trim_matches('/'))
    }

    /// Remove the groups of `apps` and the engine's parent group where
    /// they are empty (removing a group that holds a process or a child
    /// group fails, and is left alone): an engine that stops or hands over
    /// with nothing running leaves no directories behind, which would
    /// otherwise pile up by the thousand and slow every group made next
    /// to them.
    pub(crate) fn remove_idle_groups(&self, apps: &[String]) {
        for app in apps {
            let _ = self.cgroups.remove(&self.app_group(app));
        }
        let _ = self
            .cgroups
            .remove(self.config.cgroup_parent.trim_matches('/'));
    }

    /// Converge one (app, type): ask the lifecycle rules for the next step
    /// and carry it out, until they have nothing more to do right now.
    /// Terminations and starts take effect in the table at once (the new
    /// entries are `starting`, victims `terminating`), the OS work follows
    /// in the supervisors.
    pub(crate) fn reconcile(self: &Arc<Self>, inner: &mut Inner, app: &str, ptype: &str) {
        converge(
            &mut Reconciling {
                shared: self,
                inner,
            },
            app,
            ptype,
        );
    }

    /// Create the entry of a new process (`starting`, no pid yet) and its
    /// supervisor task, which spawns it.
    fn start_process(self: &Arc<Self>, inner: &mut Inner, template: &Arc<ProcessTemplate>) {
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
        let status = new_status(&name, template, Utc::now());
        self.add_process(inner, status, Arc::clone(template), None);
    }

    /// Enter a process in the table (the newest one) and start its
    /// supervisor, which spawns it, or follows it when `adopted`.
    fn add_process(
        self: &Arc<Self>,
        inner: &mut Inner,
        status: ProcessStatus,
        template: Arc<ProcessTemplate>,
        adopted: Option<Adopted>,
    ) {
        let seq = inner.next_seq;
        inner.next_seq += 1;
        let (orders, orders_rx) = watch::channel(Order::Run);
        let name = status.name.clone();
        let entry = inner.apps.entry(template.app.clone()).or_default();
        entry.procs.insert(
            name.clone(),
            Tracked::new(status, Arc::clone(&template), seq, orders, ()),
        );
        self.runtime.spawn(supervisor::supervise(
            Arc::clone(self),
            template.app.clone(),
            name,
            template,
            orders_rx,
            adopted,
        ));
    }
}

/// The table as the reconcile loop of `drycc_engine_runtime` sees it.
pub(crate) struct Reconciling<'a> {
    pub(crate) shared: &'a Arc<Shared>,
    pub(crate) inner: &'a mut Inner,
}

impl Table for Reconciling<'_> {
    type Extra = ();

    fn apps(&self) -> &HashMap<String, AppEntry> {
        &self.inner.apps
    }

    fn apps_mut(&mut self) -> &mut HashMap<String, AppEntry> {
        &mut self.inner.apps
    }

    fn closed(&self) -> bool {
        self.inner.closed
    }

    fn start(&mut self, template: &Arc<ProcessTemplate>) {
        self.shared.start_process(self.inner, template);
    }
}

/// The status of a process of `template` that has not run yet.
fn new_status(name: &str, template: &ProcessTemplate, started: DateTime<Utc>) -> ProcessStatus {
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
        image: None,
    }
}

/// Where a process runs. An unset workdir must not mean "wherever the
/// controller runs".
pub(crate) fn workdir_of(template: &ProcessTemplate) -> &std::path::Path {
    match &template.artifact {
        drycc_engine::Artifact::Checkout { path } if !path.as_os_str().is_empty() => path,
        _ => std::path::Path::new("/"),
    }
}

/// Native processes listen on the host's loopback.
fn endpoint(port: u16) -> std::net::SocketAddr {
    std::net::SocketAddr::from(([127, 0, 0, 1], port))
}
