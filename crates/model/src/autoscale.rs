//! The autoscale decision of one process type, free of I/O and clocks
//! (autoscale.md): Kubernetes' HPA replica calculation on CPU utilisation,
//! followed by Drycc's stabilisation windows. The autoscaler measures the
//! processes, tells how long ago the type was last rescaled, and carries out
//! (and logs) what [`decide`] returns; the same inputs always give the same
//! decision, so every rule is tested here without processes or waiting.
//!
//! All arithmetic on utilisation and counts is done in integers: floats only
//! appear in the reported [`Decision::ratio`] and in the tolerance, so a
//! ratio of exactly 1.1 is at the tolerance edge (not 1.1000000000000001)
//! and `ceil(3 * 2.0)` is 6, never 7.

use std::time::Duration;

/// An autoscale rule of one process type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rule {
    pub min: u32,
    pub max: u32,
    pub cpu_percent: u32,
}

/// The settings of the algorithm (autoscale.md's defaults in `Default`:
/// tolerance 0.1, scale-up window 3 min, scale-down window 5 min).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Policy {
    pub tolerance: f64,
    pub up_window: Duration,
    pub down_window: Duration,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            tolerance: 0.1,
            up_window: Duration::from_secs(3 * 60),
            down_window: Duration::from_secs(5 * 60),
        }
    }
}

/// One process of the type at sampling time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sample {
    pub ready: bool,
    /// Its CPU request in millicores (> 0).
    pub request_millis: u64,
    /// Measured usage in millicores; `None` when there is no sample yet.
    pub usage_millis: Option<u64>,
}

/// What one pass decided, with everything needed to explain it to a user.
#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    pub current: u32,
    /// The count to run from now on (== current when holding).
    pub desired: u32,
    /// floor(sum(usage of ready processes with a sample) * 100 / sum(their
    /// requests)); None without any.
    pub utilization: Option<u32>,
    /// utilization / cpu_percent as used for the decision (after the
    /// missing-sample recomputation), if any.
    pub ratio: Option<f64>,
    pub reason: Reason,
}

