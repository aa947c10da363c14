//! One task per process: it creates and starts the process's container (or
//! follows one found running), runs its probes, starts the same container
//! again after it died (with the lifecycle back-off, same name, one restart
//! more), and terminates it when asked (SIGTERM, SIGKILL after the grace
//! period, then removal). The process entry lives as long as this task; the
//! task removes it when it ends, except when the engine is released: then
//! it lets go and the container runs on for the next engine.

use std::collections::BTreeMap;
use std::future::pending;
use std::sync::Arc;
use std::time::Duration;

use bollard::query_parameters::{
    CreateContainerOptionsBuilder, KillContainerOptionsBuilder, RemoveContainerOptionsBuilder,
};
use chrono::Utc;
use tokio::sync::watch;
use tokio::time::{sleep, timeout, Instant};

pub(crate) use crate::container::Found;
use crate::container::{self, status_of};
use crate::probe::Target;
use crate::state::Shared;
use drycc_engine::{ProcessState, ProcessTemplate};
use drycc_engine_runtime::orders::{Ended, Order};
use drycc_engine_runtime::probe::{self, Readiness};
use drycc_engine_runtime::status::record_exit;

/// How long a SIGKILLed container may take to be reported gone.
const KILL_WAIT: Duration = Duration::from_secs(30);

/// How many times a start is tried with other host ports when the daemon
/// says the ones promised were taken meanwhile.
const PORT_ATTEMPTS: usize = 3;

/// What one look at a container found.
enum Look {
    Running,
    /// Not running, and why.
    Exited(String),
    /// No such container (any more).
    Gone,
}

/// One supervisor. Everything it needs to know about its process is in the
/// table entry (ports, restarts) or passed here.
pub(crate) async fn supervise(
    shared: Arc<Shared>,
    name: String,
    template: Arc<ProcessTemplate>,
    mut orders: watch::Receiver<Order>,
    found: Option<Found>,
) {
    let app = template.app.clone();
    let Some(mut deaths) = shared.deaths(&app, &name) else {
        return;
    };
    let mut sup = Supervisor {
        shared: Arc::clone(&shared),
        app: app.clone(),
        name: name.clone(),
        template,
        exists: found.is_some(),
        ports: found.as_ref().map(|f| f.ports.clone()).unwrap_or_default(),
        seen: crate::logs::Seen::default(),
    };
    let mut adopted_running = found.as_ref().is_some_and(|f| f.running);
    let mut streak = 0u32;
    loop {
        let order = *orders.borrow();
        if order == Order::Detach {
            return shared.detached(&app, &name);
        }
        // A container found running is followed even when told to stop at
        // once: following it is how it gets terminated.
        if !adopted_running && (order == Order::Terminate || shared.lock().closed) {
            break;
        }
        let began = Instant::now();
        let ended = if adopted_running {
            adopted_running = false;
            sup.adopted(found.as_ref(), &mut orders, &mut deaths).await
        } else {
            sup.run_once(&mut orders, &mut deaths).await
        };
        let (reason, state) = match ended {
            Ended::Stopped => break,
            Ended::Detached => return shared.detached(&app, &name),
            Ended::Exited(reason) => (reason, ProcessState::Crashed),
            Ended::Failed(reason) => (reason, ProcessState::Error),
        };
        let policy = shared.config.backoff;
        streak = policy.next_streak(streak, began.elapsed());
        let delay = policy.delay(streak);
        let crashed = shared.update(&app, &name, |p| {
            record_exit(&mut p.status, p.stopping, &reason, state)
        });
        if crashed != Some(true) || shared.lock().closed {
            if *orders.borrow() == Order::Detach {
                return shared.detached(&app, &name);
            }
            break;
        }
        tracing::info!(%app, process = %name, %state, %reason, delay_ms = delay.as_millis() as u64, "restarting after back-off");
        {
            // A not-ready process may now be the preferred victim.
            let mut inner = shared.lock();
            shared.reconcile(&mut inner, &app, &sup.template.ptype);
        }
        tokio::select! {
            _ = sleep(delay) => {}
            order = orders.wait_for(|o| *o != Order::Run) => match order.map(|o| *o) {
                Ok(Order::Detach) => return shared.detached(&app, &name),
                _ => break,
            },
        }
    }
    sup.remove_container().await;
    shared.remove_proc(&app, &name);
}

