//! Thin OS helpers of the local engine: process-group signals, the pid files
//! that make orphans of a crashed controller findable, `/proc` start times,
//! free ports and the file-descriptor limit. Nothing here knows about apps.

use std::io;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;

use nix::errno::Errno;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

/// Send `signal` to the process group `pgid`. A group that no longer exists
/// is not an error: the goal (nobody left to signal) is reached.
pub(crate) fn signal_group(pgid: u32, signal: Signal) {
    let Ok(raw) = i32::try_from(pgid) else {
        return;
    };
    if raw <= 1 {
        // Never signal group 0 (our own) or 1 (init's): a pid of 0/1 can only
        // come from a corrupt pid file.
        return;
    }
    match killpg(Pid::from_raw(raw), signal) {
        Ok(()) | Err(Errno::ESRCH) => {}
        Err(e) => tracing::debug!(pgid, %signal, error = %e, "killpg failed"),
    }
}

/// Whether any process of the group `pgid` is alive (or a zombie).
pub(crate) fn group_exists(pgid: u32) -> bool {
    let Ok(raw) = i32::try_from(pgid) else {
        return false;
    };
    raw > 1 && killpg(Pid::from_raw(raw), None) != Err(Errno::ESRCH)
}

/// Whether any process of the group `pgid` is alive and not a zombie. A
/// zombie is gone for every purpose but its pid: one whose parent died is
/// reaped by init, which may never happen in a container whose init does
/// not reap.
pub(crate) fn group_alive(pgid: u32) -> bool {
    if !group_exists(pgid) {
        return false;
    }
    if start_time(pgid).is_some() && !is_zombie(pgid) {
        return true;
    }
    // The leader is gone or a zombie: look for a live member.
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return true;
    };
    entries.filter_map(|e| e.ok()).any(|e| {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            return false;
        };
        stat_fields(pid).is_some_and(|(state, pgrp)| pgrp == pgid && state != 'Z')
    })
}

/// Whether `pid` leads its own process group.
pub(crate) fn is_group_leader(pid: u32) -> bool {
    stat_fields(pid).is_some_and(|(_, pgrp)| pgrp == pid)
}

/// Whether `pid` is a zombie (exited, not reaped).
pub(crate) fn is_zombie(pid: u32) -> bool {
    stat_fields(pid).is_some_and(|(state, _)| state == 'Z')
}

/// Fields 3 (state) and 5 (process group) of `/proc/<pid>/stat`.
fn stat_fields(pid: u32) -> Option<(char, u32)> {
    let fields = stat(pid)?;
    let state = fields.get(3)?.chars().next()?;
    let pgrp = fields.get(5)?.parse().ok()?;
    Some((state, pgrp))
}

/// Field 22 of `/proc/<pid>/stat`: the start time of the process in clock
/// ticks since boot. Together with the pid it identifies a process across
/// pid reuse.
pub(crate) fn start_time(pid: u32) -> Option<u64> {
    stat(pid)?.get(22)?.parse().ok()
}

/// The fields of `/proc/<pid>/stat`, numbered as in proc(5) (field 1 is
/// the pid; field 2, the command name, is left empty: it may contain
/// blanks and parentheses, so the numbers are read after its last ')').
pub(crate) fn stat(pid: u32) -> Option<Vec<String>> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &text[text.rfind(')')? + 1..];
    let mut fields = vec![String::new(), pid.to_string(), String::new()];
    fields.extend(rest.split_whitespace().map(str::to_string));
    Some(fields)
}

