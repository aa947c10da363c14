//! One task per process, the same for every process-table engine: it
//! starts the process (or takes over the one found running), runs its
//! probes, starts it again after it exited (with the lifecycle back-off,
//! same name, one restart more), and terminates it when asked (SIGTERM,
//! SIGKILL after the grace period). The engine's notes (a crash and its
//! restart, a SIGKILL, a failed liveness probe) go to the app's log. The
//! process entry lives as long as this task; the task removes it when it
//! ends, except when the engine is released: then it lets go and the
//! process runs on for the next engine.
//!
//! How one process runs (a native process group, a container) is the
//! engine's, behind [`Runner`].

use std::future::{pending, Future};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use drycc_engine::{ProcessState, ProcessTemplate};
use tokio::sync::watch;
use tokio::time::{sleep, timeout, timeout_at, Instant};

use crate::orders::{Ended, Order};
use crate::probe::{self, Checker, Readiness};
use crate::process_table::{Host, ProcessTable};
use crate::status::record_exit;

/// How long a SIGKILLed process may take to be reported gone.
pub const KILL_WAIT: Duration = Duration::from_secs(30);

/// How often a run is looked at while what is left of it after its main
/// process has the rest of its grace period.
const LINGER_POLL: Duration = Duration::from_millis(20);

/// The signals a supervisor sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signal {
    /// Asks the process to stop.
    Term,
    /// Ends it.
    Kill,
}

/// One run of a process, as it began.
pub struct Run<C> {
    pub pid: Option<u32>,
    pub started: DateTime<Utc>,
    /// What it runs (see `ProcessStatus::argv`); empty when unknown.
    pub argv: Vec<String>,
    /// How its probes check it.
    pub checker: C,
}

/// How one process runs: what a supervisor asks of the operating system
/// or the daemon. One runner per process, for all its runs.
pub trait Runner: Send + 'static {
    /// The checks of its probes.
    type Checker: Checker + Send + 'static;

    /// Start a run: take over the process found running when the engine
    /// started, else start it (spawn the command, create and start the
    /// container). `Err`: why it could not start.
    fn start(&mut self) -> impl Future<Output = Result<Run<Self::Checker>, String>> + Send;

    /// Wait until the main process of the run has exited; why it did.
    /// Dropped when an order comes first, so it must be cancel-safe.
    fn wait(&mut self) -> impl Future<Output = String> + Send;

    /// Send `signal` to everything of the run (a process group, a
    /// container); nothing once nothing of it runs.
    fn signal(&mut self, signal: Signal) -> impl Future<Output = ()> + Send;

    /// Whether anything of the run still runs after its main process
    /// exited (the rest of its process group).
    fn inspect(&mut self) -> impl Future<Output = bool> + Send;

    /// The process is gone for good: remove what is left of it (its
    /// record, control group, container) and give back its ports.
    fn remove(&mut self) -> impl Future<Output = ()> + Send;
}

/// The task of one process. `adopted`: the runner holds a process found
/// running, to be followed first.
pub(crate) async fn supervise<H: Host>(
    table: Arc<ProcessTable<H>>,
    app: String,
    name: String,
    template: Arc<ProcessTemplate>,
    mut runner: H::Runner,
    mut orders: watch::Receiver<Order>,
    mut adopted: bool,
) {
    let mut streak = 0u32;
    loop {
        let order = *orders.borrow();
        if order == Order::Detach {
            return table.detached(&app, &name);
        }
        if !adopted && (order == Order::Terminate || table.lock().closed) {
            break;
        }
        adopted = false;
        let began = Instant::now();
        let ended = run_once(&table, &name, &template, &mut runner, &mut orders).await;
        let (reason, state) = match ended {
            Ended::Stopped => break,
            Ended::Detached => return table.detached(&app, &name),
            Ended::Exited(reason) => (reason, ProcessState::Crashed),
            Ended::Failed(reason) => (reason, ProcessState::Error),
        };
        let policy = table.policy.backoff;
        streak = policy.next_streak(streak, began.elapsed());
        let delay = policy.delay(streak);
        let crashed = table.update(&app, &name, |p| {
            record_exit(&mut p.status, p.stopping, &reason, state)
        });
        if crashed != Some(true) || table.lock().closed {
            if *orders.borrow() == Order::Detach {
                return table.detached(&app, &name);
            }
            break;
        }
        tracing::info!(%app, process = %name, %state, %reason, delay_ms = delay.as_millis() as u64, "restarting after back-off");
        table.note(
            &app,
            &format!("{name} {state}: {reason}; restarting in {}", human(delay)),
        );
        {
            // A not-ready process may now be the preferred victim.
            let mut inner = table.lock();
            table.reconcile(&mut inner, &app, &template.ptype);
        }
        tokio::select! {
            _ = sleep(delay) => {}
            order = orders.wait_for(|o| *o != Order::Run) => match order.map(|o| *o) {
                Ok(Order::Detach) => return table.detached(&app, &name),
                _ => break,
            },
        }
    }
    runner.remove().await;
    table.remove_proc(&app, &name);
}

