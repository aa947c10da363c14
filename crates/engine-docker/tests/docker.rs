//! The Docker engine against a real daemon: the one `DOCKER_HOST` names
//! (`scripts/with-docker.sh` starts a private one). Without `DOCKER_HOST`
//! every test says loudly that it skipped and passes.
//!
//! Each test has an instance of its own (the engine sees only that
//! instance's containers), uses host ports on 127.0.0.1 only, and removes
//! every container it made, even when it fails (see `Cleanup`). Conditions
//! are waited for on the engine's change counter or by polling, with a
//! generous deadline that only turns a hang into a failure.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bollard::models::ContainerSummary;
use bollard::query_parameters::{
    BuildImageOptionsBuilder, EventsOptionsBuilder, InspectContainerOptions,
    ListContainersOptionsBuilder, PushImageOptionsBuilder, RemoveContainerOptionsBuilder,
    RemoveImageOptionsBuilder, TagImageOptionsBuilder,
};
use bollard::Docker;
use futures::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::{sleep, timeout, Instant};

use drycc_engine::{
    is_converged, Artifact, Command, Deployment, Engine, EngineError, ExecInput, ExecOutput,
    ExecRequest, ImageSpec, Probe, ProbeAction, ProcessState, ProcessStatus, ProcessTemplate,
};
use drycc_engine_docker::{BackoffPolicy, DockerConfig, DockerEngine};

/// The test image: busybox on nothing, `httpd` serving `/www` by default.
const IMAGE: &str = "drycc-engine-docker-test/busybox:1";

/// How long any one condition may take before the test fails.
const DEADLINE: Duration = Duration::from_secs(90);

/// Builds the test image once per test binary (Docker caches the layers
/// across runs).
static IMAGE_BUILT: tokio::sync::Mutex<bool> = tokio::sync::Mutex::const_new(false);

/// Removes every container of an instance when dropped, whatever happened.
struct Cleanup {
    instance: String,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let instance = self.instance.clone();
        // Drop cannot await, and may run inside a runtime: use a thread of
        // its own with a runtime of its own.
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                let Ok(docker) = Docker::connect_with_defaults() else {
                    return;
                };
                let Ok(docker) = docker.negotiate_version().await else {
                    return;
                };
                for c in own_containers(&docker, &instance).await {
                    if let Some(id) = c.id {
                        let options = RemoveContainerOptionsBuilder::new().force(true).build();
                        let _ = docker.remove_container(&id, Some(options)).await;
                    }
                }
            });
        })
        .join();
    }
}

struct Harness {
    docker: Docker,
    instance: String,
    _cleanup: Cleanup,
}

impl Harness {
    fn config(&self) -> DockerConfig {
        DockerConfig {
            backoff: BackoffPolicy {
                initial: Duration::from_millis(200),
                cap: Duration::from_secs(1),
                reset_after: Duration::from_secs(60),
            },
            readiness_poll: Duration::from_millis(100),
            recheck: Duration::from_secs(2),
            ..DockerConfig::new(self.instance.clone())
        }
    }

    async fn engine(&self) -> Arc<DockerEngine> {
        DockerEngine::connect(self.docker.clone(), self.config())
            .await
            .unwrap()
    }

    async fn containers(&self) -> Vec<ContainerSummary> {
        own_containers(&self.docker, &self.instance).await
    }
}

async fn own_containers(docker: &Docker, instance: &str) -> Vec<ContainerSummary> {
    let filters = HashMap::from([(
        "label".to_string(),
        vec![format!("drycc.instance={instance}")],
    )]);
    let options = ListContainersOptionsBuilder::new()
        .all(true)
        .filters(&filters)
        .build();
    docker
        .list_containers(Some(options))
        .await
        .unwrap_or_default()
}

/// The daemon and a fresh instance, or `None` (after saying so) without
/// `DOCKER_HOST`.
async fn setup(test: &str) -> Option<Harness> {
    if std::env::var_os("DOCKER_HOST").is_none() {
        skipped(&format!(
            "{test}: DOCKER_HOST is not set; run the Docker engine tests with \
             scripts/with-docker.sh (or point DOCKER_HOST at a daemon)"
        ));
        return None;
    }
    let docker = Docker::connect_with_defaults()
        .unwrap()
        .negotiate_version()
        .await
        .unwrap();
    build_image(&docker).await;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let instance = format!("t-{test}-{}-{nanos}", std::process::id());
    Some(Harness {
        docker,
        _cleanup: Cleanup {
            instance: instance.clone(),
        },
        instance,
    })
}

/// Say loudly that a test did not run. Written to stderr directly rather
/// than with `eprintln!`, which the test harness captures (and hides for a
/// passing test): a run without a daemon must never look green in silence.
fn skipped(why: &str) {
    use std::io::Write;
    let message = format!("\n!!!!!!!! SKIPPED {why} !!!!!!!!\n");
    let _ = std::io::stderr().lock().write_all(message.as_bytes());
}

/// A tar archive of a directory of `(path, mode, bytes)`.
fn tar_of(files: &[(&str, u32, Vec<u8>)]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (path, mode, bytes) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(*mode);
        header.set_cksum();
        builder.append_data(&mut header, path, &bytes[..]).unwrap();
    }
    builder.into_inner().unwrap()
}

async fn build_image(docker: &Docker) {
    let mut built = IMAGE_BUILT.lock().await;
    if *built {
        return;
    }
    let busybox = std::fs::read("/bin/busybox").expect("the tests need a static /bin/busybox");
    let dockerfile = r#"FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
RUN ["/bin/sh", "-c", "mkdir -p /www /tmp && echo hello from httpd > /www/index.html"]
CMD ["httpd", "-f", "-p", "5000", "-h", "/www"]
"#;
    let context = tar_of(&[
        ("Dockerfile", 0o644, dockerfile.as_bytes().to_vec()),
        ("busybox", 0o755, busybox),
    ]);
    let options = BuildImageOptionsBuilder::new().t(IMAGE).rm(true).build();
    let mut stream = docker.build_image(
        options,
        None,
        Some(bollard::body_full(bytes::Bytes::from(context))),
    );
    while let Some(item) = stream.next().await {
        let info = item.expect("building the test image");
        if let Some(error) = info.error_detail.and_then(|d| d.message) {
            panic!("building the test image: {error}");
        }
    }
    *built = true;
}

fn template(app: &str, ptype: &str, release: u32, command: Command) -> ProcessTemplate {
    ProcessTemplate {
        app: app.to_string(),
        ptype: ptype.to_string(),
        release,
        hash: drycc_model::naming::template_hash(app, ptype, release, 0),
        artifact: Artifact::Image(ImageSpec {
            reference: IMAGE.to_string(),
            entrypoint: Vec::new(),
            port: 5000,
            credentials: None,
        }),
        command,
        env: BTreeMap::from([("GREETING".to_string(), "hi".to_string())]),
        grace_period: Duration::from_secs(10),
        readiness: None,
        liveness: None,
        cpu_millis: None,
        memory_bytes: None,
        user: None,
    }
}

fn line(s: &str) -> Command {
    Command::Line(s.to_string())
}

