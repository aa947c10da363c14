//! The Kubernetes engine against the testbed's API server, read back with
//! the API: the objects of the mapping with their names, labels, args,
//! resources, probes and strategy; counts through `/scale`; `restartedAt`
//! on a type restart; the HorizontalPodAutoscaler's life; removals.
//! Skipped, loudly, without `KUBECONFIG` (unless `DRYCC_K8S_REQUIRED=1`).

mod support;

use support::{apply, wait_for, DEADLINE};

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use drycc_engine::{
    is_converged, Artifact, AutoscaleSpec, Command, Deployment, Engine, EngineError, ImageSpec,
    ProcessState, ProcessTemplate,
};
use drycc_engine_kube::KubeEngine;
use k8s_openapi::api::apps::v1::Deployment as KubeDeployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{Namespace, Pod, Secret, Service};
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::Client;
use tokio::time::Instant;

const POLL: Duration = Duration::from_millis(100);

/// A name no other test (or earlier run) uses.
fn app_name(prefix: &str) -> String {
    static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    format!("{prefix}-{:x}{n}", nanos ^ std::process::id())
}

fn template(app: &str, ptype: &str, release: u32, generation: u64) -> ProcessTemplate {
    ProcessTemplate {
        app: app.to_string(),
        ptype: ptype.to_string(),
        release,
        hash: drycc_model::naming::template_hash(app, ptype, release, generation),
        artifact: Artifact::Image(ImageSpec {
            reference: format!("registry.test/{app}:v{release}"),
            entrypoint: vec![],
            port: 8000,
            credentials: None,
        }),
        command: Command::Line(format!("run-{ptype} --port $PORT --greeting \"$GREETING\"")),
        env: [("GREETING".to_string(), format!("hello v{release}"))].into(),
        grace_period: Duration::from_secs(12),
        readiness: None,
        liveness: None,
        cpu_millis: Some(250),
        memory_bytes: Some(128 * 1024 * 1024),
        user: None,
    }
}

