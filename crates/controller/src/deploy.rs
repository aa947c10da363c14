//! Rollouts: turn a release and the app's structure into engine
//! deployments, apply them, and wait until the engine has converged.
//!
//! The API writes desired state to the store and then calls in here; only
//! this module tells the engine what to run.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use drycc_engine::{is_converged, Deployment, Probe, ProbeAction, ProcessStatus, ProcessTemplate};
use drycc_model::naming::template_hash;
use drycc_model::state::ProcessState;
use drycc_store::{App, BuildRef, NewConfig, NewRelease, Release};
use tokio::sync::mpsc;

use crate::error::{ApiError, ApiResult};
use crate::state::{timestamp, AppState};

/// The engine deployments of one release under the app's structure.
pub fn deployments(state: &AppState, app: &App, release: &Release) -> Vec<Deployment> {
    let Some(build) = &release.build else {
        return Vec::new();
    };
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
    let workdir = state.slugs_dir().join(&app.id).join(&build.sha);
    let container_port = config
        .values
        .get("PORT")
        .and_then(|p| p.parse::<u16>().ok())
        .unwrap_or(CONTAINER_PORT);
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
                hash: template_hash(&app.id, ptype, release.version, generation),
                command: command.clone(),
                env: env.clone(),
                workdir: workdir.clone(),
                image: None,
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
            };
            Deployment {
                template,
                replicas: app.structure.get(ptype).copied().unwrap_or(0),
            }
        })
        .collect()
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

/// Hand every deployment to the engine (which converges on its own).
async fn apply_all(state: &AppState, deployments: &[Deployment]) -> Result<(), String> {
    for deployment in deployments {
        state
            .engine
            .apply(deployment.clone())
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Apply every deployment of `release`, remove types that are no longer
/// part of it, and wait for convergence.
pub async fn roll_out(state: &AppState, app: &App, release: &Release) -> Result<(), String> {
    let deployments = deployments(state, app, release);
    let wanted: BTreeSet<&str> = deployments
        .iter()
        .map(|d| d.template.ptype.as_str())
        .collect();
    apply_all(state, &deployments).await?;
    let running = state
        .engine
        .processes(&app.id)
        .await
        .map_err(|e| e.to_string())?;
    let stale: BTreeSet<String> = running
        .iter()
        .filter(|p| !wanted.contains(p.ptype.as_str()))
        .map(|p| p.ptype.clone())
        .collect();
    for ptype in &stale {
        state
            .engine
            .remove_type(&app.id, ptype)
            .await
            .map_err(|e| e.to_string())?;
    }
    wait_converged(
        state,
        &app.id,
        &deployments,
        &stale,
        state.settings.deploy_timeout(),
    )
    .await
}

/// How long a waiter lets a burst of engine changes settle before it reads
/// the process list again.
const COALESCE: Duration = Duration::from_millis(5);

/// Apply the deployments of `types` (scale, restart) and wait until they
/// have converged; other types are left alone.
pub async fn apply_types(
    state: &AppState,
    app: &App,
    release: &Release,
    types: &BTreeSet<String>,
) -> Result<(), String> {
    let selected: Vec<Deployment> = deployments(state, app, release)
        .into_iter()
        .filter(|d| types.contains(&d.template.ptype))
        .collect();
    apply_all(state, &selected).await?;
    wait_converged(
        state,
        &app.id,
        &selected,
        &BTreeSet::new(),
        state.settings.deploy_timeout(),
    )
    .await
}

/// What a waiter makes of the current process list.
pub enum Verdict {
    Done,
    Pending,
    Failed(String),
}

/// Why [`wait_for`] stopped without `Done`.
pub enum WaitError {
    /// The check failed; its reason.
    Failed(String),
    /// The deadline passed; the last process list seen.
    TimedOut(Vec<ProcessStatus>),
}

/// Re-read the app's processes on every engine change (and on a slow tick)
/// until `check` says `Done` or `Failed`, or `timeout` passes.
pub async fn wait_for(
    state: &AppState,
    app: &str,
    timeout: Duration,
    mut check: impl FnMut(&[ProcessStatus]) -> Verdict,
) -> Result<(), WaitError> {
    let mut changes = state.engine.changes();
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        changes.borrow_and_update();
        let processes = state
            .engine
            .processes(app)
            .await
            .map_err(|e| WaitError::Failed(e.to_string()))?;
        match check(&processes) {
            Verdict::Done => return Ok(()),
            Verdict::Failed(reason) => return Err(WaitError::Failed(reason)),
            Verdict::Pending => {}
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
                return Err(WaitError::TimedOut(processes));
            }
        }
    }
}

/// Wait until every deployment has exactly its replicas ready and every
/// process of `removed` types is gone. On timeout, the reason names the
/// processes that are not ready and their state.
pub async fn wait_converged(
    state: &AppState,
    app: &str,
    deployments: &[Deployment],
    removed: &BTreeSet<String>,
    timeout: Duration,
) -> Result<(), String> {
    let result = wait_for(state, app, timeout, |processes| {
        let done = deployments.iter().all(|d| is_converged(d, processes))
            && !processes.iter().any(|p| removed.contains(&p.ptype));
        if done {
            return Verdict::Done;
        }
        // A new process that keeps crashing will not become ready in time:
        // say so now instead of at the end of the deploy timeout.
        match crash_loop_reason(deployments, processes) {
            Some(reason) => Verdict::Failed(reason),
            None => Verdict::Pending,
        }
    })
    .await;
    result.map_err(|error| match error {
        WaitError::Failed(reason) => reason,
        WaitError::TimedOut(last) => not_converged_reason(deployments, &last, timeout),
    })
}

