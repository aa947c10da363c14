//! The seed's walkthrough on real pods: `DRYCC_ENGINE=kubernetes` through
//! the real CLI, the app's pods kept to the testbed's real node (kubelet,
//! containerd, runc; `scripts/k8s-testbed.sh`) by the controller's
//! `DRYCC_KUBE_NODE_SELECTOR` and `DRYCC_KUBE_TOLERATIONS`, the image
//! pushed to a throwaway registry on loopback (`scripts/with-docker.sh`)
//! and pulled from it by the node's containerd.
//!
//! Skipped, loudly, without `KUBECONFIG`, `DOCKER_HOST` and
//! `DRYCC_TEST_REGISTRY`, unless `DRYCC_K8S_REQUIRED=1` (CI), which makes a
//! missing part a failure.

mod support;

use std::time::{Duration, Instant};

use drycc_images::testing::{build_busybox_image, push};
use support::cli::{ps_rows, registered, Cli};
use support::{routed, Controller};

/// The testbed's real node: its label (pods select it) and its taint
/// (pods tolerate it; every other pod goes to kwok's node).
const REAL_NODE_LABEL: &str = "drycc.cc/testbed-node=real";
const REAL_NODE_TAINT: &str = "drycc.cc/real-node";

/// The seed's Procfile: a web server on `$PORT` that says which pod
/// answered, and a process that only sleeps.
const PROCFILE: &str = "web: sh -c 'mkdir -p /tmp/www && echo \"hello from $HOSTNAME\" > /tmp/www/index.html && exec httpd -f -p $PORT -h /tmp/www'\nsleeper: sh -c 'echo \"sleeping\"; sleep 900'\n";

/// The registry and a busybox image pushed to it.
fn setup(test: &str) -> Option<(String, String)> {
    let (docker, registry) = support::cluster_prerequisites(test)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let image = format!("{registry}/real-{test}:1");
    runtime.block_on(async {
        build_busybox_image(&docker, &image, "CMD [\"sh\"]")
            .await
            .expect("build");
        push(&docker, &image).await.expect("push");
    });
    Some((registry, image))
}

