//! The daemon's container events, watched by one task: a `die` of one of
//! this engine's containers wakes the supervisor of its process, which
//! looks at the container itself (an event is a hint, never the truth); an
//! `oom` (which comes before its `die`) is remembered for the exit reason.
//! When the stream breaks (daemon restarted, connection lost) every
//! supervisor is woken to look, and the stream resumes from the last
//! event seen.

use std::sync::Arc;
use std::time::Duration;

use bollard::query_parameters::EventsOptionsBuilder;
use futures::StreamExt;

use crate::container::{self, LABEL_APP};
use crate::state::{self, Shared};

/// Pause before the stream is opened again after it broke.
const RETRY: Duration = Duration::from_millis(500);

pub(crate) fn spawn_watcher(shared: &Arc<Shared>) {
    let shared = Arc::clone(shared);
    let tracker = shared.tasks.clone();
    tracker.spawn(async move {
        let mut since: Option<i64> = None;
        loop {
            let mut filters = container::filters(&shared.config.instance, None);
            filters.insert("type".to_string(), vec!["container".to_string()]);
            filters.insert(
                "event".to_string(),
                vec!["die".to_string(), "oom".to_string()],
            );
            let mut builder = EventsOptionsBuilder::new().filters(&filters);
            let since_text = since.map(|s| s.to_string());
            if let Some(since) = &since_text {
                builder = builder.since(since);
            }
            let mut stream = shared.docker.events(Some(builder.build()));
            loop {
                let item = tokio::select! {
                    _ = shared.cancel.cancelled() => return,
                    item = stream.next() => item,
                };
                match item {
                    Some(Ok(event)) => {
                        if let Some(time) = event.time {
                            since = Some(time);
                        }
                        let Some(actor) = event.actor else { continue };
                        let attributes = actor.attributes.unwrap_or_default();
                        if let (Some(app), Some(name)) =
                            (attributes.get(LABEL_APP), attributes.get("name"))
                        {
                            if event.action.as_deref() == Some("oom") {
                                shared.oom(name);
                            } else {
                                state::died(&shared, app, name);
                            }
                        }
                    }
                    Some(Err(e)) => {
                        tracing::warn!(error = %e, "the daemon's event stream broke; reopening it");
                        break;
                    }
                    None => break,
                }
            }
            // Whatever died meanwhile is found by looking.
            state::recheck_all(&shared);
            tokio::select! {
                _ = shared.cancel.cancelled() => return,
                _ = tokio::time::sleep(RETRY) => {}
            }
        }
    });
}
