//! Autoscaling with real processes: a `web` type limited to 100m whose
//! processes burn CPU while a flag file exists, a rule of 1..4 at 50%, and
//! the sync period and windows in seconds. Under load it scales up; without
//! load it comes back to 1, but only once the scale-down window has passed
//! since the last rescale; every decision is in the app's log.

mod support;

use std::time::{Duration, Instant};

use serde_json::json;
use support::{commit_all, fixture_repo, push, Api, Controller};

const PROCFILE: &str = "web: exec python3 burn.py\n";

/// Serves on $PORT (for readiness) and burns CPU while $FLAG exists.
const BURN: &str = r#"
import http.server, os, threading

def burn():
    import time
    while True:
        if os.path.exists(os.environ["FLAG"]):
            for _ in range(100000):
                pass
        else:
            time.sleep(0.05)

threading.Thread(target=burn, daemon=True).start()

class Ok(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"ok")
    def log_message(self, *args):
        pass

http.server.HTTPServer(("127.0.0.1", int(os.environ["PORT"])), Ok).serve_forever()
"#;

fn web_count(api: &Api, app: &str) -> usize {
    api.pods_of(app, "web").len()
}

fn log_lines(api: &Api, app: &str) -> Vec<String> {
    let answer = api.get(&format!("/v2/apps/{app}/logs/?log_lines=10000"));
    assert_eq!(answer.status, 200, "{}", answer.text);
    answer.text.lines().map(str::to_string).collect()
}

fn eventually(limit: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_loaded_type_scales_up_and_comes_back_after_the_down_window() {
    let controller = Controller::start(&[
        ("DRYCC_AUTOSCALE_SYNC_PERIOD", "1"),
        ("DRYCC_AUTOSCALE_UP_WINDOW", "2"),
        ("DRYCC_AUTOSCALE_DOWN_WINDOW", "8"),
    ]);
    let mut api = Api::new(&controller.url);
    api.login("fay", "pass-word-7");
    let app = "busy-app";
    assert_eq!(api.post("/v2/apps/", json!({"id": app})).status, 201);
    let repo = fixture_repo("webapp");
    std::fs::write(repo.path().join("Procfile"), PROCFILE).expect("Procfile");
    std::fs::write(repo.path().join("burn.py"), BURN).expect("burn.py");
    commit_all(repo.path(), "a web that can burn");
    let token = api.token.clone().expect("token");
    let (ok, output) = push(repo.path(), &controller.url, app, "fay", &token);
    assert!(ok, "{output}");
    let flag = controller.data_dir.path().join("burn-flag");
    let answer = api.post(
        &format!("/v2/apps/{app}/config/"),
        json!({"values": {"FLAG": flag.display().to_string()}, "cpu": {"web": "100m"}}),
    );
    assert_eq!(answer.status, 201, "{}", answer.text);

    // A rule without a CPU limit on its type is refused; with one it holds.
    let refused = api.post(
        &format!("/v2/apps/{app}/settings/"),
        json!({"autoscale": {"nosuch": {"min": 1, "max": 4, "cpu_percent": 50}}}),
    );
    assert_eq!(refused.status, 404, "{}", refused.text);
    let answer = api.post(
        &format!("/v2/apps/{app}/settings/"),
        json!({"autoscale": {"web": {"min": 1, "max": 4, "cpu_percent": 50}}}),
    );
    assert_eq!(answer.status, 201, "{}", answer.text);

    // Load: it scales up within a bounded number of periods.
    std::fs::write(&flag, "burn").expect("flag");
    eventually(Duration::from_secs(60), "a scale-up", || {
        web_count(&api, app) >= 2
    });
    let settings = api.get(&format!("/v2/apps/{app}/settings/"));
    let status = &settings.body["autoscale_status"]["web"];
    assert!(status["utilization"].as_u64().unwrap_or(0) > 50, "{status}");
    assert!(status["last_scale"].is_string(), "{status}");
    // ps:describe shows what a process uses.
    let pod = api.pods_of(app, "web")[0]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let described = api.describe(app, &pod);
    assert!(described["cpu_millis"].is_u64(), "{described}");
    assert!(
        described["memory_bytes"].as_u64().unwrap_or(0) > 0,
        "{described}"
    );
    // So does `ps --usage`, for every process.
    let listed = api.get(&format!("/v2/apps/{app}/pods/?usage=true"));
    assert_eq!(listed.status, 200, "{}", listed.text);
    let pods = listed.body["results"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(pods.iter().all(|p| p["cpu_millis"].is_u64()), "{pods:#?}");
    let refused = api.get(&format!("/v2/apps/{app}/pods/?usage=maybe"));
    assert_eq!(refused.status, 400, "{}", refused.text);

    // No load: back to 1, but never before the down window allowed it.
    std::fs::remove_file(&flag).expect("flag");
    eventually(Duration::from_secs(90), "the scale-down", || {
        web_count(&api, app) == 1
    });
    let lines = log_lines(&api, app);
    let decisions: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains("autoscale web: "))
        .collect();
    let up = decisions
        .iter()
        .position(|l| {
            l.contains("scaling to 2") || l.contains("scaling to 3") || l.contains("scaling to 4")
        })
        .expect("a scale-up decision in the log");
    let down = decisions
        .iter()
        .rposition(|l| l.ends_with("scaling to 1"))
        .expect("the scale-down decision in the log");
    assert!(up < down);
    assert!(
        decisions[..down]
            .iter()
            .any(|l| l.contains("would scale to 1, but the last rescale was too recent")),
        "the down window held the scale-down back: {decisions:#?}"
    );
    let history = api.get(&format!("/v2/apps/{app}/settings/autoscale/web/history"));
    assert_eq!(history.status, 200, "{}", history.text);
    assert!(history.body["count"].as_u64().unwrap_or(0) >= 3);

    // Unsetting keeps the count; unsetting again says there is no rule.
    let unset = api.post(
        &format!("/v2/apps/{app}/settings/"),
        json!({"autoscale": {"web": null}}),
    );
    assert_eq!(unset.status, 201, "{}", unset.text);
    assert_eq!(web_count(&api, app), 1);
    let again = api.post(
        &format!("/v2/apps/{app}/settings/"),
        json!({"autoscale": {"web": null}}),
    );
    assert_eq!(again.status, 404, "{}", again.text);
}
