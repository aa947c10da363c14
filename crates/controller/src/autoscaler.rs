//! The autoscaler: every sync period, for every process type with a rule,
//! sample its processes' CPU, decide with `drycc_model::autoscale` (the
//! HPA's calculation and Drycc's stabilisation windows), and write a new
//! count as desired state, which the reconciler applies like any scale.
//!
//! Every decision goes to the app's log with its inputs and to a bounded
//! history per type, which `GET /settings/` shows as the rule's status
//! (current utilisation, current and desired replicas, last rescale), as
//! `kubectl get hpa` does.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use drycc_model::autoscale::{decide, Decision, Policy, Reason, Rule, Sample};
use tokio_util::sync::CancellationToken;

use crate::state::{AppState, Shared};

/// Decisions kept per type.
const HISTORY: usize = 100;

/// One decision as the history keeps it.
#[derive(Clone, Debug)]
pub struct Record {
    pub time: DateTime<Utc>,
    pub decision: Decision,
}

#[derive(Default)]
struct TypeState {
    /// When the type was last rescaled (by us or by a rule change).
    last_rescale: Option<(Instant, DateTime<Utc>)>,
    history: VecDeque<Record>,
}

/// What the autoscaler remembers, per (app, type).
#[derive(Default)]
pub struct Autoscaler {
    types: Mutex<HashMap<(String, String), TypeState>>,
}

/// The status of one rule, for the API.
#[derive(Clone, Debug)]
pub struct RuleStatus {
    pub last: Option<Record>,
    pub last_rescale: Option<DateTime<Utc>>,
}

impl Autoscaler {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), TypeState>> {
        self.types.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A rule was set or changed the count: the windows start again.
    pub fn rescaled(&self, app: &str, ptype: &str) {
        self.lock()
            .entry((app.to_string(), ptype.to_string()))
            .or_default()
            .last_rescale = Some((Instant::now(), Utc::now()));
    }

    /// Forget an app (destroyed) or a type (rule removed).
    pub fn forget(&self, app: &str, ptype: Option<&str>) {
        self.lock()
            .retain(|(a, t), _| !(a == app && ptype.is_none_or(|p| p == t)));
    }

    pub fn status(&self, app: &str, ptype: &str) -> RuleStatus {
        let types = self.lock();
        let state = types.get(&(app.to_string(), ptype.to_string()));
        RuleStatus {
            last: state.and_then(|s| s.history.back().cloned()),
            last_rescale: state.and_then(|s| s.last_rescale.map(|(_, at)| at)),
        }
    }

    /// The decisions kept for a type, oldest first.
    pub fn history(&self, app: &str, ptype: &str) -> Vec<Record> {
        self.lock()
            .get(&(app.to_string(), ptype.to_string()))
            .map(|s| s.history.iter().cloned().collect())
            .unwrap_or_default()
    }

    fn since_last_rescale(&self, app: &str, ptype: &str) -> Option<Duration> {
        self.lock()
            .get(&(app.to_string(), ptype.to_string()))
            .and_then(|s| s.last_rescale)
            .map(|(at, _)| at.elapsed())
    }

    fn remember(&self, app: &str, ptype: &str, decision: &Decision) {
        let mut types = self.lock();
        let state = types
            .entry((app.to_string(), ptype.to_string()))
            .or_default();
        if state.history.len() >= HISTORY {
            state.history.pop_front();
        }
        state.history.push_back(Record {
            time: Utc::now(),
            decision: decision.clone(),
        });
        if decision.rescales() {
            state.last_rescale = Some((Instant::now(), Utc::now()));
        }
    }
}

/// Run passes every sync period until `stop`.
pub async fn run(state: Shared, stop: CancellationToken) {
    if state.engine.capabilities().autoscaler {
        return follow(state, stop).await;
    }
    let (period, policy) = state.settings.autoscale();
    let mut ticker = tokio::time::interval(period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = ticker.tick() => {}
        }
        if let Err(error) = pass(&state, &policy).await {
            tracing::warn!(%error, "Autoscaler pass failed; trying again next period.");
        }
    }
}