/// httpd on `$PORT`, the word split and expanded by the engine.
fn httpd() -> Command {
    line("httpd -f -p $PORT -h /www")
}

/// A worker that says `started`, then idles.
fn idle() -> Command {
    line("sh -c 'echo started; while true; do sleep 0.2; done'")
}

/// Wait until `cond` holds for the app's processes; returns them.
async fn wait_for(
    engine: &DockerEngine,
    app: &str,
    what: &str,
    mut cond: impl FnMut(&[ProcessStatus]) -> bool,
) -> Vec<ProcessStatus> {
    let mut changes = engine.changes(Some(app));
    let deadline = Instant::now() + DEADLINE;
    loop {
        let procs = engine.processes(app).await.unwrap();
        if cond(&procs) {
            return procs;
        }
        if Instant::now() > deadline {
            panic!("timed out waiting for {what}; processes: {procs:#?}");
        }
        // Changes wake us; the poll covers conditions on other things.
        let _ = timeout(Duration::from_millis(200), changes.changed()).await;
    }
}

/// Poll an async condition until it holds.
async fn poll<F, Fut>(what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + DEADLINE;
    while !cond().await {
        if Instant::now() > deadline {
            panic!("timed out waiting for {what}");
        }
        sleep(Duration::from_millis(100)).await;
    }
}

async fn converge(engine: &DockerEngine, deployment: &Deployment) -> Vec<ProcessStatus> {
    let what = format!(
        "{} {}={} converged",
        deployment.template.app, deployment.template.ptype, deployment.replicas
    );
    wait_for(engine, &deployment.template.app, &what, |p| {
        is_converged(deployment, p)
    })
    .await
}

/// GET / from an endpoint; the response when one came.
async fn http_get(addr: SocketAddr) -> Option<String> {
    let request = async {
        let mut stream = TcpStream::connect(addr).await.ok()?;
        stream
            .write_all(b"GET / HTTP/1.0\r\nHost: test\r\n\r\n")
            .await
            .ok()?;
        let mut response = String::new();
        stream.read_to_string(&mut response).await.ok()?;
        Some(response)
    };
    timeout(Duration::from_secs(5), request)
        .await
        .ok()
        .flatten()
        .filter(|r| !r.is_empty())
}

async fn exec_output(
    engine: &DockerEngine,
    app: &str,
    name: &str,
    request: ExecRequest,
) -> (String, String, i32) {
    let mut session = engine.exec(app, name, request).await.unwrap();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    loop {
        match timeout(DEADLINE, session.output.recv()).await.unwrap() {
            Some(ExecOutput::Stdout(b)) => out.extend_from_slice(&b),
            Some(ExecOutput::Stderr(b)) => err.extend_from_slice(&b),
            Some(ExecOutput::Exit(code)) => {
                return (
                    String::from_utf8_lossy(&out).into_owned(),
                    String::from_utf8_lossy(&err).into_owned(),
                    code,
                )
            }
            None => panic!("the exec session ended without an exit code"),
        }
    }
}

fn run(command: &[&str]) -> ExecRequest {
    ExecRequest {
        command: command.iter().map(|s| s.to_string()).collect(),
        tty: false,
        stdin: false,
        size: None,
    }
}

/// Exit codes of the instance's containers as they die, by name.
fn watch_deaths(docker: &Docker, instance: &str) -> mpsc::UnboundedReceiver<(String, String)> {
    let (tx, rx) = mpsc::unbounded_channel();
    let filters = HashMap::from([
        (
            "label".to_string(),
            vec![format!("drycc.instance={instance}")],
        ),
        ("event".to_string(), vec!["die".to_string()]),
    ]);
    let options = EventsOptionsBuilder::new().filters(&filters).build();
    let docker = docker.clone();
    tokio::spawn(async move {
        let mut events = docker.events(Some(options));
        while let Some(Ok(event)) = events.next().await {
            let attributes = event.actor.and_then(|a| a.attributes).unwrap_or_default();
            if let (Some(name), Some(code)) = (attributes.get("name"), attributes.get("exitCode")) {
                if tx.send((name.clone(), code.clone())).is_err() {
                    return;
                }
            }
        }
    });
    rx
}

async fn death_of(deaths: &mut mpsc::UnboundedReceiver<(String, String)>, name: &str) -> String {
    loop {
        let (dead, code) = timeout(DEADLINE, deaths.recv())
            .await
            .expect("timed out waiting for a container to die")
            .expect("the event stream ended");
        if dead == name {
            return code;
        }
    }
}

/// Wait for a line containing `needle` on a follow channel.
async fn follow_until(rx: &mut drycc_engine::LogStream, needle: &str) -> drycc_engine::LogLine {
    loop {
        match timeout(DEADLINE, tokio_stream::StreamExt::next(rx)).await {
            Ok(Some(drycc_engine::Followed::Line(line))) if line.text.contains(needle) => {
                return line
            }
            Ok(Some(_)) => {}
            Ok(None) => panic!("following logs ended"),
            Err(_) => panic!("timed out waiting for {needle:?} in the followed logs"),
        }
    }
}

#[tokio::test]
async fn web_scales_up_and_down_and_is_up_only_when_listening() {
    let Some(h) = setup("scale").await else {
        return;
    };
    let engine = h.engine().await;
    let mut this_app = engine.changes(Some("scale"));
    let mut any_app = engine.changes(None);
    let other_app = engine.changes(Some("elsewhere"));
    // httpd starts only once /tmp/go exists: until then nothing listens on
    // the published port (but docker-proxy accepts there).
    let gated =
        line("sh -c 'while [ ! -f /tmp/go ]; do sleep 0.1; done; exec httpd -f -p $PORT -h /www'");
    let mut d = Deployment {
        template: template("scale", "web", 1, gated),
        replicas: 1,
    };
    engine.apply(d.clone()).await.unwrap();
    assert!(this_app.has_changed().unwrap() && any_app.has_changed().unwrap());
    assert!(!other_app.has_changed().unwrap());
    this_app.mark_unchanged();
    any_app.mark_unchanged();
    let procs = wait_for(&engine, "scale", "a started container", |p| {
        p.len() == 1 && p[0].pid.is_some()
    })
    .await;
    let p = &procs[0];
    let endpoint = p.endpoint.expect("a web process has an endpoint");
    assert!(endpoint.ip().is_loopback());
    assert_eq!(http_get(endpoint).await, None, "nothing listens yet");
    let now = engine.processes("scale").await.unwrap();
    assert!(
        !now[0].ready && now[0].state == ProcessState::Starting,
        "{now:#?}"
    );
    let (_, _, code) = exec_output(&engine, "scale", &p.name, run(&["touch", "/tmp/go"])).await;
    assert_eq!(code, 0);
    converge(&engine, &d).await;
    let body = http_get(endpoint).await.expect("an answer once ready");
    assert!(body.contains("hello from httpd"), "{body}");

    // Up: every new process answers on an endpoint of its own.
    d.template.command = httpd();
    d.template.release = 2;
    d.template.hash = drycc_model::naming::template_hash("scale", "web", 2, 0);
    d.replicas = 3;
    engine.apply(d.clone()).await.unwrap();
    let procs = converge(&engine, &d).await;
    let mut endpoints: Vec<SocketAddr> = procs.iter().filter_map(|p| p.endpoint).collect();
    endpoints.sort();
    endpoints.dedup();
    assert_eq!(endpoints.len(), 3);
    for endpoint in &endpoints {
        let body = http_get(*endpoint).await.unwrap_or_default();
        assert!(body.contains("hello from httpd"), "{endpoint}: {body}");
    }
    for p in &procs {
        assert!(p
            .name
            .starts_with(&format!("scale-web-{}-", d.template.hash)));
        assert_eq!(p.image.as_deref(), Some(IMAGE));
        assert!(p.pid.is_some());
    }

    // Down: the containers go, not only the table entries.
    d.replicas = 1;
    engine.apply(d.clone()).await.unwrap();
    let procs = converge(&engine, &d).await;
    poll("two containers removed", || async {
        h.containers().await.len() == 1
    })
    .await;
    let left = h.containers().await;
    assert_eq!(
        left[0].names.as_ref().unwrap()[0].trim_start_matches('/'),
        procs[0].name
    );
    assert_eq!(engine.apps().await.unwrap(), ["scale"]);
    engine.stop_all().await;
    assert!(h.containers().await.is_empty());
}

