//! The verdict on a rollout from the processes that run now: converged,
//! crash-looping, or not ready in time. Pure functions of their inputs.

use std::time::Duration;

use drycc_engine::{is_converged, Deployment, ProcessStatus};
use drycc_model::state::ProcessState;

/// Restarts after which a new process counts as crash-looping.
const CRASH_LOOP_RESTARTS: u32 = 2;

pub fn crash_loop_reason(
    deployments: &[Deployment],
    processes: &[ProcessStatus],
) -> Option<String> {
    let looping: Vec<String> = processes
        .iter()
        .filter(|p| {
            !p.ready
                && p.restarts >= CRASH_LOOP_RESTARTS
                && deployments.iter().any(|d| {
                    d.replicas > 0 && d.template.ptype == p.ptype && d.template.hash == p.hash
                })
        })
        .map(|p| {
            let exit = p.last_exit.as_deref().unwrap_or("exited");
            format!(
                "{} is crashing ({exit}; restarted {} times)",
                p.name, p.restarts
            )
        })
        .collect();
    (!looping.is_empty()).then(|| format!("processes keep crashing: {}", looping.join(", ")))
}

pub fn not_converged_reason(
    deployments: &[Deployment],
    processes: &[ProcessStatus],
    timeout: Duration,
) -> String {
    let mut problems = Vec::new();
    for deployment in deployments {
        let current: Vec<&ProcessStatus> = processes
            .iter()
            .filter(|p| p.ptype == deployment.template.ptype && p.hash == deployment.template.hash)
            .collect();
        let ready = current.iter().filter(|p| p.ready).count();
        if ready < deployment.replicas as usize {
            let mut line = format!(
                "{}: {} of {} processes ready",
                deployment.template.ptype, ready, deployment.replicas
            );
            for process in current.iter().filter(|p| !p.ready) {
                let detail = match (&process.state, &process.last_exit) {
                    (ProcessState::Crashed, Some(exit)) => format!("crashed ({exit})"),
                    (state, _) => state.to_string(),
                };
                line.push_str(&format!("; {} is {}", process.name, detail));
            }
            problems.push(line);
        }
    }
    if problems.is_empty() {
        problems.push("old processes did not stop".into());
    }
    format!(
        "processes did not become ready within {} s: {}",
        timeout.as_secs(),
        problems.join(", ")
    )
}

/// What the current process list says about a pending release.
#[derive(Debug, PartialEq, Eq)]
pub enum Judgement {
    /// Every deployment has exactly its replicas ready, nothing else runs.
    Succeeded,
    /// It will not roll out; the reason.
    Failed(String),
    /// Not yet; judged failed by the timeout in `remaining`.
    Pending { remaining: Duration },
}

