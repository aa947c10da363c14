//! The protocol between an engine's table and its per-process supervisor
//! tasks: the orders a supervisor follows (a `watch` channel per process)
//! and how one run of a process ends.

use tokio::sync::watch;

use drycc_engine::{ProcessState, ProcessStatus};

/// What the engine wants of a supervisor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Order {
    Run,
    /// Terminate the process (SIGTERM, grace, SIGKILL), clean up, end.
    Terminate,
    /// End without touching the process (engine released).
    Detach,
}

/// How one run of a process ended.
#[derive(Debug)]
pub enum Ended {
    /// It exited by itself (or failed its liveness probe and was stopped).
    Exited(String),
    /// It could not be started at all.
    Failed(String),
    /// We were asked to stop it, and it is gone.
    Stopped,
    /// The engine was released: the process runs on, for the next one.
    Detached,
}

/// Mark a process terminating (once) and wake its supervisor.
pub fn request_stop(
    stopping: &mut bool,
    status: &mut ProcessStatus,
    orders: &watch::Sender<Order>,
) {
    if *stopping {
        return;
    }
    *stopping = true;
    status.state = ProcessState::Terminating;
    status.ready = false;
    orders.send_replace(Order::Terminate);
}

/// Let a running supervisor go without touching its process (an order to
/// terminate stands).
pub fn detach(orders: &watch::Sender<Order>) {
    orders.send_if_modified(|order| {
        let run = *order == Order::Run;
        if run {
            *order = Order::Detach;
        }
        run
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detach_does_not_undo_a_termination() {
        let (orders, rx) = watch::channel(Order::Run);
        detach(&orders);
        assert_eq!(*rx.borrow(), Order::Detach);
        let (orders, rx) = watch::channel(Order::Terminate);
        detach(&orders);
        assert_eq!(*rx.borrow(), Order::Terminate);
    }
}
