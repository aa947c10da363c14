//! Change counters of an engine: one for every app together and one per
//! app that someone watches. `Engine::changes` hands out receivers; waiters
//! (the engine itself, the controller) wait on them with `wait_until`
//! instead of sleeping. Every engine keeps its counters here, whether it
//! runs processes itself or watches a cluster.

use std::collections::HashMap;
use std::sync::Mutex;

use tokio::sync::watch;
use tokio::time::{timeout_at, Instant};

/// The counters; bumped on every change of the table.
#[derive(Debug)]
pub struct Changes {
    /// Bumped on every change of any app.
    all: watch::Sender<u64>,
    /// One counter per app, made when someone first watches the app.
    apps: Mutex<HashMap<String, watch::Sender<u64>>>,
}

impl Default for Changes {
    fn default() -> Self {
        Changes {
            all: watch::channel(0).0,
            apps: Mutex::new(HashMap::new()),
        }
    }
}

fn step(n: &mut u64) {
    *n = n.wrapping_add(1);
}

impl Changes {
    /// Tell the watchers of `app` (of every app with `None`) and the
    /// watchers of all apps that something changed.
    pub fn bump(&self, app: Option<&str>) {
        self.all.send_modify(step);
        let mut watchers = self.apps.lock().unwrap_or_else(|e| e.into_inner());
        match app {
            Some(app) => {
                if let Some(sender) = watchers.get(app) {
                    sender.send_modify(step);
                }
            }
            None => {
                // A good moment to forget the apps nobody watches any more.
                watchers.retain(|_, sender| sender.receiver_count() > 0);
                for sender in watchers.values() {
                    sender.send_modify(step);
                }
            }
        }
    }

    /// A receiver of the changes of `app`, or of every app with `None`.
    pub fn subscribe(&self, app: Option<&str>) -> watch::Receiver<u64> {
        match app {
            None => self.all.subscribe(),
            Some(app) => {
                let mut watchers = self.apps.lock().unwrap_or_else(|e| e.into_inner());
                // Counters nobody watches any more are dropped on the way.
                watchers.retain(|name, sender| name == app || sender.receiver_count() > 0);
                watchers
                    .entry(app.to_string())
                    .or_insert_with(|| watch::channel(0).0)
                    .subscribe()
            }
        }
    }
}

/// Wait on `changes` until `done()` holds, checking it first and after
/// every change. Gives up (returning `false`) when the counter is gone or
/// at `deadline`.
pub async fn wait_until(
    changes: &mut watch::Receiver<u64>,
    deadline: Option<Instant>,
    mut done: impl FnMut() -> bool,
) -> bool {
    while !done() {
        let changed = match deadline {
            Some(deadline) => match timeout_at(deadline, changes.changed()).await {
                Ok(changed) => changed,
                Err(_) => return false,
            },
            None => changes.changed().await,
        };
        if changed.is_err() {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    #[tokio::test]
    async fn app_watchers_see_their_app_and_the_all_counter_sees_every_app() {
        let changes = Changes::default();
        let mut all = changes.subscribe(None);
        let mut a = changes.subscribe(Some("a"));
        let b = changes.subscribe(Some("b"));
        changes.bump(Some("a"));
        assert!(all.has_changed().unwrap());
        assert!(a.has_changed().unwrap());
        assert!(!b.has_changed().unwrap());
        all.mark_unchanged();
        a.mark_unchanged();
        changes.bump(None);
        assert!(all.has_changed().unwrap());
        assert!(a.has_changed().unwrap());
        assert!(b.has_changed().unwrap());
    }

    #[tokio::test]
    async fn wait_until_checks_after_each_change_and_gives_up_at_the_deadline() {
        let changes = Arc::new(Changes::default());
        let count = Arc::new(AtomicU32::new(0));
        let mut rx = changes.subscribe(None);
        let (c, n) = (Arc::clone(&changes), Arc::clone(&count));
        tokio::spawn(async move {
            for _ in 0..3 {
                tokio::time::sleep(Duration::from_millis(10)).await;
                n.fetch_add(1, Ordering::SeqCst);
                c.bump(None);
            }
        });
        assert!(wait_until(&mut rx, None, || count.load(Ordering::SeqCst) == 3).await);
        let deadline = Instant::now() + Duration::from_millis(50);
        assert!(!wait_until(&mut rx, Some(deadline), || false).await);
    }
}
