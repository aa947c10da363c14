//! What the local engine adds to the process table of
//! `drycc_engine_runtime` (its `Host`): the settings, the log store, the
//! control groups and the exec sessions, how one native process runs
//! (`runner`), and `adopt`, which enters the processes a previous
//! controller recorded.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use drycc_engine::{Env, ProcessState, ProcessTemplate};
use drycc_engine_runtime::ports::Ports;
use drycc_engine_runtime::table::Tracked;
use drycc_engine_runtime::{new_status, Host, Policy, ProcessTable};

use super::logs::LogStore;
use super::runner::{Adopted, LocalRunner};
use super::{os, runtime, LocalConfig};

/// The table of the local engine, shared by its handle and every
/// supervisor task; it dereferences to [`Local`].
pub(crate) type Shared = ProcessTable<Local>;

/// What the local engine keeps beside its table.
pub(crate) struct Local {
    pub(crate) config: LocalConfig,
    pub(crate) logs: Arc<LogStore>,
    /// Process groups of running exec sessions, killed at shutdown.
    execs: Mutex<HashSet<u32>>,
    /// Control groups: limits, usage, OOM kills, killing what escaped.
    pub(crate) cgroups: Arc<dyn drycc_cgroups::Cgroups>,
}

impl Host for Local {
    const NAME: &'static str = "the local engine";
    type Extra = ();
    type Found = Adopted;
    type Runner = LocalRunner;

    fn runner(table: &Arc<Shared>, proc: &Tracked<()>, found: Option<Adopted>) -> LocalRunner {
        LocalRunner::new(table, &proc.status.name, &proc.template, found)
    }

    fn note(&self, app: &str, text: &str) {
        self.logs.event(app, text);
    }

    fn process_gone(&self, app: &str, name: &str) {
        self.logs.ended(app, name);
    }

    fn app_gone(&self, app: &str) {
        self.logs.forget(app);
        let _ = self.cgroups.remove(&self.app_group(app));
    }
}

/// The table of a new local engine.
pub(crate) fn new_shared(config: LocalConfig, runtime: tokio::runtime::Handle) -> Shared {
    let cgroups = drycc_cgroups::detect(&config.cgroup_parent);
    if let Err(reason) = cgroups.enforced() {
        tracing::warn!(%reason, "CPU and memory limits are recorded but not enforced");
    }
    let logs = Arc::new(LogStore::new(
        config.log_dir(),
        config.log_file_bytes,
        config.max_log_line,
    ));
    if let Err(e) = super::logs::start_watcher(Arc::downgrade(&logs)) {
        tracing::error!(error = %e, "could not start the log watcher: log files are not bounded");
    }
    let policy = Policy {
        backoff: config.crash_backoff,
        readiness_poll: config.readiness_poll,
    };
    let ports = Ports::new(config.process_ports.clone());
    let local = Local {
        config,
        logs,
        execs: Mutex::new(HashSet::new()),
        cgroups,
    };
    ProcessTable::new(local, policy, ports, runtime)
}

impl Local {
    /// The control group of a process.
    pub(crate) fn cgroup_of(&self, app: &str, name: &str) -> String {
        format!(
            "{}/{app}/{name}",
            self.config.cgroup_parent.trim_matches('/')
        )
    }

    /// The control group of an app's processes.
    fn app_group(&self, app: &str) -> String {
        format!("{}/{app}", self.config.cgroup_parent.trim_matches('/'))
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
}

/// Take over the processes a previous controller recorded: the live ones
/// are followed as they run, the dead ones restarted at once (same name,
/// one restart more), as after a crash. Returns how many were alive.
pub(crate) fn adopt(shared: &Arc<Shared>, mut records: Vec<runtime::Record>) -> usize {
    records.sort_by_key(|r| r.started);
    let mut inner = shared.lock();
    let mut alive_count = 0;
    for mut record in records {
        if record.pid == 0 {
            // Spawned (or about to be) when the last controller died.
            if let Some(pid) = runtime::find_spawned(&record.name) {
                record.pid = pid;
                record.start_time = os::start_time(pid).unwrap_or(0);
                runtime::write(&shared.config.run_dir, &record);
            }
        }
        let alive = runtime::is_alive(&record);
        alive_count += usize::from(alive);
        shared.ports.claim(record.port);
        let template = Arc::new(record.template);
        let mut status = new_status(&record.name, &template, None, record.started);
        status.restarts = record.restarts + u32::from(!alive);
        status.endpoint = Some(endpoint(record.port));
        if alive {
            status.pid = Some(record.pid);
        } else {
            status.state = ProcessState::Crashed;
            status.last_exit = Some("exited while no controller was running".to_string());
        }
        let found = Adopted {
            pid: record.pid,
            port: record.port,
            alive,
        };
        shared.add_process(&mut inner, status, template, (), Some(found), alive);
    }
    drop(inner);
    shared.bump(None);
    alive_count
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
pub(crate) fn endpoint(port: u16) -> std::net::SocketAddr {
    std::net::SocketAddr::from(([127, 0, 0, 1], port))
}