/// Poll the API (for what the engine does not watch) until `done` holds.
async fn poll_until<T: std::fmt::Debug, F: std::future::Future<Output = T>>(
    what: &str,
    mut read: impl FnMut() -> F,
    mut done: impl FnMut(&T) -> bool,
) -> T {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let value = read().await;
        if done(&value) {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {value:#?}"
        );
        tokio::time::sleep(POLL).await;
    }
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

async fn get_deployment(client: &Client, app: &str, ptype: &str) -> KubeDeployment {
    Api::<KubeDeployment>::namespaced(client.clone(), app)
        .get(&format!("{app}-{ptype}"))
        .await
        .expect("the deployment exists")
}

async fn remove(engine: &KubeEngine, app: &str) {
    engine.remove_app(app).await.expect("remove_app");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_carry_the_names_labels_and_settings_of_the_mapping() {
    let Some((client, engine)) = support::engine("cluster objects", "cluster-tests").await else {
        return;
    };
    let app = app_name("objects");
    let web = template(&app, "web", 1, 0);
    let worker = template(&app, "worker", 1, 0);
    let webs = apply(&engine, &web, 2).await;
    let workers = apply(&engine, &worker, 1).await;
    let procs = wait_for(&engine, &app, "2 web and 1 worker up", |p| {
        is_converged(&webs, p) && is_converged(&workers, p)
    })
    .await;

    let namespace = Api::<Namespace>::all(client.clone())
        .get(&app)
        .await
        .expect("the namespace exists");
    let ns_labels = namespace.metadata.labels.unwrap_or_default();
    assert_eq!(ns_labels.get("heritage").map(String::as_str), Some("drycc"));
    assert_eq!(
        ns_labels.get("drycc.cc/instance").map(String::as_str),
        Some("cluster-tests")
    );
    assert!(engine.apps().await.expect("apps").contains(&app));

    let d = get_deployment(&client, &app, "web").await;
    let selector = labels(&[("app", &app), ("type", "web"), ("heritage", "drycc")]);
    assert_eq!(d.metadata.labels.as_ref(), Some(&selector));
    assert_eq!(d.spec.selector.match_labels.as_ref(), Some(&selector));
    assert_eq!(d.spec.replicas, Some(2));
    let strategy = d.spec.strategy.clone().expect("a strategy");
    assert_eq!(strategy.type_.as_deref(), Some("RollingUpdate"));
    let rolling = strategy.rolling_update.expect("rolling update settings");
    assert_eq!(
        serde_json::to_value((&rolling.max_surge, &rolling.max_unavailable)).unwrap(),
        serde_json::json!([1, 0])
    );
    let pod_template = d.spec.template.clone();
    let pod_labels = pod_template
        .metadata
        .and_then(|m| m.labels)
        .unwrap_or_default();
    assert_eq!(pod_labels.get("version").map(String::as_str), Some("v1"));
    assert_eq!(pod_labels.get("drycc.cc/hash"), Some(&web.hash));
    let spec = pod_template.spec.expect("a pod spec");
    assert_eq!(spec.termination_grace_period_seconds, Some(12));
    let c = &spec.containers[0];
    assert_eq!(
        c.image.as_deref(),
        Some(format!("registry.test/{app}:v1").as_str())
    );
    assert_eq!(c.command, None, "the image's ENTRYPOINT is kept");
    assert_eq!(
        c.args.clone().unwrap_or_default(),
        vec!["run-web", "--port", "8000", "--greeting", "hello v1"]
    );
    let resources = c.resources.clone().expect("resources");
    let quantities =
        |m: Option<BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>>| {
            m.unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, v.0))
                .collect::<BTreeMap<_, _>>()
        };
    let expected = labels(&[("cpu", "250m"), ("memory", "128Mi")]);
    assert_eq!(quantities(resources.limits), expected);
    assert_eq!(quantities(resources.requests), expected);
    let readiness = c
        .readiness_probe
        .clone()
        .expect("web has a readiness probe");
    assert_eq!(
        serde_json::to_value(&readiness.tcp_socket.expect("tcp").port).unwrap(),
        serde_json::json!(8000)
    );
    assert_eq!(
        (
            readiness.initial_delay_seconds,
            readiness.period_seconds,
            readiness.timeout_seconds
        ),
        (Some(5), Some(5), Some(5))
    );
    let env = c.env.clone().unwrap_or_default();
    let greeting = env.iter().find(|e| e.name == "GREETING").expect("GREETING");
    let secret_ref = greeting
        .value_from
        .as_ref()
        .and_then(|v| v.secret_key_ref.as_ref())
        .expect("from the release's Secret");
    assert_eq!(secret_ref.name, format!("{app}-web-v1-env"));
    let worker_d = get_deployment(&client, &app, "worker").await;
    let worker_c = &worker_d.spec.template.spec.expect("a pod spec").containers[0];
    assert!(
        worker_c.readiness_probe.is_none(),
        "only web gets the default readiness probe"
    );

    let secret = Api::<Secret>::namespaced(client.clone(), &app)
        .get(&format!("{app}-web-v1-env"))
        .await
        .expect("the release Secret exists");
    let value = secret.data.unwrap_or_default()["GREETING"].0.clone();
    assert_eq!(value, b"hello v1");

    let service = Api::<Service>::namespaced(client.clone(), &app)
        .get(&app)
        .await
        .expect("the web Service exists");
    let service_spec = service.spec.expect("a service spec");
    assert_eq!(
        service_spec.selector,
        Some(labels(&[
            ("app", &app),
            ("type", "web"),
            ("heritage", "drycc")
        ]))
    );
    let port = &service_spec.ports.expect("ports")[0];
    assert_eq!(port.port, 80);
    assert_eq!(
        serde_json::to_value(&port.target_port).unwrap(),
        serde_json::json!(8000)
    );

    // Processes are the pods, under their Kubernetes names.
    for p in &procs {
        assert_eq!(p.state, ProcessState::Up, "{p:#?}");
        assert!(p.ready, "{p:#?}");
        let prefix = format!("{app}-{}-", p.ptype);
        let rest = p
            .name
            .strip_prefix(&prefix)
            .unwrap_or_else(|| panic!("{} is <app>-<type>-<pod-template-hash>-<5>", p.name));
        let parts: Vec<&str> = rest.split('-').collect();
        assert_eq!(parts.len(), 2, "{}", p.name);
        assert_eq!(parts[1].len(), 5, "{}", p.name);
        assert!(p.endpoint.is_some_and(|e| e.port() == 8000), "{p:#?}");
        assert_eq!(
            p.command,
            format!("run-{} --port $PORT --greeting \"$GREETING\"", p.ptype)
        );
        assert_eq!(p.argv[0], format!("run-{}", p.ptype));
    }
    remove(&engine, &app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_count_alone_goes_through_the_scale_subresource() {
    let Some((client, engine)) = support::engine("cluster scale", "cluster-tests").await else {
        return;
    };
    let app = app_name("scale");
    let web = template(&app, "web", 1, 0);
    let one = apply(&engine, &web, 1).await;
    let before = wait_for(&engine, &app, "1 web up", |p| is_converged(&one, p)).await;
    let applied = get_deployment(&client, &app, "web").await;

    let three = apply(&engine, &web, 3).await;
    let after = wait_for(&engine, &app, "3 web up", |p| is_converged(&three, p)).await;
    assert!(
        after.iter().any(|p| p.name == before[0].name),
        "scaling keeps the running pod"
    );
    let scaled = get_deployment(&client, &app, "web").await;
    assert_eq!(scaled.spec.replicas, Some(3));
    assert_eq!(
        scaled.spec.template, applied.spec.template,
        "the pod template is untouched"
    );
    let managers = scaled.metadata.managed_fields.unwrap_or_default();
    assert!(
        managers
            .iter()
            .any(|m| m.subresource.as_deref() == Some("scale")),
        "the count was written through /scale: {managers:#?}"
    );
    let pods = Api::<Pod>::namespaced(client.clone(), &app)
        .list(&ListParams::default().labels("type=web"))
        .await
        .expect("pods");
    assert_eq!(pods.items.len(), 3);

    let zero = apply(&engine, &web, 0).await;
    wait_for(&engine, &app, "web scaled to 0", |p| is_converged(&zero, p)).await;
    assert_eq!(
        get_deployment(&client, &app, "web").await.spec.replicas,
        Some(0)
    );
    remove(&engine, &app).await;
}

fn restarted_at(d: &KubeDeployment) -> Option<String> {
    d.spec
        .template
        .metadata
        .as_ref()
        .and_then(|m| m.annotations.as_ref())
        .and_then(|a| a.get("kubectl.kubernetes.io/restartedAt").cloned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_type_restart_sets_restarted_at_and_releases_prune_old_secrets() {
    let Some((client, engine)) = support::engine("cluster restart", "cluster-tests").await else {
        return;
    };
    let app = app_name("restart");
    let v1 = template(&app, "worker", 1, 0);
    let d1 = apply(&engine, &v1, 2).await;
    let before = wait_for(&engine, &app, "v1 up", |p| is_converged(&d1, p)).await;
    assert_eq!(
        restarted_at(&get_deployment(&client, &app, "worker").await),
        None
    );

    // The controller restarts a type by a new hash of the same release.
    let restarted = template(&app, "worker", 1, 1);
    let d2 = apply(&engine, &restarted, 2).await;
    let after = wait_for(&engine, &app, "the type restarted", |p| {
        is_converged(&d2, p)
    })
    .await;
    let at = restarted_at(&get_deployment(&client, &app, "worker").await);
    assert!(at.is_some(), "restartedAt is set");
    let hash_of = |name: &str| name.rsplit('-').nth(1).map(str::to_string);
    for p in &after {
        assert!(!before.iter().any(|b| b.name == p.name), "{after:#?}");
        assert_ne!(
            hash_of(&p.name),
            hash_of(&before[0].name),
            "a new ReplicaSet hash in the names"
        );
    }
    // Applying the same again keeps the annotation: nothing rolls.
    apply(&engine, &restarted, 2).await;
    assert_eq!(
        restarted_at(&get_deployment(&client, &app, "worker").await),
        at
    );

    // Releases: v2 keeps v1's Secret (pods may still use it), v3 prunes it.
    let secrets = || async {
        let list = Api::<Secret>::namespaced(client.clone(), &app)
            .list(&ListParams::default().labels("heritage=drycc"))
            .await
            .expect("secrets");
        let mut names: Vec<String> = list
            .items
            .into_iter()
            .filter_map(|s| s.metadata.name)
            .collect();
        names.sort();
        names
    };
    for release in [2, 3] {
        let d = apply(&engine, &template(&app, "worker", release, 0), 2).await;
        wait_for(&engine, &app, "the release rolled", |p| is_converged(&d, p)).await;
    }
    assert_eq!(
        secrets().await,
        vec![
            format!("{app}-worker-v2-env"),
            format!("{app}-worker-v3-env")
        ]
    );
    remove(&engine, &app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_autoscaler_is_created_updated_followed_and_deleted() {
    let Some((client, engine)) = support::engine("cluster autoscale", "cluster-tests").await else {
        return;
    };
    // A rule may come before the type's first deploy.
    let early = app_name("early");
    let early_rule = AutoscaleSpec {
        min: 1,
        max: 2,
        cpu_percent: 50,
        up_window: Duration::ZERO,
        down_window: Duration::ZERO,
    };
    engine
        .autoscale(&early, "web", Some(early_rule))
        .await
        .expect("autoscale before any deploy");
    let first = apply(&engine, &template(&early, "web", 1, 0), 1).await;
    wait_for(&engine, &early, "the first deploy up", |p| {
        is_converged(&first, p)
    })
    .await;
    remove(&engine, &early).await;

    let app = app_name("hpa");
    let web = template(&app, "web", 1, 0);
    let two = apply(&engine, &web, 2).await;
    wait_for(&engine, &app, "2 web up", |p| is_converged(&two, p)).await;
    assert!(engine
        .autoscaled(&app)
        .await
        .expect("autoscaled")
        .is_empty());

    let rule = AutoscaleSpec {
        min: 2,
        max: 5,
        cpu_percent: 60,
        up_window: Duration::from_secs(30),
        down_window: Duration::from_secs(120),
    };
    engine
        .autoscale(&app, "web", Some(rule.clone()))
        .await
        .expect("autoscale");
    let hpas: Api<HorizontalPodAutoscaler> = Api::namespaced(client.clone(), &app);
    let name = format!("{app}-web");
    let hpa = hpas.get(&name).await.expect("the HPA exists");
    let spec = &hpa.spec;
    assert_eq!((spec.min_replicas, spec.max_replicas), (Some(2), 5));
    assert_eq!(spec.scale_target_ref.kind, "Deployment");
    assert_eq!(spec.scale_target_ref.name, name);
    let metric = &spec.metrics.as_ref().expect("metrics")[0];
    let target = &metric.resource.as_ref().expect("a resource metric").target;
    assert_eq!(
        (target.type_.as_str(), target.average_utilization),
        ("Utilization", Some(60))
    );
    let behavior = spec.behavior.as_ref().expect("behavior");
    let window = |r: &Option<k8s_openapi::api::autoscaling::v2::HPAScalingRules>| {
        r.as_ref().and_then(|r| r.stabilization_window_seconds)
    };
    assert_eq!(
        (window(&behavior.scale_up), window(&behavior.scale_down)),
        (Some(30), Some(120))
    );

    // Updated in place.
    let wider = AutoscaleSpec { max: 8, ..rule };
    engine
        .autoscale(&app, "web", Some(wider))
        .await
        .expect("autoscale again");
    assert_eq!(hpas.get(&name).await.expect("the HPA").spec.max_replicas, 8);

    // The HPA sets the count (as its controller does, through /scale);
    // the engine reports it and a later apply leaves it alone.
    let deployments: Api<KubeDeployment> = Api::namespaced(client.clone(), &app);
    deployments
        .patch_scale(
            &name,
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": {"replicas": 4}})),
        )
        .await
        .expect("scale as the HPA does");
    let four = Deployment {
        template: web.clone(),
        replicas: 4,
    };
    wait_for(&engine, &app, "4 web up", |p| is_converged(&four, p)).await;
    let counts = engine.autoscaled(&app).await.expect("autoscaled");
    assert_eq!(counts, [("web".to_string(), 4)].into());
    apply(&engine, &web, 2).await;
    assert_eq!(
        get_deployment(&client, &app, "web").await.spec.replicas,
        Some(4)
    );
    // A new release of an autoscaled type keeps the count too.
    apply(&engine, &template(&app, "web", 2, 0), 2).await;
    assert_eq!(
        get_deployment(&client, &app, "web").await.spec.replicas,
        Some(4)
    );

    engine.autoscale(&app, "web", None).await.expect("unset");
    assert!(
        hpas.get_opt(&name).await.expect("get").is_none(),
        "the HPA is gone"
    );
    assert!(engine
        .autoscaled(&app)
        .await
        .expect("autoscaled")
        .is_empty());
    // Unsetting again is no error; a bad rule is refused.
    engine
        .autoscale(&app, "web", None)
        .await
        .expect("unset again");
    let bad = AutoscaleSpec {
        min: 5,
        max: 2,
        cpu_percent: 60,
        up_window: Duration::ZERO,
        down_window: Duration::ZERO,
    };
    let refused = engine.autoscale(&app, "web", Some(bad)).await;
    assert!(
        matches!(refused, Err(EngineError::Invalid(_))),
        "{refused:?}"
    );
    remove(&engine, &app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removals_delete_the_objects_and_the_namespace() {
    let Some((client, engine)) = support::engine("cluster removal", "cluster-tests").await else {
        return;
    };
    let app = app_name("removal");
    let web = template(&app, "web", 1, 0);
    let worker = template(&app, "worker", 1, 0);
    let webs = apply(&engine, &web, 1).await;
    let workers = apply(&engine, &worker, 1).await;
    wait_for(&engine, &app, "all up", |p| {
        is_converged(&webs, p) && is_converged(&workers, p)
    })
    .await;
    engine
        .autoscale(
            &app,
            "web",
            Some(AutoscaleSpec {
                min: 1,
                max: 3,
                cpu_percent: 50,
                up_window: Duration::ZERO,
                down_window: Duration::from_secs(60),
            }),
        )
        .await
        .expect("autoscale");

    engine.remove_type(&app, "web").await.expect("remove_type");
    wait_for(&engine, &app, "web gone", |p| {
        p.iter().all(|p| p.ptype != "web") && is_converged(&workers, p)
    })
    .await;
    let missing = |found: bool, what: &str| assert!(!found, "{what} is gone");
    missing(
        Api::<KubeDeployment>::namespaced(client.clone(), &app)
            .get_opt(&format!("{app}-web"))
            .await
            .expect("get")
            .is_some(),
        "the web Deployment",
    );
    missing(
        Api::<HorizontalPodAutoscaler>::namespaced(client.clone(), &app)
            .get_opt(&format!("{app}-web"))
            .await
            .expect("get")
            .is_some(),
        "the web HPA",
    );
    missing(
        Api::<Service>::namespaced(client.clone(), &app)
            .get_opt(&app)
            .await
            .expect("get")
            .is_some(),
        "the Service",
    );
    missing(
        Api::<Secret>::namespaced(client.clone(), &app)
            .get_opt(&format!("{app}-web-v1-env"))
            .await
            .expect("get")
            .is_some(),
        "the web Secret",
    );

    engine.remove_app(&app).await.expect("remove_app");
    wait_for(&engine, &app, "every pod gone", |p| p.is_empty()).await;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    poll_until(
        "the namespace to go",
        || namespaces.get_opt(&app),
        |ns| matches!(ns, Ok(None)),
    )
    .await
    .expect("reading the namespace");
    assert!(!engine.apps().await.expect("apps").contains(&app));
    engine.remove_app(&app).await.expect("removing it again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_the_cluster_cannot_take_is_refused_before_anything_is_written() {
    let Some((client, engine)) = support::engine("cluster refusals", "cluster-tests").await else {
        return;
    };
    let app = app_name("refused");
    let cases: Vec<(&str, ProcessTemplate)> = vec![
        ("a config key no Secret may have", {
            let mut t = template(&app, "web", 1, 0);
            t.env.insert("BAD KEY".to_string(), "x".to_string());
            t
        }),
        ("a type name with capitals", template(&app, "Web", 1, 0)),
        ("a checkout", {
            let mut t = template(&app, "web", 1, 0);
            t.artifact = Artifact::Checkout {
                path: "/tmp".into(),
            };
            t
        }),
        ("an unterminated quote", {
            let mut t = template(&app, "web", 1, 0);
            t.command = Command::Line("run 'oops".to_string());
            t
        }),
    ];
    for (what, t) in cases {
        let result = engine
            .apply(Deployment {
                template: t,
                replicas: 1,
            })
            .await;
        assert!(
            matches!(
                result,
                Err(EngineError::Invalid(_) | EngineError::Unsupported(_))
            ),
            "{what}: {result:?}"
        );
    }
    let namespace = Api::<Namespace>::all(client.clone())
        .get_opt(&app)
        .await
        .expect("get");
    assert!(namespace.is_none(), "nothing was written");
    let restart = engine.restart_process(&app, "nope").await;
    assert!(
        matches!(restart, Err(EngineError::ProcessNotFound(_))),
        "{restart:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_engine_on_the_same_cluster_changes_nothing() {
    let Some((client, engine)) = support::engine("cluster adoption", "cluster-tests").await else {
        return;
    };
    let app = app_name("adopted");
    let web = template(&app, "web", 1, 0);
    let worker = template(&app, "worker", 1, 0);
    let webs = apply(&engine, &web, 2).await;
    let workers = apply(&engine, &worker, 1).await;
    let before = wait_for(&engine, &app, "all up", |p| {
        is_converged(&webs, p) && is_converged(&workers, p)
    })
    .await;
    let versions = || async {
        let d = |ptype: &'static str| get_deployment(&client, &app, ptype);
        let (web_d, worker_d) = (d("web").await, d("worker").await);
        let secret = Api::<Secret>::namespaced(client.clone(), &app)
            .get(&format!("{app}-web-v1-env"))
            .await
            .expect("secret");
        let service = Api::<Service>::namespaced(client.clone(), &app)
            .get(&app)
            .await
            .expect("service");
        (
            web_d.metadata.generation,
            worker_d.metadata.generation,
            secret.metadata.resource_version,
            service.metadata.resource_version,
        )
    };
    let objects = versions().await;
    engine.close().await;
    drop(engine);

    // As a restarted controller does: a new engine, the same declarations.
    let Some((_, again)) = support::engine("cluster adoption", "cluster-tests").await else {
        return;
    };
    let adopted = again.processes(&app).await.expect("processes");
    assert_eq!(
        adopted.iter().map(|p| &p.name).collect::<Vec<_>>(),
        before.iter().map(|p| &p.name).collect::<Vec<_>>(),
        "the new engine sees the running pods at once"
    );
    apply(&again, &web, 2).await;
    apply(&again, &worker, 1).await;
    assert_eq!(versions().await, objects, "nothing was written");
    let after = wait_for(&again, &app, "all up", |p| {
        is_converged(&webs, p) && is_converged(&workers, p)
    })
    .await;
    assert_eq!(
        after.iter().map(|p| &p.name).collect::<Vec<_>>(),
        before.iter().map(|p| &p.name).collect::<Vec<_>>()
    );
    remove(&again, &app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_the_server_refuses_half_way_is_taken_back() {
    let Some((client, engine)) = support::engine("cluster take back", "cluster-tests").await else {
        return;
    };
    // An exec probe without a command: only the API server's validation
    // of the Deployment refuses it, after the Namespace and the Secret.
    let app = app_name("taken-back");
    let mut bad = template(&app, "web", 1, 0);
    bad.readiness = Some(drycc_engine::Probe {
        action: drycc_engine::ProbeAction::Exec { command: vec![] },
        initial_delay: Duration::ZERO,
        period: Duration::from_secs(5),
        timeout: Duration::from_secs(1),
        failure_threshold: 3,
    });
    let refused = engine
        .apply(Deployment {
            template: bad.clone(),
            replicas: 1,
        })
        .await;
    let Err(EngineError::Invalid(message)) = &refused else {
        panic!("the server's 422 is Invalid: {refused:?}");
    };
    assert!(
        message.contains(&format!("applying deployment {app}-web")) && message.contains("command"),
        "the message names the object and the field: {message}"
    );
    // The new Namespace is taken back with it.
    let namespaces: Api<Namespace> = Api::all(client.clone());
    poll_until(
        "the namespace taken back",
        || namespaces.get_opt(&app),
        |ns| {
            matches!(ns, Ok(None))
                || matches!(ns, Ok(Some(ns)) if ns.metadata.deletion_timestamp.is_some())
        },
    )
    .await
    .expect("reading the namespace");
    assert!(!engine.apps().await.expect("apps").contains(&app));

    // Next to a running type, only the new release's Secret goes.
    let app = app_name("kept");
    let good = template(&app, "web", 1, 0);
    let one = apply(&engine, &good, 1).await;
    wait_for(&engine, &app, "web up", |p| is_converged(&one, p)).await;
    let mut bad_v2 = bad.clone();
    bad_v2.app = app.clone();
    bad_v2.release = 2;
    bad_v2.hash = drycc_model::naming::template_hash(&app, "web", 2, 0);
    let refused = engine
        .apply(Deployment {
            template: bad_v2,
            replicas: 1,
        })
        .await;
    assert!(
        matches!(refused, Err(EngineError::Invalid(_))),
        "{refused:?}"
    );
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &app);
    assert!(secrets
        .get_opt(&format!("{app}-web-v2-env"))
        .await
        .expect("get")
        .is_none());
    assert!(secrets
        .get_opt(&format!("{app}-web-v1-env"))
        .await
        .expect("get")
        .is_some());
    let d = get_deployment(&client, &app, "web").await;
    assert_eq!(
        d.spec
            .template
            .metadata
            .and_then(|m| m.labels)
            .unwrap_or_default()["version"],
        "v1",
        "the running release is untouched"
    );
    remove(&engine, &app).await;
}
