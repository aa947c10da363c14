//! The reconciler: the only writer of engine state.
//!
//! The store holds the desired state of every app (its structure, restart
//! generations and desired release: the newest release that has not
//! failed). API handlers write it and call [`Reconciler::enqueue`]; one
//! long-lived task ([`run`]) takes app ids off a deduplicating queue and
//! reconciles each app in a task of its own, never two at once for one app,
//! in the style of kube-runtime's `Controller`:
//!
//! - level-triggered: every pass reads the store afresh and applies what it
//!   finds, so a change made while a pass waits (a scale during a rollout)
//!   is simply part of the next pass;
//! - debounced: a burst of enqueues of one app becomes one pass;
//! - retried with back-off when the store or the engine fails.
//!
//! A `pending` release is judged here, not in the request that created it:
//! succeeded once every deployment has converged, failed on a crash loop,
//! on an engine refusal, or when the deploy timeout has passed since the
//! release was created (the stored creation time, so the judgement survives
//! a controller restart). A failed release gets its reason, the app gets
//! back the structure the release replaced, and the next pass runs the last
//! good release again.
//!
//! Handlers wait for outcomes on a per-app status watch ([`AppStatus`]),
//! never on the engine call itself, so a client that goes away changes
//! nothing about the outcome.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use drycc_engine::{is_converged, AutoscaleSpec, Deployment, EngineError, ProcessStatus};
use drycc_store::ReleaseState;
use tokio::sync::{watch, Notify};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::deploy::{self, DeployError};
use crate::state::{AppState, Shared};

/// How long the queue lets a burst of enqueues settle before it starts
/// passes.
const DEBOUNCE: Duration = Duration::from_millis(10);
/// How long a waiting pass lets a burst of engine changes settle.
const COALESCE: Duration = Duration::from_millis(50);
/// Readiness probes may pass without a change being published yet: a
/// pending rollout is judged again at least this often.
const JUDGE_TICK: Duration = Duration::from_millis(250);
/// Back-off after a failed pass: doubles from the first to the last.
const BACKOFF_FIRST: Duration = Duration::from_millis(250);
const BACKOFF_LAST: Duration = Duration::from_secs(30);

/// What the reconciler has done for one app, published on a watch.
#[derive(Clone, Debug, Default)]
pub struct AppStatus {
    /// The newest request generation (see [`Reconciler::enqueue`]) whose
    /// desired state is applied to the engine.
    pub applied: u64,
    /// The deployments applied by that pass.
    pub deployments: Arc<Vec<Deployment>>,
    /// The last pass that failed on the engine: its generation and why.
    pub fault: Option<(u64, Fault)>,
    /// Bumped whenever a release of the app is judged, so that release
    /// waiters read its new state from the store.
    pub judged: u64,
}

/// Why a pass could not apply the desired state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The engine refused it (it will not get better by retrying).
    Invalid(String),
    /// The engine is unavailable; the reconciler keeps retrying.
    Unavailable(String),
}

impl From<Fault> for DeployError {
    fn from(fault: Fault) -> DeployError {
        match fault {
            Fault::Invalid(reason) => DeployError::Invalid(reason),
            Fault::Unavailable(reason) => DeployError::Unavailable(reason),
        }
    }
}

#[derive(Default)]
struct Queue {
    /// The last generation handed out; generations grow across all apps.
    last: u64,
    /// Per app, the generation of its newest request.
    requested: HashMap<String, u64>,
    /// Apps enqueued since the run loop last looked.
    dirty: BTreeSet<String>,
}

/// The queue and the status watches; the run loop is [`run`].
#[derive(Default)]
pub struct Reconciler {
    queue: Mutex<Queue>,
    wake: Notify,
    statuses: Mutex<HashMap<String, watch::Sender<AppStatus>>>,
}