struct Supervisor {
    shared: Arc<Shared>,
    app: String,
    name: String,
    template: Arc<ProcessTemplate>,
    /// Whether the container exists on the daemon.
    exists: bool,
    /// Container port -> host port, as the container publishes them.
    ports: BTreeMap<u16, u16>,
    /// The last output line passed on to followers.
    seen: crate::logs::Seen,
}

impl Supervisor {
    /// Follow a container found running when the engine started.
    async fn adopted(
        &mut self,
        found: Option<&Found>,
        orders: &mut watch::Receiver<Order>,
        deaths: &mut watch::Receiver<u64>,
    ) -> Ended {
        let (pid, started, argv) = match found {
            Some(f) => (f.pid, f.started, f.argv.clone()),
            None => (None, Utc::now(), Vec::new()),
        };
        let plan = Readiness::of(&self.template, self.shared.config.readiness_poll);
        let ready_now = matches!(plan, Readiness::Immediate);
        self.shared
            .started(&self.app, &self.name, pid, started, argv, ready_now);
        // Only what it writes from now on: the rest is in `logs`.
        *self.seen.lock().unwrap_or_else(|e| e.into_inner()) = Some(Utc::now());
        crate::logs::spawn_follower(&self.shared, &self.app, &self.name, &self.seen);
        self.follow(plan, orders, deaths).await
    }

    /// Create the container when it does not exist, start it, and follow
    /// it until it exits or an order comes.
    async fn run_once(
        &mut self,
        orders: &mut watch::Receiver<Order>,
        deaths: &mut watch::Receiver<u64>,
    ) -> Ended {
        let mut attempts = 0;
        loop {
            if !self.exists {
                if let Err(reason) = self.create().await {
                    return Ended::Failed(reason);
                }
            }
            if *orders.borrow() != Order::Run {
                // Told to stop (or let go) before it ever ran this time.
                return match *orders.borrow() {
                    Order::Detach => Ended::Detached,
                    _ => Ended::Stopped,
                };
            }
            // Deaths counted from here on are of this run.
            deaths.borrow_and_update();
            match self.shared.docker.start_container(&self.name, None).await {
                Ok(()) => break,
                Err(e) if status_of(&e) == Some(304) => break,
                Err(e) if status_of(&e) == Some(404) => {
                    self.exists = false;
                    return Ended::Failed(format!("its container vanished: {e}"));
                }
                Err(e) if is_port_taken(&e.to_string()) && attempts < PORT_ATTEMPTS => {
                    // Another program took a promised host port: the
                    // bindings are fixed at creation, so create it anew.
                    attempts += 1;
                    tracing::info!(process = %self.name, error = %e, "a host port was taken; creating the container with others");
                    self.remove_container().await;
                    let ports = std::mem::take(&mut self.ports);
                    self.shared.release_ports(ports.into_values());
                }
                Err(e) => return Ended::Failed(format!("could not start: {}", message_of(&e))),
            }
        }
        let inspect = self.shared.docker.inspect_container(&self.name, None).await;
        let (pid, started, argv) = match &inspect {
            Ok(i) => {
                let state = i.state.clone().unwrap_or_default();
                let mut argv: Vec<String> = i.path.iter().cloned().collect();
                argv.extend(i.args.clone().unwrap_or_default());
                (
                    container::pid_of(&state),
                    container::started_of(&state).unwrap_or_else(Utc::now),
                    argv,
                )
            }
            Err(_) => (
                None,
                Utc::now(),
                container::argv_of(&self.template, &self.name),
            ),
        };
        let plan = Readiness::of(&self.template, self.shared.config.readiness_poll);
        let ready_now = matches!(plan, Readiness::Immediate);
        self.shared
            .started(&self.app, &self.name, pid, started, argv, ready_now);
        crate::logs::spawn_follower(&self.shared, &self.app, &self.name, &self.seen);
        self.follow(plan, orders, deaths).await
    }

