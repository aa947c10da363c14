//! `apps:destroy` answers once the app's processes have ended, and only
//! then are its repository and slugs gone.

mod support;

use std::time::Duration;

use serde_json::json;
use support::{alive, fixture_repo, push, Api, Controller};

#[test]
fn destroy_waits_for_the_processes_then_removes_the_files() {
    let controller = Controller::start(&[]);
    let mut api = Api::new(&controller.url);
    api.login("erin", "pass-word-6");
    let app = "doomed-app";
    assert_eq!(api.post("/v2/apps/", json!({"id": app})).status, 201);
    let repo = fixture_repo("webapp");
    let token = api.token.clone().expect("token");
    let (ok, output) = push(repo.path(), &controller.url, app, "erin", &token);
    assert!(ok, "{output}");
    // `stubborn` ignores SIGTERM: it ends only at the grace period's SIGKILL.
    let answer = api.post(
        &format!("/v2/apps/{app}/scale/"),
        json!({"sleeper": 1, "stubborn": 1}),
    );
    assert_eq!(answer.status, 204, "{}", answer.text);
    let pods = api.wait_pods(app, Duration::from_secs(30), "3 processes up", |pods| {
        pods.len() == 3 && pods.iter().all(|p| p["state"] == "up")
    });
    let pids: Vec<i32> = pods
        .iter()
        .map(|p| {
            api.describe(app, p["name"].as_str().unwrap_or_default())["pid"]
                .as_i64()
                .unwrap_or(0) as i32
        })
        .collect();
    assert!(pids.iter().all(|pid| *pid > 0 && alive(*pid)), "{pids:?}");
    let slugs = controller.data_dir.path().join("slugs").join(app);
    let repository = controller
        .data_dir
        .path()
        .join("repos")
        .join(format!("{app}.git"));
    assert!(slugs.is_dir() && repository.is_dir());

    let answer = api.request("DELETE", &format!("/v2/apps/{app}/"), None);
    assert_eq!(answer.status, 204, "{}", answer.text);
    for pid in &pids {
        assert!(!alive(*pid), "process {pid} still runs after the destroy");
    }
    assert!(!slugs.exists(), "the slugs outlived the app");
    assert!(!repository.exists(), "the repository outlived the app");
    assert_eq!(api.get(&format!("/v2/apps/{app}/")).status, 404);
}