fn locked<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Reconciler {
    pub fn new() -> Reconciler {
        Reconciler::default()
    }

    /// Ask for a pass over `app`. Returns the request's generation: once
    /// the app's [`AppStatus::applied`] reaches it, the engine has been
    /// given desired state read after this call. Call it after writing the
    /// desired state.
    pub fn enqueue(&self, app: &str) -> u64 {
        let generation = {
            let mut queue = locked(&self.queue);
            queue.last += 1;
            let generation = queue.last;
            queue.requested.insert(app.to_string(), generation);
            queue.dirty.insert(app.to_string());
            generation
        };
        self.wake.notify_one();
        generation
    }

    /// The generation of the newest request for `app` (0: none).
    fn requested(&self, app: &str) -> u64 {
        locked(&self.queue).requested.get(app).copied().unwrap_or(0)
    }

    fn take_dirty(&self) -> BTreeSet<String> {
        std::mem::take(&mut locked(&self.queue).dirty)
    }

    /// The app's status watch.
    pub fn subscribe(&self, app: &str) -> watch::Receiver<AppStatus> {
        locked(&self.statuses)
            .entry(app.to_string())
            .or_insert_with(|| watch::channel(AppStatus::default()).0)
            .subscribe()
    }

    fn publish(&self, app: &str, change: impl FnOnce(&mut AppStatus)) {
        let mut statuses = locked(&self.statuses);
        let sender = statuses
            .entry(app.to_string())
            .or_insert_with(|| watch::channel(AppStatus::default()).0);
        sender.send_modify(change);
    }

    /// Drop what is kept for an app the store no longer has, unless a
    /// newer request came in meanwhile.
    fn forget(&self, app: &str, seen: u64) {
        let mut queue = locked(&self.queue);
        if queue.requested.get(app).copied().unwrap_or(0) <= seen {
            queue.requested.remove(app);
            // Waiters see the channel close and fall back to the store.
            locked(&self.statuses).remove(app);
        }
    }
}

/// The running app tasks: at most one per app.
struct Tasks {
    state: Shared,
    set: JoinSet<(String, u64, bool)>,
    /// Per running app, the poke that makes its task pass again.
    running: HashMap<String, Arc<Notify>>,
    names: HashMap<tokio::task::Id, String>,
}

impl Tasks {
    /// Start a task for `app`, or poke the one that runs.
    fn start(&mut self, app: String) {
        if let Some(poke) = self.running.get(&app) {
            poke.notify_one();
            return;
        }
        let poke = Arc::new(Notify::new());
        self.running.insert(app.clone(), poke.clone());
        let handle = self
            .set
            .spawn(reconcile_app(self.state.clone(), app.clone(), poke));
        self.names.insert(handle.id(), app);
    }
}

/// The run loop: start a task per enqueued app (or poke the running one),
/// until `stop` is cancelled; then abort the app tasks. Everything they
/// were doing is in the store and resumes at the next start.
pub async fn run(state: Shared, stop: CancellationToken) {
    let mut tasks = Tasks {
        state: state.clone(),
        set: JoinSet::new(),
        running: HashMap::new(),
        names: HashMap::new(),
    };
    let reconciler = &state.reconciler;
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = reconciler.wake.notified() => {
                tokio::time::sleep(DEBOUNCE).await;
                for app in reconciler.take_dirty() {
                    tasks.start(app);
                }
            }
            Some(joined) = tasks.set.join_next_with_id() => {
                let (id, result) = match joined {
                    Ok((id, result)) => (id, Ok(result)),
                    Err(error) => (error.id(), Err(error)),
                };
                let Some(app) = tasks.names.remove(&id) else { continue };
                tasks.running.remove(&app);
                match result {
                    Ok((_, seen, gone)) => {
                        // A request that came after the task's last read
                        // starts a new task.
                        if reconciler.requested(&app) > seen {
                            tasks.start(app);
                        } else if gone {
                            reconciler.forget(&app, seen);
                        }
                    }
                    // A bug; the next request for the app starts over.
                    Err(error) => tracing::error!(app = %app, %error, "A reconcile task died."),
                }
            }
        }
    }
    tasks.set.shutdown().await;
}

/// What the app's task does after a pass.
enum Next {
    /// The engine has the desired state and nothing is pending.
    Done,
    /// The app is gone from the store and the engine.
    Gone,
    /// A release was just judged failed: pass again to run the last good one.
    Again,
    /// A release is pending: judge it again on a change, or at `deadline`.
    Wait(tokio::time::Instant),
}

