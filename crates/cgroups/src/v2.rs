//! cgroup v2: one unified tree; the `cpu` and `memory` controllers must be
//! delegated to our group and enabled for its descendants.

use std::path::PathBuf;

use crate::mounts::{own_dir, Mount};
use crate::{
    keyed, kill_listed, make_dirs, read, remove_dir, write, Cgroups, Limits, Result, Stats,
};

const CPU_PERIOD_US: u64 = 100_000;

#[derive(Debug)]
pub struct V2 {
    root: PathBuf,
}

impl V2 {
    /// Our own group of the unified tree, if it offers `cpu` and `memory`.
    pub fn locate(mounts: &[Mount], own: &[(Vec<String>, String)]) -> Result<V2, String> {
        let mount = mounts
            .iter()
            .find(|m| m.unified)
            .ok_or("no cgroup2 tree is mounted")?;
        let path = own
            .iter()
            .find(|(controllers, _)| controllers.is_empty())
            .map(|(_, path)| path.as_str())
            .unwrap_or("/");
        let root = own_dir(mount, path);
        let offered = read(&root.join("cgroup.controllers")).map_err(|e| e.to_string())?;
        let has = |c: &str| offered.split_whitespace().any(|o| o == c);
        if !(has("cpu") && has("memory")) {
            return Err(format!(
                "{} does not offer the cpu and memory controllers (it offers \"{offered}\")",
                root.display()
            ));
        }
        Ok(V2 { root })
    }
}

impl Cgroups for V2 {
    fn name(&self) -> &'static str {
        "v2"
    }

    fn create(&self, group: &str, limits: Limits) -> Result<()> {
        // Every ancestor must enable cpu and memory for its children.
        let mut dir = self.root.clone();
        for part in group.split('/').filter(|p| !p.is_empty()) {
            write(&dir.join("cgroup.subtree_control"), "+cpu +memory")?;
            dir.push(part);
            make_dirs(&dir)?;
        }
        let cpu = match limits.cpu_millis {
            Some(millis) => format!(
                "{} {CPU_PERIOD_US}",
                (millis * CPU_PERIOD_US / 1000).max(1000)
            ),
            None => format!("max {CPU_PERIOD_US}"),
        };
        write(&dir.join("cpu.max"), &cpu)?;
        if let Some(bytes) = limits.memory_bytes {
            write(&dir.join("memory.max"), &bytes.to_string())?;
            let swap = dir.join("memory.swap.max");
            if swap.exists() {
                write(&swap, "0")?;
            }
        }
        Ok(())
    }

    fn add(&self, group: &str, pid: u32) -> Result<()> {
        write(
            &self.root.join(group).join("cgroup.procs"),
            &pid.to_string(),
        )
    }

    fn stats(&self, group: &str) -> Result<Stats> {
        let dir = self.root.join(group);
        let cpu_nanos = keyed(&read(&dir.join("cpu.stat"))?, "usage_usec").unwrap_or(0) * 1000;
        let memory_bytes = read(&dir.join("memory.current"))?.parse().unwrap_or(0);
        let oom_kills = read(&dir.join("memory.events"))
            .ok()
            .and_then(|text| keyed(&text, "oom_kill"))
            .unwrap_or(0);
        Ok(Stats {
            cpu_nanos,
            memory_bytes,
            oom_kills,
        })
    }

    fn kill_all(&self, group: &str) -> Result<usize> {
        let dir = self.root.join(group);
        let kill = dir.join("cgroup.kill");
        if kill.exists() && write(&kill, "1").is_ok() {
            return Ok(crate::procs(&dir.join("cgroup.procs"))?.len());
        }
        kill_listed(&dir.join("cgroup.procs"))
    }

    fn remove(&self, group: &str) -> Result<()> {
        remove_dir(&self.root.join(group))
    }
}
