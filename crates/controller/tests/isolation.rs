//! Apps cannot reach each other or the platform: a root controller runs
//! each app as a user of its own. A process of one app tries to read the
//! controller's database and data directory, the other app's checkout and
//! `/proc/<pid>/environ`, and to signal the controller and the other app's
//! process; every attempt must fail with a permission error, while its own
//! checkout and home stay usable. From the host, its process runs with the
//! app's uid, no supplementary groups and `NoNewPrivs: 1`, and an
//! environment without the controller's secrets.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::json;
use support::{exec, push, tree_repo, Api, Controller};

const LONG: Duration = Duration::from_secs(60);
/// Passed to the controller only: no app may see it.
const CONTROLLER_SECRET: &str = "router-secret-that-apps-never-see";

/// Tries each access and prints `<what>: <outcome>`, then waits.
const PROBE: &str = r#"
import errno, os, time

def attempt(what, action):
    try:
        action()
        print(what + ": allowed", flush=True)
    except PermissionError as e:
        print(what + ": denied " + errno.errorcode.get(e.errno, "?"), flush=True)
    except Exception as e:
        print(what + ": failed otherwise " + type(e).__name__ + " " + str(e), flush=True)

def read(path):
    with open(path, "rb") as f:
        f.read(1)

def write_home():
    with open(os.path.join(os.environ["HOME"], "scratch"), "w") as f:
        f.write("mine")

env = os.environ
attempt("read the database", lambda: read(env["TARGET_DB"]))
attempt("list the data directory", lambda: os.listdir(env["TARGET_DATA"]))
attempt("list the other checkout", lambda: os.listdir(env["TARGET_CHECKOUT"]))
attempt("read the other checkout", lambda: read(env["TARGET_CHECKOUT"] + "/Procfile"))
attempt("read the other environ", lambda: read("/proc/" + env["TARGET_PID"] + "/environ"))
attempt("signal the controller", lambda: os.kill(int(env["CONTROLLER_PID"]), 0))
attempt("signal the other app", lambda: os.kill(int(env["TARGET_PID"]), 0))
attempt("read its own checkout", lambda: read("Procfile"))
attempt("write its own home", write_home)
print("probe done", flush=True)
time.sleep(900)
"#;

fn root() -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    eprintln!(
        "skipped: apps run as users of their own only under a root controller; run this test as root"
    );
    false
}

/// A repository whose `worker` runs `command`, with `probe.py`.
fn repo(command: &str) -> tempfile::TempDir {
    let source = tempfile::tempdir().expect("temp dir");
    std::fs::write(
        source.path().join("Procfile"),
        format!("worker: {command}\n"),
    )
    .expect("Procfile");
    std::fs::write(source.path().join("probe.py"), PROBE).expect("probe.py");
    tree_repo(source.path())
}

fn deploy(controller: &Controller, api: &Api, app: &str, command: &str, env: serde_json::Value) {
    let created = api.post("/v2/apps/", json!({ "id": app }));
    assert_eq!(created.status, 201, "{}", created.text);
    let config = api.post(&format!("/v2/apps/{app}/config/"), json!({ "values": env }));
    assert_eq!(config.status, 201, "{}", config.text);
    let repo = repo(command);
    let token = api.token.clone().expect("token");
    let (ok, output) = push(repo.path(), &controller.url, app, "alice", &token);
    assert!(ok, "push: {output}\n{}", controller.log());
    let scaled = api.post(&format!("/v2/apps/{app}/scale/"), json!({"worker": 1}));
    assert_eq!(scaled.status, 204, "{}", scaled.text);
}

fn worker(api: &Api, app: &str) -> (String, u32) {
    let pods = api.wait_pods(app, LONG, "a worker", |pods| {
        pods.iter()
            .any(|p| p["type"] == "worker" && p["state"] == "up")
    });
    let name = pods
        .iter()
        .find(|p| p["type"] == "worker")
        .and_then(|p| p["name"].as_str())
        .expect("a worker")
        .to_string();
    let pid = api.describe(app, &name)["pid"]
        .as_u64()
        .expect("a running process has a pid") as u32;
    (name, pid)
}

/// The controller's database file: the SQLite file, or on PostgreSQL (a
/// server, not a file) the controller's log in its data directory, which
/// stands in for it.
fn database_file(controller: &Controller) -> std::path::PathBuf {
    let data_dir = controller.data_dir.path();
    if controller.database.is_some() {
        data_dir.join("controller.log")
    } else {
        data_dir.join("drycc.db")
    }
}