#[tokio::test]
async fn scale_down_sends_sigterm_to_the_group_then_removes_the_container() {
    let Some(h) = setup("sigterm").await else {
        return;
    };
    let engine = h.engine().await;
    let mut deaths = watch_deaths(&h.docker, &h.instance);
    let mut follow = engine.follow_logs("sigterm");
    // A shell and a child it started in the background: both get SIGTERM.
    let mut d = Deployment {
        template: template(
            "sigterm",
            "worker",
            1,
            line(
                r#"sh -c 'trap "echo parent got TERM" TERM; sh -c "trap \"echo child got TERM; exit 0\" TERM; echo started; while true; do sleep 0.2; done" & wait; wait'"#,
            ),
        ),
        replicas: 1,
    };
    engine.apply(d.clone()).await.unwrap();
    let procs = converge(&engine, &d).await;
    let name = procs[0].name.clone();
    let started = follow_until(&mut follow, "started").await;
    assert_eq!(started.source, name);
    assert_eq!(started.app, "sigterm");
    d.replicas = 0;
    engine.apply(d.clone()).await.unwrap();
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let line = follow_until(&mut follow, "got TERM").await;
        seen.push(line.text);
    }
    seen.sort();
    assert_eq!(seen, ["child got TERM", "parent got TERM"]);
    assert_eq!(death_of(&mut deaths, &name).await, "0");
    wait_for(&engine, "sigterm", "no process", |p| p.is_empty()).await;
    poll("the container removed", || async {
        h.containers().await.is_empty()
    })
    .await;
    engine.stop_all().await;
}

