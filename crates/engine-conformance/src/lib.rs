//! The conformance suite of the engine interface: what every implementation
//! of [`drycc_engine::Engine`] must do, written once as generic async test
//! functions ([`suite`]) and instantiated for one engine with
//! [`conformance_tests!`].
//!
//! The suite observes an engine only through the trait: `processes()`,
//! endpoints (a TCP connect, an HTTP GET), `logs()` and `follow_logs()`,
//! `exec()`, `usage()`, `apps()` and the `changes()` counters. It never looks
//! at pids, host files or `/proc`, so a container engine runs it as it is:
//! what differs between engines is the [`Harness`], which builds the engine
//! and says how a POSIX shell script becomes a [`ProcessTemplate`].
//!
//! Waiting is always on `changes(Some(app))` (or a short poll for what no
//! counter announces: log lines, usage readings, `apps()`), with a generous
//! deadline ([`DEADLINE`]); nothing asserts timings. Every test uses apps
//! of its own with a random suffix and removes them at the end (and, when it
//! fails, on its way out).
//!
//! ```ignore
//! // tests/conformance.rs of an engine crate (which depends on tokio with
//! // the "macros" and "rt-multi-thread" features):
//! fn harness() -> MyHarness { ... }
//! drycc_engine_conformance::conformance_tests!(harness);
//! // or, when building the harness needs to wait:
//! async fn harness() -> MyHarness { ... }
//! drycc_engine_conformance::conformance_tests!(async harness);
//! ```

// Assertions are the point of this crate; anything else that can fail
// says what failed.
#![deny(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use drycc_engine::{Artifact, Command, Engine, ProcessTemplate};
use drycc_model::lifecycle::BackoffPolicy;

pub mod suite;
mod support;

pub use support::{DEADLINE, POLL};

/// What an engine under test provides.
pub trait Harness: Send + Sync + 'static {
    /// The engine under test: a fresh one per harness (each test makes its
    /// own harness), which the suite shares with the tasks it spawns.
    fn engine(&self) -> Arc<dyn Engine>;

    /// A template of `app`/`ptype`, release `release`, running the POSIX
    /// shell script `script` with `PORT` set by the engine. Scripts use only
    /// busybox-level tools (`sh`, `echo`, `sleep`, `trap`, `wait`, `cat`,
    /// `httpd`, `nc`, `ls`, `date`...). Natively: `Command::Line(script)`
    /// with a `Checkout` artifact in a temporary directory; containers:
    /// `Command::Args(["sh", "-c", script])` with a busybox image.
    ///
    /// The hash must be a stable function of (`app`, `ptype`, `release`)
    /// that differs between releases, such as
    /// `drycc_model::naming::template_hash(app, ptype, release, 0)`: the
    /// suite sets generation 1 of that function to restart a type, as the
    /// controller does. No readiness or liveness probe, no limits, an
    /// empty environment and a short grace period (a few seconds: every
    /// script the suite runs exits at once on SIGTERM unless the test says
    /// otherwise).
    fn template(&self, app: &str, ptype: &str, release: u32, script: &str) -> ProcessTemplate;

    /// A script serving HTTP on `$PORT` (any answer: a 404 will do) until
    /// SIGTERM, e.g. `exec busybox httpd -f -p 127.0.0.1:$PORT -h <dir>`
    /// natively or `exec httpd -f -p $PORT -h /` in a busybox container.
    fn web_script(&self) -> String;

    /// Whether processes really run. `false` on a simulated node (a
    /// Kubernetes control plane whose kubelet is kwok: pods become Running
    /// and Ready at once, and nothing executes): the suite then skips,
    /// saying so, the tests and checks that need a running program
    /// (signals, grace, crashes, exec, logs, usage, endpoints answering).
    fn runs_processes(&self) -> bool {
        true
    }

    /// Whether process names carry the template hash. On Kubernetes a
    /// process is a Pod whose name carries its ReplicaSet's
    /// `pod-template-hash` instead (`<app>-<type>-<pod-template-hash>-<5>`),
    /// which changes with the template all the same.
    fn names_carry_the_hash(&self) -> bool {
        true
    }

    /// Whether usage figures come from a sampler with a pace of its own (on
    /// Kubernetes, the metrics API: metrics-server scrapes the kubelets
    /// every so often), so that a process has readings without figures
    /// until it was first sampled. Otherwise only the first reading may
    /// lack a CPU figure.
    fn usage_is_sampled(&self) -> bool {
        false
    }

    /// Whether `restart_process` starts the replacement before it stops
    /// the process. On Kubernetes a process is restarted by deleting its
    /// Pod and the ReplicaSet then replaces it, so capacity dips by one.
    fn restart_keeps_capacity(&self) -> bool {
        true
    }
}

