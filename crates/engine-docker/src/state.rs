//! The process table of the Docker engine and the reconciling glue: desired
//! deployments per (app, type), one entry per process (one container; the
//! entries of `drycc_engine_runtime::table` with the container's ports), the
//! host ports promised to them, and `reconcile`, which runs
//! `drycc_engine_runtime::reconcile` (the rules of `drycc_model::lifecycle`)
//! on the table. Everything here runs under one short-held mutex; Docker calls happen
//! in the per-process supervisor tasks.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::sync::{Arc, Mutex, MutexGuard};

use bollard::Docker;
use chrono::{DateTime, Utc};
use drycc_engine_changes::Changes;
use drycc_engine_runtime::reconcile::converge;
use drycc_engine_runtime::table::{Table, Tracked};
use drycc_engine_runtime::usage::CpuSamples;
use drycc_model::naming;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::container::{self, Found};
use crate::logs::LogHub;
use crate::supervisor;
use crate::DockerConfig;
use drycc_engine::{ProcessState, ProcessStatus, ProcessTemplate};
use drycc_engine_runtime::orders::Order;

/// State shared by the engine handle and every task.
pub(crate) struct Shared {
    pub(crate) config: DockerConfig,
    pub(crate) docker: Docker,
    state: Mutex<Inner>,
    changes: Changes,
    pub(crate) logs: LogHub,
    /// The last CPU reading of each container (for usage in millicores).
    pub(crate) cpu_samples: CpuSamples,
    /// Supervisors, log followers and the event watcher.
    pub(crate) tasks: TaskTracker,
    /// Cancelled when the engine is released or stopped: background tasks
    /// that only watch (events, log followers) end.
    pub(crate) cancel: CancellationToken,
    /// Image references known to be on the daemon.
    pub(crate) images: Mutex<HashSet<String>>,
    /// Containers the kernel's OOM killer hit since they last started: the
    /// daemon's `oom` event, as its `OOMKilled` flag is not always set
    /// when the killer picks a child of the container's init.
    pub(crate) oom_killed: Mutex<HashSet<String>>,
}

#[derive(Default)]
pub(crate) struct Inner {
    pub(crate) apps: HashMap<String, AppEntry>,
    /// Host ports promised to existing processes; never handed out twice.
    ports: HashSet<u16>,
    /// Where the round-robin search for a free host port goes on.
    next_port: u16,
    /// Creation order of processes ("newest" for scale-down victims).
    next_seq: u64,
    /// Set by `stop_all` and `close`: nothing starts or restarts any more.
    pub(crate) closed: bool,
}

pub(crate) use drycc_engine_runtime::table::Desired;

pub(crate) type AppEntry = drycc_engine_runtime::table::AppEntry<Container>;
pub(crate) type Proc = Tracked<Container>;

/// What the Docker engine adds to a process entry.
pub(crate) struct Container {
    /// Bumped by the event watcher when its container dies.
    pub(crate) died: watch::Sender<u64>,
    /// Container port -> host port on 127.0.0.1.
    pub(crate) ports: BTreeMap<u16, u16>,
}

impl Shared {
    pub(crate) fn new(config: DockerConfig, docker: Docker) -> Self {
        let ports = config.host_ports.clone();
        let next_port = if ports.is_empty() {
            *ports.start()
        } else {
            rand::Rng::gen_range(&mut rand::thread_rng(), ports)
        };
        let logs = LogHub::new(config.follow_buffer);
        Shared {
            config,
            docker,
            state: Mutex::new(Inner {
                // Engines on one daemon share the range: each starts its
                // round robin somewhere else.
                next_port,
                ..Inner::default()
            }),
            changes: Changes::default(),
            logs,
            cpu_samples: CpuSamples::default(),
            tasks: TaskTracker::new(),
            cancel: CancellationToken::new(),
            images: Mutex::new(HashSet::new()),
            oom_killed: Mutex::new(HashSet::new()),
        }
    }

