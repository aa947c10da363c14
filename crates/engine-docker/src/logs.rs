//! Process output, read from the daemon's own logs (the container's log
//! driver keeps it; nothing is stored here): `tail` asks each container of
//! an app for its last lines with timestamps and merges them by time;
//! followers (one task per run of a container, started with it or when it
//! is adopted) feed one broadcast channel per app. The engine's own notes
//! (a crash and its restart, a SIGKILL after the grace period) are kept in
//! memory, the last [`NOTES_KEPT`] per app, under the source `controller`,
//! as the local engine keeps them in a file.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use bollard::container::LogOutput;
use bollard::query_parameters::{ListContainersOptionsBuilder, LogsOptionsBuilder};
use chrono::{DateTime, Utc};
use futures::StreamExt;
use tokio::sync::broadcast;

use crate::container::{self, status_of};
use crate::state::Shared;
use drycc_engine::{EngineError, LogLine, Result};

/// Notes of the engine kept per app.
pub(crate) const NOTES_KEPT: usize = 1000;

/// The source of the engine's notes.
const CONTROLLER: &str = "controller";

/// The per-app channels of followed output, and the engine's notes.
pub(crate) struct LogHub {
    capacity: usize,
    apps: Mutex<HashMap<String, broadcast::Sender<LogLine>>>,
    notes: Mutex<HashMap<String, VecDeque<LogLine>>>,
}

impl LogHub {
    pub(crate) fn new(capacity: usize) -> LogHub {
        LogHub {
            capacity: capacity.max(1),
            apps: Mutex::new(HashMap::new()),
            notes: Mutex::new(HashMap::new()),
        }
    }

    /// A note of the engine in the app's log, sent to its followers too.
    pub(crate) fn note(&self, app: &str, text: &str) {
        let line = LogLine {
            time: Utc::now(),
            app: app.to_string(),
            source: CONTROLLER.to_string(),
            text: text.replace('\n', " "),
        };
        {
            let mut notes = self.notes.lock().unwrap_or_else(|e| e.into_inner());
            let kept = notes.entry(app.to_string()).or_default();
            if kept.len() >= NOTES_KEPT {
                kept.pop_front();
            }
            kept.push_back(line.clone());
        }
        self.send(line);
    }

    /// The notes of `app`, oldest first.
    fn notes_of(&self, app: &str) -> Vec<LogLine> {
        let notes = self.notes.lock().unwrap_or_else(|e| e.into_inner());
        notes
            .get(app)
            .map(|n| n.iter().cloned().collect())
            .unwrap_or_default()
    }

    fn sender(&self, app: &str) -> broadcast::Sender<LogLine> {
        let mut apps = self.apps.lock().unwrap_or_else(|e| e.into_inner());
        apps.entry(app.to_string())
            .or_insert_with(|| broadcast::channel(self.capacity).0)
            .clone()
    }

    pub(crate) fn subscribe(&self, app: &str) -> broadcast::Receiver<LogLine> {
        self.sender(app).subscribe()
    }

    fn send(&self, line: LogLine) {
        let apps = self.apps.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(tx) = apps.get(&line.app) {
            // No receiver: nobody follows now, which is fine.
            let _ = tx.send(line);
        }
    }

    /// The app is gone: drop its notes, and its channel unless someone
    /// still follows it.
    pub(crate) fn forget(&self, app: &str) {
        let mut notes = self.notes.lock().unwrap_or_else(|e| e.into_inner());
        notes.remove(app);
        drop(notes);
        let mut apps = self.apps.lock().unwrap_or_else(|e| e.into_inner());
        if apps.get(app).is_some_and(|tx| tx.receiver_count() == 0) {
            apps.remove(app);
        }
    }
}

/// Lines of one log frame: Docker puts its RFC 3339 timestamp before each
/// line. A line without one (the rest of a long line) takes the previous
/// time, or `fallback`.
fn parse_frame(frame: &[u8], fallback: DateTime<Utc>) -> Vec<(DateTime<Utc>, String)> {
    let text = String::from_utf8_lossy(frame);
    let mut time = fallback;
    let mut lines = Vec::new();
    for raw in text.split_terminator('\n') {
        let raw = raw.strip_suffix('\r').unwrap_or(raw);
        let parsed = raw.split_once(' ').and_then(|(stamp, rest)| {
            DateTime::parse_from_rfc3339(stamp)
                .ok()
                .map(|t| (t.with_timezone(&Utc), rest))
        });
        match parsed {
            Some((t, rest)) => {
                time = t;
                lines.push((t, rest.to_string()));
            }
            None => {
                // A timestamp alone is an empty line.
                match DateTime::parse_from_rfc3339(raw) {
                    Ok(t) => {
                        time = t.with_timezone(&Utc);
                        lines.push((time, String::new()));
                    }
                    Err(_) => lines.push((time, raw.to_string())),
                }
            }
        }
    }
    lines
}

fn frame_bytes(output: &LogOutput) -> &[u8] {
    output.as_ref()
}

