//! Rollouts as the API sees them: a release and the app's structure as
//! engine deployments (for the reconciler), the desired-state writes of a
//! new release, and the waits for outcomes on the reconciler's status
//! watch. Nothing here changes engine state; the reconciler does.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use drycc_engine::{
    is_converged, Artifact, Command, Deployment, Probe, ProbeAction, ProcessStatus, ProcessTemplate,
};
use drycc_model::naming::template_hash_as;
use drycc_model::state::ProcessState;
use drycc_store::{App, BuildRef, NewConfig, NewRelease, Release, ReleaseState};
use tokio::sync::{mpsc, watch};

use crate::reconciler::AppStatus;
use crate::state::{timestamp, AppState};

/// The engine deployments of one release under the app's structure.
pub fn deployments(state: &AppState, app: &App, release: &Release) -> Vec<Deployment> {
    let Some(build) = &release.build else {
        return Vec::new();
    };
    let user = state.run_as(app);
    if state.isolation && user.is_none() {
        // Every app gets its user at creation or at start; never run one
        // as the controller's user instead.
        tracing::error!(app = %app.id, "The app has no user id of its own; its processes are not started.");
        return Vec::new();
    }
    let config = &release.config;
    let mut env: BTreeMap<String, String> = config.values.clone();
    env.insert("DRYCC_APP".into(), app.id.clone());
    env.insert("WORKFLOW_RELEASE".into(), format!("v{}", release.version));
    env.insert("WORKFLOW_RELEASE_SUMMARY".into(), release.summary.clone());
    env.insert(
        "WORKFLOW_RELEASE_CREATED_AT".into(),
        timestamp(&release.created),
    );
    if !build.sha.is_empty() {
        env.insert("SOURCE_VERSION".into(), build.sha.clone());
    }
    let image = build
        .image_config
        .as_ref()
        .and_then(|v| serde_json::from_value::<ImageRecord>(v.clone()).ok());
    let container_port = config
        .values
        .get("PORT")
        .and_then(|p| p.parse::<u16>().ok())
        .unwrap_or(CONTAINER_PORT);
    let (artifact, profile) = match &image {
        Some(record) => (
            Artifact::Image(drycc_engine::ImageSpec {
                reference: build.image.clone(),
                entrypoint: record.entrypoint.clone(),
                port: container_port,
                credentials: registry_login(&config.registry),
            }),
            record.slug,
        ),
        None => {
            let workdir = slug_dir(state, &app.id, build);
            // Heroku's convention: a slug's `.profile.d/*.sh` set up the
            // environment of each process (a virtualenv's PATH, ...). One
            // stat per pass, of a local directory.
            let profile = workdir.join(drycc_buildpacks::slug::PROFILE_D).is_dir();
            (Artifact::Checkout { path: workdir }, profile)
        }
    };
    // Native processes run as the app's user; containers isolate by their
    // own means.
    let user = match artifact {
        Artifact::Checkout { .. } => user,
        Artifact::Image(_) => None,
    };
    build
        .procfile
        .iter()
        .map(|(ptype, command)| {
            let generation = app.restart_generations.get(ptype).copied().unwrap_or(0);
            let grace = config
                .termination_grace_period
                .get(ptype)
                .map(|secs| Duration::from_secs(*secs))
                .unwrap_or_else(|| state.settings.default_grace());
            let probes = config.healthcheck.get(ptype);
            let template = ProcessTemplate {
                app: app.id.clone(),
                ptype: ptype.clone(),
                release: release.version,
                hash: template_hash_as(
                    &app.id,
                    ptype,
                    release.version,
                    generation,
                    user.map(|u| u.uid),
                ),
                artifact: artifact.clone(),
                command: match &image {
                    // The image's own CMD, unless the Procfile names one.
                    Some(record) if record.web_is_cmd && ptype == "web" => {
                        Command::Args(record.cmd.clone())
                    }
                    // The slug image's entrypoint is `/bin/sh -c`.
                    Some(record) if record.slug => {
                        Command::Args(vec![drycc_buildpacks::slug::with_profile(command)])
                    }
                    _ if profile => Command::Line(drycc_buildpacks::slug::with_profile(command)),
                    _ => Command::Line(command.clone()),
                },
                env: env.clone(),
                grace_period: grace,
                readiness: probes
                    .and_then(|p| p.get("readinessProbe"))
                    .and_then(probe_from_json)
                    .map(|probe| native_port(probe, container_port)),
                liveness: probes
                    .and_then(|p| p.get("livenessProbe"))
                    .and_then(probe_from_json)
                    .map(|probe| native_port(probe, container_port)),
                cpu_millis: config
                    .cpu
                    .get(ptype)
                    .and_then(|v| drycc_model::limits::parse_cpu(v).ok())
                    .map(|q| q.limit),
                memory_bytes: config
                    .memory
                    .get(ptype)
                    .and_then(|v| drycc_model::limits::parse_memory(v).ok())
                    .map(|q| q.limit),
                user,
            };
            Deployment {
                template,
                replicas: app.structure.get(ptype).copied().unwrap_or(0),
            }
        })
        .collect()
}

