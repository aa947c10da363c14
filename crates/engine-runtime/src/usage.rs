//! The usage of an app's processes, sampled the same way by every
//! process-table engine: which processes are read (those not terminating),
//! and CPU in millicores, the CPU time a process used between two readings
//! over the wall time between them. The engines read CPU time and memory
//! their own way (a control group, `/proc`, the Docker daemon);
//! `CpuSamples` keeps the last reading of each process between two samples
//! of an app.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use drycc_engine::ProcessUsage;

use crate::process_table::{Host, ProcessTable};

/// A process to read, as the table knows it.
#[derive(Clone, Debug)]
pub struct Subject {
    pub name: String,
    pub ptype: String,
    pub ready: bool,
    pub pid: Option<u32>,
    /// Its command runs now.
    pub running: bool,
}

/// One reading of a process, taken `at`: CPU time in nanoseconds and
/// memory in bytes, each when it could be read.
#[derive(Clone, Copy, Debug)]
pub struct Reading {
    pub at: Instant,
    pub cpu: Option<u64>,
    pub memory: Option<u64>,
}

impl<H: Host> ProcessTable<H> {
    /// The processes of `app` whose usage is read: all but those
    /// terminating.
    pub fn usage_subjects(&self, app: &str) -> Vec<Subject> {
        let inner = self.lock();
        let procs = inner
            .apps
            .get(app)
            .into_iter()
            .flat_map(|e| e.procs.values());
        procs
            .filter(|p| !p.stopping)
            .map(|p| Subject {
                name: p.status.name.clone(),
                ptype: p.status.ptype.clone(),
                ready: p.status.ready,
                pid: p.status.pid,
                running: p.is_running(),
            })
            .collect()
    }

    /// The usage of `app` from one reading per subject (none when it could
    /// not be read). A CPU counter that went back (a container started
    /// anew, a reading from another source) counts as idle for this
    /// sample, not as unknown.
    pub fn usage_of(
        &self,
        app: &str,
        readings: Vec<(Subject, Option<Reading>)>,
    ) -> Vec<ProcessUsage> {
        let mut samples = self.cpu.sample(app);
        readings
            .into_iter()
            .map(|(subject, reading)| {
                let cpu_millis = reading.and_then(|r| {
                    let cpu = r.cpu?;
                    let before = samples.record(&subject.name, r.at, cpu)?;
                    millicores(before, (r.at, cpu.max(before.1)))
                });
                ProcessUsage {
                    name: subject.name,
                    ptype: subject.ptype,
                    ready: subject.ready,
                    cpu_millis,
                    memory_bytes: reading.and_then(|r| r.memory),
                }
            })
            .collect()
    }
}

/// Millicores used between two readings (time, CPU nanoseconds); none when
/// no time passed or the counter went back (a counter started anew).
pub fn millicores(before: (Instant, u64), now: (Instant, u64)) -> Option<u64> {
    let wall = now.0.checked_duration_since(before.0)?.as_nanos();
    if wall == 0 {
        return None;
    }
    let cpu = u128::from(now.1.checked_sub(before.1)?);
    u64::try_from(cpu * 1000 / wall).ok()
}

/// The last CPU reading (time, nanoseconds) of each process, by name.
#[derive(Debug, Default)]
pub struct CpuSamples {
    last: Mutex<HashMap<String, (Instant, u64)>>,
}

impl CpuSamples {
    /// Start a sample of `app`, whose process names begin with `app-`.
    /// Readings recorded in it replace the previous ones when it ends;
    /// those of the app's processes it did not see are forgotten.
    pub fn sample<'a>(&'a self, app: &str) -> Sample<'a> {
        Sample {
            last: self.last.lock().unwrap_or_else(|e| e.into_inner()),
            prefix: format!("{app}-"),
            fresh: HashMap::new(),
        }
    }

    /// Forget the reading of a process that is gone.
    pub fn forget(&self, name: &str) {
        self.last
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name);
    }
}

/// One sample of an app in progress (holds the readings' lock).
pub struct Sample<'a> {
    last: MutexGuard<'a, HashMap<String, (Instant, u64)>>,
    prefix: String,
    fresh: HashMap<String, (Instant, u64)>,
}

impl Sample<'_> {
    /// Record the reading of process `name` and return the previous one.
    pub fn record(&mut self, name: &str, at: Instant, cpu: u64) -> Option<(Instant, u64)> {
        self.fresh.insert(name.to_string(), (at, cpu));
        self.last.get(name).copied()
    }
}

impl Drop for Sample<'_> {
    fn drop(&mut self) {
        // Keep the readings of this app's processes that still exist.
        let (prefix, fresh) = (&self.prefix, &self.fresh);
        self.last
            .retain(|name, _| !name.starts_with(prefix.as_str()) || fresh.contains_key(name));
        self.last.extend(self.fresh.drain());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn millicores_are_cpu_time_over_wall_time() {
        let t0 = Instant::now();
        let t1 = t0 + Duration::from_secs(2);
        assert_eq!(millicores((t0, 0), (t1, 1_000_000_000)), Some(500));
        assert_eq!(millicores((t0, 0), (t1, 4_000_000_000)), Some(2000));
        assert_eq!(millicores((t1, 0), (t0, 5)), None);
        assert_eq!(millicores((t0, 10), (t0, 20)), None);
        // A container started anew counts from zero again.
        assert_eq!(millicores((t0, 10), (t1, 5)), None);
    }

    #[test]
    fn a_sample_keeps_the_readings_of_processes_it_saw() {
        let samples = CpuSamples::default();
        let t0 = Instant::now();
        {
            let mut s = samples.sample("a");
            assert_eq!(s.record("a-web-1", t0, 5), None);
            assert_eq!(s.record("a-web-2", t0, 6), None);
        }
        {
            let mut s = samples.sample("ab");
            s.record("ab-web-1", t0, 7);
        }
        {
            let mut s = samples.sample("a");
            assert_eq!(s.record("a-web-1", t0, 9), Some((t0, 5)));
        }
        let mut s = samples.sample("a");
        assert_eq!(s.record("a-web-2", t0, 1), None);
        assert_eq!(s.record("a-web-1", t0, 1), Some((t0, 9)));
        drop(s);
        let mut s = samples.sample("ab");
        assert_eq!(s.record("ab-web-1", t0, 8), Some((t0, 7)));
    }
}
