//! The Docker engine: every process is one container of a Docker daemon,
//! driven through the Engine API (bollard; never the `docker` command),
//! with the process model's lifecycle (readiness, crash back-off, rolling
//! replacement, graceful termination) decided by `drycc_model::lifecycle`
//! exactly as the local engine decides it.
//!
//! Layout:
//! - `state`: what the engine adds to the process table of
//!   `drycc_engine_runtime` (the daemon, settings, log hub, OOM events,
//!   each entry's published ports) and the adoption of containers found
//!   on the daemon; the table, the reconcile loop and the supervisor of
//!   every process (probes, crash restart, termination, letting go when
//!   the engine is released) are the runtime's, shared with the local
//!   engine;
//! - `runner`: how one process runs as a container (create and start it,
//!   or follow one found running; start the same container again after
//!   it died; signal it; remove it when the process is gone for good);
//! - `container`: labels, the create body (image or slug image, command,
//!   environment, ports, checkout mount, limits), reading a container back,
//!   images (pulled when missing), and Docker errors as `EngineError`s;
//! - `events`: the daemon's `die` events, which wake supervisors;
//! - `probe`: readiness and liveness checks through the published port,
//!   and exec checks;
//! - `logs`: output from the daemon's logs (tail, and followers feeding a
//!   channel per app);
//! - `exec`: `docker exec` sessions with stdin, TTY and resize;
//! - `usage`: CPU and memory from one-shot stats.
//!
//! A container is named after its process (`<app>-<type>-<hash>-<suffix>`,
//! see `drycc_model::naming`) and labelled `heritage=drycc`,
//! `drycc.instance=<instance>`, `app`, `type`, `version` (the release),
//! `hash`, plus the whole template as JSON (`drycc.template`) and the
//! restart count it was created with (`drycc.restarts`): a new engine on the
//! same daemon and instance rebuilds its table from these and `inspect`,
//! and follows the running containers without restarting them. Every query
//! filters on the instance label, so engines sharing a daemon never touch
//! each other's containers.
//!
//! What runs: the image's entrypoint as the template gives it (always set
//! explicitly), then the command: `Command::Args` as they are, or a
//! `Command::Line` split into words by shell quoting rules with `$VAR` and
//! `${VAR}` expanded from the process environment (see `drycc_procfile::words`). The
//! environment is the release's, then `PORT` (the image's port) and
//! `HOSTNAME` (the process name, also the container's host name).
//!
//! An `Artifact::Checkout` runs only with `DockerConfig::slug_image`: a
//! container of that image with the checkout directory (a path on the
//! daemon's host) bind-mounted read-write at `/app`, its working directory
//! and `HOME`; `PORT` is 5000; the entrypoint is cleared and a
//! `Command::Line` runs as `/bin/sh -c <line>` (shell syntax, as natively).
//! Everything else (labels, ports, lifecycle, adoption) is as for images.
//!
//! The container port is published on 127.0.0.1 at a host port of
//! `DockerConfig::host_ports` that this engine promises to that container
//! alone; that address is the process's endpoint, kept across restarts.
//! With `DockerConfig::init` (the default) Docker's init runs as PID 1 and
//! forwards signals to the command's process group
//! (`TINI_KILL_PROCESS_GROUP=1` in the environment), so a command that sets
//! no handler still stops on SIGTERM and the helpers a shell started get it
//! too, as for a native process.
//!
//! Processes are told apart by template hash: a deployment whose hash
//! differs from a process's is a new template and rolls; the same hash with
//! another replica count only scales.

// Input from users, files and the network must never panic the program.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod container;
mod events;
mod exec;
mod logs;
mod probe;
mod runner;
mod state;
mod usage;

use std::ops::RangeInclusive;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bollard::query_parameters::{
    ListContainersOptionsBuilder, RemoveContainerOptionsBuilder, StopContainerOptionsBuilder,
};
use bollard::Docker;
use tokio::sync::watch;

pub use drycc_model::lifecycle::BackoffPolicy;