/// The slug directory name of a build: its `image` for buildpack builds
/// (one slug per build), the commit for builds made before slugs had
/// names of their own.
pub fn slug_name(build: &drycc_store::Build) -> String {
    if build.image.is_empty() {
        build.sha.clone()
    } else {
        build.image.clone()
    }
}

/// Where the processes of a native build run.
pub fn slug_dir(state: &AppState, app: &str, build: &drycc_store::Build) -> std::path::PathBuf {
    state.slugs_dir().join(app).join(slug_name(build))
}

/// The app's registry login, when both its parts are set.
pub fn registry_login(
    registry: &BTreeMap<String, String>,
) -> Option<drycc_engine::RegistryCredentials> {
    Some(drycc_engine::RegistryCredentials {
        username: registry.get("username")?.clone(),
        password: registry.get("password")?.clone(),
    })
}

/// What an image build runs, read from the image's config when the build
/// was made and kept with it (`builds.image_config`).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ImageRecord {
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    #[serde(default)]
    pub exposed_ports: Vec<u16>,
    #[serde(default)]
    pub working_dir: Option<String>,
    #[serde(default)]
    pub digest: Option<String>,
    /// `web` runs the image's CMD (no Procfile line for it).
    #[serde(default)]
    pub web_is_cmd: bool,
    /// A source app's slug made into an image (for engines that run only
    /// images): Procfile lines run under `/bin/sh -c` in the slug's
    /// directory, after its `.profile.d` scripts, as they do natively.
    #[serde(default)]
    pub slug: bool,
}

/// The port a container app listens on unless its config sets `PORT`.
pub const CONTAINER_PORT: u16 = 5000;

/// Native processes share the host network, so each listens on its own
/// `PORT` instead of the container port: a probe aimed at the container
/// port (`healthchecks:set readinessProbe httpGet 5000`) checks the
/// process's own `PORT`. Any other port is checked as given.
fn native_port(mut probe: Probe, container_port: u16) -> Probe {
    match &mut probe.action {
        ProbeAction::Tcp { port } | ProbeAction::Http { port, .. } => {
            if *port == Some(container_port) {
                *port = None;
            }
        }
        ProbeAction::Exec { .. } => {}
    }
    probe
}

