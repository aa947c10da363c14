//! CPU and memory of containers from the daemon's stats (one reading each,
//! no streaming). CPU in millicores is the CPU time used between two calls
//! over the wall time between them (`drycc_engine_runtime::usage`); the
//! first call of a container gives none. Memory is the container's usage
//! less its inactive file cache, as `docker stats` shows it.

use std::time::Instant;

use bollard::models::ContainerStatsResponse;
use bollard::query_parameters::StatsOptionsBuilder;
use futures::StreamExt;

use crate::state::Shared;
use drycc_engine::ProcessUsage;
use drycc_engine_runtime::usage::millicores;

/// CPU nanoseconds and memory bytes of one reading.
fn reading(stats: &ContainerStatsResponse) -> (Option<u64>, Option<u64>) {
    let cpu = stats
        .cpu_stats
        .as_ref()
        .and_then(|c| c.cpu_usage.as_ref())
        .and_then(|u| u.total_usage);
    let memory = stats.memory_stats.as_ref().and_then(|m| {
        let usage = m.usage?;
        let inactive = m
            .stats
            .as_ref()
            .and_then(|s| {
                s.get("inactive_file")
                    .or_else(|| s.get("total_inactive_file"))
                    .copied()
            })
            .unwrap_or(0);
        Some(usage.saturating_sub(inactive))
    });
    (cpu, memory)
}

pub(crate) async fn sample(shared: &Shared, app: &str) -> Vec<ProcessUsage> {
    let processes: Vec<(String, String, bool, bool)> = {
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
                            p.is_running(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let reads = processes.into_iter().map(|(name, ptype, ready, running)| async move {
        let stats = if running {
            let options = StatsOptionsBuilder::new()
                .stream(false)
                .one_shot(true)
                .build();
            match shared.docker.stats(&name, Some(options)).next().await {
                Some(Ok(stats)) => Some(stats),
                Some(Err(e)) => {
                    tracing::debug!(process = %name, error = %e, "could not read a container's stats");
                    None
                }
                None => None,
            }
        } else {
            None
        };
        (name, ptype, ready, stats, Instant::now())
    });
    let readings = futures::future::join_all(reads).await;
    let mut samples = shared.cpu_samples.sample(app);
    readings
        .into_iter()
        .map(|(name, ptype, ready, stats, now)| {
            let (cpu, memory) = stats.as_ref().map(reading).unwrap_or((None, None));
            let cpu_millis =
                cpu.and_then(|cpu| millicores(samples.record(&name, now, cpu)?, (now, cpu)));
            ProcessUsage {
                name,
                ptype,
                ready,
                cpu_millis,
                memory_bytes: memory,
            }
        })
        .collect()
}