    /// Create the container, with host ports promised for its ports.
    async fn create(&mut self) -> Result<(), String> {
        let needed = container::container_ports(&self.template);
        if needed.iter().any(|p| !self.ports.contains_key(p)) {
            let old = std::mem::take(&mut self.ports);
            self.shared.release_ports(old.into_values());
            let hosts = self
                .shared
                .assign_ports(needed.len())
                .map_err(|e| format!("no host port: {e}"))?;
            self.ports = needed.iter().copied().zip(hosts).collect();
        }
        let port = container::port_of(&self.template);
        self.shared
            .set_ports(&self.app, &self.name, self.ports.clone(), port);
        let restarts = self
            .shared
            .lock()
            .apps
            .get(&self.app)
            .and_then(|a| a.procs.get(&self.name))
            .map_or(0, |p| p.status.restarts);
        let config = &self.shared.config;
        let setup = container::Setup {
            instance: &config.instance,
            slug_image: config.slug_image.as_deref(),
            init: config.init,
        };
        let body =
            container::create_body(&self.template, &self.name, &setup, &self.ports, restarts)
                .map_err(|e| e.to_string())?;
        let options = CreateContainerOptionsBuilder::new()
            .name(&self.name)
            .build();
        let docker = &self.shared.docker;
        let created = match docker
            .create_container(Some(options.clone()), body.clone())
            .await
        {
            Err(e) if status_of(&e) == Some(404) => {
                // The image went away since `apply` saw it: pull it again.
                let reference = body.image.clone();
                if let Some(reference) = reference {
                    container::image_gone(&self.shared, &reference);
                    let login = container::credentials_of(&self.template);
                    container::ensure_image(&self.shared, &reference, login)
                        .await
                        .map_err(|e| e.to_string())?;
                }
                docker.create_container(Some(options), body).await
            }
            other => other,
        };
        match created {
            Ok(_) => {
                self.exists = true;
                Ok(())
            }
            Err(e) => Err(format!(
                "could not create its container: {}",
                message_of(&e)
            )),
        }
    }

    /// Follow the running container until it exits, fails its liveness
    /// probe, or an order comes.
    async fn follow(
        &mut self,
        plan: Readiness,
        orders: &mut watch::Receiver<Order>,
        deaths: &mut watch::Receiver<u64>,
    ) -> Ended {
        let shared = Arc::clone(&self.shared);
        let (app, name) = (self.app.clone(), self.name.clone());
        let port = container::port_of(&self.template);
        let target = Target {
            docker: &shared.docker,
            container: &name,
            ports: &self.ports,
            port,
            settle: shared.config.proxy_settle,
        };
        let template = Arc::clone(&self.template);
        let monitor = async {
            let readiness =
                probe::readiness_loop(&plan, &target, |ready| shared.set_ready(&app, &name, ready));
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
            Exit(Look),
            Order(Order),
            Liveness,
        }
        let why = tokio::select! {
            look = wait_exit(&shared, &name, deaths, shared.config.recheck) => Why::Exit(look),
            order = orders.wait_for(|o| *o != Order::Run) => Why::Order(order.map(|o| *o).unwrap_or(Order::Terminate)),
            _ = monitor => Why::Liveness,
        };
        match why {
            Why::Exit(Look::Exited(reason)) => Ended::Exited(reason),
            Why::Exit(Look::Gone) => {
                self.exists = false;
                Ended::Exited("its container was removed by someone else".to_string())
            }
            Why::Exit(Look::Running) => Ended::Exited("unknown".to_string()),
            Why::Order(Order::Detach) | Why::Order(Order::Run) => Ended::Detached,
            Why::Order(Order::Terminate) => {
                let reason = self.terminate(deaths).await;
                shared.update(&app, &name, |p| {
                    p.status.pid = None;
                    p.status.last_exit = Some(reason.unwrap_or_else(|| "terminated".into()));
                });
                Ended::Stopped
            }
            Why::Liveness => {
                tracing::info!(%app, process = %name, "failed its liveness probe; restarting it");
                self.terminate(deaths).await;
                Ended::Exited("liveness probe failed".to_string())
            }
        }
    }

