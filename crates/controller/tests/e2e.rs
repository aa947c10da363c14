//! The platform end to end: a real controller, a real `git push`, real
//! processes, checked through the REST API.

mod support;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use support::{alive, exec, fixture_repo, push, Api, Controller};

const LONG: Duration = Duration::from_secs(60);

fn names(pods: &[Value]) -> BTreeSet<String> {
    pods.iter()
        .map(|p| p["name"].as_str().unwrap_or_default().to_string())
        .collect()
}

fn count_up(pods: &[Value], ptype: &str) -> usize {
    pods.iter()
        .filter(|p| p["type"] == ptype && p["state"] == "up")
        .count()
}

fn pid_of(api: &Api, app: &str, name: &str) -> i32 {
    api.describe(app, name)["pid"]
        .as_i64()
        .expect("a running process has a pid") as i32
}

fn scale(api: &Api, app: &str, body: Value) {
    let answer = api.post(&format!("/v2/apps/{app}/scale/"), body.clone());
    assert_eq!(answer.status, 204, "scale {body}: {}", answer.text);
}

#[test]
fn push_scale_restart_exec_and_config() {
    let controller = Controller::start(&[]);
    let mut api = Api::new(&controller.url);
    api.login("alice", "s3cret-pass");
    let app = "e2e-webapp";
    let created = api.post("/v2/apps/", json!({"id": app}));
    assert_eq!(created.status, 201, "{}", created.text);

    // Record SIGTERMs of web processes in a file the test can read.
    let term_log = tempfile::NamedTempFile::new().expect("temp file");
    // The app runs as a user of its own (under a root controller).
    std::fs::set_permissions(
        term_log.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o666),
    )
    .expect("open the file to the app");
    let term_path = term_log.path().to_string_lossy().to_string();
    let config = api.post(
        &format!("/v2/apps/{app}/config/"),
        json!({"values": {"TERM_LOG": term_path}, "termination_grace_period": {"stubborn": 2}}),
    );
    assert_eq!(config.status, 201, "{}", config.text);

    // git push: only web starts, at 1, and answers HTTP on its PORT.
    let repo = fixture_repo("webapp");
    let token = api.token.clone().expect("token");
    let (ok, output) = push(repo.path(), &controller.url, app, "alice", &token);
    assert!(ok, "push failed:\n{output}\n{}", controller.log());
    assert!(
        output
            .contains("remote: -----> Procfile declares types -> crasher, sleeper, stubborn, web"),
        "{output}"
    );
    assert!(
        output.contains("done, v3"),
        "push output must end with the release: {output}"
    );
    let pods = api.pods(app);
    assert_eq!(
        pods.len(),
        1,
        "only web runs after the first push: {pods:#?}"
    );
    assert_eq!(pods[0]["type"], "web");
    assert_eq!(pods[0]["state"], "up");
    assert_eq!(pods[0]["release"], "v3");
    let web = pods[0]["name"].as_str().expect("name").to_string();
    assert!(web.starts_with(&format!("{app}-web-")), "{web}");
    let port = api.describe(app, &web)["port"].as_u64().expect("web port");
    let body = reqwest::blocking::get(format!("http://127.0.0.1:{port}/"))
        .and_then(|r| r.text())
        .expect("web answers HTTP");
    assert_eq!(body, format!("hello from {web}\n"));
    // The router sends <app>.localhost to the web process.
    let routed = reqwest::blocking::Client::new()
        .get(format!("{}/", controller.router_url))
        .header("Host", format!("{app}.localhost"))
        .send()
        .and_then(|r| r.text())
        .expect("router answers");
    assert_eq!(routed, format!("hello from {web}\n"));
    let structure = api.get(&format!("/v2/apps/{app}/")).body["structure"].clone();
    assert_eq!(
        structure,
        json!({"web": 1, "sleeper": 0, "stubborn": 0, "crasher": 0})
    );

    // Follow the app's log over the WebSocket while a sleeper starts.
    let follower = support::follow_logs(&api, app);

    // sleeper=1, then web=5, web=3 (two get SIGTERM), sleeper=0.
    scale(&api, app, json!({"sleeper": 1}));
    let pods = api.pods(app);
    assert_eq!(count_up(&pods, "sleeper"), 1);
    assert_eq!(count_up(&pods, "web"), 1);
    let followed = follower.join().expect("log follower");
    assert!(
        followed
            .iter()
            .any(|l| l.contains(&format!("{app}[{app}-sleeper-")) && l.ends_with("]: sleeping")),
        "the followed log shows the sleeper's output: {followed:#?}"
    );
    scale(&api, app, json!({"web": 5}));
    let five = api.pods_of(app, "web");
    assert_eq!(five.len(), 5);
    assert!(five.iter().all(|p| p["state"] == "up"), "{five:#?}");
    scale(&api, app, json!({"web": 3}));
    let three = api.pods_of(app, "web");
    assert_eq!(three.len(), 3, "{three:#?}");
    let removed: BTreeSet<String> = names(&five).difference(&names(&three)).cloned().collect();
    assert_eq!(removed.len(), 2);
    let terms: BTreeSet<String> = std::fs::read_to_string(term_log.path())
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(terms, removed, "the removed web processes got SIGTERM");
    scale(&api, app, json!({"sleeper": 0}));
    assert!(api.pods_of(app, "sleeper").is_empty());

    // A type that ignores SIGTERM is SIGKILLed after its 2 s grace.
    scale(&api, app, json!({"stubborn": 1}));
    let stubborn = api.pods_of(app, "stubborn");
    let stubborn_name = stubborn[0]["name"].as_str().expect("name").to_string();
    let stubborn_pid = pid_of(&api, app, &stubborn_name);
    scale(&api, app, json!({"stubborn": 0}));
    assert!(api.pods_of(app, "stubborn").is_empty());
    assert!(!alive(stubborn_pid), "the stubborn process was killed");
    let logs = api
        .get(&format!("/v2/apps/{app}/logs/?log_lines=1000"))
        .text;
    assert!(
        logs.lines()
            .any(|l| l.contains(&stubborn_name) && l.contains("SIGKILL")),
        "the log records the SIGKILL after the grace period:\n{logs}"
    );

    // Restart one process: a new name, and the old pid is gone.
    let victim = three[0]["name"].as_str().expect("name").to_string();
    let victim_pid = pid_of(&api, app, &victim);
    let answer = api.post(
        &format!("/v2/apps/{app}/pods/web/{victim}/restart/"),
        json!({}),
    );
    assert_eq!(answer.status, 200, "{}", answer.text);
    let after = api.pods_of(app, "web");
    assert_eq!(after.len(), 3);
    assert!(!names(&after).contains(&victim));
    assert!(!alive(victim_pid), "the old process is gone");

    // Restart the type: every process replaced, never zero ready web.
    let before = names(&api.pods_of(app, "web"));
    let watching = Arc::new(AtomicBool::new(true));
    let zero_seen = Arc::new(AtomicUsize::new(0));
    let watcher = {
        let (watching, zero_seen) = (watching.clone(), zero_seen.clone());
        let url = controller.url.clone();
        let token = api.token.clone();
        std::thread::spawn(move || {
            let mut watcher = Api::new(&url);
            watcher.token = token;
            let mut samples = 0;
            while watching.load(Ordering::SeqCst) {
                if count_up(&watcher.pods(app), "web") == 0 {
                    zero_seen.fetch_add(1, Ordering::SeqCst);
                }
                samples += 1;
            }
            samples
        })
    };
    let answer = api.post(&format!("/v2/apps/{app}/pods/web/restart/"), json!({}));
    watching.store(false, Ordering::SeqCst);
    let samples = watcher.join().expect("watcher");
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert!(samples > 0);
    assert_eq!(
        zero_seen.load(Ordering::SeqCst),
        0,
        "a moment with zero ready web processes"
    );
    let restarted = api.pods_of(app, "web");
    assert_eq!(restarted.len(), 3);
    assert!(
        names(&restarted).is_disjoint(&before),
        "every web process replaced"
    );

    // exec: output and exit codes.
    let target = restarted[0]["name"].as_str().expect("name").to_string();
    let (out, _, code) = exec(&api, app, &target, &["date"], None);
    assert_eq!(code, 0);
    assert!(!out.trim().is_empty(), "date printed something");
    let (_, _, code) = exec(&api, app, &target, &["sh", "-c", "exit 3"], None);
    assert_eq!(code, 3);
    let (out, _, code) = exec(
        &api,
        app,
        &target,
        &["sh", "-c", "echo $HOSTNAME; cat"],
        Some("piped\n"),
    );
    assert_eq!(code, 0);
    assert_eq!(out, format!("{target}\npiped\n"));

    // A type that exits at once: crashed, with growing restarts. Like a
    // Kubernetes pod without a probe it counts as ready once started, so
    // the scale may converge before the first crash (204) or, if the crash
    // comes first, answer 503 as soon as it is seen crash-looping.
    let answer = api.post(&format!("/v2/apps/{app}/scale/"), json!({"crasher": 1}));
    match answer.status {
        204 => {}
        503 => assert!(
            answer.body["detail"]
                .as_str()
                .unwrap_or_default()
                .contains("crasher"),
            "{}",
            answer.text
        ),
        other => panic!("scale crasher=1 answered {other}: {}", answer.text),
    }
    api.wait_pods(app, LONG, "crasher restarts >= 2", |pods| {
        pods.iter()
            .any(|p| p["type"] == "crasher" && p["restarts"].as_u64().unwrap_or(0) >= 2)
    });
    api.wait_pods(app, LONG, "crasher in state crashed", |pods| {
        pods.iter()
            .any(|p| p["type"] == "crasher" && p["state"] == "crashed")
    });
    let structure = api.get(&format!("/v2/apps/{app}/")).body["structure"].clone();
    assert_eq!(structure["crasher"], 1, "the structure stays as requested");
    scale(&api, app, json!({"crasher": 0}));

    // A config change rolls every running type to the new version.
    scale(&api, app, json!({"sleeper": 2}));
    let before = api.pods(app);
    let answer = api.post(
        &format!("/v2/apps/{app}/config/"),
        json!({"values": {"GREETING": "hi"}}),
    );
    assert_eq!(answer.status, 201, "{}", answer.text);
    let after = api.pods(app);
    assert_eq!(count_up(&after, "web"), 3);
    assert_eq!(count_up(&after, "sleeper"), 2);
    assert!(after.iter().all(|p| p["release"] == "v4"), "{after:#?}");
    assert!(
        names(&after).is_disjoint(&names(&before)),
        "new names after the rollout"
    );
    let (out, _, _) = exec(
        &api,
        app,
        after[0]["name"].as_str().expect("name"),
        &["sh", "-c", "echo $GREETING $WORKFLOW_RELEASE"],
        None,
    );
    assert_eq!(out, "hi v4\n");

    // Another branch is stored but not deployed.
    let host = controller.url.trim_start_matches("http://");
    let remote = format!("http://alice:{token}@{host}/git/{app}.git");
    let (ok, output) = {
        let out = std::process::Command::new("git")
            .args(["push", &remote, "main:feature"])
            .current_dir(repo.path())
            .output()
            .expect("git push");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    assert!(ok, "{output}");
    assert!(
        output.contains("Pushed to refs/heads/feature: only main or master deploy"),
        "{output}"
    );
    assert_eq!(
        api.get(&format!("/v2/apps/{app}/releases/")).body["count"],
        4
    );

    // A type that disappears from the Procfile is scaled to 0 and removed;
    // existing counts are kept.
    std::fs::write(
        repo.path().join("Procfile"),
        "web: exec python3 server.py\n",
    )
    .expect("write");
    support::commit_all(repo.path(), "only web");
    let (ok, output) = push(repo.path(), &controller.url, app, "alice", &token);
    assert!(ok, "{output}");
    assert!(output.contains("done, v5"), "{output}");
    let structure = api.get(&format!("/v2/apps/{app}/")).body["structure"].clone();
    assert_eq!(structure, json!({"web": 3}));
    let pods = api.pods(app);
    assert_eq!(pods.len(), 3, "{pods:#?}");
    assert!(pods
        .iter()
        .all(|p| p["type"] == "web" && p["release"] == "v5" && p["state"] == "up"));
}