/// The argv of a running process as the kernel shows it (empty when it
/// cannot be read).
pub(crate) fn cmdline(pid: u32) -> Vec<String> {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|bytes| {
            bytes
                .split(|b| *b == 0)
                .filter(|w| !w.is_empty())
                .map(|w| String::from_utf8_lossy(w).into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// The pid file of a process (or exec session) in `run_dir`.
pub(crate) fn pid_file(run_dir: &Path, name: &str) -> PathBuf {
    run_dir.join(format!("{name}.pid"))
}

/// Record `pid` and its start time, so that a later controller can kill the
/// group if this one dies without cleaning up.
pub(crate) fn write_pid_file(run_dir: &Path, name: &str, pid: u32) {
    let start = start_time(pid).unwrap_or(0);
    let path = pid_file(run_dir, name);
    if let Err(e) = std::fs::write(&path, format!("{pid} {start}\n")) {
        tracing::warn!(path = %path.display(), error = %e, "could not write pid file; an orphan of this process would not be found after a controller crash");
    }
}

pub(crate) fn remove_pid_file(run_dir: &Path, name: &str) {
    let path = pid_file(run_dir, name);
    match std::fs::remove_file(&path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => tracing::debug!(path = %path.display(), error = %e, "could not remove pid file"),
    }
}

/// Remove `run_dir` when it holds nothing but the engine's lock file: no
/// process record, no pid file, nothing else. Returns whether it is gone.
/// `remove_dir` only removes an empty directory, so a file another engine
/// creates meanwhile keeps it.
pub(crate) fn remove_idle_run_dir(run_dir: &Path) -> bool {
    let Ok(entries) = std::fs::read_dir(run_dir) else {
        return false;
    };
    for entry in entries {
        match entry {
            Ok(entry) if entry.file_name() == "engine.lock" => {}
            _ => return false,
        }
    }
    let _ = std::fs::remove_file(run_dir.join("engine.lock"));
    match std::fs::remove_dir(run_dir) {
        Ok(()) => true,
        Err(e) => {
            tracing::debug!(path = %run_dir.display(), error = %e, "run directory kept");
            false
        }
    }
}

/// Kill the process groups left behind by a previous controller, as recorded
/// by the pid files in `run_dir`, and remove the files. Returns the groups
/// that were killed.
///
/// A group is killed when its leader is still alive with the recorded start
/// time (so a reused pid is never hit), or when the leader is gone but
/// members of its group remain: a pid stays allocated while it names a live
/// group, so such members can only be the leftovers of that leader.
pub(crate) fn kill_orphans(run_dir: &Path) -> io::Result<Vec<u32>> {
    let mut killed = Vec::new();
    let entries = match std::fs::read_dir(run_dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(killed),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let path = entry.path();
        if path.extension().and_then(|e| e.to_str()) != Some("pid") {
            continue;
        }
        // Only our own files count (see `prepare_run_dir`).
        let ours = entry.metadata().is_ok_and(|m| {
            std::os::unix::fs::MetadataExt::uid(&m) == nix::unistd::geteuid().as_raw()
        });
        let content = if ours {
            std::fs::read_to_string(&path).unwrap_or_default()
        } else {
            String::new()
        };
        let mut fields = content.split_whitespace();
        let pid: Option<u32> = fields.next().and_then(|f| f.parse().ok());
        let recorded: Option<u64> = fields.next().and_then(|f| f.parse().ok());
        if let Some(pid) = pid.filter(|p| *p > 1) {
            let matches = match (start_time(pid), recorded) {
                (Some(now), Some(then)) => then != 0 && now == then,
                // Leader gone: only its own leftovers can still use its pid
                // as their group id.
                (None, _) => group_exists(pid),
                (Some(_), None) => false,
            };
            if matches {
                tracing::warn!(pid, file = %path.display(), "killing a process group left by a previous controller");
                signal_group(pid, Signal::SIGKILL);
                killed.push(pid);
            }
        }
        if let Err(e) = std::fs::remove_file(&path) {
            tracing::debug!(path = %path.display(), error = %e, "could not remove stale pid file");
        }
    }
    Ok(killed)
}

/// Make sure `run_dir` exists, belongs to us and nobody else can read or
/// write into it (a pid file planted by someone else would make us kill their
/// choice of process), then lock it for this engine's lifetime: two engines
/// on one run_dir would kill each other's processes as orphans.
pub(crate) fn prepare_run_dir(run_dir: &Path) -> io::Result<std::fs::File> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    std::fs::create_dir_all(run_dir)?;
    let meta = std::fs::symlink_metadata(run_dir)?;
    let uid = nix::unistd::geteuid().as_raw();
    if !meta.is_dir() || meta.uid() != uid {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "run directory {} is not a directory owned by uid {uid}",
                run_dir.display()
            ),
        ));
    }
    // Nobody else may even read it: the process records hold every
    // process's environment.
    if meta.mode() & 0o077 != 0 {
        std::fs::set_permissions(run_dir, std::fs::Permissions::from_mode(0o700))?;
    }
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(run_dir.join("engine.lock"))?;
    // SAFETY: flock on a descriptor we own; released when the file closes.
    if unsafe {
        libc::flock(
            std::os::fd::AsRawFd::as_raw_fd(&lock),
            libc::LOCK_EX | libc::LOCK_NB,
        )
    } != 0
    {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(
            e.kind(),
            format!(
                "run directory {} is in use by another running engine ({e})",
                run_dir.display()
            ),
        ));
    }
    Ok(lock)
}

