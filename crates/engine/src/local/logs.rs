//! The bounded log of every app (a ring of the last N lines) and the pumps
//! that read a process's stdout/stderr line by line into it and into the
//! broadcast channel of `follow_logs`.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use chrono::Utc;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::sync::broadcast;

use crate::LogLine;

/// Read buffer of one output stream. Small on purpose: a controller runs
/// hundreds of processes, each with two streams.
const READ_BUFFER: usize = 512;
/// Longer lines are cut into pieces of this size, so a process that never
/// writes a newline cannot grow our memory.
pub(crate) const MAX_LINE: usize = 16 * 1024;
/// Lines kept for slow `follow_logs` receivers before they lag.
const BROADCAST_CAPACITY: usize = 1024;

pub(crate) struct LogStore {
    per_app: usize,
    rings: Mutex<HashMap<String, VecDeque<LogLine>>>,
    /// One channel per followed app: a noisy app costs the followers of
    /// other apps nothing.
    followers: Mutex<HashMap<String, broadcast::Sender<LogLine>>>,
}

impl LogStore {
    pub(crate) fn new(per_app: usize) -> Self {
        LogStore {
            per_app,
            rings: Mutex::new(HashMap::new()),
            followers: Mutex::new(HashMap::new()),
        }
    }

    pub(crate) fn push(&self, app: &str, source: &str, text: String) {
        let line = LogLine {
            time: Utc::now(),
            app: app.to_string(),
            source: source.to_string(),
            text,
        };
        if self.per_app > 0 {
            let mut rings = self.rings.lock().unwrap_or_else(|e| e.into_inner());
            let ring = match rings.get_mut(app) {
                Some(ring) => ring,
                None => rings.entry(app.to_string()).or_default(),
            };
            if ring.len() >= self.per_app {
                ring.pop_front();
            }
            ring.push_back(line.clone());
        }
        let mut followers = self.followers.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(tx) = followers.get(app) {
            if tx.send(line).is_err() {
                // The last follower left.
                followers.remove(app);
            }
        }
    }

    /// The last `lines` lines of `app`, oldest first.
    pub(crate) fn tail(&self, app: &str, lines: usize) -> Vec<LogLine> {
        let rings = self.rings.lock().unwrap_or_else(|e| e.into_inner());
        match rings.get(app) {
            Some(ring) => ring
                .iter()
                .skip(ring.len().saturating_sub(lines))
                .cloned()
                .collect(),
            None => Vec::new(),
        }
    }

    pub(crate) fn forget(&self, app: &str) {
        let mut rings = self.rings.lock().unwrap_or_else(|e| e.into_inner());
        rings.remove(app);
    }

    pub(crate) fn subscribe(&self, app: &str) -> broadcast::Receiver<LogLine> {
        let mut followers = self.followers.lock().unwrap_or_else(|e| e.into_inner());
        followers
            .entry(app.to_string())
            .or_insert_with(|| broadcast::channel(BROADCAST_CAPACITY).0)
            .subscribe()
    }
}

/// Read `stream` until EOF, one log line per output line (without the line
/// end; invalid UTF-8 replaced).
pub(crate) async fn pump_lines<R>(store: &LogStore, app: &str, source: &str, stream: R)
where
    R: AsyncRead + Unpin,
{
    let mut reader = BufReader::with_capacity(READ_BUFFER, stream);
    let mut line: Vec<u8> = Vec::new();
    loop {
        let chunk = match reader.fill_buf().await {
            Ok(chunk) => chunk,
            Err(e) => {
                tracing::debug!(source, error = %e, "output stream failed");
                break;
            }
        };
        if chunk.is_empty() {
            break;
        }
        let newline = chunk.iter().position(|b| *b == b'\n');
        let body = newline.unwrap_or(chunk.len());
        let room = MAX_LINE.saturating_sub(line.len());
        if body > room {
            // Too long: emit what fits, the rest starts the next piece.
            line.extend_from_slice(&chunk[..room]);
            reader.consume(room);
            emit(store, app, source, &mut line);
            continue;
        }
        line.extend_from_slice(&chunk[..body]);
        match newline {
            Some(i) => {
                reader.consume(i + 1);
                emit(store, app, source, &mut line);
            }
            None => reader.consume(body),
        }
    }
    if !line.is_empty() {
        emit(store, app, source, &mut line);
    }
}

fn emit(store: &LogStore, app: &str, source: &str, line: &mut Vec<u8>) {
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    let text = String::from_utf8_lossy(line).into_owned();
    line.clear();
    store.push(app, source, text);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_is_bounded_and_tail_is_oldest_first() {
        let store = LogStore::new(3);
        for i in 0..5 {
            store.push("app", "p", format!("{i}"));
        }
        let texts: Vec<String> = store.tail("app", 10).into_iter().map(|l| l.text).collect();
        assert_eq!(texts, ["2", "3", "4"]);
        let texts: Vec<String> = store.tail("app", 2).into_iter().map(|l| l.text).collect();
        assert_eq!(texts, ["3", "4"]);
        assert!(store.tail("other", 2).is_empty());
    }

    #[tokio::test]
    async fn pump_splits_lines_and_cuts_long_ones() {
        let store = LogStore::new(100);
        let mut input = b"one\r\ntwo\n".to_vec();
        input.extend(vec![b'x'; MAX_LINE + 10]);
        input.extend(b"\nlast");
        pump_lines(&store, "app", "p", &input[..]).await;
        let lines = store.tail("app", 100);
        let lens: Vec<usize> = lines.iter().map(|l| l.text.len()).collect();
        assert_eq!(lines[0].text, "one");
        assert_eq!(lines[1].text, "two");
        assert_eq!(lens[2], MAX_LINE);
        assert_eq!(lens[3], 10);
        assert_eq!(lines[4].text, "last");
        assert_eq!(lines.len(), 5);
    }
}
