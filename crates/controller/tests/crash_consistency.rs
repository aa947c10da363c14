//! Crash consistency: the controller is SIGKILLed at random moments while
//! it scales, restarts and deploys, 50 times. After each new start the
//! store is consistent and the formation converges to the desired state:
//! exactly the desired processes, all of the desired release, no
//! duplicate, and no process that the platform does not know about (every
//! process carrying the app's name in its environment is one `ps` shows).
//!
//! The moments are random but reproducible: the seed is printed, and
//! `CRASH_SEED=<n>` replays a run. The run is bounded in rounds and time.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::{json, Value};
use support::{commit_all, fixture_repo, push, Api, Controller};

const ROUNDS: u32 = 50;
/// The whole test stops starting rounds after this long.
const BUDGET: Duration = Duration::from_secs(600);
const PROCFILE: &str = "web: exec python3 server.py\nworker: exec sleep 900\n";
const APP: &str = "crashy-app";

/// A small deterministic generator (xorshift), so a seed replays a run.
struct Random(u64);

impl Random {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

/// Pids of live processes that run in this controller's slugs (their
/// environment's `PWD`): what really runs for its apps, whatever the
/// platform believes.
fn processes_of_app(controller: &Controller) -> BTreeSet<i32> {
    let marker = format!("PWD={}/", controller.data_dir.path().display());
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return BTreeSet::new();
    };
    entries
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| support::alive(*pid))
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/environ")).is_ok_and(|env| {
                env.split(|b| *b == 0)
                    .any(|var| var.starts_with(marker.as_bytes()))
            })
        })
        .collect()
}