/// Judge a pending release from the processes that run `elapsed` after it
/// was created. A type that is not part of the release must be gone too.
pub fn judge(
    deployments: &[Deployment],
    processes: &[ProcessStatus],
    elapsed: Duration,
    timeout: Duration,
) -> Judgement {
    let stale = processes
        .iter()
        .any(|p| !deployments.iter().any(|d| d.template.ptype == p.ptype));
    if !stale && deployments.iter().all(|d| is_converged(d, processes)) {
        return Judgement::Succeeded;
    }
    // A new process that keeps crashing will not become ready in time:
    // say so now instead of at the end of the deploy timeout.
    if let Some(reason) = crash_loop_reason(deployments, processes) {
        return Judgement::Failed(reason);
    }
    match timeout.checked_sub(elapsed) {
        Some(remaining) if !remaining.is_zero() => Judgement::Pending { remaining },
        _ => Judgement::Failed(not_converged_reason(deployments, processes, timeout)),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use drycc_engine::{Artifact, Command, ProcessTemplate};
    use std::path::PathBuf;

    pub(crate) fn deployment(ptype: &str, hash: &str, replicas: u32) -> Deployment {
        Deployment {
            template: ProcessTemplate {
                app: "app".into(),
                ptype: ptype.into(),
                release: 2,
                hash: hash.into(),
                artifact: Artifact::Checkout {
                    path: PathBuf::from("/"),
                },
                command: Command::Line("true".into()),
                env: Default::default(),
                grace_period: Duration::from_secs(1),
                readiness: None,
                liveness: None,
                cpu_millis: None,
                memory_bytes: None,
                user: None,
            },
            replicas,
        }
    }

    pub(crate) fn process(ptype: &str, hash: &str, restarts: u32, ready: bool) -> ProcessStatus {
        ProcessStatus {
            name: format!("app-{ptype}-{hash}-bcdfg"),
            app: "app".into(),
            ptype: ptype.into(),
            release: 2,
            hash: hash.into(),
            state: if ready {
                ProcessState::Up
            } else {
                ProcessState::Crashed
            },
            started: chrono::Utc::now(),
            ready,
            restarts,
            pid: None,
            endpoint: None,
            last_exit: Some("exited with code 1".into()),
            command: "true".into(),
            argv: Vec::new(),
            image: None,
        }
    }

    #[test]
    fn crash_loops_of_awaited_processes_fail_fast() {
        let wanted = [deployment("worker", "h1", 1)];
        assert!(crash_loop_reason(&wanted, &[process("worker", "h1", 1, false)]).is_none());
        let reason = crash_loop_reason(&wanted, &[process("worker", "h1", 2, false)]).unwrap();
        assert!(reason
            .contains("app-worker-h1-bcdfg is crashing (exited with code 1; restarted 2 times)"));
        // Ready again, another template, or a type being scaled to 0: no.
        assert!(crash_loop_reason(&wanted, &[process("worker", "h1", 5, true)]).is_none());
        assert!(crash_loop_reason(&wanted, &[process("worker", "old", 5, false)]).is_none());
        let removing = [deployment("worker", "h1", 0)];
        assert!(crash_loop_reason(&removing, &[process("worker", "h1", 5, false)]).is_none());
    }

    const TIMEOUT: Duration = Duration::from_secs(30);

    #[test]
    fn a_release_succeeds_when_every_type_has_its_ready_processes() {
        let wanted = [deployment("web", "new", 1), deployment("worker", "new", 0)];
        let ready = [process("web", "new", 0, true)];
        assert_eq!(
            judge(&wanted, &ready, Duration::from_secs(1), TIMEOUT),
            Judgement::Succeeded
        );
        // The old web still runs, or a type the release dropped does.
        let old = [
            process("web", "new", 0, true),
            process("web", "old", 0, true),
        ];
        assert!(matches!(
            judge(&wanted, &old, Duration::from_secs(1), TIMEOUT),
            Judgement::Pending { .. }
        ));
        let dropped = [
            process("web", "new", 0, true),
            process("clock", "old", 0, true),
        ];
        assert!(matches!(
            judge(&wanted, &dropped, Duration::from_secs(1), TIMEOUT),
            Judgement::Pending { .. }
        ));
    }

    #[test]
    fn a_pending_release_fails_at_the_timeout_measured_from_its_creation() {
        let wanted = [deployment("web", "new", 1)];
        let starting = [
            process("web", "old", 0, true),
            process("web", "new", 0, false),
        ];
        assert_eq!(
            judge(&wanted, &starting, Duration::from_secs(10), TIMEOUT),
            Judgement::Pending {
                remaining: Duration::from_secs(20)
            }
        );
        // After a controller restart the elapsed time may exceed it at once.
        for elapsed in [TIMEOUT, Duration::from_secs(3600)] {
            let Judgement::Failed(reason) = judge(&wanted, &starting, elapsed, TIMEOUT) else {
                panic!("not failed at {elapsed:?}");
            };
            assert!(
                reason.starts_with("processes did not become ready within 30 s: web: 0 of 1"),
                "{reason}"
            );
        }
    }

    #[test]
    fn a_crash_loop_fails_a_release_before_the_timeout() {
        let wanted = [deployment("web", "new", 1)];
        let looping = [
            process("web", "old", 0, true),
            process("web", "new", 2, false),
        ];
        let Judgement::Failed(reason) = judge(&wanted, &looping, Duration::ZERO, TIMEOUT) else {
            panic!("a crash loop is a failure");
        };
        assert!(reason.starts_with("processes keep crashing"), "{reason}");
    }

    #[test]
    fn a_release_scaled_to_zero_succeeds_once_its_processes_are_gone() {
        let wanted = [deployment("web", "new", 0)];
        let stopping = [process("web", "old", 0, true)];
        assert!(matches!(
            judge(&wanted, &stopping, Duration::ZERO, TIMEOUT),
            Judgement::Pending { .. }
        ));
        assert_eq!(
            judge(&wanted, &[], Duration::ZERO, TIMEOUT),
            Judgement::Succeeded
        );
    }
}
