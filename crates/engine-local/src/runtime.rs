//! What the engine started, written down so that a new controller can adopt
//! it: one `<name>.json` per running process in the run directory (a tmpfs:
//! after a reboot nothing runs and nothing is left to adopt). A record is
//! written when a process is spawned and removed when it is gone for good;
//! a controller that stops or crashes leaves its records, and the processes
//! they describe, behind for the next one.
//!
//! A process is identified by pid *and* start time (field 22 of
//! `/proc/<pid>/stat`), so a reused pid is never taken for it. Exits of
//! processes that are not our children are watched with a pidfd.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

use super::os;
use drycc_engine::ProcessTemplate;

/// One running process as the engine started it.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub(crate) struct Record {
    pub name: String,
    /// 0 while it is being spawned.
    pub pid: u32,
    /// `/proc` start time of `pid` when it was spawned.
    pub start_time: u64,
    pub port: u16,
    pub restarts: u32,
    pub started: DateTime<Utc>,
    pub template: ProcessTemplate,
}

fn path(run_dir: &Path, name: &str) -> PathBuf {
    run_dir.join(format!("{name}.json"))
}

/// Write the record of a process just spawned (atomically: a crash while
/// writing leaves the old record or none, never half of one).
pub(crate) fn write(run_dir: &Path, record: &Record) {
    let target = path(run_dir, &record.name);
    let temporary = run_dir.join(format!("{}.json.new", record.name));
    let result = serde_json::to_vec(record)
        .map_err(io::Error::other)
        .and_then(|bytes| std::fs::write(&temporary, bytes))
        .and_then(|()| std::fs::rename(&temporary, &target));
    if let Err(e) = result {
        tracing::warn!(path = %target.display(), error = %e, "could not record a process; a restarted controller would not adopt it");
    }
}

pub(crate) fn remove(run_dir: &Path, name: &str) {
    let target = path(run_dir, name);
    match std::fs::remove_file(&target) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => {
            tracing::debug!(path = %target.display(), error = %e, "could not remove a process record")
        }
    }
}

/// Every record in `run_dir`. Unreadable records are removed with a warning:
/// they cannot name a process to adopt.
pub(crate) fn read_all(run_dir: &Path) -> io::Result<Vec<Record>> {
    let mut records = Vec::new();
    for entry in std::fs::read_dir(run_dir)? {
        let path = entry?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.ends_with(".json.new") {
            let _ = std::fs::remove_file(&path);
            continue;
        }
        if !name.ends_with(".json") {
            continue;
        }
        match std::fs::read(&path)
            .map_err(|e| e.to_string())
            .and_then(|b| serde_json::from_slice::<Record>(&b).map_err(|e| e.to_string()))
        {
            Ok(record) => records.push(record),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "removing an unreadable process record");
                let _ = std::fs::remove_file(&path);
            }
        }
    }
    Ok(records)
}

/// Whether the recorded process still runs: same pid, same start time, and
/// not a zombie (an exited process whose parent never reaped it).
pub(crate) fn is_alive(record: &Record) -> bool {
    record.start_time != 0
        && os::start_time(record.pid) == Some(record.start_time)
        && !os::is_zombie(record.pid)
}

/// The group leader of a process whose spawn was recorded but whose pid
/// was not (the controller died in between): the leader of its own
/// process group whose environment has `HOSTNAME=<name>`, the name the
/// engine gives every process, unique by its random suffix.
pub(crate) fn find_spawned(name: &str) -> Option<u32> {
    let marker = format!("HOSTNAME={name}");
    std::fs::read_dir("/proc")
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| os::is_group_leader(*pid) && !os::is_zombie(*pid))
        .find(|pid| {
            std::fs::read(format!("/proc/{pid}/environ"))
                .is_ok_and(|env| env.split(|b| *b == 0).any(|var| var == marker.as_bytes()))
        })
}

/// An exit watch on a process that is not our child.
pub(crate) struct PidFd(AsyncFd<OwnedFd>);

impl PidFd {
    pub(crate) fn open(pid: u32) -> io::Result<PidFd> {
        let raw =
            libc::pid_t::try_from(pid).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, raw, 0) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let fd = i32::try_from(fd).map_err(|_| io::Error::from(io::ErrorKind::InvalidData))?;
        // SAFETY: the kernel just gave us this descriptor; nobody else owns it.
        let owned = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: the descriptor is owned by the AsyncFd from here on and is
        // closed only when it is dropped, after deregistration.
        let registered = unsafe { AsyncFd::register_with_interest(owned, Interest::READABLE) }
            .map_err(io::Error::from)?;
        Ok(PidFd(registered))
    }

    /// A duplicate of the process's descriptor `target` (it shares the open
    /// file description, and so the file offset, with the process).
    pub(crate) fn descriptor(&self, target: i32) -> io::Result<std::fs::File> {
        use std::os::fd::AsRawFd;
        // SAFETY: pidfd_getfd takes a pidfd, an fd number and flags, and
        // returns a new descriptor or -1.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_pidfd_getfd,
                self.0.get_ref().as_raw_fd(),
                target,
                0,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let fd = i32::try_from(fd).map_err(|_| io::Error::from(io::ErrorKind::InvalidData))?;
        // SAFETY: the kernel just gave us this descriptor; nobody else owns it.
        Ok(std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    /// Resolves once the process has exited (a pidfd becomes readable then).
    pub(crate) async fn exited(&self) {
        // Readiness never clears: the process cannot come back.
        let _ = self.0.readable().await;
    }
}