/// Start one run and follow it until it exits, fails its liveness probe,
/// or an order comes.
async fn run_once<H: Host>(
    table: &Arc<ProcessTable<H>>,
    name: &str,
    template: &ProcessTemplate,
    runner: &mut H::Runner,
    orders: &mut watch::Receiver<Order>,
) -> Ended {
    let app = template.app.as_str();
    let run = match runner.start().await {
        Ok(run) => run,
        Err(reason) => return Ended::Failed(reason),
    };
    let plan = Readiness::of(template, table.policy.readiness_poll);
    // A process without a readiness check is ready now: one update (and
    // one change event) instead of two, which counts at 500 processes.
    let ready_now = matches!(plan, Readiness::Immediate);
    table.started(app, name, run.pid, run.started, run.argv, ready_now);
    let checker = run.checker;
    let monitor = async {
        let readiness =
            probe::readiness_loop(&plan, &checker, |ready| table.set_ready(app, name, ready));
        let liveness = async {
            match &template.liveness {
                Some(probe) => probe::liveness_loop(probe, &checker).await,
                None => pending().await,
            }
        };
        // Only a liveness failure ends the monitor.
        tokio::select! {
            _ = readiness => pending().await,
            _ = liveness => {}
        }
    };

    enum Why {
        Exit(String),
        Order(Order),
        Liveness,
    }
    let why = tokio::select! {
        reason = runner.wait() => Why::Exit(reason),
        order = orders.wait_for(|o| *o != Order::Run) => Why::Order(order.map(|o| *o).unwrap_or(Order::Terminate)),
        _ = monitor => Why::Liveness,
    };
    let grace = template.grace_period;
    match why {
        Why::Exit(reason) => {
            // Like a container whose main process exited: the rest of it
            // goes with it.
            runner.signal(Signal::Kill).await;
            Ended::Exited(reason)
        }
        Why::Order(Order::Detach) | Why::Order(Order::Run) => Ended::Detached,
        Why::Order(Order::Terminate) => {
            let (reason, killed) = terminate(runner, grace).await;
            if killed {
                table.note(app, &sigkill_note(name, grace));
            }
            table.update(app, name, |p| {
                p.status.pid = None;
                p.status.last_exit = Some(reason.unwrap_or_else(|| "terminated".to_string()));
            });
            Ended::Stopped
        }
        Why::Liveness => {
            tracing::info!(%app, process = %name, "failed its liveness probe; restarting it");
            table.note(
                app,
                &format!("{name} failed its liveness probe; restarting it"),
            );
            let (_, killed) = terminate(runner, grace).await;
            if killed {
                table.note(app, &sigkill_note(name, grace));
            }
            Ended::Exited("liveness probe failed".to_string())
        }
    }
}

/// SIGTERM; SIGKILL once `grace` has passed and anything of the run is
/// still there. The main process exiting early does not cut the grace of
/// the rest of the run. Returns why the main process exited (when it was
/// seen to) and whether the SIGKILL was needed.
async fn terminate<R: Runner>(runner: &mut R, grace: Duration) -> (Option<String>, bool) {
    let deadline = Instant::now() + grace;
    runner.signal(Signal::Term).await;
    match timeout_at(deadline, runner.wait()).await {
        Ok(reason) => {
            while runner.inspect().await && Instant::now() < deadline {
                sleep(LINGER_POLL).await;
            }
            let lingering = runner.inspect().await;
            runner.signal(Signal::Kill).await;
            (Some(reason), lingering)
        }
        Err(_) => {
            tracing::info!(
                grace_ms = grace.as_millis() as u64,
                "did not exit within its grace period after SIGTERM; sending SIGKILL"
            );
            runner.signal(Signal::Kill).await;
            (timeout(KILL_WAIT, runner.wait()).await.ok(), true)
        }
    }
}