/// A field of `/proc/<pid>/status`, blanks normalised.
fn status_field(pid: u32, field: &str) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .map(|v| v.split_whitespace().collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn environ(pid: u32) -> Vec<String> {
    std::fs::read(format!("/proc/{pid}/environ"))
        .expect("environ")
        .split(|b| *b == 0)
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .collect()
}

#[test]
fn apps_cannot_reach_each_other_or_the_controller() {
    if !root() {
        return;
    }
    let controller = Controller::start(&[("DRYCC_ROUTER_SECRET", CONTROLLER_SECRET)]);
    let mut api = Api::new(&controller.url);
    api.login("alice", "alice-password");

    // The target: an app with a secret in its environment.
    deploy(
        &controller,
        &api,
        "iso-target",
        "exec sleep 900",
        json!({"TARGET_SECRET": "only-for-the-target"}),
    );
    let (_, target_pid) = worker(&api, "iso-target");
    let target_checkout = std::fs::read_link(format!("/proc/{target_pid}/cwd")).expect("cwd");

    // The prober, pointed at everything it must not reach.
    let data_dir = controller.data_dir.path();
    let database = database_file(&controller);
    deploy(
        &controller,
        &api,
        "iso-prober",
        "exec python3 probe.py",
        json!({
            "TARGET_DB": database.display().to_string(),
            "TARGET_DATA": data_dir.display().to_string(),
            "TARGET_CHECKOUT": target_checkout.display().to_string(),
            "TARGET_PID": target_pid.to_string(),
            "CONTROLLER_PID": controller.pid().to_string(),
        }),
    );
    let (prober, prober_pid) = worker(&api, "iso-prober");

    let deadline = Instant::now() + LONG;
    let logs = loop {
        let logs = api.get("/v2/apps/iso-prober/logs/?log_lines=100").text;
        if logs.contains("probe done") {
            break logs;
        }
        assert!(
            Instant::now() < deadline,
            "the probe did not finish:\n{logs}\n{}",
            controller.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let outcome = |what: &str| {
        logs.lines()
            .find_map(|l| {
                l.split_once(&format!("{what}: "))
                    .map(|(_, o)| o.to_string())
            })
            .unwrap_or_else(|| panic!("no outcome for {what:?} in:\n{logs}"))
    };
    for (what, errno) in [
        ("read the database", "EACCES"),
        ("list the data directory", "EACCES"),
        ("list the other checkout", "EACCES"),
        ("read the other checkout", "EACCES"),
        ("read the other environ", "EACCES"),
        ("signal the controller", "EPERM"),
        ("signal the other app", "EPERM"),
    ] {
        assert_eq!(outcome(what), format!("denied {errno}"), "{what}:\n{logs}");
    }
    // What is its own stays usable: the denials are the isolation's.
    assert_eq!(outcome("read its own checkout"), "allowed", "{logs}");
    assert_eq!(outcome("write its own home"), "allowed", "{logs}");

    // From the host: its own user, nothing more.
    let uid = status_field(prober_pid, "Uid");
    let ids: Vec<u32> = uid.split(' ').map(|v| v.parse().expect("uid")).collect();
    assert_eq!(ids.len(), 4, "{uid}");
    assert!(
        ids.iter().all(|id| *id == ids[0]),
        "real, effective, saved and fs uid agree: {uid}"
    );
    // The ids of the default range, in order of creation: the target's
    // first, the prober's next.
    assert_eq!(ids[0], 200_001, "the prober's uid: {uid}");
    assert_eq!(status_field(prober_pid, "Gid"), uid, "its own group");
    assert_eq!(
        status_field(prober_pid, "Groups"),
        "",
        "no supplementary groups"
    );
    assert_eq!(status_field(prober_pid, "NoNewPrivs"), "1");
    assert_eq!(
        status_field(target_pid, "Uid"),
        ["200000"; 4].join(" "),
        "the other app has a user of its own"
    );

    // Its environment: the app's, never the controller's secrets.
    let env = environ(prober_pid);
    assert!(
        env.iter().all(|v| !v.contains(CONTROLLER_SECRET)
            && !v.starts_with("DRYCC_ROUTER_SECRET=")
            && !v.starts_with("DRYCC_DATABASE_URL=")
            && !v.contains("only-for-the-target")),
        "{env:#?}"
    );
    let home = env
        .iter()
        .find_map(|v| v.strip_prefix("HOME="))
        .expect("HOME");
    let meta = std::fs::metadata(home).expect("the home exists");
    assert_eq!(
        (
            std::os::unix::fs::MetadataExt::uid(&meta),
            std::os::unix::fs::MetadataExt::mode(&meta) & 0o777
        ),
        (ids[0], 0o700),
        "a private home: {home}"
    );

    // The controller's files: the database is its own alone.
    let db = std::fs::metadata(&database).expect("database");
    assert_eq!(std::os::unix::fs::MetadataExt::mode(&db) & 0o077, 0);
    let checkout_parent = Path::new(&target_checkout).parent().expect("app's slugs");
    assert!(checkout_parent.starts_with(data_dir));

    // `ps:exec` runs as the app's user too.
    let (out, _, code) = exec(&api, "iso-prober", &prober, &["id", "-u"], None);
    assert_eq!(code, 0, "{out}");
    assert_eq!(out.trim(), ids[0].to_string());
}

/// A buildpack (a git repository) whose compile reports who it runs as
/// and tries the controller's database.
fn reporting_buildpack(dir: &Path, database: &Path) {
    std::fs::create_dir_all(dir.join("bin")).expect("bin");
    let write = |name: &str, text: &str| {
        let path = dir.join("bin").join(name);
        std::fs::write(&path, text).expect("script");
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .expect("chmod");
    };
    write("detect", "#!/bin/sh\necho reporter\n");
    write(
        "compile",
        &format!(
            "#!/bin/sh\necho \"compile as uid $(id -u) gid $(id -g) groups $(id -G) home $HOME\"\ngrep NoNewPrivs /proc/self/status\nif cat {} >/dev/null 2>&1; then echo 'database: read'; else echo 'database: denied'; fi\necho built > \"$1/built.txt\"\n",
            database.display()
        ),
    );
    support::git(dir, &["init", "-q", "-b", "main"]);
    support::commit_all(dir, "buildpack");
}

#[test]
fn builds_run_as_the_apps_user() {
    if !root() {
        return;
    }
    let controller = Controller::start(&[]);
    let mut api = Api::new(&controller.url);
    api.login("alice", "alice-password");
    let buildpack = tempfile::tempdir().expect("temp dir");
    reporting_buildpack(buildpack.path(), &database_file(&controller));
    let url = format!("file://{}", buildpack.path().display());
    let app = "iso-build";
    let created = api.post("/v2/apps/", json!({ "id": app }));
    assert_eq!(created.status, 201, "{}", created.text);
    let config = api.post(
        &format!("/v2/apps/{app}/config/"),
        json!({"values": {"BUILDPACK_URL": url}}),
    );
    assert_eq!(config.status, 201, "{}", config.text);
    let repo = repo("exec sleep 900");
    let token = api.token.clone().expect("token");
    let (ok, output) = push(repo.path(), &controller.url, app, "alice", &token);
    assert!(ok, "push: {output}\n{}", controller.log());
    let line = output
        .lines()
        .find_map(|l| {
            l.split_once("compile as uid ")
                .map(|(_, rest)| rest.to_string())
        })
        .unwrap_or_else(|| panic!("no report of the compile:\n{output}"));
    let words: Vec<&str> = line.split_whitespace().collect();
    let uid: u32 = words[0].parse().expect("a uid");
    assert!((200_000..=299_999).contains(&uid), "{line}");
    assert_eq!(words[1..4], ["gid", words[0], "groups"], "{line}");
    assert_eq!(words[4], words[0], "only its own group: {line}");
    assert_eq!(words[5], "home", "{line}");
    assert!(output.contains("NoNewPrivs:\t1"), "{output}");
    assert!(output.contains("database: denied"), "{output}");

    // What the build made is the app's, and its processes run as the
    // same user.
    let scaled = api.post(&format!("/v2/apps/{app}/scale/"), json!({"worker": 1}));
    assert_eq!(scaled.status, 204, "{}", scaled.text);
    let (_, pid) = worker(&api, app);
    let slug = std::fs::read_link(format!("/proc/{pid}/cwd")).expect("cwd");
    let built = std::fs::metadata(slug.join("built.txt")).expect("built.txt");
    assert_eq!(std::os::unix::fs::MetadataExt::uid(&built), uid);
    assert_eq!(
        status_field(pid, "Uid"),
        [uid.to_string().as_str(); 4].join(" ")
    );
}

#[test]
fn a_controller_that_is_not_root_says_apps_share_its_user() {
    use std::os::unix::process::CommandExt;
    // Root starts it as `nobody`.
    if !root() {
        return;
    }
    let nobody = 65_534;
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o711),
    )
    .expect("chmod");
    let data = dir.path().join("data");
    std::fs::create_dir(&data).expect("data dir");
    std::os::unix::fs::chown(&data, Some(nobody), Some(nobody)).expect("chown");
    let log_path = dir.path().join("controller.log");
    let log = std::fs::File::create(&log_path).expect("log");
    let port = support::free_port();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_drycc-controller"))
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("DRYCC_LISTEN", format!("127.0.0.1:{port}"))
        .env("DRYCC_ROUTER_LISTEN", "off")
        .env("DRYCC_DOCKER_HOST", "off")
        .env("DRYCC_DATA_DIR", &data)
        .env("DRYCC_RUN_DIR", data.join("run"))
        .uid(nobody)
        .gid(nobody)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start the controller");
    let deadline = Instant::now() + LONG;
    let healthy = loop {
        if reqwest::blocking::get(format!("http://127.0.0.1:{port}/healthz"))
            .is_ok_and(|r| r.status().is_success())
        {
            break true;
        }
        if child.try_wait().ok().flatten().is_some() || Instant::now() > deadline {
            break false;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    let _ = child.wait();
    let text = std::fs::read_to_string(&log_path).unwrap_or_default();
    assert!(healthy, "the controller did not start:\n{text}");
    assert!(
        text.contains("does not run as root") && text.contains("share it"),
        "{text}"
    );
}
