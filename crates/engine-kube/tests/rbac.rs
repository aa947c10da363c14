//! The engine with exactly the rights `docs/kubernetes.md` lists ("What
//! the engine may do on the cluster"), read from its table: a ServiceAccount
//! bound to a ClusterRole of those rules runs an app through its whole
//! life. A right the engine needs and the table lacks fails this test.

mod support;

use support::{apply, wait_for};

use std::time::Duration;

use drycc_engine::{
    is_converged, Artifact, AutoscaleSpec, Command, Engine, ImageSpec, ProcessTemplate,
};
use drycc_engine_kube::{KubeConfig, KubeEngine};
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DeleteParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};

/// The rules of the table in docs/kubernetes.md.
fn documented_rules() -> Vec<PolicyRule> {
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/kubernetes.md"
    ))
    .expect("docs/kubernetes.md");
    let section = doc
        .split("## What the engine may do on the cluster")
        .nth(1)
        .expect("the section of the engine's rights");
    let mut rules = Vec::new();
    for line in section.lines().skip_while(|l| !l.starts_with('|')) {
        if !line.starts_with('|') {
            break;
        }
        let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
        if cells.len() != 3 || cells[0] == "API group" || cells[0].starts_with("---") {
            continue;
        }
        let group = match cells[0].trim_matches('`') {
            "core" => String::new(),
            other => other.to_string(),
        };
        rules.push(PolicyRule {
            api_groups: Some(vec![group]),
            resources: Some(vec![cells[1].trim_matches('`').to_string()]),
            verbs: cells[2].split(',').map(|v| v.trim().to_string()).collect(),
            ..Default::default()
        });
    }
    assert!(rules.len() >= 5, "the table was read: {rules:#?}");
    rules
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
            port: 5000,
            credentials: None,
        }),
        command: Command::Args(vec!["serve".to_string()]),
        env: [("K".to_string(), format!("v{release}"))].into(),
        grace_period: Duration::from_secs(5),
        readiness: None,
        liveness: None,
        cpu_millis: None,
        memory_bytes: None,
        user: None,
    }
}

