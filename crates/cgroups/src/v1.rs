//! cgroup v1: one hierarchy per controller (`cpu`, `cpuacct` and `memory`,
//! which may share a mount), a group being a directory in each.

use std::path::PathBuf;

use crate::mounts::{own_dir, Mount};
use crate::{
    keyed, kill_listed, make_dirs, read, remove_dir, write, Cgroups, Limits, Result, Stats,
};

/// CFS period for CPU limits: quota = millicores x 100 µs per 100 ms.
const CFS_PERIOD_US: u64 = 100_000;

#[derive(Debug)]
pub struct V1 {
    cpu: PathBuf,
    cpuacct: PathBuf,
    memory: PathBuf,
}

impl V1 {
    /// Our own groups in the `cpu`, `cpuacct` and `memory` hierarchies.
    pub fn locate(mounts: &[Mount], own: &[(Vec<String>, String)]) -> Result<V1, String> {
        let dir = |controller: &str| -> Result<PathBuf, String> {
            let mount = mounts
                .iter()
                .find(|m| !m.unified && m.controllers.iter().any(|c| c == controller))
                .ok_or_else(|| format!("no {controller} hierarchy is mounted"))?;
            let path = own
                .iter()
                .find(|(controllers, _)| controllers.iter().any(|c| c == controller))
                .map(|(_, path)| path.as_str())
                .unwrap_or("/");
            Ok(own_dir(mount, path))
        };
        Ok(V1 {
            cpu: dir("cpu")?,
            cpuacct: dir("cpuacct")?,
            memory: dir("memory")?,
        })
    }

    /// The distinct directories of a group (co-mounted controllers share).
    fn dirs(&self, group: &str) -> Vec<PathBuf> {
        let mut dirs = vec![self.cpu.join(group)];
        for other in [self.cpuacct.join(group), self.memory.join(group)] {
            if !dirs.contains(&other) {
                dirs.push(other);
            }
        }
        dirs
    }
}

impl Cgroups for V1 {
    fn name(&self) -> &'static str {
        "v1"
    }

    fn create(&self, group: &str, limits: Limits) -> Result<()> {
        // Only the hierarchies a limit needs, and cpuacct for the CPU
        // reading: each directory costs tens of microseconds.
        make_dirs(&self.cpuacct.join(group))?;
        if let Some(millis) = limits.cpu_millis {
            let cpu = self.cpu.join(group);
            make_dirs(&cpu)?;
            // A new group inherits the kernel's default period, which is
            // ours; only the quota is written. The kernel's minimum is 1 ms.
            let quota = (millis.saturating_mul(CFS_PERIOD_US) / 1000).max(1000);
            write(&cpu.join("cpu.cfs_quota_us"), &quota.to_string())?;
        }
        if let Some(bytes) = limits.memory_bytes {
            let memory = self.memory.join(group);
            make_dirs(&memory)?;
            write(&memory.join("memory.limit_in_bytes"), &bytes.to_string())?;
            // With swap accounting, memory + swap gets the same limit, so
            // the limit is not escaped into swap.
            let memsw = memory.join("memory.memsw.limit_in_bytes");
            if memsw.exists() {
                write(&memsw, &bytes.to_string())?;
            }
        }
        Ok(())
    }

    fn add(&self, group: &str, pid: u32) -> Result<()> {
        for dir in self.dirs(group) {
            if dir.is_dir() {
                write(&dir.join("cgroup.procs"), &pid.to_string())?;
            }
        }
        Ok(())
    }

    fn stats(&self, group: &str) -> Result<Stats> {
        let (cpu_nanos, memory_bytes) = self.usage(group)?;
        let oom_kills = read(&self.memory.join(group).join("memory.oom_control"))
            .ok()
            .and_then(|text| keyed(&text, "oom_kill"))
            .unwrap_or(0);
        Ok(Stats {
            cpu_nanos,
            memory_bytes,
            oom_kills,
        })
    }

    fn usage(&self, group: &str) -> Result<(u64, u64)> {
        let cpu = read(&self.cpuacct.join(group).join("cpuacct.usage"))?;
        // No memory group without a memory limit: nothing charged there.
        let memory = read(&self.memory.join(group).join("memory.usage_in_bytes"))
            .ok()
            .and_then(|m| m.parse().ok())
            .unwrap_or(0);
        Ok((cpu.parse().unwrap_or(0), memory))
    }

    fn kill_all(&self, group: &str) -> Result<usize> {
        // cpuacct is the one hierarchy every group has.
        kill_listed(&self.cpuacct.join(group).join("cgroup.procs"))
    }

    fn remove(&self, group: &str) -> Result<()> {
        for dir in self.dirs(group) {
            remove_dir(&dir)?;
        }
        Ok(())
    }
}