/// Poll `check` until it gives a value (`seconds`).
fn eventually<T>(what: &str, seconds: u64, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(Instant::now() < deadline, "never happened: {what}");
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn start_controller(registry: &str, image: &str) -> Controller {
    Controller::start(&[
        ("DRYCC_ENGINE", "kubernetes"),
        ("DRYCC_REGISTRY", registry),
        ("DRYCC_SLUG_IMAGE", image),
        ("DRYCC_KUBE_NODE_SELECTOR", REAL_NODE_LABEL),
        ("DRYCC_KUBE_TOLERATIONS", REAL_NODE_TAINT),
    ])
}

/// `ps` rows of one type that are `up`.
fn up_of(cli: &Cli, app: &str, ptype: &str) -> Vec<String> {
    ps_rows(&cli.ok(&["ps", "-a", app]))
        .into_iter()
        .filter(|(_, _, state, t)| t == ptype && state == "up")
        .map(|(name, ..)| name)
        .collect()
}

#[test]
fn an_image_app_runs_on_the_real_node() {
    let Some((registry, image)) = setup("pull") else {
        return;
    };
    let mut controller = start_controller(&registry, &image);
    let cli = registered(&controller, "captain");
    let app = "realpull";
    cli.ok(&["create", app, "--no-remote"]);

    // `drycc pull` with the seed's Procfile: web starts, and answers
    // through the controller's router from the pod on the real node.
    let out = cli.ok(&["pull", &image, "-a", app, "--procfile", PROCFILE]);
    assert!(out.contains("done, v2"), "{out}\n{}", controller.log());
    let web = eventually("web up", 120, || {
        let up = up_of(&cli, app, "web");
        (up.len() == 1).then(|| up[0].clone())
    });
    assert!(
        web.starts_with(&format!("{app}-web-")) && web.split('-').count() == 4,
        "a pod name: {web}"
    );
    let (status, body) = eventually("web answers through the router", 60, || {
        let (status, body) = routed(&controller.router_url, app);
        (status == 200).then_some((status, body))
    });
    assert_eq!(status, 200);
    assert_eq!(body.trim(), format!("hello from {web}"), "the pod answers");

    // Scale: two web pods and the sleeper, each `up` under its pod name.
    cli.ok(&["scale", "web=2", "sleeper=1", "-a", app]);
    let webs = eventually("2 web pods up", 120, || {
        let up = up_of(&cli, app, "web");
        (up.len() == 2).then_some(up)
    });
    let sleeper = eventually("the sleeper up", 120, || {
        up_of(&cli, app, "sleeper").into_iter().next()
    });
    assert!(sleeper.starts_with(&format!("{app}-sleeper-")), "{sleeper}");
    // The router reaches both web pods.
    let mut answered = std::collections::BTreeSet::new();
    eventually("both web pods answer", 60, || {
        let (status, body) = routed(&controller.router_url, app);
        if status == 200 {
            answered.insert(body.trim().trim_start_matches("hello from ").to_string());
        }
        (answered.len() == 2).then_some(())
    });
    assert_eq!(answered, webs.iter().cloned().collect());

    // `ps:exec`: the command's output and exit code, in the pod.
    let output = cli.run(&["ps:exec", &sleeper, "-a", app, "--", "date", "+%Y"]);
    assert_eq!(output.code, 0, "{}{}", output.stdout, output.stderr);
    let year: u32 = output.stdout.trim().parse().expect("a year");
    assert!(year >= 2024, "{year}");
    let output = cli.run(&["ps:exec", &sleeper, "-a", app, "--", "hostname"]);
    assert_eq!(output.stdout.trim(), sleeper, "in the pod it names");
    let output = cli.run(&["ps:exec", &sleeper, "-a", app, "--", "sh", "-c", "exit 3"]);
    assert_eq!(output.code, 3, "{}", output.stderr);

    // `logs`: what the sleeper printed, through the kubelet.
    eventually("the sleeper's output in the logs", 60, || {
        cli.ok(&["logs", "-a", app])
            .contains("sleeping")
            .then_some(())
    });

    // `ps:exec -it -- sh` over a pseudo-terminal: a line typed, its
    // output and exit code.
    support::cli::interactive_exec(&cli, &sleeper, Some(app));

    // A controller restart leaves every pod as it was.
    let before = ps_rows(&cli.ok(&["ps", "-a", app]));
    controller.restart();
    let after = eventually("ps after the restart", 60, || {
        let rows = ps_rows(&cli.ok(&["ps", "-a", app]));
        (rows.len() == before.len()).then_some(rows)
    });
    assert_eq!(after, before, "the same pods, in the same states");
    eventually("web answers after the restart", 60, || {
        (routed(&controller.router_url, app).0 == 200).then_some(())
    });

    cli.ok(&["apps:destroy", "-a", app, "--confirm", app]);
}

/// Lines a `drycc logs -f` prints, collected while it runs.
struct Follow {
    child: std::process::Child,
    lines: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Follow {
    fn start(cli: &Cli, app: &str) -> Follow {
        use std::io::BufRead;
        let mut child = cli
            .command(&["logs", "-f", "-a", app])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("drycc logs -f runs");
        let stdout = child.stdout.take().expect("its stdout");
        let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = std::sync::Arc::clone(&lines);
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                sink.lock().expect("lines").push(line);
            }
        });
        Follow { child, lines }
    }

    fn has(&self, text: &str) -> bool {
        self.lines
            .lock()
            .expect("lines")
            .iter()
            .any(|l| l.contains(text))
    }
}

impl Drop for Follow {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn scale_down_stops_pods_and_restarts_replace_them() {
    let Some((registry, image)) = setup("stop") else {
        return;
    };
    let controller = Controller::start(&[
        ("DRYCC_ENGINE", "kubernetes"),
        ("DRYCC_REGISTRY", &registry),
        ("DRYCC_SLUG_IMAGE", &image),
        ("DRYCC_KUBE_NODE_SELECTOR", REAL_NODE_LABEL),
        ("DRYCC_KUBE_TOLERATIONS", REAL_NODE_TAINT),
        // Short, so that the stubborn process is killed soon.
        ("DRYCC_TERMINATION_GRACE_PERIOD", "3"),
    ]);
    let cli = registered(&controller, "captain");
    let app = "realstop";
    cli.ok(&["create", app, "--no-remote"]);
    // `polite` exits on SIGTERM and says so; `stubborn` says it got it and
    // goes on, until the SIGKILL after the grace period.
    let procfile = format!(
        "{PROCFILE}polite: sh -c 'trap \"echo polite got SIGTERM; exit 0\" TERM; echo polite ready; while true; do sleep 1; done'\nstubborn: sh -c 'trap \"echo stubborn ignores SIGTERM\" TERM; echo stubborn ready; while true; do sleep 1; done'\n"
    );
    cli.ok(&["pull", &image, "-a", app, "--procfile", &procfile]);
    cli.ok(&[
        "scale",
        "web=0",
        "polite=1",
        "stubborn=1",
        "sleeper=1",
        "-a",
        app,
    ]);
    for ptype in ["polite", "stubborn", "sleeper"] {
        eventually(&format!("{ptype} up"), 120, || {
            (up_of(&cli, app, ptype).len() == 1).then_some(())
        });
    }
    let follow = Follow::start(&cli, app);
    eventually("both ready in the followed logs", 60, || {
        (follow.has("polite ready") && follow.has("stubborn ready")).then_some(())
    });

