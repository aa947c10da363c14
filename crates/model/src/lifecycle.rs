//! Lifecycle rules of processes, free of I/O and clocks: the crash back-off,
//! the choice of scale-down victims and the step-by-step decision of a
//! rollout. Engines feed in what they observe (and the time that passed) and
//! carry out what these functions decide, so that every engine follows the
//! same rules and the rules are tested without processes. [`type_step`]
//! sorts what an engine observes of one process type into the inputs of
//! [`rollout_step`].

use std::time::Duration;

/// Exponential crash back-off, as Kubernetes' `restartPolicy: Always`:
/// 10 s, 20 s, 40 s ... capped at 300 s, and forgotten once a process has
/// run for 10 minutes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BackoffPolicy {
    /// Delay before the first restart of a crash streak.
    pub initial: Duration,
    /// Upper bound of any delay.
    pub cap: Duration,
    /// A process that ran at least this long before it exited starts a new
    /// streak (its next delay is `initial` again).
    pub reset_after: Duration,
}

impl Default for BackoffPolicy {
    fn default() -> Self {
        BackoffPolicy {
            initial: Duration::from_secs(10),
            cap: Duration::from_secs(300),
            reset_after: Duration::from_secs(600),
        }
    }
}

impl BackoffPolicy {
    /// The delay before the `n`-th restart of a crash streak (`n` starts at
    /// 1): `initial * 2^(n-1)`, capped at `cap`. `n == 0` is treated as 1.
    pub fn delay(&self, n: u32) -> Duration {
        let doublings = n.saturating_sub(1);
        // 2^31 * anything overflows long before it matters; stop doubling
        // once past the cap instead of computing huge numbers.
        let mut delay = self.initial;
        for _ in 0..doublings {
            if delay >= self.cap {
                break;
            }
            delay = delay.saturating_mul(2);
        }
        delay.min(self.cap)
    }

    /// The length of the crash streak after one more exit, given the streak
    /// before it and how long the process had been running: a long run
    /// (`>= reset_after`) starts over at 1.
    pub fn next_streak(&self, previous: u32, ran_for: Duration) -> u32 {
        if ran_for >= self.reset_after {
            1
        } else {
            previous.saturating_add(1)
        }
    }
}

/// What a lifecycle decision needs to know about one process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Replica<K> {
    /// Whatever the caller identifies processes with (a name, an index).
    pub id: K,
    /// Passing its readiness check now (state `up`).
    pub ready: bool,
    /// Creation order: a larger value is a newer process.
    pub created: u64,
}

/// Choose `count` processes to stop: the ones that are not ready first, then
/// the newest (the same preference as a Kubernetes ReplicaSet, reduced to
/// what the process model states). Returns fewer when there are fewer.
pub fn scale_down_victims<K: Clone>(replicas: &[Replica<K>], count: usize) -> Vec<K> {
    let mut order: Vec<&Replica<K>> = replicas.iter().collect();
    // false < true, so not-ready sort first; then newest first.
    order.sort_by(|a, b| a.ready.cmp(&b.ready).then(b.created.cmp(&a.created)));
    order
        .into_iter()
        .take(count)
        .map(|r| r.id.clone())
        .collect()
}

/// How far a rollout may deviate from the desired count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RolloutPolicy {
    /// Processes that may exist above the desired count while rolling.
    pub max_surge: u32,
    /// Ready processes that may be missing below the desired count.
    pub max_unavailable: u32,
}

impl Default for RolloutPolicy {
    /// Max surge 1, max unavailable 0: one new process at a time, and an old
    /// one goes only once a new one is ready.
    fn default() -> Self {
        RolloutPolicy {
            max_surge: 1,
            max_unavailable: 0,
        }
    }
}

/// One step of convergence: start this many processes of the current
/// template, and terminate these.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RolloutStep<K> {
    pub start: u32,
    pub terminate: Vec<K>,
}

impl<K> RolloutStep<K> {
    pub fn is_empty(&self) -> bool {
        self.start == 0 && self.terminate.is_empty()
    }
}