/// The desired state as the API tells it: the structure and the newest
/// release that did not fail.
fn desired(api: &Api) -> (BTreeMap<String, u64>, u64) {
    let app = api.get(&format!("/v2/apps/{APP}/"));
    assert_eq!(app.status, 200, "{}", app.text);
    let structure: BTreeMap<String, u64> = app.body["structure"]
        .as_object()
        .map(|o| {
            o.iter()
                .map(|(k, v)| (k.clone(), v.as_u64().unwrap_or(0)))
                .collect()
        })
        .unwrap_or_default();
    let releases = api.get(&format!("/v2/apps/{APP}/releases/?limit=1000"));
    assert_eq!(releases.status, 200, "{}", releases.text);
    let list = releases.body["results"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    // The store is consistent: versions are dense, 1..=n.
    let mut versions: Vec<u64> = list.iter().filter_map(|r| r["version"].as_u64()).collect();
    versions.sort();
    let dense: Vec<u64> = (1..=versions.len() as u64).collect();
    assert_eq!(versions, dense, "release versions are dense");
    let good = list
        .iter()
        .filter(|r| r["failed"] == false)
        .filter_map(|r| r["version"].as_u64())
        .max()
        .unwrap_or(0);
    (structure, good)
}

/// Wait until the formation is the desired one; then check that nothing
/// else runs for the app.
fn converged(api: &Api, controller: &Controller, round: u32) {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let (structure, release) = desired(api);
        let pods = api.pods(APP);
        let mut counts: BTreeMap<String, u64> = BTreeMap::new();
        let mut all_ready = true;
        for pod in &pods {
            *counts
                .entry(pod["type"].as_str().unwrap_or("").to_string())
                .or_default() += 1;
            all_ready &= pod["state"] == "up" && pod["release"] == format!("v{release}");
        }
        let wanted: BTreeMap<String, u64> = structure
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(k, n)| (k.clone(), *n))
            .collect();
        if all_ready && counts == wanted {
            let names: BTreeSet<&str> = pods.iter().filter_map(|p| p["name"].as_str()).collect();
            assert_eq!(names.len(), pods.len(), "round {round}: duplicate names");
            let pids: BTreeSet<i32> = pods
                .iter()
                .map(|p| {
                    api.describe(APP, p["name"].as_str().unwrap_or_default())["pid"]
                        .as_i64()
                        .unwrap_or(0) as i32
                })
                .collect();
            assert_eq!(pids.len(), pods.len(), "round {round}: a pid shown twice");
            // Processes that are terminating may still be on their way out.
            let stray_deadline = Instant::now() + Duration::from_secs(30);
            loop {
                let running = processes_of_app(controller);
                if running == pids {
                    break;
                }
                assert!(
                    Instant::now() < stray_deadline,
                    "round {round}: processes running for the app {running:?}, ps shows {pids:?}\n{}",
                    controller.log()
                );
                std::thread::sleep(Duration::from_millis(50));
            }
            let mut recorded = controller.recorded_pids();
            recorded.sort();
            let shown: Vec<i32> = pids.iter().copied().collect();
            assert_eq!(
                recorded, shown,
                "round {round}: the engine's records are the processes"
            );
            return;
        }
        assert!(
            Instant::now() < deadline,
            "round {round}: no convergence to {wanted:?} of v{release}: {pods:#?}\n{}",
            controller.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// One change, sent from another thread (the controller dies under it).
fn change(api: &Api, random: &mut Random, round: u32) -> (String, Value) {
    match random.below(3) {
        0 => (
            format!("/v2/apps/{APP}/scale/"),
            json!({"web": 1 + random.below(3), "worker": random.below(4)}),
        ),
        1 => (format!("/v2/apps/{APP}/pods/restart/"), json!({})),
        _ => {
            let _ = api;
            (
                format!("/v2/apps/{APP}/config/"),
                json!({"values": {"ROUND": round.to_string()}}),
            )
        }
    }
}

#[test]
fn fifty_crashes_at_random_moments_leave_a_consistent_converging_platform() {
    let seed = std::env::var("CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
                | 1
        });
    println!("CRASH_SEED={seed}");
    let mut random = Random(seed);
    let mut controller = Controller::start(&[("DRYCC_TERMINATION_GRACE_PERIOD", "1")]);
    let mut api = Api::new(&controller.url);
    api.login("erin", "pass-word-6");
    assert_eq!(api.post("/v2/apps/", json!({"id": APP})).status, 201);
    let repo = fixture_repo("webapp");
    std::fs::write(repo.path().join("Procfile"), PROCFILE).expect("write Procfile");
    commit_all(repo.path(), "web and worker");
    let token = api.token.clone().expect("token");
    let (ok, output) = push(repo.path(), &controller.url, APP, "erin", &token);
    assert!(ok, "{output}");
    converged(&api, &controller, 0);

    let started = Instant::now();
    let mut rounds = 0;
    while rounds < ROUNDS && started.elapsed() < BUDGET {
        rounds += 1;
        let (path, body) = change(&api, &mut random, rounds);
        let url = format!("{}{path}", api.url);
        let token = token.clone();
        let sender = std::thread::spawn(move || {
            let client = reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .expect("client");
            // The answer does not matter: the controller may die first.
            let _ = client
                .post(url)
                .header("Authorization", format!("token {token}"))
                .json(&body)
                .send();
        });
        // A random moment: before, during or after the change.
        std::thread::sleep(Duration::from_millis(random.below(600)));
        let child = controller.child.take().expect("running");
        kill(Pid::from_raw(child.id() as i32), Signal::SIGKILL).expect("SIGKILL");
        let mut child = child;
        child.wait().expect("reap");
        sender.join().expect("sender thread");
        controller.spawn();
        api.url = controller.url.clone();
        converged(&api, &controller, rounds);
    }
    let (structure, release) = desired(&api);
    println!(
        "{rounds} crashes in {:.1} s, each followed by convergence; now v{release}, {structure:?}",
        started.elapsed().as_secs_f64()
    );
    assert!(release > 2, "some deploys landed");
    assert!(rounds >= 20, "only {rounds} rounds fit in the time budget");
}
