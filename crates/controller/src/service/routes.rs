//! The routing table's publisher: the watch the router reads, and the
//! requests to compute the table again (the loop that computes it is
//! `loops::routes`). A change that should hold at the router before its
//! answer (scale, release, routable, domains) waits with [`RoutePublisher::sync`].

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use drycc_router::RouteTable;
use tokio::sync::{watch, Notify};

/// A `sync` gives up waiting after this long (the table follows anyway).
const SYNC_LIMIT: Duration = Duration::from_secs(5);

/// The table's publisher and the requests to compute it again.
pub struct RoutePublisher {
    table: watch::Sender<Arc<RouteTable>>,
    store_dirty: AtomicBool,
    wake: Notify,
    requested: AtomicU64,
    done: watch::Sender<u64>,
    /// Whether the route loop (`loops::routes`) runs (a controller with no
    /// route loop, as in the reconciler's tests, has no table to wait for).
    running: AtomicBool,
}

impl Default for RoutePublisher {
    fn default() -> Self {
        RoutePublisher::new()
    }
}

impl RoutePublisher {
    pub fn new() -> RoutePublisher {
        RoutePublisher {
            table: drycc_router::channel().0,
            store_dirty: AtomicBool::new(true),
            wake: Notify::new(),
            requested: AtomicU64::new(0),
            done: watch::channel(0).0,
            running: AtomicBool::new(false),
        }
    }

    pub fn subscribe(&self) -> watch::Receiver<Arc<RouteTable>> {
        self.table.subscribe()
    }

    /// An app was created or destroyed, or its settings or domains changed.
    pub fn store_changed(&self) {
        self.store_dirty.store(true, Ordering::Release);
        self.wake.notify_one();
    }

    /// The route loop runs from now until the guard is dropped.
    pub fn running(&self) -> Running<'_> {
        self.running.store(true, Ordering::Release);
        Running(&self.running)
    }

    /// The newest `sync` so far: a table computed from now on answers it.
    pub fn requested(&self) -> u64 {
        self.requested.load(Ordering::Acquire)
    }

    /// Whether the store changed since the last call (which clears it).
    pub fn take_store_changed(&self) -> bool {
        self.store_dirty.swap(false, Ordering::AcqRel)
    }

    /// Keep the store changed: reading it failed.
    pub fn keep_store_changed(&self) {
        self.store_dirty.store(true, Ordering::Release);
    }

    /// Publish a new table.
    pub fn publish(&self, table: RouteTable) {
        self.table.send_replace(Arc::new(table));
    }

    /// A table computed after `requested` syncs was published (or was the
    /// same as the last): those syncs are answered.
    pub fn answered(&self, requested: u64) {
        self.done.send_if_modified(|done| {
            let newer = requested > *done;
            *done = (*done).max(requested);
            newer
        });
    }

    /// Until a change of the store or a `sync` asks for a new table.
    pub async fn asked(&self) {
        self.wake.notified().await
    }

    /// Wait until a table computed after this call is published, so that
    /// an API answer ("scaled", "routing disabled") holds at the router too.
    pub async fn sync(&self) {
        if !self.running.load(Ordering::Acquire) {
            return;
        }
        let target = self.requested.fetch_add(1, Ordering::AcqRel) + 1;
        self.wake.notify_one();
        let mut done = self.done.subscribe();
        let _ = tokio::time::timeout(SYNC_LIMIT, done.wait_for(|d| *d >= target)).await;
    }
}

/// Clears the running flag however the route loop ends.
pub struct Running<'a>(&'a AtomicBool);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}