/// Say loudly that a test (or part of one) is skipped, and why.
pub(crate) fn skipped(test: &str, why: &str) {
    use std::io::Write;
    // Straight to stderr: the test harness does not capture it.
    let _ = writeln!(std::io::stderr(), "WARNING: {test} skipped: {why}");
}

/// The template [`Harness::template`] asks for, given how the engine runs
/// it: the suite's stable hash, no probes, no limits, an empty
/// environment and a grace period of 5 s.
pub fn plain_template(
    app: &str,
    ptype: &str,
    release: u32,
    artifact: Artifact,
    command: Command,
) -> ProcessTemplate {
    ProcessTemplate {
        app: app.to_string(),
        ptype: ptype.to_string(),
        release,
        hash: drycc_model::naming::template_hash(app, ptype, release, 0),
        artifact,
        command,
        env: Default::default(),
        grace_period: Duration::from_secs(5),
        readiness: None,
        liveness: None,
        cpu_millis: None,
        memory_bytes: None,
        user: None,
    }
}

/// A crash back-off for harnesses: fast, so that crash tests end soon.
pub const FAST_BACKOFF: BackoffPolicy = BackoffPolicy {
    initial: Duration::from_millis(200),
    cap: Duration::from_secs(1),
    reset_after: Duration::from_secs(60),
};

/// One `#[tokio::test(flavor = "multi_thread", worker_threads = 2)]` per
/// function of [`suite`], each with a fresh harness from `$make`: a
/// function (or closure) returning an `Option<impl Harness>`, or with
/// `async` in front, one returning a future of it. `None` skips the test:
/// the maker says loudly why (an engine that cannot run on this machine). The calling crate needs `tokio`
/// with the "macros" and "rt-multi-thread" features.
#[macro_export]
macro_rules! conformance_tests {
    (async $make:expr) => {
        $crate::__conformance_tests!((async $make));
    };
    ($make:expr) => {
        $crate::__conformance_tests!((sync $make));
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_tests {
    ($how:tt) => {
        $crate::__conformance_tests!(
            $how;
            scale_up_and_down,
            scale_down_terminates_the_newest_with_sigterm,
            sigterm_ignored_is_killed_after_the_grace_period,
            template_change_rolls_with_zero_unavailable,
            crash_restarts_back_off_under_the_same_name,
            restart_replaces_processes_under_new_names,
            exec_runs_commands_in_a_process,
            logs_tail_and_follow,
            usage_measures_cpu_and_memory,
            remove_type_and_app_stop_their_processes,
            invalid_deployments_are_refused_and_change_nothing,
            changes_wake_on_changes_of_the_app,
        );
    };
    ($how:tt; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                // `None`: the engine cannot run here; the maker said why.
                let Some(harness) = $crate::__make_harness!($how) else {
                    return;
                };
                $crate::suite::$name(&harness).await;
            }
        )*
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __make_harness {
    ((async $make:expr)) => {
        ($make)().await
    };
    ((sync $make:expr)) => {
        ($make)()
    };
}
