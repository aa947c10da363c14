//! Process output as files. Each process writes its stdout and stderr
//! straight into `<log_dir>/<app>/<name>.log` (opened `O_APPEND` and handed
//! to it at spawn): nothing passes through the controller, which costs it
//! no CPU per line and lets the process outlive the controller.
//!
//! One watcher task keeps the files bounded and gives lines their times:
//! - every live file is `stat`ed on a tick (often while it grows, rarely
//!   while it is quiet); one that passed its bound loses its oldest part,
//!   cut in place with `FALLOC_FL_COLLAPSE_RANGE` (no copy; the writer's
//!   appends simply continue at the new end), or where the file system
//!   cannot collapse, copied and truncated;
//! - each size change is a checkpoint (bytes written so far, time): a line
//!   is dated by the first checkpoint at or after its end, so its time is
//!   exact to one tick, without reading anything;
//! - while somebody follows an app, new bytes of its files are read and
//!   broadcast; nothing is read for apps nobody follows.
//!
//! Platform events (`log_event`) go to `<app>/_events.log` as
//! `<RFC 3339 time> <text>` lines (`_` never starts a process name).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, Weak};
use std::time::{Duration, SystemTime};

use chrono::{DateTime, Utc};
use tokio::sync::broadcast;

use crate::LogLine;

/// Longer lines are cut into pieces of this size.
pub(crate) const MAX_LINE: usize = 16 * 1024;
/// Lines kept for slow followers before they lag.
const BROADCAST_CAPACITY: usize = 4096;
/// The watcher's tick: how often a growing file is looked at.
pub(crate) const TICK: Duration = Duration::from_millis(10);
/// A quiet file is looked at every this many ticks.
const QUIET_TICKS: u32 = 10;
/// Followed apps are read every this many ticks.
const FOLLOW_TICKS: u32 = 10;
/// Checkpoints kept per file; older lines take the oldest one's time.
const CHECKPOINTS: usize = 256;
/// Files of ended processes kept per app (newest first), for `logs`.
const ENDED_KEPT: usize = 32;
/// The events file's name, without `.log`.
pub(crate) const EVENTS: &str = "_events";
/// The source shown for platform events.
const CONTROLLER: &str = "controller";

pub(crate) struct LogStore {
    dir: PathBuf,
    /// Bytes a file keeps; a file is cut back to this when it passes it.
    max_bytes: u64,
    apps: Mutex<HashMap<String, AppLogs>>,
}

#[derive(Default)]
struct AppLogs {
    /// Files of processes that exist (and the events file), by name.
    files: BTreeMap<String, Tracked>,
    follow: Option<Follow>,
}

struct Follow {
    tx: broadcast::Sender<LogLine>,
    /// Per file: the offset read up to and the unfinished last line.
    read: HashMap<String, (u64, Vec<u8>)>,
}

#[derive(Default)]
struct Tracked {
    /// Bytes cut from the front of the file so far (by this controller).
    trimmed: u64,
    size: u64,
    /// (bytes written in all, counting `trimmed`, at `time`), oldest first.
    checkpoints: VecDeque<(u64, DateTime<Utc>)>,
    /// Ticks until the next look.
    due: u32,
}

impl Tracked {
    /// Start tracking a file as it is now: what it holds was written no
    /// later than its modification time.
    fn of(path: &Path) -> Tracked {
        let mut tracked = Tracked::default();
        if let Ok(meta) = std::fs::metadata(path) {
            tracked.size = meta.len();
            let time = meta
                .modified()
                .map(DateTime::<Utc>::from)
                .unwrap_or_else(|_| Utc::now());
            tracked.checkpoints.push_back((meta.len(), time));
        }
        tracked
    }

    fn checkpoint(&mut self, size: u64, time: DateTime<Utc>) {
        if self.checkpoints.len() >= CHECKPOINTS {
            self.checkpoints.pop_front();
        }
        self.checkpoints.push_back((self.trimmed + size, time));
    }

    /// The time of a line that ends at `end` (an offset in the file now).
    fn time_of(&self, end: u64, fallback: DateTime<Utc>) -> DateTime<Utc> {
        let total = self.trimmed + end;
        self.checkpoints
            .iter()
            .find(|(written, _)| *written >= total)
            .map(|(_, time)| *time)
            .unwrap_or(fallback)
    }
}

