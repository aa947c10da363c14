//! Two controller replicas sharing one PostgreSQL database and one
//! `coordination.k8s.io` Lease on the Kubernetes test control plane
//! (`scripts/k8s-testbed.sh`): exactly one leads and labels its Pod; a
//! scale sent to either replica's API is applied by the leader's engine
//! only; when the leader is killed the other takes the Lease within the
//! lease duration (and a renew period), labels its Pod and reconciles: the
//! desired processes appear under it.
//!
//! Each replica runs the local engine on its own data and run dirs; the
//! slugs are shared (a symlinked directory), as a cluster shares slug
//! images through its registry. Needs `KUBECONFIG` (the testbed's) and
//! `DRYCC_TEST_DATABASE_URL` (`scripts/with-postgres.sh`); without them the
//! test says so and passes, unless `DRYCC_K8S_REQUIRED=1`.

mod support;

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Container, Pod, PodSpec};
use kube::api::{Api as KubeApi, DeleteParams, ObjectMeta, PostParams};
use serde_json::json;
use support::{fixture_repo, free_port, push, Api, Controller};

const NAMESPACE: &str = "default";
const LEASE_SECONDS: u64 = 6;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// What the test needs, or why it cannot run.
fn prerequisites() -> Option<String> {
    let required = std::env::var("DRYCC_K8S_REQUIRED").is_ok_and(|v| v == "1");
    let mut missing = Vec::new();
    if std::env::var_os("KUBECONFIG").is_none_or(|v| v.is_empty()) {
        missing.push("KUBECONFIG (start the testbed: eval \"$(bash scripts/k8s-testbed.sh up)\")");
    }
    if std::env::var_os("DRYCC_TEST_DATABASE_URL").is_none_or(|v| v.is_empty()) {
        missing.push("DRYCC_TEST_DATABASE_URL (run under scripts/with-postgres.sh)");
    }
    if missing.is_empty() {
        return std::env::var("DRYCC_TEST_DATABASE_URL").ok();
    }
    let message = format!("the leader election test needs {}", missing.join(" and "));
    assert!(!required, "{message} (DRYCC_K8S_REQUIRED=1)");
    // Straight to stderr: the harness hides `eprintln!` of a passing test,
    // and a run without a cluster must never look green in silence.
    use std::io::Write;
    let _ = std::io::stderr()
        .lock()
        .write_all(format!("\n!!!!!!!! SKIPPED {message} !!!!!!!!\n").as_bytes());
    None
}

/// A controller replica on its own data and run dirs, electing with
/// `lease`, as Pod `pod`, with the shared slugs directory.
fn replica(pod: &str, lease: &str, slugs: &std::path::Path, database: Option<&str>) -> Controller {
    let data_dir = tempfile::tempdir().expect("temp dir");
    std::os::unix::fs::symlink(slugs, data_dir.path().join("slugs")).expect("shared slugs");
    let mut env: Vec<(String, String)> = vec![
        ("DRYCC_LEADER_LEASE".into(), format!("{NAMESPACE}/{lease}")),
        (
            "DRYCC_LEADER_LEASE_SECONDS".into(),
            LEASE_SECONDS.to_string(),
        ),
        ("DRYCC_POD_NAME".into(), pod.into()),
        ("DRYCC_POD_NAMESPACE".into(), NAMESPACE.into()),
        ("DRYCC_DOCKER_HOST".into(), "off".into()),
    ];
    if let Some(url) = database {
        env.push(("DRYCC_DATABASE_URL".into(), url.into()));
    }
    let mut controller = Controller {
        child: None,
        url: String::new(),
        router_url: String::new(),
        data_dir,
        env,
        database: None,
    };
    controller.spawn_at(free_port(), free_port());
    controller
}

/// `GET /healthz`: (leader, holder).
fn role(controller: &Controller) -> (bool, Option<String>) {
    let answer = Api::new(&controller.url).get("/healthz");
    assert_eq!(answer.status, 200, "{}", answer.text);
    (
        answer.body["leader"].as_bool().expect("leader"),
        answer.body["holder"].as_str().map(str::to_string),
    )
}

