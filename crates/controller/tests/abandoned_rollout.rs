//! Rollouts that nobody waits for: the reconciler, not the request, owns
//! them. A client that gives up, a controller that stops or crashes, and a
//! scale sent while a rollout hangs change nothing about the outcome.

mod support;

use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::{json, Value};
use support::{commit_all, fixture_repo, push, Api, Controller};

/// `web` serves the fixture unless the config sets `HANG`: then it sleeps
/// without ever listening, so it never becomes ready.
const PROCFILE: &str =
    "web: if [ -n \"$HANG\" ]; then exec sleep 900; fi; exec python3 server.py\n";

/// An app with a good release (v2) serving one `web` process; returns the
/// name of that process.
fn deployed(controller: &Controller, api: &mut Api, app: &str) -> String {
    api.login("dana", "pass-word-5");
    assert_eq!(api.post("/v2/apps/", json!({"id": app})).status, 201);
    let repo = fixture_repo("webapp");
    std::fs::write(repo.path().join("Procfile"), PROCFILE).expect("write Procfile");
    commit_all(repo.path(), "web that can hang");
    let token = api.token.clone().expect("token");
    let (ok, output) = push(repo.path(), &controller.url, app, "dana", &token);
    assert!(ok, "{output}");
    let pods = api.pods(app);
    assert_eq!(pods.len(), 1, "{pods:#?}");
    assert_eq!(pods[0]["release"], "v2");
    pods[0]["name"].as_str().expect("pod name").to_string()
}

/// What the router answers for the app: (status, body).
fn through_router(controller: &Controller, app: &str) -> (u16, String) {
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    match client
        .get(format!("{}/", controller.router_url))
        .header("Host", format!("{app}.localhost"))
        .send()
    {
        Ok(response) => (
            response.status().as_u16(),
            response.text().unwrap_or_default(),
        ),
        Err(error) => (0, error.to_string()),
    }
}

/// `POST /v2/apps/<app>/config/` setting `HANG`, from a client that gives
/// up after one second. Asserts that it did give up (the rollout was still
/// going).
fn set_hang_and_give_up(api: &Api, app: &str) {
    let impatient = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(1))
        .build()
        .expect("client");
    let sent = impatient
        .post(format!("{}/v2/apps/{app}/config/", api.url))
        .header(
            "Authorization",
            format!("token {}", api.token.as_deref().unwrap_or_default()),
        )
        .json(&json!({"values": {"HANG": "1"}}))
        .send();
    match sent {
        Err(error) => assert!(error.is_timeout(), "{error}"),
        Ok(response) => panic!(
            "the config change answered before the rollout could end: {}",
            response.status()
        ),
    }
}

fn release(api: &Api, app: &str, version: u32) -> Value {
    let answer = api.get(&format!("/v2/apps/{app}/releases/v{version}/"));
    assert_eq!(answer.status, 200, "{}", answer.text);
    answer.body
}

/// Poll until `check` holds, failing after `limit`.
fn eventually<T>(limit: Duration, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn assert_served_by(controller: &Controller, app: &str, process: &str) {
    let (status, body) = through_router(controller, app);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body.trim(), format!("hello from {process}"));
}

#[test]
fn a_rollout_abandoned_by_its_client_is_judged_and_survives_a_restart() {
    let mut controller = Controller::start(&[("DRYCC_DEPLOY_TIMEOUT", "5")]);
    let mut api = Api::new(&controller.url);
    let app = "abandoned-app";
    let old = deployed(&controller, &mut api, app);
    assert_served_by(&controller, app, &old);

    set_hang_and_give_up(&api, app);
    assert_eq!(release(&api, app, 3)["failed"], false, "v3 is rolling out");

    // The reconciler judges v3 on its own, and the old process serves all
    // along.
    let v3 = eventually(Duration::from_secs(60), "v3 to fail", || {
        assert_served_by(&controller, app, &old);
        let v3 = release(&api, app, 3);
        (v3["failed"] == true).then_some(v3)
    });
    let exception = v3["exception"].as_str().unwrap_or_default();
    assert!(
        exception.starts_with("processes did not become ready within 5 s: web: 0 of 1"),
        "{exception}"
    );
    let pods = api.wait_pods(app, Duration::from_secs(30), "the hung web gone", |pods| {
        pods.len() == 1
    });
    assert_eq!(pods[0]["name"], old.as_str());
    assert_eq!(pods[0]["release"], "v2");
    for _ in 0..3 {
        assert_served_by(&controller, app, &old);
    }

    // After a restart the last good release serves (v3 stays failed).
    let status = controller.stop();
    assert!(status.success(), "graceful stop exits 0: {status}");
    controller.spawn();
    api.url = controller.url.clone();
    let pods = api.wait_pods(app, Duration::from_secs(60), "v2 web up", |pods| {
        pods.len() == 1 && pods[0]["state"] == "up" && pods[0]["ready"] == "1/1"
    });
    assert_eq!(pods[0]["release"], "v2");
    let serving = pods[0]["name"].as_str().unwrap_or_default().to_string();
    eventually(Duration::from_secs(30), "the router to serve v2", || {
        (through_router(&controller, app).0 == 200).then_some(())
    });
    assert_served_by(&controller, app, &serving);
    assert_eq!(release(&api, app, 3)["failed"], true);
    assert_eq!(release(&api, app, 2)["failed"], false);
}

