//! The processes' CPU and memory, as every reader in the controller gets
//! them (the autoscaler, `ps --usage`, `ps:describe`, the dashboard).
//!
//! An engine measures CPU between two of its samples of an app, whoever
//! asked for them. A reader sampling right after another would get CPU over
//! a few milliseconds, which at the kernel's 10 ms accounting tick is
//! noise: an open dashboard could then feed the autoscaler nonsense. So a
//! sample is taken at most once per [`MIN_WINDOW`] per app; a reader within
//! it gets the last sample, measured over a window of its own.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use drycc_engine::{Engine, ProcessUsage};

use super::Service;

/// The shortest window CPU is measured over.
pub const MIN_WINDOW: Duration = Duration::from_millis(250);
/// Samples older than this are dropped (apps gone, pages closed).
const KEEP: Duration = Duration::from_secs(60);

/// One app's last sample, and the lock its readers take over a new one.
type Sampled = Arc<tokio::sync::Mutex<Option<(Instant, Vec<ProcessUsage>)>>>;

#[derive(Default)]
pub struct Usage {
    /// Per app: held over a sample, so that two readers of one app never
    /// sample at once (readers of other apps do not wait for it).
    last: Mutex<HashMap<String, Sampled>>,
}

impl Usage {
    /// The usage of `app`'s processes: a new sample, or the last one when
    /// it is younger than [`MIN_WINDOW`].
    pub async fn sample(
        &self,
        engine: &dyn Engine,
        app: &str,
    ) -> drycc_engine::Result<Vec<ProcessUsage>> {
        let sampled = self.of(app);
        let mut last = sampled.lock().await;
        if let Some((at, usage)) = last.as_ref() {
            if at.elapsed() < MIN_WINDOW {
                return Ok(usage.clone());
            }
        }
        let usage = engine.usage(app).await?;
        *last = Some((Instant::now(), usage.clone()));
        Ok(usage)
    }

    /// The entry of `app`, made on first use; entries of apps nobody read
    /// for [`KEEP`] are dropped (apps gone, pages closed).
    fn of(&self, app: &str) -> Sampled {
        let mut all = self.last.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        all.retain(|name, sampled| {
            name == app
                || sampled.try_lock().map_or(true, |last| {
                    last.as_ref()
                        .is_some_and(|(at, _)| now.duration_since(*at) < KEEP)
                })
        });
        all.entry(app.to_string()).or_default().clone()
    }
}

/// Every process's CPU and memory. CPU is measured between two readings,
/// so while the last sample lacks a process's CPU (its first reading, or
/// the process is newer than the sample) another follows shortly, a few
/// times at most.
pub async fn all_usage(svc: &Service, app: &str) -> Vec<drycc_engine::ProcessUsage> {
    const ATTEMPTS: usize = 4;
    let engine = svc.engine.as_ref();
    let running: Vec<String> = engine
        .processes(app)
        .await
        .map(|all| all.into_iter().map(|p| p.name).collect())
        .unwrap_or_default();
    let mut usage = Vec::new();
    for attempt in 1..=ATTEMPTS {
        usage = svc.usage.sample(engine, app).await.unwrap_or_default();
        let measured = |name: &String| {
            usage
                .iter()
                .any(|u| &u.name == name && u.cpu_millis.is_some())
        };
        if running.iter().all(measured) || attempt == ATTEMPTS {
            break;
        }
        tokio::time::sleep(MIN_WINDOW).await;
    }
    usage
}

/// One process's CPU and memory (see [`all_usage`]).
pub async fn usage_of(svc: &Service, app: &str, name: &str) -> (Option<u64>, Option<u64>) {
    all_usage(svc, app)
        .await
        .into_iter()
        .find(|u| u.name == name)
        .map_or((None, None), |u| (u.cpu_millis, u.memory_bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reconciler::fake::FakeEngine;

    #[tokio::test]
    async fn readers_close_together_share_one_sample() {
        let engine = FakeEngine::new();
        let usage = Usage::default();
        let samples = |engine: &FakeEngine| {
            engine
                .calls()
                .iter()
                .filter(|c| c.starts_with("usage "))
                .count()
        };
        usage.sample(&engine, "a").await.expect("sample");
        usage.sample(&engine, "a").await.expect("sample");
        assert_eq!(
            samples(&engine),
            1,
            "the second reader got the first sample"
        );
        usage.sample(&engine, "b").await.expect("sample");
        assert_eq!(samples(&engine), 2, "apps are sampled apart");
        tokio::time::sleep(MIN_WINDOW).await;
        usage.sample(&engine, "a").await.expect("sample");
        assert_eq!(samples(&engine), 3, "after the window, a new sample");
    }
}
