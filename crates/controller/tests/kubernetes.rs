//! `DRYCC_ENGINE=kubernetes` through the real CLI against a real control
//! plane (`scripts/k8s-testbed.sh`: etcd, kube-apiserver,
//! kube-controller-manager, kube-scheduler, and kwok playing the kubelet),
//! with images in a real registry (`scripts/with-docker.sh`). Every step is
//! checked in the cluster through the Kubernetes API.
//!
//! Skipped, loudly, without `KUBECONFIG`, `DOCKER_HOST` and
//! `DRYCC_TEST_REGISTRY`, unless `DRYCC_K8S_REQUIRED=1` (CI), which makes a
//! missing part a failure.

mod support;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use drycc_images::testing::{build_busybox_image, push};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{Namespace, Pod, Secret};
use kube::api::ListParams;
use kube::Api as KubeApi;
use support::cli::{api_of, ps_rows, registered, Cli};
use support::{example_repo, Controller};

struct Cluster {
    client: kube::Client,
    runtime: tokio::runtime::Runtime,
}

impl Cluster {
    fn block<T>(&self, future: impl std::future::Future<Output = T>) -> T {
        self.runtime.block_on(future)
    }

    fn deployment(&self, app: &str, ptype: &str) -> Option<Deployment> {
        let api: KubeApi<Deployment> = KubeApi::namespaced(self.client.clone(), app);
        self.block(api.get_opt(&format!("{app}-{ptype}")))
            .expect("read the deployment")
    }

    fn hpa(&self, app: &str, ptype: &str) -> Option<HorizontalPodAutoscaler> {
        let api: KubeApi<HorizontalPodAutoscaler> = KubeApi::namespaced(self.client.clone(), app);
        self.block(api.get_opt(&format!("{app}-{ptype}")))
            .expect("read the autoscaler")
    }

    fn secret(&self, app: &str, name: &str) -> Option<Secret> {
        let api: KubeApi<Secret> = KubeApi::namespaced(self.client.clone(), app);
        self.block(api.get_opt(name)).expect("read the secret")
    }

    fn namespace(&self, app: &str) -> Option<Namespace> {
        let api: KubeApi<Namespace> = KubeApi::all(self.client.clone());
        self.block(api.get_opt(app)).expect("read the namespace")
    }

    /// Set a type's count as an autoscaler does: the `/scale` subresource.
    fn set_scale(&self, app: &str, ptype: &str, count: i32) {
        let api: KubeApi<Deployment> = KubeApi::namespaced(self.client.clone(), app);
        let patch = serde_json::json!({ "spec": { "replicas": count } });
        self.block(api.patch_scale(
            &format!("{app}-{ptype}"),
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&patch),
        ))
        .expect("scale");
    }

    /// Names of the live (not terminating) pods of one type.
    fn pods(&self, app: &str, ptype: &str) -> BTreeSet<String> {
        let api: KubeApi<Pod> = KubeApi::namespaced(self.client.clone(), app);
        let list = self
            .block(api.list(&ListParams::default().labels(&format!("app={app},type={ptype}"))))
            .expect("list pods");
        list.items
            .into_iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .filter_map(|p| p.metadata.name)
            .collect()
    }
}

/// The cluster, the registry and the busybox image every app runs.
fn setup(test: &str) -> Option<(Cluster, String, String)> {
    let (docker, registry) = support::cluster_prerequisites(test)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let client = runtime
        .block_on(kube::Client::try_default())
        .expect("a client of the testbed");
    let image = format!("{registry}/kube-{test}:1");
    runtime.block_on(async {
        build_busybox_image(
            &docker,
            &image,
            "CMD [\"httpd\", \"-f\", \"-p\", \"5000\", \"-h\", \"/\"]",
        )
        .await
        .expect("build");
        push(&docker, &image).await.expect("push");
    });
    Some((Cluster { client, runtime }, registry, image))
}

