//! The run loop: a task per enqueued app (at most one per app), each
//! passing until the app's desired state is applied and nothing is
//! pending, with back-off after a failure.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::pass::{pass, Applied, Next};
use super::Reconciler;
use crate::context::Context;

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

/// The running app tasks: at most one per app.
struct Tasks {
    ctx: Arc<Context>,
    reconciler: Reconciler,
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
        let handle = self.set.spawn(reconcile_app(
            self.ctx.clone(),
            self.reconciler.clone(),
            app.clone(),
            poke,
        ));
        self.names.insert(handle.id(), app);
    }
}

/// The run loop: start a task per enqueued app (or poke the running one),
/// until `stop` is cancelled; then abort the app tasks. Everything they
/// were doing is in the store and resumes at the next start.
pub async fn run(ctx: Arc<Context>, reconciler: Reconciler, stop: CancellationToken) {
    let mut tasks = Tasks {
        ctx,
        reconciler: reconciler.clone(),
        set: JoinSet::new(),
        running: HashMap::new(),
        names: HashMap::new(),
    };
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = reconciler.inner.wake.notified() => {
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

/// One app's task: passes until the desired state is applied and nothing
/// is pending. Returns (app, the generation its last pass read, gone).
async fn reconcile_app(
    ctx: Arc<Context>,
    reconciler: Reconciler,
    app: String,
    poke: Arc<Notify>,
) -> (String, u64, bool) {
    let mut changes = ctx.engine.changes(Some(&app));
    let mut applied = Applied::default();
    let mut backoff = BACKOFF_FIRST;
    loop {
        let generation = reconciler.requested(&app);
        let span = tracing::info_span!("reconcile", app = %app, generation);
        let result = pass(&ctx, &reconciler, &app, generation, &mut applied)
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