impl LogStore {
    pub(crate) fn new(dir: PathBuf, max_bytes: u64) -> Self {
        LogStore {
            dir,
            max_bytes: max_bytes.max(64 * 1024),
            apps: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, AppLogs>> {
        self.apps.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn app_dir(&self, app: &str) -> PathBuf {
        self.dir.join(app)
    }

    pub(crate) fn path(&self, app: &str, name: &str) -> PathBuf {
        self.app_dir(app).join(format!("{name}.log"))
    }

    /// The file a process writes its output to (created, appended to), and
    /// tracked from now on.
    pub(crate) fn open_output(&self, app: &str, name: &str) -> io::Result<File> {
        std::fs::create_dir_all(self.app_dir(app))?;
        let path = self.path(app, name);
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o640)
            .open(&path)?;
        self.track(app, name);
        Ok(file)
    }

    /// Track the file of a process that already writes to it (adopted).
    pub(crate) fn track(&self, app: &str, name: &str) {
        let path = self.path(app, name);
        let mut apps = self.lock();
        let logs = apps.entry(app.to_string()).or_default();
        logs.files
            .entry(name.to_string())
            .or_insert_with(|| Tracked::of(&path));
    }

    /// The process is gone: stop watching its file, keep it for `logs`
    /// (the newest few per app).
    pub(crate) fn ended(&self, app: &str, name: &str) {
        {
            let mut apps = self.lock();
            if let Some(logs) = apps.get_mut(app) {
                logs.files.remove(name);
            }
        }
        self.prune(app);
    }

    /// Delete the files of ended processes beyond the newest `ENDED_KEPT`.
    fn prune(&self, app: &str) {
        let live: Vec<String> = self
            .lock()
            .get(app)
            .map(|l| l.files.keys().cloned().collect())
            .unwrap_or_default();
        let mut ended: Vec<(SystemTime, PathBuf)> = log_files(&self.app_dir(app))
            .into_iter()
            .filter(|(name, _)| name != EVENTS && !live.contains(name))
            .filter_map(|(_, path)| Some((std::fs::metadata(&path).ok()?.modified().ok()?, path)))
            .collect();
        if ended.len() <= ENDED_KEPT {
            return;
        }
        ended.sort();
        for (_, path) in &ended[..ended.len() - ENDED_KEPT] {
            let _ = std::fs::remove_file(path);
        }
    }

    /// Append a platform event to the app's events file.
    pub(crate) fn event(&self, app: &str, text: &str) {
        let write = || -> io::Result<()> {
            std::fs::create_dir_all(self.app_dir(app))?;
            let mut file = OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o640)
                .open(self.path(app, EVENTS))?;
            let line = format!(
                "{} {}\n",
                Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
                text.replace('\n', " ")
            );
            file.write_all(line.as_bytes())
        };
        if let Err(e) = write() {
            tracing::warn!(app, error = %e, "could not write a platform event to the app's log");
            return;
        }
        self.track(app, EVENTS);
    }

    /// The last `lines` lines of the app (of one process when `only` is
    /// set), oldest first, from the files of its processes, live and ended,
    /// and its events.
    pub(crate) fn tail(&self, app: &str, lines: usize, only: Option<&str>) -> Vec<LogLine> {
        if lines == 0 {
            return Vec::new();
        }
        let mut all = Vec::new();
        for (name, path) in log_files(&self.app_dir(app)) {
            let events = name == EVENTS;
            if only.is_some_and(|p| p != name && !(events && p == CONTROLLER)) {
                continue;
            }
            let cut_front = self
                .lock()
                .get(app)
                .and_then(|l| l.files.get(&name))
                .is_some_and(|t| t.trimmed > 0);
            let Ok(tail) = read_tail(&path, lines, cut_front) else {
                continue;
            };
            let fallback = std::fs::metadata(&path)
                .and_then(|m| m.modified())
                .map(DateTime::<Utc>::from)
                .unwrap_or_else(|_| Utc::now());
            let apps = self.lock();
            let tracked = apps.get(app).and_then(|l| l.files.get(&name));
            for (end, text) in tail {
                let line = if events {
                    event_line(app, &text, fallback)
                } else {
                    LogLine {
                        time: tracked.map_or(fallback, |t| t.time_of(end, fallback)),
                        app: app.to_string(),
                        source: name.clone(),
                        text,
                    }
                };
                all.push(line);
            }
        }
        // Stable: lines of one file keep their order at equal times.
        all.sort_by_key(|line| line.time);
        let skip = all.len().saturating_sub(lines);
        all.split_off(skip)
    }

    /// Remove everything of the app.
    pub(crate) fn forget(&self, app: &str) {
        self.lock().remove(app);
        let _ = std::fs::remove_dir_all(self.app_dir(app));
    }

    /// New lines of the app from now on.
    pub(crate) fn subscribe(&self, app: &str) -> broadcast::Receiver<LogLine> {
        let dir = self.app_dir(app);
        let mut apps = self.lock();
        let logs = apps.entry(app.to_string()).or_default();
        if let Some(follow) = &logs.follow {
            return follow.tx.subscribe();
        }
        // Start at the current end of every file.
        let read = log_files(&dir)
            .into_iter()
            .map(|(name, path)| {
                let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
                (name, (size, Vec::new()))
            })
            .collect();
        let (tx, rx) = broadcast::channel(BROADCAST_CAPACITY);
        logs.follow = Some(Follow { tx, read });
        rx
    }

    /// One tick of the watcher: look at the files that are due (bound
    /// them, checkpoint their growth) and, every few ticks, read what
    /// followed apps wrote.
    fn tick(&self, count: u64) {
        let now = Utc::now();
        let mut apps = self.lock();
        for (app, logs) in apps.iter_mut() {
            for (name, tracked) in logs.files.iter_mut() {
                if tracked.due > 0 {
                    tracked.due -= 1;
                    continue;
                }
                let path = self.dir.join(app).join(format!("{name}.log"));
                let Ok(meta) = std::fs::metadata(&path) else {
                    tracked.due = QUIET_TICKS;
                    continue;
                };
                let size = meta.len();
                if size == tracked.size {
                    tracked.due = QUIET_TICKS;
                    continue;
                }
                tracked.due = 0;
                if size < tracked.size {
                    // Cut by someone else: count it as trimmed.
                    tracked.trimmed += tracked.size - size;
                }
                tracked.checkpoint(size, now);
                tracked.size = size;
                if size > self.max_bytes {
                    match trim(&path, size, self.max_bytes) {
                        Ok(cut) => {
                            tracked.trimmed += cut;
                            tracked.size = size - cut;
                            if let Some(follow) = logs.follow.as_mut() {
                                if let Some((offset, _)) = follow.read.get_mut(name) {
                                    *offset = offset.saturating_sub(cut);
                                }
                            }
                        }
                        Err(e) => {
                            tracing::debug!(path = %path.display(), error = %e, "could not bound a log file")
                        }
                    }
                }
            }
            if count.is_multiple_of(u64::from(FOLLOW_TICKS)) {
                self.read_followed(app, logs);
            }
        }
    }

    fn read_followed(&self, app: &str, logs: &mut AppLogs) {
        let Some(follow) = logs.follow.as_mut() else {
            return;
        };
        if follow.tx.receiver_count() == 0 {
            logs.follow = None;
            return;
        }
        let now = Utc::now();
        for (name, path) in log_files(&self.app_dir(app)) {
            let (offset, partial) = follow.read.entry(name.clone()).or_default();
            let Ok(mut file) = File::open(&path) else {
                continue;
            };
            let size = file.metadata().map(|m| m.len()).unwrap_or(0);
            if size < *offset {
                *offset = 0;
                partial.clear();
            }
            if size == *offset || file.seek(SeekFrom::Start(*offset)).is_err() {
                continue;
            }
            let mut fresh = Vec::new();
            let Ok(n) = (&mut file).take(size - *offset).read_to_end(&mut fresh) else {
                continue;
            };
            *offset += n as u64;
            partial.extend_from_slice(&fresh);
            for text in take_lines(partial) {
                let line = if name == EVENTS {
                    event_line(app, &text, now)
                } else {
                    LogLine {
                        time: now,
                        app: app.to_string(),
                        source: name.clone(),
                        text,
                    }
                };
                let _ = follow.tx.send(line);
            }
        }
    }
}

/// Run the watcher until the store is dropped.
pub(crate) async fn watch(store: Weak<LogStore>) {
    let mut ticker = tokio::time::interval(TICK);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut count = 0u64;
    loop {
        ticker.tick().await;
        let Some(logs) = store.upgrade() else {
            return;
        };
        // stat and fallocate are short; a blocking section of microseconds.
        logs.tick(count);
        count = count.wrapping_add(1);
    }
}

/// Cut the oldest part of a file of `size` bytes so that about `keep`
/// remain; returns the bytes cut. Collapsing works in whole blocks, so a
/// little more than `keep` may remain, and the first line may be partial.
fn trim(path: &Path, size: u64, keep: u64) -> io::Result<u64> {
    const BLOCK: u64 = 4096;
    let cut = (size - keep) / BLOCK * BLOCK;
    if cut == 0 {
        return Ok(0);
    }
    let file = OpenOptions::new().write(true).open(path)?;
    let (Ok(offset), Ok(len)) = (libc::off_t::try_from(0u64), libc::off_t::try_from(cut)) else {
        return Ok(0);
    };
    // SAFETY: fallocate on a descriptor we own, with plain integers.
    let collapsed = unsafe {
        libc::fallocate(
            std::os::fd::AsRawFd::as_raw_fd(&file),
            libc::FALLOC_FL_COLLAPSE_RANGE,
            offset,
            len,
        )
    } == 0;
    if collapsed {
        return Ok(cut);
    }
    // No collapse here (tmpfs, some file systems): keep the newest `keep`
    // bytes by copy and truncate. What the process writes in between is
    // lost, as with logrotate's copytruncate.
    let mut tail = Vec::new();
    let mut reader = File::open(path)?;
    reader.seek(SeekFrom::Start(size - keep))?;
    reader.take(keep).read_to_end(&mut tail)?;
    file.set_len(0)?;
    let mut writer = OpenOptions::new().append(true).open(path)?;
    writer.write_all(&tail)?;
    Ok(size - tail.len() as u64)
}

/// The `*.log` files of a directory as (name without `.log`, path).
fn log_files(dir: &Path) -> Vec<(String, PathBuf)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let path = e.path();
            let name = path
                .file_name()?
                .to_str()?
                .strip_suffix(".log")?
                .to_string();
            Some((name, path))
        })
        .collect()
}

