//! The suite: one function per behaviour of the engine contract (see the
//! trait's documentation in `drycc_engine`), each taking a fresh harness.
//! [`conformance_tests!`](crate::conformance_tests) makes a test of each.

use std::collections::HashSet;
use std::time::Duration;

use bytes::Bytes;
use drycc_engine::{
    is_converged, Command, Deployment, EngineError, ExecInput, ExecOutput, ExecRequest, Followed,
    ProcessState, ProcessStatus,
};
use tokio::sync::watch;
use tokio::time::{timeout_at, Instant};
use tokio_stream::StreamExt;

use crate::support::{
    connect, finish_exec, http_get, names, next_change, ready, Run, DEADLINE, IDLE, POLL,
};
use crate::Harness;

/// Web 0 -> 3 -> 1 -> 0 next to 2 workers, converged at each step; a web
/// process is ready (and up) only once its endpoint accepts connections,
/// and answers HTTP there.
pub async fn scale_up_and_down(h: &dyn Harness) {
    let mut run = Run::new(h);
    let app = run.app("scale");
    // The pause keeps a started web process from listening for a while: an
    // engine that called it ready at its start would be found out.
    let web = run.template(&app, "web", 1, &format!("sleep 1; {}", h.web_script()));
    let worker = run.template(&app, "worker", 1, IDLE);
    let web3 = run.apply(&web, 3).await;
    let workers = run.apply(&worker, 2).await;

    // Every snapshot on the way up: a ready web process accepts a
    // connection (nothing is being stopped, so it still listens).
    let deadline = Instant::now() + DEADLINE;
    let mut changes = run.engine.changes(Some(&app));
    let procs = loop {
        changes.borrow_and_update();
        let procs = run.processes(&app).await;
        for p in procs.iter().filter(|p| p.ptype == "web" && p.ready) {
            assert_eq!(p.state, ProcessState::Up, "ready means up: {p:#?}");
            let Some(endpoint) = p.endpoint else {
                panic!("a ready web process has an endpoint: {p:#?}");
            };
            if !h.runs_processes() {
                continue;
            }
            if let Err(e) = connect(endpoint).await {
                panic!(
                    "{} is ready but {endpoint} refuses connections: {e}",
                    p.name
                );
            }
        }
        if is_converged(&web3, &procs) && is_converged(&workers, &procs) {
            break procs;
        }
        next_change(
            &mut changes,
            deadline,
            &app,
            "3 web and 2 workers up",
            &procs,
        )
        .await;
    };
    let order: Vec<(&str, &str)> = procs
        .iter()
        .map(|p| (p.ptype.as_str(), p.name.as_str()))
        .collect();
    let mut sorted = order.clone();
    sorted.sort();
    assert_eq!(order, sorted, "processes are sorted by type then name");
    if !h.runs_processes() {
        crate::skipped(
            "scale_up_and_down (connections to and HTTP from the endpoints)",
            "the node is simulated: nothing listens",
        );
    }
    let mut endpoints = HashSet::new();
    for p in &procs {
        let template = if p.ptype == "web" { &web } else { &worker };
        assert_eq!((p.app.as_str(), p.release), (app.as_str(), 1), "{p:#?}");
        assert_eq!(p.hash, template.hash, "{p:#?}");
        // Kubernetes: the name carries the pod-template-hash instead.
        assert!(
            !h.names_carry_the_hash() || p.name.contains(&template.hash),
            "the template hash is part of the name: {p:#?}"
        );
        assert_eq!(p.restarts, 0, "{p:#?}");
        if p.ptype == "web" {
            let Some(endpoint) = p.endpoint else {
                panic!("a web process has an endpoint: {p:#?}");
            };
            assert!(endpoints.insert(endpoint), "endpoints differ: {procs:#?}");
            if !h.runs_processes() {
                continue;
            }
            match http_get(endpoint).await {
                Ok(status) => assert!(
                    status.starts_with("HTTP/1."),
                    "{} answers HTTP at {endpoint}: {status:?}",
                    p.name
                ),
                Err(e) => panic!("GET / from {} at {endpoint}: {e}", p.name),
            }
        }
    }
    let workers_before = names(&procs, "worker");
    let webs_before = names(&procs, "web");

    let web1 = run.apply(&web, 1).await;
    let procs = run.converged("web scaled to 1", &[&web1, &workers]).await;
    let kept = names(&procs, "web");
    assert!(
        webs_before.contains(&kept[0]),
        "scaling down keeps processes, it does not replace them: {kept:?} of {webs_before:?}"
    );
    assert_eq!(
        names(&procs, "worker"),
        workers_before,
        "workers are untouched"
    );

    let web0 = run.apply(&web, 0).await;
    let procs = run.converged("web scaled to 0", &[&web0, &workers]).await;
    assert_eq!(
        names(&procs, "worker"),
        workers_before,
        "workers are untouched"
    );
    run.finish().await;
}