/// Restarts after which a new process counts as crash-looping.
const CRASH_LOOP_RESTARTS: u32 = 2;

fn crash_loop_reason(deployments: &[Deployment], processes: &[ProcessStatus]) -> Option<String> {
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

fn not_converged_reason(
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

/// Why a deploy failed.
#[derive(Debug)]
pub enum DeployError {
    /// Nothing was created (bad input, store error).
    Rejected(ApiError),
    /// The release `version` was created but did not roll out; it is marked
    /// failed and the previous release runs again.
    Failed { version: u32, reason: String },
}

impl From<ApiError> for DeployError {
    fn from(error: ApiError) -> Self {
        DeployError::Rejected(error)
    }
}

impl From<drycc_store::StoreError> for DeployError {
    fn from(error: drycc_store::StoreError) -> Self {
        DeployError::Rejected(error.into())
    }
}

impl From<DeployError> for ApiError {
    fn from(error: DeployError) -> ApiError {
        match error {
            DeployError::Rejected(error) => error,
            DeployError::Failed { version, reason } => {
                ApiError::bad_request(format!("release v{version} failed: {reason}"))
            }
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

/// Create the next release and roll it out. On a failed rollout the release
/// stays, marked failed with the reason, and the previous good release (and
/// structure) is applied again.
pub async fn release(
    state: &AppState,
    app_id: &str,
    change: ReleaseChange,
    progress: Option<&mpsc::Sender<String>>,
) -> Result<Release, DeployError> {
    let lock = state.app_lock(app_id);
    let _guard = lock.lock().await;
    let before = state
        .store
        .get_app(app_id)
        .await?
        .ok_or_else(ApiError::app_not_found)?;
    let previous = state.store.last_good_release(app_id).await?;
    let release = state
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
        .await?;
    let app = state
        .store
        .get_app(app_id)
        .await?
        .ok_or_else(ApiError::app_not_found)?;
    say(
        progress,
        format!(
            "-----> Rolling out v{}: {}",
            release.version, release.summary
        ),
    )
    .await;
    state
        .engine
        .log_event(
            app_id,
            &format!("{} (v{})", release.summary, release.version),
        )
        .await;
    match roll_out(state, &app, &release).await {
        Ok(()) => {
            state
                .store
                .mark_release_succeeded(app_id, release.version)
                .await?;
            Ok(release)
        }
        Err(reason) => {
            tracing::warn!(app = app_id, version = release.version, %reason, "Release failed to roll out.");
            state
                .store
                .mark_release_failed(app_id, release.version, &reason)
                .await?;
            state
                .engine
                .log_event(app_id, &format!("v{} failed: {reason}", release.version))
                .await;
            state.store.set_structure(app_id, &before.structure).await?;
            if let Some(previous) = previous {
                let restored = App {
                    structure: before.structure.clone(),
                    ..app
                };
                if let Err(error) = roll_back_to(state, &restored, &previous).await {
                    tracing::warn!(app = app_id, %error, "The previous release did not come back.");
                }
            }
            Err(DeployError::Failed {
                version: release.version,
                reason,
            })
        }
    }
}

/// Re-apply a known-good release without waiting for the full deploy timeout.
async fn roll_back_to(state: &AppState, app: &App, release: &Release) -> Result<(), String> {
    apply_all(state, &deployments(state, app, release)).await
}

async fn say(progress: Option<&mpsc::Sender<String>>, line: String) {
    if let Some(progress) = progress {
        // A client that went away must not stop the deploy.
        let _ = progress.send(line).await;
    }
}

/// Bring every app back to its formation (controller start).
pub async fn restore_all(state: &AppState) -> ApiResult<()> {
    for app in state.store.list_apps().await? {
        let Some(release) = state.store.last_good_release(&app.id).await? else {
            continue;
        };
        for deployment in deployments(state, &app, &release) {
            if let Err(error) = state.engine.apply(deployment).await {
                tracing::warn!(app = %app.id, %error, "Could not restore the formation.");
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn deployment(ptype: &str, hash: &str, replicas: u32) -> Deployment {
        Deployment {
            template: ProcessTemplate {
                app: "app".into(),
                ptype: ptype.into(),
                release: 2,
                hash: hash.into(),
                command: "true".into(),
                env: Default::default(),
                workdir: PathBuf::from("/"),
                image: None,
                grace_period: Duration::from_secs(1),
                readiness: None,
                liveness: None,
                cpu_millis: None,
                memory_bytes: None,
            },
            replicas,
        }
    }

    fn process(ptype: &str, hash: &str, restarts: u32, ready: bool) -> ProcessStatus {
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
            port: None,
            last_exit: Some("exited with code 1".into()),
            command: "true".into(),
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