/// Decide the next step towards `desired` processes of the current template.
///
/// `current` are the processes of the current template, `old` those of any
/// other template (or being replaced); both without the processes already
/// terminating, which count for nothing. Crashed processes count as existing
/// but not ready (they restart by themselves).
///
/// - No old process: start every missing process at once (fast scale-up), or
///   stop the excess (not-ready first, then newest).
/// - Old processes exist: roll. At most `desired + max_surge` processes in
///   all, and old processes go only while at least
///   `desired - max_unavailable` would remain ready; this is the budget of a
///   Kubernetes Deployment (`all - min_available - new_unavailable`), which
///   also retires not-ready old processes first.
///
/// Calling it again after carrying a step out (with the started processes
/// added and the terminated ones removed) gives the next step; an empty step
/// means: wait for a change (readiness, exit).
pub fn rollout_step<K: Clone>(
    desired: u32,
    current: &[Replica<K>],
    old: &[Replica<K>],
    policy: RolloutPolicy,
) -> RolloutStep<K> {
    let desired = desired as usize;
    // Surge 0 with unavailable 0 could never make progress; Kubernetes
    // rejects it, we fall back to a surge of 1.
    let surge = if policy.max_surge == 0 && policy.max_unavailable == 0 {
        1
    } else {
        policy.max_surge as usize
    };
    let cur = current.len();
    let all = cur + old.len();
    let cur_unready = current.iter().filter(|r| !r.ready).count();

    let missing = desired.saturating_sub(cur);
    let start = if old.is_empty() {
        missing
    } else {
        missing.min((desired + surge).saturating_sub(all))
    };

    let mut terminate = Vec::new();
    if !old.is_empty() {
        let min_available = desired.saturating_sub(policy.max_unavailable as usize);
        let budget = all
            .saturating_sub(min_available)
            .saturating_sub(cur_unready);
        terminate.extend(scale_down_victims(old, budget.min(old.len())));
    }
    if cur > desired {
        terminate.extend(scale_down_victims(current, cur - desired));
    }
    RolloutStep {
        start: u32::try_from(start).unwrap_or(u32::MAX),
        terminate,
    }
}

/// One process of a type as an engine observes it, for [`type_step`].
#[derive(Debug, Clone)]
pub struct Observed<'a, K> {
    /// Whatever the caller identifies processes with (a name, an index).
    pub id: K,
    /// The hash of the template the process runs.
    pub template_hash: &'a str,
    /// Passing its readiness check now (state `up`).
    pub ready: bool,
    /// Creation order: a larger value is a newer process.
    pub created: u64,
    /// Asked to stop already: it counts for nothing.
    pub stopping: bool,
    /// Marked for replacement (a restart): it counts as an old process.
    pub retiring: bool,
}

