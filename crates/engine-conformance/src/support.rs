//! What the suite's functions share: one test's run (its apps, their
//! removal), waiting on the engine's change counters, watching processes
//! in the background, and small clients of exec sessions and endpoints.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use drycc_engine::{
    Deployment, Engine, ExecOutput, ExecSession, LogLine, ProcessState, ProcessStatus,
    ProcessTemplate,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{oneshot, watch};
use tokio::time::{timeout, timeout_at, Instant};

use crate::Harness;

/// How long any one condition may take to hold. Generous: it only bounds a
/// failing test, a passing one goes on as soon as the condition holds.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// The pace of polls for what no change counter announces (log lines,
/// usage readings, `apps()`).
pub const POLL: Duration = Duration::from_millis(100);

/// How long removing a failed test's apps may hold up its failure.
const CLEANUP: Duration = Duration::from_secs(10);

/// A process that does nothing until SIGTERM, then exits 0 at once. The
/// `wait` is what lets the trap run without waiting for the `sleep`.
pub(crate) const IDLE: &str = "trap 'exit 0' TERM; while :; do sleep 1 & wait $!; done";

/// One test against one engine: the apps it made, removed at the end by
/// [`Run::finish`], or on the way out of a failed test by `Drop`.
pub(crate) struct Run<'h> {
    pub(crate) h: &'h dyn Harness,
    pub(crate) engine: Arc<dyn Engine>,
    apps: Vec<String>,
    finished: bool,
}

impl<'h> Run<'h> {
    pub(crate) fn new(h: &'h dyn Harness) -> Self {
        Run {
            h,
            engine: h.engine(),
            apps: Vec::new(),
            finished: false,
        }
    }

    /// A new app name, unique to this run (engines may share a daemon
    /// between tests), removed at the end.
    pub(crate) fn app(&mut self, prefix: &str) -> String {
        let suffix = drycc_model::naming::random_suffix(&mut rand::thread_rng());
        let app = format!("{prefix}-{suffix}");
        self.apps.push(app.clone());
        app
    }

    pub(crate) fn template(
        &self,
        app: &str,
        ptype: &str,
        release: u32,
        script: &str,
    ) -> ProcessTemplate {
        self.h.template(app, ptype, release, script)
    }

    /// Declare `replicas` of `template`; the deployment, for `is_converged`.
    pub(crate) async fn apply(&self, template: &ProcessTemplate, replicas: u32) -> Deployment {
        let deployment = Deployment {
            template: template.clone(),
            replicas,
        };
        if let Err(e) = self.engine.apply(deployment.clone()).await {
            panic!(
                "apply of {}/{} x{replicas} failed: {}",
                template.app,
                template.ptype,
                e.detail()
            );
        }
        deployment
    }

    pub(crate) async fn processes(&self, app: &str) -> Vec<ProcessStatus> {
        match self.engine.processes(app).await {
            Ok(procs) => procs,
            Err(e) => panic!("processes({app}) failed: {}", e.detail()),
        }
    }

    pub(crate) async fn logs(
        &self,
        app: &str,
        lines: usize,
        process: Option<&str>,
    ) -> Vec<LogLine> {
        match self.engine.logs(app, lines, process).await {
            Ok(logs) => logs,
            Err(e) => panic!("logs({app}, {lines}, {process:?}) failed: {}", e.detail()),
        }
    }

    pub(crate) async fn apps(&self) -> Vec<String> {
        match self.engine.apps().await {
            Ok(apps) => apps,
            Err(e) => panic!("apps() failed: {}", e.detail()),
        }
    }

    /// Wait until `done` holds for the app's processes, re-reading them on
    /// every change of the app (and only then: a change the engine does not
    /// announce is a failure too). Panics with the last snapshot at the
    /// deadline.
    pub(crate) async fn wait_for(
        &self,
        app: &str,
        what: &str,
        mut done: impl FnMut(&[ProcessStatus]) -> bool,
    ) -> Vec<ProcessStatus> {
        let deadline = Instant::now() + DEADLINE;
        let mut changes = self.engine.changes(Some(app));
        loop {
            changes.borrow_and_update();
            let procs = self.processes(app).await;
            if done(&procs) {
                return procs;
            }
            next_change(&mut changes, deadline, app, what, &procs).await;
        }
    }

