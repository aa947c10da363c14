//! The reconciler: the only writer of engine state.
//!
//! The store holds the desired state of every app (its structure, restart
//! generations and desired release: the newest release that has not
//! failed). Services write it and call [`Reconciler::enqueue`]; one
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
//! Requests wait for outcomes on a per-app status watch ([`AppStatus`]),
//! never on the engine call itself, so a client that goes away changes
//! nothing about the outcome.
//!
//! As kube-runtime splits its controller: this module is the queue and the
//! status watches, `run` the runner (one task per app), `pass` the
//! reconciliation of one app. They see only the [`Context`](crate::context::Context).

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use drycc_engine::Deployment;
use tokio::sync::{mpsc, watch, Notify};

mod pass;
mod run;

pub use run::run;

#[cfg(test)]
pub(crate) mod fake;

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

#[derive(Default)]
struct Queue {
    /// The last generation handed out; generations grow across all apps.
    last: u64,
    /// Per app, the generation of its newest request.
    requested: HashMap<String, u64>,
    /// Apps enqueued since the run loop last looked.
    dirty: BTreeSet<String>,
}

/// The queue and the status watches, shared by its clones; the run loop
/// is [`run::run`].
#[derive(Clone, Default)]
pub struct Reconciler {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    queue: Mutex<Queue>,
    wake: Notify,
    statuses: Mutex<HashMap<String, watch::Sender<AppStatus>>>,
    /// Where every enqueued app is also sent, so that a follower can tell
    /// the leader (see `loops::duties`).
    relay: Option<mpsc::UnboundedSender<String>>,
}

fn locked<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Reconciler {
    #[cfg(test)]
    pub fn new() -> Reconciler {
        Reconciler::default()
    }

    /// A queue that also sends every enqueued app to `relay`.
    pub fn relaying_to(relay: mpsc::UnboundedSender<String>) -> Reconciler {
        Reconciler {
            inner: Arc::new(Inner {
                relay: Some(relay),
                ..Inner::default()
            }),
        }
    }

    /// Ask for a pass over `app`. Returns the request's generation: once
    /// the app's [`AppStatus::applied`] reaches it, the engine has been
    /// given desired state read after this call. Call it after writing the
    /// desired state.
    pub fn enqueue(&self, app: &str) -> u64 {
        let generation = {
            let mut queue = locked(&self.inner.queue);
            queue.last += 1;
            let generation = queue.last;
            queue.requested.insert(app.to_string(), generation);
            queue.dirty.insert(app.to_string());
            generation
        };
        self.inner.wake.notify_one();
        if let Some(relay) = &self.inner.relay {
            let _ = relay.send(app.to_string());
        }
        generation
    }

    /// The generation of the newest request for `app` (0: none).
    pub(crate) fn requested(&self, app: &str) -> u64 {
        locked(&self.inner.queue)
            .requested
            .get(app)
            .copied()
            .unwrap_or(0)
    }

    fn take_dirty(&self) -> BTreeSet<String> {
        std::mem::take(&mut locked(&self.inner.queue).dirty)
    }

    /// The app's status watch.
    pub fn subscribe(&self, app: &str) -> watch::Receiver<AppStatus> {
        locked(&self.inner.statuses)
            .entry(app.to_string())
            .or_insert_with(|| watch::channel(AppStatus::default()).0)
            .subscribe()
    }

    pub(crate) fn publish(&self, app: &str, change: impl FnOnce(&mut AppStatus)) {
        let mut statuses = locked(&self.inner.statuses);
        let sender = statuses
            .entry(app.to_string())
            .or_insert_with(|| watch::channel(AppStatus::default()).0);
        sender.send_modify(change);
    }

    /// Drop what is kept for an app the store no longer has, unless a
    /// newer request came in meanwhile.
    fn forget(&self, app: &str, seen: u64) {
        let mut queue = locked(&self.inner.queue);
        if queue.requested.get(app).copied().unwrap_or(0) <= seen {
            queue.requested.remove(app);
            // Waiters see the channel close and fall back to the store.
            locked(&self.inner.statuses).remove(app);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert!(locked(&reconciler.inner.statuses).get("a").is_none());
    }
}