/// A client of the ServiceAccount `account` of `namespace`, with a token
/// the API server issues for it.
async fn client_as(admin: &kube::Client, namespace: &str, account: &str) -> kube::Client {
    let request = TokenRequest {
        spec: Some(TokenRequestSpec {
            expiration_seconds: Some(3600),
            ..Default::default()
        }),
        ..Default::default()
    };
    let issued = Api::<ServiceAccount>::namespaced(admin.clone(), namespace)
        .create_token_request(account, &PostParams::default(), &request)
        .await
        .expect("a token of the service account");
    let token = issued.status.expect("an issued token").token;
    let kubeconfig = Kubeconfig::read().expect("KUBECONFIG");
    let mut value = serde_json::to_value(&kubeconfig).expect("as JSON");
    for user in value["users"].as_array_mut().expect("users") {
        user["user"] = serde_json::json!({ "token": token });
    }
    let kubeconfig: Kubeconfig = serde_json::from_value(value).expect("a kubeconfig");
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("a config");
    kube::Client::try_from(config).expect("a client")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_engine_needs_no_more_than_the_documented_rights() {
    let Some(admin) = support::client("engine rights").await else {
        return;
    };
    let suffix = format!(
        "{:x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0)
            ^ std::process::id()
    );
    let home = format!("rbac-home-{suffix}");
    let role = format!("drycc-engine-test-{suffix}");
    let meta = |name: &str| ObjectMeta {
        name: Some(name.to_string()),
        ..Default::default()
    };
    let pp = PostParams::default();
    Api::<Namespace>::all(admin.clone())
        .create(
            &pp,
            &Namespace {
                metadata: meta(&home),
                ..Default::default()
            },
        )
        .await
        .expect("the service account's namespace");
    Api::<ServiceAccount>::namespaced(admin.clone(), &home)
        .create(
            &pp,
            &ServiceAccount {
                metadata: meta("engine"),
                ..Default::default()
            },
        )
        .await
        .expect("the service account");
    Api::<ClusterRole>::all(admin.clone())
        .create(
            &pp,
            &ClusterRole {
                metadata: meta(&role),
                rules: Some(documented_rules()),
                ..Default::default()
            },
        )
        .await
        .expect("the cluster role");
    Api::<ClusterRoleBinding>::all(admin.clone())
        .create(
            &pp,
            &ClusterRoleBinding {
                metadata: meta(&role),
                role_ref: RoleRef {
                    api_group: Some("rbac.authorization.k8s.io".to_string()),
                    kind: "ClusterRole".to_string(),
                    name: role.clone(),
                },
                subjects: Some(vec![Subject {
                    kind: "ServiceAccount".to_string(),
                    name: "engine".to_string(),
                    namespace: Some(home.clone()),
                    ..Default::default()
                }]),
            },
        )
        .await
        .expect("the binding");

    let client = client_as(&admin, &home, "engine").await;
    let config = KubeConfig {
        instance: format!("rbac-{suffix}"),
        ..KubeConfig::default()
    };
    let engine = match KubeEngine::connect(client, config).await {
        Ok(engine) => engine,
        Err(e) => panic!("connecting with the documented rights: {}", e.detail()),
    };

    // An app's whole life: deploy, scale, restarts, autoscale, releases
    // (old Secrets pruned), a type removed, the app removed.
    let app = format!("rbac-app-{suffix}");
    let web = template(&app, "web", 1, 0);
    let worker = template(&app, "worker", 1, 0);
    let webs = apply(&engine, &web, 2).await;
    let workers = apply(&engine, &worker, 1).await;
    let procs = wait_for(&engine, &app, "all up", |p| {
        is_converged(&webs, p) && is_converged(&workers, p)
    })
    .await;
    assert!(engine.apps().await.expect("apps").contains(&app));
    let three = apply(&engine, &web, 3).await;
    wait_for(&engine, &app, "3 web", |p| is_converged(&three, p)).await;
    engine
        .restart_process(&app, &procs[0].name)
        .await
        .expect("restart one process");
    let restarted = apply(&engine, &template(&app, "web", 1, 1), 3).await;
    wait_for(&engine, &app, "web restarted", |p| {
        is_converged(&restarted, p)
    })
    .await;
    engine
        .autoscale(
            &app,
            "web",
            Some(AutoscaleSpec {
                min: 1,
                max: 4,
                cpu_percent: 80,
                up_window: Duration::ZERO,
                down_window: Duration::from_secs(60),
            }),
        )
        .await
        .expect("autoscale");
    engine.autoscaled(&app).await.expect("autoscaled");
    for release in [2, 3] {
        apply(&engine, &template(&app, "web", release, 0), 3).await;
    }
    engine.autoscale(&app, "web", None).await.expect("unset");
    engine
        .remove_type(&app, "worker")
        .await
        .expect("remove_type");
    engine
        .remove_type(&app, "web")
        .await
        .expect("remove_type web");
    engine.remove_app(&app).await.expect("remove_app");
    wait_for(&engine, &app, "every pod gone", |p| p.is_empty()).await;
    // A watch refused (a right missing) falls back to listing again: it
    // works, late; the rights must cover the watches too.
    let errors = engine.watch_errors();
    assert_eq!(
        errors.count(),
        0,
        "the watches met errors: {:?}",
        errors.last()
    );
    engine.close().await;

    let dp = DeleteParams::default();
    let _ = Api::<ClusterRoleBinding>::all(admin.clone())
        .delete(&role, &dp)
        .await;
    let _ = Api::<ClusterRole>::all(admin.clone())
        .delete(&role, &dp)
        .await;
    let _ = Api::<Namespace>::all(admin.clone())
        .delete(&home, &dp)
        .await;
}