/// Scaling down picks the newest processes and stops them with SIGTERM,
/// which they can handle: each victim says so in its output.
pub async fn scale_down_terminates_the_newest_with_sigterm(h: &dyn Harness) {
    if !h.runs_processes() {
        crate::skipped(
            "scale_down_terminates_the_newest_with_sigterm",
            "needs running processes (SIGTERM handled, output read back) and the node is simulated",
        );
        return;
    }
    let mut run = Run::new(h);
    let app = run.app("victims");
    let worker = run.template(
        &app,
        "worker",
        1,
        "trap 'echo got TERM; exit 0' TERM; echo ready; while :; do sleep 1 & wait $!; done",
    );
    // One at a time, so that "newest" is plain.
    let mut started: Vec<String> = Vec::new();
    for n in 1..=3 {
        let deployment = run.apply(&worker, n).await;
        let procs = run
            .converged(&format!("{n} workers up"), &[&deployment])
            .await;
        let new: Vec<String> = names(&procs, "worker")
            .into_iter()
            .filter(|name| !started.contains(name))
            .collect();
        assert_eq!(
            new.len(),
            1,
            "one more process, the others kept: {procs:#?}"
        );
        run.wait_line(&app, &new[0], "ready").await;
        started.extend(new);
    }

    let mut follow = run.engine.follow_logs(&app);
    let one = run.apply(&worker, 1).await;
    let left = run.converged("scaled down to 1", &[&one]).await;
    assert_eq!(
        left[0].name, started[0],
        "the oldest stays, the newest go: started {started:?}"
    );

    // Each victim's "got TERM", seen live or, once it is over, in the logs.
    let mut pending: HashSet<&str> = started[1..].iter().map(String::as_str).collect();
    let deadline = Instant::now() + DEADLINE;
    while !pending.is_empty() {
        match timeout_at(deadline, tokio::time::timeout(POLL * 5, follow.next())).await {
            Err(_) => panic!("no \"got TERM\" from {pending:?} within {DEADLINE:?}"),
            Ok(Ok(Some(Followed::Line(line)))) => {
                if line.text == "got TERM" {
                    pending.remove(line.source.as_str());
                }
            }
            Ok(Ok(Some(Followed::Skipped(_)))) | Ok(Err(_)) => {
                let victims: Vec<String> = pending.iter().map(|s| s.to_string()).collect();
                for victim in victims {
                    let logs = run.logs(&app, 100, Some(&victim)).await;
                    if logs.iter().any(|l| l.text == "got TERM") {
                        pending.remove(victim.as_str());
                    }
                }
            }
            Ok(Ok(None)) => panic!("the log stream of {app} ended while the engine runs"),
        }
    }
    run.finish().await;
}

/// A process that ignores SIGTERM is killed once its grace period is over.
pub async fn sigterm_ignored_is_killed_after_the_grace_period(h: &dyn Harness) {
    if !h.runs_processes() {
        crate::skipped(
            "sigterm_ignored_is_killed_after_the_grace_period",
            "needs running processes (a trap ignoring SIGTERM) and the node is simulated",
        );
        return;
    }
    let mut run = Run::new(h);
    let app = run.app("stubborn");
    let mut stubborn = run.template(
        &app,
        "worker",
        1,
        "trap '' TERM; echo ready; while :; do sleep 1; done",
    );
    stubborn.grace_period = Duration::from_secs(1);
    let one = run.apply(&stubborn, 1).await;
    let procs = run.converged("the stubborn process up", &[&one]).await;
    run.wait_line(&app, &procs[0].name, "ready").await;
    run.apply(&stubborn, 0).await;
    run.wait_for(&app, "the stubborn process killed", |p| p.is_empty())
        .await;
    run.finish().await;
}

/// Samples of a rollout: the fewest ready web processes in any snapshot.
struct Capacity {
    min_ready: usize,
    snapshots: usize,
}