    /// The table. Poisoning is ignored: every critical section leaves the
    /// table consistent before anything that could panic.
    pub(crate) fn lock(&self) -> MutexGuard<'_, Inner> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn process_count(&self) -> usize {
        self.lock().apps.values().map(|e| e.procs.len()).sum()
    }

    /// Publish a change of `app`.
    pub(crate) fn bump(&self, app: &str) {
        self.changes.bump(Some(app));
    }

    pub(crate) fn subscribe_changes(&self, app: Option<&str>) -> watch::Receiver<u64> {
        self.changes.subscribe(app)
    }

    /// Promise free host ports for `count` container ports: ports of the
    /// configured range that nothing listens on (checked by binding) and
    /// that no process of this engine holds.
    pub(crate) fn assign_ports(&self, count: usize) -> std::io::Result<Vec<u16>> {
        let mut inner = self.lock();
        let range = self.config.host_ports.clone();
        let size = usize::from(range.end().saturating_sub(*range.start())) + 1;
        let mut found = Vec::with_capacity(count);
        let mut cursor = inner.next_port;
        for _ in 0..size {
            if found.len() == count {
                break;
            }
            let port = cursor;
            cursor = if cursor >= *range.end() {
                *range.start()
            } else {
                cursor + 1
            };
            if !range.contains(&port) || inner.ports.contains(&port) || found.contains(&port) {
                continue;
            }
            if TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok() {
                found.push(port);
            }
        }
        if found.len() < count {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AddrNotAvailable,
                format!(
                    "no free host port left in {}-{}",
                    range.start(),
                    range.end()
                ),
            ));
        }
        inner.next_port = cursor;
        inner.ports.extend(found.iter().copied());
        Ok(found)
    }

    /// Give back host ports (their container is gone or got others).
    pub(crate) fn release_ports(&self, ports: impl IntoIterator<Item = u16>) {
        let mut inner = self.lock();
        for port in ports {
            inner.ports.remove(&port);
        }
    }

    /// Apply `f` to a process's entry, then publish the change. Returns
    /// `None` when the process is gone.
    pub(crate) fn update<R>(
        &self,
        app: &str,
        name: &str,
        f: impl FnOnce(&mut Proc) -> R,
    ) -> Option<R> {
        let mut inner = self.lock();
        let proc = inner.apps.get_mut(app)?.procs.get_mut(name)?;
        let result = f(proc);
        drop(inner);
        self.bump(app);
        Some(result)
    }

    /// A run of the container began (or was adopted): record its pid,
    /// start, ports and command, and its readiness when it needs no check.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn started(
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
        self.bump(app);
    }

    /// Readiness changed: publish, and let the deployment move on (a ready
    /// process may allow an old one to go).
    pub(crate) fn set_ready(self: &Arc<Self>, app: &str, name: &str, ready: bool) {
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
        self.bump(app);
    }

    /// Host ports of a process changed (its container was created anew).
    pub(crate) fn set_ports(&self, app: &str, name: &str, ports: BTreeMap<u16, u16>, port: u16) {
        self.update(app, name, |p| {
            p.status.endpoint = ports
                .get(&port)
                .map(|host| SocketAddr::from((Ipv4Addr::LOCALHOST, *host)));
            p.ports = ports;
        });
    }

    /// The supervisor let go of its process (engine released): forget the
    /// entry, leave the container alone.
    pub(crate) fn detached(&self, app: &str, name: &str) {
        let mut inner = self.lock();
        if let Some(entry) = inner.apps.get_mut(app) {
            if let Some(proc) = entry.procs.remove(name) {
                for port in proc.ports.values() {
                    inner.ports.remove(port);
                }
            }
        }
        drop(inner);
        self.bump(app);
    }

    /// The supervisor of a process is done (its container is gone): forget
    /// the process, free its ports, and let the deployment fill the gap.
    pub(crate) fn remove_proc(self: &Arc<Self>, app: &str, name: &str) {
        let mut inner = self.lock();
        let removed = inner.apps.get_mut(app).and_then(|e| e.procs.remove(name));
        if let Some(proc) = removed {
            for port in proc.ports.values() {
                inner.ports.remove(port);
            }
            self.reconcile(&mut inner, app, &proc.status.ptype);
        }
        let mut forget = false;
        if let Some(entry) = inner.apps.get(app) {
            if entry.removed && entry.procs.is_empty() && entry.types.is_empty() {
                inner.apps.remove(app);
                forget = true;
            }
        }
        drop(inner);
        self.cpu_samples.forget(name);
        if forget {
            self.logs.forget(app);
        }
        self.bump(app);
    }

    /// Take over a container found on the daemon: enter it in the table
    /// (the newest process) and start its supervisor, which follows it as
    /// it runs, or starts it again when it is not running.
    pub(crate) fn adopt(self: &Arc<Self>, found: Found) {
        let mut inner = self.lock();
        for port in found.ports.values() {
            inner.ports.insert(*port);
        }
        let template = Arc::new(found.template.clone());
        let mut status = new_status(
            &found.name,
            &template,
            found.image.as_deref(),
            found.started,
        );
        // One that died while no engine watched is started again now: a
        // restart like any other.
        status.restarts = found.restarts + u32::from(found.exit.is_some());
        status.endpoint = endpoint_of(&template, &found.ports);
        status.argv = found.argv.clone();
        if let Some(exit) = &found.exit {
            status.state = ProcessState::Crashed;
            status.last_exit = Some(exit.clone());
        }
        let ports = found.ports.clone();
        self.add_process(&mut inner, status, template, ports, Some(found));
    }

    /// Wake every supervisor to look at its container again (events may
    /// have been missed while the event stream was down).
    pub(crate) fn recheck_all(&self) {
        let inner = self.lock();
        for entry in inner.apps.values() {
            for proc in entry.procs.values() {
                proc.died.send_modify(|n| *n = n.wrapping_add(1));
            }
        }
    }

    /// The container of a process died (an event said so).
    /// The daemon said the OOM killer hit container `name`.
    pub(crate) fn oom(&self, name: &str) {
        self.oom_killed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.to_string());
    }

    /// Whether the OOM killer hit `name` since it was last asked.
    pub(crate) fn take_oom(&self, name: &str) -> bool {
        self.oom_killed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name)
    }

    pub(crate) fn died(&self, app: &str, name: &str) {
        let inner = self.lock();
        if let Some(proc) = inner.apps.get(app).and_then(|e| e.procs.get(name)) {
            proc.died.send_modify(|n| *n = n.wrapping_add(1));
        }
    }

    /// A receiver of the death counter of a process.
    pub(crate) fn deaths(&self, app: &str, name: &str) -> Option<watch::Receiver<u64>> {
        let inner = self.lock();
        inner
            .apps
            .get(app)
            .and_then(|e| e.procs.get(name))
            .map(|p| p.died.subscribe())
    }

    /// Converge one (app, type): ask the lifecycle rules for the next step
    /// and carry it out, until they have nothing more to do right now.
    /// Terminations and starts take effect in the table at once (the new
    /// entries are `starting`, victims `terminating`); the Docker work
    /// follows in the supervisors.
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

    /// Create the entry of a new process (`starting`, no container yet) and
    /// its supervisor task, which creates and starts the container.
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
        let image = container::image_ref(template, self.config.slug_image.as_deref());
        let status = new_status(&name, template, image, Utc::now());
        self.add_process(inner, status, Arc::clone(template), BTreeMap::new(), None);
    }

    /// Enter a process in the table (the newest one) and start its
    /// supervisor.
    fn add_process(
        self: &Arc<Self>,
        inner: &mut Inner,
        status: ProcessStatus,
        template: Arc<ProcessTemplate>,
        ports: BTreeMap<u16, u16>,
        found: Option<Found>,
    ) {
        let seq = inner.next_seq;
        inner.next_seq += 1;
        let (orders, orders_rx) = watch::channel(Order::Run);
        let name = status.name.clone();
        let entry = inner.apps.entry(template.app.clone()).or_default();
        entry.procs.insert(
            name.clone(),
            Tracked::new(
                status,
                Arc::clone(&template),
                seq,
                orders,
                Container {
                    died: watch::channel(0).0,
                    ports,
                },
            ),
        );
        self.tasks.spawn(supervisor::supervise(
            Arc::clone(self),
            name,
            template,
            orders_rx,
            found,
        ));
    }
}

/// The table as the reconcile loop of `drycc_engine_runtime` sees it.
pub(crate) struct Reconciling<'a> {
    pub(crate) shared: &'a Arc<Shared>,
    pub(crate) inner: &'a mut Inner,
}

impl Table for Reconciling<'_> {
    type Extra = Container;

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

/// Where the router reaches a process: its `PORT` as published.
pub(crate) fn endpoint_of(
    template: &ProcessTemplate,
    ports: &BTreeMap<u16, u16>,
) -> Option<SocketAddr> {
    ports
        .get(&container::port_of(template))
        .map(|host| SocketAddr::from((Ipv4Addr::LOCALHOST, *host)))
}

/// The status of a process of `template` that has not run yet, whose
/// container is made of `image`.
fn new_status(
    name: &str,
    template: &ProcessTemplate,
    image: Option<&str>,
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
        image: image.map(str::to_string),
    }
}