use drycc_engine::{
    Artifact, Capabilities, Command, Deployment, Engine, EngineError, ExecRequest, ExecSession,
    LogLine, LogStream, ProcessStatus, ProcessTemplate, ProcessUsage, Result,
};
use state::Shared;

/// Settings of the Docker engine.
#[derive(Clone, Debug)]
pub struct DockerConfig {
    /// Written on every container (`drycc.instance`) and part of every
    /// query: one per controller (or test) sharing a daemon.
    pub instance: String,
    /// Host ports on 127.0.0.1 that published container ports get; by
    /// default below Linux's ephemeral range.
    pub host_ports: RangeInclusive<u16>,
    /// Delays between crash restarts.
    pub backoff: BackoffPolicy,
    /// How often a `web` process without a probe is tried for readiness.
    pub readiness_poll: Duration,
    /// How often a running container is looked at even when no event said
    /// it died (a safety net for a lost event).
    pub recheck: Duration,
    /// How long a TCP connection to a published port must stay open to
    /// prove that something listens behind it (see `probe`).
    pub proxy_settle: Duration,
    /// Run Docker's init as PID 1 (signal forwarding, zombie reaping).
    pub init: bool,
    /// Lines a `follow_logs` receiver may fall behind before it lags.
    pub follow_buffer: usize,
    /// The base image `Artifact::Checkout` processes run in (a "slug
    /// image": a shell and what buildpack output needs at run time), pulled
    /// like any image when missing. `None`: checkouts are `Unsupported`.
    pub slug_image: Option<String>,
}

impl Default for DockerConfig {
    fn default() -> Self {
        DockerConfig {
            instance: "drycc".to_string(),
            host_ports: DEFAULT_HOST_PORTS,
            backoff: BackoffPolicy::default(),
            readiness_poll: Duration::from_millis(200),
            recheck: Duration::from_secs(10),
            proxy_settle: Duration::from_millis(250),
            init: true,
            follow_buffer: 4096,
            slug_image: None,
        }
    }
}

impl DockerConfig {
    /// The defaults, with this instance name.
    pub fn new(instance: impl Into<String>) -> Self {
        DockerConfig {
            instance: instance.into(),
            ..DockerConfig::default()
        }
    }
}

/// The host ports given to containers unless configured otherwise.
pub const DEFAULT_HOST_PORTS: RangeInclusive<u16> = 20000..=32767;

/// How long `close` waits for supervisors busy terminating a container.
const CLOSE_DEADLINE: Duration = Duration::from_secs(5);

/// The longest grace `stop_all` gives a container it found without a
/// supervisor (a Docker request must answer within bollard's timeout).
const SWEEP_GRACE_CAP: Duration = Duration::from_secs(90);

/// The Docker engine. Create it with [`DockerEngine::connect`].
pub struct DockerEngine {
    shared: Arc<Shared>,
}

impl DockerEngine {
    /// Check the daemon (negotiating the API version down to what it
    /// speaks), then adopt the containers of `config.instance` that it has:
    /// running ones are followed as they run (same name, endpoint and
    /// restart count from their labels), stopped ones are started again
    /// (one restart more). Containers of the instance that cannot be read
    /// back are removed. Must be called within the tokio runtime that will
    /// run the engine's tasks.
    pub async fn connect(docker: Docker, config: DockerConfig) -> Result<Arc<DockerEngine>> {
        if config.instance.is_empty() {
            return Err(EngineError::Invalid(
                "the Docker engine needs an instance name".to_string(),
            ));
        }
        if config.host_ports.is_empty() || *config.host_ports.start() == 0 {
            return Err(EngineError::Invalid(format!(
                "invalid host port range {:?}",
                config.host_ports
            )));
        }
        let docker = docker
            .negotiate_version()
            .await
            .map_err(|e| container::unavailable("cannot reach the Docker daemon", e))?;
        docker
            .ping()
            .await
            .map_err(|e| container::unavailable("the Docker daemon does not answer", e))?;
        let shared = Arc::new(state::new_shared(config, docker));
        events::spawn_watcher(&shared);
        let adopted = adopt(&shared).await?;
        if adopted > 0 {
            tracing::info!(
                adopted,
                instance = %shared.config.instance,
                "adopted the containers of a previous engine"
            );
        }
        Ok(Arc::new(DockerEngine { shared }))
    }