/// The last `lines` lines of a file as (offset just past the line, text),
/// oldest first. Reads backwards in growing chunks, so a long file costs
/// only what is shown.
/// `cut_front`: the file lost its front (see `trim`), so its first line
/// may be the end of a longer one and is left out.
fn read_tail(path: &Path, lines: usize, cut_front: bool) -> io::Result<Vec<(u64, String)>> {
    let mut file = File::open(path)?;
    let size = file.metadata()?.len();
    let mut window = (lines as u64).saturating_mul(256).max(64 * 1024).min(size);
    loop {
        let start = size.saturating_sub(window);
        file.seek(SeekFrom::Start(start))?;
        let mut bytes = Vec::new();
        (&mut file).take(size - start).read_to_end(&mut bytes)?;
        // A window that starts mid-file starts mid-line: skip that line.
        let body = if start > 0 || cut_front {
            match bytes.iter().position(|b| *b == b'\n') {
                Some(i) => &bytes[i + 1..],
                None => &[][..],
            }
        } else {
            &bytes[..]
        };
        let body_start = start + (bytes.len() - body.len()) as u64;
        let found = split_lines(body, body_start);
        if found.len() >= lines || start == 0 {
            let skip = found.len().saturating_sub(lines);
            return Ok(found.into_iter().skip(skip).collect());
        }
        window = window.saturating_mul(4);
    }
}