fn watch_capacity(run: &Run<'_>, app: &str) -> crate::support::Watcher<Capacity> {
    let initial = Capacity {
        min_ready: usize::MAX,
        snapshots: 0,
    };
    run.watch(app, initial, |c, procs| {
        c.min_ready = c.min_ready.min(ready(procs, "web"));
        c.snapshots += 1;
    })
}

/// A new template (release) replaces every process, one at a time: never
/// fewer ready web processes than desired (max unavailable 0), and only
/// processes of the new template at the end.
pub async fn template_change_rolls_with_zero_unavailable(h: &dyn Harness) {
    let mut run = Run::new(h);
    let app = run.app("rolling");
    let v1 = run.template(&app, "web", 1, &h.web_script());
    let d1 = run.apply(&v1, 2).await;
    let old = run.converged("v1 up", &[&d1]).await;
    let v2 = run.template(&app, "web", 2, &h.web_script());
    assert_ne!(v1.hash, v2.hash, "harness: a new release has a new hash");

    let capacity = watch_capacity(&run, &app);
    let d2 = run.apply(&v2, 2).await;
    let new = run.converged("v2 rolled out", &[&d2]).await;
    let capacity = capacity.stop().await;
    assert!(capacity.snapshots > 0);
    assert!(
        capacity.min_ready >= 2,
        "max unavailable 0: {} ready web processes at one point of the rollout",
        capacity.min_ready
    );
    for p in &new {
        assert_eq!(
            (p.hash.as_str(), p.release),
            (v2.hash.as_str(), 2),
            "{p:#?}"
        );
        assert!(
            !old.iter().any(|o| o.name == p.name),
            "every process was replaced: {new:#?}"
        );
    }
    run.finish().await;
}

/// A process that keeps crashing is restarted with back-off under its
/// name: the restart count grows, it shows `Crashed` in between, and its
/// last exit names the exit code.
pub async fn crash_restarts_back_off_under_the_same_name(h: &dyn Harness) {
    if !h.runs_processes() {
        crate::skipped(
            "crash_restarts_back_off_under_the_same_name",
            "needs running processes (a program that exits) and the node is simulated",
        );
        return;
    }
    let mut run = Run::new(h);
    let app = run.app("crashy");
    let crashy = run.template(&app, "worker", 1, "echo boom; exit 3");
    run.apply(&crashy, 1).await;
    let mut name: Option<String> = None;
    let mut restarts = 0;
    let mut crashed_seen = false;
    let procs = run
        .wait_for(&app, "3 crash restarts", |procs| {
            let Some(p) = procs.first() else {
                assert!(name.is_none(), "a crashed process stays listed");
                return false;
            };
            assert_eq!(
                procs.len(),
                1,
                "one process, restarted in place: {procs:#?}"
            );
            let first = name.get_or_insert_with(|| p.name.clone());
            assert_eq!(&p.name, first, "a crash restart keeps the name");
            assert!(p.restarts >= restarts, "restarts only grow: {p:#?}");
            restarts = p.restarts;
            if p.state == ProcessState::Crashed {
                assert!(!p.ready, "a crashed process is not ready: {p:#?}");
                crashed_seen = true;
            }
            p.restarts >= 3 && p.last_exit.is_some()
        })
        .await;
    assert!(
        crashed_seen,
        "the process showed Crashed between its runs: {procs:#?}"
    );
    let last_exit = procs[0].last_exit.clone().unwrap_or_default();
    assert!(
        last_exit.contains('3'),
        "the last exit names code 3: {last_exit:?}"
    );
    run.finish().await;
}

