//! What the Docker engine adds to the process table of
//! `drycc_engine_runtime` (its `Host`): the daemon, the settings, the log
//! hub, the images known to be there, the OOM events; what a process entry
//! carries (its container's published ports and a death counter the event
//! watcher bumps); and `adopt`, which enters a container found on the
//! daemon.

use std::collections::{BTreeMap, HashSet};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};

use bollard::Docker;
use drycc_engine::{ProcessState, ProcessTemplate};
use drycc_engine_runtime::ports::Ports;
use drycc_engine_runtime::table::Tracked;
use drycc_engine_runtime::{new_status, Host, Policy, ProcessTable};
use tokio::sync::watch;

use crate::container::{self, Found};
use crate::logs::LogHub;
use crate::runner::DockerRunner;
use crate::DockerConfig;

/// The table of the Docker engine, shared by its handle and every task; it
/// dereferences to [`Daemon`].
pub(crate) type Shared = ProcessTable<Daemon>;

/// What the Docker engine keeps beside its table.
pub(crate) struct Daemon {
    pub(crate) config: DockerConfig,
    pub(crate) docker: Docker,
    pub(crate) logs: LogHub,
    /// Image references known to be on the daemon.
    pub(crate) images: Mutex<HashSet<String>>,
    /// Containers the kernel's OOM killer hit since they last started: the
    /// daemon's `oom` event, as its `OOMKilled` flag is not always set
    /// when the killer picks a child of the container's init.
    oom_killed: Mutex<HashSet<String>>,
}

/// What the Docker engine adds to a process entry.
pub(crate) struct Container {
    /// Bumped by the event watcher when its container dies.
    pub(crate) died: watch::Sender<u64>,
    /// Container port -> host port on 127.0.0.1.
    pub(crate) ports: BTreeMap<u16, u16>,
}

impl Default for Container {
    fn default() -> Self {
        Container {
            died: watch::channel(0).0,
            ports: BTreeMap::new(),
        }
    }
}

impl Host for Daemon {
    const NAME: &'static str = "the Docker engine";
    type Extra = Container;
    type Found = Found;
    type Runner = DockerRunner;

    fn runner(
        table: &Arc<Shared>,
        proc: &Tracked<Container>,
        found: Option<Found>,
    ) -> DockerRunner {
        DockerRunner::new(table, proc, found)
    }

    fn note(&self, app: &str, text: &str) {
        self.logs.note(app, text);
    }

    fn image(&self, template: &ProcessTemplate) -> Option<String> {
        container::image_ref(template, self.config.slug_image.as_deref()).map(str::to_string)
    }

    fn app_gone(&self, app: &str) {
        self.logs.forget(app);
    }
}

/// The table of a new Docker engine.
pub(crate) fn new_shared(config: DockerConfig, docker: Docker) -> Shared {
    let policy = Policy {
        backoff: config.backoff,
        readiness_poll: config.readiness_poll,
    };
    // Engines on one daemon share the range: each starts its round robin
    // somewhere else.
    let ports = Ports::new(config.host_ports.clone());
    let daemon = Daemon {
        logs: LogHub::new(config.follow_buffer),
        config,
        docker,
        images: Mutex::new(HashSet::new()),
        oom_killed: Mutex::new(HashSet::new()),
    };
    ProcessTable::new(daemon, policy, ports, tokio::runtime::Handle::current())
}

impl Daemon {
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
}

/// Take over a container found on the daemon: enter it in the table (the
/// newest process) and start its supervisor, which follows it as it runs,
/// or starts it again when it is not running.
pub(crate) fn adopt(shared: &Arc<Shared>, found: Found) {
    let mut inner = shared.lock();
    for port in found.ports.values() {
        shared.ports.claim(*port);
    }
    let template = Arc::new(found.template.clone());
    let mut status = new_status(&found.name, &template, found.image.clone(), found.started);
    // One that died while no engine watched is started again now: a
    // restart like any other.
    status.restarts = found.restarts + u32::from(found.exit.is_some());
    status.endpoint = endpoint_of(&template, &found.ports);
    status.argv = found.argv.clone();
    if let Some(exit) = &found.exit {
        status.state = ProcessState::Crashed;
        status.last_exit = Some(exit.clone());
    }
    let extra = Container {
        ports: found.ports.clone(),
        ..Container::default()
    };
    let running = found.running;
    shared.add_process(&mut inner, status, template, extra, Some(found), running);
}

/// Wake every supervisor to look at its container again (events may have
/// been missed while the event stream was down).
pub(crate) fn recheck_all(shared: &Shared) {
    let inner = shared.lock();
    for proc in inner.apps.values().flat_map(|e| e.procs.values()) {
        proc.died.send_modify(|n| *n = n.wrapping_add(1));
    }
}

/// The container of a process died (an event said so).
pub(crate) fn died(shared: &Shared, app: &str, name: &str) {
    let inner = shared.lock();
    if let Some(proc) = inner.apps.get(app).and_then(|e| e.procs.get(name)) {
        proc.died.send_modify(|n| *n = n.wrapping_add(1));
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