/// One app's task: passes until the desired state is applied and nothing
/// is pending. Returns (app, the generation its last pass read, gone).
async fn reconcile_app(state: Shared, app: String, poke: Arc<Notify>) -> (String, u64, bool) {
    let mut changes = state.engine.changes(Some(&app));
    let mut applied = Applied::default();
    let mut backoff = BACKOFF_FIRST;
    loop {
        let generation = state.reconciler.requested(&app);
        let span = tracing::info_span!("reconcile", app = %app, generation);
        let result = pass(&state, &app, generation, &mut applied)
            .instrument(span)
            .await;
        // The pass's own engine calls bump the change counter: they are no
        // reason for another pass.
        changes.borrow_and_update();
        match result {
            Ok(Next::Done) => return (app, generation, false),
            Ok(Next::Gone) => return (app, generation, true),
            Ok(Next::Again) => backoff = BACKOFF_FIRST,
            Ok(Next::Wait(deadline)) => {
                backoff = BACKOFF_FIRST;
                tokio::select! {
                    _ = changes.changed() => tokio::time::sleep(COALESCE).await,
                    _ = tokio::time::sleep(JUDGE_TICK) => {}
                    _ = tokio::time::sleep_until(deadline) => {}
                    _ = poke.notified() => tokio::time::sleep(DEBOUNCE).await,
                }
            }
            Err(error) => {
                tracing::warn!(app = %app, %error, retry_in = ?backoff, "Reconcile failed; retrying.");
                // Apply everything again after a failure.
                applied.deployments = None;
                applied.autoscale = None;
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = poke.notified() => {}
                }
                backoff = (backoff * 2).min(BACKOFF_LAST);
            }
        }
    }
}

/// What one app's task has given the engine.
#[derive(Default)]
struct Applied {
    /// The deployments of the last pass, not applied again while unchanged.
    deployments: Option<Vec<Deployment>>,
    /// Every type this task has applied: the engine keeps desired state for
    /// a type until it is removed, whether or not processes of it run yet.
    types: BTreeSet<String>,
    /// The autoscale rules last handed to an engine with its own
    /// autoscaler, by type.
    autoscale: Option<BTreeMap<String, Option<AutoscaleSpec>>>,
}

/// Read the app's desired state, hand it to the engine (unless `applied`
/// shows this task gave it the same deployments already), remove the types
/// it no longer has, and judge a pending release.
async fn pass(
    state: &AppState,
    app_id: &str,
    generation: u64,
    applied: &mut Applied,
) -> Result<Next, DeployError> {
    let reconciler = &state.reconciler;
    let Some(app) = state.store.get_app(app_id).await? else {
        if state.engine.apps().await?.iter().any(|a| a == app_id) {
            tracing::info!(app = app_id, "Removing an app the store no longer has.");
            state.engine.remove_app(app_id).await?;
        }
        reconciler.publish(app_id, |s| {
            s.applied = s.applied.max(generation);
            s.deployments = Arc::new(Vec::new());
        });
        return Ok(Next::Gone);
    };
    let release = state.store.desired_release(app_id).await?;
    let deployments = release
        .as_ref()
        .map(|r| deploy::deployments(state, &app, r))
        .unwrap_or_default();
    let pending = release
        .as_ref()
        .filter(|r| r.state == ReleaseState::Pending);

    if applied.deployments.as_ref() != Some(&deployments) {
        for deployment in &deployments {
            match state.engine.apply(deployment.clone()).await {
                Ok(()) => {
                    applied.types.insert(deployment.template.ptype.clone());
                }
                Err(error) => return refused(state, app_id, generation, pending, error).await,
            }
        }
        applied.deployments = Some(deployments.clone());
    }
    if state.engine.capabilities().autoscaler {
        let rules = engine_autoscale_rules(state, app_id, &deployments).await?;
        if applied.autoscale.as_ref() != Some(&rules) {
            for (ptype, rule) in &rules {
                if let Err(error) = state.engine.autoscale(app_id, ptype, rule.clone()).await {
                    return refused(state, app_id, generation, pending, error).await;
                }
            }
            applied.autoscale = Some(rules);
        }
    }
    let processes = state.engine.processes(app_id).await?;
    let wanted: BTreeSet<&str> = deployments
        .iter()
        .map(|d| d.template.ptype.as_str())
        .collect();
    let stale: BTreeSet<String> = processes
        .iter()
        .map(|p| p.ptype.as_str())
        .chain(applied.types.iter().map(String::as_str))
        .filter(|t| !wanted.contains(t))
        .map(str::to_string)
        .collect();
    for ptype in &stale {
        state.engine.remove_type(app_id, ptype).await?;
        applied.types.remove(ptype);
    }
    let deployments = Arc::new(deployments);
    reconciler.publish(app_id, |s| {
        s.applied = s.applied.max(generation);
        s.deployments = deployments.clone();
        if s.fault.as_ref().is_some_and(|(g, _)| *g <= generation) {
            s.fault = None;
        }
    });

    let Some(release) = pending else {
        return Ok(Next::Done);
    };
    let elapsed = (chrono::Utc::now() - release.created)
        .to_std()
        .unwrap_or_default();
    let timeout = state.settings.deploy_timeout();
    match judge(&deployments, &processes, elapsed, timeout) {
        Judgement::Succeeded => {
            if state
                .store
                .mark_release_succeeded(app_id, release.version)
                .await?
            {
                tracing::info!(
                    app = app_id,
                    version = release.version,
                    "Release rolled out."
                );
            }
            reconciler.publish(app_id, |s| s.judged += 1);
            Ok(Next::Done)
        }
        Judgement::Failed(reason) => {
            fail(state, app_id, release.version, &reason).await?;
            Ok(Next::Again)
        }
        Judgement::Pending { remaining } => Ok(Next::Wait(tokio::time::Instant::now() + remaining)),
    }
}