/// A Kubernetes probe object (`{"tcpSocket": {"port": 5000}, "periodSeconds": 5}`)
/// as the engine's `Probe`; `None` for shapes the config validation refuses.
pub fn probe_from_json(value: &serde_json::Value) -> Option<Probe> {
    let seconds = |key: &str, default: u64| {
        Duration::from_secs(value.get(key).and_then(|v| v.as_u64()).unwrap_or(default))
    };
    let port = |action: &serde_json::Value| {
        action
            .get("port")
            .and_then(|p| p.as_u64())
            .and_then(|p| u16::try_from(p).ok())
    };
    let action = if let Some(http) = value.get("httpGet") {
        ProbeAction::Http {
            path: http
                .get("path")
                .and_then(|p| p.as_str())
                .unwrap_or("/")
                .to_string(),
            port: port(http),
        }
    } else if let Some(tcp) = value.get("tcpSocket") {
        ProbeAction::Tcp { port: port(tcp) }
    } else if let Some(exec) = value.get("exec") {
        let command = exec
            .get("command")?
            .as_array()?
            .iter()
            .map(|c| c.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()?;
        ProbeAction::Exec { command }
    } else {
        return None;
    };
    Some(Probe {
        action,
        initial_delay: seconds("initialDelaySeconds", 0),
        period: seconds("periodSeconds", 1),
        timeout: seconds("timeoutSeconds", 1),
        failure_threshold: value
            .get("failureThreshold")
            .and_then(|v| v.as_u64())
            .and_then(|v| u32::try_from(v).ok())
            .unwrap_or(3),
    })
}

/// How long a waiter lets a burst of engine changes settle before it reads
/// the process list again.
const COALESCE: Duration = Duration::from_millis(5);

/// What a waiter makes of the current process list.
pub enum Verdict {
    Done,
    Pending,
}

/// Re-read the app's processes on every engine change (and on a slow tick)
/// until `check` says `Done`; `TimedOut` when `timeout` passes first.
/// Observes only: it never changes engine state.
pub async fn wait_for(
    state: &AppState,
    app: &str,
    timeout: Duration,
    mut check: impl FnMut(&[ProcessStatus]) -> Verdict,
) -> Result<(), DeployError> {
    let mut changes = state.engine.changes(Some(app));
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        changes.borrow_and_update();
        let processes = state.engine.processes(app).await?;
        if let Verdict::Done = check(&processes) {
            return Ok(());
        }
        // The fallback tick covers readiness probes, which may pass without
        // a state change of their own being published yet.
        let tick = tokio::time::sleep(Duration::from_millis(250));
        tokio::select! {
            _ = changes.changed() => {
                // Hundreds of processes starting at once change state in a
                // burst: read the list once per burst, not once per change.
                tokio::time::sleep(COALESCE).await;
            }
            _ = tick => {}
            _ = tokio::time::sleep_until(deadline) => {
                return Err(DeployError::TimedOut(format!(
                    "still waiting after {} s",
                    timeout.as_secs()
                )));
            }
        }
    }
}

/// Restarts after which a new process counts as crash-looping.
const CRASH_LOOP_RESTARTS: u32 = 2;

pub fn crash_loop_reason(
    deployments: &[Deployment],
    processes: &[ProcessStatus],
) -> Option<String> {
    let looping: Vec<String> = processes
        .iter()
        .filter(|p| {
            !p.ready
                && p.restarts >= CRASH_LOOP_RESTARTS
                && deployments.iter().any(|d| {
                    d.replicas > 0 && d.template.ptype == p.ptype && d.template.hash == p.hash
                })
        })
        .map(|p| {
            let exit = p.last_exit.as_deref().unwrap_or("exited");
            format!(
                "{} is crashing ({exit}; restarted {} times)",
                p.name, p.restarts
            )
        })
        .collect();
    (!looping.is_empty()).then(|| format!("processes keep crashing: {}", looping.join(", ")))
}

pub fn not_converged_reason(
    deployments: &[Deployment],
    processes: &[ProcessStatus],
    timeout: Duration,
) -> String {
    let mut problems = Vec::new();
    for deployment in deployments {
        let current: Vec<&ProcessStatus> = processes
            .iter()
            .filter(|p| p.ptype == deployment.template.ptype && p.hash == deployment.template.hash)
            .collect();
        let ready = current.iter().filter(|p| p.ready).count();
        if ready < deployment.replicas as usize {
            let mut line = format!(
                "{}: {} of {} processes ready",
                deployment.template.ptype, ready, deployment.replicas
            );
            for process in current.iter().filter(|p| !p.ready) {
                let detail = match (&process.state, &process.last_exit) {
                    (ProcessState::Crashed, Some(exit)) => format!("crashed ({exit})"),
                    (state, _) => state.to_string(),
                };
                line.push_str(&format!("; {} is {}", process.name, detail));
            }
            problems.push(line);
        }
    }
    if problems.is_empty() {
        problems.push("old processes did not stop".into());
    }
    format!(
        "processes did not become ready within {} s: {}",
        timeout.as_secs(),
        problems.join(", ")
    )
}

