//! A release whose processes never become ready: the rollout stops at the
//! deploy timeout, the release is marked failed with the reason, the old
//! processes keep serving, and the push is rejected.

mod support;

use serde_json::json;
use support::{commit_all, fixture_repo, push, Api, Controller};

#[test]
fn a_release_that_never_becomes_ready_fails_and_keeps_the_old_processes() {
    let controller = Controller::start(&[("DRYCC_DEPLOY_TIMEOUT", "3")]);
    let mut api = Api::new(&controller.url);
    api.login("carol", "pass-word-4");
    let app = "failing-app";
    assert_eq!(api.post("/v2/apps/", json!({"id": app})).status, 201);
    let repo = fixture_repo("webapp");
    let token = api.token.clone().expect("token");
    let (ok, output) = push(repo.path(), &controller.url, app, "carol", &token);
    assert!(ok, "{output}");
    let before = api.pods(app);
    assert_eq!(before.len(), 1);

    // The new web never listens on its PORT, so it never becomes ready.
    std::fs::write(
        repo.path().join("Procfile"),
        "web: exec sleep 900\nsleeper: sleep 900\n",
    )
    .expect("write");
    commit_all(repo.path(), "broken web");
    let (ok, output) = push(repo.path(), &controller.url, app, "carol", &token);
    assert!(
        !ok,
        "the push of a release that fails must be rejected:\n{output}"
    );
    assert!(
        output.contains("release v3 failed: processes did not become ready within 3 s"),
        "{output}"
    );
    assert!(output.contains("web: 0 of 1 processes ready"), "{output}");

    let releases = api.get(&format!("/v2/apps/{app}/releases/")).body;
    let v3 = &releases["results"][0];
    assert_eq!(v3["version"], 3);
    assert_eq!(v3["failed"], true);
    assert!(
        v3["exception"]
            .as_str()
            .unwrap_or_default()
            .contains("did not become ready"),
        "{v3}"
    );

    // The old process is still the one serving, alone.
    let after = api.wait_pods(
        app,
        std::time::Duration::from_secs(30),
        "the new web process gone",
        |pods| pods.len() == 1,
    );
    assert_eq!(after[0]["name"], before[0]["name"]);
    assert_eq!(after[0]["state"], "up");
    assert_eq!(after[0]["release"], "v2");
    let structure = api.get(&format!("/v2/apps/{app}/")).body["structure"].clone();
    assert_eq!(
        structure,
        json!({"web": 1, "sleeper": 0, "stubborn": 0, "crasher": 0})
    );

    // Scaling still uses the last good release.
    let answer = api.post(&format!("/v2/apps/{app}/scale/"), json!({"web": 2}));
    assert_eq!(answer.status, 204, "{}", answer.text);
    assert!(api.pods(app).iter().all(|p| p["release"] == "v2"));

    // Rolling back to a failed release is refused.
    let answer = api.post(
        &format!("/v2/apps/{app}/releases/rollback/"),
        json!({"version": 3}),
    );
    assert_eq!(answer.status, 400);
    assert_eq!(answer.body["detail"], "Cannot roll back to failed release.");
}
