//! The router's counters, in the Prometheus text format: answers by app
//! and status class, backend latency, retries.
//!
//! The request path only touches atomics: each [`Route`] of the table
//! caches its app's [`AppMetrics`] (looked up under a lock once per table
//! and app), and the counters of an app outlive the tables, so a new table
//! does not reset them.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::table::Route;

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// A latency histogram (non-cumulative buckets; the last one is `+Inf`).
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; BUCKETS.len() + 1],
    sum_micros: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, took: Duration) {
        let seconds = took.as_secs_f64();
        let index = BUCKETS
            .iter()
            .position(|bound| seconds <= *bound)
            .unwrap_or(BUCKETS.len());
        self.buckets[index].fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
    }
}

/// One app's counters.
#[derive(Debug, Default)]
pub struct AppMetrics {
    /// Answers by status class, 1xx to 5xx.
    responses: [AtomicU64; 5],
    retries: AtomicU64,
    /// From sending to a backend to its answer's head, retry included.
    pub latency: Histogram,
}

impl AppMetrics {
    pub fn answered(&self, status: u16) {
        let class = usize::from(status / 100).clamp(1, 5) - 1;
        self.responses[class].fetch_add(1, Ordering::Relaxed);
    }

    pub fn retried(&self) {
        self.retries.fetch_add(1, Ordering::Relaxed);
    }
}

/// Every app's counters, and those of requests that found no app.
#[derive(Debug, Default)]
pub struct Metrics {
    apps: Mutex<BTreeMap<String, Arc<AppMetrics>>>,
    /// Requests for a host no app answers on (404).
    unknown_host: AtomicU64,
    /// Requests before the first table arrived (503).
    not_loaded: AtomicU64,
}

/// `\`, `"` and line feeds escaped, as label values need.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

impl Metrics {
    /// The counters of `route`'s app; a lock only on the first request of
    /// a route (each table has its own routes).
    pub fn app<'a>(&self, route: &'a Route) -> &'a AppMetrics {
        route.metrics.get_or_init(|| {
            let mut apps = self.apps.lock().unwrap_or_else(|e| e.into_inner());
            apps.entry(route.app.clone()).or_default().clone()
        })
    }

    pub fn unknown_host(&self) {
        self.unknown_host.fetch_add(1, Ordering::Relaxed);
    }

    pub fn not_loaded(&self) {
        self.not_loaded.fetch_add(1, Ordering::Relaxed);
    }

    /// The Prometheus text exposition of every counter.
    pub fn render(&self) -> String {
        let apps: Vec<(String, Arc<AppMetrics>)> = self
            .apps
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(app, metrics)| (escape(app), metrics.clone()))
            .collect();
        let mut out = String::new();
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        out.push_str(
            "# HELP drycc_router_requests_total Requests answered for an app, by status class.\n\
             # TYPE drycc_router_requests_total counter\n",
        );
        for (app, metrics) in &apps {
            for (index, counter) in metrics.responses.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "drycc_router_requests_total{{app=\"{app}\",status=\"{}xx\"}} {}",
                    index + 1,
                    load(counter)
                );
            }
        }
        out.push_str(
            "# HELP drycc_router_retries_total Requests sent again to another web process.\n\
             # TYPE drycc_router_retries_total counter\n",
        );
        for (app, metrics) in &apps {
            let _ = writeln!(
                out,
                "drycc_router_retries_total{{app=\"{app}\"}} {}",
                load(&metrics.retries)
            );
        }
        out.push_str(
            "# HELP drycc_router_backend_latency_seconds Time from sending a request to a web process to its answer's head.\n\
             # TYPE drycc_router_backend_latency_seconds histogram\n",
        );
        for (app, metrics) in &apps {
            let histogram = &metrics.latency;
            let mut cumulative = 0;
            for (index, counter) in histogram.buckets.iter().enumerate() {
                cumulative += load(counter);
                let le = BUCKETS
                    .get(index)
                    .map_or_else(|| "+Inf".to_string(), |b| b.to_string());
                let _ = writeln!(
                    out,
                    "drycc_router_backend_latency_seconds_bucket{{app=\"{app}\",le=\"{le}\"}} {cumulative}"
                );
            }
            let sum = load(&histogram.sum_micros) as f64 / 1e6;
            let _ = writeln!(
                out,
                "drycc_router_backend_latency_seconds_sum{{app=\"{app}\"}} {sum}\n\
                 drycc_router_backend_latency_seconds_count{{app=\"{app}\"}} {cumulative}"
            );
        }
        let _ = write!(
            out,
            "# HELP drycc_router_unknown_host_requests_total Requests for a host no app answers on.\n\
             # TYPE drycc_router_unknown_host_requests_total counter\n\
             drycc_router_unknown_host_requests_total {}\n\
             # HELP drycc_router_not_loaded_requests_total Requests before the routing table arrived.\n\
             # TYPE drycc_router_not_loaded_requests_total counter\n\
             drycc_router_not_loaded_requests_total {}\n",
            load(&self.unknown_host),
            load(&self.not_loaded)
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::{AppRoute, Lookup, RouteTable, Routes};

    fn table(generation: u64) -> RouteTable {
        RouteTable::new(Routes {
            generation,
            apps: vec![AppRoute {
                app: "my\"app".into(),
                hosts: vec!["myapp.localhost".into()],
                backends: vec![],
                routable: true,
            }],
            certs: Vec::new(),
        })
    }

    #[test]
    fn counters_survive_a_new_table_and_render_cumulative_buckets() {
        let metrics = Metrics::default();
        for generation in [1, 2] {
            let table = table(generation);
            let Lookup::Found(route) = table.lookup("myapp.localhost") else {
                panic!("found");
            };
            let app = metrics.app(route);
            app.answered(200);
            app.answered(503);
            app.retried();
            app.latency.observe(Duration::from_micros(700));
            app.latency.observe(Duration::from_secs(60));
        }
        metrics.unknown_host();
        let text = metrics.render();
        for line in [
            r#"drycc_router_requests_total{app="my\"app",status="2xx"} 2"#,
            r#"drycc_router_requests_total{app="my\"app",status="5xx"} 2"#,
            r#"drycc_router_requests_total{app="my\"app",status="4xx"} 0"#,
            r#"drycc_router_retries_total{app="my\"app"} 2"#,
            r#"drycc_router_backend_latency_seconds_bucket{app="my\"app",le="0.0005"} 0"#,
            r#"drycc_router_backend_latency_seconds_bucket{app="my\"app",le="0.001"} 2"#,
            r#"drycc_router_backend_latency_seconds_bucket{app="my\"app",le="10"} 2"#,
            r#"drycc_router_backend_latency_seconds_bucket{app="my\"app",le="+Inf"} 4"#,
            r#"drycc_router_backend_latency_seconds_count{app="my\"app"} 4"#,
            "drycc_router_unknown_host_requests_total 1",
            "drycc_router_not_loaded_requests_total 0",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
        }
    }
}