/// Why a change did not take effect, from the store to the engine.
/// `crate::error` maps each to an HTTP status.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    /// The release was created but did not roll out: it is marked failed
    /// with the reason and the last good release runs again (400).
    #[error("release v{version} failed: {reason}")]
    ReleaseFailed { version: u32, reason: String },
    /// Processes did not converge within the deploy timeout; the desired
    /// state stays and the engine keeps trying (503).
    #[error("{0}")]
    TimedOut(String),
    /// A new process keeps crashing (503).
    #[error("{0}")]
    CrashLoop(String),
    /// The engine refused the request (400, with its reason).
    #[error("{0}")]
    Invalid(String),
    /// The engine cannot be reached (503).
    #[error("engine unavailable: {0}")]
    Unavailable(String),
    /// The store failed (500) or did not find something (404).
    #[error("the state store failed: {0}")]
    Store(#[from] drycc_store::StoreError),
    /// The app was destroyed meanwhile (404).
    #[error("the app no longer exists")]
    AppGone,
}

impl From<drycc_engine::EngineError> for DeployError {
    fn from(error: drycc_engine::EngineError) -> DeployError {
        use drycc_engine::EngineError;
        match error {
            EngineError::Invalid(reason) => DeployError::Invalid(reason),
            EngineError::ProcessNotFound(name) => {
                DeployError::Invalid(format!("process {name} not found"))
            }
            EngineError::Unsupported(reason) => DeployError::Invalid(reason),
            error @ EngineError::Unavailable { .. } => DeployError::Unavailable(error.detail()),
            EngineError::Io(error) => DeployError::Unavailable(error.to_string()),
        }
    }
}

/// What a new release changes.
pub struct ReleaseChange {
    pub owner: String,
    pub summary: String,
    pub build: BuildRef,
    pub config: NewConfig,
    /// The structure to apply with the release (deploys); `None` keeps it.
    pub structure: Option<BTreeMap<String, u32>>,
}

/// Write the next release as desired state (`pending`, with its structure,
/// in one transaction), hand it to the reconciler and wait for its
/// judgement. The wait holds no lock, and a caller that goes away changes
/// nothing: the reconciler judges the release all the same.
pub async fn release(
    state: &AppState,
    app_id: &str,
    change: ReleaseChange,
    progress: Option<&mpsc::Sender<String>>,
) -> Result<Release, DeployError> {
    let release = {
        let lock = state.app_lock(app_id);
        let _guard = lock.lock().await;
        state
            .store
            .create_release(
                app_id,
                NewRelease {
                    owner: change.owner,
                    summary: change.summary,
                    build: change.build,
                    config: change.config,
                    structure: change.structure,
                },
            )
            .await?
    };
    state
        .event(
            app_id,
            &format!("{} (v{})", release.summary, release.version),
        )
        .await;
    let status = state.reconciler.subscribe(app_id);
    state.reconciler.enqueue(app_id);
    say(
        progress,
        format!(
            "-----> Rolling out v{}: {}",
            release.version, release.summary
        ),
    )
    .await;
    wait_release(state, app_id, release.version, status).await?;
    Ok(release)
}

/// How much longer than the deploy timeout a release waiter waits for the
/// reconciler's judgement (which the timeout bounds) before it gives up.
const JUDGEMENT_SLACK: Duration = Duration::from_secs(30);

/// Wait until the reconciler has judged release `version`: `Ok` once it
/// succeeded, `ReleaseFailed` with the stored reason once it failed.
pub async fn wait_release(
    state: &AppState,
    app_id: &str,
    version: u32,
    mut status: watch::Receiver<AppStatus>,
) -> Result<(), DeployError> {
    let deadline = tokio::time::Instant::now() + state.settings.deploy_timeout() + JUDGEMENT_SLACK;
    let mut role = state.role.clone();
    let mut role_open = true;
    let mut open = true;
    loop {
        status.borrow_and_update();
        // The store is the truth; the watch only says when to look again.
        let release = state
            .store
            .release(app_id, version)
            .await?
            .ok_or(DeployError::AppGone)?;
        match release.state {
            ReleaseState::Succeeded => {
                // The router sends traffic to the new processes once this
                // answers.
                state.routes.sync().await;
                return Ok(());
            }
            ReleaseState::Failed => {
                return Err(DeployError::ReleaseFailed {
                    version,
                    reason: release.exception,
                })
            }
            ReleaseState::Pending => {}
        }
        // A follower's reconciler does not run: the leader's judgement
        // shows only in the store.
        let look_again = !open || !state.leading();
        let closed = tokio::select! {
            changed = status.changed(), if open => changed.is_err(),
            _ = tokio::time::sleep(Duration::from_millis(500)), if look_again => false,
            // Stepped down or became leader: wait the other way.
            changed = role.changed(), if role_open => {
                role_open = changed.is_ok();
                false
            }
            _ = state.stopping.cancelled() => return Err(stopping()),
            _ = tokio::time::sleep_until(deadline) => {
                return Err(DeployError::TimedOut(format!(
                    "release v{version} is still rolling out after {} s; it keeps going",
                    (state.settings.deploy_timeout() + JUDGEMENT_SLACK).as_secs()
                )));
            }
        };
        open &= !closed;
    }
}