/// What a process's followers have passed on so far: the time of the last
/// line. Shared by the followers of its successive runs, so that a run's
/// follower (which asks from a whole second on) repeats nothing.
pub(crate) type Seen = Arc<Mutex<Option<DateTime<Utc>>>>;

/// Follow the output of one run of a container, from after the last line
/// seen (everything when none was), into the app's channel, until the
/// container stops or the engine is released.
pub(crate) fn spawn_follower(shared: &Arc<Shared>, app: &str, name: &str, seen: &Seen) {
    let shared_task = Arc::clone(shared);
    let seen = Arc::clone(seen);
    let (app, name) = (app.to_string(), name.to_string());
    shared.tasks.spawn(async move {
        let shared = shared_task;
        let after = *seen.lock().unwrap_or_else(|e| e.into_inner());
        let mut builder = LogsOptionsBuilder::new()
            .follow(true)
            .stdout(true)
            .stderr(true)
            .timestamps(true);
        if let Some(after) = after {
            // Whole seconds only: what came before `after` is skipped below.
            builder = builder.since(i32::try_from(after.timestamp()).unwrap_or(0));
        }
        let mut stream = shared.docker.logs(&name, Some(builder.build()));
        loop {
            let item = tokio::select! {
                _ = shared.cancel.cancelled() => break,
                item = stream.next() => item,
            };
            match item {
                Some(Ok(output)) => {
                    for (time, text) in parse_frame(frame_bytes(&output), Utc::now()) {
                        {
                            let mut seen = seen.lock().unwrap_or_else(|e| e.into_inner());
                            if seen.is_some_and(|last| time <= last) {
                                continue;
                            }
                            *seen = Some(time);
                        }
                        shared.logs.send(LogLine {
                            time,
                            app: app.clone(),
                            source: name.clone(),
                            text,
                        });
                    }
                }
                Some(Err(e)) => {
                    tracing::debug!(process = %name, error = %e, "following a container's output ended");
                    break;
                }
                None => break,
            }
        }
    });
}

/// The last `lines` lines of the app's containers and the engine's notes
/// (or of one container, or of the notes alone with `controller`), oldest
/// first.
pub(crate) async fn tail(
    shared: &Shared,
    app: &str,
    lines: usize,
    process: Option<&str>,
) -> Result<Vec<LogLine>> {
    let options = ListContainersOptionsBuilder::new()
        .all(true)
        .filters(&container::filters(&shared.config.instance, Some(app)))
        .build();
    let containers = shared
        .docker
        .list_containers(Some(options))
        .await
        .map_err(|e| container::unavailable("listing containers", e))?;
    let mut names: Vec<String> = containers
        .iter()
        .filter_map(|c| c.names.as_ref()?.first().cloned())
        .map(|n| n.trim_start_matches('/').to_string())
        .collect();
    let notes = match process {
        None => shared.logs.notes_of(app),
        Some(CONTROLLER) => {
            let mut notes = shared.logs.notes_of(app);
            let skip = notes.len().saturating_sub(lines);
            return Ok(notes.split_off(skip));
        }
        Some(_) => Vec::new(),
    };
    if let Some(process) = process {
        if !names.iter().any(|n| n == process) {
            return Err(EngineError::ProcessNotFound(process.to_string()));
        }
        names.retain(|n| n == process);
    }
    if lines == 0 {
        return Ok(Vec::new());
    }
    let reads = names.into_iter().map(|name| async move {
        let options = LogsOptionsBuilder::new()
            .follow(false)
            .stdout(true)
            .stderr(true)
            .timestamps(true)
            .tail(&lines.to_string())
            .build();
        let mut stream = shared.docker.logs(&name, Some(options));
        let mut out = Vec::new();
        while let Some(item) = stream.next().await {
            match item {
                Ok(output) => {
                    for (time, text) in parse_frame(frame_bytes(&output), Utc::now()) {
                        out.push(LogLine {
                            time,
                            app: app.to_string(),
                            source: name.clone(),
                            text,
                        });
                    }
                }
                // Removed meanwhile: its output went with it.
                Err(e) if status_of(&e) == Some(404) => break,
                Err(e) => return Err(container::unavailable("reading logs", e)),
            }
        }
        Ok(out)
    });
    let mut all = notes;
    for read in futures::future::join_all(reads).await {
        all.extend(read?);
    }
    // Stable: lines of one container with equal times keep their order.
    all.sort_by_key(|l| l.time);
    let skip = all.len().saturating_sub(lines);
    Ok(all.split_off(skip))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_split_into_timestamped_lines() {
        let fallback = Utc::now();
        let lines = parse_frame(
            b"2026-12-03T11:00:31.882053060Z hello world\n2026-12-03T11:00:32Z\nno stamp\n",
            fallback,
        );
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0].1, "hello world");
        assert_eq!(lines[0].0.timestamp_subsec_nanos(), 882_053_060);
        assert_eq!(lines[1].1, "");
        assert_eq!(lines[2], (lines[1].0, "no stamp".to_string()));
        assert_eq!(parse_frame(b"x", fallback), [(fallback, "x".to_string())]);
    }
}