fn wait_until<T>(limit: Duration, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The `drycc.cc/leader` label of each Pod.
fn labels(cluster: &Cluster, names: [&str; 2]) -> [Option<String>; 2] {
    let pods: KubeApi<Pod> = KubeApi::namespaced(cluster.client.clone(), NAMESPACE);
    cluster.runtime.block_on(async {
        let mut found = [None, None];
        for (i, name) in names.iter().enumerate() {
            let pod = pods.get(name).await.expect("read pod");
            found[i] = pod
                .metadata
                .labels
                .and_then(|l| l.get("drycc.cc/leader").cloned());
        }
        found
    })
}

fn up(api: &Api, app: &str, ptype: &str) -> usize {
    api.pods(app)
        .iter()
        .filter(|p| p["type"] == ptype && p["state"] == "up")
        .count()
}

/// The Lease and the two Pods, removed at the end whatever happens; the
/// client lives on one runtime.
struct Cluster {
    runtime: tokio::runtime::Runtime,
    client: kube::Client,
    lease: String,
    pods: [String; 2],
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let client = self.client.clone();
        let (lease, pods) = (self.lease.clone(), self.pods.clone());
        self.runtime.block_on(async move {
            let leases: KubeApi<Lease> = KubeApi::namespaced(client.clone(), NAMESPACE);
            let _ = leases.delete(&lease, &DeleteParams::default()).await;
            let api: KubeApi<Pod> = KubeApi::namespaced(client, NAMESPACE);
            for pod in &pods {
                let _ = api.delete(pod, &DeleteParams::default()).await;
            }
        });
    }
}

