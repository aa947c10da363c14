//! `GET /metrics` on the API port, in the Prometheus text format: the
//! processes the engine runs (by app, type and state), their restarts,
//! and the embedded router's counters ([`drycc_router::metrics`]).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use drycc_engine::ProcessState;

use crate::http::Shared;

const STATES: [ProcessState; 6] = [
    ProcessState::Starting,
    ProcessState::Up,
    ProcessState::Crashed,
    ProcessState::Terminating,
    ProcessState::Down,
    ProcessState::Error,
];

/// Processes per state, and restarts, of one app's type.
#[derive(Default)]
struct TypeCounts {
    states: [u64; STATES.len()],
    restarts: u64,
}

/// The controller's own metrics: what the engine reports now.
pub async fn controller_metrics(state: &Shared) -> String {
    let mut counts: BTreeMap<(String, String), TypeCounts> = BTreeMap::new();
    let apps = match state.engine.apps().await {
        Ok(apps) => apps,
        Err(error) => {
            tracing::warn!(%error, "Metrics could not list the engine's apps.");
            Vec::new()
        }
    };
    for app in apps {
        let processes = match state.engine.processes(&app).await {
            Ok(processes) => processes,
            Err(error) => {
                tracing::warn!(%app, %error, "Metrics could not list an app's processes.");
                continue;
            }
        };
        for process in processes {
            let entry = counts.entry((app.clone(), process.ptype)).or_default();
            if let Some(index) = STATES.iter().position(|s| *s == process.state) {
                entry.states[index] += 1;
            }
            entry.restarts += u64::from(process.restarts);
        }
    }
    let mut out = String::from(
        "# HELP drycc_processes Processes the engine has now, by app, type and state.\n\
         # TYPE drycc_processes gauge\n",
    );
    for ((app, ptype), entry) in &counts {
        for (state, count) in STATES.iter().zip(entry.states) {
            let _ = writeln!(
                out,
                "drycc_processes{{app=\"{}\",type=\"{}\",state=\"{}\"}} {count}",
                escape(app),
                escape(ptype),
                state.as_str()
            );
        }
    }
    out.push_str(
        "# HELP drycc_process_restarts Restarts (after an exit) of the processes that exist now, by app and type.\n\
         # TYPE drycc_process_restarts gauge\n",
    );
    for ((app, ptype), entry) in &counts {
        let _ = writeln!(
            out,
            "drycc_process_restarts{{app=\"{}\",type=\"{}\"}} {}",
            escape(app),
            escape(ptype),
            entry.restarts
        );
    }
    out
}

fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// `GET /metrics`: the controller's and the embedded router's.
pub async fn serve(State(state): State<Shared>) -> impl IntoResponse {
    let mut text = controller_metrics(&state).await;
    text.push_str(&state.router_metrics.render());
    (
        [(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        text,
    )
}
