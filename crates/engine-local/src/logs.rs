//! Process output as files. Each process writes its stdout and stderr
//! straight into `<log_dir>/<app>/<name>.log`: nothing passes through the
//! controller, which costs it no CPU per line and lets the process outlive
//! the controller.
//!
//! A process's file is a ring. The engine keeps a duplicate of the
//! process's file descriptor, so it shares the open file description and
//! with it the *file offset* of the writer: once the writer is past the
//! bound, one `lseek` sends it back to the start and it goes on overwriting
//! its oldest output. No byte is copied, and no page is freed and allocated
//! again (cutting a file written at full speed costs a fifth of a core in
//! the kernel; a seek costs nothing). The file then reads, oldest first,
//! from the writer's offset to where it was sent back, then from the start
//! to the writer's offset. A new controller takes the descriptor again from
//! the running process (`pidfd_getfd`). Where there is no descriptor (the
//! events file, a process that closed its output) the file is appended to
//! and its front cut off in place instead.
//!
//! One watcher task looks at the files: every tick (1 ms while a file is
//! written fast, else 10 ms; a quiet file every 10th tick) it reads each
//! writer's offset, wraps or cuts what passed its bound, and records a
//! checkpoint (bytes written so far, time), by which a line is dated: its
//! time is exact to one tick, without reading anything. While somebody
//! follows an app, what its processes wrote since is read and broadcast;
//! nothing is read for apps nobody follows.
//!
//! Platform events (`log_event`) go to `<app>/_events.log` as
//! `<RFC 3339 time> <text>` lines (`_` never starts a process name).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, Weak};
use std::time::{Duration, SystemTime};

use chrono::{DateTime, Utc};
use tokio::sync::broadcast;

use drycc_engine::LogLine;

/// Longer lines are cut into pieces of this size, unless configured
/// otherwise (`LocalConfig::max_log_line`).
pub const MAX_LINE: usize = 16 * 1024;
/// Lines kept for slow followers before they lag.
const BROADCAST_CAPACITY: usize = 4096;
/// The watcher's tick while some file is written fast.
const FAST_TICK: Duration = Duration::from_millis(1);
/// The watcher's tick otherwise.
const TICK: Duration = Duration::from_millis(10);
/// Growth in one look that makes a file "written fast".
const FAST_BYTES: u64 = 64 * 1024;
/// A quiet file is looked at every this many ticks.
const QUIET_TICKS: u32 = 10;
/// Followed apps are read every this often.
const FOLLOW_EVERY: Duration = Duration::from_millis(100);
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
    /// Bytes a file keeps; a writer past it starts over at the front.
    max_bytes: u64,
    /// Longer lines are cut into lines of this many bytes.
    max_line: usize,
    apps: Mutex<HashMap<String, AppLogs>>,
}

#[derive(Default)]
struct AppLogs {
    /// Files of processes that exist (and the events file), by name.
    files: BTreeMap<String, Tracked>,
    follow: Option<Follow>,
    /// Processes ended since the files of ended ones were last pruned.
    ended: usize,
}

struct Follow {
    tx: broadcast::Sender<LogLine>,
    /// Per file: bytes written when it was last read, and the unfinished
    /// last line.
    read: HashMap<String, (u64, Vec<u8>)>,
}

#[derive(Default)]
struct Tracked {
    /// A duplicate of the writer's descriptor (same file offset).
    writer: Option<File>,
    /// The writer's offset at the last look; the size for appended files.
    pos: u64,
    /// Where the writer was last sent back to the front.
    wrap_at: Option<u64>,
    /// Bytes written in all, as far as seen.
    written: u64,
    /// The front of the file may hold the end of a longer line.
    cut_front: bool,
    /// (bytes written at `time`), oldest first.
    checkpoints: VecDeque<(u64, DateTime<Utc>)>,
    /// Ticks until the next look.
    due: u32,
}