/// `restart_process` replaces one process under a new name and the old
/// one goes; restarting a type (the template under a new hash, as the
/// controller does it) replaces them all; capacity never drops.
pub async fn restart_replaces_processes_under_new_names(h: &dyn Harness) {
    let mut run = Run::new(h);
    let app = run.app("restarty");
    let web = run.template(&app, "web", 1, &h.web_script());
    let d1 = run.apply(&web, 2).await;
    let before = run.converged("2 web up", &[&d1]).await;
    let (target, other) = (before[0].name.clone(), before[1].name.clone());

    // Kubernetes deletes the Pod before the ReplicaSet replaces it: the
    // capacity of a one-process restart is only watched where the engine
    // starts the replacement first; a type restart keeps it everywhere.
    let restart_capacity = h
        .restart_keeps_capacity()
        .then(|| watch_capacity(&run, &app));
    if let Err(e) = run.engine.restart_process(&app, &target).await {
        panic!("restart_process({target}) failed: {}", e.detail());
    }
    let after = run
        .wait_for(&app, "the replacement alone", |p| {
            is_converged(&d1, p) && !p.iter().any(|p| p.name == target)
        })
        .await;
    assert!(
        after.iter().any(|p| p.name == other),
        "only the restarted process is replaced: {after:#?}"
    );
    let replacement = after.iter().find(|p| p.name != other);
    assert!(
        replacement.is_some_and(|p| p.restarts == 0
            && p.hash == web.hash
            && (!h.names_carry_the_hash() || p.name.contains(&web.hash))),
        "a new process of the same template: {after:#?}"
    );
    if let Some(capacity) = restart_capacity {
        let capacity = capacity.stop().await;
        assert!(
            capacity.min_ready >= 2,
            "a process restart keeps capacity: {} ready web processes at one point",
            capacity.min_ready
        );
    }
    let capacity = watch_capacity(&run, &app);

    let mut restarted = web.clone();
    restarted.hash = drycc_model::naming::template_hash(&app, "web", 1, 1);
    assert_ne!(restarted.hash, web.hash);
    let d2 = run.apply(&restarted, 2).await;
    let rolled = run.converged("the type restarted", &[&d2]).await;
    let capacity = capacity.stop().await;
    assert!(
        capacity.min_ready >= 2,
        "a type restart keeps capacity: {} ready web processes at one point",
        capacity.min_ready
    );
    for p in &rolled {
        assert!(
            !after.iter().any(|a| a.name == p.name),
            "every process of the type was replaced: {rolled:#?}"
        );
    }

    for (app, name) in [(app.as_str(), "no-such-process"), ("no-such-app", "nope")] {
        let result = run.engine.restart_process(app, name).await;
        assert!(
            matches!(result, Err(EngineError::ProcessNotFound(_))),
            "restart of an unknown process {app}/{name}: {result:?}"
        );
    }
    run.finish().await;
}

fn request(command: &[&str], tty: bool, stdin: bool) -> ExecRequest {
    ExecRequest {
        command: command.iter().map(|w| w.to_string()).collect(),
        tty,
        stdin,
        size: tty.then_some((80, 24)),
    }
}

