//! The router fed by the controller: the table follows scales and the
//! `routable` setting, and a standalone router (`drycc-controller router`)
//! keeps serving through a controller crash and follows the next one.

mod support;

use std::collections::BTreeSet;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::json;
use support::{client, deployed, free_port, through, Api, Controller};

fn scale(api: &Api, app: &str, web: u32) {
    let answer = api.post(&format!("/v2/apps/{app}/scale/"), json!({"web": web}));
    assert_eq!(answer.status, 204, "scale: {}", answer.text);
}

/// The names of the web processes that answered `rounds` requests.
fn answering(
    client: &reqwest::blocking::Client,
    url: &str,
    host: &str,
    rounds: usize,
) -> BTreeSet<String> {
    (0..rounds)
        .map(|_| through(client, url, host))
        .filter(|(status, _)| *status == 200)
        .map(|(_, body)| body.trim().to_string())
        .collect()
}

/// The value of the sample `name` (with its labels) in a Prometheus text
/// page.
fn sample(page: &str, name: &str) -> Option<f64> {
    page.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

fn scrape(client: &reqwest::blocking::Client, url: &str, host: &str) -> String {
    let response = client
        .get(format!("{url}/metrics"))
        .header("Host", host)
        .send()
        .expect("metrics answer");
    assert_eq!(response.status().as_u16(), 200);
    response.text().expect("metrics page")
}

#[test]
fn the_table_follows_scales_and_the_routable_setting() {
    let app = "routed";
    let host = format!("{app}.localhost");
    let (controller, api) = deployed(app, &[("DRYCC_ROUTER_ACCESS_LOG", "on")]);
    let client = client();
    let url = controller.router_url.clone();

    let (status, body) = through(&client, &url, "nobody.localhost");
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("nobody.localhost"), "{body}");

    // Once a scale answers, the router sends traffic to every new process.
    scale(&api, app, 2);
    let seen = answering(&client, &url, &host, 4);
    assert_eq!(seen.len(), 2, "{seen:?}");

    // The controller's /metrics: the engine's processes and the router's
    // counters (four answers, one unknown host so far).
    let page = scrape(&client, &controller.url, "localhost");
    let web = format!("{{app=\"{app}\",type=\"web\"");
    for (name, value) in [
        (format!("drycc_processes{web},state=\"up\"}}"), 2.0),
        (format!("drycc_processes{web},state=\"crashed\"}}"), 0.0),
        (format!("drycc_process_restarts{web}}}"), 0.0),
        (
            format!("drycc_router_requests_total{{app=\"{app}\",status=\"2xx\"}}"),
            4.0,
        ),
        (
            format!("drycc_router_backend_latency_seconds_count{{app=\"{app}\"}}"),
            4.0,
        ),
        (format!("drycc_router_retries_total{{app=\"{app}\"}}"), 0.0),
        ("drycc_router_unknown_host_requests_total".to_string(), 1.0),
    ] {
        assert_eq!(sample(&page, &name), Some(value), "{name} in\n{page}");
    }

    let answer = api.post(
        &format!("/v2/apps/{app}/settings/"),
        json!({"routable": false}),
    );
    assert_eq!(answer.status, 201, "{}", answer.text);
    let (status, body) = through(&client, &url, &host);
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("routing:enable"), "{body}");
    let answer = api.post(
        &format!("/v2/apps/{app}/settings/"),
        json!({"routable": true}),
    );
    assert_eq!(answer.status, 201, "{}", answer.text);
    assert_eq!(through(&client, &url, &host).0, 200);

    scale(&api, app, 0);
    let (status, body) = through(&client, &url, &host);
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("no ready web process"), "{body}");

    // DRYCC_ROUTER_ACCESS_LOG=on: a line per request in the controller's
    // log (a proxied answer's once its body was sent).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let log = controller.log();
        let lines: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("drycc_router::access") && l.contains(&host))
            .collect();
        if lines.len() >= 7 {
            assert!(
                lines
                    .iter()
                    .any(|l| l.contains("status=200") && l.contains("backend=127.0.0.1:")),
                "{lines:#?}"
            );
            assert!(lines.iter().any(|l| l.contains("status=503")), "{lines:#?}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "access log lines missing:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // The 404 of routing:disable and this 503 count as the app's.
    let page = scrape(&client, &controller.url, "localhost");
    for (class, value) in [("2xx", 5.0), ("4xx", 1.0), ("5xx", 1.0)] {
        let name = format!("drycc_router_requests_total{{app=\"{app}\",status=\"{class}\"}}");
        assert_eq!(sample(&page, &name), Some(value), "{name} in\n{page}");
    }
}

/// `drycc-controller router`, stopped by its pid when dropped.
struct StandaloneRouter {
    child: Child,
    url: String,
}

impl StandaloneRouter {
    fn start(controller: &Controller) -> StandaloneRouter {
        let port = free_port();
        let log =
            std::fs::File::create(controller.data_dir.path().join("router.log")).expect("log");
        let child = Command::new(env!("CARGO_BIN_EXE_drycc-controller"))
            .arg("router")
            .env("DRYCC_ROUTER_LISTEN", format!("127.0.0.1:{port}"))
            .env("DRYCC_CONTROLLER_URL", &controller.url)
            .env("DRYCC_DATA_DIR", controller.data_dir.path())
            .env("DRYCC_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start the router");
        StandaloneRouter {
            child,
            url: format!("http://127.0.0.1:{port}"),
        }
    }
}

impl Drop for StandaloneRouter {
    fn drop(&mut self) {
        let _ = kill(Pid::from_raw(self.child.id() as i32), Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Steady load through the router from two threads.
struct Load {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
    first_failure: Arc<Mutex<Option<String>>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Load {
    fn start(url: &str, host: &str) -> Load {
        let load = Load {
            stop: Arc::new(AtomicBool::new(false)),
            ok: Arc::new(AtomicU64::new(0)),
            failed: Arc::new(AtomicU64::new(0)),
            first_failure: Arc::new(Mutex::new(None)),
            threads: Vec::new(),
        };
        let threads = (0..2)
            .map(|_| {
                let (stop, ok, failed, first) = (
                    load.stop.clone(),
                    load.ok.clone(),
                    load.failed.clone(),
                    load.first_failure.clone(),
                );
                let (url, host) = (url.to_string(), host.to_string());
                std::thread::spawn(move || {
                    let client = client();
                    let deadline = Instant::now() + Duration::from_secs(600);
                    while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                        match through(&client, &url, &host) {
                            (200, _) => ok.fetch_add(1, Ordering::Relaxed),
                            (status, body) => {
                                first
                                    .lock()
                                    .expect("lock")
                                    .get_or_insert(format!("{status}: {body}"));
                                failed.fetch_add(1, Ordering::Relaxed)
                            }
                        };
                    }
                })
            })
            .collect();
        Load { threads, ..load }
    }

    fn wait_for_more(&self, more: u64) {
        let target = self.ok.load(Ordering::Relaxed) + more;
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.ok.load(Ordering::Relaxed) < target {
            assert!(Instant::now() < deadline, "the load stalled");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn finish(mut self) -> (u64, u64, Option<String>) {
        self.stop.store(true, Ordering::Relaxed);
        for thread in self.threads.drain(..) {
            thread.join().expect("load thread");
        }
        let first = self.first_failure.lock().expect("lock").clone();
        (
            self.ok.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
            first,
        )
    }
}

#[test]
fn a_standalone_router_serves_through_a_controller_crash() {
    let app = "steady";
    let host = format!("{app}.localhost");
    let (mut controller, api) = deployed(app, &[("DRYCC_ROUTER_LISTEN", "off")]);
    scale(&api, app, 2);
    let router = StandaloneRouter::start(&controller);
    let client = client();
    let deadline = Instant::now() + Duration::from_secs(30);
    while answering(&client, &router.url, &host, 4).len() < 2 {
        assert!(
            Instant::now() < deadline,
            "the standalone router did not serve both processes:\n{}",
            std::fs::read_to_string(controller.data_dir.path().join("router.log"))
                .unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    let load = Load::start(&router.url, &host);
    load.wait_for_more(50);
    let port = controller.port();
    controller.crash();
    // The controller is gone; the router keeps its last table.
    load.wait_for_more(100);
    controller.spawn_at(port, free_port());
    load.wait_for_more(50);
    // The router follows the new controller: a scale reaches it.
    scale(&api, app, 3);
    let deadline = Instant::now() + Duration::from_secs(30);
    while answering(&client, &router.url, &host, 6).len() < 3 {
        assert!(
            Instant::now() < deadline,
            "the router did not follow the restarted controller:\n{}",
            std::fs::read_to_string(controller.data_dir.path().join("router.log"))
                .unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    load.wait_for_more(50);
    let (ok, failed, first) = load.finish();
    assert_eq!(
        failed,
        0,
        "{failed} of {} requests failed; first: {first:?}",
        ok + failed
    );
    // The standalone router's counters, on a host that is no app's; the
    // waits above sent some requests of their own.
    let page = scrape(&client, &router.url, "127.0.0.1");
    let name = format!("drycc_router_requests_total{{app=\"{app}\",status=\"2xx\"}}");
    let answered = sample(&page, &name).unwrap_or_default();
    assert!(answered >= ok as f64, "{name} below {ok} in\n{page}");
}