#[test]
fn a_rollout_pending_at_a_crash_is_judged_after_the_restart_never_assumed_good() {
    let mut controller = Controller::start(&[("DRYCC_DEPLOY_TIMEOUT", "5")]);
    let mut api = Api::new(&controller.url);
    let app = "crashed-app";
    let old = deployed(&controller, &mut api, app);
    set_hang_and_give_up(&api, app);

    // The controller dies while v3 is pending.
    let mut child = controller.child.take().expect("controller running");
    assert_eq!(release(&api, app, 3)["failed"], false);
    kill(Pid::from_raw(child.id() as i32), Signal::SIGKILL).expect("SIGKILL");
    let _ = child.wait();

    controller.spawn();
    api.url = controller.url.clone();
    let v3 = eventually(Duration::from_secs(60), "v3 to fail", || {
        let v3 = release(&api, app, 3);
        (v3["failed"] == true).then_some(v3)
    });
    assert!(
        v3["exception"]
            .as_str()
            .unwrap_or_default()
            .contains("did not become ready"),
        "{v3}"
    );
    let pods = api.wait_pods(app, Duration::from_secs(60), "v2 web up alone", |pods| {
        pods.len() == 1 && pods[0]["release"] == "v2" && pods[0]["ready"] == "1/1"
    });
    let serving = pods[0]["name"].as_str().unwrap_or_default().to_string();
    assert!(!serving.is_empty() && !old.is_empty());
    eventually(Duration::from_secs(30), "the router to serve v2", || {
        (through_router(&controller, app).0 == 200).then_some(())
    });
    assert_served_by(&controller, app, &serving);
}

#[test]
fn scaling_to_zero_during_a_hung_rollout_takes_effect_at_once() {
    // A waiting implementation would hold the scale for 300 s; the scale's
    // client gives up after 30 s.
    let controller = Controller::start(&[("DRYCC_DEPLOY_TIMEOUT", "300")]);
    let mut api = Api::new(&controller.url);
    let app = "hung-app";
    deployed(&controller, &mut api, app);
    // This client stays connected, waiting for the rollout's outcome.
    let config = {
        let mut waiting = Api::new(&controller.url);
        waiting.token = api.token.clone();
        std::thread::spawn(move || {
            waiting.post(
                &format!("/v2/apps/{app}/config/"),
                json!({"values": {"HANG": "1"}}),
            )
        })
    };
    api.wait_pods(app, Duration::from_secs(30), "the hung v3 web", |pods| {
        pods.iter().any(|p| p["release"] == "v3")
    });

    let mut patient = Api::new(&controller.url);
    patient.token = api.token.clone();
    patient.client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client");
    let answer = patient.post(&format!("/v2/apps/{app}/scale/"), json!({"web": 0}));
    assert_eq!(answer.status, 204, "{}", answer.text);
    assert!(api.pods(app).is_empty(), "{:#?}", api.pods(app));
    assert_eq!(
        api.get(&format!("/v2/apps/{app}/")).body["structure"]["web"],
        0
    );
    // With web at 0, v3 has nothing left to wait for: it rolled out.
    let config = config.join().expect("config thread");
    assert_eq!(config.status, 201, "{}", config.text);
    assert_eq!(release(&api, app, 3)["failed"], false);
}

#[test]
fn a_stop_answers_waiting_requests_at_once_and_the_rollout_resumes_after() {
    let mut controller = Controller::start(&[("DRYCC_DEPLOY_TIMEOUT", "300")]);
    let mut api = Api::new(&controller.url);
    let app = "stopping-app";
    deployed(&controller, &mut api, app);
    let config = {
        let mut waiting = Api::new(&controller.url);
        waiting.token = api.token.clone();
        std::thread::spawn(move || {
            waiting.post(
                &format!("/v2/apps/{app}/config/"),
                json!({"values": {"HANG": "1"}}),
            )
        })
    };
    api.wait_pods(app, Duration::from_secs(30), "the hung v3 web", |pods| {
        pods.iter().any(|p| p["release"] == "v3")
    });

    // The waiting request does not hold the stop up for the 300 s timeout
    // (`stop` fails after 90 s).
    let status = controller.stop();
    assert!(status.success(), "graceful stop exits 0: {status}");
    let config = config.join().expect("config thread");
    assert_eq!(config.status, 503, "{}", config.text);
    assert!(
        config.text.contains("the controller is stopping"),
        "{}",
        config.text
    );

    // v3 is still pending, neither failed nor taken for good, and rolls on.
    controller.spawn();
    api.url = controller.url.clone();
    assert_eq!(release(&api, app, 3)["failed"], false);
    api.wait_pods(app, Duration::from_secs(30), "v3 web again", |pods| {
        pods.iter().any(|p| p["release"] == "v3")
    });
    // Scaling web to 0 ends it.
    let answer = api.post(&format!("/v2/apps/{app}/scale/"), json!({"web": 0}));
    assert_eq!(answer.status, 204, "{}", answer.text);
    assert_eq!(release(&api, app, 3)["failed"], false);
}