/// `exec` runs a command in a process's environment: output, exit code,
/// a terminal, stdin; an unknown process is `ProcessNotFound`.
pub async fn exec_runs_commands_in_a_process(h: &dyn Harness) {
    if !h.runs_processes() {
        crate::skipped(
            "exec_runs_commands_in_a_process",
            "needs running processes (exec) and the node is simulated",
        );
        return;
    }
    let mut run = Run::new(h);
    let app = run.app("execy");
    let mut worker = run.template(&app, "worker", 1, IDLE);
    worker.env.insert(
        "CONFORMANCE_GREETING".to_string(),
        "hello there".to_string(),
    );
    let one = run.apply(&worker, 1).await;
    let procs = run.converged("a worker up", &[&one]).await;
    let name = procs[0].name.clone();
    let exec = |req: ExecRequest| {
        let (engine, app, name) = (run.engine.clone(), app.clone(), name.clone());
        async move {
            match engine.exec(&app, &name, req.clone()).await {
                Ok(session) => session,
                Err(e) => panic!("exec {:?} in {name} failed: {}", req.command, e.detail()),
            }
        }
    };

    let mut s = exec(request(&["sh", "-c", "echo hi; exit 7"], false, false)).await;
    let done = finish_exec(&mut s).await;
    assert_eq!(
        (done.stdout.as_str(), done.stderr.as_str(), done.code),
        ("hi\n", "", 7)
    );

    let script = "echo \"$CONFORMANCE_GREETING\"; test -n \"$PORT\"; echo oops >&2";
    let mut s = exec(request(&["sh", "-c", script], false, false)).await;
    let done = finish_exec(&mut s).await;
    assert_eq!(
        (done.stdout.as_str(), done.stderr.as_str(), done.code),
        ("hello there\n", "oops\n", 0),
        "the process's environment (with PORT), stderr apart"
    );

    let mut s = exec(request(&["sh", "-c", "echo hi; exit 7"], true, false)).await;
    let done = finish_exec(&mut s).await;
    assert!(done.stdout.contains("hi"), "tty output: {:?}", done.stdout);
    assert_eq!(done.code, 7, "tty exit code");

    let mut s = exec(request(&["cat"], false, true)).await;
    for chunk in ["one\n", "two\n"] {
        let sent = s.input.send(ExecInput::Stdin(Bytes::from(chunk))).await;
        assert!(sent.is_ok(), "stdin of a running exec takes input");
    }
    assert!(s.input.send(ExecInput::Eof).await.is_ok());
    let done = finish_exec(&mut s).await;
    assert_eq!(
        (done.stdout.as_str(), done.code),
        ("one\ntwo\n", 0),
        "stdin comes back through cat, and its end ends cat"
    );

    // Output arrives while the command runs, not only at its end.
    let mut s = exec(request(&["cat"], false, true)).await;
    assert!(s
        .input
        .send(ExecInput::Stdin(Bytes::from_static(b"ping\n")))
        .await
        .is_ok());
    let deadline = Instant::now() + DEADLINE;
    let mut echoed = Vec::new();
    while !echoed.ends_with(b"ping\n") {
        match timeout_at(deadline, s.output.recv()).await {
            Ok(Some(ExecOutput::Stdout(b))) => echoed.extend_from_slice(&b),
            other => panic!("waiting for cat to echo a line: {other:?}"),
        }
    }
    assert!(s.input.send(ExecInput::Eof).await.is_ok());
    assert_eq!(finish_exec(&mut s).await.code, 0);

    for (app, name) in [(app.as_str(), "no-such-process"), ("no-such-app", "nope")] {
        let result = run
            .engine
            .exec(app, name, request(&["true"], false, false))
            .await;
        assert!(
            matches!(result, Err(EngineError::ProcessNotFound(_))),
            "exec in an unknown process {app}/{name}: {:?}",
            result.map(|_| ())
        );
    }
    run.finish().await;
}

/// A process's lines in `logs(app)` and `logs(app, process)` in order,
/// `lines` keeping the newest; `follow_logs` delivers a line written
/// after it subscribed.
pub async fn logs_tail_and_follow(h: &dyn Harness) {
    if !h.runs_processes() {
        crate::skipped(
            "logs_tail_and_follow",
            "needs running processes (output) and the node is simulated",
        );
        return;
    }
    let mut run = Run::new(h);
    let app = run.app("chatty");
    let chatty = run.template(
        &app,
        "worker",
        1,
        &format!("for i in 1 2 3 4 5; do echo \"line $i\"; done; {IDLE}"),
    );
    let one = run.apply(&chatty, 1).await;
    let procs = run.converged("the chatty worker up", &[&one]).await;
    let name = procs[0].name.clone();
    let expected = ["line 1", "line 2", "line 3", "line 4", "line 5"];
    run.wait_logs(&app, Some(&name), "5 lines", |logs| logs.len() >= 5)
        .await;

    let texts = |logs: &[drycc_engine::LogLine]| -> Vec<String> {
        logs.iter().map(|l| l.text.clone()).collect()
    };
    let own = run.logs(&app, 100, Some(&name)).await;
    assert_eq!(texts(&own), expected, "a process's lines, oldest first");
    assert!(
        own.iter().all(|l| l.source == name && l.app == app),
        "{own:#?}"
    );
    assert!(
        own.windows(2).all(|w| w[0].time <= w[1].time),
        "in time order: {own:#?}"
    );
    let all = run.logs(&app, 100, None).await;
    let of_process: Vec<_> = all.iter().filter(|l| l.source == name).cloned().collect();
    assert_eq!(texts(&of_process), expected, "the app's lines: {all:#?}");
    assert_eq!(
        texts(&run.logs(&app, 2, Some(&name)).await),
        ["line 4", "line 5"],
        "lines keeps the newest"
    );
    assert_eq!(
        texts(&run.logs(&app, 2, None).await),
        ["line 4", "line 5"],
        "lines keeps the newest of the app"
    );
    assert!(
        run.logs("no-such-app", 10, None).await.is_empty(),
        "an unknown app has no logs"
    );

    let mut follow = run.engine.follow_logs(&app);
    let talker = run.template(&app, "talker", 1, &format!("echo said after; {IDLE}"));
    run.apply(&talker, 1).await;
    let deadline = Instant::now() + DEADLINE;
    let line = loop {
        match timeout_at(deadline, follow.next()).await {
            Ok(Some(Followed::Line(line))) => {
                assert_eq!(line.app, app, "a follower of {app} gets its lines only");
                if line.text == "said after" {
                    break line;
                }
            }
            Ok(Some(Followed::Skipped(n))) => panic!("a follower of a few lines skipped {n}"),
            Ok(None) => panic!("the log stream of {app} ended while the engine runs"),
            Err(_) => panic!("the follower never got \"said after\" within {DEADLINE:?}"),
        }
    };
    let procs = run.processes(&app).await;
    assert!(
        names(&procs, "talker").contains(&line.source),
        "the line's source is the talker: {line:?} {procs:#?}"
    );
    run.finish().await;
}