    /// Wait until every deployment is converged (they are of one app).
    pub(crate) async fn converged(
        &self,
        what: &str,
        deployments: &[&Deployment],
    ) -> Vec<ProcessStatus> {
        let app = deployments
            .first()
            .map(|d| d.template.app.clone())
            .unwrap_or_default();
        self.wait_for(&app, what, |procs| {
            deployments
                .iter()
                .all(|d| drycc_engine::is_converged(d, procs))
        })
        .await
    }

    /// Poll the app's logs (of one process, or all) until `done` holds.
    pub(crate) async fn wait_logs(
        &self,
        app: &str,
        process: Option<&str>,
        what: &str,
        mut done: impl FnMut(&[LogLine]) -> bool,
    ) -> Vec<LogLine> {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let logs = self.logs(app, 1000, process).await;
            if done(&logs) {
                return logs;
            }
            assert!(
                Instant::now() < deadline,
                "timed out after {DEADLINE:?} waiting for {what}; logs of {app} ({process:?}): {logs:#?}"
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// Wait until a process has written the line `text` (scripts say
    /// `ready` once their traps are set: an engine may call a process up
    /// as soon as it started, before its shell got that far).
    pub(crate) async fn wait_line(&self, app: &str, process: &str, text: &str) {
        self.wait_logs(
            app,
            Some(process),
            &format!("{process} to write {text:?}"),
            |logs| logs.iter().any(|l| l.text == text),
        )
        .await;
    }

    /// Call `observe` with the app's processes on every change, in a task
    /// of its own, until [`Watcher::stop`].
    pub(crate) fn watch<S: Send + 'static>(
        &self,
        app: &str,
        state: S,
        mut observe: impl FnMut(&mut S, &[ProcessStatus]) + Send + 'static,
    ) -> Watcher<S> {
        let (stop, mut stopped) = oneshot::channel();
        let engine = Arc::clone(&self.engine);
        let app = app.to_string();
        let mut changes = engine.changes(Some(&app));
        let task = tokio::spawn(async move {
            let mut state = state;
            loop {
                changes.borrow_and_update();
                match engine.processes(&app).await {
                    Ok(procs) => observe(&mut state, &procs),
                    Err(e) => panic!("processes({app}) failed: {}", e.detail()),
                }
                tokio::select! {
                    changed = changes.changed() => {
                        assert!(changed.is_ok(), "the change counter of {app} closed");
                    }
                    _ = &mut stopped => return state,
                }
            }
        });
        Watcher { stop, task }
    }

    /// Remove every app of the run and wait until their processes are
    /// gone.
    pub(crate) async fn finish(mut self) {
        for app in &self.apps {
            if let Err(e) = self.engine.remove_app(app).await {
                panic!("remove_app({app}) failed: {}", e.detail());
            }
        }
        for app in &self.apps {
            self.wait_for(app, "the removed app's processes to go", |p| p.is_empty())
                .await;
        }
        self.finished = true;
    }
}

impl Drop for Run<'_> {
    /// A failed test still removes its apps (best effort, bounded): the
    /// engine may drive processes that outlive this test binary.
    fn drop(&mut self) {
        if self.finished || self.apps.is_empty() {
            return;
        }
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if handle.runtime_flavor() != tokio::runtime::RuntimeFlavor::MultiThread {
            return;
        }
        let engine = Arc::clone(&self.engine);
        let apps = std::mem::take(&mut self.apps);
        tokio::task::block_in_place(|| {
            handle.block_on(async {
                let remove = async {
                    for app in &apps {
                        let _ = engine.remove_app(app).await;
                    }
                };
                let _ = timeout(CLEANUP, remove).await;
            })
        });
    }
}