    /// The settings this engine runs with.
    pub fn config(&self) -> &DockerConfig {
        &self.shared.config
    }

    /// The daemon this engine drives.
    pub fn docker(&self) -> &Docker {
        &self.shared.docker
    }
}

/// Every container of the instance, by creation time.
async fn list_own(shared: &Shared) -> Result<Vec<bollard::models::ContainerSummary>> {
    let options = ListContainersOptionsBuilder::new()
        .all(true)
        .filters(&container::filters(&shared.config.instance, None))
        .build();
    let mut list = shared
        .docker
        .list_containers(Some(options))
        .await
        .map_err(|e| container::unavailable("listing containers", e))?;
    list.sort_by_key(|c| c.created.unwrap_or(0));
    Ok(list)
}

async fn adopt(shared: &Arc<Shared>) -> Result<usize> {
    let mut count = 0;
    for summary in list_own(shared).await? {
        let Some(id) = summary.id else { continue };
        let inspect = match shared.docker.inspect_container(&id, None).await {
            Ok(inspect) => inspect,
            Err(e) if container::status_of(&e) == Some(404) => continue,
            Err(e) => return Err(container::unavailable("inspecting a container", e)),
        };
        match container::found_of(&inspect) {
            Ok(found) => {
                state::adopt(shared, found);
                count += 1;
            }
            Err(reason) => {
                tracing::warn!(container = %id, %reason, "removing a container this engine cannot manage");
                let options = RemoveContainerOptionsBuilder::new().force(true).build();
                let _ = shared.docker.remove_container(&id, Some(options)).await;
            }
        }
    }
    Ok(count)
}

/// Names become container names and label values: keep them to what
/// Docker accepts everywhere.
fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

fn validate(template: &ProcessTemplate, slug_image: Option<&str>) -> Result<()> {
    let bad = |what: &str| Err(EngineError::Invalid(format!("invalid deployment: {what}")));
    if !valid_name(&template.app) {
        return bad("the app name must be letters, digits, '.', '_' or '-'");
    }
    if !valid_name(&template.ptype) {
        return bad("the process type must be letters, digits, '.', '_' or '-'");
    }
    if !valid_name(&template.hash) {
        return bad("the template hash must be letters, digits, '.', '_' or '-'");
    }
    match &template.artifact {
        Artifact::Image(spec) => {
            if spec.reference.trim().is_empty() {
                return bad("the image reference is empty");
            }
            if spec.port == 0 {
                return bad("the image port is 0");
            }
            let args = container::command_args(template, "process-name")?;
            let empty = match &template.command {
                Command::Line(_) => args.is_empty(),
                Command::Args(_) => args.is_empty() && spec.entrypoint.is_empty(),
            };
            if empty {
                return bad("the command is empty");
            }
        }
        Artifact::Checkout { path } => {
            if slug_image.is_none() {
                return Err(EngineError::Unsupported(
                    "the Docker engine runs checkouts only when configured with a slug image"
                        .to_string(),
                ));
            }
            // The directory is the daemon's to find (it may be another
            // host's): only what Docker needs of its name is checked here.
            if !path.is_absolute() || path.to_str().is_none() {
                return bad("the checkout path must be absolute and UTF-8");
            }
            let empty = match &template.command {
                Command::Line(line) => line.trim().is_empty(),
                Command::Args(args) => args.is_empty(),
            };
            if empty {
                return bad("the command is empty");
            }
        }
    }
    Ok(())
}

