//! Scale on simulated nodes: 50 kwok Nodes, N image apps deployed through a
//! controller with `DRYCC_ENGINE=kubernetes`, and for each size (25, 50 and
//! 100 apps) rounds that scale `web` of every app 0 -> 20 through the
//! controller's API, timed until all pods are Running, against the floor:
//! the same Deployments scaled 0 -> 20 through the API server's `/scale`
//! subresource directly (what `kubectl scale` sends), in the same run.
//! Printed per size: both medians and their ratio, the controller's RSS,
//! and the API server's requests per second in both.
//!
//! Usage (the testbed without its real node and with the controller
//! manager's and scheduler's client limits lifted, a registry for the
//! image; the controller is the `drycc-controller` beside the benchmark):
//!
//! ```text
//! cargo build --release --locked -p drycc-controller -p drycc-bench
//! DRYCC_K8S_REAL_NODE=0 DRYCC_K8S_NO_QPS_LIMITS=1 bash scripts/with-docker.sh \
//!     bash scripts/k8s-testbed.sh run target/release/drycc-bench-kwok
//! ```
//!
//! `DRYCC_BENCH_SIZES` (default `25,50,100`) and `DRYCC_BENCH_ROUNDS`
//! (default `2,2,1`, one number per size) change the run.
//!
//! The controller desires what it was last told, so it would undo a scale
//! it did not make: it is stopped (SIGTERM) for the floor's rounds and
//! started again on the same data directory after them.
//!
//! The API server has no per-client request counter, so the controller's
//! requests are its total (`apiserver_request_total`) over the controller's
//! round less the benchmark's own requests, less the same figure of the
//! floor's round: what the controller manager, the scheduler and kwok do
//! for 20 pods an app is the same in both.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use drycc_bench::{rss_kib, Api, Controller};
use futures::future::try_join_all;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

const NODES: usize = 50;
const COUNT: i32 = 20;

struct Cluster {
    client: kube::Client,
    runtime: tokio::runtime::Runtime,
    /// Requests this program sent to the API server.
    own_requests: std::cell::Cell<u64>,
}

impl Cluster {
    fn block<T>(&self, future: impl std::future::Future<Output = T>) -> T {
        self.runtime.block_on(future)
    }