/// A busy process uses CPU (in millicores between two readings) and
/// memory.
pub async fn usage_measures_cpu_and_memory(h: &dyn Harness) {
    if !h.runs_processes() {
        crate::skipped(
            "usage_measures_cpu_and_memory",
            "needs running processes (CPU and memory readings) and the node is simulated",
        );
        return;
    }
    let mut run = Run::new(h);
    let app = run.app("busy");
    let busy = run.template(&app, "worker", 1, "trap 'exit 0' TERM; while :; do :; done");
    let one = run.apply(&busy, 1).await;
    let procs = run.converged("the busy worker up", &[&one]).await;
    let name = procs[0].name.clone();
    // The first reading may have no CPU figure (there is nothing to compare
    // with); every later one has, unless the engine's figures come from a
    // sampler of its own pace, which has none until it sampled the process.
    reading(&run, &app, &name).await;
    let deadline = Instant::now() + DEADLINE;
    let mut memory_seen = false;
    let mut cpu_seen = false;
    loop {
        tokio::time::sleep(POLL * 3).await;
        let usage = reading(&run, &app, &name).await;
        memory_seen |= usage.memory_bytes.is_some_and(|m| m > 0);
        match usage.cpu_millis {
            Some(millis) if millis > 0 && memory_seen => break,
            Some(_) => cpu_seen = true,
            None if h.usage_is_sampled() && !cpu_seen => {}
            None => panic!("a reading after the first has a CPU figure: {usage:#?}"),
        }
        assert!(
            Instant::now() < deadline,
            "no CPU use or no memory seen of a busy loop: {usage:#?}"
        );
    }
    assert!(
        run.engine
            .usage("no-such-app")
            .await
            .is_ok_and(|u| u.is_empty()),
        "an unknown app uses nothing"
    );
    run.finish().await;
}

/// `remove_type` stops the processes of one type, `remove_app` those of
/// the app, which `apps()` then no longer lists.
pub async fn remove_type_and_app_stop_their_processes(h: &dyn Harness) {
    let mut run = Run::new(h);
    let app = run.app("removal");
    let web = run.template(&app, "web", 1, &h.web_script());
    let worker = run.template(&app, "worker", 1, IDLE);
    let webs = run.apply(&web, 1).await;
    let workers = run.apply(&worker, 2).await;
    let procs = run.converged("all up", &[&webs, &workers]).await;
    assert!(
        run.apps().await.contains(&app),
        "apps() lists an app with processes"
    );

    if let Err(e) = run.engine.remove_type(&app, "worker").await {
        panic!("remove_type failed: {}", e.detail());
    }
    let left = run
        .wait_for(&app, "the workers gone", |p| {
            names(p, "worker").is_empty() && is_converged(&webs, p)
        })
        .await;
    assert_eq!(
        names(&left, "web"),
        names(&procs, "web"),
        "the web type is untouched"
    );

    if let Err(e) = run.engine.remove_app(&app).await {
        panic!("remove_app failed: {}", e.detail());
    }
    run.wait_for(&app, "every process gone", |p| p.is_empty())
        .await;
    let deadline = Instant::now() + DEADLINE;
    loop {
        let apps = run.apps().await;
        if !apps.contains(&app) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "apps() still lists the removed app {app}: {apps:?}"
        );
        tokio::time::sleep(POLL).await;
    }
    // Removing what does not exist is no error.
    let again = run.engine.remove_app(&app).await;
    assert!(again.is_ok(), "{again:?}");
    run.finish().await;
}