impl Tracked {
    /// Track a file as it is now; `writer` is the process's descriptor.
    /// What it holds was written no later than its modification time.
    fn of(path: &Path, writer: Option<File>) -> Tracked {
        let meta = std::fs::metadata(path).ok();
        let size = meta.as_ref().map_or(0, |m| m.len());
        let pos = writer.as_ref().and_then(|w| offset(w).ok()).unwrap_or(size);
        let wrapped = pos < size;
        let mut tracked = Tracked {
            writer,
            pos,
            wrap_at: wrapped.then_some(size),
            written: if wrapped { size } else { pos },
            cut_front: wrapped,
            ..Tracked::default()
        };
        let time = meta
            .and_then(|m| m.modified().ok())
            .map(DateTime::<Utc>::from)
            .unwrap_or_else(Utc::now);
        tracked.checkpoints.push_back((tracked.written, time));
        tracked
    }

    /// The file's content in order as ranges of the file.
    fn segments(&self) -> Vec<(u64, u64)> {
        match self.wrap_at {
            Some(wrap) if self.pos < wrap => vec![(self.pos, wrap), (0, self.pos)],
            _ => vec![(0, self.pos)],
        }
    }

    /// Look at the file now: count what was written, checkpoint it, and
    /// bring it back within `max` bytes. Returns the bytes written since
    /// the last look.
    fn observe(&mut self, path: &Path, max: u64, now: DateTime<Utc>) -> u64 {
        let current = match &self.writer {
            Some(writer) => offset(writer),
            None => std::fs::metadata(path).map(|m| m.len()),
        };
        let Ok(current) = current else {
            return 0;
        };
        if current == self.pos {
            return 0;
        }
        // Moved back by someone else (a truncation): count from the front.
        let grew = current.checked_sub(self.pos).unwrap_or(current);
        self.written += grew;
        self.pos = current;
        if self.checkpoints.len() >= CHECKPOINTS {
            self.checkpoints.pop_front();
        }
        self.checkpoints.push_back((self.written, now));
        if current > max {
            match &self.writer {
                Some(writer) => {
                    if rewind(writer).is_ok() {
                        self.wrap_at = Some(current);
                        self.pos = 0;
                        self.cut_front = true;
                        // What an earlier, larger burst left past this wrap
                        // point is stale: give the space back.
                        if std::fs::metadata(path).is_ok_and(|m| m.len() > current + max) {
                            let _ = writer.set_len(current);
                        }
                    }
                }
                None => match trim(path, current, max) {
                    Ok(cut) => {
                        self.pos = current - cut;
                        self.cut_front |= cut > 0;
                    }
                    Err(e) => {
                        tracing::debug!(path = %path.display(), error = %e, "could not bound a log file")
                    }
                },
            }
        }
        grew
    }

    /// The time of the byte that ends a line at logical offset `end` of a
    /// view `len` bytes long.
    fn time_of(&self, end: u64, len: u64, fallback: DateTime<Utc>) -> DateTime<Utc> {
        let total = self.written.saturating_sub(len.saturating_sub(end));
        self.checkpoints
            .iter()
            .find(|(written, _)| *written >= total)
            .map(|(_, time)| *time)
            .unwrap_or(fallback)
    }
}

/// A descriptor's file offset (the writer's, for a shared description).
fn offset(file: &File) -> io::Result<u64> {
    (&*file).stream_position()
}

/// Send the writer back to the front of its file.
fn rewind(file: &File) -> io::Result<u64> {
    (&*file).seek(SeekFrom::Start(0))
}