/// The app-log line that tells a user why a process was killed.
fn sigkill_note(name: &str, grace: Duration) -> String {
    format!(
        "{name} did not exit within {} of SIGTERM; sent SIGKILL",
        human(grace)
    )
}

fn human(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

#[cfg(test)]
mod tests {
    //! The supervisor's rules against a runner with no OS behind it, on a
    //! paused clock: every sleep of the back-off, the grace period and the
    //! probes passes at once, in order.

    use std::collections::HashMap;
    use std::sync::Mutex;

    use drycc_engine::{Artifact, Command, Deployment, ProbeAction, ProcessStatus};
    use drycc_engine_conformance::plain_template;
    use drycc_model::lifecycle::BackoffPolicy;

    use super::*;
    use crate::ports::Ports;
    use crate::process_table::Policy;
    use crate::table::Tracked;

    /// How a fake process behaves.
    #[derive(Clone, Copy, Default)]
    struct Behaviour {
        /// Exits right after each start.
        crashes: bool,
        /// Ignores SIGTERM.
        stubborn: bool,
    }

    /// What the fake processes did, in order, and how the next ones behave.
    #[derive(Default)]
    struct World {
        events: Vec<String>,
        /// When each run of a process began (paused clock).
        starts: HashMap<String, Vec<Instant>>,
        behaviour: HashMap<String, Behaviour>,
        /// Per type: whether its processes' ports accept connections.
        ports_open: HashMap<String, watch::Sender<bool>>,
    }

    struct Fake {
        world: Arc<Mutex<World>>,
        notes: Mutex<Vec<String>>,
    }

    impl Fake {
        fn world(&self) -> std::sync::MutexGuard<'_, World> {
            self.world.lock().unwrap()
        }
    }

    struct FakeRunner {
        world: Arc<Mutex<World>>,
        name: String,
        ptype: String,
        /// Whether the current run is alive.
        alive: watch::Sender<bool>,
    }

    impl FakeRunner {
        fn event(&self, what: &str) {
            let mut world = self.world.lock().unwrap();
            world.events.push(format!("{what} {}", self.name));
        }

        fn behaviour(&self) -> Behaviour {
            let world = self.world.lock().unwrap();
            let of_type = world.behaviour.get(&self.ptype).copied();
            of_type.unwrap_or_default()
        }
    }

    struct FakeChecker(watch::Receiver<bool>);

    impl Checker for FakeChecker {
        async fn check(&self, _action: &ProbeAction, _limit: Duration) -> bool {
            *self.0.borrow()
        }

        async fn port_open(&self) -> bool {
            *self.0.borrow()
        }
    }

    impl Runner for FakeRunner {
        type Checker = FakeChecker;

        async fn start(&mut self) -> Result<Run<FakeChecker>, String> {
            self.event("start");
            let ports = {
                let mut world = self.world.lock().unwrap();
                let starts = world.starts.entry(self.name.clone()).or_default();
                starts.push(Instant::now());
                let open = world.ports_open.entry(self.ptype.clone());
                open.or_insert_with(|| watch::channel(false).0).subscribe()
            };
            self.alive.send_replace(!self.behaviour().crashes);
            Ok(Run {
                pid: Some(1),
                started: Utc::now(),
                argv: vec!["fake".into()],
                checker: FakeChecker(ports),
            })
        }

        async fn wait(&mut self) -> String {
            let mut alive = self.alive.subscribe();
            let _ = alive.wait_for(|alive| !alive).await;
            "exited with code 1".to_string()
        }

        async fn signal(&mut self, signal: Signal) {
            if !*self.alive.borrow() {
                return;
            }
            match signal {
                Signal::Term => {
                    self.event("term");
                    if !self.behaviour().stubborn {
                        self.alive.send_replace(false);
                    }
                }
                Signal::Kill => {
                    self.event("kill");
                    self.alive.send_replace(false);
                }
            }
        }

        async fn inspect(&mut self) -> bool {
            *self.alive.borrow()
        }

        async fn remove(&mut self) {
            self.event("remove");
        }
    }

    impl Host for Fake {
        const NAME: &'static str = "the fake engine";
        type Extra = ();
        type Found = ();
        type Runner = FakeRunner;

        fn runner(
            table: &Arc<ProcessTable<Fake>>,
            proc: &Tracked<()>,
            _: Option<()>,
        ) -> FakeRunner {
            FakeRunner {
                world: Arc::clone(&table.world),
                name: proc.status.name.clone(),
                ptype: proc.status.ptype.clone(),
                alive: watch::channel(false).0,
            }
        }

        fn note(&self, _app: &str, text: &str) {
            self.notes.lock().unwrap().push(text.to_string());
        }
    }

    const BACKOFF: BackoffPolicy = BackoffPolicy {
        initial: Duration::from_secs(1),
        cap: Duration::from_secs(8),
        reset_after: Duration::from_secs(600),
    };

    fn table() -> Arc<ProcessTable<Fake>> {
        let host = Fake {
            world: Arc::default(),
            notes: Mutex::default(),
        };
        let policy = Policy {
            backoff: BACKOFF,
            readiness_poll: Duration::from_millis(100),
        };
        let runtime = tokio::runtime::Handle::current();
        Arc::new(ProcessTable::new(host, policy, Ports::new(1..=1), runtime))
    }

    fn deployment(ptype: &str, release: u32, replicas: u32) -> Deployment {
        let artifact = Artifact::Checkout { path: "/".into() };
        let command = Command::Line("serve".into());
        let mut template = plain_template("a", ptype, release, artifact, command);
        template.grace_period = Duration::from_secs(3);
        Deployment { template, replicas }
    }

    /// Wait (on the table's change counter) until the processes of "a"
    /// satisfy `done`.
    async fn until(
        table: &ProcessTable<Fake>,
        done: impl Fn(&[ProcessStatus]) -> bool,
    ) -> Vec<ProcessStatus> {
        let mut changes = table.changes(None);
        let deadline = Instant::now() + Duration::from_secs(3600);
        let reached = wait_until_sync(&mut changes, deadline, || done(&table.processes("a"))).await;
        assert!(reached, "never reached: {:#?}", table.processes("a"));
        table.processes("a")
    }

    async fn wait_until_sync(
        changes: &mut watch::Receiver<u64>,
        deadline: Instant,
        done: impl FnMut() -> bool,
    ) -> bool {
        drycc_engine_changes::wait_until(changes, Some(deadline), done).await
    }

    fn events(table: &ProcessTable<Fake>) -> Vec<String> {
        table.world().events.clone()
    }

    /// How the processes of `ptype` behave from their next start on.
    fn behave(table: &ProcessTable<Fake>, ptype: &str, behaviour: Behaviour) {
        table.world().behaviour.insert(ptype.into(), behaviour);
    }

    fn notes(table: &ProcessTable<Fake>) -> Vec<String> {
        table.notes.lock().unwrap().clone()
    }

    #[tokio::test(start_paused = true)]
    async fn a_crash_restarts_after_the_back_off_and_is_noted_in_the_apps_log() {
        let table = table();
        behave(
            &table,
            "worker",
            Behaviour {
                crashes: true,
                stubborn: false,
            },
        );
        table.apply(deployment("worker", 1, 1)).unwrap();
        let procs = until(&table, |p| p.len() == 1 && p[0].restarts >= 4).await;
        let name = procs[0].name.clone();
        assert_eq!(procs[0].last_exit.as_deref(), Some("exited with code 1"));
        let starts = table.world().starts[&name].clone();
        let gaps: Vec<Duration> = starts.windows(2).map(|w| w[1] - w[0]).collect();
        // Same name every time, the delays doubling from the first.
        assert_eq!(&gaps[..3], [1, 2, 4].map(Duration::from_secs));
        let notes = notes(&table);
        assert_eq!(
            notes[..3],
            [1, 2, 4].map(|s| format!("{name} crashed: exited with code 1; restarting in {s}s"))
        );
        table.remove_app("a");
        until(&table, |p| p.is_empty()).await;
        assert_eq!(events(&table).last(), Some(&format!("remove {name}")));
    }

    #[tokio::test(start_paused = true)]
    async fn a_process_that_ignores_sigterm_gets_sigkill_after_its_grace_period() {
        let table = table();
        behave(
            &table,
            "worker",
            Behaviour {
                crashes: false,
                stubborn: true,
            },
        );
        table.apply(deployment("worker", 1, 1)).unwrap();
        table.apply(deployment("clock", 1, 1)).unwrap();
        let procs = until(&table, |p| p.len() == 2 && p.iter().all(|p| p.ready)).await;
        let (clock, worker) = (procs[0].name.clone(), procs[1].name.clone());
        let began = Instant::now();
        table.apply(deployment("worker", 1, 0)).unwrap();
        table.apply(deployment("clock", 1, 0)).unwrap();
        until(&table, |p| p.is_empty()).await;
        let events = events(&table);
        let of = |name: &str| -> Vec<String> {
            let mine = events.iter().filter(|e| e.ends_with(name));
            mine.map(|e| e.split(' ').next().unwrap_or_default().to_string())
                .collect()
        };
        assert_eq!(of(&worker), ["start", "term", "kill", "remove"]);
        assert_eq!(of(&clock), ["start", "term", "remove"]);
        // The SIGKILL came when the grace period was over, not before.
        assert!(Instant::now() - began >= Duration::from_secs(3));
        assert_eq!(
            notes(&table),
            [format!(
                "{worker} did not exit within 3s of SIGTERM; sent SIGKILL"
            )]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_new_release_replaces_processes_one_at_a_time_without_losing_capacity() {
        let table = table();
        let open = |ready: bool| {
            let mut world = table.world();
            let ports = world.ports_open.entry("web".into());
            ports
                .or_insert_with(|| watch::channel(false).0)
                .send_replace(ready);
        };
        table.apply(deployment("web", 1, 2)).unwrap();
        until(&table, |p| p.len() == 2).await;
        open(true);
        let old = until(&table, |p| p.len() == 2 && p.iter().all(|p| p.ready)).await;
        open(false);
        table.apply(deployment("web", 2, 2)).unwrap();
        // One surge process of the new release, and no old one goes while
        // it is not ready.
        let procs = until(&table, |p| p.iter().any(|p| p.release == 2)).await;
        assert_eq!(procs.len(), 3, "{procs:#?}");
        assert!(procs.iter().all(|p| p.state != ProcessState::Terminating));
        tokio::time::sleep(Duration::from_secs(5)).await;
        let procs = table.processes("a");
        assert_eq!(procs.len(), 3, "still waiting for readiness");
        assert!(procs.iter().all(|p| p.state != ProcessState::Terminating));
        open(true);
        until(&table, |p| {
            p.len() == 2 && p.iter().all(|p| p.release == 2 && p.ready)
        })
        .await;
        let events = events(&table);
        let count = |what: &str, upto: usize| {
            events[..upto]
                .iter()
                .filter(|e| e.starts_with(what))
                .count()
        };
        let first_term = events.iter().position(|e| e.starts_with("term"));
        let first_term = first_term.unwrap_or(events.len());
        // The two old ones started, then a new one, before any went.
        assert!(count("start", first_term) >= 3, "{events:#?}");
        assert_eq!(count("start", events.len()), 4, "{events:#?}");
        for old in &old {
            assert!(
                events.contains(&format!("remove {}", old.name)),
                "{events:#?}"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_released_engine_leaves_its_processes_running() {
        let table = table();
        table.apply(deployment("worker", 1, 2)).unwrap();
        until(&table, |p| p.len() == 2 && p.iter().all(|p| p.ready)).await;
        table.let_go();
        assert!(table.wait_idle(None).await);
        table.end_tasks().await;
        let events = events(&table);
        assert!(events.iter().all(|e| e.starts_with("start")), "{events:#?}");
        assert!(table.apply(deployment("worker", 1, 3)).is_err());
    }
}