/// Lines of `bytes` (which start at file offset `base`), each cut into
/// pieces of at most `MAX_LINE` bytes, with the offset past each piece.
fn split_lines(bytes: &[u8], base: u64) -> Vec<(u64, String)> {
    let mut out = Vec::new();
    let mut at = 0usize;
    for raw in bytes.split_inclusive(|b| *b == b'\n') {
        let end = at + raw.len();
        let body = raw.strip_suffix(b"\n").unwrap_or(raw);
        let body = body.strip_suffix(b"\r").unwrap_or(body);
        let mut pieces = body.chunks(MAX_LINE).peekable();
        if pieces.peek().is_none() {
            out.push((base + end as u64, String::new()));
        }
        let mut piece_end = at;
        while let Some(piece) = pieces.next() {
            piece_end += piece.len();
            let offset = if pieces.peek().is_none() {
                end
            } else {
                piece_end
            };
            out.push((
                base + offset as u64,
                String::from_utf8_lossy(piece).into_owned(),
            ));
        }
        at = end;
    }
    out
}

/// Complete lines taken from the front of `buffer`; an unfinished line
/// stays, unless it has reached `MAX_LINE`.
fn take_lines(buffer: &mut Vec<u8>) -> Vec<String> {
    let complete = match buffer.iter().rposition(|b| *b == b'\n') {
        Some(i) => i + 1,
        None if buffer.len() >= MAX_LINE => buffer.len(),
        None => return Vec::new(),
    };
    let rest = buffer.split_off(complete);
    let lines = split_lines(buffer, 0).into_iter().map(|(_, t)| t).collect();
    *buffer = rest;
    lines
}