    /// SIGTERM; SIGKILL once the grace period has passed. Returns why the
    /// container stopped, when known.
    async fn terminate(&mut self, deaths: &mut watch::Receiver<u64>) -> Option<String> {
        let shared = Arc::clone(&self.shared);
        let grace = self.template.grace_period;
        let recheck = shared.config.recheck;
        if let Some(done) = self.kill("SIGTERM").await {
            return done;
        }
        if let Ok(look) = timeout(grace, wait_exit(&shared, &self.name, deaths, recheck)).await {
            return self.ended(look);
        }
        tracing::info!(app = %self.app, process = %self.name, grace_ms = grace.as_millis() as u64, "did not exit within its grace period after SIGTERM; sending SIGKILL");
        if let Some(done) = self.kill("SIGKILL").await {
            return done;
        }
        match timeout(KILL_WAIT, wait_exit(&shared, &self.name, deaths, recheck)).await {
            Ok(look) => self.ended(look),
            Err(_) => None,
        }
    }

    /// Send a signal; `Some` when the container is not running any more
    /// (with why, when known).
    async fn kill(&mut self, signal: &str) -> Option<Option<String>> {
        let options = KillContainerOptionsBuilder::new().signal(signal).build();
        match self
            .shared
            .docker
            .kill_container(&self.name, Some(options))
            .await
        {
            Ok(()) => None,
            Err(e) if status_of(&e) == Some(404) => {
                self.exists = false;
                Some(None)
            }
            // 409: not running.
            Err(e) if status_of(&e) == Some(409) => Some(
                look(&self.shared, &self.name)
                    .await
                    .ok()
                    .and_then(|l| self.ended(l)),
            ),
            Err(e) => {
                tracing::warn!(process = %self.name, %signal, error = %e, "could not signal a container");
                None
            }
        }
    }

    fn ended(&mut self, look: Look) -> Option<String> {
        match look {
            Look::Exited(reason) => Some(reason),
            Look::Gone => {
                self.exists = false;
                None
            }
            Look::Running => None,
        }
    }

    /// Remove the container (killing it if it still runs).
    async fn remove_container(&mut self) {
        if !self.exists {
            return;
        }
        let options = RemoveContainerOptionsBuilder::new().force(true).build();
        match self
            .shared
            .docker
            .remove_container(&self.name, Some(options))
            .await
        {
            Ok(()) => self.exists = false,
            Err(e) if status_of(&e) == Some(404) => self.exists = false,
            // Already being removed (a concurrent `stop_all` sweep).
            Err(e) if status_of(&e) == Some(409) => self.exists = false,
            Err(e) => {
                tracing::warn!(process = %self.name, error = %e, "could not remove a container");
            }
        }
    }
}

/// Whether the daemon refused a start because a host port is taken.
fn is_port_taken(message: &str) -> bool {
    message.contains("port is already allocated") || message.contains("address already in use")
}

/// The daemon's own words, without bollard's wrapping.
fn message_of(e: &bollard::errors::Error) -> String {
    match e {
        bollard::errors::Error::DockerResponseServerError { message, .. } => message.clone(),
        other => other.to_string(),
    }
}

/// Look at a container once.
async fn look(shared: &Shared, name: &str) -> Result<Look, bollard::errors::Error> {
    match shared.docker.inspect_container(name, None).await {
        Ok(inspect) => {
            let state = inspect.state.unwrap_or_default();
            if state.running == Some(true) {
                Ok(Look::Running)
            } else if shared.take_oom(name) {
                Ok(Look::Exited("OOMKilled".to_string()))
            } else {
                Ok(Look::Exited(container::exit_reason(&state)))
            }
        }
        Err(e) if status_of(&e) == Some(404) => Ok(Look::Gone),
        Err(e) => Err(e),
    }
}

/// Wait until the container is not running: looked at on every death
/// event, and every `recheck` in case an event was missed.
async fn wait_exit(
    shared: &Shared,
    name: &str,
    deaths: &mut watch::Receiver<u64>,
    recheck: Duration,
) -> Look {
    loop {
        match look(shared, name).await {
            Ok(Look::Running) => {}
            Ok(other) => return other,
            Err(e) => {
                tracing::debug!(process = %name, error = %e, "could not inspect a container");
            }
        }
        tokio::select! {
            changed = deaths.changed() => {
                if changed.is_err() {
                    sleep(recheck).await;
                }
            }
            _ = sleep(recheck) => {}
        }
    }
}
