//! How one process runs as a container, for the supervisor of
//! `drycc_engine_runtime` (a `Runner`): its container created (with host
//! ports promised for its ports) and started, or one found running
//! followed as it is; a crashed container is started again as it is (same
//! name, same container). Deaths come from the daemon's `die` events (one
//! watcher task), checked with `inspect`, with a slow re-inspection as a
//! safety net. When the process is gone for good its container is removed.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bollard::query_parameters::{
    CreateContainerOptionsBuilder, KillContainerOptionsBuilder, RemoveContainerOptionsBuilder,
};
use chrono::Utc;
use tokio::sync::watch;
use tokio::time::sleep;

use crate::container::{self, status_of, Found};
use crate::probe::Target;
use crate::state::{Container, Shared};
use drycc_engine::ProcessTemplate;
use drycc_engine_runtime::table::Tracked;
use drycc_engine_runtime::{Run, Runner, Signal};

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

/// The runner of one container.
pub(crate) struct DockerRunner {
    shared: Arc<Shared>,
    app: String,
    name: String,
    template: Arc<ProcessTemplate>,
    /// A container found running when the engine started, to follow first.
    found: Option<Found>,
    /// Whether the container exists on the daemon.
    exists: bool,
    /// Whether the current run's container runs (as far as we know).
    running: bool,
    /// Container port -> host port, as the container publishes them.
    ports: BTreeMap<u16, u16>,
    /// Bumped when the daemon says the container died.
    deaths: watch::Receiver<u64>,
    /// The last output line passed on to followers.
    seen: crate::logs::Seen,
}

impl DockerRunner {
    pub(crate) fn new(
        shared: &Arc<Shared>,
        proc: &Tracked<Container>,
        found: Option<Found>,
    ) -> DockerRunner {
        DockerRunner {
            shared: Arc::clone(shared),
            app: proc.template.app.clone(),
            name: proc.status.name.clone(),
            template: Arc::clone(&proc.template),
            exists: found.is_some(),
            running: false,
            ports: found.as_ref().map(|f| f.ports.clone()).unwrap_or_default(),
            found: found.filter(|f| f.running),
            deaths: proc.died.subscribe(),
            seen: crate::logs::Seen::default(),
        }
    }

    /// The checks of its probes, through its published ports.
    fn checker(&self) -> Target {
        Target {
            docker: self.shared.docker.clone(),
            container: self.name.clone(),
            ports: self.ports.clone(),
            port: container::port_of(&self.template),
            settle: self.shared.config.proxy_settle,
        }
    }

    /// Follow a container found running when the engine started.
    fn take_over(&mut self, found: Found) -> Run<Target> {
        // Only what it writes from now on: the rest is in `logs`.
        *self.seen.lock().unwrap_or_else(|e| e.into_inner()) = Some(Utc::now());
        crate::logs::spawn_follower(&self.shared, &self.app, &self.name, &self.seen);
        self.running = true;
        Run {
            pid: found.pid,
            started: found.started,
            argv: found.argv,
            checker: self.checker(),
        }
    }

    /// Create the container when it does not exist, and start it.
    async fn start_container(&mut self) -> Result<Run<Target>, String> {
        let mut attempts = 0;
        loop {
            if !self.exists {
                self.create().await?;
            }
            // Deaths counted from here on are of this run.
            self.deaths.borrow_and_update();
            match self.shared.docker.start_container(&self.name, None).await {
                Ok(()) => break,
                Err(e) if status_of(&e) == Some(304) => break,
                Err(e) if status_of(&e) == Some(404) => {
                    self.exists = false;
                    return Err(format!("its container vanished: {e}"));
                }
                Err(e) if is_port_taken(&e.to_string()) && attempts < PORT_ATTEMPTS => {
                    // Another program took a promised host port: the
                    // bindings are fixed at creation, so create it anew.
                    attempts += 1;
                    tracing::info!(process = %self.name, error = %e, "a host port was taken; creating the container with others");
                    self.remove_container().await;
                    let ports = std::mem::take(&mut self.ports);
                    self.shared.ports.release(ports.into_values());
                }
                Err(e) => return Err(format!("could not start: {}", message_of(&e))),
            }
        }
        self.running = true;
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
        crate::logs::spawn_follower(&self.shared, &self.app, &self.name, &self.seen);
        Ok(Run {
            pid,
            started,
            argv,
            checker: self.checker(),
        })
    }

    /// Create the container, with host ports promised for its ports.
    async fn create(&mut self) -> Result<(), String> {
        let needed = container::container_ports(&self.template);
        if needed.iter().any(|p| !self.ports.contains_key(p)) {
            let old = std::mem::take(&mut self.ports);
            self.shared.ports.release(old.into_values());
            let hosts = self
                .shared
                .ports
                .take(needed.len())
                .map_err(|e| format!("no host port: {e}"))?;
            self.ports = needed.iter().copied().zip(hosts).collect();
        }
        let (ports, port) = (self.ports.clone(), container::port_of(&self.template));
        self.shared.update(&self.app, &self.name, |p| {
            p.status.endpoint = ports
                .get(&port)
                .map(|host| SocketAddr::from((Ipv4Addr::LOCALHOST, *host)));
            p.ports = ports;
        });
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

impl Runner for DockerRunner {
    type Checker = Target;

    async fn start(&mut self) -> Result<Run<Target>, String> {
        match self.found.take() {
            Some(found) => Ok(self.take_over(found)),
            None => self.start_container().await,
        }
    }

    async fn wait(&mut self) -> String {
        let recheck = self.shared.config.recheck;
        let look = wait_exit(&self.shared, &self.name, &mut self.deaths, recheck).await;
        self.running = false;
        match look {
            Look::Exited(reason) => reason,
            Look::Gone => {
                self.exists = false;
                "its container was removed by someone else".to_string()
            }
            Look::Running => "unknown".to_string(),
        }
    }

    async fn signal(&mut self, signal: Signal) {
        if !self.running {
            return;
        }
        let signal = match signal {
            Signal::Term => "SIGTERM",
            Signal::Kill => "SIGKILL",
        };
        let options = KillContainerOptionsBuilder::new().signal(signal).build();
        let killed = self.shared.docker.kill_container(&self.name, Some(options));
        match killed.await {
            Ok(()) => {}
            Err(e) if status_of(&e) == Some(404) => {
                self.exists = false;
                self.running = false;
            }
            // 409: not running.
            Err(e) if status_of(&e) == Some(409) => self.running = false,
            Err(e) => {
                tracing::warn!(process = %self.name, %signal, error = %e, "could not signal a container");
            }
        }
    }

    async fn inspect(&mut self) -> bool {
        // A container stops with its main process (its init ends the rest).
        self.running
    }

    async fn remove(&mut self) {
        self.remove_container().await;
        let ports = std::mem::take(&mut self.ports);
        self.shared.ports.release(ports.into_values());
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