/// An events-file line (`<time> <text>`) as a log line of the controller.
fn event_line(app: &str, raw: &str, fallback: DateTime<Utc>) -> LogLine {
    let (time, text) = raw
        .split_once(' ')
        .and_then(|(t, rest)| {
            Some((
                DateTime::parse_from_rfc3339(t).ok()?.with_timezone(&Utc),
                rest,
            ))
        })
        .unwrap_or((fallback, raw));
    LogLine {
        time,
        app: app.to_string(),
        source: CONTROLLER.to_string(),
        text: text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_lines_cuts_long_lines_and_strips_line_ends() {
        let mut input = b"one\r\ntwo\n".to_vec();
        input.extend(vec![b'x'; MAX_LINE + 10]);
        input.extend(b"\nlast");
        let lines = split_lines(&input, 100);
        let texts: Vec<usize> = lines.iter().map(|(_, t)| t.len()).collect();
        assert_eq!(lines[0], (105, "one".to_string()));
        assert_eq!(lines[1], (109, "two".to_string()));
        assert_eq!(texts[2..], [MAX_LINE, 10, 4]);
        assert_eq!(lines[4].1, "last");
        assert_eq!(lines[4].0, 100 + input.len() as u64);
    }

    #[test]
    fn take_lines_keeps_the_unfinished_line() {
        let mut buffer = b"a\nb\npart".to_vec();
        assert_eq!(take_lines(&mut buffer), ["a", "b"]);
        assert_eq!(buffer, b"part");
        assert!(take_lines(&mut buffer).is_empty());
    }

    #[test]
    fn tail_reads_only_the_last_lines_of_a_long_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.log");
        let text: String = (0..100_000).map(|i| format!("line {i}\n")).collect();
        std::fs::write(&path, &text).unwrap();
        let tail = read_tail(&path, 3, false).unwrap();
        let texts: Vec<&str> = tail.iter().map(|(_, t)| t.as_str()).collect();
        assert_eq!(texts, ["line 99997", "line 99998", "line 99999"]);
        assert_eq!(tail[2].0, text.len() as u64);
        assert_eq!(read_tail(&path, 200_000, false).unwrap().len(), 100_000);
        assert_eq!(read_tail(&path, 200_000, true).unwrap()[0].1, "line 1");
    }

    #[test]
    fn trim_keeps_the_newest_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.log");
        let text: String = (0..50_000).map(|i| format!("line {i}\n")).collect();
        std::fs::write(&path, &text).unwrap();
        let size = text.len() as u64;
        let cut = trim(&path, size, 64 * 1024).unwrap();
        let left = std::fs::read(&path).unwrap();
        assert_eq!(left.len() as u64, size - cut);
        assert!(left.len() >= 64 * 1024 && left.len() < 64 * 1024 + 4096);
        assert!(text.ends_with(std::str::from_utf8(&left).unwrap()));
    }

    #[test]
    fn lines_are_dated_by_the_checkpoint_after_them() {
        let t0 = DateTime::<Utc>::from_timestamp(1_000, 0).unwrap();
        let t1 = DateTime::<Utc>::from_timestamp(2_000, 0).unwrap();
        let mut tracked = Tracked::default();
        tracked.checkpoint(10, t0);
        tracked.checkpoint(20, t1);
        let later = DateTime::<Utc>::from_timestamp(3_000, 0).unwrap();
        assert_eq!(tracked.time_of(5, later), t0);
        assert_eq!(tracked.time_of(10, later), t0);
        assert_eq!(tracked.time_of(15, later), t1);
        assert_eq!(tracked.time_of(25, later), later);
        tracked.trimmed = 10;
        assert_eq!(tracked.time_of(5, later), t1);
    }

    #[test]
    fn event_lines_carry_their_own_time() {
        let fallback = Utc::now();
        let line = event_line(
            "app",
            "2026-01-02T03:04:05.000006Z scaled web to 2",
            fallback,
        );
        assert_eq!(line.text, "scaled web to 2");
        assert_eq!(line.source, "controller");
        assert_eq!(line.time.to_rfc3339(), "2026-01-02T03:04:05.000006+00:00");
        assert_eq!(event_line("app", "garbage", fallback).time, fallback);
    }
}