impl Decision {
    /// Whether the count changes. Only then is it a rescale, which restarts
    /// the stabilisation windows; holding at a limit ([`Reason::AtLimit`])
    /// is not one.
    pub fn rescales(&self) -> bool {
        self.desired != self.current
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reason {
    /// Scaled up or down (always `desired != current`), or clamped into
    /// [min, max] (a count outside the rule is brought inside at once, even
    /// without metrics and whatever the windows say).
    Scaled,
    /// Within the tolerance, or the calculation lands on the current count:
    /// nothing to do.
    WithinTolerance,
    /// Counting missing/not-ready samples flipped the direction or fell
    /// within tolerance.
    Uncertain,
    /// A rescale was wanted but the scale-up (or scale-down) window since
    /// the last rescale has not passed; carries the wanted count.
    Stabilising { wanted: u32, until: Duration },
    /// No sample at all (nothing to base a decision on); count kept (a count
    /// outside [min, max] is still clamped, with reason `Scaled`).
    NoMetrics,
    /// The calculation wants `wanted`, beyond [min, max], and the count is
    /// already at that limit: nothing to do (`desired == current`). Not a
    /// rescale, so it does not restart the windows.
    AtLimit { wanted: u32 },
}

/// Decide the count of one process type for this pass.
///
/// `since_last_rescale`: time since the type was last rescaled (by the
/// autoscaler or a rule change); None: never.
///
/// The processes fall into three groups, as the HPA's `groupPods`: ready
/// with a sample (the measured ones), without a sample (missing, whether
/// ready or not: the HPA only sets aside pods that have a metric but are not
/// ready), and not ready with a sample.
pub fn decide(
    rule: &Rule,
    current: u32,
    samples: &[Sample],
    since_last_rescale: Option<Duration>,
    policy: &Policy,
) -> Decision {
    // A rule of 0% would divide by zero; validation refuses it anyway.
    let target = u128::from(rule.cpu_percent.max(1));
    let groups = Groups::of(samples);
    let raw = groups.measured.utilization();
    let mut decision = Decision {
        current,
        desired: current,
        utilization: raw.map(saturate),
        ratio: raw.map(|u| ratio(u, target)),
        reason: Reason::NoMetrics,
    };

    let bounded = clamp(current, rule);
    if bounded != current {
        decision.desired = bounded;
        decision.reason = Reason::Scaled;
        return decision;
    }
    let Some(raw) = raw else {
        return decision;
    };
    if within_tolerance(raw, target, policy.tolerance) {
        decision.reason = Reason::WithinTolerance;
        return decision;
    }

    let up = raw > target;
    // Processes we know nothing about may not push the count the way the
    // measured ones point: on the way up they count as idle, on the way down
    // missing ones as busy. Not-ready ones with a sample are left out of a
    // scale-down (their usage says little while they start or fail).
    let adjusted = groups.missing.count > 0 || (up && groups.unready.count > 0);
    let mut load = groups.measured;
    let utilization = if adjusted {
        if up {
            load.add_idle(&groups.missing);
            load.add_idle(&groups.unready);
        } else {
            // The HPA's fallback: 100% of the request, or the target when it
            // is above 100%, so that missing processes never argue for less.
            let fallback = target.max(100);
            load.usage += groups.missing.request * fallback / 100;
            load.request += groups.missing.request;
            load.count += groups.missing.count;
        }
        let Some(new) = load.utilization() else {
            return decision;
        };
        decision.ratio = Some(ratio(new, target));
        let flipped = if up { new < target } else { new > target };
        if flipped || within_tolerance(new, target, policy.tolerance) {
            decision.reason = Reason::Uncertain;
            return decision;
        }
        new
    } else {
        raw
    };

    // ceil(ratio * count) == ceil(utilization * count / target), exactly.
    let proposal = saturate((utilization * load.count).div_ceil(target));
    // The HPA's last guard: counting other processes than `current` (some
    // not yet listed, some gone) must not turn a scale-up into a scale-down.
    if adjusted && ((up && proposal < current) || (!up && proposal > current)) {
        decision.reason = Reason::Uncertain;
        return decision;
    }

    let desired = clamp(proposal, rule);
    if desired == current {
        decision.reason = if proposal == current {
            Reason::WithinTolerance
        } else {
            Reason::AtLimit { wanted: proposal }
        };
        return decision;
    }
    let window = if desired > current {
        policy.up_window
    } else {
        policy.down_window
    };
    match since_last_rescale {
        Some(since) if since < window => {
            decision.reason = Reason::Stabilising {
                wanted: desired,
                until: window.saturating_sub(since),
            };
        }
        _ => {
            decision.desired = desired;
            decision.reason = Reason::Scaled;
        }
    }
    decision
}

/// Usage and requests (millicores) of a group of processes. `u128` so that
/// no sum of `u64` samples, nor `* 100`, can overflow.
#[derive(Clone, Copy, Debug, Default)]
struct Load {
    usage: u128,
    request: u128,
    count: u128,
}

impl Load {
    fn add(&mut self, usage: u64, request: u64) {
        self.usage += u128::from(usage);
        self.request += u128::from(request);
        self.count += 1;
    }

    /// Count the processes of `other` as using nothing.
    fn add_idle(&mut self, other: &Load) {
        self.request += other.request;
        self.count += other.count;
    }

    /// floor(usage * 100 / request) as the HPA computes it; None without
    /// any request to measure against.
    fn utilization(&self) -> Option<u128> {
        (self.request > 0).then(|| self.usage * 100 / self.request)
    }
}

struct Groups {
    /// Ready, with a sample.
    measured: Load,
    /// Without a sample (usage unknown, kept at 0 here).
    missing: Load,
    /// Not ready, with a sample (usage ignored, kept at 0 here).
    unready: Load,
}

impl Groups {
    fn of(samples: &[Sample]) -> Groups {
        let mut groups = Groups {
            measured: Load::default(),
            missing: Load::default(),
            unready: Load::default(),
        };
        for s in samples {
            match (s.usage_millis, s.ready) {
                (None, _) => groups.missing.add(0, s.request_millis),
                (Some(usage), true) => groups.measured.add(usage, s.request_millis),
                (Some(_), false) => groups.unready.add(0, s.request_millis),
            }
        }
        groups
    }
}

/// `|u / target - 1| <= tolerance`, computed as `|u - target| / target` so
/// that the only rounding is that of one division: exactly 10% off is
/// exactly the tolerance 0.1, for any target.
fn within_tolerance(utilization: u128, target: u128, tolerance: f64) -> bool {
    (utilization.abs_diff(target) as f64 / target as f64) <= tolerance
}

fn ratio(utilization: u128, target: u128) -> f64 {
    utilization as f64 / target as f64
}

/// Into [min, max]; an invalid rule (min > max, refused by validation)
/// resolves to max rather than panicking as `Ord::clamp` would.
fn clamp(count: u32, rule: &Rule) -> u32 {
    count.max(rule.min).min(rule.max)
}

fn saturate(n: u128) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn rule(min: u32, max: u32, cpu_percent: u32) -> Rule {
        Rule {
            min,
            max,
            cpu_percent,
        }
    }

    fn ready(request: u64, usage: u64) -> Sample {
        Sample {
            ready: true,
            request_millis: request,
            usage_millis: Some(usage),
        }
    }

    fn missing() -> Sample {
        Sample {
            ready: true,
            request_millis: 200,
            usage_millis: None,
        }
    }

    fn not_ready(usage: Option<u64>) -> Sample {
        Sample {
            ready: false,
            request_millis: 200,
            usage_millis: usage,
        }
    }

    /// `n` ready processes of 200m, each at `percent`% of it.
    fn at(n: usize, percent: u64) -> Vec<Sample> {
        vec![ready(200, 2 * percent); n]
    }

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    fn decide_now(rule: &Rule, current: u32, samples: &[Sample]) -> Decision {
        decide(rule, current, samples, None, &Policy::default())
    }

    #[test]
    fn policy_defaults_are_those_of_the_spec() {
        let p = Policy::default();
        assert_eq!(p.tolerance, 0.1);
        assert_eq!(p.up_window, secs(180));
        assert_eq!(p.down_window, secs(300));
    }

    #[test]
    fn worked_example_scales_up_from_three_to_six() {
        let d = decide_now(&rule(1, 10, 50), 3, &[ready(200, 180); 3]);
        assert_eq!(
            d,
            Decision {
                current: 3,
                desired: 6,
                utilization: Some(90),
                ratio: Some(1.8),
                reason: Reason::Scaled,
            }
        );
        assert!(d.rescales());
    }

    #[test]
    fn worked_example_scales_down_to_three_only_after_the_down_window() {
        let r = rule(1, 10, 50);
        let p = Policy::default();
        let samples = at(6, 20);
        let early = decide(&r, 6, &samples, Some(secs(299)), &p);
        assert_eq!((early.desired, early.utilization), (6, Some(20)));
        assert_eq!(early.ratio, Some(0.4));
        assert_eq!(
            early.reason,
            Reason::Stabilising {
                wanted: 3,
                until: secs(1)
            }
        );
        assert!(!early.rescales());
        for since in [Some(secs(300)), Some(secs(301)), None] {
            let late = decide(&r, 6, &samples, since, &p);
            assert_eq!(
                (late.desired, late.reason),
                (3, Reason::Scaled),
                "{since:?}"
            );
        }
    }

    #[test]
    fn scale_up_waits_for_the_up_window_only() {
        let r = rule(1, 10, 50);
        let p = Policy::default();
        let samples = at(3, 90);
        let early = decide(&r, 3, &samples, Some(secs(179)), &p);
        assert_eq!(early.desired, 3);
        assert_eq!(
            early.reason,
            Reason::Stabilising {
                wanted: 6,
                until: secs(1)
            }
        );
        // Past the up window but inside the down window: up is allowed.
        let late = decide(&r, 3, &samples, Some(secs(180)), &p);
        assert_eq!((late.desired, late.reason), (6, Reason::Scaled));
    }

    #[test]
    fn windows_are_settings() {
        let p = Policy {
            tolerance: 0.1,
            up_window: Duration::from_millis(100),
            down_window: Duration::from_millis(200),
        };
        let r = rule(1, 10, 50);
        let d = decide(&r, 6, &at(6, 20), Some(Duration::from_millis(150)), &p);
        assert_eq!(
            d.reason,
            Reason::Stabilising {
                wanted: 3,
                until: Duration::from_millis(50)
            }
        );
        let d = decide(&r, 3, &at(3, 90), Some(Duration::from_millis(150)), &p);
        assert_eq!(d.desired, 6);
    }

    #[test]
    fn exactly_ten_percent_off_target_holds() {
        // 77/70 is 1.1 (and 63/70 0.9) on paper, but 1.1000000000000001 -
        // 1 > 0.1 in floats: the comparison must not go through the ratio.
        for (target, usage) in [
            (100, 110),
            (100, 90),
            (50, 55),
            (50, 45),
            (70, 77),
            (70, 63),
        ] {
            let d = decide_now(&rule(1, 20, target), 10, &at(10, usage));
            assert_eq!(d.utilization, Some(usage as u32));
            assert_eq!(
                (d.desired, d.reason),
                (10, Reason::WithinTolerance),
                "{usage}/{target}"
            );
        }
    }

    #[test]
    fn just_beyond_the_tolerance_scales() {
        let d = decide_now(&rule(1, 20, 100), 10, &at(10, 111));
        assert_eq!((d.desired, d.reason), (12, Reason::Scaled)); // ceil(11.1)
        let d = decide_now(&rule(1, 20, 100), 10, &at(10, 89));
        assert_eq!((d.desired, d.reason), (9, Reason::Scaled)); // ceil(8.9)
    }

    #[test]
    fn missing_samples_count_as_idle_when_scaling_up() {
        // 3 at 100% and 2 unknown, target 40: 600m of 1000m = 60%, ratio
        // 1.5 over 5 processes: ceil(7.5) = 8.
        let mut samples = at(3, 100);
        samples.push(missing());
        samples.push(missing());
        let d = decide_now(&rule(1, 20, 40), 5, &samples);
        assert_eq!(d.utilization, Some(100)); // of the measured ones only
        assert_eq!(d.ratio, Some(1.5)); // after counting the missing ones
        assert_eq!((d.desired, d.reason), (8, Reason::Scaled));
    }

    #[test]
    fn missing_samples_that_bring_the_ratio_within_tolerance_hold() {
        // 2 at 100%, target 50 (ratio 2); 2 unknown at 0%: 50%, ratio 1.
        let samples = [at(2, 100), vec![missing(); 2]].concat();
        let d = decide_now(&rule(1, 20, 50), 4, &samples);
        assert_eq!((d.desired, d.ratio), (4, Some(1.0)));
        assert_eq!(d.reason, Reason::Uncertain);
    }

    #[test]
    fn missing_samples_count_as_busy_when_scaling_down() {
        // 4 at 10% and 2 unknown at 100%, target 50: (80 + 400) / 1200 =
        // 40%, ratio 0.8, ceil(0.8 * 6) = 5 (without them: ceil(0.2 * 4) = 1).
        let samples = [at(4, 10), vec![missing(); 2]].concat();
        let d = decide_now(&rule(1, 20, 50), 6, &samples);
        assert_eq!((d.utilization, d.ratio), (Some(10), Some(0.8)));
        assert_eq!((d.desired, d.reason), (5, Reason::Scaled));
        // 4 at 20% and 2 unknown: (160 + 400) / 1200 = 46%, within 10%.
        let samples = [at(4, 20), vec![missing(); 2]].concat();
        let d = decide_now(&rule(1, 20, 50), 6, &samples);
        assert_eq!((d.desired, d.reason), (6, Reason::Uncertain));
    }

    #[test]
    fn missing_samples_count_at_the_target_when_it_is_above_100_percent() {
        // 4 at 50% + 2 unknown, target 150: unknown at 150% gives
        // (400 + 600) / 1200 = 83%, ceil(83 / 150 * 6) = 4 (at 100%: 3).
        let samples = [at(4, 50), vec![missing(); 2]].concat();
        let d = decide_now(&rule(1, 20, 150), 6, &samples);
        assert_eq!((d.desired, d.reason), (4, Reason::Scaled));
    }

    #[test]
    fn not_ready_processes_count_as_idle_when_scaling_up() {
        // Their own (high) usage is ignored: 2 at 100% and 2 not ready,
        // target 50, is 400m of 800m = 50%: no reason to scale up.
        let samples = [at(2, 100), vec![not_ready(Some(200)); 2]].concat();
        let d = decide_now(&rule(1, 20, 50), 4, &samples);
        assert_eq!((d.utilization, d.ratio), (Some(100), Some(1.0)));
        assert_eq!((d.desired, d.reason), (4, Reason::Uncertain));
    }

    #[test]
    fn not_ready_processes_are_ignored_when_scaling_down() {
        // 2 at 20%, target 50: ceil(0.4 * 2) = 1, whatever the 2 not-ready
        // ones use.
        let samples = [at(2, 20), vec![not_ready(Some(200)); 2]].concat();
        let d = decide_now(&rule(1, 20, 50), 4, &samples);
        assert_eq!((d.desired, d.reason), (1, Reason::Scaled));
    }

    #[test]
    fn a_not_ready_process_without_a_sample_is_a_missing_one() {
        // As in the HPA: on a scale-down it counts as busy, not ignored
        // (otherwise this would go down to 2).
        let samples = [at(4, 20), vec![not_ready(None); 2]].concat();
        let d = decide_now(&rule(1, 20, 50), 6, &samples);
        assert_eq!((d.desired, d.reason), (6, Reason::Uncertain));
    }

    #[test]
    fn unknown_processes_that_flip_the_direction_hold() {
        // Up flipped to down: 1 at 100% + 3 unknown, target 60 -> 25%.
        let samples = [at(1, 100), vec![missing(); 3]].concat();
        let d = decide_now(&rule(1, 20, 60), 4, &samples);
        assert_eq!((d.desired, d.reason), (4, Reason::Uncertain));
        // Down flipped to up: 1 at 20% + 3 unknown, target 50 -> 80%, 1.6.
        let samples = [at(1, 20), vec![missing(); 3]].concat();
        let d = decide_now(&rule(1, 20, 50), 4, &samples);
        assert_eq!((d.ratio, d.reason), (Some(1.6), Reason::Uncertain));
    }

    #[test]
    fn a_scale_up_that_would_lower_the_count_holds() {
        // Only 4 of 10 processes are seen (3 at 100%, 1 unknown), target
        // 40: ratio 1.875 over 4 asks for 8, fewer than the 10 running.
        let samples = [at(3, 100), vec![missing()]].concat();
        let d = decide_now(&rule(1, 20, 40), 10, &samples);
        assert_eq!((d.desired, d.reason), (10, Reason::Uncertain));
    }

    #[test]
    fn the_wanted_count_is_clamped_into_the_rule() {
        let d = decide_now(&rule(1, 5, 50), 3, &at(3, 90));
        assert_eq!((d.desired, d.reason), (5, Reason::Scaled));
        let d = decide_now(&rule(4, 10, 50), 6, &at(6, 20));
        assert_eq!((d.desired, d.reason), (4, Reason::Scaled));
    }

    #[test]
    fn at_a_limit_the_count_holds_and_says_what_it_wanted() {
        let d = decide_now(&rule(1, 3, 50), 3, &at(3, 90));
        assert!(!d.rescales());
        assert_eq!((d.desired, d.reason), (3, Reason::AtLimit { wanted: 6 }));
        let d = decide_now(&rule(6, 10, 50), 6, &at(6, 20));
        assert_eq!((d.desired, d.reason), (6, Reason::AtLimit { wanted: 3 }));
    }

    #[test]
    fn a_count_outside_the_rule_is_brought_inside_at_once() {
        let p = Policy::default();
        let just_now = Some(secs(1));
        // Above max, even though the load asks for more and a rescale was
        // a second ago.
        let d = decide(&rule(1, 8, 50), 10, &at(10, 90), just_now, &p);
        assert_eq!((d.desired, d.reason), (8, Reason::Scaled));
        // Below min, even though the load asks for less.
        let d = decide(&rule(3, 8, 50), 1, &at(1, 10), just_now, &p);
        assert_eq!((d.desired, d.reason), (3, Reason::Scaled));
        let d = decide(&rule(2, 8, 50), 0, &[], just_now, &p);
        assert_eq!((d.desired, d.reason), (2, Reason::Scaled));
    }

    #[test]
    fn a_rule_change_mid_window() {
        // The rule changed 30 s ago (that restarts the windows).
        let p = Policy::default();
        let since = Some(secs(30));
        let samples = at(3, 90);
        // New min above the count: applied at once.
        let d = decide(&rule(5, 10, 50), 3, &samples, since, &p);
        assert_eq!((d.desired, d.reason), (5, Reason::Scaled));
        // New max below the count: applied at once.
        let d = decide(&rule(1, 2, 50), 3, &samples, since, &p);
        assert_eq!((d.desired, d.reason), (2, Reason::Scaled));
        // Count still inside: the load waits for the window, against the
        // new max.
        let d = decide(&rule(2, 5, 50), 3, &samples, since, &p);
        assert_eq!(d.desired, 3);
        assert_eq!(
            d.reason,
            Reason::Stabilising {
                wanted: 5,
                until: secs(150)
            }
        );
    }

    #[test]
    fn without_any_sample_the_count_is_kept() {
        let r = rule(1, 10, 50);
        for samples in [vec![], vec![missing(); 3], vec![not_ready(Some(200)); 3]] {
            let d = decide_now(&r, 3, &samples);
            assert_eq!(
                d,
                Decision {
                    current: 3,
                    desired: 3,
                    utilization: None,
                    ratio: None,
                    reason: Reason::NoMetrics,
                }
            );
        }
        let d = decide_now(&rule(4, 10, 50), 3, &[]);
        assert_eq!((d.desired, d.reason), (4, Reason::Scaled));
    }

    #[test]
    fn ceil_of_an_exact_product_does_not_overshoot() {
        // ratio 2.0 over 3: 6, not 7.
        let d = decide_now(&rule(1, 20, 50), 3, &at(3, 100));
        assert_eq!((d.ratio, d.desired), (Some(2.0), 6));
        // 155 / 75 * 15 is 31.000000000000004 in floats: 31, not 32.
        let d = decide_now(&rule(1, 40, 75), 15, &at(15, 155));
        assert_eq!(d.desired, 31);
        // ratio 0.7 over 10 and 1.4 over 5: exactly 7.
        let d = decide_now(&rule(1, 40, 100), 10, &at(10, 70));
        assert_eq!(d.desired, 7);
        let d = decide_now(&rule(1, 40, 50), 5, &at(5, 70));
        assert_eq!(d.desired, 7);
    }

    #[test]
    fn utilization_is_floored_and_weighted_by_request() {
        // (100 + 100) * 100 / (100 + 500) = 33.3 -> 33.
        let d = decide_now(&rule(1, 10, 33), 2, &[ready(100, 100), ready(500, 100)]);
        assert_eq!(
            (d.utilization, d.reason),
            (Some(33), Reason::WithinTolerance)
        );
    }

    proptest! {
        #[test]
        fn never_panics_and_stays_within_a_valid_rule(
            min in 0u32..50,
            span in 0u32..50,
            cpu_percent in 0u32..300,
            current in 0u32..120,
            samples in proptest::collection::vec(
                (any::<bool>(), 0u64..4000, proptest::option::of(0u64..u64::MAX)),
                0..40,
            ),
            since in proptest::option::of(0u64..600),
        ) {
            let samples: Vec<Sample> = samples
                .into_iter()
                .map(|(ready, request_millis, usage_millis)| Sample { ready, request_millis, usage_millis })
                .collect();
            let r = rule(min, min + span, cpu_percent);
            let d = decide(&r, current, &samples, since.map(secs), &Policy::default());
            prop_assert!(d.desired >= r.min && d.desired <= r.max);
            prop_assert_eq!(d.current, current);
            prop_assert_eq!(d.rescales(), d.reason == Reason::Scaled);
        }
    }
}