/// The engine refused a pass: an invalid desired state fails the pending
/// release (or is published as the app's fault, which retrying will not
/// mend); anything else is published and retried with back-off.
async fn refused(
    state: &AppState,
    app_id: &str,
    generation: u64,
    pending: Option<&drycc_store::Release>,
    error: EngineError,
) -> Result<Next, DeployError> {
    let reconciler = &state.reconciler;
    match error {
        EngineError::Invalid(reason) => {
            if let Some(release) = pending {
                fail(state, app_id, release.version, &reason).await?;
                return Ok(Next::Again);
            }
            tracing::warn!(app = app_id, %reason, "The engine refused the app's desired state.");
            reconciler.publish(app_id, |s| {
                s.fault = Some((generation, Fault::Invalid(reason)));
            });
            Ok(Next::Done)
        }
        error => {
            let fault = Fault::Unavailable(error.detail());
            reconciler.publish(app_id, |s| s.fault = Some((generation, fault)));
            Err(error.into())
        }
    }
}

/// For an engine with its own autoscaler: the rule of every deployed type
/// (`None` for a type without one), with the stabilisation windows of the
/// controller's settings.
async fn engine_autoscale_rules(
    state: &AppState,
    app_id: &str,
    deployments: &[Deployment],
) -> Result<BTreeMap<String, Option<AutoscaleSpec>>, DeployError> {
    let settings = state.store.get_settings(app_id).await?;
    let (_, policy) = state.settings.autoscale();
    Ok(deployments
        .iter()
        .map(|d| {
            let ptype = d.template.ptype.clone();
            let rule = settings
                .autoscale
                .get(&ptype)
                .and_then(|v| {
                    serde_json::from_value::<drycc_api_types::AutoscaleRule>(v.clone()).ok()
                })
                .map(|rule| AutoscaleSpec {
                    min: rule.min,
                    max: rule.max,
                    cpu_percent: rule.cpu_percent,
                    up_window: policy.up_window,
                    down_window: policy.down_window,
                });
            (ptype, rule)
        })
        .collect())
}

/// Fail a pending release: the store marks it and restores the structure
/// it replaced in one transaction; the app's log says why.
async fn fail(
    state: &AppState,
    app_id: &str,
    version: u32,
    reason: &str,
) -> Result<(), DeployError> {
    if state
        .store
        .fail_rollout(app_id, version, reason)
        .await?
        .is_some()
    {
        tracing::warn!(app = app_id, version, %reason, "Release failed to roll out.");
        state
            .event(app_id, &format!("v{version} failed: {reason}"))
            .await;
    }
    state.reconciler.publish(app_id, |s| s.judged += 1);
    Ok(())
}

/// What the current process list says about a pending release.
#[derive(Debug, PartialEq, Eq)]
pub enum Judgement {
    /// Every deployment has exactly its replicas ready, nothing else runs.
    Succeeded,
    /// It will not roll out; the reason.
    Failed(String),
    /// Not yet; judged failed by the timeout in `remaining`.
    Pending { remaining: Duration },
}