/// The next rollout step of one process type whose desired template has
/// hash `hash`: the processes of that template (and not retiring) are
/// current, the others old, those stopping are left out; then
/// [`rollout_step`] with the default policy decides.
pub fn type_step<'a, K: Clone>(
    desired: u32,
    hash: &str,
    processes: impl IntoIterator<Item = Observed<'a, K>>,
) -> RolloutStep<K> {
    let mut current = Vec::new();
    let mut old = Vec::new();
    for process in processes {
        if process.stopping {
            continue;
        }
        let replica = Replica {
            id: process.id,
            ready: process.ready,
            created: process.created,
        };
        if process.template_hash == hash && !process.retiring {
            current.push(replica);
        } else {
            old.push(replica);
        }
    }
    rollout_step(desired, &current, &old, RolloutPolicy::default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn type_step_sorts_current_old_and_stopping() {
        let p = |id: &'static str, hash: &'static str, ready, stopping, retiring| Observed {
            id,
            template_hash: hash,
            ready,
            created: 0,
            stopping,
            retiring,
        };
        // Two current and ready, one stopping (ignored): nothing to do.
        let step = type_step(
            2,
            "new",
            [
                p("a", "new", true, false, false),
                p("b", "new", true, false, false),
                p("c", "new", true, true, false),
            ],
        );
        assert!(step.is_empty());
        // A retiring process counts as old: a successor starts first.
        let step = type_step(
            2,
            "new",
            [
                p("a", "new", true, false, false),
                p("b", "new", true, false, true),
            ],
        );
        assert_eq!(step.start, 1);
        assert!(step.terminate.is_empty());
        // Old template, current all ready: the old one goes.
        let step = type_step(
            1,
            "new",
            [
                p("a", "new", true, false, false),
                p("o", "old", true, false, false),
            ],
        );
        assert_eq!(step.start, 0);
        assert_eq!(step.terminate, vec!["o"]);
    }

    #[test]
    fn backoff_doubles_from_ten_seconds_and_caps_at_five_minutes() {
        let p = BackoffPolicy::default();
        let delays: Vec<u64> = (1..=8).map(|n| p.delay(n).as_secs()).collect();
        assert_eq!(delays, vec![10, 20, 40, 80, 160, 300, 300, 300]);
        assert_eq!(p.delay(0), secs(10));
        assert_eq!(p.delay(u32::MAX), secs(300));
    }

    #[test]
    fn backoff_streak_resets_after_ten_minutes_of_running() {
        let p = BackoffPolicy::default();
        assert_eq!(p.next_streak(0, secs(1)), 1);
        assert_eq!(p.next_streak(3, secs(599)), 4);
        assert_eq!(p.next_streak(7, secs(600)), 1);
        assert_eq!(p.next_streak(u32::MAX, secs(0)), u32::MAX);
    }

    #[test]
    fn backoff_is_injectable_for_short_tests() {
        let p = BackoffPolicy {
            initial: Duration::from_millis(200),
            cap: Duration::from_millis(500),
            reset_after: secs(5),
        };
        assert_eq!(p.delay(1), Duration::from_millis(200));
        assert_eq!(p.delay(2), Duration::from_millis(400));
        assert_eq!(p.delay(3), Duration::from_millis(500));
    }

    fn r(id: &'static str, ready: bool, created: u64) -> Replica<&'static str> {
        Replica { id, ready, created }
    }

    #[test]
    fn victims_are_not_ready_first_then_newest() {
        let procs = [
            r("a", true, 1),
            r("b", false, 2),
            r("c", true, 3),
            r("d", false, 0),
            r("e", true, 4),
        ];
        assert_eq!(scale_down_victims(&procs, 1), vec!["b"]);
        assert_eq!(scale_down_victims(&procs, 3), vec!["b", "d", "e"]);
        assert_eq!(scale_down_victims(&procs, 9), vec!["b", "d", "e", "c", "a"]);
        assert!(scale_down_victims(&procs, 0).is_empty());
    }

    #[test]
    fn scale_up_without_old_processes_starts_all_at_once() {
        let step = rollout_step::<&str>(500, &[], &[], RolloutPolicy::default());
        assert_eq!(step.start, 500);
        assert!(step.terminate.is_empty());
        let cur = [r("a", true, 1), r("b", false, 2)];
        let step = rollout_step(5, &cur, &[], RolloutPolicy::default());
        assert_eq!(step.start, 3);
    }

    #[test]
    fn scale_down_without_old_processes_stops_the_excess() {
        let cur = [r("a", true, 1), r("b", true, 2), r("c", false, 0)];
        let step = rollout_step(1, &cur, &[], RolloutPolicy::default());
        assert_eq!(step.start, 0);
        assert_eq!(step.terminate, vec!["c", "b"]);
        let step = rollout_step(0, &cur, &[], RolloutPolicy::default());
        assert_eq!(step.terminate.len(), 3);
    }

    #[test]
    fn steady_state_does_nothing() {
        let cur = [r("a", true, 1), r("b", false, 2)];
        assert!(rollout_step(2, &cur, &[], RolloutPolicy::default()).is_empty());
    }

    #[test]
    fn template_change_rolls_one_at_a_time() {
        let p = RolloutPolicy::default();
        let old = [r("o1", true, 1), r("o2", true, 2), r("o3", true, 3)];
        // First: one new process (surge 1), nothing terminated.
        let step = rollout_step(3, &[], &old, p);
        assert_eq!((step.start, step.terminate.len()), (1, 0));
        // While the new one is not ready: wait.
        let cur = [r("n1", false, 4)];
        assert!(rollout_step(3, &cur, &old, p).is_empty());
        // Once ready: terminate the newest old one, nothing else yet.
        let cur = [r("n1", true, 4)];
        let step = rollout_step(3, &cur, &old, p);
        assert_eq!(step.start, 0);
        assert_eq!(step.terminate, vec!["o3"]);
        // With that one gone: the next new one.
        let step = rollout_step(3, &cur, &old[..2], p);
        assert_eq!((step.start, step.terminate.len()), (1, 0));
    }

    #[test]
    fn rollout_retires_not_ready_old_processes_first() {
        let p = RolloutPolicy::default();
        let old = [r("o1", true, 1), r("crashed", false, 2)];
        let cur = [r("n1", true, 3)];
        let step = rollout_step(2, &cur, &old, p);
        assert_eq!(step.terminate, vec!["crashed"]);
    }

    #[test]
    fn rollback_to_the_old_template_drops_unready_new_processes() {
        // The broken new process is now the "old" one.
        let p = RolloutPolicy::default();
        let cur = [r("a", true, 1), r("b", true, 2)];
        let old = [r("broken", false, 3)];
        let step = rollout_step(2, &cur, &old, p);
        assert_eq!(step.start, 0);
        assert_eq!(step.terminate, vec!["broken"]);
    }

    #[test]
    fn replacing_one_process_starts_its_successor_first() {
        // restart of one process: it is handed in as "old".
        let p = RolloutPolicy::default();
        let cur = [r("a", true, 1)];
        let old = [r("b", true, 2)];
        let step = rollout_step(2, &cur, &old, p);
        assert_eq!((step.start, step.terminate.len()), (1, 0));
        let cur = [r("a", true, 1), r("c", false, 3)];
        assert!(rollout_step(2, &cur, &old, p).is_empty());
        let cur = [r("a", true, 1), r("c", true, 3)];
        assert_eq!(rollout_step(2, &cur, &old, p).terminate, vec!["b"]);
    }

    #[test]
    fn scale_to_zero_during_a_rollout_stops_everything() {
        let p = RolloutPolicy::default();
        let cur = [r("n", false, 3)];
        let old = [r("o1", true, 1), r("o2", true, 2)];
        let step = rollout_step(0, &cur, &old, p);
        assert_eq!(step.start, 0);
        assert_eq!(step.terminate.len(), 3);
    }

    #[test]
    fn zero_surge_and_zero_unavailable_still_progresses() {
        let p = RolloutPolicy {
            max_surge: 0,
            max_unavailable: 0,
        };
        let old = [r("o1", true, 1)];
        assert_eq!(rollout_step(1, &[], &old, p).start, 1);
    }

    #[derive(Clone, Debug)]
    struct Sim {
        id: u64,
        current: bool,
        ready: bool,
    }

    proptest! {
        /// Any single step keeps at least min(desired, ready before) ready
        /// processes, and while rolling never exceeds desired + surge.
        #[test]
        fn a_step_never_drops_below_available(
            desired in 0u32..8,
            cur in proptest::collection::vec(any::<bool>(), 0..10),
            old in proptest::collection::vec(any::<bool>(), 0..10),
        ) {
            let mk = |v: &[bool], base: u64| -> Vec<Replica<u64>> {
                v.iter().enumerate().map(|(i, ready)| Replica {
                    id: base + i as u64, ready: *ready, created: base + i as u64,
                }).collect()
            };
            let current = mk(&cur, 0);
            let olds = mk(&old, 100);
            let ready_before = cur.iter().chain(old.iter()).filter(|r| **r).count();
            let step = rollout_step(desired, &current, &olds, RolloutPolicy::default());
            let ready_after = current.iter().chain(olds.iter())
                .filter(|r| r.ready && !step.terminate.contains(&r.id)).count();
            prop_assert!(ready_after >= ready_before.min(desired as usize));
            let total_after = current.len() + olds.len() - step.terminate.len() + step.start as usize;
            if !olds.is_empty() {
                prop_assert!(total_after <= (current.len() + olds.len()).max(desired as usize + 1));
            }
        }

        /// A whole rollout with processes becoming ready in any order ends
        /// with exactly `desired` ready current processes and no old ones,
        /// and never has fewer ready processes than at its start.
        #[test]
        fn a_rollout_completes_without_losing_capacity(
            desired in 1u32..6,
            old_count in 0usize..6,
            picks in proptest::collection::vec(any::<usize>(), 200),
        ) {
            let mut procs: Vec<Sim> = (0..old_count as u64)
                .map(|id| Sim { id, current: false, ready: true })
                .collect();
            let mut next = old_count as u64;
            let floor = old_count.min(desired as usize);
            let mut picks = picks.into_iter();
            for _ in 0..1000 {
                let view = |current: bool| -> Vec<Replica<u64>> {
                    procs.iter().filter(|p| p.current == current)
                        .map(|p| Replica { id: p.id, ready: p.ready, created: p.id })
                        .collect()
                };
                let step = rollout_step(desired, &view(true), &view(false), RolloutPolicy::default());
                if step.is_empty() {
                    // Something must become ready for progress.
                    let waiting: Vec<usize> = procs.iter().enumerate()
                        .filter(|(_, p)| !p.ready).map(|(i, _)| i).collect();
                    if waiting.is_empty() { break; }
                    let pick = picks.next().unwrap_or(0) % waiting.len();
                    procs[waiting[pick]].ready = true;
                } else {
                    procs.retain(|p| !step.terminate.contains(&p.id));
                    for _ in 0..step.start {
                        procs.push(Sim { id: next, current: true, ready: false });
                        next += 1;
                    }
                }
                let ready = procs.iter().filter(|p| p.ready).count();
                prop_assert!(ready >= floor, "ready {} < {}", ready, floor);
                prop_assert!(procs.len() <= (desired as usize).max(old_count) + 1);
            }
            prop_assert!(procs.iter().all(|p| p.current && p.ready));
            prop_assert_eq!(procs.len(), desired as usize);
        }
    }
}
