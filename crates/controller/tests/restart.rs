//! Stopping and starting the controller: state intact, formation back, no
//! duplicate and no orphaned process (checked by pid).

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::json;
use support::{alive, fixture_repo, push, Api, Controller};

fn pids(api: &Api, app: &str) -> BTreeSet<i32> {
    api.pods(app)
        .iter()
        .map(|p| {
            api.describe(app, p["name"].as_str().unwrap_or_default())["pid"]
                .as_i64()
                .unwrap_or(0) as i32
        })
        .collect()
}

fn converged(api: &Api, app: &str) {
    api.wait_pods(app, Duration::from_secs(60), "web=2 sleeper=2 up", |pods| {
        let up = |t: &str| {
            pods.iter()
                .filter(|p| p["type"] == t && p["state"] == "up")
                .count()
        };
        pods.len() == 4 && up("web") == 2 && up("sleeper") == 2
    });
}

#[test]
fn graceful_stop_and_start_restores_the_formation() {
    let mut controller = Controller::start(&[]);
    let mut api = Api::new(&controller.url);
    api.login("bob", "pass-word-3");
    let app = "restart-app";
    assert_eq!(api.post("/v2/apps/", json!({"id": app})).status, 201);
    let repo = fixture_repo("webapp");
    let token = api.token.clone().expect("token");
    let (ok, output) = push(repo.path(), &controller.url, app, "bob", &token);
    assert!(ok, "{output}");
    assert_eq!(
        api.post(
            &format!("/v2/apps/{app}/scale/"),
            json!({"web": 2, "sleeper": 2})
        )
        .status,
        204
    );
    converged(&api, app);
    let first = pids(&api, app);
    assert_eq!(first.len(), 4);

    // Graceful stop: every process is gone with the controller.
    let status = controller.stop();
    assert!(status.success(), "graceful stop exits 0: {status}");
    for pid in &first {
        assert!(!alive(*pid), "process {pid} survived a graceful stop");
    }

    // Start again: same state, formation converged, new processes only.
    controller.spawn();
    api.url = controller.url.clone();
    assert_eq!(
        api.get("/v2/auth/whoami/").status,
        200,
        "tokens survive a restart"
    );
    converged(&api, app);
    let second = pids(&api, app);
    assert_eq!(second.len(), 4);
    assert!(second.is_disjoint(&first));
    assert_eq!(
        api.get(&format!("/v2/apps/{app}/releases/")).body["count"],
        2
    );

    // A crash (SIGKILL) leaves orphans; the next start kills them and
    // converges without duplicates.
    let mut child = controller.child.take().expect("running");
    child.kill().expect("kill controller");
    child.wait().expect("reap controller");
    assert!(
        second.iter().all(|pid| alive(*pid)),
        "processes outlive a crashed controller"
    );
    controller.spawn();
    api.url = controller.url.clone();
    converged(&api, app);
    for pid in &second {
        assert!(!alive(*pid), "orphan {pid} was not cleaned up");
    }
    let third = pids(&api, app);
    assert_eq!(third.len(), 4, "no duplicates");
}