#[tokio::test]
async fn a_process_ignoring_sigterm_is_killed_after_the_grace_period() {
    let Some(h) = setup("sigkill").await else {
        return;
    };
    let engine = h.engine().await;
    let mut deaths = watch_deaths(&h.docker, &h.instance);
    let mut t = template(
        "sigkill",
        "worker",
        1,
        line(r#"sh -c 'trap "" TERM; echo started; while true; do sleep 0.2; done'"#),
    );
    t.grace_period = Duration::from_millis(1500);
    let d = Deployment {
        template: t,
        replicas: 1,
    };
    engine.apply(d.clone()).await.unwrap();
    let name = converge(&engine, &d).await[0].name.clone();
    engine.remove_type("sigkill", "worker").await.unwrap();
    let procs = engine.processes("sigkill").await.unwrap();
    assert_eq!(procs[0].state, ProcessState::Terminating);
    // 137 = 128 + SIGKILL.
    assert_eq!(death_of(&mut deaths, &name).await, "137");
    wait_for(&engine, "sigkill", "no process", |p| p.is_empty()).await;
    poll("the container removed", || async {
        h.containers().await.is_empty()
    })
    .await;
    // The user sees why in the app's log, as with native processes.
    let notes = engine
        .logs("sigkill", 100, Some("controller"))
        .await
        .unwrap();
    let texts: Vec<&str> = notes.iter().map(|l| l.text.as_str()).collect();
    let expected = format!("{name} did not exit within 1500ms of SIGTERM; sent SIGKILL");
    assert_eq!(texts, [expected.as_str()], "{notes:#?}");
    engine.stop_all().await;
}

#[tokio::test]
async fn a_crash_loop_backs_off_keeping_the_name_and_counting_restarts() {
    let Some(h) = setup("crash").await else {
        return;
    };
    let engine = h.engine().await;
    let d = Deployment {
        template: template("crash", "worker", 1, line("sh -c 'echo run; exit 3'")),
        replicas: 1,
    };
    engine.apply(d.clone()).await.unwrap();
    let first = wait_for(&engine, "crash", "a process", |p| p.len() == 1).await;
    let name = first[0].name.clone();
    let procs = wait_for(&engine, "crash", "three restarts", |p| {
        p.len() == 1 && p[0].restarts >= 3
    })
    .await;
    assert_eq!(procs[0].name, name);
    assert_eq!(procs[0].last_exit.as_deref(), Some("exited with code 3"));
    wait_for(&engine, "crash", "crashed, backing off", |p| {
        p.len() == 1 && p[0].state == ProcessState::Crashed
    })
    .await;
    // One container all along, started again and again.
    let containers = h.containers().await;
    assert_eq!(containers.len(), 1);
    assert_eq!(
        containers[0].names.as_ref().unwrap()[0].trim_start_matches('/'),
        name
    );
    let logs = engine.logs("crash", 100, Some(&name)).await.unwrap();
    assert!(
        logs.iter().filter(|l| l.text == "run").count() >= 3,
        "{logs:#?}"
    );
    // Each restart is noted in the app's log (source `controller`),
    // between the container's own lines.
    let all = engine.logs("crash", 100, None).await.unwrap();
    let noted = format!("{name} crashed: exited with code 3; restarting in ");
    let notes: Vec<_> = all.iter().filter(|l| l.source == "controller").collect();
    assert!(notes.len() >= 2, "{all:#?}");
    assert!(
        notes.iter().all(|l| l.text.starts_with(&noted)),
        "{notes:#?}"
    );
    assert!(all.windows(2).all(|w| w[0].time <= w[1].time), "{all:#?}");
    engine.stop_all().await;
    assert!(h.containers().await.is_empty());
}

#[tokio::test]
async fn an_oom_kill_is_told_apart_from_a_crash() {
    let Some(h) = setup("oom").await else { return };
    let engine = h.engine().await;
    let mut t = template(
        "oom",
        "worker",
        1,
        line(r#"sh -c 'x=$(head -c 100000000 /dev/zero | tr "\0" a); echo survived'"#),
    );
    t.memory_bytes = Some(16 * 1024 * 1024);
    let d = Deployment {
        template: t,
        replicas: 1,
    };
    engine.apply(d.clone()).await.unwrap();
    let procs = wait_for(&engine, "oom", "an OOM kill", |p| {
        p.len() == 1 && p[0].restarts >= 1
    })
    .await;
    assert_eq!(procs[0].last_exit.as_deref(), Some("OOMKilled"));
    engine.stop_all().await;
    assert!(h.containers().await.is_empty());
}

#[tokio::test]
async fn a_template_change_rolls_with_zero_unavailable() {
    let Some(h) = setup("roll").await else { return };
    let engine = h.engine().await;
    let mut d = Deployment {
        template: template("roll", "web", 1, httpd()),
        replicas: 2,
    };
    engine.apply(d.clone()).await.unwrap();
    let old = converge(&engine, &d).await;
    d.template.release = 2;
    d.template.hash = drycc_model::naming::template_hash("roll", "web", 2, 0);
    d.template.env.insert("GREETING".into(), "v2".into());
    engine.apply(d.clone()).await.unwrap();
    let mut most = 0;
    let mut seen_surge = false;
    let new = wait_for(&engine, "roll", "the rollout", |p| {
        let ready = p.iter().filter(|p| p.ready).count();
        assert!(ready >= 2, "capacity dropped during the rollout: {p:#?}");
        let alive = p
            .iter()
            .filter(|p| p.state != ProcessState::Terminating)
            .count();
        assert!(alive <= 3, "more than one surge process: {p:#?}");
        most = most.max(p.len());
        seen_surge |= alive == 3;
        is_converged(&d, p)
    })
    .await;
    assert!(most >= 3 && seen_surge);
    for p in &new {
        assert!(old.iter().all(|o| o.name != p.name));
        assert_eq!(p.release, 2);
        assert!(http_get(p.endpoint.unwrap()).await.is_some());
    }
    poll("old containers removed", || async {
        h.containers().await.len() == 2
    })
    .await;
    engine.stop_all().await;
}

#[tokio::test]
async fn restart_process_gives_a_new_name_and_retires_the_old_once_ready() {
    let Some(h) = setup("restart").await else {
        return;
    };
    let engine = h.engine().await;
    let d = Deployment {
        template: template("restart", "web", 1, httpd()),
        replicas: 1,
    };
    engine.apply(d.clone()).await.unwrap();
    let old = converge(&engine, &d).await[0].clone();
    engine.restart_process("restart", &old.name).await.unwrap();
    let procs = wait_for(&engine, "restart", "the replacement", |p| {
        assert!(p.iter().any(|p| p.ready), "no ready process: {p:#?}");
        p.len() == 1 && p[0].name != old.name && p[0].ready
    })
    .await;
    assert_eq!(procs[0].hash, old.hash);
    assert_ne!(procs[0].endpoint, None);
    assert!(matches!(
        engine.restart_process("restart", "nope").await,
        Err(EngineError::ProcessNotFound(_))
    ));
    poll("the old container removed", || async {
        h.containers().await.len() == 1
    })
    .await;
    engine.stop_all().await;
}

#[tokio::test]
async fn exec_gives_output_and_exit_code_with_and_without_a_tty() {
    let Some(h) = setup("exec").await else { return };
    let engine = h.engine().await;
    let d = Deployment {
        template: template("exec", "worker", 1, idle()),
        replicas: 1,
    };
    engine.apply(d.clone()).await.unwrap();
    let name = converge(&engine, &d).await[0].name.clone();

    let (out, err, code) = exec_output(
        &engine,
        "exec",
        &name,
        run(&[
            "sh",
            "-c",
            "echo out $GREETING $HOSTNAME; echo err >&2; exit 7",
        ]),
    )
    .await;
    assert_eq!(out, format!("out hi {name}\n"));
    assert_eq!(err, "err\n");
    assert_eq!(code, 7);

    // stdin, then its end.
    let mut session = engine
        .exec(
            "exec",
            &name,
            ExecRequest {
                command: vec!["sh".into(), "-c".into(), "tr a-z A-Z; exit 4".into()],
                tty: false,
                stdin: true,
                size: None,
            },
        )
        .await
        .unwrap();
    session
        .input
        .send(ExecInput::Stdin(bytes::Bytes::from_static(b"hello\n")))
        .await
        .unwrap();
    session.input.send(ExecInput::Eof).await.unwrap();
    let mut out = Vec::new();
    let code = loop {
        match timeout(DEADLINE, session.output.recv())
            .await
            .unwrap()
            .unwrap()
        {
            ExecOutput::Stdout(b) => out.extend_from_slice(&b),
            ExecOutput::Stderr(_) => {}
            ExecOutput::Exit(code) => break code,
        }
    };
    assert_eq!(String::from_utf8_lossy(&out), "HELLO\n");
    assert_eq!(code, 4);

    // A TTY of the size asked, then resized.
    let mut session = engine
        .exec(
            "exec",
            &name,
            ExecRequest {
                command: vec!["sh".into()],
                tty: true,
                stdin: true,
                size: Some((100, 30)),
            },
        )
        .await
        .unwrap();
    let send = |s: &'static str| ExecInput::Stdin(bytes::Bytes::from_static(s.as_bytes()));
    session.input.send(send("tty; stty size\n")).await.unwrap();
    let mut out = String::new();
    let deadline = Instant::now() + DEADLINE;
    while !out.contains("30 100") {
        assert!(Instant::now() < deadline, "no terminal size in {out:?}");
        if let Ok(Some(ExecOutput::Stdout(b))) =
            timeout(Duration::from_millis(500), session.output.recv()).await
        {
            out.push_str(&String::from_utf8_lossy(&b));
        }
    }
    assert!(out.contains("/dev/pts/"), "{out}");
    session
        .input
        .send(ExecInput::Resize {
            width: 120,
            height: 40,
        })
        .await
        .unwrap();
    session
        .input
        .send(send("stty size; exit 3\n"))
        .await
        .unwrap();
    let code = loop {
        match timeout(DEADLINE, session.output.recv())
            .await
            .unwrap()
            .unwrap()
        {
            ExecOutput::Stdout(b) => out.push_str(&String::from_utf8_lossy(&b)),
            ExecOutput::Stderr(_) => {}
            ExecOutput::Exit(code) => break code,
        }
    };
    assert!(out.contains("40 120"), "{out}");
    assert_eq!(code, 3);

    assert!(matches!(
        engine
            .exec("exec", "exec-worker-nope", run(&["true"]))
            .await,
        Err(EngineError::ProcessNotFound(_))
    ));
    engine.stop_all().await;
}

#[tokio::test]
async fn logs_are_merged_by_time_and_followed() {
    let Some(h) = setup("logs").await else { return };
    let engine = h.engine().await;
    let mut follow = engine.follow_logs("logs");
    let d = Deployment {
        template: template(
            "logs",
            "worker",
            1,
            line(
                "sh -c 'for i in 1 2 3 4 5; do echo line $i; done; while true; do sleep 0.2; done'",
            ),
        ),
        replicas: 2,
    };
    engine.apply(d.clone()).await.unwrap();
    let procs = converge(&engine, &d).await;
    for _ in 0..2 {
        follow_until(&mut follow, "line 5").await;
    }
    let all = engine.logs("logs", 100, None).await.unwrap();
    assert_eq!(all.len(), 10, "{all:#?}");
    assert!(all.windows(2).all(|w| w[0].time <= w[1].time));
    for p in &procs {
        let own: Vec<String> = all
            .iter()
            .filter(|l| l.source == p.name)
            .map(|l| l.text.clone())
            .collect();
        assert_eq!(own, ["line 1", "line 2", "line 3", "line 4", "line 5"]);
    }
    let one = &procs[0].name;
    let last = engine.logs("logs", 3, Some(one)).await.unwrap();
    let texts: Vec<&str> = last.iter().map(|l| l.text.as_str()).collect();
    assert_eq!(texts, ["line 3", "line 4", "line 5"]);
    assert!(last.iter().all(|l| &l.source == one && l.app == "logs"));
    assert_eq!(engine.logs("logs", 4, None).await.unwrap().len(), 4);
    assert!(matches!(
        engine.logs("logs", 4, Some("logs-worker-nope")).await,
        Err(EngineError::ProcessNotFound(_))
    ));

    // New output while following (written to the container's stdout,
    // which is PID 1's).
    let (_, _, code) = exec_output(
        &engine,
        "logs",
        one,
        run(&["sh", "-c", "echo later >/proc/1/fd/1"]),
    )
    .await;
    assert_eq!(code, 0);
    let later = follow_until(&mut follow, "later").await;
    assert_eq!(&later.source, one);
    engine.stop_all().await;
}

#[tokio::test]
async fn usage_and_limits() {
    let Some(h) = setup("usage").await else {
        return;
    };
    let engine = h.engine().await;
    let mut t = template("usage", "worker", 1, line("sh -c 'while true; do :; done'"));
    t.cpu_millis = Some(500);
    t.memory_bytes = Some(64 * 1024 * 1024);
    let d = Deployment {
        template: t,
        replicas: 1,
    };
    engine.apply(d.clone()).await.unwrap();
    let name = converge(&engine, &d).await[0].name.clone();
    assert_eq!(engine.capabilities().limits, Ok(()));
    let inspect = h
        .docker
        .inspect_container(&name, None::<InspectContainerOptions>)
        .await
        .unwrap();
    let host = inspect.host_config.unwrap();
    assert_eq!(host.nano_cpus, Some(500_000_000));
    assert_eq!(host.memory, Some(64 * 1024 * 1024));

    let first = engine.usage("usage").await.unwrap();
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].name, name);
    assert_eq!(first[0].cpu_millis, None);
    assert!(first[0].memory_bytes.is_some_and(|m| m > 0));
    let deadline = Instant::now() + DEADLINE;
    let cpu = loop {
        sleep(Duration::from_millis(200)).await;
        let cpu = engine.usage("usage").await.unwrap()[0].cpu_millis;
        if cpu.is_some_and(|c| c > 0) {
            break cpu;
        }
        assert!(Instant::now() < deadline, "no CPU reading");
    };
    // The busy loop is held near its limit (no timing precision asked).
    assert!(cpu.unwrap() < 2000, "{cpu:?}");
    engine.stop_all().await;
}

