//! Platform events of an app (deploys, autoscaling decisions, failed
//! rollouts), written by the controller into the store and shown among the
//! app's log lines under the source `controller`. Engines report only their
//! processes' output; these lines are the platform's own.

use std::collections::HashMap;
use std::sync::Mutex;

use drycc_engine::LogLine;
use drycc_store::{Event, Store};
use tokio::sync::broadcast;

/// The log source of platform events.
pub const SOURCE: &str = "controller";

/// Events followed live, per app, before a slow follower lags.
const FOLLOW_BUFFER: usize = 256;

#[derive(Default)]
pub struct Events {
    live: Mutex<HashMap<String, broadcast::Sender<LogLine>>>,
}

impl Events {
    /// Record an event. An event is worth less than the action it
    /// describes, so a failure to record it is logged, never returned.
    pub async fn record(&self, store: &Store, app: &str, text: &str) {
        match store.record_event(app, text).await {
            Ok(event) => {
                let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(sender) = live.get(app) {
                    if sender.send(line(event)).is_err() {
                        // Nobody follows the app any more.
                        live.remove(app);
                    }
                }
            }
            Err(error) => tracing::warn!(app, %error, "Could not record an event."),
        }
    }

    /// The last `lines` events of the app, oldest first.
    pub async fn recent(
        &self,
        store: &Store,
        app: &str,
        lines: usize,
    ) -> Result<Vec<LogLine>, drycc_store::StoreError> {
        Ok(store
            .recent_events(app, lines)
            .await?
            .into_iter()
            .map(line)
            .collect())
    }

    /// Events of the app as they are recorded.
    pub fn follow(&self, app: &str) -> broadcast::Receiver<LogLine> {
        self.live
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(app.to_string())
            .or_insert_with(|| broadcast::channel(FOLLOW_BUFFER).0)
            .subscribe()
    }
}

fn line(event: Event) -> LogLine {
    LogLine {
        time: event.created,
        app: event.app,
        source: SOURCE.to_string(),
        text: event.text,
    }
}

/// The newest `lines` of two oldest-first lists, merged in time order
/// (on equal times, `a` first).
pub fn merge_tail(a: Vec<LogLine>, b: Vec<LogLine>, lines: usize) -> Vec<LogLine> {
    let mut merged = Vec::with_capacity(a.len() + b.len());
    let (mut a, mut b) = (a.into_iter().peekable(), b.into_iter().peekable());
    loop {
        let take_a = match (a.peek(), b.peek()) {
            (Some(x), Some(y)) => x.time <= y.time,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => break,
        };
        merged.extend(if take_a { a.next() } else { b.next() });
    }
    let skip = merged.len().saturating_sub(lines);
    merged.split_off(skip)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    fn at(second: u32, text: &str) -> LogLine {
        LogLine {
            time: Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, second).unwrap(),
            app: "a".into(),
            source: "s".into(),
            text: text.into(),
        }
    }

    #[test]
    fn merge_keeps_time_order_and_the_newest_lines() {
        let a = vec![at(1, "a1"), at(3, "a3"), at(5, "a5")];
        let b = vec![at(2, "b2"), at(3, "b3"), at(6, "b6")];
        let texts = |v: Vec<LogLine>| v.into_iter().map(|l| l.text).collect::<Vec<_>>();
        assert_eq!(
            texts(merge_tail(a.clone(), b.clone(), 10)),
            ["a1", "b2", "a3", "b3", "a5", "b6"]
        );
        assert_eq!(texts(merge_tail(a.clone(), b, 2)), ["a5", "b6"]);
        assert_eq!(texts(merge_tail(a, Vec::new(), 0)), Vec::<String>::new());
    }
}