/// Wait for the next change of the app; panic at the deadline with what
/// was awaited and the last snapshot.
pub(crate) async fn next_change(
    changes: &mut watch::Receiver<u64>,
    deadline: Instant,
    app: &str,
    what: &str,
    last: &[ProcessStatus],
) {
    match timeout_at(deadline, changes.changed()).await {
        Ok(Ok(())) => {}
        Ok(Err(_)) => panic!("the change counter of {app} closed while waiting for {what}"),
        Err(_) => {
            panic!("timed out after {DEADLINE:?} waiting for {what}; processes of {app}: {last:#?}")
        }
    }
}

/// A background observer of processes (see [`Run::watch`]).
pub(crate) struct Watcher<S> {
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<S>,
}

impl<S> Watcher<S> {
    /// Stop observing; what was observed. An assertion that failed in the
    /// observer fails the test here.
    pub(crate) async fn stop(self) -> S {
        let _ = self.stop.send(());
        match self.task.await {
            Ok(state) => state,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => panic!("the process watcher ended: {e}"),
        }
    }
}

/// Ready and up processes of a type.
pub(crate) fn ready(procs: &[ProcessStatus], ptype: &str) -> usize {
    procs
        .iter()
        .filter(|p| p.ptype == ptype && p.ready && p.state == ProcessState::Up)
        .count()
}

pub(crate) fn names(procs: &[ProcessStatus], ptype: &str) -> Vec<String> {
    procs
        .iter()
        .filter(|p| p.ptype == ptype)
        .map(|p| p.name.clone())
        .collect()
}

/// What an exec session gave: stdout, stderr, exit code.
pub(crate) struct Finished {
    pub(crate) stdout: String,
    pub(crate) stderr: String,
    pub(crate) code: i32,
}

/// Collect a session's output until its exit code, which must be the last
/// message.
pub(crate) async fn finish_exec(session: &mut ExecSession) -> Finished {
    let deadline = Instant::now() + DEADLINE;
    let (mut out, mut err) = (Vec::new(), Vec::new());
    loop {
        match timeout_at(deadline, session.output.recv()).await {
            Ok(Some(ExecOutput::Stdout(b))) => out.extend_from_slice(&b),
            Ok(Some(ExecOutput::Stderr(b))) => err.extend_from_slice(&b),
            Ok(Some(ExecOutput::Exit(code))) => {
                let rest = timeout_at(deadline, session.output.recv()).await;
                assert!(
                    matches!(rest, Ok(None)),
                    "Exit must be the last message of an exec session, then came {rest:?}"
                );
                return Finished {
                    stdout: String::from_utf8_lossy(&out).into_owned(),
                    stderr: String::from_utf8_lossy(&err).into_owned(),
                    code,
                };
            }
            Ok(None) => panic!(
                "exec output ended without an exit code; stdout {:?}, stderr {:?}",
                String::from_utf8_lossy(&out),
                String::from_utf8_lossy(&err)
            ),
            Err(_) => panic!(
                "exec did not finish within {DEADLINE:?}; stdout {:?}, stderr {:?}",
                String::from_utf8_lossy(&out),
                String::from_utf8_lossy(&err)
            ),
        }
    }
}

/// Connect to an endpoint, bounded by the deadline.
pub(crate) async fn connect(addr: SocketAddr) -> std::io::Result<tokio::net::TcpStream> {
    match timeout(DEADLINE, tokio::net::TcpStream::connect(addr)).await {
        Ok(result) => result,
        Err(_) => Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("connecting to {addr} took over {DEADLINE:?}"),
        )),
    }
}

/// `GET /` on an endpoint: the status line of the answer.
pub(crate) async fn http_get(addr: SocketAddr) -> std::io::Result<String> {
    let exchange = async {
        let mut stream = connect(addr).await?;
        stream
            .write_all(b"GET / HTTP/1.0\r\nHost: conformance\r\n\r\n")
            .await?;
        let mut answer = Vec::new();
        let mut buf = [0u8; 1024];
        while !answer.contains(&b'\n') {
            let n = stream.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            answer.extend_from_slice(&buf[..n]);
        }
        let text = String::from_utf8_lossy(&answer).into_owned();
        Ok(text.lines().next().unwrap_or_default().to_string())
    };
    match timeout(DEADLINE, exchange).await {
        Ok(result) => result,
        Err(_) => Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("GET / from {addr} took over {DEADLINE:?}"),
        )),
    }
}