/// One pass over every app with rules.
async fn pass(state: &AppState, policy: &Policy) -> anyhow::Result<()> {
    for app in state.store.list_apps().await? {
        let settings = state.store.get_settings(&app.id).await?;
        if settings.autoscale.is_empty() {
            continue;
        }
        let Some(release) = state.store.last_good_release(&app.id).await? else {
            continue;
        };
        let usage = state.usage.sample(state.engine.as_ref(), &app.id).await?;
        let mut counts = BTreeMap::new();
        for (ptype, value) in &settings.autoscale {
            let Ok(rule) = serde_json::from_value::<drycc_api_types::AutoscaleRule>(value.clone())
            else {
                continue;
            };
            // Utilisation is against the CPU request; without one (the
            // limit was unset after the rule was set) there is nothing to
            // measure against.
            let Some(request) = release
                .config
                .cpu
                .get(ptype)
                .and_then(|v| drycc_model::limits::parse_cpu(v).ok())
                .map(|q| q.request.max(1))
            else {
                continue;
            };
            let samples: Vec<Sample> = usage
                .iter()
                .filter(|u| &u.ptype == ptype)
                .map(|u| Sample {
                    ready: u.ready,
                    request_millis: request,
                    usage_millis: u.cpu_millis,
                })
                .collect();
            let current = app.structure.get(ptype).copied().unwrap_or(0);
            let rule = Rule {
                min: rule.min,
                max: rule.max,
                cpu_percent: rule.cpu_percent,
            };
            let since = state.autoscaler.since_last_rescale(&app.id, ptype);
            let decision = decide(&rule, current, &samples, since, policy);
            state
                .event(&app.id, &describe(ptype, &rule, &decision))
                .await;
            state.autoscaler.remember(&app.id, ptype, &decision);
            if decision.rescales() {
                counts.insert(ptype.clone(), decision.desired);
            }
        }
        if !counts.is_empty() {
            // The same path as a scale request (under the app's lock, so no
            // concurrent change is lost), without waiting.
            let lock = state.app_lock(&app.id);
            let guard = lock.lock().await;
            crate::api::pods::write_structure(state, &app.id, &counts)
                .await
                .map_err(|e| anyhow::anyhow!(e.detail))?;
            drop(guard);
            state.reconciler.enqueue(&app.id);
        }
    }
    Ok(())
}

/// With an engine that scales by itself (a HorizontalPodAutoscaler per
/// rule, which the reconciler writes): on every change of the engine (and
/// every sync period, in case a change was missed), write the counts it
/// chose back to the structure, so that `ps`, `autoscale:list` and the
/// next deploy agree with the cluster. Each change is in the app's log and
/// the type's history.
async fn follow(state: Shared, stop: CancellationToken) {
    let (period, _) = state.settings.autoscale();
    let mut changes = state.engine.changes(None);
    let mut ticker = tokio::time::interval(period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = ticker.tick() => {}
            changed = changes.changed() => {
                if changed.is_err() {
                    return;
                }
                // A scale moves many pods: one read after the burst.
                tokio::time::sleep(Duration::from_millis(200)).await;
                changes.borrow_and_update();
            }
        }
        if let Err(error) = write_back(&state).await {
            tracing::warn!(%error, "Cannot read the counts the engine's autoscaler chose; trying again.");
        }
    }
}

