//! Processes that run as their app's own user (`ProcessTemplate::user`):
//! the uid and gid, no supplementary groups, `no_new_privs`, a private
//! home, and exec sessions and exec probes under the same user. Switching
//! users needs root: as anyone else these tests say so and pass.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::sync::Arc;
use std::time::Duration;

use drycc_engine::{
    Artifact, Command, Deployment, Engine, ExecOutput, ExecRequest, ProcessState, ProcessStatus,
    ProcessTemplate, RunAs,
};
use drycc_engine_local::{LocalConfig, LocalEngine};
use tempfile::TempDir;
use tokio::time::{timeout_at, Instant};

const DEADLINE: Duration = Duration::from_secs(30);
const USER: RunAs = RunAs {
    uid: 231_001,
    gid: 231_001,
};

fn root() -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    eprintln!("skipped: switching a process to another user needs root");
    false
}

struct Fixture {
    dir: TempDir,
    engine: Arc<LocalEngine>,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    // The app's user must reach its checkout and home through it.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
    let checkout = dir.path().join("checkout");
    std::fs::create_dir(&checkout).unwrap();
    std::fs::write(checkout.join("data"), "mine\n").unwrap();
    std::os::unix::fs::chown(&checkout, Some(USER.uid), Some(USER.gid)).unwrap();
    std::fs::set_permissions(&checkout, std::fs::Permissions::from_mode(0o700)).unwrap();
    let engine = LocalEngine::new(LocalConfig {
        run_dir: dir.path().join("run"),
        homes_dir: Some(dir.path().join("homes")),
        readiness_poll: Duration::from_millis(50),
        cgroup_parent: format!(
            "drycc-test-{}",
            dir.path().file_name().unwrap().to_string_lossy()
        ),
        ..LocalConfig::default()
    })
    .unwrap();
    Fixture { dir, engine }
}

impl Fixture {
    fn template(&self, app: &str, command: &str) -> ProcessTemplate {
        ProcessTemplate {
            app: app.to_string(),
            ptype: "worker".to_string(),
            release: 1,
            hash: drycc_model::naming::template_hash(app, "worker", 1, 0),
            artifact: Artifact::Checkout {
                path: self.dir.path().join("checkout"),
            },
            command: Command::Line(command.to_string()),
            env: Default::default(),
            grace_period: Duration::from_secs(5),
            readiness: None,
            liveness: None,
            cpu_millis: None,
            memory_bytes: None,
            user: Some(USER),
        }
    }

    async fn wait_up(&self, app: &str) -> ProcessStatus {
        let deadline = Instant::now() + DEADLINE;
        let mut changes = self.engine.changes(None);
        loop {
            changes.borrow_and_update();
            let procs = self.engine.processes(app).await.unwrap();
            if let Some(p) = procs
                .iter()
                .find(|p| p.state == ProcessState::Up && p.ready && p.pid.is_some())
            {
                return p.clone();
            }
            if timeout_at(deadline, changes.changed()).await.is_err() {
                panic!("timed out waiting for a process; processes: {procs:#?}");
            }
        }
    }

    async fn exec(&self, app: &str, name: &str, script: &str) -> (String, i32) {
        let request = ExecRequest {
            command: vec!["sh".into(), "-c".into(), script.into()],
            tty: false,
            stdin: false,
            size: None,
        };
        let mut session = self.engine.exec(app, name, request).await.unwrap();
        let mut out = Vec::new();
        let deadline = Instant::now() + DEADLINE;
        loop {
            match timeout_at(deadline, session.output.recv()).await {
                Ok(Some(ExecOutput::Stdout(b) | ExecOutput::Stderr(b))) => {
                    out.extend_from_slice(&b)
                }
                Ok(Some(ExecOutput::Exit(code))) => {
                    return (String::from_utf8_lossy(&out).into_owned(), code)
                }
                other => panic!("exec did not finish: {other:?}"),
            }
        }
    }
}

/// The `Name:\tvalue` lines of `/proc/<pid>/status`.
fn status_field(pid: u32, field: &str) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .map(|v| v.split_whitespace().collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_runs_as_its_apps_user_with_nothing_more() {
    if !root() {
        return;
    }
    let f = fixture();
    let template = f.template("owned", "echo started as $(id -u); exec sleep 600");
    f.engine
        .apply(Deployment {
            template,
            replicas: 1,
        })
        .await
        .unwrap();
    let process = f.wait_up("owned").await;
    let pid = process.pid.unwrap();
    let uid = USER.uid.to_string();
    assert_eq!(status_field(pid, "Uid"), [uid.as_str(); 4].join(" "));
    assert_eq!(
        status_field(pid, "Gid"),
        [USER.gid.to_string().as_str(); 4].join(" ")
    );
    assert_eq!(status_field(pid, "Groups"), "", "no supplementary groups");
    assert_eq!(status_field(pid, "NoNewPrivs"), "1");

    // Its home: private, its own, and where HOME points.
    let home = f.dir.path().join("homes/owned");
    let meta = std::fs::metadata(&home).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (USER.uid, USER.gid));
    assert_eq!(meta.mode() & 0o777, 0o700);
    let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    let wanted = format!("HOME={}", home.display());
    assert!(
        environ
            .split(|b| *b == 0)
            .any(|var| var == wanted.as_bytes()),
        "HOME is the app's own"
    );

    // The output still reaches its log, written through the descriptor the
    // engine opened before the switch.
    let deadline = Instant::now() + DEADLINE;
    loop {
        let logs = f.engine.logs("owned", 10, None).await.unwrap();
        if logs.iter().any(|l| l.text == format!("started as {uid}")) {
            break;
        }
        assert!(Instant::now() < deadline, "no output in the log: {logs:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // An exec session: same user, same confinement, a writable home and
    // checkout.
    let (out, code) = f
        .exec(
            "owned",
            &process.name,
            "id -u; id -G; grep NoNewPrivs /proc/self/status; touch \"$HOME/x\" ./y && cat data",
        )
        .await;
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        out,
        format!("{uid}\n{}\nNoNewPrivs:\t1\nmine\n", USER.gid),
        "exec runs as the app's user"
    );
    f.engine.stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_probes_run_as_the_apps_user() {
    if !root() {
        return;
    }
    let f = fixture();
    let mut template = f.template("probed", "exec sleep 600");
    // Ready only when the check runs as the app's user.
    template.readiness = Some(drycc_engine::Probe {
        action: drycc_engine::ProbeAction::Exec {
            command: vec![
                "sh".into(),
                "-c".into(),
                format!("test \"$(id -u)\" = {}", USER.uid),
            ],
        },
        initial_delay: Duration::ZERO,
        period: Duration::from_millis(100),
        timeout: Duration::from_secs(5),
        failure_threshold: 3,
    });
    f.engine
        .apply(Deployment {
            template,
            replicas: 1,
        })
        .await
        .unwrap();
    f.wait_up("probed").await;
    f.engine.stop_all().await;
}
