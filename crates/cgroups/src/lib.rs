//! Control groups for native processes: one group per process under a
//! per-app parent, CPU and memory limits, CPU time and memory readings, the
//! OOM killer's count, and killing everything in a group (so nothing
//! escapes by leaving its process group).
//!
//! Two implementations of one small trait, for the two hierarchies found in
//! the wild: cgroup v2 (`cpu.max`, `memory.max`, `cpu.stat`,
//! `memory.events`, `cgroup.kill`) and cgroup v1 (`cpu.cfs_quota_us`,
//! `memory.limit_in_bytes`, `cpuacct.usage`, `memory.oom_control`), each
//! rooted in the controller's own group of that hierarchy. [`detect`] picks
//! the one this process may write, and falls back to [`Disabled`], which
//! records nothing and says why, so that limits are still stored and used
//! for autoscaling but reported "not enforced".
//!
//! Nothing here knows about apps: a group is a relative path such as
//! `drycc/my-app/my-app-web-…`.

// Input from files and the system must never panic the program.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod mounts;
mod v1;
mod v2;

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use mounts::{parse_mountinfo, parse_self_cgroup, Mount};
pub use v1::V1;
pub use v2::V2;

/// Limits of one group; `None` is unlimited.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Limits {
    /// CPU in millicores (1000 = one core).
    pub cpu_millis: Option<u64>,
    pub memory_bytes: Option<u64>,
}

/// What a group has used.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// CPU time of everything that ran in the group, in nanoseconds.
    pub cpu_nanos: u64,
    /// Memory charged to the group now, in bytes.
    pub memory_bytes: u64,
    /// Processes the kernel's OOM killer killed in the group.
    pub oom_kills: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("cgroups are not available: {0}")]
    Unavailable(String),
    #[error("cgroup {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

pub type Result<T, E = CgroupError> = std::result::Result<T, E>;

pub(crate) fn io_error(path: &Path) -> impl FnOnce(io::Error) -> CgroupError + '_ {
    move |source| CgroupError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// One hierarchy's way of doing the operations. `group` is a path relative
/// to the controller's own group, such as `drycc/app/process`.
pub trait Cgroups: Send + Sync + std::fmt::Debug {
    /// `v2`, `v1` or `disabled`.
    fn name(&self) -> &'static str;
    /// Whether limits are enforced, and why not when they are not (only
    /// the fallback says no).
    fn enforced(&self) -> Result<(), String> {
        Ok(())
    }
    /// Create the group (and its parents) with these limits.
    fn create(&self, group: &str, limits: Limits) -> Result<()>;
    /// Move a process (and the threads it has) into the group.
    fn add(&self, group: &str, pid: u32) -> Result<()>;
    fn stats(&self, group: &str) -> Result<Stats>;
    /// CPU time in nanoseconds and memory in bytes only: two reads, for
    /// sampling many groups often.
    fn usage(&self, group: &str) -> Result<(u64, u64)> {
        self.stats(group).map(|s| (s.cpu_nanos, s.memory_bytes))
    }
    /// Kill every process in the group (SIGKILL); returns how many.
    fn kill_all(&self, group: &str) -> Result<usize>;
    /// Remove the group once it is empty (a missing group is fine).
    fn remove(&self, group: &str) -> Result<()>;
}

/// The fallback where no hierarchy can be written: nothing is enforced.
#[derive(Debug)]
pub struct Disabled {
    pub reason: String,
}

impl Cgroups for Disabled {
    fn name(&self) -> &'static str {
        "disabled"
    }
    fn enforced(&self) -> Result<(), String> {
        Err(self.reason.clone())
    }
    fn create(&self, _group: &str, _limits: Limits) -> Result<()> {
        Err(CgroupError::Unavailable(self.reason.clone()))
    }
    fn add(&self, _group: &str, _pid: u32) -> Result<()> {
        Err(CgroupError::Unavailable(self.reason.clone()))
    }
    fn stats(&self, _group: &str) -> Result<Stats> {
        Err(CgroupError::Unavailable(self.reason.clone()))
    }
    fn kill_all(&self, _group: &str) -> Result<usize> {
        Ok(0)
    }
    fn remove(&self, _group: &str) -> Result<()> {
        Ok(())
    }
}

