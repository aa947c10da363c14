//! End-to-end tests of the local engine with real processes. Every test
//! runs its own engine on its own temporary run directory, waits on
//! `changes()` with a deadline (no sleeps, no timing assertions) and shuts
//! its engine down, which stops every process it started; a failing test
//! still kills its processes when the engine is dropped.

use std::collections::HashSet;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use drycc_engine::{
    is_converged, Artifact, Command, Deployment, Engine, EngineError, ExecInput, ExecOutput,
    ExecRequest, Followed, Probe, ProbeAction, ProcessState, ProcessStatus, ProcessTemplate,
};
use drycc_engine_local::{BackoffPolicy, LocalConfig, LocalEngine};
use nix::errno::Errno;
use nix::sys::signal::kill;
use nix::unistd::Pid;
use tempfile::TempDir;
use tokio::time::{timeout_at, Instant};
use tokio_stream::StreamExt;

const DEADLINE: Duration = Duration::from_secs(30);
const PYTHON_WEB: &str = "exec python3 -m http.server $PORT --bind 127.0.0.1";

struct Fixture {
    dir: TempDir,
    engine: Arc<LocalEngine>,
}

fn fixture() -> Fixture {
    fixture_with(|_| {})
}

fn fixture_with(tune: impl FnOnce(&mut LocalConfig)) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let mut config = LocalConfig {
        run_dir: dir.path().join("run"),
        crash_backoff: BackoffPolicy {
            initial: Duration::from_millis(200),
            cap: Duration::from_secs(1),
            reset_after: Duration::from_secs(60),
        },
        readiness_poll: Duration::from_millis(50),
        cgroup_parent: format!(
            "drycc-test-{}",
            dir.path().file_name().unwrap().to_string_lossy()
        ),
        ..LocalConfig::default()
    };
    tune(&mut config);
    let engine = LocalEngine::new(config).unwrap();
    Fixture { dir, engine }
}

impl Fixture {
    fn template(&self, app: &str, ptype: &str, release: u32, command: &str) -> ProcessTemplate {
        ProcessTemplate {
            app: app.to_string(),
            ptype: ptype.to_string(),
            release,
            hash: drycc_model::naming::template_hash(app, ptype, release, 0),
            artifact: Artifact::Checkout {
                path: self.dir.path().to_path_buf(),
            },
            command: Command::Line(command.to_string()),
            env: [("MARK".to_string(), self.dir.path().display().to_string())]
                .into_iter()
                .collect(),
            grace_period: Duration::from_secs(5),
            readiness: None,
            liveness: None,
            cpu_millis: None,
            memory_bytes: None,
            user: None,
        }
    }

    async fn apply(&self, template: &ProcessTemplate, replicas: u32) {
        self.engine
            .apply(Deployment {
                template: template.clone(),
                replicas,
            })
            .await
            .unwrap();
    }

    /// Wait until `done` holds for the app's processes, re-checking on
    /// every change; panic with the last snapshot at the deadline.
    async fn wait_for(
        &self,
        app: &str,
        what: &str,
        done: impl Fn(&[ProcessStatus]) -> bool,
    ) -> Vec<ProcessStatus> {
        let deadline = Instant::now() + DEADLINE;
        let mut changes = self.engine.changes(None);
        loop {
            changes.borrow_and_update();
            let procs = self.engine.processes(app).await.unwrap();
            if done(&procs) {
                return procs;
            }
            if timeout_at(deadline, changes.changed()).await.is_err() {
                panic!("timed out waiting for {what}; processes: {procs:#?}");
            }
        }
    }
}

fn up(procs: &[ProcessStatus], ptype: &str) -> usize {
    procs
        .iter()
        .filter(|p| p.ptype == ptype && p.state == ProcessState::Up && p.ready)
        .count()
}

fn pid_gone(pid: u32) -> bool {
    kill(Pid::from_raw(pid as i32), None) == Err(Errno::ESRCH)
}

/// Members of a process group that are alive (zombies waiting for init to
/// reap them are dead already).
fn live_members(pgid: u32) -> Vec<u32> {
    let mut members = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some(close) = stat.rfind(')') else {
            continue;
        };
        let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
        // fields[0] is the state (field 3), fields[2] the pgid (field 5).
        if fields.get(2) == Some(&pgid.to_string().as_str()) && fields.first() != Some(&"Z") {
            members.push(pid);
        }
    }
    members
}