#[test]
fn only_the_leader_reconciles_and_the_other_takes_over_when_it_dies() {
    let Some(admin_url) = prerequisites() else {
        return;
    };
    let suffix = uuid::Uuid::new_v4().simple().to_string()[..8].to_string();
    let lease = format!("drycc-controller-{suffix}");
    let pod_names = [
        format!("controller-a-{suffix}"),
        format!("controller-b-{suffix}"),
    ];
    let runtime = runtime();
    let client = runtime
        .block_on(kube::Client::try_default())
        .expect("a client of KUBECONFIG");
    let cluster = Cluster {
        runtime,
        client: client.clone(),
        lease: lease.clone(),
        pods: pod_names.clone(),
    };
    let pods: KubeApi<Pod> = KubeApi::namespaced(client.clone(), NAMESPACE);
    cluster.runtime.block_on(async {
        for name in &pod_names {
            let pod = Pod {
                metadata: ObjectMeta {
                    name: Some(name.clone()),
                    labels: Some([("app".to_string(), "drycc-controller".to_string())].into()),
                    ..ObjectMeta::default()
                },
                spec: Some(PodSpec {
                    containers: vec![Container {
                        name: "controller".into(),
                        image: Some("drycc/controller:test".into()),
                        ..Container::default()
                    }],
                    ..PodSpec::default()
                }),
                ..Pod::default()
            };
            pods.create(&PostParams::default(), &pod)
                .await
                .expect("create the replica's Pod");
        }
    });

    // One database for both (the first replica's, made here).
    let database = support::TestDatabase::create(&admin_url);
    let slugs = tempfile::tempdir().expect("slugs dir");
    let mut a = replica(&pod_names[0], &lease, slugs.path(), Some(&database.url));
    let mut b = replica(&pod_names[1], &lease, slugs.path(), Some(&database.url));
    let names = [pod_names[0].as_str(), pod_names[1].as_str()];

    // Exactly one leads, both agree who, and only its Pod has the label.
    let (leader_is_a, holder) = wait_until(
        Duration::from_secs(4 * LEASE_SECONDS),
        "one leader both replicas agree on",
        || {
            let (ra, rb) = (role(&a), role(&b));
            (ra.0 != rb.0 && ra.1.is_some() && ra.1 == rb.1)
                .then(|| (ra.0, ra.1.clone().unwrap_or_default()))
        },
    );
    let (leader, follower) = if leader_is_a {
        (&mut a, &mut b)
    } else {
        (&mut b, &mut a)
    };
    let (leader_pod, follower_pod) = if leader_is_a {
        (names[0], names[1])
    } else {
        (names[1], names[0])
    };
    assert!(
        holder.starts_with(leader_pod),
        "holder {holder} is the leader's Pod"
    );
    let stored: Lease = cluster
        .runtime
        .block_on(KubeApi::<Lease>::namespaced(client.clone(), NAMESPACE).get(&lease))
        .expect("the Lease exists");
    let spec = stored.spec.expect("lease spec");
    assert_eq!(spec.holder_identity.as_deref(), Some(holder.as_str()));
    assert_eq!(spec.lease_duration_seconds, Some(LEASE_SECONDS as i32));
    wait_until(
        Duration::from_secs(2 * LEASE_SECONDS),
        "the leader's label",
        || {
            let found = labels(&cluster, names);
            let want = |pod: &str| (pod == leader_pod).then(|| "true".to_string());
            (found == [want(names[0]), want(names[1])]).then_some(())
        },
    );

    // A user, an app and a build through the leader.
    let mut on_leader = Api::new(&leader.url);
    on_leader.login("lea", "pass-word-7");
    let app = "leader-app";
    assert_eq!(on_leader.post("/v2/apps/", json!({"id": app})).status, 201);
    let token = on_leader.token.clone().expect("token");
    let repo = fixture_repo("webapp");
    let (ok, output) = push(repo.path(), &leader.url, app, "lea", &token);
    assert!(ok, "{output}\n{}", leader.log());

    // A scale sent to the follower: written to the store, applied by the
    // leader; nothing runs under the follower.
    let mut on_follower = Api::new(&follower.url);
    on_follower.token = Some(token.clone());
    let answer = on_follower.post(&format!("/v2/apps/{app}/scale/"), json!({"sleeper": 2}));
    assert_eq!(answer.status, 204, "{}", answer.text);
    on_leader.wait_pods(
        app,
        Duration::from_secs(60),
        "sleeper=2 under the leader",
        |pods| {
            pods.iter()
                .filter(|p| p["type"] == "sleeper" && p["state"] == "up")
                .count()
                == 2
        },
    );
    // And one sent to the leader.
    let answer = on_leader.post(&format!("/v2/apps/{app}/scale/"), json!({"web": 2}));
    assert_eq!(answer.status, 204, "{}", answer.text);
    assert_eq!(up(&on_leader, app, "web"), 2);
    assert!(
        on_follower.pods(app).is_empty(),
        "the follower's engine runs nothing"
    );
    assert!(
        follower.recorded_pids().is_empty(),
        "no process record under the follower"
    );
    let follower_log = follower.log();
    assert!(
        !follower_log.contains("Reconciling every app"),
        "{follower_log}"
    );

    // The leader dies (SIGKILL: no release of the Lease). Its processes
    // run on, as after any crash; the follower takes over within the lease
    // duration and a renew period, and runs the desired state itself.
    leader.crash();
    let killed = Instant::now();
    let took_over = wait_until(
        Duration::from_secs(3 * LEASE_SECONDS),
        "the follower to take over",
        || role(follower).0.then(Instant::now),
    );
    let waited = took_over.duration_since(killed);
    println!(
        "took over {} ms after the leader was killed",
        waited.as_millis()
    );
    let bound = Duration::from_secs(LEASE_SECONDS + LEASE_SECONDS / 3 + 2);
    assert!(
        waited <= bound,
        "took over after {waited:?}, more than {bound:?}"
    );
    let (_, holder) = role(follower);
    assert!(holder.is_some_and(|h| h.starts_with(follower_pod)));
    on_follower.wait_pods(
        app,
        Duration::from_secs(60),
        "web=2 sleeper=2 under the new leader",
        |pods| {
            let up = |t: &str| {
                pods.iter()
                    .filter(|p| p["type"] == t && p["state"] == "up")
                    .count()
            };
            up("web") == 2 && up("sleeper") == 2 && pods.len() == 4
        },
    );
    assert!(follower.log().contains("Reconciling every app"));
    wait_until(
        Duration::from_secs(2 * LEASE_SECONDS),
        "the new leader's label",
        || {
            labels(&cluster, names)[if leader_pod == names[0] { 1 } else { 0 }]
                .as_deref()
                .is_some_and(|v| v == "true")
                .then_some(())
        },
    );
    // It takes changes at once.
    let answer = on_follower.post(&format!("/v2/apps/{app}/scale/"), json!({"sleeper": 3}));
    assert_eq!(answer.status, 204, "{}", answer.text);
    assert_eq!(up(&on_follower, app, "sleeper"), 3);

    // The old leader's processes are stopped by its own settings; it comes
    // back in the same Pod as a follower and takes off the label its
    // previous life left.
    let stopped = leader.stop_apps();
    assert!(
        stopped.status.success(),
        "{}",
        String::from_utf8_lossy(&stopped.stderr)
    );
    leader.spawn();
    let leader_index = usize::from(leader_pod != names[0]);
    wait_until(
        Duration::from_secs(2 * LEASE_SECONDS),
        "the stale label gone",
        || {
            let found = labels(&cluster, names);
            (found[leader_index].is_none() && found[1 - leader_index].as_deref() == Some("true"))
                .then_some(())
        },
    );
    assert!(!role(leader).0, "a restarted replica follows");

    // A leader that stops releases the Lease and its label: the other
    // takes over at its next look, well within the lease duration.
    let status = follower.stop();
    assert!(status.success(), "{status}\n{}", follower.log());
    let stopped = Instant::now();
    assert!(
        follower.log().contains("Released the leader lease"),
        "{}",
        follower.log()
    );
    let took_over = wait_until(
        Duration::from_secs(3 * LEASE_SECONDS),
        "the restarted replica to take over",
        || role(leader).0.then(Instant::now),
    );
    let waited = took_over.duration_since(stopped);
    println!(
        "took over {} ms after the leader stopped",
        waited.as_millis()
    );
    assert!(
        waited < Duration::from_secs(LEASE_SECONDS),
        "a released Lease is taken at once, not after it expires: {waited:?}"
    );
    wait_until(
        Duration::from_secs(2 * LEASE_SECONDS),
        "the labels swapped",
        || {
            let found = labels(&cluster, names);
            (found[leader_index].as_deref() == Some("true") && found[1 - leader_index].is_none())
                .then_some(())
        },
    );
    let on_leader = Api {
        url: leader.url.clone(),
        ..on_leader
    };
    on_leader.wait_pods(
        app,
        Duration::from_secs(60),
        "web=2 sleeper=3 under the restarted replica",
        |pods| {
            let up = |t: &str| {
                pods.iter()
                    .filter(|p| p["type"] == t && p["state"] == "up")
                    .count()
            };
            up("web") == 2 && up("sleeper") == 3 && pods.len() == 5
        },
    );
    // The replicas stop (dropped first, declared last), then the Lease and
    // the Pods go.
}

