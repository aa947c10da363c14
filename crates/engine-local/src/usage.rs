//! CPU and memory of processes: from each process's control group where
//! there is one (everything it started counts), else from `/proc` (its
//! leader only). CPU in millicores is the CPU time used between two
//! readings over the wall time between them (`drycc_engine_runtime::usage`).

use std::time::Instant;

use super::state::Shared;
use drycc_engine::ProcessUsage;
use drycc_engine_runtime::usage::millicores;

/// One reading: CPU time in nanoseconds and memory in bytes.
fn read(shared: &Shared, app: &str, name: &str, pid: Option<u32>) -> Option<(u64, u64)> {
    // Two reads either way: a pass over 500 processes stays cheap. (With
    // cgroup v1, pages touched in the microseconds before the process was
    // moved into its group stay charged to the parent.)
    match shared.cgroups.usage(&shared.cgroup_of(app, name)) {
        // No memory group (no memory limit): the process's resident size.
        Ok((cpu, 0)) => Some((cpu, pid.and_then(resident).unwrap_or(0))),
        Ok(reading) => Some(reading),
        Err(_) => from_proc(pid?),
    }
}

/// CPU time and resident size of one process from `/proc`.
fn from_proc(pid: u32) -> Option<(u64, u64)> {
    let fields = super::os::stat(pid)?;
    // utime and stime are fields 14 and 15.
    let ticks: u64 = fields
        .get(14..16)?
        .iter()
        .filter_map(|f| f.parse::<u64>().ok())
        .sum();
    // SAFETY: sysconf only reads a system constant.
    let hz = u64::try_from(unsafe { libc::sysconf(libc::_SC_CLK_TCK) })
        .ok()?
        .max(1);
    Some((ticks * 1_000_000_000 / hz, resident(pid)?))
}

/// Resident memory of one process in bytes, from `/proc/<pid>/statm`.
fn resident(pid: u32) -> Option<u64> {
    // SAFETY: sysconf only reads a system constant.
    let page = u64::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).ok()?;
    let statm = std::fs::read_to_string(format!("/proc/{pid}/statm")).ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * page)
}

pub(crate) fn sample(shared: &Shared, app: &str) -> Vec<ProcessUsage> {
    let processes: Vec<(String, String, bool, Option<u32>)> = {
        let inner = shared.lock();
        inner
            .apps
            .get(app)
            .map(|entry| {
                entry
                    .procs
                    .values()
                    .filter(|p| !p.stopping)
                    .map(|p| {
                        (
                            p.status.name.clone(),
                            p.status.ptype.clone(),
                            p.status.ready,
                            p.status.pid,
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut samples = shared.cpu_samples.sample(app);
    processes
        .into_iter()
        .map(|(name, ptype, ready, pid)| {
            let reading = read(shared, app, &name, pid);
            let now = Instant::now();
            let cpu_millis = reading.and_then(|(cpu, _)| {
                let before = samples.record(&name, now, cpu)?;
                // A counter that went back (a cgroup reading, then one of
                // `/proc`) counts as idle here, not as unknown.
                millicores(before, (now, cpu.max(before.1)))
            });
            ProcessUsage {
                name,
                ptype,
                ready,
                cpu_millis,
                memory_bytes: reading.map(|(_, memory)| memory),
            }
        })
        .collect()
}
