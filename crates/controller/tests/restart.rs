//! Stopping and starting the controller: app processes are not restarted.
//! Across a graceful stop (what an upgrade does) and a crash (SIGKILL), the
//! same processes keep running under the same pids and keep serving; the
//! next controller adopts them, with no duplicate and no orphan, and takes
//! changes again at once. `stop-apps` is the explicit way to stop them.

mod support;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use support::{alive, fixture_repo, push, Api, Controller};

/// (name, pid) of every process of the app.
fn processes(api: &Api, app: &str) -> BTreeSet<(String, i32)> {
    api.pods(app)
        .iter()
        .map(|p| {
            let name = p["name"].as_str().unwrap_or_default().to_string();
            let pid = api.describe(app, &name)["pid"].as_i64().unwrap_or(0) as i32;
            (name, pid)
        })
        .collect()
}

fn converged(api: &Api, app: &str, web: usize, sleeper: usize) {
    api.wait_pods(
        app,
        Duration::from_secs(60),
        &format!("web={web} sleeper={sleeper} up"),
        |pods| {
            let up = |t: &str| {
                pods.iter()
                    .filter(|p| p["type"] == t && p["state"] == "up")
                    .count()
            };
            pods.len() == web + sleeper && up("web") == web && up("sleeper") == sleeper
        },
    );
}

/// Steady HTTP load straight at the web processes (the router lives in the
/// controller, so it is down while the controller is): one request after
/// another, round robin, counting answers and failures.
struct Load {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Load {
    fn start(ports: Vec<u16>) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(AtomicU64::new(0));
        let (s, o, f) = (stop.clone(), ok.clone(), failed.clone());
        let thread = std::thread::spawn(move || {
            let client = reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .expect("client");
            let deadline = Instant::now() + Duration::from_secs(600);
            let mut i = 0usize;
            while !s.load(Ordering::Relaxed) && Instant::now() < deadline {
                let port = ports[i % ports.len()];
                i += 1;
                match client.get(format!("http://127.0.0.1:{port}/")).send() {
                    Ok(r) if r.status().is_success() => o.fetch_add(1, Ordering::Relaxed),
                    _ => f.fetch_add(1, Ordering::Relaxed),
                };
            }
        });
        Load {
            stop,
            ok,
            failed,
            thread: Some(thread),
        }
    }

    /// Requests answered so far.
    fn answered(&self) -> u64 {
        self.ok.load(Ordering::Relaxed)
    }

    /// Wait until `more` further requests were answered.
    fn wait_for_more(&self, more: u64) {
        let target = self.answered() + more;
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.answered() < target {
            assert!(Instant::now() < deadline, "the load stalled");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn finish(mut self) -> (u64, u64) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            thread.join().expect("load thread");
        }
        (
            self.ok.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
        )
    }
}

/// Restart and check the same processes run, then that a scale works.
fn assert_adopted(
    controller: &mut Controller,
    api: &mut Api,
    app: &str,
    before: &BTreeSet<(String, i32)>,
) {
    controller.spawn();
    api.url = controller.url.clone();
    let restarted = Instant::now();
    converged(api, app, 4, 6);
    assert_eq!(&processes(api, app), before, "the same processes, no more");
    let mut recorded = controller.recorded_pids();
    recorded.sort();
    let mut expected: Vec<i32> = before.iter().map(|(_, pid)| *pid).collect();
    expected.sort();
    assert_eq!(
        recorded, expected,
        "no orphan: every recorded process is in ps"
    );
    // The controller takes changes at once.
    let answer = api.post(&format!("/v2/apps/{app}/scale/"), json!({"sleeper": 7}));
    assert_eq!(answer.status, 204, "{}", answer.text);
    converged(api, app, 4, 7);
    println!(
        "scale after restart converged {} ms after the controller was started",
        restarted.elapsed().as_millis()
    );
    let answer = api.post(&format!("/v2/apps/{app}/scale/"), json!({"sleeper": 6}));
    assert_eq!(answer.status, 204, "{}", answer.text);
    converged(api, app, 4, 6);
}