/// The election's settings are checked at start, with a message saying
/// what to set; no cluster is needed for that.
#[test]
fn bad_election_settings_stop_the_start_with_a_clear_message() {
    let cases: [(&[(&str, &str)], &str); 3] = [
        (
            &[("DRYCC_LEADER_LEASE", "drycc")],
            "is not <namespace>/<name>",
        ),
        (
            &[("DRYCC_LEADER_LEASE", "drycc/drycc-controller")],
            "needs a database the replicas share",
        ),
        (
            &[("DRYCC_LEADER_LEASE_SECONDS", "1")],
            "1 is not in 3..=3600",
        ),
    ];
    for (env, expected) in cases {
        let data_dir = tempfile::tempdir().expect("temp dir");
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_drycc-controller"));
        command
            .env("DRYCC_LISTEN", format!("127.0.0.1:{}", free_port()))
            .env("DRYCC_ROUTER_LISTEN", "off")
            .env("DRYCC_DATA_DIR", data_dir.path())
            .env("DRYCC_RUN_DIR", data_dir.path().join("run"))
            .env("DRYCC_DOCKER_HOST", "off")
            .env_remove("DRYCC_DATABASE_URL")
            .env_remove("DRYCC_LEADER_LEASE");
        for (key, value) in env {
            command.env(key, value);
        }
        let output = command.output().expect("run drycc-controller");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{env:?} started: {stderr}");
        assert!(stderr.contains(expected), "{env:?}: {stderr}");
    }
}