/// Wait until the deployments of `types` applied for request `generation`
/// (or a newer one) have converged: exactly their replicas ready, old
/// processes gone. Used by scale and restart, which change the structure or
/// restart generations and then call [`Reconciler::enqueue`](crate::reconciler::Reconciler::enqueue).
pub async fn wait_types(
    state: &AppState,
    app_id: &str,
    generation: u64,
    types: &BTreeSet<String>,
    mut status: watch::Receiver<AppStatus>,
) -> Result<(), DeployError> {
    if !state.leading() {
        // The leader applies the change (it was told, see `crate::duties`).
        // On a cluster every replica sees the same Pods, so the follower
        // watches them converge; a local engine's processes are the
        // leader's own, with nothing here to wait for.
        if state.settings.engine == crate::settings::EngineKind::Kubernetes {
            return wait_types_observed(state, app_id, types).await;
        }
        return Ok(());
    }
    let timeout = state.settings.deploy_timeout();
    let deadline = tokio::time::Instant::now() + timeout;
    let mut role = state.role.clone();
    role.borrow_and_update();
    let mut role_open = true;
    let mut changes = state.engine.changes(Some(app_id));
    let mut last: Option<(Vec<Deployment>, Vec<ProcessStatus>)> = None;
    let mut open = true;
    loop {
        changes.borrow_and_update();
        let current = status.borrow_and_update().clone();
        if let Some((failed, fault)) = current.fault {
            if failed >= generation {
                return Err(fault.into());
            }
        }
        if current.applied >= generation {
            let selected: Vec<Deployment> = current
                .deployments
                .iter()
                .filter(|d| types.contains(&d.template.ptype))
                .cloned()
                .collect();
            let processes = state.engine.processes(app_id).await?;
            if selected.iter().all(|d| is_converged(d, &processes)) {
                state.routes.sync().await;
                return Ok(());
            }
            if let Some(reason) = crash_loop_reason(&selected, &processes) {
                return Err(DeployError::CrashLoop(reason));
            }
            last = Some((selected, processes));
        }
        let closed = tokio::select! {
            changed = status.changed(), if open => changed.is_err(),
            _ = state.stopping.cancelled() => return Err(stopping()),
            changed = role.changed(), if role_open => {
                role_open = changed.is_ok();
                if !state.leading() {
                    return Err(DeployError::Unavailable(
                        "this controller stopped leading; the change is saved and goes on under the new leader".into(),
                    ));
                }
                false
            }
            _ = changes.changed() => {
                tokio::time::sleep(COALESCE).await;
                false
            }
            // Readiness probes may pass before a change is published.
            _ = tokio::time::sleep(Duration::from_millis(250)) => false,
            _ = tokio::time::sleep_until(deadline) => {
                return Err(DeployError::TimedOut(match &last {
                    Some((selected, processes)) => not_converged_reason(selected, processes, timeout),
                    None => format!(
                        "the change was not applied within {} s; the reconciler keeps trying",
                        timeout.as_secs()
                    ),
                }));
            }
        };
        if closed {
            // The reconciler forgot the app: it was destroyed.
            open = false;
            if state.store.get_app(app_id).await?.is_none() {
                return Err(DeployError::AppGone);
            }
        }
    }
}

