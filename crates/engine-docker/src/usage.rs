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
use drycc_engine_runtime::usage::Reading;

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

/// The usage of `app`'s containers (see `drycc_engine_runtime::usage`),
/// their stats read at the same time.
pub(crate) async fn sample(shared: &Shared, app: &str) -> Vec<ProcessUsage> {
    let reads = shared.usage_subjects(app).into_iter().map(|subject| async move {
        if !subject.running {
            return (subject, None);
        }
        let options = StatsOptionsBuilder::new()
            .stream(false)
            .one_shot(true)
            .build();
        let stats = match shared.docker.stats(&subject.name, Some(options)).next().await {
            Some(Ok(stats)) => stats,
            Some(Err(e)) => {
                tracing::debug!(process = %subject.name, error = %e, "could not read a container's stats");
                return (subject, None);
            }
            None => return (subject, None),
        };
        let (cpu, memory) = reading(&stats);
        let at = Instant::now();
        (subject, Some(Reading { at, cpu, memory }))
    });
    let readings = futures::future::join_all(reads).await;
    shared.usage_of(app, readings)
}
