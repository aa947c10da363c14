//! CPU and memory of processes: from each process's control group where
//! there is one (everything it started counts), else from `/proc` (its
//! leader only). CPU in millicores is the CPU time used between two
//! readings over the wall time between them (`drycc_engine_runtime::usage`).

use std::sync::Arc;
use std::time::Instant;

use super::state::Shared;
use drycc_engine::{EngineError, ProcessUsage, Result};
use drycc_engine_runtime::usage::{Reading, Subject};

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

/// The usage of `app`'s processes (see `drycc_engine_runtime::usage`),
/// read off the async threads: `/proc` and cgroupfs are file reads.
pub(crate) async fn sample(shared: &Arc<Shared>, app: &str) -> Result<Vec<ProcessUsage>> {
    let subjects = shared.usage_subjects(app);
    let (reader, of) = (Arc::clone(shared), app.to_string());
    let readings = tokio::task::spawn_blocking(move || {
        let read_one = |subject: Subject| {
            let reading = read(&reader, &of, &subject.name, subject.pid);
            let reading = reading.map(|(cpu, memory)| Reading {
                at: Instant::now(),
                cpu: Some(cpu),
                memory: Some(memory),
            });
            (subject, reading)
        };
        subjects.into_iter().map(read_one).collect::<Vec<_>>()
    })
    .await
    .map_err(|e| EngineError::unavailable(format!("sampling usage failed: {e}")))?;
    Ok(shared.usage_of(app, readings))
}