/// [`wait_types`] on a follower whose engine sees what the leader's does:
/// the desired state is read from the store (the leader's reconciler
/// publishes nothing here) and compared with the engine's processes.
async fn wait_types_observed(
    state: &AppState,
    app_id: &str,
    types: &BTreeSet<String>,
) -> Result<(), DeployError> {
    let timeout = state.settings.deploy_timeout();
    let deadline = tokio::time::Instant::now() + timeout;
    let mut changes = state.engine.changes(Some(app_id));
    loop {
        changes.borrow_and_update();
        let app = state
            .store
            .get_app(app_id)
            .await?
            .ok_or(DeployError::AppGone)?;
        let release = state.store.desired_release(app_id).await?;
        let selected: Vec<Deployment> = release
            .map(|r| deployments(state, &app, &r))
            .unwrap_or_default()
            .into_iter()
            .filter(|d| types.contains(&d.template.ptype))
            .collect();
        let processes = state.engine.processes(app_id).await?;
        if selected.iter().all(|d| is_converged(d, &processes)) {
            state.routes.sync().await;
            return Ok(());
        }
        if let Some(reason) = crash_loop_reason(&selected, &processes) {
            return Err(DeployError::CrashLoop(reason));
        }
        tokio::select! {
            _ = state.stopping.cancelled() => return Err(stopping()),
            _ = changes.changed() => tokio::time::sleep(COALESCE).await,
            _ = tokio::time::sleep(Duration::from_millis(250)) => {}
            _ = tokio::time::sleep_until(deadline) => {
                return Err(DeployError::TimedOut(not_converged_reason(&selected, &processes, timeout)));
            }
        }
    }
}

/// The answer of a waiter when the controller stops: the change is desired
/// state in the store and goes on after the next start.
fn stopping() -> DeployError {
    DeployError::Unavailable(
        "the controller is stopping; the change goes on when it starts again".into(),
    )
}

async fn say(progress: Option<&mpsc::Sender<String>>, line: String) {
    if let Some(progress) = progress {
        // A client that went away must not stop the deploy.
        let _ = progress.send(line).await;
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::path::PathBuf;

    pub(crate) fn deployment(ptype: &str, hash: &str, replicas: u32) -> Deployment {
        Deployment {
            template: ProcessTemplate {
                app: "app".into(),
                ptype: ptype.into(),
                release: 2,
                hash: hash.into(),
                artifact: Artifact::Checkout {
                    path: PathBuf::from("/"),
                },
                command: Command::Line("true".into()),
                env: Default::default(),
                grace_period: Duration::from_secs(1),
                readiness: None,
                liveness: None,
                cpu_millis: None,
                memory_bytes: None,
                user: None,
            },
            replicas,
        }
    }

    pub(crate) fn process(ptype: &str, hash: &str, restarts: u32, ready: bool) -> ProcessStatus {
        ProcessStatus {
            name: format!("app-{ptype}-{hash}-bcdfg"),
            app: "app".into(),
            ptype: ptype.into(),
            release: 2,
            hash: hash.into(),
            state: if ready {
                ProcessState::Up
            } else {
                ProcessState::Crashed
            },
            started: chrono::Utc::now(),
            ready,
            restarts,
            pid: None,
            endpoint: None,
            last_exit: Some("exited with code 1".into()),
            command: "true".into(),
            argv: Vec::new(),
            image: None,
        }
    }

    #[test]
    fn crash_loops_of_awaited_processes_fail_fast() {
        let wanted = [deployment("worker", "h1", 1)];
        assert!(crash_loop_reason(&wanted, &[process("worker", "h1", 1, false)]).is_none());
        let reason = crash_loop_reason(&wanted, &[process("worker", "h1", 2, false)]).unwrap();
        assert!(reason
            .contains("app-worker-h1-bcdfg is crashing (exited with code 1; restarted 2 times)"));
        // Ready again, another template, or a type being scaled to 0: no.
        assert!(crash_loop_reason(&wanted, &[process("worker", "h1", 5, true)]).is_none());
        assert!(crash_loop_reason(&wanted, &[process("worker", "old", 5, false)]).is_none());
        let removing = [deployment("worker", "h1", 0)];
        assert!(crash_loop_reason(&removing, &[process("worker", "h1", 5, false)]).is_none());
    }
}