    // Scale-down: SIGTERM to both; the stubborn one is killed after the
    // grace period (it would loop for ever), and both pods go.
    cli.ok(&["scale", "polite=0", "stubborn=0", "-a", app]);
    eventually("SIGTERM reached both processes", 60, || {
        (follow.has("polite got SIGTERM") && follow.has("stubborn ignores SIGTERM")).then_some(())
    });
    eventually("both pods gone", 60, || {
        let rows = ps_rows(&cli.ok(&["ps", "-a", app]));
        (!rows
            .iter()
            .any(|(_, _, _, t)| t == "polite" || t == "stubborn"))
        .then_some(())
    });
    drop(follow);

    // Restart a type: a new pod under a new name, up.
    let sleeper = up_of(&cli, app, "sleeper").remove(0);
    cli.ok(&["ps:restart", "sleeper", "-a", app]);
    let restarted = eventually("a new sleeper up alone", 120, || {
        let rows = ps_rows(&cli.ok(&["ps", "-a", app]));
        let sleepers: Vec<_> = rows.iter().filter(|r| r.3 == "sleeper").collect();
        (sleepers.len() == 1 && sleepers[0].0 != sleeper && sleepers[0].2 == "up")
            .then(|| sleepers[0].0.clone())
    });
    // Restart one process: replaced under another name.
    cli.ok(&["ps:restart", &restarted, "-a", app]);
    let replaced = eventually("the sleeper replaced", 120, || {
        let rows = ps_rows(&cli.ok(&["ps", "-a", app]));
        let sleepers: Vec<_> = rows.iter().filter(|r| r.3 == "sleeper").collect();
        (sleepers.len() == 1 && sleepers[0].0 != restarted && sleepers[0].2 == "up")
            .then(|| sleepers[0].0.clone())
    });
    let output = cli.run(&["ps:exec", &replaced, "-a", app, "--", "hostname"]);
    assert_eq!(output.stdout.trim(), replaced, "{}", output.stderr);

