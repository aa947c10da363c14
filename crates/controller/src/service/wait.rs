//! The waits of a request for the outcome of the desired state it wrote:
//! on the reconciler's status watch, the store and the engine's process
//! list. They only observe; the reconciler changes engine state.

use std::collections::BTreeSet;
use std::time::Duration;

use drycc_engine::{is_converged, Deployment, ProcessStatus};
use drycc_store::ReleaseState;
use tokio::sync::watch;

use super::{DeployError, Service};
use crate::desired::{
    self,
    verdict::{crash_loop_reason, not_converged_reason},
};
use crate::reconciler::AppStatus;

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
/// Observes only: it never changes engine svc.
pub async fn wait_for(
    svc: &Service,
    app: &str,
    timeout: Duration,
    mut check: impl FnMut(&[ProcessStatus]) -> Verdict,
) -> Result<(), DeployError> {
    let mut changes = svc.engine.changes(Some(app));
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        changes.borrow_and_update();
        let processes = svc.engine.processes(app).await?;
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

/// How much longer than the deploy timeout a release waiter waits for the
/// reconciler's judgement (which the timeout bounds) before it gives up.
const JUDGEMENT_SLACK: Duration = Duration::from_secs(30);

/// Wait until the reconciler has judged release `version`: `Ok` once it
/// succeeded, `ReleaseFailed` with the stored reason once it failed.
pub async fn wait_release(
    svc: &Service,
    app_id: &str,
    version: u32,
    mut status: watch::Receiver<AppStatus>,
) -> Result<(), DeployError> {
    let deadline = tokio::time::Instant::now() + svc.settings.deploy_timeout() + JUDGEMENT_SLACK;
    let mut role = svc.role.clone();
    let mut role_open = true;
    let mut open = true;
    loop {
        status.borrow_and_update();
        // The store is the truth; the watch only says when to look again.
        let release = svc
            .store
            .release(app_id, version)
            .await?
            .ok_or(DeployError::AppGone)?;
        match release.state {
            ReleaseState::Succeeded => {
                // The router sends traffic to the new processes once this
                // answers.
                svc.routes.sync().await;
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
        let look_again = !open || !svc.leading();
        let closed = tokio::select! {
            changed = status.changed(), if open => changed.is_err(),
            _ = tokio::time::sleep(Duration::from_millis(500)), if look_again => false,
            // Stepped down or became leader: wait the other way.
            changed = role.changed(), if role_open => {
                role_open = changed.is_ok();
                false
            }
            _ = svc.stopping.cancelled() => return Err(stopping()),
            _ = tokio::time::sleep_until(deadline) => {
                return Err(DeployError::TimedOut(format!(
                    "release v{version} is still rolling out after {} s; it keeps going",
                    (svc.settings.deploy_timeout() + JUDGEMENT_SLACK).as_secs()
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
    svc: &Service,
    app_id: &str,
    generation: u64,
    types: &BTreeSet<String>,
    mut status: watch::Receiver<AppStatus>,
) -> Result<(), DeployError> {
    if !svc.leading() {
        // The leader applies the change (it was told, see `loops::duties`).
        // On a cluster every replica sees the same Pods, so the follower
        // watches them converge; a local engine's processes are the
        // leader's own, with nothing here to wait for.
        if svc.settings.engine == crate::settings::EngineKind::Kubernetes {
            return wait_types_observed(svc, app_id, types).await;
        }
        return Ok(());
    }
    let timeout = svc.settings.deploy_timeout();
    let deadline = tokio::time::Instant::now() + timeout;
    let mut role = svc.role.clone();
    role.borrow_and_update();
    let mut role_open = true;
    let mut changes = svc.engine.changes(Some(app_id));
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
            let processes = svc.engine.processes(app_id).await?;
            if selected.iter().all(|d| is_converged(d, &processes)) {
                svc.routes.sync().await;
                return Ok(());
            }
            if let Some(reason) = crash_loop_reason(&selected, &processes) {
                return Err(DeployError::CrashLoop(reason));
            }
            last = Some((selected, processes));
        }
        let closed = tokio::select! {
            changed = status.changed(), if open => changed.is_err(),
            _ = svc.stopping.cancelled() => return Err(stopping()),
            changed = role.changed(), if role_open => {
                role_open = changed.is_ok();
                if !svc.leading() {
                    return Err(DeployError::Interrupted(
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
            if svc.store.get_app(app_id).await?.is_none() {
                return Err(DeployError::AppGone);
            }
        }
    }
}

/// [`wait_types`] on a follower whose engine sees what the leader's does:
/// the desired state is read from the store (the leader's reconciler
/// publishes nothing here) and compared with the engine's processes.
async fn wait_types_observed(
    svc: &Service,
    app_id: &str,
    types: &BTreeSet<String>,
) -> Result<(), DeployError> {
    let timeout = svc.settings.deploy_timeout();
    let deadline = tokio::time::Instant::now() + timeout;
    let mut changes = svc.engine.changes(Some(app_id));
    loop {
        changes.borrow_and_update();
        let app = svc
            .store
            .get_app(app_id)
            .await?
            .ok_or(DeployError::AppGone)?;
        let release = svc.store.desired_release(app_id).await?;
        let deployments = match &release {
            Some(release) => {
                let profile = desired::has_profile(&svc.paths, app_id, release).await;
                desired::deployments(svc, &app, release, profile)
            }
            None => Vec::new(),
        };
        let selected: Vec<Deployment> = deployments
            .into_iter()
            .filter(|d| types.contains(&d.template.ptype))
            .collect();
        let processes = svc.engine.processes(app_id).await?;
        if selected.iter().all(|d| is_converged(d, &processes)) {
            svc.routes.sync().await;
            return Ok(());
        }
        if let Some(reason) = crash_loop_reason(&selected, &processes) {
            return Err(DeployError::CrashLoop(reason));
        }
        tokio::select! {
            _ = svc.stopping.cancelled() => return Err(stopping()),
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
    DeployError::Interrupted(
        "the controller is stopping; the change goes on when it starts again".into(),
    )
}