/// One pass of [`follow`] over every app with rules.
async fn write_back(state: &AppState) -> anyhow::Result<()> {
    for app in state.store.list_apps().await? {
        let settings = state.store.get_settings(&app.id).await?;
        if settings.autoscale.is_empty() {
            continue;
        }
        let chosen = state.engine.autoscaled(&app.id).await?;
        let lock = state.app_lock(&app.id);
        let guard = lock.lock().await;
        // Read again under the lock: a scale or rule change may have won.
        let Some(current) = state.store.get_app(&app.id).await? else {
            continue;
        };
        let settings = state.store.get_settings(&app.id).await?;
        let counts: BTreeMap<String, u32> = chosen
            .into_iter()
            .filter(|(ptype, count)| {
                settings.autoscale.contains_key(ptype)
                    && current.structure.get(ptype).copied().unwrap_or(0) != *count
            })
            .collect();
        if counts.is_empty() {
            continue;
        }
        crate::api::pods::write_structure(state, &app.id, &counts)
            .await
            .map_err(|e| anyhow::anyhow!(e.detail))?;
        drop(guard);
        for (ptype, desired) in &counts {
            let decision = Decision {
                current: current.structure.get(ptype).copied().unwrap_or(0),
                desired: *desired,
                utilization: None,
                ratio: None,
                reason: Reason::Scaled,
            };
            state
                .event(
                    &app.id,
                    &format!(
                        "autoscale: {ptype} {} -> {desired} (by the cluster's HorizontalPodAutoscaler)",
                        decision.current
                    ),
                )
                .await;
            state.autoscaler.remember(&app.id, ptype, &decision);
            state.autoscaler.rescaled(&app.id, ptype);
        }
    }
    Ok(())
}

/// The app-log line of one decision: inputs, result and why.
pub fn describe(ptype: &str, rule: &Rule, decision: &Decision) -> String {
    let utilization = decision
        .utilization
        .map_or("unknown".to_string(), |u| format!("{u}%"));
    let inputs = format!(
        "autoscale {ptype}: CPU {utilization} of requests (target {}%), {} processes",
        rule.cpu_percent, decision.current
    );
    let outcome = match &decision.reason {
        Reason::Scaled => format!("scaling to {}", decision.desired),
        Reason::WithinTolerance => "within tolerance; keeping the count".to_string(),
        Reason::Uncertain => {
            "processes without a sample make the direction uncertain; keeping the count".to_string()
        }
        Reason::Stabilising { wanted, until } => format!(
            "would scale to {wanted}, but the last rescale was too recent; possible in {} s",
            until.as_secs().max(1)
        ),
        Reason::NoMetrics => "no CPU sample yet; keeping the count".to_string(),
        Reason::AtLimit { wanted } => format!(
            "would scale to {wanted}, outside [{}, {}]; keeping the count",
            rule.min, rule.max
        ),
    };
    format!("{inputs}: {outcome}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decisions_read_as_sentences() {
        let rule = Rule {
            min: 1,
            max: 4,
            cpu_percent: 50,
        };
        let decision = Decision {
            current: 1,
            desired: 2,
            utilization: Some(95),
            ratio: Some(1.9),
            reason: Reason::Scaled,
        };
        assert_eq!(
            describe("web", &rule, &decision),
            "autoscale web: CPU 95% of requests (target 50%), 1 processes: scaling to 2"
        );
        let holding = Decision {
            desired: 2,
            current: 2,
            reason: Reason::Stabilising {
                wanted: 1,
                until: Duration::from_secs(30),
            },
            ..decision
        };
        assert!(describe("web", &rule, &holding).ends_with("possible in 30 s"));
    }

    #[test]
    fn the_history_is_bounded_and_rescales_restart_the_windows() {
        let autoscaler = Autoscaler::default();
        assert!(autoscaler.since_last_rescale("a", "web").is_none());
        let hold = Decision {
            current: 1,
            desired: 1,
            utilization: Some(50),
            ratio: Some(1.0),
            reason: Reason::WithinTolerance,
        };
        for _ in 0..HISTORY + 5 {
            autoscaler.remember("a", "web", &hold);
        }
        assert_eq!(autoscaler.history("a", "web").len(), HISTORY);
        assert!(autoscaler.since_last_rescale("a", "web").is_none());
        autoscaler.remember(
            "a",
            "web",
            &Decision {
                desired: 2,
                reason: Reason::Scaled,
                ..hold
            },
        );
        assert!(autoscaler.since_last_rescale("a", "web").is_some());
        autoscaler.forget("a", None);
        assert!(autoscaler.history("a", "web").is_empty());
    }
}