#[test]
fn app_processes_outlive_graceful_and_crashed_controllers() {
    let mut controller = Controller::start(&[]);
    let mut api = Api::new(&controller.url);
    api.login("bob", "pass-word-3");
    let app = "restart-app";
    assert_eq!(api.post("/v2/apps/", json!({"id": app})).status, 201);
    let repo = fixture_repo("webapp");
    let token = api.token.clone().expect("token");
    let (ok, output) = push(repo.path(), &controller.url, app, "bob", &token);
    assert!(ok, "{output}");
    let answer = api.post(
        &format!("/v2/apps/{app}/scale/"),
        json!({"web": 4, "sleeper": 6}),
    );
    assert_eq!(answer.status, 204, "{}", answer.text);
    converged(&api, app, 4, 6);
    let first = processes(&api, app);
    assert_eq!(first.len(), 10);
    let ports: Vec<u16> = api
        .pods_of(app, "web")
        .iter()
        .map(|p| {
            api.describe(app, p["name"].as_str().unwrap_or_default())["port"]
                .as_u64()
                .unwrap_or(0) as u16
        })
        .collect();
    let load = Load::start(ports);
    load.wait_for_more(20);

    // Graceful stop: the processes run on and serve while no controller runs.
    let status = controller.stop();
    assert!(status.success(), "graceful stop exits 0: {status}");
    let run_dir = controller.data_dir.path().join("run");
    assert!(
        run_dir.join("engine.lock").exists(),
        "the run dir with its records stays for the next controller"
    );
    for (name, pid) in &first {
        assert!(
            alive(*pid),
            "{name} ({pid}) was stopped with the controller"
        );
    }
    load.wait_for_more(20);
    assert_adopted(&mut controller, &mut api, app, &first);
    let second = processes(&api, app);
    assert_eq!(
        second
            .iter()
            .filter(|(n, _)| n.contains("-web-"))
            .collect::<Vec<_>>(),
        first
            .iter()
            .filter(|(n, _)| n.contains("-web-"))
            .collect::<Vec<_>>()
    );

    // A crash: the same.
    let mut child = controller.child.take().expect("running");
    child.kill().expect("kill controller");
    child.wait().expect("reap controller");
    for (name, pid) in &second {
        assert!(alive(*pid), "{name} ({pid}) died with the controller");
    }
    load.wait_for_more(20);
    assert_adopted(&mut controller, &mut api, app, &second);
    load.wait_for_more(20);
    let (answered, failed) = load.finish();
    println!("steady load: {answered} requests answered, {failed} failed");
    assert_eq!(failed, 0, "no request to an app process failed");
    assert_eq!(
        api.get(&format!("/v2/apps/{app}/releases/")).body["count"],
        2,
        "nothing was released again"
    );

    // Stopping the apps is an explicit command, refused while a controller runs.
    let refused = controller.stop_apps();
    assert!(!refused.status.success());
    let third = processes(&api, app);
    controller.stop();

    // A controller that fails to start after adopting the apps (its router
    // port is taken) leaves them running, as a crash would.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let failed = std::process::Command::new(env!("CARGO_BIN_EXE_drycc-controller"))
        .env(
            "DRYCC_LISTEN",
            format!("127.0.0.1:{}", support::free_port()),
        )
        .env(
            "DRYCC_ROUTER_LISTEN",
            taken.local_addr().expect("addr").to_string(),
        )
        .env("DRYCC_DATA_DIR", controller.data_dir.path())
        .env("DRYCC_RUN_DIR", controller.data_dir.path().join("run"))
        .env(
            "DRYCC_DATABASE_URL",
            controller
                .database
                .as_ref()
                .map(|d| d.url.as_str())
                .unwrap_or_default(),
        )
        .output()
        .expect("run drycc-controller");
    assert!(!failed.status.success(), "the router port was taken");
    for (name, pid) in &third {
        assert!(alive(*pid), "{name} ({pid}) was killed by a failed start");
    }

    let stopped = controller.stop_apps();
    assert!(
        stopped.status.success(),
        "{}",
        String::from_utf8_lossy(&stopped.stderr)
    );
    assert!(String::from_utf8_lossy(&stopped.stdout).contains("Stopped 10 app processes."));
    for (name, pid) in &third {
        assert!(!alive(*pid), "{name} ({pid}) survived stop-apps");
    }
    assert!(controller.recorded_pids().is_empty());
    assert!(!run_dir.exists(), "stop-apps removes the idle run dir");
}