    /// 50 Nodes kwok plays (the annotation it selects on), and the
    /// testbed's own Node cordoned so the pods spread over these.
    fn make_nodes(&self) -> Result<()> {
        let nodes: kube::Api<Node> = kube::Api::all(self.client.clone());
        for i in 0..NODES {
            let name = format!("kwok-bench-{i}");
            if self.block(nodes.get_opt(&name))?.is_some() {
                continue;
            }
            let node: Node = serde_json::from_value(json!({
                "metadata": {"name": name,
                    "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
                    "labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
                               "kubernetes.io/arch": "amd64", "type": "kwok"}},
                "status": {"capacity": {"cpu": "32", "memory": "64Gi", "pods": "110"},
                           "allocatable": {"cpu": "32", "memory": "64Gi", "pods": "110"}}
            }))?;
            self.block(nodes.create(&PostParams::default(), &node))?;
        }
        let cordon = json!({"spec": {"unschedulable": true}});
        self.block(nodes.patch("fake-node", &PatchParams::default(), &Patch::Merge(&cordon)))?;
        self.wait("50 kwok Nodes Ready", Duration::from_secs(120), || {
            let list = self.block(nodes.list(&ListParams::default().labels("type=kwok")))?;
            let ready = list
                .items
                .iter()
                .filter(|n| n.metadata.name.as_deref() != Some("fake-node"))
                .filter(|n| {
                    n.status
                        .as_ref()
                        .and_then(|s| s.conditions.as_ref())
                        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
                })
                .count();
            Ok(ready >= NODES)
        })
    }

    /// Running (not terminating) and live pods of `web` in the bench apps.
    fn web_pods(&self) -> Result<(usize, usize)> {
        let pods: kube::Api<Pod> = kube::Api::all(self.client.clone());
        self.own_requests.set(self.own_requests.get() + 1);
        let list = self.block(pods.list(&ListParams::default().labels("type=web")))?;
        let ours = list.items.iter().filter(|p| {
            p.metadata
                .namespace
                .as_deref()
                .is_some_and(|n| n.starts_with("kbench-"))
        });
        let (mut running, mut live) = (0, 0);
        for pod in ours {
            live += 1;
            if pod.metadata.deletion_timestamp.is_none()
                && pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
            {
                running += 1;
            }
        }
        Ok((running, live))
    }

    /// Poll (every 200 ms) until `done`, at most `limit`.
    fn wait(
        &self,
        what: &str,
        limit: Duration,
        mut done: impl FnMut() -> Result<bool>,
    ) -> Result<()> {
        let deadline = Instant::now() + limit;
        while !done()? {
            if Instant::now() > deadline {
                bail!("not within {limit:?}: {what}");
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        Ok(())
    }

    fn all_running(&self, want: usize) -> Result<()> {
        self.wait(
            &format!("{want} pods Running"),
            Duration::from_secs(600),
            || {
                let (running, live) = self.web_pods()?;
                Ok(running == want && live == want)
            },
        )
    }

    fn all_gone(&self) -> Result<()> {
        self.wait("every web pod gone", Duration::from_secs(600), || {
            Ok(self.web_pods()?.1 == 0)
        })
    }

    /// The floor: every Deployment's `/scale` set at once.
    fn scale_directly(&self, apps: &[String], count: i32) -> Result<()> {
        let patch = json!({"spec": {"replicas": count}});
        self.own_requests
            .set(self.own_requests.get() + apps.len() as u64);
        self.block(try_join_all(apps.iter().map(|app| {
            let api: kube::Api<Deployment> = kube::Api::namespaced(self.client.clone(), app);
            let patch = &patch;
            async move {
                api.patch_scale(
                    &format!("{app}-web"),
                    &PatchParams::default(),
                    &Patch::Merge(patch),
                )
                .await
            }
        })))?;
        Ok(())
    }

    /// The sum of `apiserver_request_total`: every request it served.
    fn served_requests(&self) -> Result<u64> {
        let request = http::Request::get("/metrics").body(Vec::new())?;
        let text = self.block(self.client.request_text(request))?;
        self.own_requests.set(self.own_requests.get() + 1);
        Ok(text
            .lines()
            .filter(|l| l.starts_with("apiserver_request_total{"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>() as u64)
    }
}

/// One timed scale-up: how long, and the requests others than this
/// program made meanwhile.
struct Round {
    took: Duration,
    others: u64,
}

fn measure(cluster: &Cluster, scale_up: impl FnOnce() -> Result<()>, want: usize) -> Result<Round> {
    let before = cluster.served_requests()?;
    let own = cluster.own_requests.get();
    let started = Instant::now();
    scale_up()?;
    cluster.all_running(want)?;
    let took = started.elapsed();
    let after = cluster.served_requests()?;
    let own = cluster.own_requests.get() - own;
    Ok(Round {
        took,
        others: (after - before).saturating_sub(own),
    })
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

fn main() -> Result<()> {
    if std::env::var_os("KUBECONFIG").is_none() {
        bail!("KUBECONFIG is not set: run under scripts/k8s-testbed.sh run (see the header)");
    }
    let (Some(docker), Some(registry)) = (
        drycc_images::testing::docker_from_env(),
        drycc_images::testing::test_registry(),
    ) else {
        bail!("DOCKER_HOST and DRYCC_TEST_REGISTRY are not set: run under scripts/with-docker.sh");
    };
    let sizes: Vec<usize> = list_env("DRYCC_BENCH_SIZES", "25,50,100")?;
    let rounds: Vec<usize> = list_env("DRYCC_BENCH_ROUNDS", "2,2,1")?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let client = runtime.block_on(kube::Client::try_default())?;
    let cluster = Cluster {
        client,
        runtime,
        own_requests: std::cell::Cell::new(0),
    };
    let image = format!("{registry}/kwok-bench:1");
    cluster.block(async {
        drycc_images::testing::build_busybox_image(
            &docker,
            &image,
            "CMD [\"httpd\", \"-f\", \"-p\", \"5000\"]",
        )
        .await?;
        drycc_images::testing::push(&docker, &image).await
    })?;
    let started = Instant::now();
    cluster.make_nodes()?;
    eprintln!(
        "{NODES} kwok Nodes Ready in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let max = (COUNT.max(100)).to_string();
    let env = [
        ("DRYCC_ENGINE", "kubernetes"),
        ("DRYCC_REGISTRY", registry.as_str()),
        ("DRYCC_SLUG_IMAGE", image.as_str()),
        ("DRYCC_MAX_PROCESSES_PER_TYPE", max.as_str()),
        ("DRYCC_DEPLOY_TIMEOUT", "600"),
    ];
    let mut controller = Controller::start(&env)?;
    let mut api = Api::register(&controller.url)?;
    let mut apps: Vec<String> = Vec::new();
    println!(
        "web of every app 0 -> {COUNT} on {NODES} kwok Nodes: through the controller vs the Deployments' /scale directly"
    );
    for (index, &size) in sizes.iter().enumerate() {
        let deploy_started = Instant::now();
        while apps.len() < size {
            let app = format!("kbench-{}", apps.len());
            deploy(&api, &app, &image)?;
            apps.push(app);
        }
        // Every app starts a round at 0.
        scale_all(&api, &apps, 0)?;
        cluster.all_gone()?;
        eprintln!(
            "{size} apps deployed in {:.1} s",
            deploy_started.elapsed().as_secs_f64()
        );
        let want = size * COUNT as usize;
        let (mut ours, mut floors, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
        let (mut our_rates, mut floor_rates, mut rss_max) = (Vec::new(), Vec::new(), 0u64);
        for _ in 0..rounds.get(index).or(rounds.last()).copied().unwrap_or(1) {
            let pid = controller.pid();
            let round = measure(&cluster, || scale_all(&api, &apps, COUNT), want)?;
            rss_max = rss_max.max(rss_kib(pid)?);
            scale_all(&api, &apps, 0)?;
            cluster.all_gone()?;
            rss_max = rss_max.max(rss_kib(pid)?);
            controller.stop();
            let floor = measure(&cluster, || cluster.scale_directly(&apps, COUNT), want)?;
            cluster.scale_directly(&apps, 0)?;
            cluster.all_gone()?;
            controller.spawn()?;
            api.url = controller.url.clone();
            let took = round.took.as_secs_f64();
            let floor_took = floor.took.as_secs_f64();
            eprintln!(
                "  {size} apps: controller {took:.2} s, floor {floor_took:.2} s, requests {} vs {}",
                round.others, floor.others
            );
            // What the API server served per second, less the benchmark's
            // own requests: the controller's round (the controller plus the
            // cluster's own controllers) against the floor's (the latter
            // alone). The API server has no per-client count, and the
            // cluster's controllers vary between rounds by more than the
            // controller adds, so both are printed rather than a difference.
            our_rates.push(round.others as f64 / took);
            floor_rates.push(floor.others as f64 / floor_took);
            ratios.push(took / floor_took);
            ours.push(took);
            floors.push(floor_took);
        }
        println!(
            "{size:>3} apps, {want:>4} pods: controller {:.2} s, floor {:.2} s, ratio {:.2}x (median of {}), controller RSS {:.1} MiB, API server requests {:.0}/s vs {:.0}/s for the floor",
            median(&mut ours),
            median(&mut floors),
            median(&mut ratios),
            ours.len(),
            rss_max as f64 / 1024.0,
            median(&mut our_rates),
            median(&mut floor_rates),
        );
    }
    Ok(())
}

/// Create `app` and deploy the image to it (`drycc pull`).
fn deploy(api: &Api, app: &str, image: &str) -> Result<()> {
    let created = api.post("/v2/apps/", json!({"id": app}))?;
    if created.status().as_u16() != 201 {
        bail!(
            "creating {app} answered {}: {}",
            created.status(),
            created.text()?
        );
    }
    let pulled = api.post(&format!("/v2/apps/{app}/builds/"), json!({"image": image}))?;
    if pulled.status().as_u16() != 201 {
        bail!(
            "pulling {image} into {app} answered {}: {}",
            pulled.status(),
            pulled.text()?
        );
    }
    Ok(())
}

/// `POST /scale/` of every app at once, as many users would.
fn scale_all(api: &Api, apps: &[String], count: i32) -> Result<()> {
    std::thread::scope(|scope| {
        let handles: Vec<_> = apps
            .iter()
            .map(|app| scope.spawn(move || api.scale(app, json!({"web": count}))))
            .collect();
        for handle in handles {
            handle
                .join()
                .map_err(|_| anyhow::anyhow!("a scale request panicked"))??;
        }
        Ok(())
    })
}

fn list_env(name: &str, default: &str) -> Result<Vec<usize>> {
    let text = std::env::var(name).unwrap_or_else(|_| default.to_string());
    text.split(',')
        .map(|v| {
            v.trim()
                .parse()
                .with_context(|| format!("{name}: {v:?} is not a number (a list like {default})"))
        })
        .collect()
}