/// The hierarchy this process may write: cgroup v2 when the unified tree
/// delegates `cpu` and `memory` to us, else cgroup v1 when its `cpu`,
/// `cpuacct` and `memory` hierarchies are mounted and writable, else
/// [`Disabled`] with the reasons. Probes by creating (and removing) a test
/// group named `probe` under `parent`.
pub fn detect(parent: &str) -> Arc<dyn Cgroups> {
    let mounts = std::fs::read_to_string("/proc/self/mountinfo")
        .map(|text| parse_mountinfo(&text))
        .unwrap_or_default();
    let own = std::fs::read_to_string("/proc/self/cgroup")
        .map(|text| parse_self_cgroup(&text))
        .unwrap_or_default();
    let probe = format!("{}/probe-{}", parent.trim_matches('/'), std::process::id());
    let mut reasons = Vec::new();
    match V2::locate(&mounts, &own) {
        Ok(v2) => match try_probe(&v2, &probe) {
            Ok(()) => return Arc::new(v2),
            Err(e) => reasons.push(format!("cgroup v2: {e}")),
        },
        Err(e) => reasons.push(format!("cgroup v2: {e}")),
    }
    match V1::locate(&mounts, &own) {
        Ok(v1) => match try_probe(&v1, &probe) {
            Ok(()) => return Arc::new(v1),
            Err(e) => reasons.push(format!("cgroup v1: {e}")),
        },
        Err(e) => reasons.push(format!("cgroup v1: {e}")),
    }
    Arc::new(Disabled {
        reason: reasons.join("; "),
    })
}

fn try_probe(cgroups: &dyn Cgroups, probe: &str) -> Result<()> {
    let limits = Limits {
        cpu_millis: Some(1000),
        memory_bytes: Some(64 * 1024 * 1024),
    };
    let created = cgroups.create(probe, limits);
    let removed = cgroups.remove(probe);
    created.and(removed)
}

/// Read a whole control file, trimmed.
pub(crate) fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .map_err(io_error(path))
}

/// Write a control file.
pub(crate) fn write(path: &Path, value: &str) -> Result<()> {
    std::fs::write(path, value).map_err(io_error(path))
}

/// The value of `key` in a flat keyed file (`key value` lines).
pub(crate) fn keyed(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let (k, v) = line.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok())?
    })
}

/// `mkdir -p` of a group, and the directories of its parents.
pub(crate) fn make_dirs(path: &Path) -> Result<()> {
    std::fs::create_dir_all(path).map_err(io_error(path))
}

/// Remove a group directory; gone already is fine.
pub(crate) fn remove_dir(path: &Path) -> Result<()> {
    match std::fs::remove_dir(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_error(path)(e)),
    }
}

/// The pids listed in a `cgroup.procs` file.
pub(crate) fn procs(path: &Path) -> Result<Vec<u32>> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(text.lines().filter_map(|l| l.trim().parse().ok()).collect()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(io_error(path)(e)),
    }
}

/// SIGKILL every pid of `cgroup.procs`, again for those that appear while
/// we kill (a process may fork meanwhile), until no new one is left (a
/// killed one may still be listed until its parent reaps it); returns how
/// many were signalled.
pub(crate) fn kill_listed(procs_file: &Path) -> Result<usize> {
    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;
    let mut signalled = std::collections::HashSet::new();
    loop {
        let fresh: Vec<u32> = procs(procs_file)?
            .into_iter()
            .filter(|pid| !signalled.contains(pid))
            .collect();
        if fresh.is_empty() {
            return Ok(signalled.len());
        }
        for pid in fresh {
            if let Ok(raw) = i32::try_from(pid) {
                if raw > 1 {
                    let _ = kill(Pid::from_raw(raw), Signal::SIGKILL);
                }
            }
            signalled.insert(pid);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyed_files_are_read_by_key() {
        let text = "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n";
        assert_eq!(keyed(text, "oom_kill"), Some(3));
        assert_eq!(keyed(text, "missing"), None);
        assert_eq!(
            keyed("usage_usec 1500\nuser_usec 1000", "usage_usec"),
            Some(1500)
        );
    }

    #[test]
    fn disabled_says_why_and_refuses() {
        let d = Disabled {
            reason: "no hierarchy".into(),
        };
        assert_eq!(d.enforced(), Err("no hierarchy".to_string()));
        assert!(d.create("a/b", Limits::default()).is_err());
        assert_eq!(d.kill_all("a/b").unwrap(), 0);
    }
}