#[tokio::test]
async fn close_leaves_containers_running_and_a_new_engine_adopts_them() {
    let Some(h) = setup("adopt").await else {
        return;
    };
    let engine = h.engine().await;
    let web = Deployment {
        template: template("adopt", "web", 1, httpd()),
        replicas: 2,
    };
    let worker = Deployment {
        template: template("adopt", "worker", 1, idle()),
        replicas: 1,
    };
    engine.apply(web.clone()).await.unwrap();
    engine.apply(worker.clone()).await.unwrap();
    converge(&engine, &web).await;
    let before = converge(&engine, &worker).await;
    let started_at = |summary: &ContainerSummary| summary.created;
    let containers = h.containers().await;
    assert_eq!(containers.len(), 3);
    engine.close().await;
    assert!(engine.processes("adopt").await.unwrap().is_empty());
    assert!(matches!(
        engine.apply(web.clone()).await,
        Err(EngineError::Unavailable { .. })
    ));
    drop(engine);
    let still = h.containers().await;
    assert_eq!(still.len(), 3);
    assert!(still
        .iter()
        .all(|c| c.state == Some(bollard::models::ContainerSummaryStateEnum::RUNNING)));

    let engine = h.engine().await;
    assert_eq!(engine.apps().await.unwrap(), ["adopt"]);
    let adopted = wait_for(&engine, "adopt", "adopted and ready", |p| {
        p.len() == 3 && p.iter().all(|p| p.ready)
    })
    .await;
    for p in &before {
        let again = adopted
            .iter()
            .find(|a| a.name == p.name)
            .expect("same name");
        assert_eq!(again.pid, p.pid, "not restarted");
        assert_eq!(again.restarts, 0);
        assert_eq!(again.started, p.started);
    }
    // The same desired state changes nothing.
    engine.apply(web.clone()).await.unwrap();
    engine.apply(worker.clone()).await.unwrap();
    let procs = engine.processes("adopt").await.unwrap();
    assert!(is_converged(&web, &procs) && is_converged(&worker, &procs));
    for p in procs.iter().filter(|p| p.ptype == "web") {
        assert!(http_get(p.endpoint.unwrap()).await.is_some());
    }
    let after = h.containers().await;
    let ids = |list: &[ContainerSummary]| {
        let mut v: Vec<_> = list.iter().map(|c| (c.id.clone(), started_at(c))).collect();
        v.sort();
        v
    };
    assert_eq!(ids(&after), ids(&still));

    // A container that exited while no engine ran is started again.
    engine.close().await;
    drop(engine);
    let worker_name = before
        .iter()
        .find(|p| p.ptype == "worker")
        .unwrap()
        .name
        .clone();
    let options = bollard::query_parameters::StopContainerOptionsBuilder::new()
        .t(0)
        .build();
    h.docker
        .stop_container(&worker_name, Some(options))
        .await
        .unwrap();
    let engine = h.engine().await;
    let procs = wait_for(&engine, "adopt", "the stopped worker running again", |p| {
        p.iter()
            .any(|p| p.name == worker_name && p.state == ProcessState::Up && p.restarts == 1)
    })
    .await;
    assert_eq!(procs.len(), 3);

    engine.stop_all().await;
    assert!(h.containers().await.is_empty());
    assert!(engine.apps().await.unwrap().is_empty());
}

