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
use std::time::{Duration, Instant};

use drycc_engine::{Engine, ProcessUsage};

/// The shortest window CPU is measured over.
pub const MIN_WINDOW: Duration = Duration::from_millis(250);
/// Samples older than this are dropped (apps gone, pages closed).
const KEEP: Duration = Duration::from_secs(60);

#[derive(Default)]
pub struct Usage {
    /// Held over a sample, so that two readers never sample at once.
    last: tokio::sync::Mutex<HashMap<String, (Instant, Vec<ProcessUsage>)>>,
}

impl Usage {
    /// The usage of `app`'s processes: a new sample, or the last one when
    /// it is younger than [`MIN_WINDOW`].
    pub async fn sample(
        &self,
        engine: &dyn Engine,
        app: &str,
    ) -> drycc_engine::Result<Vec<ProcessUsage>> {
        let mut last = self.last.lock().await;
        if let Some((at, usage)) = last.get(app) {
            if at.elapsed() < MIN_WINDOW {
                return Ok(usage.clone());
            }
        }
        let usage = engine.usage(app).await?;
        let now = Instant::now();
        last.retain(|_, (at, _)| now.duration_since(*at) < KEEP);
        last.insert(app.to_string(), (now, usage.clone()));
        Ok(usage)
    }
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
