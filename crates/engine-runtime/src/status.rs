//! Changes to a process's status that every engine makes the same way.

use drycc_engine::{ProcessState, ProcessStatus};

/// Record in `status` that its process ended (`reason`): no pid, not ready,
/// the reason as its last exit. A process that was asked to stop did not
/// crash: `false`, its state left as it is. Otherwise it is now `state`
/// (crashed, or error when it could not start) with one restart more, to
/// be restarted after the back-off: `true`.
pub fn record_exit(
    status: &mut ProcessStatus,
    stopping: bool,
    reason: &str,
    state: ProcessState,
) -> bool {
    status.pid = None;
    status.ready = false;
    status.last_exit = Some(reason.to_string());
    if stopping {
        // It exited while being asked to stop: not a crash.
        return false;
    }
    status.state = state;
    status.restarts = status.restarts.saturating_add(1);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status() -> ProcessStatus {
        ProcessStatus {
            name: "a-web-1".into(),
            app: "a".into(),
            ptype: "web".into(),
            release: 1,
            hash: "h".into(),
            state: ProcessState::Up,
            started: Default::default(),
            ready: true,
            restarts: 2,
            pid: Some(7),
            endpoint: None,
            last_exit: None,
            command: "x".into(),
            argv: Vec::new(),
            image: None,
        }
    }

    #[test]
    fn an_exit_is_a_crash_unless_the_process_was_stopping() {
        let mut s = status();
        assert!(record_exit(&mut s, false, "exit 1", ProcessState::Crashed));
        assert_eq!(
            (s.state, s.restarts, s.pid, s.ready),
            (ProcessState::Crashed, 3, None, false)
        );
        assert_eq!(s.last_exit.as_deref(), Some("exit 1"));
        let mut s = status();
        assert!(!record_exit(
            &mut s,
            true,
            "signal 15",
            ProcessState::Crashed
        ));
        assert_eq!(
            (s.state, s.restarts, s.pid, s.ready),
            (ProcessState::Up, 2, None, false)
        );
        assert_eq!(s.last_exit.as_deref(), Some("signal 15"));
    }
}