#[tokio::test]
async fn stop_all_removes_every_container_of_the_instance() {
    let Some(h) = setup("stopall").await else {
        return;
    };
    let engine = h.engine().await;
    for app in ["stopall-a", "stopall-b"] {
        let d = Deployment {
            template: template(app, "worker", 1, idle()),
            replicas: 2,
        };
        engine.apply(d.clone()).await.unwrap();
        converge(&engine, &d).await;
    }
    assert_eq!(h.containers().await.len(), 4);
    // Another engine's containers (another instance) are not touched.
    let other = Harness {
        docker: h.docker.clone(),
        instance: format!("{}-other", h.instance),
        _cleanup: Cleanup {
            instance: format!("{}-other", h.instance),
        },
    };
    let other_engine = other.engine().await;
    let d = Deployment {
        template: template("stopall-a", "worker", 1, idle()),
        replicas: 1,
    };
    other_engine.apply(d.clone()).await.unwrap();
    converge(&other_engine, &d).await;
    assert_eq!(engine.processes("stopall-a").await.unwrap().len(), 2);

    engine.stop_all().await;
    assert!(h.containers().await.is_empty());
    assert!(engine.apps().await.unwrap().is_empty());
    assert_eq!(other.containers().await.len(), 1);
    other_engine.stop_all().await;
    assert!(other.containers().await.is_empty());
}