#[async_trait]
impl Engine for DockerEngine {
    async fn apply(&self, deployment: Deployment) -> Result<()> {
        let shared = &self.shared;
        let slug_image = shared.config.slug_image.as_deref();
        validate(&deployment.template, slug_image)?;
        shared.refuse_if_closed()?;
        if let Some(reference) = container::image_ref(&deployment.template, slug_image) {
            // Pulled before anything starts, so that an image that does not
            // exist is refused here rather than crash-looping.
            let login = container::credentials_of(&deployment.template);
            container::ensure_image(shared, reference, login).await?;
        }
        shared.apply(deployment)
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
        self.shared.running(app, name, |_| ())?;
        exec::start(&self.shared, name, request).await
    }

    async fn logs(&self, app: &str, lines: usize, process: Option<&str>) -> Result<Vec<LogLine>> {
        logs::tail(&self.shared, app, lines, process).await
    }

    fn follow_logs(&self, app: &str) -> LogStream {
        drycc_engine::follow_broadcast(self.shared.logs.subscribe(app))
    }

    fn changes(&self, app: Option<&str>) -> watch::Receiver<u64> {
        self.shared.changes(app)
    }

    async fn usage(&self, app: &str) -> Result<Vec<ProcessUsage>> {
        Ok(usage::sample(&self.shared, app).await)
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            checkouts: self.shared.config.slug_image.is_some(),
            images: true,
            limits: Ok(()),
            autoscaler: false,
        }
    }

    async fn apps(&self) -> Result<Vec<String>> {
        let mut apps = self.shared.app_names();
        for summary in list_own(&self.shared).await? {
            if let Some(app) = summary
                .labels
                .as_ref()
                .and_then(|l| l.get(container::LABEL_APP))
            {
                apps.push(app.clone());
            }
        }
        apps.sort();
        apps.dedup();
        Ok(apps)
    }

    async fn close(&self) {
        let shared = &self.shared;
        shared.let_go();
        // Supervisors let go at once, except those terminating a container:
        // they get a short while, and whatever they leave is adopted by the
        // next engine, which finishes the job. Then followers, the event
        // watcher and exec sessions end.
        let deadline = tokio::time::Instant::now() + CLOSE_DEADLINE;
        shared.wait_idle(Some(deadline)).await;
        shared.end_tasks().await;
    }

    async fn stop_all(&self) {
        let shared = &self.shared;
        // Nothing of an app is kept once its containers are gone.
        shared.stop_everything(true);
        // Every supervisor removes its container and its entry.
        shared.wait_idle(None).await;
        // Containers of the instance no supervisor had (left by an engine
        // that could not adopt them, or after `close`).
        match list_own(shared).await {
            Ok(list) => {
                let sweeps = list.into_iter().filter_map(|c| c.id).map(|id| async move {
                    sweep(shared, &id).await;
                });
                futures::future::join_all(sweeps).await;
            }
            Err(e) => tracing::warn!(error = %e, "could not list the containers left to stop"),
        }
        shared.end_tasks().await;
    }
}

/// Stop (gracefully, with the grace its template gives) and remove one
/// container found without a supervisor.
async fn sweep(shared: &Shared, id: &str) {
    let grace = match shared.docker.inspect_container(id, None).await {
        Ok(inspect) => container::found_of(&inspect)
            .map(|f| f.template.grace_period)
            .unwrap_or(drycc_engine::DEFAULT_GRACE),
        Err(_) => drycc_engine::DEFAULT_GRACE,
    };
    let seconds = grace.min(SWEEP_GRACE_CAP).as_secs_f64().ceil() as i32;
    let options = StopContainerOptionsBuilder::new().t(seconds).build();
    if let Err(e) = shared.docker.stop_container(id, Some(options)).await {
        tracing::debug!(container = %id, error = %e, "could not stop a container");
    }
    let options = RemoveContainerOptionsBuilder::new().force(true).build();
    if let Err(e) = shared.docker.remove_container(id, Some(options)).await {
        if container::status_of(&e) != Some(404) {
            tracing::warn!(container = %id, error = %e, "could not remove a container");
        }
    }
}

impl Drop for DockerEngine {
    /// Dropped without `close`: the same as `close`, without waiting.
    /// Containers outlive the engine either way.
    fn drop(&mut self) {
        self.shared.let_go();
        self.shared.cancel.cancel();
    }
}
