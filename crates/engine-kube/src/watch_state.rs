//! The engine's view of the cluster: reflectors (a watch feeding an
//! in-memory store) on the objects labelled `heritage=drycc`, each event
//! bumping the change counter of the app it belongs to. Nothing polls: a
//! broken watch is re-listed with back-off by kube's watcher.

use std::fmt::Debug;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use drycc_engine_changes::Changes;
use futures::StreamExt;
use kube::api::Api;
use kube::runtime::reflector::{self, Store};
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use kube::Resource;
use serde::de::DeserializeOwned;
use tokio::task::JoinHandle;

/// The app an object belongs to: its Namespace, or the Namespace itself.
fn app_of<K: Resource>(object: &K) -> Option<String> {
    object
        .meta()
        .namespace
        .clone()
        .or_else(|| object.meta().name.clone())
}

/// The errors of the watches: how many, and the last one, for `connect`
/// to say why the first listing did not come and for health checks (a
/// watch refused, say for a missing right, falls back to listing again
/// and again with back-off: it works, but late and at a cost).
#[derive(Debug, Default)]
pub struct WatchErrors {
    count: AtomicU64,
    last: Mutex<Option<String>>,
}

impl WatchErrors {
    fn record(&self, what: &str, error: &watcher::Error) {
        tracing::warn!("watch of {what}: {error}");
        self.count.fetch_add(1, Ordering::Relaxed);
        *self.last.lock().unwrap_or_else(|e| e.into_inner()) =
            Some(format!("watch of {what}: {error}"));
    }

    /// How many errors the watches have met since the engine connected.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// The last of them.
    pub fn last(&self) -> Option<String> {
        self.last.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

fn bump<K: Resource>(changes: &Changes, event: &Event<K>) {
    match event {
        Event::Apply(object) | Event::Delete(object) | Event::InitApply(object) => {
            changes.bump(app_of(object).as_deref())
        }
        // A (re)listing is complete: anything may have changed meanwhile.
        Event::InitDone => changes.bump(None),
        Event::Init => {}
    }
}

/// A store of the objects matching `labels`, kept by a task of its own.
pub(crate) fn reflect<K>(
    api: Api<K>,
    labels: &str,
    changes: Arc<Changes>,
    errors: Arc<WatchErrors>,
) -> (Store<K>, JoinHandle<()>)
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone,
{
    let (store, writer) = reflector::store();
    let config = watcher::Config::default().labels(labels);
    let stream = reflector::reflector(writer, watcher::watcher(api, config).default_backoff());
    let task = tokio::spawn(async move {
        futures::pin_mut!(stream);
        while let Some(event) = stream.next().await {
            match event {
                Ok(event) => bump(&changes, &event),
                Err(e) => errors.record(&K::plural(&Default::default()), &e),
            }
        }
    });
    (store, task)
}

/// Bump the counters on every change of the objects matching `labels`,
/// without keeping them.
pub(crate) fn bump_on<K>(
    api: Api<K>,
    labels: &str,
    changes: Arc<Changes>,
    errors: Arc<WatchErrors>,
) -> JoinHandle<()>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Default,
{
    let config = watcher::Config::default().labels(labels);
    let stream = watcher::watcher(api, config).default_backoff();
    tokio::spawn(async move {
        futures::pin_mut!(stream);
        while let Some(event) = stream.next().await {
            match event {
                Ok(event) => bump(&changes, &event),
                Err(e) => errors.record(&K::plural(&Default::default()), &e),
            }
        }
    })
}