async fn wait_group_dead(pgid: u32) {
    let deadline = Instant::now() + DEADLINE;
    while !live_members(pgid).is_empty() {
        assert!(Instant::now() < deadline, "group {pgid} still alive");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn start_time(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let rest = &stat[stat.rfind(')').unwrap() + 1..];
    rest.split_whitespace().nth(19).unwrap().parse().unwrap()
}

async fn wait_file_exists(path: &Path) {
    let deadline = Instant::now() + DEADLINE;
    while !path.exists() {
        assert!(
            Instant::now() < deadline,
            "{} never appeared",
            path.display()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn wait_file(path: &Path) -> String {
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Ok(text) = std::fs::read_to_string(path) {
            if !text.is_empty() {
                return text;
            }
        }
        assert!(
            Instant::now() < deadline,
            "{} never appeared",
            path.display()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_scales_up_and_down_and_is_up_only_when_listening() {
    let f = fixture();
    // The pause makes the window between "spawned" and "listening" wide.
    let web = f.template("scaly", "web", 1, &format!("sleep 2; {PYTHON_WEB}"));
    f.apply(&web, 3).await;
    let starting = f
        .wait_for("scaly", "3 spawned, not listening yet", |p| {
            p.len() == 3 && p.iter().all(|p| p.pid.is_some())
        })
        .await;
    assert!(starting
        .iter()
        .any(|p| p.state == ProcessState::Starting && !p.ready));
    let procs = f.wait_for("scaly", "3 up", |p| up(p, "web") == 3).await;
    let mut ports = HashSet::new();
    for p in &procs {
        let port = p.endpoint.unwrap().port();
        assert!(ports.insert(port), "ports must differ");
        // Up means listening.
        std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        assert!(p.name.starts_with(&format!("scaly-web-{}-", web.hash)));
        assert_eq!(p.restarts, 0);
    }
    let mut sorted = procs.clone();
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    assert_eq!(sorted, procs, "sorted by type then name");

    f.apply(&web, 1).await;
    let left = f.wait_for("scaly", "1 left", |p| p.len() == 1).await;
    assert_eq!(up(&left, "web"), 1);
    for p in procs.iter().filter(|p| p.name != left[0].name) {
        wait_group_dead(p.pid.unwrap()).await;
    }
    f.engine.stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scale_down_stops_the_newest_with_sigterm() {
    let f = fixture();
    let worker = f.template(
        "victims",
        "worker",
        1,
        r#"trap 'echo term > "$MARK/$HOSTNAME"; exit 0' TERM; touch "$MARK/ready-$HOSTNAME"; while :; do sleep 0.1; done"#,
    );
    let mut names = Vec::new();
    for n in 1..=3 {
        f.apply(&worker, n).await;
        let procs = f
            .wait_for("victims", "one more up", |p| up(p, "worker") == n as usize)
            .await;
        let new: Vec<String> = procs
            .iter()
            .map(|p| p.name.clone())
            .filter(|n| !names.contains(n))
            .collect();
        assert_eq!(new.len(), 1);
        // Up comes with the spawn; the trap needs the shell to get there.
        wait_file_exists(&f.dir.path().join(format!("ready-{}", new[0]))).await;
        names.extend(new);
    }
    f.apply(&worker, 1).await;
    let left = f.wait_for("victims", "1 left", |p| p.len() == 1).await;
    assert_eq!(left[0].name, names[0], "the oldest stays");
    for victim in &names[1..] {
        assert_eq!(wait_file(&f.dir.path().join(victim)).await.trim(), "term");
    }
    assert!(!f.dir.path().join(&names[0]).exists());
    f.engine.stop_all().await;
    // Shutdown is graceful too.
    assert_eq!(
        wait_file(&f.dir.path().join(&names[0])).await.trim(),
        "term"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_ignoring_sigterm_is_killed_after_the_grace_period() {
    let f = fixture();
    let mut stubborn = f.template("stubborn", "worker", 1, "trap '' TERM; sleep 100");
    stubborn.grace_period = Duration::from_secs(1);
    f.apply(&stubborn, 1).await;
    let procs = f.wait_for("stubborn", "up", |p| up(p, "worker") == 1).await;
    let pgid = procs[0].pid.unwrap();
    // sh and its sleep child, both in the group.
    let deadline = Instant::now() + DEADLINE;
    while live_members(pgid).len() < 2 {
        assert!(Instant::now() < deadline, "sleep never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    f.apply(&stubborn, 0).await;
    let terminating = f.engine.processes("stubborn").await.unwrap();
    assert_eq!(terminating.len(), 1);
    assert_eq!(terminating[0].state, ProcessState::Terminating);
    assert!(!terminating[0].ready);
    f.wait_for("stubborn", "gone", |p| p.is_empty()).await;
    wait_group_dead(pgid).await;
    f.engine.stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_loop_backs_off_keeps_the_name_and_counts_restarts() {
    let f = fixture();
    let crashy = f.template("crashy", "worker", 1, "echo boom; exit 3");
    f.apply(&crashy, 1).await;
    let first = f.wait_for("crashy", "a process", |p| p.len() == 1).await;
    let name = first[0].name.clone();
    let seen_crashed = Arc::new(Mutex::new(false));
    let seen = Arc::clone(&seen_crashed);
    let procs = f
        .wait_for("crashy", "3 restarts", move |p| {
            if p.iter().any(|p| p.state == ProcessState::Crashed) {
                *seen.lock().unwrap() = true;
            }
            p.len() == 1 && p[0].restarts >= 3
        })
        .await;
    assert!(*seen_crashed.lock().unwrap());
    assert_eq!(procs[0].name, name, "a crash restart keeps the name");
    assert_eq!(procs[0].last_exit.as_deref(), Some("exited with code 3"));
    let logs = f.engine.logs("crashy", 100, None).await.unwrap();
    assert!(
        logs.iter()
            .filter(|l| l.source == name && l.text == "boom")
            .count()
            >= 3
    );
    assert!(logs
        .iter()
        .any(|l| l.source == "controller" && l.text.contains("crashed")));
    f.engine.stop_all().await;
}

/// Record the lowest number of ready web processes seen on any change.
fn sample_ready(f: &Fixture, app: &str) -> (Arc<Mutex<usize>>, tokio::task::JoinHandle<()>) {
    let min = Arc::new(Mutex::new(usize::MAX));
    let (engine, app, record) = (Arc::clone(&f.engine), app.to_string(), Arc::clone(&min));
    let task = tokio::spawn(async move {
        let mut changes = engine.changes(None);
        loop {
            changes.borrow_and_update();
            let procs = engine.processes(&app).await.unwrap();
            let ready = up(&procs, "web");
            {
                let mut min = record.lock().unwrap();
                *min = (*min).min(ready);
            }
            if changes.changed().await.is_err() {
                return;
            }
        }
    });
    (min, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_template_change_rolls_without_losing_ready_processes() {
    let f = fixture();
    let v1 = f.template("rolling", "web", 1, PYTHON_WEB);
    f.apply(&v1, 2).await;
    let old = f.wait_for("rolling", "v1 up", |p| up(p, "web") == 2).await;
    let (min_ready, sampler) = sample_ready(&f, "rolling");
    let v2 = f.template("rolling", "web", 2, PYTHON_WEB);
    assert_ne!(v1.hash, v2.hash);
    let deployment = Deployment {
        template: v2.clone(),
        replicas: 2,
    };
    f.engine.apply(deployment.clone()).await.unwrap();
    let new = f
        .wait_for("rolling", "v2 rolled out", |p| is_converged(&deployment, p))
        .await;
    sampler.abort();
    assert!(
        *min_ready.lock().unwrap() >= 2,
        "max unavailable 0: never fewer ready than desired"
    );
    assert!(new.iter().all(|p| p.release == 2 && p.hash == v2.hash));
    for p in &old {
        assert!(!new.iter().any(|n| n.name == p.name));
        wait_group_dead(p.pid.unwrap()).await;
    }
    f.engine.stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_process_replaces_it_under_a_new_name() {
    let f = fixture();
    let web = f.template("restarty", "web", 1, PYTHON_WEB);
    f.apply(&web, 1).await;
    let before = f.wait_for("restarty", "up", |p| up(p, "web") == 1).await;
    let (old_name, old_pid) = (before[0].name.clone(), before[0].pid.unwrap());
    let (min_ready, sampler) = sample_ready(&f, "restarty");
    f.engine
        .restart_process("restarty", &old_name)
        .await
        .unwrap();
    let after = f
        .wait_for("restarty", "the replacement alone", |p| {
            p.len() == 1 && p[0].name != old_name && up(p, "web") == 1
        })
        .await;
    sampler.abort();
    assert!(*min_ready.lock().unwrap() >= 1, "capacity never dropped");
    assert_eq!(after[0].restarts, 0);
    assert!(after[0]
        .name
        .starts_with(&format!("restarty-web-{}-", web.hash)));
    assert!(pid_gone(old_pid), "the old process is gone");
    assert!(matches!(
        f.engine
            .restart_process("restarty", "restarty-web-nope")
            .await,
        Err(EngineError::ProcessNotFound(_))
    ));
    f.engine.stop_all().await;
}

/// Collect an exec session's output until its exit code.
async fn finish(session: &mut drycc_engine::ExecSession) -> (String, String, i32) {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let deadline = Instant::now() + DEADLINE;
    loop {
        match timeout_at(deadline, session.output.recv()).await {
            Ok(Some(ExecOutput::Stdout(b))) => out.extend_from_slice(&b),
            Ok(Some(ExecOutput::Stderr(b))) => err.extend_from_slice(&b),
            Ok(Some(ExecOutput::Exit(code))) => {
                let rest = timeout_at(deadline, session.output.recv()).await;
                assert!(
                    matches!(rest, Ok(None)),
                    "Exit is the last message: {rest:?}"
                );
                return (
                    String::from_utf8_lossy(&out).into_owned(),
                    String::from_utf8_lossy(&err).into_owned(),
                    code,
                );
            }
            Ok(None) => panic!("output ended without an exit code"),
            Err(_) => panic!(
                "exec did not finish; output so far: {:?}",
                String::from_utf8_lossy(&out)
            ),
        }
    }
}

/// Read tty output until it contains `needle`.
async fn read_until(session: &mut drycc_engine::ExecSession, needle: &str) -> String {
    let mut out = Vec::new();
    let deadline = Instant::now() + DEADLINE;
    while !String::from_utf8_lossy(&out).contains(needle) {
        match timeout_at(deadline, session.output.recv()).await {
            Ok(Some(ExecOutput::Stdout(b))) => out.extend_from_slice(&b),
            other => panic!(
                "waiting for {needle:?}: {other:?}; so far {:?}",
                String::from_utf8_lossy(&out)
            ),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn argv(words: &[&str]) -> Vec<String> {
    words.iter().map(|w| w.to_string()).collect()
}

fn request(words: &[&str], tty: bool, stdin: bool) -> ExecRequest {
    ExecRequest {
        command: argv(words),
        tty,
        stdin,
        size: tty.then_some((100, 30)),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_runs_commands_in_the_process_environment() {
    let f = fixture();
    let worker = f.template("execy", "worker", 1, "exec sleep 600");
    f.apply(&worker, 1).await;
    let procs = f.wait_for("execy", "up", |p| up(p, "worker") == 1).await;
    let (name, port) = (procs[0].name.clone(), procs[0].endpoint.unwrap().port());
    let engine = &f.engine;

    let mut s = engine
        .exec("execy", &name, request(&["date"], false, false))
        .await
        .unwrap();
    let (out, _, code) = finish(&mut s).await;
    assert_eq!(code, 0);
    assert!(!out.trim().is_empty());

    let mut s = engine
        .exec(
            "execy",
            &name,
            request(&["sh", "-c", "exit 3"], false, false),
        )
        .await
        .unwrap();
    assert_eq!(finish(&mut s).await.2, 3);

    let mut s = engine
        .exec(
            "execy",
            &name,
            request(&["sh", "-c", "kill -9 $$"], false, false),
        )
        .await
        .unwrap();
    assert_eq!(finish(&mut s).await.2, 128 + 9);

    let script = "echo $PORT $HOSTNAME $MARK; pwd; echo err >&2";
    let mut s = engine
        .exec("execy", &name, request(&["sh", "-c", script], false, false))
        .await
        .unwrap();
    let (out, err, code) = finish(&mut s).await;
    assert_eq!(code, 0);
    let dir = f.dir.path().display().to_string();
    let cwd = std::fs::canonicalize(f.dir.path())
        .unwrap()
        .display()
        .to_string();
    assert_eq!(out, format!("{port} {name} {dir}\n{cwd}\n"));
    assert_eq!(err, "err\n");

    // Pipes: stdin in, end of file, output back.
    let mut s = engine
        .exec("execy", &name, request(&["cat"], false, true))
        .await
        .unwrap();
    s.input
        .send(ExecInput::Stdin(Bytes::from_static(b"abc")))
        .await
        .unwrap();
    s.input.send(ExecInput::Eof).await.unwrap();
    assert_eq!(finish(&mut s).await, ("abc".to_string(), String::new(), 0));

    // A terminal: echo, size, resize, end of file.
    let mut s = engine
        .exec("execy", &name, request(&["cat"], true, true))
        .await
        .unwrap();
    s.input
        .send(ExecInput::Stdin(Bytes::from_static(b"hello\n")))
        .await
        .unwrap();
    let echoed = read_until(&mut s, "hello").await;
    assert!(echoed.contains("hello"));
    s.input.send(ExecInput::Eof).await.unwrap();
    assert_eq!(finish(&mut s).await.2, 0);

    let mut s = engine
        .exec(
            "execy",
            &name,
            request(
                &["sh", "-c", "stty size; read x; stty size; test -t 0"],
                true,
                true,
            ),
        )
        .await
        .unwrap();
    read_until(&mut s, "30 100").await;
    s.input
        .send(ExecInput::Resize {
            width: 120,
            height: 40,
        })
        .await
        .unwrap();
    s.input
        .send(ExecInput::Stdin(Bytes::from_static(b"go\n")))
        .await
        .unwrap();
    read_until(&mut s, "40 120").await;
    assert_eq!(finish(&mut s).await.2, 0);

    // Dropping the session kills what it runs.
    let mut s = engine
        .exec(
            "execy",
            &name,
            request(&["sh", "-c", "echo $$; exec sleep 100"], false, false),
        )
        .await
        .unwrap();
    let pid: u32 = match s.output.recv().await {
        Some(ExecOutput::Stdout(b)) => String::from_utf8_lossy(&b).trim().parse().unwrap(),
        other => panic!("{other:?}"),
    };
    drop(s);
    wait_group_dead(pid).await;

    assert!(matches!(
        engine
            .exec(
                "execy",
                "execy-worker-nope",
                request(&["date"], false, false)
            )
            .await,
        Err(EngineError::ProcessNotFound(_))
    ));
    assert!(matches!(
        engine
            .exec("execy", &name, request(&[], false, false))
            .await,
        Err(EngineError::Invalid(_))
    ));
    // A command that cannot be started ends as in a shell: one line on
    // stderr, 127 when missing, 126 when not executable.
    let data = f.dir.path().join("data.txt");
    std::fs::write(&data, "not a program").unwrap();
    let data = data.display().to_string();
    for (words, code) in [
        (vec!["/no/such/program"], 127),
        (vec!["no-such-program-anywhere", "x"], 127),
        (vec![data.as_str()], 126),
    ] {
        for tty in [false, true] {
            let mut session = engine
                .exec("execy", &name, request(&words, tty, false))
                .await
                .unwrap();
            let (out, err, exit) = finish(&mut session).await;
            assert_eq!(exit, code, "{words:?} tty={tty}: {out}{err}");
            assert_eq!(
                err.lines().count(),
                1,
                "{words:?}: one line on stderr: {err:?}"
            );
            assert!(
                err.starts_with(&format!("cannot run {}: ", words[0])) && err.ends_with('\n'),
                "{err:?}"
            );
        }
    }
    f.engine.stop_all().await;
}

/// `close` ends every task of the engine, exec sessions too: a session
/// whose client neither reads nor writes does not hold it up, its command
/// is killed, and its output channel ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_ends_the_exec_sessions_it_kills() {
    let f = fixture();
    let worker = f.template("closeexec", "worker", 1, "exec sleep 600");
    f.apply(&worker, 1).await;
    let procs = f
        .wait_for("closeexec", "up", |p| up(p, "worker") == 1)
        .await;
    let script = "echo $$; exec sleep 600";
    let mut session = f
        .engine
        .exec(
            "closeexec",
            &procs[0].name,
            request(&["sh", "-c", script], false, true),
        )
        .await
        .unwrap();
    let pid = match timeout_at(Instant::now() + DEADLINE, session.output.recv()).await {
        Ok(Some(ExecOutput::Stdout(b))) => String::from_utf8_lossy(&b).trim().parse::<u32>(),
        other => panic!("expected the session's pid, got {other:?}"),
    };
    let pid = pid.expect("a pid on the first line");
    timeout_at(Instant::now() + DEADLINE, f.engine.close())
        .await
        .expect("close returns with a session open");
    wait_group_dead(pid).await;
    let deadline = Instant::now() + DEADLINE;
    loop {
        match timeout_at(deadline, session.output.recv()).await {
            Ok(None) => break,
            Ok(Some(_)) => continue,
            Err(_) => panic!("the session's output never ended"),
        }
    }
    assert!(alive(procs[0].pid.unwrap()), "the process itself runs on");
    let engine = LocalEngine::new(f.engine.config().clone()).unwrap();
    engine.stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_refuses_a_process_that_is_not_running() {
    let f = fixture_with(|c| {
        // Long enough to see the crash and ask in between.
        c.crash_backoff.initial = Duration::from_secs(30);
        c.crash_backoff.cap = Duration::from_secs(30);
    });
    let crashy = f.template("crashexec", "worker", 1, "exit 1");
    f.apply(&crashy, 1).await;
    let procs = f
        .wait_for("crashexec", "crashed", |p| {
            p.len() == 1 && p[0].state == ProcessState::Crashed
        })
        .await;
    match f
        .engine
        .exec(
            "crashexec",
            &procs[0].name,
            request(&["date"], false, false),
        )
        .await
    {
        Err(EngineError::Invalid(message)) => assert!(message.contains("not running")),
        other => panic!("expected Invalid, got {:?}", other.map(|_| ())),
    }
    f.engine.stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_decide_readiness_and_liveness() {
    let f = fixture();
    let probe = |action| Probe {
        action,
        initial_delay: Duration::ZERO,
        period: Duration::from_millis(50),
        timeout: Duration::from_secs(1),
        failure_threshold: 1,
    };
    // Exec readiness on a worker: up only once the file exists.
    let mut gated = f.template("probing", "worker", 1, "exec sleep 600");
    gated.readiness = Some(probe(ProbeAction::Exec {
        command: argv(&["sh", "-c", "test -f \"$MARK/go-$HOSTNAME\""]),
    }));
    f.apply(&gated, 1).await;
    let procs = f
        .wait_for("probing", "spawned", |p| p.len() == 1 && p[0].pid.is_some())
        .await;
    assert_eq!(procs[0].state, ProcessState::Starting);
    std::fs::write(f.dir.path().join(format!("go-{}", procs[0].name)), "").unwrap();
    f.wait_for("probing", "ready", |p| up(p, "worker") == 1)
        .await;

    // HTTP readiness on a web process.
    let mut web = f.template("probing", "web", 1, PYTHON_WEB);
    web.readiness = Some(probe(ProbeAction::Http {
        path: "/".to_string(),
        port: None,
    }));
    f.apply(&web, 1).await;
    f.wait_for("probing", "web ready", |p| up(p, "web") == 1)
        .await;

    // A failing liveness probe restarts the process.
    let mut sick = f.template("probing", "sick", 1, "exec sleep 600");
    sick.grace_period = Duration::from_secs(1);
    sick.liveness = Some(probe(ProbeAction::Tcp { port: Some(1) }));
    f.apply(&sick, 1).await;
    let procs = f
        .wait_for("probing", "a liveness restart", |p| {
            p.iter().any(|p| p.ptype == "sick" && p.restarts >= 1)
        })
        .await;
    let sick = procs.iter().find(|p| p.ptype == "sick").unwrap();
    assert_eq!(sick.last_exit.as_deref(), Some("liveness probe failed"));
    f.engine.stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_are_files_read_in_order_and_followable() {
    let f = fixture();
    let mut follow = f.engine.follow_logs("chatty");
    let chatty = f.template(
        "chatty",
        "worker",
        1,
        "for i in 1 2 3 4 5 6 7 8; do echo line $i; done; echo oops >&2; exec sleep 600",
    );
    f.apply(&chatty, 1).await;
    let procs = f.wait_for("chatty", "up", |p| up(p, "worker") == 1).await;
    let name = procs[0].name.clone();
    let deadline = Instant::now() + DEADLINE;
    loop {
        let Followed::Line(line) = timeout_at(deadline, follow.next()).await.unwrap().unwrap()
        else {
            panic!("a follower of a few lines fell behind");
        };
        if line.text == "oops" {
            assert_eq!(line.source, name);
            assert_eq!(line.app, "chatty");
            break;
        }
    }
    let logs = f.engine.logs("chatty", 100, None).await.unwrap();
    let texts: Vec<&str> = logs.iter().map(|l| l.text.as_str()).collect();
    assert_eq!(texts[5..], ["line 6", "line 7", "line 8", "oops"]);
    assert_eq!(logs.len(), 9);
    assert!(logs.iter().all(|l| l.source == name));
    let two = f.engine.logs("chatty", 2, None).await.unwrap();
    assert_eq!(two[1].text, "oops");
    let own = f.engine.logs("chatty", 100, Some(&name)).await.unwrap();
    assert_eq!(own.len(), 9);
    assert!(f.engine.logs("nobody", 2, None).await.unwrap().is_empty());
    f.engine.stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_file_stays_bounded_keeping_the_newest_output_in_order() {
    const BOUND: u64 = 64 * 1024;
    let f = fixture_with(|c| c.log_file_bytes = BOUND);
    // Ten bursts of about 110 KB (1.1 MB in all), then quiet.
    let noisy = f.template(
        "noisy",
        "worker",
        1,
        "for r in 0 1 2 3 4 5 6 7 8 9; do seq $((r * 20000 + 1)) $((r * 20000 + 20000)); sleep 0.05; done; exec sleep 600",
    );
    f.apply(&noisy, 1).await;
    let procs = f.wait_for("noisy", "up", |p| up(p, "worker") == 1).await;
    let deadline = Instant::now() + DEADLINE;
    loop {
        let logs = f.engine.logs("noisy", 1, None).await.unwrap();
        if logs.first().is_some_and(|l| l.text == "200000") {
            break;
        }
        assert!(Instant::now() < deadline, "last line {logs:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let file = f
        .dir
        .path()
        .join("run/logs/noisy")
        .join(format!("{}.log", procs[0].name));
    let size = std::fs::metadata(&file).unwrap().len();
    // The bound plus at most what came between two looks at the file.
    assert!(
        size < 600 * 1024,
        "{size} bytes kept of about 1.1 MB written"
    );
    let kept = f.engine.logs("noisy", 1_000_000, None).await.unwrap();
    assert_eq!(kept.last().unwrap().text, "200000");
    assert!(kept.len() < 100_000, "{} lines kept", kept.len());
    // The kept lines are the newest ones, in order.
    let numbers: Vec<u32> = kept.iter().map(|l| l.text.parse().unwrap()).collect();
    assert!(numbers.windows(2).all(|w| w[1] == w[0] + 1), "in order");
    f.engine.stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_a_type_or_an_app_stops_its_processes() {
    let f = fixture();
    let web = f.template("removal", "web", 1, PYTHON_WEB);
    let worker = f.template("removal", "worker", 1, "exec sleep 600");
    f.apply(&web, 1).await;
    f.apply(&worker, 2).await;
    let procs = f
        .wait_for("removal", "all up", |p| {
            up(p, "web") == 1 && up(p, "worker") == 2
        })
        .await;
    f.engine.remove_type("removal", "worker").await.unwrap();
    let left = f
        .wait_for("removal", "workers gone", |p| {
            p.iter().all(|p| p.ptype == "web")
        })
        .await;
    assert_eq!(up(&left, "web"), 1);
    f.engine.remove_app("removal").await.unwrap();
    f.wait_for("removal", "all gone", |p| p.is_empty()).await;
    for p in &procs {
        wait_group_dead(p.pid.unwrap()).await;
    }
    assert!(f.engine.logs("removal", 10, None).await.unwrap().is_empty());
    f.engine.stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_all_leaves_no_process_and_no_record() {
    let f = fixture();
    let web = f.template("closing", "web", 1, PYTHON_WEB);
    let worker = f.template(
        "closing",
        "worker",
        1,
        "trap 'exit 0' TERM; while :; do sleep 0.1; done",
    );
    f.apply(&web, 2).await;
    f.apply(&worker, 3).await;
    let procs = f
        .wait_for("closing", "all up", |p| {
            up(p, "web") == 2 && up(p, "worker") == 3
        })
        .await;
    let run_dir = f.engine.config().run_dir.clone();
    assert_eq!(records(&run_dir), 5);
    f.engine.stop_all().await;
    assert!(f.engine.processes("closing").await.unwrap().is_empty());
    for p in &procs {
        wait_group_dead(p.pid.unwrap()).await;
    }
    assert_eq!(records(&run_dir), 0);
    assert!(matches!(
        f.engine
            .apply(Deployment {
                template: web,
                replicas: 1
            })
            .await,
        Err(EngineError::Unavailable { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_engine_kills_the_exec_sessions_of_a_crashed_one() {
    let dir = tempfile::tempdir().unwrap();
    let run_dir = dir.path().join("run");
    std::fs::create_dir_all(&run_dir).unwrap();
    let spawn_leaked = || {
        use std::os::unix::process::CommandExt;
        std::process::Command::new("sleep")
            .arg("100")
            .process_group(0)
            .spawn()
            .unwrap()
    };
    // What a crashed controller leaves: a live group and its pid file.
    let mut orphan = spawn_leaked();
    let pid = orphan.id();
    std::fs::write(
        run_dir.join("leaky-web-bcdfghjkl-bcdfg.pid"),
        format!("{pid} {}\n", start_time(pid)),
    )
    .unwrap();
    // A pid file whose pid now belongs to another process (other start
    // time) must not kill that process.
    let mut bystander = spawn_leaked();
    let bystander_pid = bystander.id();
    std::fs::write(
        run_dir.join("leaky-web-bcdfghjkl-cdfgh.pid"),
        format!("{bystander_pid} {}\n", start_time(bystander_pid) + 1),
    )
    .unwrap();

    let engine = LocalEngine::new(LocalConfig {
        run_dir: run_dir.clone(),
        ..LocalConfig::default()
    })
    .unwrap();
    let status = tokio::task::spawn_blocking(move || orphan.wait().unwrap())
        .await
        .unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(9), "the orphan was killed");
    assert!(
        bystander.try_wait().unwrap().is_none(),
        "the bystander lives"
    );
    bystander.kill().unwrap();
    bystander.wait().unwrap();
    let left: Vec<_> = std::fs::read_dir(&run_dir)
        .unwrap()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "pid"))
        .collect();
    assert!(left.is_empty(), "stale pid files are removed");

    // One run directory, one engine.
    assert!(LocalEngine::new(LocalConfig {
        run_dir: run_dir.clone(),
        ..LocalConfig::default()
    })
    .is_err());
    engine.stop_all().await;
}

/// The process records in a run directory.
fn records(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
        .count()
}

fn alive(pid: u32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Not gone, not a zombie.
    stat.rsplit_once(')')
        .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z'))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_shows_what_really_runs() {
    let f = fixture();
    let direct = f.template("argvs", "direct", 1, "exec sleep 600");
    let shell = f.template("argvs", "shell", 1, "sleep 600 && true");
    f.apply(&direct, 1).await;
    f.apply(&shell, 1).await;
    let procs = f
        .wait_for("argvs", "up", |p| {
            up(p, "direct") == 1 && up(p, "shell") == 1
        })
        .await;
    let argv = |ptype: &str| {
        procs
            .iter()
            .find(|p| p.ptype == ptype)
            .unwrap()
            .argv
            .clone()
    };
    let started = argv("direct");
    assert!(
        started[0].starts_with('/') && started[0].ends_with("/sleep"),
        "{started:?}"
    );
    assert_eq!(&started[1..], ["600"]);
    assert_eq!(argv("shell"), ["/bin/sh", "-c", "sleep 600 && true"]);
    // Adopted by the next engine: as the kernel shows it.
    let config = f.engine.config().clone();
    f.engine.close().await;
    drop(f.engine);
    let engine = LocalEngine::new(config).unwrap();
    let next = Fixture { dir: f.dir, engine };
    let adopted = next
        .wait_for("argvs", "adopted", |p| {
            up(p, "direct") == 1 && up(p, "shell") == 1
        })
        .await;
    let direct = adopted.iter().find(|p| p.ptype == "direct").unwrap();
    assert_eq!(direct.argv, ["sleep", "600"]);
    next.engine.stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_run_dir_is_removed_once_no_process_record_is_left() {
    let logs = tempfile::tempdir().unwrap();
    let log_dir = logs.path().to_path_buf();
    // Nothing ran: a close leaves nothing behind.
    let idle = fixture_with(|c| c.log_dir = Some(log_dir.clone()));
    let config = idle.engine.config().clone();
    assert!(config.run_dir.join("engine.lock").exists());
    idle.engine.close().await;
    assert!(!config.run_dir.exists(), "an idle run dir is removed");

    // A running process: its record is kept for the next engine...
    let f = fixture_with(|c| c.log_dir = Some(log_dir.clone()));
    let worker = f.template("dirty", "worker", 1, "exec sleep 600");
    f.apply(&worker, 1).await;
    let procs = f.wait_for("dirty", "up", |p| up(p, "worker") == 1).await;
    let config = f.engine.config().clone();
    f.engine.close().await;
    drop(f.engine);
    assert_eq!(
        records(&config.run_dir),
        1,
        "the record stays to be adopted"
    );
    assert!(alive(procs[0].pid.unwrap()));
    // ...which removes the directory once it stopped every process.
    let next = LocalEngine::new(config.clone()).unwrap();
    next.stop_all().await;
    wait_group_dead(procs[0].pid.unwrap()).await;
    assert!(!config.run_dir.exists(), "stop_all leaves no run dir");
    drop(f.dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_engine_leaves_its_processes_to_the_next_which_adopts_them() {
    let f = fixture();
    let web = f.template("kept", "web", 1, PYTHON_WEB);
    let worker = f.template("kept", "worker", 1, "exec sleep 600");
    f.apply(&web, 2).await;
    f.apply(&worker, 2).await;
    let before = f
        .wait_for("kept", "all up", |p| {
            up(p, "web") == 2 && up(p, "worker") == 2
        })
        .await;
    let config = f.engine.config().clone();
    f.engine.close().await;
    drop(f.engine);
    for p in &before {
        assert!(alive(p.pid.unwrap()), "{} runs on", p.name);
    }
    assert_eq!(records(&config.run_dir), 4);

    let engine = LocalEngine::new(config).unwrap();
    let next = Fixture { dir: f.dir, engine };
    let after = next
        .wait_for("kept", "adopted and up", |p| {
            up(p, "web") == 2 && up(p, "worker") == 2
        })
        .await;
    let key = |p: &ProcessStatus| (p.name.clone(), p.pid, p.endpoint, p.restarts, p.started);
    let mut was: Vec<_> = before.iter().map(key).collect();
    let mut now: Vec<_> = after.iter().map(key).collect();
    was.sort();
    now.sort();
    assert_eq!(
        was, now,
        "same names, pids, ports, restarts and start times"
    );
    // Declaring the same deployments changes nothing.
    next.apply(&web, 2).await;
    next.apply(&worker, 2).await;
    let same = next.engine.processes("kept").await.unwrap();
    assert_eq!(same.iter().map(key).collect::<Vec<_>>().len(), 4);
    assert!(same.iter().all(|p| before.iter().any(|b| b.pid == p.pid)));

    // An adopted process that dies is restarted like any other.
    let victim = after.iter().find(|p| p.ptype == "worker").unwrap().clone();
    kill(
        Pid::from_raw(victim.pid.unwrap() as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let restarted = next
        .wait_for("kept", "victim restarted", |p| {
            p.iter().any(|p| {
                p.name == victim.name && p.restarts == 1 && p.pid.is_some() && p.pid != victim.pid
            }) && up(p, "worker") == 2
        })
        .await;
    let again = restarted.iter().find(|p| p.name == victim.name).unwrap();
    assert_eq!(
        again.last_exit.as_deref(),
        Some("exited (status unknown: started by a previous controller)")
    );
    next.engine.stop_all().await;
    for p in before.iter().chain(&restarted) {
        wait_group_dead(p.pid.unwrap()).await;
    }
    assert_eq!(records(&next.engine.config().run_dir), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_whose_pid_was_never_recorded_is_found_and_adopted() {
    let f = fixture();
    let worker = f.template("unrecorded", "worker", 1, "exec sleep 600");
    f.apply(&worker, 1).await;
    let before = f
        .wait_for("unrecorded", "up", |p| up(p, "worker") == 1)
        .await;
    let config = f.engine.config().clone();
    f.engine.close().await;
    drop(f.engine);
    // What a controller that died between the spawn and the second write
    // of the record leaves: the record of a spawn without its pid.
    let path = config.run_dir.join(format!("{}.json", before[0].name));
    let mut record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    record["pid"] = 0.into();
    record["start_time"] = 0.into();
    std::fs::write(&path, serde_json::to_vec(&record).unwrap()).unwrap();

    let engine = LocalEngine::new(config).unwrap();
    let next = Fixture { dir: f.dir, engine };
    let after = next
        .wait_for("unrecorded", "adopted", |p| up(p, "worker") == 1)
        .await;
    assert_eq!(
        after[0].pid, before[0].pid,
        "the same process, not a second one"
    );
    assert_eq!(after[0].restarts, 0);
    let record: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(
        record["pid"],
        before[0].pid.unwrap(),
        "the record names it again"
    );
    next.engine.stop_all().await;
    wait_group_dead(before[0].pid.unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_that_died_while_no_engine_ran_is_restarted_under_its_name() {
    let f = fixture();
    let worker = f.template("lapsed", "worker", 1, "exec sleep 600");
    f.apply(&worker, 2).await;
    let before = f.wait_for("lapsed", "up", |p| up(p, "worker") == 2).await;
    let config = f.engine.config().clone();
    f.engine.close().await;
    drop(f.engine);
    let victim = before[0].clone();
    kill(
        Pid::from_raw(victim.pid.unwrap() as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    wait_group_dead(victim.pid.unwrap()).await;

    let engine = LocalEngine::new(config).unwrap();
    let next = Fixture { dir: f.dir, engine };
    let after = next
        .wait_for("lapsed", "restarted", |p| {
            up(p, "worker") == 2 && p.iter().any(|p| p.name == victim.name && p.restarts == 1)
        })
        .await;
    let survivor = after.iter().find(|p| p.name == before[1].name).unwrap();
    assert_eq!(survivor.pid, before[1].pid);
    assert_eq!(survivor.restarts, 0);
    let revived = after.iter().find(|p| p.name == victim.name).unwrap();
    assert_ne!(revived.pid, victim.pid);
    next.engine.stop_all().await;
    for p in before.iter().chain(&after) {
        wait_group_dead(p.pid.unwrap()).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ports_come_from_the_process_range_and_a_taken_port_is_replaced() {
    // A range of ports the kernel does not hand out for bind(0) here.
    let range = drycc_engine_local::default_process_ports(drycc_engine_local::ephemeral_ports());
    let f = fixture_with(|c| {
        c.process_ports = range.clone();
        c.crash_backoff.initial = Duration::from_secs(1);
    });
    let worker = f.template("ported", "worker", 1, "sleep 0.2; exit 1");
    f.apply(&worker, 1).await;
    let crashed = f
        .wait_for("ported", "first crash", |p| {
            p.len() == 1 && p[0].restarts == 1 && p[0].pid.is_none()
        })
        .await;
    let first = crashed[0].endpoint.unwrap().port();
    assert!(range.contains(&first), "{first} in {range:?}");
    // Someone else takes the port during the back-off.
    let _squatter = std::net::TcpListener::bind(("127.0.0.1", first)).unwrap();
    let moved = f
        .wait_for("ported", "restarted on another port", |p| {
            p.len() == 1 && p[0].pid.is_some() && p[0].endpoint.map(|e| e.port()) != Some(first)
        })
        .await;
    assert!(range.contains(&moved[0].endpoint.unwrap().port()));
    assert_eq!(moved[0].name, crashed[0].name);
    let events = f
        .engine
        .logs("ported", 100, Some("controller"))
        .await
        .unwrap();
    assert!(
        events.iter().any(|l| l
            .text
            .contains(&format!("port {first} is taken by another program"))),
        "{events:?}"
    );
    f.engine.stop_all().await;
}

/// Whether limits can be enforced here; as root they must be.
fn limits_enforced(f: &Fixture) -> bool {
    match f.engine.capabilities().limits {
        Ok(()) => true,
        Err(reason) => {
            assert!(
                !nix::unistd::geteuid().is_root(),
                "root, but limits are not enforced: {reason}"
            );
            eprintln!("limits are not enforced here ({reason}); nothing to test");
            false
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_hold_usage_is_measured_and_an_oom_kill_is_named() {
    let f = fixture();
    if !limits_enforced(&f) {
        return;
    }
    let mut busy = f.template("limited", "busy", 1, "while :; do :; done");
    busy.cpu_millis = Some(200);
    let mut greedy = f.template(
        "limited",
        "greedy",
        1,
        "exec python3 -c \"b = bytearray(256 * 1024 * 1024); b[::4096] = b'x' * len(b[::4096])\"",
    );
    greedy.memory_bytes = Some(32 * 1024 * 1024);
    f.apply(&busy, 1).await;
    f.apply(&greedy, 1).await;
    let procs = f
        .wait_for("limited", "an OOM kill", |p| {
            p.iter()
                .any(|p| p.ptype == "greedy" && p.last_exit.as_deref() == Some("OOMKilled"))
        })
        .await;
    let greedy_name = &procs.iter().find(|p| p.ptype == "greedy").unwrap().name;
    // The event follows the status change.
    let deadline = Instant::now() + DEADLINE;
    loop {
        let events = f
            .engine
            .logs("limited", 100, Some("controller"))
            .await
            .unwrap();
        let oom = format!("{greedy_name} crashed: OOMKilled");
        if events.iter().any(|l| l.text.starts_with(&oom)) {
            break;
        }
        assert!(Instant::now() < deadline, "{events:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Two readings a second apart: the busy loop is held to about 200m.
    assert!(f
        .engine
        .usage("limited")
        .await
        .unwrap()
        .iter()
        .all(|u| u.cpu_millis.is_none()));
    tokio::time::sleep(Duration::from_secs(1)).await;
    let usage = f.engine.usage("limited").await.unwrap();
    let busy_usage = usage.iter().find(|u| u.ptype == "busy").unwrap();
    let millis = busy_usage.cpu_millis.unwrap();
    assert!((100..=300).contains(&millis), "{millis}m");
    assert!(
        busy_usage.memory_bytes.is_some(),
        "memory is read from its group"
    );
    f.engine.stop_all().await;
    // Nothing left behind: not the processes' groups, not the app's, not
    // the engine's own parent group.
    let parent = f.engine.config().cgroup_parent.clone();
    assert_eq!(cgroup_dirs_named(&parent), Vec::<std::path::PathBuf>::new());
}

/// Directories called `name` in the control group hierarchies (three
/// levels down, where this machine's groups live).
fn cgroup_dirs_named(name: &str) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let mut level = vec![std::path::PathBuf::from("/sys/fs/cgroup")];
    for _ in 0..4 {
        let mut next = Vec::new();
        for dir in level {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                if !path.is_dir() || path.is_symlink() {
                    continue;
                }
                if entry.file_name() == name {
                    found.push(path);
                } else if !entry.file_name().to_string_lossy().starts_with("drycc-") {
                    next.push(path);
                }
            }
        }
        level = next;
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_engine_kills_its_processes() {
    let f = fixture();
    let worker = f.template("dropped", "worker", 1, "exec sleep 600");
    f.apply(&worker, 2).await;
    let procs = f.wait_for("dropped", "up", |p| up(p, "worker") == 2).await;
    let Fixture { dir, engine } = f;
    drop(engine);
    for p in &procs {
        wait_group_dead(p.pid.unwrap()).await;
    }
    drop(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_deployments_are_refused() {
    let f = fixture();
    let mut bad = f.template("invalid", "web", 1, "   ");
    assert!(matches!(
        f.engine
            .apply(Deployment {
                template: bad.clone(),
                replicas: 1
            })
            .await,
        Err(EngineError::Invalid(_))
    ));
    bad.command = Command::Line("exec sleep 1".to_string());
    bad.ptype = String::new();
    assert!(f
        .engine
        .apply(Deployment {
            template: bad,
            replicas: 1
        })
        .await
        .is_err());
    f.engine.stop_all().await;
}