impl LogStore {
    pub(crate) fn new(dir: PathBuf, max_bytes: u64, max_line: usize) -> Self {
        LogStore {
            dir,
            max_bytes: max_bytes.max(64 * 1024),
            max_line: max_line.max(1),
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

    /// The descriptor a process (or its next run, after a crash) writes
    /// its output with, positioned where the last run stopped; the engine
    /// keeps a duplicate to steer the writer's offset.
    pub(crate) fn open_output(&self, app: &str, name: &str) -> io::Result<File> {
        std::fs::create_dir_all(self.app_dir(app))?;
        let path = self.path(app, name);
        let file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(false)
            .mode(0o640)
            .open(&path)?;
        let mut apps = self.lock();
        let logs = apps.entry(app.to_string()).or_default();
        match logs.files.get_mut(name) {
            Some(tracked) => {
                // The last run's final offset, exactly.
                tracked.observe(&path, self.max_bytes, Utc::now());
                (&file).seek(SeekFrom::Start(tracked.pos))?;
                tracked.writer = Some(file.try_clone()?);
            }
            None => {
                (&file).seek(SeekFrom::End(0))?;
                logs.files.insert(
                    name.to_string(),
                    Tracked::of(&path, Some(file.try_clone()?)),
                );
            }
        }
        Ok(file)
    }

    /// Track the file of a process that already writes to it (adopted),
    /// with `writer`, its output descriptor, when it could be had and is
    /// still this file.
    pub(crate) fn adopt(&self, app: &str, name: &str, writer: Option<File>) {
        let path = self.path(app, name);
        let same_file = |w: &File| {
            let (Ok(a), Ok(b)) = (w.metadata(), std::fs::metadata(&path)) else {
                return false;
            };
            a.dev() == b.dev() && a.ino() == b.ino()
        };
        let writer = writer.filter(same_file);
        let mut apps = self.lock();
        let logs = apps.entry(app.to_string()).or_default();
        logs.files
            .insert(name.to_string(), Tracked::of(&path, writer));
    }

    /// The process is gone: give its followers what it wrote last, put its
    /// file in order, stop watching it, and keep it for `logs` (the newest
    /// few per app).
    pub(crate) fn ended(&self, app: &str, name: &str) {
        let path = self.path(app, name);
        let mut apps = self.lock();
        if let Some(logs) = apps.get_mut(app) {
            logs.ended += 1;
            {
                if let Some(tracked) = logs.files.get_mut(name) {
                    tracked.observe(&path, u64::MAX, Utc::now());
                }
                self.read_followed(app, logs);
                if let Some(tracked) = logs.files.remove(name) {
                    if tracked.wrap_at.is_some() {
                        if let Err(e) = unwrap_ring(&path, &tracked.segments()) {
                            tracing::debug!(path = %path.display(), error = %e, "could not put a log file in order");
                        }
                    }
                }
            }
        }
    }

    /// Delete the files of ended processes beyond the newest `ENDED_KEPT`
    /// (a scan of the app's directory: done by the watcher, once for many
    /// ended processes, not once per process).
    fn prune(&self, app: &str, live: &[String]) {
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
        let path = self.path(app, EVENTS);
        let mut apps = self.lock();
        let logs = apps.entry(app.to_string()).or_default();
        logs.files
            .entry(EVENTS.to_string())
            .or_insert_with(|| Tracked::of(&path, None));
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
            let Ok(file) = File::open(&path) else {
                continue;
            };
            let meta = file.metadata().ok();
            let fallback = meta
                .as_ref()
                .and_then(|m| m.modified().ok())
                .map(DateTime::<Utc>::from)
                .unwrap_or_else(Utc::now);
            let size = meta.map_or(0, |m| m.len());
            // The layout of a tracked file, looked at now; an untracked one
            // reads front to back.
            let tracked = {
                let mut apps = self.lock();
                apps.get_mut(app)
                    .and_then(|l| l.files.get_mut(&name))
                    .map(|t| {
                        t.observe(&path, self.max_bytes, Utc::now());
                        (t.segments(), t.cut_front, t.written, t.checkpoints.clone())
                    })
            };
            let (segments, cut_front) = match &tracked {
                Some((segments, cut_front, ..)) => (segments.clone(), *cut_front),
                None => (vec![(0, size)], false),
            };
            let mut view = View { file, segments };
            let len = view.len();
            let Ok(tail) = read_tail(&mut view, lines, cut_front, self.max_line) else {
                continue;
            };
            let time_of = |end: u64| match &tracked {
                Some((_, _, written, checkpoints)) => {
                    let dated = Tracked {
                        written: *written,
                        checkpoints: checkpoints.clone(),
                        ..Tracked::default()
                    };
                    dated.time_of(end, len, fallback)
                }
                None => fallback,
            };
            for (end, text) in tail {
                all.push(if events {
                    event_line(app, &text, fallback)
                } else {
                    LogLine {
                        time: time_of(end),
                        app: app.to_string(),
                        source: name.clone(),
                        text,
                    }
                });
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
        let mut apps = self.lock();
        let logs = apps.entry(app.to_string()).or_default();
        if let Some(follow) = &logs.follow {
            return follow.tx.subscribe();
        }
        // Start at what was written so far.
        let read = logs
            .files
            .iter()
            .map(|(name, t)| (name.clone(), (t.written, Vec::new())))
            .collect();
        let (tx, rx) = broadcast::channel(BROADCAST_CAPACITY);
        logs.follow = Some(Follow { tx, read });
        rx
    }

    /// One tick of the watcher: look at the files that are due and, when
    /// `follow` is set, read what followed apps wrote. Returns whether a
    /// file is being written fast.
    fn tick(&self, follow: bool) -> bool {
        let now = Utc::now();
        let mut fast = false;
        let mut prune: Vec<(String, Vec<String>)> = Vec::new();
        let mut apps = self.lock();
        for (app, logs) in apps.iter_mut() {
            for (name, tracked) in logs.files.iter_mut() {
                if tracked.due > 0 {
                    tracked.due -= 1;
                    continue;
                }
                let path = self.dir.join(app).join(format!("{name}.log"));
                let grew = tracked.observe(&path, self.max_bytes, now);
                fast |= grew >= FAST_BYTES;
                tracked.due = if grew == 0 { QUIET_TICKS } else { 0 };
            }
            if follow {
                self.read_followed(app, logs);
                if logs.ended > 0 {
                    logs.ended = 0;
                    prune.push((app.clone(), logs.files.keys().cloned().collect()));
                }
            }
        }
        drop(apps);
        for (app, live) in prune {
            self.prune(&app, &live);
        }
        fast
    }

    /// Read what each file of a followed app gained since the last read,
    /// and broadcast it line by line.
    fn read_followed(&self, app: &str, logs: &mut AppLogs) {
        let Some(follow) = logs.follow.as_mut() else {
            return;
        };
        if follow.tx.receiver_count() == 0 {
            logs.follow = None;
            return;
        }
        let now = Utc::now();
        for (name, tracked) in &logs.files {
            let (read, partial) = follow
                .read
                .entry(name.clone())
                .or_insert_with(|| (0, Vec::new()));
            let fresh = tracked.written.saturating_sub(*read);
            if fresh == 0 {
                continue;
            }
            *read = tracked.written;
            let path = self.dir.join(app).join(format!("{name}.log"));
            let Ok(file) = File::open(&path) else {
                continue;
            };
            let mut view = View {
                file,
                segments: tracked.segments(),
            };
            let len = view.len();
            if fresh > len {
                // Overwritten before we got to it.
                partial.clear();
                let notice = LogLine {
                    time: now,
                    app: app.to_string(),
                    source: CONTROLLER.to_string(),
                    text: format!("{} bytes of output of {name} were overwritten before they could be followed", fresh - len),
                };
                let _ = follow.tx.send(notice);
            }
            let Ok(bytes) = view.read(len - fresh.min(len), len) else {
                continue;
            };
            partial.extend_from_slice(&bytes);
            for text in take_lines(partial, self.max_line) {
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

/// Start the watcher: a thread of its own (its work is a few syscalls per
/// tick, and a thread keeps a 1 ms tick where a timer wheel would not),
/// which ends once the store is dropped.
pub(crate) fn start_watcher(store: Weak<LogStore>) -> io::Result<()> {
    std::thread::Builder::new()
        .name("drycc-log-watcher".to_string())
        .spawn(move || {
            let mut last_follow = std::time::Instant::now();
            let mut fast = false;
            loop {
                std::thread::sleep(if fast { FAST_TICK } else { TICK });
                let Some(logs) = store.upgrade() else {
                    return;
                };
                let follow = last_follow.elapsed() >= FOLLOW_EVERY;
                if follow {
                    last_follow = std::time::Instant::now();
                }
                fast = logs.tick(follow);
            }
        })
        .map(|_| ())
}

/// A file read through its ranges in order, as one stream.
struct View {
    file: File,
    segments: Vec<(u64, u64)>,
}

impl View {
    fn len(&self) -> u64 {
        self.segments
            .iter()
            .map(|(a, b)| b.saturating_sub(*a))
            .sum()
    }

    /// The bytes of the stream between `from` and `to`.
    fn read(&mut self, from: u64, to: u64) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        let mut at = 0u64;
        for &(start, end) in &self.segments {
            let len = end.saturating_sub(start);
            let (lo, hi) = (from.max(at), to.min(at + len));
            if lo < hi {
                self.file.seek(SeekFrom::Start(start + (lo - at)))?;
                (&mut self.file).take(hi - lo).read_to_end(&mut out)?;
            }
            at += len;
        }
        Ok(out)
    }
}

/// Rewrite a wrapped file in order (its process is gone: nobody writes it).
fn unwrap_ring(path: &Path, segments: &[(u64, u64)]) -> io::Result<()> {
    let mut view = View {
        file: File::open(path)?,
        segments: segments.to_vec(),
    };
    let len = view.len();
    let bytes = view.read(0, len)?;
    // Its first line may be the end of an overwritten one.
    let start = bytes.iter().position(|b| *b == b'\n').map_or(0, |i| i + 1);
    let temporary = path.with_extension("log.new");
    std::fs::write(&temporary, &bytes[start..])?;
    std::fs::rename(&temporary, path)
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

/// The last `lines` lines of a view as (offset just past the line, text),
/// oldest first. Reads backwards in growing windows, so a long file costs
/// only what is shown. `cut_front`: the view's first line may be the end of
/// a longer one, and is left out.
fn read_tail(
    view: &mut View,
    lines: usize,
    cut_front: bool,
    max_line: usize,
) -> io::Result<Vec<(u64, String)>> {
    let size = view.len();
    let mut window = (lines as u64).saturating_mul(256).max(64 * 1024).min(size);
    loop {
        let start = size.saturating_sub(window);
        let bytes = view.read(start, size)?;
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
        let found = split_lines(body, body_start, max_line);
        if found.len() >= lines || start == 0 {
            let skip = found.len().saturating_sub(lines);
            return Ok(found.into_iter().skip(skip).collect());
        }
        window = window.saturating_mul(4);
    }
}

/// Lines of `bytes` (which start at file offset `base`), each cut into
/// pieces of at most `max_line` bytes, with the offset past each piece.
fn split_lines(bytes: &[u8], base: u64, max_line: usize) -> Vec<(u64, String)> {
    let mut out = Vec::new();
    let mut at = 0usize;
    for raw in bytes.split_inclusive(|b| *b == b'\n') {
        let end = at + raw.len();
        let body = raw.strip_suffix(b"\n").unwrap_or(raw);
        let body = body.strip_suffix(b"\r").unwrap_or(body);
        let mut pieces = body.chunks(max_line.max(1)).peekable();
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
/// stays, unless it has reached `max_line`.
fn take_lines(buffer: &mut Vec<u8>, max_line: usize) -> Vec<String> {
    let complete = match buffer.iter().rposition(|b| *b == b'\n') {
        Some(i) => i + 1,
        None if buffer.len() >= max_line => buffer.len(),
        None => return Vec::new(),
    };
    let rest = buffer.split_off(complete);
    let lines = split_lines(buffer, 0, max_line)
        .into_iter()
        .map(|(_, t)| t)
        .collect();
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
        let lines = split_lines(&input, 100, MAX_LINE);
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
        assert_eq!(take_lines(&mut buffer, MAX_LINE), ["a", "b"]);
        assert_eq!(buffer, b"part");
        assert!(take_lines(&mut buffer, MAX_LINE).is_empty());
    }

    #[test]
    fn tail_reads_only_the_last_lines_of_a_long_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.log");
        let text: String = (0..100_000).map(|i| format!("line {i}\n")).collect();
        std::fs::write(&path, &text).unwrap();
        let view = |path: &Path| View {
            file: File::open(path).unwrap(),
            segments: vec![(0, std::fs::metadata(path).unwrap().len())],
        };
        let tail = read_tail(&mut view(&path), 3, false, MAX_LINE).unwrap();
        let texts: Vec<&str> = tail.iter().map(|(_, t)| t.as_str()).collect();
        assert_eq!(texts, ["line 99997", "line 99998", "line 99999"]);
        assert_eq!(tail[2].0, text.len() as u64);
        assert_eq!(
            read_tail(&mut view(&path), 200_000, false, MAX_LINE)
                .unwrap()
                .len(),
            100_000
        );
        assert_eq!(
            read_tail(&mut view(&path), 200_000, true, MAX_LINE).unwrap()[0].1,
            "line 1"
        );
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
        let later = DateTime::<Utc>::from_timestamp(3_000, 0).unwrap();
        let tracked = Tracked {
            written: 30,
            checkpoints: [(10, t0), (20, t1)].into_iter().collect(),
            ..Tracked::default()
        };
        // A view of the last 20 bytes written: offset 0 is byte 10 of all.
        assert_eq!(tracked.time_of(0, 20, later), t0);
        assert_eq!(tracked.time_of(5, 20, later), t1);
        assert_eq!(tracked.time_of(10, 20, later), t1);
        assert_eq!(tracked.time_of(15, 20, later), later);
    }

    #[test]
    fn a_writer_past_the_bound_starts_over_and_the_file_reads_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.log");
        let writer = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(false)
            .open(&path)
            .unwrap();
        let mut tracked = Tracked::of(&path, Some(writer.try_clone().unwrap()));
        let max = 1000;
        let mut out = &writer;
        let mut line = 0;
        let mut write_lines = |count: usize| {
            for _ in 0..count {
                writeln!(out, "line {line:04}").unwrap();
                line += 1;
            }
        };
        write_lines(120); // 1200 bytes: past the bound
        assert_eq!(tracked.observe(&path, max, Utc::now()), 1200);
        assert_eq!((tracked.pos, tracked.wrap_at), (0, Some(1200)));
        write_lines(30); // overwrites the oldest 300 bytes
        tracked.observe(&path, max, Utc::now());
        assert_eq!(tracked.written, 1500);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 1200);
        let mut view = View {
            file: File::open(&path).unwrap(),
            segments: tracked.segments(),
        };
        let lines = read_tail(&mut view, 1000, tracked.cut_front, MAX_LINE).unwrap();
        let texts: Vec<&str> = lines.iter().map(|(_, t)| t.as_str()).collect();
        // The first line left may be a partial one: it is left out.
        let expected: Vec<String> = (31..150).map(|i| format!("line {i:04}")).collect();
        assert_eq!(texts, expected);
        // Ended: the file is rewritten in order.
        unwrap_ring(&path, &tracked.segments()).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.starts_with("line 0031\n") && text.ends_with("line 0149\n"),
            "{text}"
        );
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