/// Deployments that can never run (empty command, type or app) are
/// refused with `Invalid` and change nothing, next to a running
/// deployment or on their own.
pub async fn invalid_deployments_are_refused_and_change_nothing(h: &dyn Harness) {
    let mut run = Run::new(h);
    let app = run.app("invalid");
    let good = run.template(&app, "worker", 1, IDLE);
    let mut bad = Vec::new();
    for command in [
        Command::Line(String::new()),
        Command::Line("  ".to_string()),
        Command::Args(Vec::new()),
    ] {
        let mut t = good.clone();
        t.command = command;
        bad.push(t);
    }
    let mut no_type = good.clone();
    no_type.ptype = String::new();
    bad.push(no_type);
    let mut no_app = good.clone();
    no_app.app = String::new();
    bad.push(no_app);

    let refused = |t: drycc_engine::ProcessTemplate| {
        let engine = run.engine.clone();
        async move {
            let result = engine
                .apply(Deployment {
                    template: t.clone(),
                    replicas: 1,
                })
                .await;
            assert!(
                matches!(result, Err(EngineError::Invalid(_))),
                "refused as invalid: {t:#?}: {result:?}"
            );
        }
    };
    // Nothing yet: nothing appears.
    for t in &bad {
        refused(t.clone()).await;
    }
    assert!(run.processes(&app).await.is_empty());
    assert!(
        !run.apps().await.contains(&app),
        "a refused deployment leaves no app behind"
    );

    // Next to a running deployment of the same type: it runs on as it was.
    let one = run.apply(&good, 1).await;
    let before = run.converged("the good worker up", &[&one]).await;
    for t in &bad {
        refused(t.clone()).await;
    }
    let unchanged = |procs: &[ProcessStatus]| {
        procs.len() == 1
            && procs[0].name == before[0].name
            && procs[0].hash == good.hash
            && is_converged(&one, procs)
    };
    assert!(
        unchanged(&run.processes(&app).await),
        "a refused deployment changes nothing"
    );
    // Declaring the good one again is a no-op: the process stays.
    run.apply(&good, 1).await;
    let after = run.converged("the good worker still up", &[&one]).await;
    assert!(unchanged(&after), "{after:#?}");
    run.finish().await;
}

/// `changes(Some(app))` is bumped by changes of that app: a deployment, a
/// process getting ready, the app's removal.
pub async fn changes_wake_on_changes_of_the_app(h: &dyn Harness) {
    let mut run = Run::new(h);
    let app = run.app("watched");
    let mut of_app = run.engine.changes(Some(&app));
    let mut of_all = run.engine.changes(None);
    of_app.borrow_and_update();
    of_all.borrow_and_update();
    let deadline = Instant::now() + DEADLINE;

    let worker = run.template(&app, "worker", 1, IDLE);
    let one = run.apply(&worker, 1).await;
    woken(&mut of_app, deadline, "apply (the app's counter)").await;
    woken(&mut of_all, deadline, "apply (the counter of all apps)").await;
    // Waiting on the app's counter alone sees the process get ready.
    run.converged("the worker up", &[&one]).await;

    of_app.borrow_and_update();
    if let Err(e) = run.engine.remove_app(&app).await {
        panic!("remove_app failed: {}", e.detail());
    }
    woken(&mut of_app, deadline, "remove_app").await;
    run.wait_for(&app, "every process gone", |p| p.is_empty())
        .await;
    run.finish().await;
}

async fn woken(changes: &mut watch::Receiver<u64>, deadline: Instant, after: &str) {
    match timeout_at(deadline, changes.changed()).await {
        Ok(Ok(())) => {}
        Ok(Err(_)) => panic!("the change counter closed while waiting for a change after {after}"),
        Err(_) => panic!("no change seen within {DEADLINE:?} after {after}"),
    }
}

/// The usage of an app of one busy worker `name`.
async fn reading(run: &Run<'_>, app: &str, name: &str) -> drycc_engine::ProcessUsage {
    let usage = match run.engine.usage(app).await {
        Ok(usage) => usage,
        Err(e) => panic!("usage({app}) failed: {}", e.detail()),
    };
    assert_eq!(usage.len(), 1, "one reading per process: {usage:#?}");
    assert_eq!(
        (
            usage[0].name.as_str(),
            usage[0].ptype.as_str(),
            usage[0].ready
        ),
        (name, "worker", true),
        "{usage:#?}"
    );
    usage[0].clone()
}