/// The kernel's range of ephemeral ports (outgoing connections, bind to
/// port 0), from `/proc/sys/net/ipv4/ip_local_port_range`.
pub fn ephemeral_ports() -> Option<RangeInclusive<u16>> {
    let text = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok()?;
    let mut fields = text.split_whitespace().map(|f| f.parse::<u16>().ok());
    Some(fields.next()??..=fields.next()??)
}

/// Ports for processes outside the ephemeral range, so that no outgoing
/// connection can ever hold a port promised to a process: the ports below
/// the ephemeral range down to 20000 (or 1024), else those above it.
pub fn default_process_ports(ephemeral: Option<RangeInclusive<u16>>) -> RangeInclusive<u16> {
    let ephemeral = ephemeral.unwrap_or(32768..=60999);
    let (low, high) = (*ephemeral.start(), *ephemeral.end());
    if low > 2048 {
        let start = if low > 20000 + 1024 { 20000 } else { 1024 };
        return start..=low - 1;
    }
    if high < 65535 - 1024 {
        return high + 1..=65535;
    }
    // No room outside: share the range (ports are still checked free).
    1024..=65535
}

/// Raise the soft limit of open files to the hard limit: every process costs
/// us three descriptors (two pipes and a pidfd), and the common soft limit of
/// 1024 would stop us near 300 processes.
pub(crate) fn raise_nofile_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read/write the struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                tracing::debug!("could not raise RLIMIT_NOFILE");
            }
        }
    }
}

/// The shell convention for an exit status: the code, or 128 + signal.
pub(crate) fn exit_code(status: &ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => code,
        (None, Some(signal)) => 128 + signal,
        (None, None) => 255,
    }
}

/// A human description of an exit status, for `last_exit`.
pub(crate) fn describe_exit(status: &ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with code {code}"),
        (None, Some(signal)) => match Signal::try_from(signal) {
            Ok(sig) => format!("killed by signal {signal} ({})", sig.as_str()),
            Err(_) => format!("killed by signal {signal}"),
        },
        (None, None) => "exited".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_time_of_self_is_stable() {
        let me = std::process::id();
        let a = start_time(me);
        assert!(a.is_some());
        assert_eq!(a, start_time(me));
    }

    #[test]
    fn stat_fields_are_numbered_as_in_proc5() {
        let me = std::process::id();
        let fields = stat(me).unwrap();
        assert_eq!(fields[1], me.to_string());
        let pgrp = nix::unistd::getpgrp().as_raw().to_string();
        assert_eq!(fields[5], pgrp);
        assert_eq!(fields[22], start_time(me).unwrap().to_string());
        assert_eq!(stat_fields(me).map(|(_, g)| g.to_string()), Some(pgrp));
    }

    #[test]
    fn start_time_of_missing_pid_is_none() {
        // pid_max is at most 2^22 on Linux.
        assert_eq!(start_time(u32::MAX - 1), None);
    }

    #[test]
    fn process_ports_stay_out_of_the_ephemeral_range() {
        assert_eq!(default_process_ports(Some(32768..=60999)), 20000..=32767);
        assert_eq!(default_process_ports(Some(10000..=60999)), 1024..=9999);
        assert_eq!(default_process_ports(Some(1024..=40000)), 40001..=65535);
        assert_eq!(default_process_ports(Some(1024..=65535)), 1024..=65535);
    }

    #[test]
    fn never_signals_group_zero_or_one() {
        // Would kill the test runner itself if it did.
        signal_group(0, Signal::SIGTERM);
        signal_group(1, Signal::SIGTERM);
        assert!(!group_exists(0));
    }
}
