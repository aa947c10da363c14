//! The dashboard in a real browser: headless Chromium (Debian's
//! `chromium`) driven by `playwright-core` (tests/browser/), against a real
//! controller with a pushed app. The browser part is
//! `tests/browser/dashboard.mjs`; this test deploys the app, runs it and
//! fails with its output. Screenshots of every page go to
//! `<target>/dashboard-screenshots/`.
//!
//! It needs Chromium and the npm packages, so it is ignored by a plain
//! `cargo test`: `scripts/browser-tests.sh` installs both and runs it.

mod support;

use std::path::PathBuf;
use std::process::Command;

use serde_json::json;
use support::{fixture_repo, push, Api, Controller};

/// Where the screenshots go: `$DRYCC_DASHBOARD_SCREENSHOTS`, else
/// `dashboard-screenshots` in the cargo target directory.
fn screenshots_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("DRYCC_DASHBOARD_SCREENSHOTS") {
        return PathBuf::from(dir);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    target.join("dashboard-screenshots")
}

#[test]
#[ignore = "needs chromium and tests/browser/node_modules: run scripts/browser-tests.sh"]
fn the_dashboard_works_in_a_browser() {
    let browser_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    assert!(
        browser_dir.join("node_modules/playwright-core").is_dir(),
        "run `npm ci` in {} first (scripts/browser-tests.sh does)",
        browser_dir.display()
    );
    let chromium = std::env::var("DRYCC_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        std::path::Path::new(&chromium).exists(),
        "no Chromium at {chromium}: apt-get install chromium (or set DRYCC_CHROMIUM)"
    );
    // Decisions every second and a short scale-down window, so the chart
    // soon has points and a rescale.
    let controller = Controller::start(&[
        ("DRYCC_AUTOSCALE_SYNC_PERIOD", "1"),
        ("DRYCC_AUTOSCALE_DOWN_WINDOW", "2"),
    ]);
    // The first user is an admin, who sees every app: the browser's user
    // is the second.
    Api::new(&controller.url).login("root", "root-password");
    let mut api = Api::new(&controller.url);
    api.login("alice", "alice-password");
    let app = "dash-app";
    let created = api.post("/v2/apps/", json!({"id": app}));
    assert_eq!(created.status, 201, "{}", created.text);
    let repo = fixture_repo("webapp");
    let token = api.token.clone().expect("token");
    let (ok, output) = push(repo.path(), &controller.url, app, "alice", &token);
    assert!(ok, "push: {output}\n{}", controller.log());
    let secret = "s3cr3t-dashboard-value";
    let answer = api.post(
        &format!("/v2/apps/{app}/config/"),
        json!({"values": {"SECRET_TOKEN": secret}, "cpu": {"web": "100m"}}),
    );
    assert_eq!(answer.status, 201, "{}", answer.text);
    // A user with an app of their own, which alice must not see.
    let mut bob = Api::new(&controller.url);
    bob.login("bob", "bob-password");
    let answer = bob.post("/v2/apps/", json!({"id": "bobs-app"}));
    assert_eq!(answer.status, 201, "{}", answer.text);

    let screenshots = screenshots_dir();
    std::fs::create_dir_all(&screenshots).expect("screenshot dir");
    let output = Command::new("node")
        .arg(browser_dir.join("dashboard.mjs"))
        .current_dir(&browser_dir)
        .env("DASHBOARD_URL", &controller.url)
        .env("DASHBOARD_USER", "alice")
        .env("DASHBOARD_PASSWORD", "alice-password")
        .env("DASHBOARD_APP", app)
        .env("DASHBOARD_OTHER_APP", "bobs-app")
        .env("DASHBOARD_SECRET", secret)
        .env("DASHBOARD_TOKEN", api.token.clone().expect("token"))
        .env("DASHBOARD_SCREENSHOTS", &screenshots)
        .env("DASHBOARD_CHROMIUM", &chromium)
        .output()
        .expect("run node");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    assert!(
        output.status.success(),
        "the browser test failed:\n{stdout}\n{stderr}\ncontroller log:\n{}",
        controller.log()
    );
    for name in [
        "login",
        "apps",
        "processes",
        "releases",
        "config",
        "autoscale",
        "logs",
    ] {
        let file = screenshots.join(format!("{name}.png"));
        assert!(file.is_file(), "no screenshot {}", file.display());
    }
}