#[tokio::test]
async fn a_command_line_expands_port_and_keeps_the_entrypoint() {
    let Some(h) = setup("words").await else {
        return;
    };
    let engine = h.engine().await;
    let mut t = template(
        "words",
        "worker",
        1,
        line("port=$PORT 'single $PORT' \"greeting=${GREETING}\" host=$HOSTNAME $UNSET end"),
    );
    let entrypoint: Vec<String> = [
        "/bin/sh",
        "-c",
        "echo \"argv:$*\"; exec sleep 1000",
        "entry",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    if let Artifact::Image(spec) = &mut t.artifact {
        spec.entrypoint = entrypoint.clone();
        spec.port = 7000;
    }
    let d = Deployment {
        template: t,
        replicas: 1,
    };
    let mut follow = engine.follow_logs("words");
    engine.apply(d.clone()).await.unwrap();
    let p = converge(&engine, &d).await[0].clone();
    let line = follow_until(&mut follow, "argv:").await;
    assert_eq!(
        line.text,
        format!(
            "argv:port=7000 single $PORT greeting=hi host={} end",
            p.name
        )
    );
    let mut argv = entrypoint;
    argv.extend(
        [
            "port=7000",
            "single $PORT",
            "greeting=hi",
            &format!("host={}", p.name),
            "end",
        ]
        .iter()
        .map(|s| s.to_string()),
    );
    assert_eq!(p.argv, argv);
    assert_eq!(p.command, d.template.command.display());
    // The image's CMD, as Args.
    let d = Deployment {
        template: template(
            "words",
            "web",
            1,
            Command::Args(vec![
                "httpd".into(),
                "-f".into(),
                "-p".into(),
                "5000".into(),
                "-h".into(),
                "/www".into(),
            ]),
        ),
        replicas: 1,
    };
    engine.apply(d.clone()).await.unwrap();
    let web = converge(&engine, &d).await;
    let web = web.iter().find(|p| p.ptype == "web").unwrap();
    assert!(http_get(web.endpoint.unwrap()).await.is_some());
    engine.stop_all().await;
}

#[tokio::test]
async fn probes_decide_readiness() {
    let Some(h) = setup("probes").await else {
        return;
    };
    let engine = h.engine().await;
    let probe = |action| Probe {
        action,
        initial_delay: Duration::ZERO,
        period: Duration::from_millis(200),
        timeout: Duration::from_secs(2),
        failure_threshold: 1,
    };
    // A worker ready once a file exists (exec probe).
    let mut t = template("probes", "worker", 1, idle());
    t.readiness = Some(probe(ProbeAction::Exec {
        command: vec!["test".into(), "-f".into(), "/tmp/ready".into()],
    }));
    let worker = Deployment {
        template: t,
        replicas: 1,
    };
    // A web process whose HTTP probe goes to another container port,
    // published too.
    let mut t = template(
        "probes",
        "web",
        1,
        line("sh -c 'httpd -p 6000 -h /www; exec httpd -f -p $PORT -h /www'"),
    );
    t.readiness = Some(probe(ProbeAction::Http {
        path: "/index.html".into(),
        port: Some(6000),
    }));
    t.liveness = Some(probe(ProbeAction::Tcp { port: None }));
    let web = Deployment {
        template: t,
        replicas: 1,
    };
    engine.apply(worker.clone()).await.unwrap();
    engine.apply(web.clone()).await.unwrap();
    converge(&engine, &web).await;
    let procs = wait_for(&engine, "probes", "the worker started", |p| {
        p.iter().any(|p| p.ptype == "worker" && p.pid.is_some())
    })
    .await;
    let w = procs.iter().find(|p| p.ptype == "worker").unwrap().clone();
    assert!(!w.ready);
    let (_, _, code) = exec_output(&engine, "probes", &w.name, run(&["touch", "/tmp/ready"])).await;
    assert_eq!(code, 0);
    converge(&engine, &worker).await;
    // Not ready again once the file is gone.
    exec_output(&engine, "probes", &w.name, run(&["rm", "/tmp/ready"])).await;
    wait_for(&engine, "probes", "the worker not ready", |p| {
        p.iter().any(|p| p.ptype == "worker" && !p.ready)
    })
    .await;
    engine.stop_all().await;
    let _ = h;
}

#[tokio::test]
async fn a_program_that_cannot_start_is_retried_under_the_same_name() {
    let Some(h) = setup("nostart").await else {
        return;
    };
    let d = Deployment {
        template: template(
            "nostart",
            "worker",
            1,
            Command::Args(vec!["/no/such/program".into()]),
        ),
        replicas: 1,
    };
    // With Docker's init as PID 1 (the default), the init runs and fails
    // to exec the program: a crash with its code, the reason in the logs.
    let engine = h.engine().await;
    engine.apply(d.clone()).await.unwrap();
    let first = wait_for(&engine, "nostart", "a crash", |p| {
        p.len() == 1 && p[0].restarts >= 2
    })
    .await;
    assert_eq!(first[0].last_exit.as_deref(), Some("exited with code 127"));
    let logs = engine.logs("nostart", 10, None).await.unwrap();
    assert!(
        logs.iter().any(|l| l.text.contains("/no/such/program")),
        "{logs:#?}"
    );
    engine.stop_all().await;
    assert!(h.containers().await.is_empty());

    // Without it, Docker refuses the start: an error, with its reason.
    let engine = DockerEngine::connect(
        h.docker.clone(),
        DockerConfig {
            init: false,
            ..h.config()
        },
    )
    .await
    .unwrap();
    engine.apply(d.clone()).await.unwrap();
    let first = wait_for(&engine, "nostart", "an error", |p| {
        p.len() == 1 && p[0].state == ProcessState::Error
    })
    .await;
    let reason = first[0].last_exit.clone().unwrap_or_default();
    assert!(reason.contains("/no/such/program"), "{reason}");
    let again = wait_for(&engine, "nostart", "two tries", |p| {
        p.len() == 1 && p[0].restarts >= 2
    })
    .await;
    assert_eq!(again[0].name, first[0].name);
    assert!(!again[0].ready);
    engine.stop_all().await;
    assert!(h.containers().await.is_empty());
}

#[tokio::test]
async fn a_failing_liveness_probe_restarts_the_container() {
    let Some(h) = setup("liveness").await else {
        return;
    };
    let engine = h.engine().await;
    let mut t = template(
        "liveness",
        "worker",
        1,
        line("sh -c 'touch /tmp/alive; while true; do sleep 0.2; done'"),
    );
    t.grace_period = Duration::from_secs(2);
    t.liveness = Some(Probe {
        action: ProbeAction::Exec {
            command: vec!["test".into(), "-f".into(), "/tmp/alive".into()],
        },
        initial_delay: Duration::ZERO,
        period: Duration::from_millis(200),
        timeout: Duration::from_secs(2),
        failure_threshold: 2,
    });
    let d = Deployment {
        template: t,
        replicas: 1,
    };
    engine.apply(d.clone()).await.unwrap();
    let p = converge(&engine, &d).await[0].clone();
    let (_, _, code) = exec_output(&engine, "liveness", &p.name, run(&["rm", "/tmp/alive"])).await;
    assert_eq!(code, 0);
    let procs = wait_for(&engine, "liveness", "a restart", |p| {
        p.len() == 1 && p[0].restarts == 1 && p[0].state == ProcessState::Up
    })
    .await;
    assert_eq!(procs[0].name, p.name);
    assert_eq!(procs[0].last_exit.as_deref(), Some("liveness probe failed"));
    assert_ne!(procs[0].pid, p.pid);
    engine.stop_all().await;
    assert!(h.containers().await.is_empty());
}

#[tokio::test]
async fn what_the_engine_refuses() {
    let Some(h) = setup("refuse").await else {
        return;
    };
    let engine = h.engine().await;
    let mut t = template("refuse", "web", 1, httpd());
    t.artifact = Artifact::Checkout {
        path: "/tmp".into(),
    };
    let d = Deployment {
        template: t,
        replicas: 1,
    };
    assert!(matches!(
        engine.apply(d).await,
        Err(EngineError::Unsupported(_))
    ));
    assert!(!engine.capabilities().checkouts && engine.capabilities().images);
    let d = Deployment {
        template: template("refuse", "web", 1, line("echo $(date)")),
        replicas: 1,
    };
    assert!(matches!(
        engine.apply(d).await,
        Err(EngineError::Invalid(_))
    ));
    let mut t = template("refuse", "web", 1, httpd());
    if let Artifact::Image(spec) = &mut t.artifact {
        spec.reference = "Not A Reference".into();
    }
    let d = Deployment {
        template: t,
        replicas: 1,
    };
    assert!(matches!(
        engine.apply(d).await,
        Err(EngineError::Invalid(_))
    ));
    assert!(engine.processes("refuse").await.unwrap().is_empty());
    engine.stop_all().await;
}

#[tokio::test]
async fn an_unreachable_daemon_is_unavailable() {
    // A socket file nobody listens on any more.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("docker.sock");
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    let docker = Docker::connect_with_unix(
        &format!("unix://{}", path.display()),
        5,
        bollard::API_DEFAULT_VERSION,
    )
    .unwrap();
    match DockerEngine::connect(docker, DockerConfig::new("unreachable")).await {
        Err(EngineError::Unavailable { source, .. }) => assert!(source.is_some()),
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("connected to nothing"),
    }
}

/// A private registry on 127.0.0.1 (Debian's `docker-registry`), killed
/// when dropped.
struct Registry {
    child: std::process::Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start_registry() -> Option<Registry> {
    let binary = ["/usr/bin/docker-registry", "/usr/local/bin/registry"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .ok()?
        .local_addr()
        .ok()?
        .port();
    let dir = tempfile::tempdir().ok()?;
    let config = format!(
        "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n",
        dir.path().join("data").display()
    );
    let path = dir.path().join("config.yml");
    std::fs::write(&path, config).ok()?;
    let child = std::process::Command::new(binary)
        .arg("serve")
        .arg(&path)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .ok()?;
    let registry = Registry {
        child,
        port,
        _dir: dir,
    };
    for _ in 0..100 {
        if TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            return Some(registry);
        }
        sleep(Duration::from_millis(100)).await;
    }
    None
}

#[tokio::test]
async fn images_are_pulled_when_missing_and_unknown_ones_are_invalid() {
    let Some(h) = setup("pull").await else { return };
    let Some(registry) = start_registry().await else {
        skipped("the pull test: no docker-registry to run");
        return;
    };
    let repo = format!("127.0.0.1:{}/drycc-test/pulled", registry.port);
    let tag = format!("{}", std::process::id());
    let reference = format!("{repo}:{tag}");
    let options = TagImageOptionsBuilder::new().repo(&repo).tag(&tag).build();
    h.docker.tag_image(IMAGE, Some(options)).await.unwrap();
    let options = PushImageOptionsBuilder::new().tag(&tag).build();
    let mut push = h.docker.push_image(&repo, Some(options), None);
    while let Some(item) = push.next().await {
        item.unwrap();
    }
    let options = RemoveImageOptionsBuilder::new().noprune(true).build();
    h.docker
        .remove_image(&reference, Some(options), None)
        .await
        .unwrap();

    let engine = h.engine().await;
    let mut t = template("pull", "web", 1, httpd());
    if let Artifact::Image(spec) = &mut t.artifact {
        spec.reference = reference.clone();
    }
    let d = Deployment {
        template: t.clone(),
        replicas: 1,
    };
    engine.apply(d.clone()).await.unwrap();
    let p = converge(&engine, &d).await;
    assert!(http_get(p[0].endpoint.unwrap()).await.is_some());

    if let Artifact::Image(spec) = &mut t.artifact {
        spec.reference = format!("127.0.0.1:{}/drycc-test/nope:1", registry.port);
    }
    let d = Deployment {
        template: t,
        replicas: 1,
    };
    match engine.apply(d).await {
        Err(EngineError::Invalid(reason)) => assert!(reason.contains("nope"), "{reason}"),
        other => panic!("expected Invalid, got {other:?}"),
    }
    engine.stop_all().await;
    let _ = h
        .docker
        .remove_image(
            &reference,
            Some(RemoveImageOptionsBuilder::new().noprune(true).build()),
            None,
        )
        .await;
}

/// The slug image of the checkout tests: busybox with an entrypoint and a
/// working directory of its own, which a checkout's process must not get.
const SLUG_IMAGE: &str = "drycc-engine-docker-test/slug:1";

static SLUG_BUILT: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();

impl Harness {
    /// An engine running checkouts in `SLUG_IMAGE`.
    async fn slug_engine(&self) -> Arc<DockerEngine> {
        SLUG_BUILT
            .get_or_init(|| async {
                drycc_images::testing::build_busybox_image(
                    &self.docker,
                    SLUG_IMAGE,
                    "RUN [\"/bin/sh\", \"-c\", \"mkdir -p /tmp /srv\"]\n\
                     WORKDIR /srv\n\
                     ENTRYPOINT [\"echo\", \"wrapped by the slug image's entrypoint:\"]\n\
                     CMD [\"nothing\"]",
                )
                .await
                .expect("the slug image");
            })
            .await;
        let config = DockerConfig {
            slug_image: Some(SLUG_IMAGE.to_string()),
            ..self.config()
        };
        DockerEngine::connect(self.docker.clone(), config)
            .await
            .unwrap()
    }
}

fn checkout_template(
    app: &str,
    ptype: &str,
    dir: &std::path::Path,
    command: Command,
) -> ProcessTemplate {
    ProcessTemplate {
        artifact: Artifact::Checkout {
            path: dir.to_path_buf(),
        },
        ..template(app, ptype, 1, command)
    }
}

#[tokio::test]
async fn checkouts_run_in_the_slug_image_with_their_directory_at_app() {
    let Some(h) = setup("checkout").await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("www")).unwrap();
    std::fs::write(
        dir.path().join("www/index.html"),
        "hello from the checkout\n",
    )
    .unwrap();
    let engine = h.slug_engine().await;
    assert!(engine.capabilities().checkouts && engine.capabilities().images);

    // Shell syntax (`&&`, a redirection, variables) works, as natively;
    // what the process writes into /app lands in the checkout.
    let script = "echo a && echo b > /app/out && echo \"$HOME $PWD $PORT $GREETING\" > /app/env \
                  && exec sleep 1000";
    let worker = Deployment {
        template: checkout_template("checkout", "worker", dir.path(), line(script)),
        replicas: 1,
    };
    let web = Deployment {
        template: checkout_template(
            "checkout",
            "web",
            dir.path(),
            line("exec httpd -f -p $PORT -h /app/www"),
        ),
        replicas: 1,
    };
    engine.apply(worker.clone()).await.unwrap();
    engine.apply(web.clone()).await.unwrap();
    converge(&engine, &web).await;
    let procs = converge(&engine, &worker).await;
    let out = dir.path().join("out");
    poll("the worker's file in the checkout", || async {
        std::fs::read_to_string(&out).is_ok_and(|s| s == "b\n")
    })
    .await;
    let env = dir.path().join("env");
    poll("the worker's environment in the checkout", || async {
        std::fs::read_to_string(&env).is_ok_and(|s| s == "/app /app 5000 hi\n")
    })
    .await;
    poll("the worker's output", || async {
        let logs = engine.logs("checkout", 100, None).await.unwrap();
        let texts: Vec<&str> = logs.iter().map(|l| l.text.as_str()).collect();
        texts == ["a"]
    })
    .await;
    let worker_proc = procs.iter().find(|p| p.ptype == "worker").unwrap();
    assert_eq!(worker_proc.argv, ["/bin/sh", "-c", script]);
    assert_eq!(worker_proc.command, script);
    assert_eq!(worker_proc.image.as_deref(), Some(SLUG_IMAGE));
    assert_eq!(worker_proc.restarts, 0);

    // The checkout's files are there for the process and for exec, whose
    // working directory is /app too.
    let (stdout, _, code) = exec_output(
        &engine,
        "checkout",
        &worker_proc.name,
        run(&["sh", "-c", "pwd && cat www/index.html"]),
    )
    .await;
    assert_eq!(code, 0);
    assert_eq!(stdout, "/app\nhello from the checkout\n");
    let web_proc = procs.iter().find(|p| p.ptype == "web").unwrap();
    let page = http_get(web_proc.endpoint.unwrap()).await.unwrap();
    assert!(page.contains("hello from the checkout"), "{page}");

    // A new engine adopts the checkout containers as they run.
    engine.close().await;
    drop(engine);
    let engine = h.slug_engine().await;
    let adopted = wait_for(&engine, "checkout", "adopted and ready", |p| {
        p.len() == 2 && p.iter().all(|p| p.ready)
    })
    .await;
    for p in &procs {
        let again = adopted
            .iter()
            .find(|a| a.name == p.name)
            .expect("same name");
        assert_eq!(again.pid, p.pid, "not restarted");
        assert_eq!(again.restarts, 0);
        assert_eq!(again.endpoint, p.endpoint);
        assert_eq!(again.argv, p.argv);
        assert_eq!(again.image.as_deref(), Some(SLUG_IMAGE));
    }
    engine.apply(worker.clone()).await.unwrap();
    engine.apply(web.clone()).await.unwrap();
    let now = engine.processes("checkout").await.unwrap();
    assert!(is_converged(&worker, &now) && is_converged(&web, &now));
    let page = http_get(web_proc.endpoint.unwrap()).await.unwrap();
    assert!(page.contains("hello from the checkout"), "{page}");

    // One that stopped while no engine ran is started again, with its
    // mount.
    engine.close().await;
    drop(engine);
    std::fs::remove_file(&out).unwrap();
    let options = bollard::query_parameters::StopContainerOptionsBuilder::new()
        .t(0)
        .build();
    h.docker
        .stop_container(&worker_proc.name, Some(options))
        .await
        .unwrap();
    let engine = h.slug_engine().await;
    wait_for(
        &engine,
        "checkout",
        "the stopped worker running again",
        |p| {
            p.iter().any(|p| {
                p.name == worker_proc.name && p.state == ProcessState::Up && p.restarts == 1
            })
        },
    )
    .await;
    poll("the restarted worker's file in the checkout", || async {
        std::fs::read_to_string(&out).is_ok_and(|s| s == "b\n")
    })
    .await;

    engine.stop_all().await;
    assert!(h.containers().await.is_empty());
}

#[tokio::test]
async fn checkouts_need_a_slug_image_that_exists() {
    let Some(h) = setup("slugless").await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let checkout = |command| Deployment {
        template: checkout_template("slugless", "web", dir.path(), command),
        replicas: 1,
    };
    let engine = h.engine().await;
    assert!(!engine.capabilities().checkouts);
    match engine.apply(checkout(line("exec sleep 1000"))).await {
        Err(EngineError::Unsupported(reason)) => assert!(reason.contains("slug image"), "{reason}"),
        other => panic!("expected Unsupported, got {other:?}"),
    }
    engine.stop_all().await;

    let engine = h.slug_engine().await;
    for bad in [line(""), line("  "), Command::Args(Vec::new())] {
        assert!(matches!(
            engine.apply(checkout(bad)).await,
            Err(EngineError::Invalid(_))
        ));
    }
    let mut relative = checkout(line("exec sleep 1000"));
    relative.template.artifact = Artifact::Checkout {
        path: "relative/dir".into(),
    };
    assert!(matches!(
        engine.apply(relative).await,
        Err(EngineError::Invalid(_))
    ));
    engine.stop_all().await;

    // A slug image that cannot be pulled refuses checkouts like any image.
    if let Some(registry) = drycc_images::testing::test_registry() {
        let config = DockerConfig {
            slug_image: Some(format!("{registry}/drycc-test/no-such-slug:1")),
            ..h.config()
        };
        let engine = DockerEngine::connect(h.docker.clone(), config)
            .await
            .unwrap();
        match engine.apply(checkout(line("exec sleep 1000"))).await {
            Err(EngineError::Invalid(reason)) => {
                assert!(reason.contains("no-such-slug"), "{reason}")
            }
            other => panic!("expected Invalid, got {other:?}"),
        }
        engine.stop_all().await;
    } else {
        skipped("checkouts_need_a_slug_image_that_exists: no DRYCC_TEST_REGISTRY for the pull");
    }
    assert!(h.containers().await.is_empty());
}