/// Poll `check` until it gives a value (60 s).
fn eventually<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(Instant::now() < deadline, "never happened: {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The (only) container of a type's pods.
fn container(deployment: &Deployment) -> &k8s_openapi::api::core::v1::Container {
    &deployment
        .spec
        .template
        .spec
        .as_ref()
        .expect("a pod spec")
        .containers[0]
}

/// The ReplicaSet hash in a pod name `<app>-<type>-<hash>-<suffix>`.
fn replica_set_hash(name: &str) -> &str {
    let mut parts = name.rsplitn(3, '-');
    parts.next();
    parts.next().expect("a hash")
}

fn replicas(deployment: &Deployment) -> i32 {
    deployment.spec.replicas.unwrap_or(-1)
}

fn controller_env(registry: &str, image: &str) -> Vec<(&'static str, String)> {
    vec![
        ("DRYCC_ENGINE", "kubernetes".to_string()),
        ("DRYCC_REGISTRY", registry.to_string()),
        ("DRYCC_SLUG_IMAGE", image.to_string()),
    ]
}

#[test]
fn the_walkthrough_on_a_cluster() {
    let Some((cluster, registry, image)) = setup("walk") else {
        return;
    };
    let env = controller_env(&registry, &image);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut controller = Controller::start(&env);
    let cli = registered(&controller, "captain");
    let app = "kwalk";
    cli.ok(&["create", app, "--no-remote"]);

    // An image deploy: web from the image's CMD, a worker from the Procfile.
    let out = cli.ok(&[
        "pull",
        &image,
        "-a",
        app,
        "--procfile",
        "worker: sh -c 'sleep 1000'",
    ]);
    assert!(out.contains("done, v2"), "{out}");
    let rows = ps_rows(&cli.ok(&["ps", "-a", app]));
    assert_eq!(rows.len(), 1, "only web starts: {rows:?}");
    let web = rows[0].0.clone();
    assert!(
        web.starts_with(&format!("{app}-web-")) && web.split('-').count() == 4,
        "a pod name: {web}"
    );
    assert_eq!(cluster.pods(app, "web"), BTreeSet::from([web.clone()]));
    assert!(cluster.namespace(app).is_some(), "a namespace per app");
    let deployment = cluster
        .deployment(app, "web")
        .expect("a Deployment per type");
    assert_eq!(replicas(&deployment), 1);

    // Scale up and down: the Deployment and its pods follow.
    cli.ok(&["scale", "web=3", "worker=1", "-a", app]);
    assert_eq!(replicas(&cluster.deployment(app, "web").expect("web")), 3);
    eventually("3 web pods", || {
        (cluster.pods(app, "web").len() == 3).then_some(())
    });
    assert_eq!(cluster.pods(app, "worker").len(), 1);
    cli.ok(&["scale", "web=1", "-a", app]);
    assert_eq!(replicas(&cluster.deployment(app, "web").expect("web")), 1);
    let web = eventually("1 web pod", || {
        let pods = cluster.pods(app, "web");
        (pods.len() == 1).then(|| pods.into_iter().next().expect("one"))
    });

    // Restart a type: a new ReplicaSet; one process: a new name.
    cli.ok(&["ps:restart", "web", "-a", app]);
    let restarted = eventually("a new web pod", || {
        let pods = cluster.pods(app, "web");
        (pods.len() == 1 && !pods.contains(&web)).then(|| pods.into_iter().next().expect("one"))
    });
    assert_ne!(replica_set_hash(&restarted), replica_set_hash(&web));
    let worker = cluster
        .pods(app, "worker")
        .into_iter()
        .next()
        .expect("a worker");
    cli.ok(&["ps:restart", &worker, "-a", app]);
    eventually("the worker replaced", || {
        let pods = cluster.pods(app, "worker");
        (pods.len() == 1 && !pods.contains(&worker)).then_some(())
    });

    // Limits become container resources.
    cli.ok(&["limits:set", "--cpu", "web=500m", "-a", app]);
    let deployment = cluster.deployment(app, "web").expect("web");
    let container = container(&deployment);
    let limits = container
        .resources
        .as_ref()
        .and_then(|r| r.limits.as_ref())
        .expect("limits");
    assert_eq!(limits.get("cpu").map(|q| q.0.as_str()), Some("500m"));

    // Config: a new Secret for the new release, and a rollout.
    cli.ok(&["config:set", "GREETING=ahoy", "-a", app]);
    let releases = cli.ok(&["releases", "-a", app]);
    let version: u32 = releases
        .split_whitespace()
        .filter_map(|w| w.strip_prefix('v').and_then(|v| v.parse().ok()))
        .max()
        .expect("a release");
    let secret = cluster
        .secret(app, &format!("{app}-web-v{version}-env"))
        .unwrap_or_else(|| panic!("the Secret of v{version}: {releases}"));
    assert!(secret.data.expect("data").contains_key("GREETING"));
    let template = cluster.deployment(app, "web").expect("web").spec.template;
    let labels = template.metadata.and_then(|m| m.labels).unwrap_or_default();
    assert_eq!(
        labels.get("version").map(String::as_str),
        Some(format!("v{version}").as_str()),
        "the new release rolls out"
    );

    // Autoscale: an HPA with the rule and the windows; scale is refused.
    cli.ok(&[
        "autoscale:set",
        "web",
        "--min=2",
        "--max=5",
        "--cpu-percent=60",
        "-a",
        app,
    ]);
    let hpa = cluster.hpa(app, "web").expect("an HPA");
    let spec = hpa.spec;
    assert_eq!((spec.min_replicas, spec.max_replicas), (Some(2), 5));
    let target = spec.metrics.expect("metrics")[0]
        .resource
        .as_ref()
        .expect("a resource metric")
        .target
        .average_utilization;
    assert_eq!(target, Some(60));
    let behavior = spec.behavior.expect("behavior");
    assert!(behavior
        .scale_down
        .and_then(|r| r.stabilization_window_seconds)
        .is_some());
    // The rule's minimum is the count at once.
    assert_eq!(replicas(&cluster.deployment(app, "web").expect("web")), 2);
    // What the HPA sets, the structure follows (here the scale is set as
    // the HPA would: no metrics run on the testbed).
    let api = api_of(&controller, &cli);
    cluster.set_scale(app, "web", 4);
    eventually("the structure follows the HPA", || {
        let body = api.get(&format!("/v2/apps/{app}/")).body;
        (body["structure"]["web"] == 4).then_some(())
    });
    let list = cli.ok(&["autoscale:list", "-a", app]);
    assert!(list.contains("web") && list.contains("60"), "{list}");
    let refused = cli.run(&["scale", "web=4", "-a", app]);
    assert_ne!(refused.code, 0, "a scale of an autoscaled type is refused");
    assert!(
        refused.stderr.contains("autoscal"),
        "it says why: {}",
        refused.stderr
    );
    let answer = api.post(
        &format!("/v2/apps/{app}/scale/"),
        serde_json::json!({ "web": 4 }),
    );
    assert_eq!(answer.status, 409, "{}", answer.body);
    cli.ok(&["autoscale:unset", "web", "-a", app]);
    eventually("the HPA gone", || {
        cluster.hpa(app, "web").is_none().then_some(())
    });

    // A controller restart changes nothing in the cluster.
    let before = cluster.deployment(app, "web").expect("web");
    let pods_before = cluster.pods(app, "web");
    controller.restart();
    let rows = ps_rows(&cli.ok(&["ps", "-a", app]));
    assert!(!rows.is_empty());
    let after = cluster.deployment(app, "web").expect("web");
    assert_eq!(
        before.metadata.generation, after.metadata.generation,
        "the Deployment was not rewritten"
    );
    assert_eq!(cluster.pods(app, "web"), pods_before);

    // Destroy: the namespace goes.
    cli.ok(&["apps:destroy", "-a", app, "--confirm", app]);
    eventually("the namespace gone", || {
        cluster
            .namespace(app)
            .is_none_or(|n| n.metadata.deletion_timestamp.is_some())
            .then_some(())
    });
}

#[test]
fn a_source_app_runs_as_a_slug_image() {
    let Some((cluster, registry, image)) = setup("slug") else {
        return;
    };
    let env = controller_env(&registry, &image);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let controller = Controller::start(&env);
    let cli = registered(&controller, "builder");
    let repo = example_repo();
    let cli = Cli {
        home: cli.home,
        cwd: repo.path().to_path_buf(),
    };
    let app = "kslug";
    cli.ok(&["create", app]);
    let pushed = std::process::Command::new("git")
        .args(["push", "drycc", "main"])
        .current_dir(repo.path())
        .env("HOME", cli.home.path())
        .env("GIT_TERMINAL_PROMPT", "0")
        .output()
        .expect("git runs");
    let said = String::from_utf8_lossy(&pushed.stderr).into_owned();
    assert!(
        pushed.status.success(),
        "push: {said}\n{}",
        controller.log()
    );
    assert!(said.contains("Publishing the slug"), "{said}");
    let deployment = cluster.deployment(app, "web").expect("web");
    let container = container(&deployment);
    let reference = container.image.clone().expect("an image");
    assert!(
        reference.starts_with(&format!("{registry}/{app}:")),
        "the slug image from the registry: {reference}"
    );
    // The slug image's entrypoint is `/bin/sh -c`: the line is its one
    // argument, after the slug's .profile.d scripts.
    let args = container.args.clone().unwrap_or_default();
    assert!(
        args.len() == 1 && args[0].contains("exec python3 server.py"),
        "{args:?}"
    );
    eventually("the web pod", || {
        (cluster.pods(app, "web").len() == 1).then_some(())
    });
    cli.ok(&["apps:destroy", "-a", app, "--confirm", app]);
}