    cli.ok(&["apps:destroy", "-a", app, "--confirm", app]);
}

#[test]
fn a_cpu_limit_is_the_containers_cfs_quota() {
    let Some((registry, image)) = setup("limits") else {
        return;
    };
    let controller = start_controller(&registry, &image);
    let cli = registered(&controller, "captain");
    let app = "reallimits";
    cli.ok(&["create", app, "--no-remote"]);
    cli.ok(&["pull", &image, "-a", app, "--procfile", PROCFILE]);
    cli.ok(&["scale", "web=0", "sleeper=1", "-a", app]);
    let before = eventually("the sleeper up", 120, || {
        up_of(&cli, app, "sleeper").into_iter().next()
    });
    cli.ok(&["limits:set", "--cpu", "sleeper=250m", "-a", app]);
    // The limit rolls out: a new pod, alone and up.
    let limited = eventually("the limited sleeper up alone", 120, || {
        let rows = ps_rows(&cli.ok(&["ps", "-a", app]));
        let sleepers: Vec<_> = rows.iter().filter(|r| r.3 == "sleeper").collect();
        (sleepers.len() == 1 && sleepers[0].0 != before && sleepers[0].2 == "up")
            .then(|| sleepers[0].0.clone())
    });
    // Its CFS quota, as the container sees it: 250m of a 100 ms period is
    // 25 ms (cgroup v2's cpu.max, or v1's cpu.cfs_quota_us).
    let output = cli.run(&[
        "ps:exec",
        &limited,
        "-a",
        app,
        "--",
        "sh",
        "-c",
        "cat /sys/fs/cgroup/cpu.max 2>/dev/null || echo \"$(cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us) $(cat /sys/fs/cgroup/cpu/cpu.cfs_period_us)\"",
    ]);
    assert_eq!(output.code, 0, "{}{}", output.stdout, output.stderr);
    assert_eq!(output.stdout.trim(), "25000 100000", "{}", output.stderr);

    cli.ok(&["apps:destroy", "-a", app, "--confirm", app]);
}

#[test]
fn cpu_load_scales_web_through_the_hpa() {
    let Some((registry, image)) = setup("hpa") else {
        return;
    };
    let controller = Controller::start(&[
        ("DRYCC_ENGINE", "kubernetes"),
        ("DRYCC_REGISTRY", &registry),
        ("DRYCC_SLUG_IMAGE", &image),
        ("DRYCC_KUBE_NODE_SELECTOR", REAL_NODE_LABEL),
        ("DRYCC_KUBE_TOLERATIONS", REAL_NODE_TAINT),
        // The HPA's stabilisation windows (its behavior): short here.
        ("DRYCC_AUTOSCALE_UP_WINDOW", "0"),
        ("DRYCC_AUTOSCALE_DOWN_WINDOW", "5"),
    ]);
    let cli = registered(&controller, "captain");
    let api = support::cli::api_of(&controller, &cli);
    let app = "realhpa";
    cli.ok(&["create", app, "--no-remote"]);
    // Web burns CPU while /tmp/burn exists (a loop beside the server).
    let procfile = "web: sh -c 'mkdir -p /tmp; while :; do while [ -e /tmp/burn ]; do :; done; sleep 1; done & exec httpd -f -p $PORT -h /tmp'\n";
    cli.ok(&["pull", &image, "-a", app, "--procfile", procfile]);
    // A CPU request to measure utilisation against (limits are requests).
    cli.ok(&["limits:set", "--cpu", "web=100m", "-a", app]);
    cli.ok(&[
        "autoscale:set",
        "web",
        "--min=1",
        "--max=4",
        "--cpu-percent=50",
        "-a",
        app,
    ]);
    let list = cli.ok(&["autoscale:list", "-a", app]);
    assert!(
        list.contains("web") && list.contains("50") && list.contains('4'),
        "{list}"
    );
    let web = eventually("one limited web pod up alone", 180, || {
        let rows = ps_rows(&cli.ok(&["ps", "-a", app]));
        let webs: Vec<_> = rows.iter().filter(|r| r.3 == "web").collect();
        // v3: the release of the limit, rolled out.
        (webs.len() == 1 && webs[0].1 == "v3" && webs[0].2 == "up").then(|| webs[0].0.clone())
    });

    // Real load: the first web pod's loop burns.
    let output = cli.run(&["ps:exec", &web, "-a", app, "--", "touch", "/tmp/burn"]);
    assert_eq!(output.code, 0, "{}{}", output.stdout, output.stderr);
    // The HPA scales web up; the structure and `ps` follow.
    eventually("the HPA scales web up, the structure follows", 240, || {
        let body = api.get(&format!("/v2/apps/{app}/")).body;
        (body["structure"]["web"].as_i64().unwrap_or(0) >= 2).then_some(())
    });
    eventually("ps shows the new web pods up", 180, || {
        (up_of(&cli, app, "web").len() >= 2).then_some(())
    });

    // No load: back down to the minimum.
    let output = cli.run(&["ps:exec", &web, "-a", app, "--", "rm", "/tmp/burn"]);
    assert_eq!(output.code, 0, "{}{}", output.stdout, output.stderr);
    eventually("the HPA scales web back down", 300, || {
        let body = api.get(&format!("/v2/apps/{app}/")).body;
        (body["structure"]["web"] == 1).then_some(())
    });
    eventually("ps shows one web pod", 120, || {
        let rows = ps_rows(&cli.ok(&["ps", "-a", app]));
        (rows.iter().filter(|r| r.3 == "web").count() == 1).then_some(())
    });
    let list = cli.ok(&["autoscale:list", "-a", app]);
    assert!(list.contains("web") && list.contains("50"), "{list}");

    cli.ok(&["apps:destroy", "-a", app, "--confirm", app]);
}