/// Judge a pending release from the processes that run `elapsed` after it
/// was created. A type that is not part of the release must be gone too.
pub fn judge(
    deployments: &[Deployment],
    processes: &[ProcessStatus],
    elapsed: Duration,
    timeout: Duration,
) -> Judgement {
    let stale = processes
        .iter()
        .any(|p| !deployments.iter().any(|d| d.template.ptype == p.ptype));
    if !stale && deployments.iter().all(|d| is_converged(d, processes)) {
        return Judgement::Succeeded;
    }
    // A new process that keeps crashing will not become ready in time:
    // say so now instead of at the end of the deploy timeout.
    if let Some(reason) = deploy::crash_loop_reason(deployments, processes) {
        return Judgement::Failed(reason);
    }
    match timeout.checked_sub(elapsed) {
        Some(remaining) if !remaining.is_zero() => Judgement::Pending { remaining },
        _ => Judgement::Failed(deploy::not_converged_reason(
            deployments,
            processes,
            timeout,
        )),
    }
}

#[cfg(test)]
pub(crate) mod fake;
#[cfg(test)]
mod passes;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deploy::tests::{deployment, process};

    const TIMEOUT: Duration = Duration::from_secs(30);

    #[test]
    fn a_release_succeeds_when_every_type_has_its_ready_processes() {
        let wanted = [deployment("web", "new", 1), deployment("worker", "new", 0)];
        let ready = [process("web", "new", 0, true)];
        assert_eq!(
            judge(&wanted, &ready, Duration::from_secs(1), TIMEOUT),
            Judgement::Succeeded
        );
        // The old web still runs, or a type the release dropped does.
        let old = [
            process("web", "new", 0, true),
            process("web", "old", 0, true),
        ];
        assert!(matches!(
            judge(&wanted, &old, Duration::from_secs(1), TIMEOUT),
            Judgement::Pending { .. }
        ));
        let dropped = [
            process("web", "new", 0, true),
            process("clock", "old", 0, true),
        ];
        assert!(matches!(
            judge(&wanted, &dropped, Duration::from_secs(1), TIMEOUT),
            Judgement::Pending { .. }
        ));
    }

    #[test]
    fn a_pending_release_fails_at_the_timeout_measured_from_its_creation() {
        let wanted = [deployment("web", "new", 1)];
        let starting = [
            process("web", "old", 0, true),
            process("web", "new", 0, false),
        ];
        assert_eq!(
            judge(&wanted, &starting, Duration::from_secs(10), TIMEOUT),
            Judgement::Pending {
                remaining: Duration::from_secs(20)
            }
        );
        // After a controller restart the elapsed time may exceed it at once.
        for elapsed in [TIMEOUT, Duration::from_secs(3600)] {
            let Judgement::Failed(reason) = judge(&wanted, &starting, elapsed, TIMEOUT) else {
                panic!("not failed at {elapsed:?}");
            };
            assert!(
                reason.starts_with("processes did not become ready within 30 s: web: 0 of 1"),
                "{reason}"
            );
        }
    }

    #[test]
    fn a_crash_loop_fails_a_release_before_the_timeout() {
        let wanted = [deployment("web", "new", 1)];
        let looping = [
            process("web", "old", 0, true),
            process("web", "new", 2, false),
        ];
        let Judgement::Failed(reason) = judge(&wanted, &looping, Duration::ZERO, TIMEOUT) else {
            panic!("a crash loop is a failure");
        };
        assert!(reason.starts_with("processes keep crashing"), "{reason}");
    }

    #[test]
    fn a_release_scaled_to_zero_succeeds_once_its_processes_are_gone() {
        let wanted = [deployment("web", "new", 0)];
        let stopping = [process("web", "old", 0, true)];
        assert!(matches!(
            judge(&wanted, &stopping, Duration::ZERO, TIMEOUT),
            Judgement::Pending { .. }
        ));
        assert_eq!(
            judge(&wanted, &[], Duration::ZERO, TIMEOUT),
            Judgement::Succeeded
        );
    }

    #[test]
    fn enqueues_of_one_app_are_deduplicated_and_generations_grow() {
        let reconciler = Reconciler::new();
        let first = reconciler.enqueue("a");
        let second = reconciler.enqueue("a");
        let other = reconciler.enqueue("b");
        assert!(first < second && second < other);
        assert_eq!(reconciler.requested("a"), second);
        let dirty: Vec<String> = reconciler.take_dirty().into_iter().collect();
        assert_eq!(dirty, ["a", "b"]);
        assert!(reconciler.take_dirty().is_empty());
        // A gone app is forgotten, unless asked for again meanwhile.
        let _status = reconciler.subscribe("a");
        reconciler.forget("a", first);
        assert_eq!(reconciler.requested("a"), second);
        reconciler.forget("a", second);
        assert_eq!(reconciler.requested("a"), 0);
        assert!(locked(&reconciler.statuses).get("a").is_none());
    }
}
