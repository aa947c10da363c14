//! The autoscaler's memory, per app and type: when it last rescaled (the
//! stabilisation windows count from then) and its recent decisions, which
//! the settings show as the rule's status. The loop that decides is
//! `loops::autoscaler`; this is what it and the API share.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use drycc_model::autoscale::{Decision, Reason, Rule};

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
pub struct Memory {
    types: Mutex<HashMap<(String, String), TypeState>>,
}

/// The status of one rule, for the API.
#[derive(Clone, Debug)]
pub struct RuleStatus {
    pub last: Option<Record>,
    pub last_rescale: Option<DateTime<Utc>>,
}

impl Memory {
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

    pub fn since_last_rescale(&self, app: &str, ptype: &str) -> Option<Duration> {
        self.lock()
            .get(&(app.to_string(), ptype.to_string()))
            .and_then(|s| s.last_rescale)
            .map(|(at, _)| at.elapsed())
    }

    pub fn remember(&self, app: &str, ptype: &str, decision: &Decision) {
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
        let autoscaler = Memory::default();
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
