//! What the cluster tests share: a client of the testbed's API server
//! (`scripts/k8s-testbed.sh up` prints the `KUBECONFIG` to use) and an
//! engine on it. Without `KUBECONFIG` the tests are skipped, loudly, unless
//! `DRYCC_K8S_REQUIRED=1` (CI) says they must run.

#![allow(dead_code)]

use std::io::Write;

use drycc_engine::{Deployment, Engine, ProcessStatus, ProcessTemplate};
use drycc_engine_kube::{KubeConfig, KubeEngine};
use tokio::time::{timeout_at, Instant};

/// A client of the cluster of `KUBECONFIG`, or `None` (the test is skipped)
/// when there is none and none is required.
pub async fn client(test: &str) -> Option<kube::Client> {
    if std::env::var_os("KUBECONFIG").is_none() {
        if std::env::var("DRYCC_K8S_REQUIRED").as_deref() == Ok("1") {
            panic!("{test}: DRYCC_K8S_REQUIRED=1 but KUBECONFIG is not set (start the testbed: scripts/k8s-testbed.sh up)");
        }
        // Straight to stderr: the test harness does not capture it.
        let _ = writeln!(
            std::io::stderr(),
            "WARNING: {test} skipped: KUBECONFIG is not set (start the testbed: eval \"$(bash scripts/k8s-testbed.sh up)\")"
        );
        return None;
    }
    let config = match kube::Config::infer().await {
        Ok(config) => config,
        Err(e) => panic!("{test}: reading KUBECONFIG: {e}"),
    };
    match kube::Client::try_from(config) {
        Ok(client) => Some(client),
        Err(e) => panic!("{test}: a client of KUBECONFIG's cluster: {e}"),
    }
}

/// An engine of instance `instance` on the cluster, or `None` (skipped).
pub async fn engine(test: &str, instance: &str) -> Option<(kube::Client, KubeEngine)> {
    let client = client(test).await?;
    let config = KubeConfig {
        instance: instance.to_string(),
        ..KubeConfig::default()
    };
    match KubeEngine::connect(client.clone(), config).await {
        Ok(engine) => Some((client, engine)),
        Err(e) => panic!("{test}: connecting the engine: {}", e.detail()),
    }
}

/// How long a test waits for the cluster to reach a state.
pub const DEADLINE: std::time::Duration = std::time::Duration::from_secs(60);

/// Apply one type's desired state; a refusal fails the test with its detail.
pub async fn apply(engine: &KubeEngine, template: &ProcessTemplate, replicas: u32) -> Deployment {
    let deployment = Deployment {
        template: template.clone(),
        replicas,
    };
    if let Err(e) = engine.apply(deployment.clone()).await {
        panic!("apply {}/{}: {}", template.app, template.ptype, e.detail());
    }
    deployment
}

/// Wait, on the engine's change counter, until `done` holds for the app's
/// processes.
pub async fn wait_for(
    engine: &KubeEngine,
    app: &str,
    what: &str,
    mut done: impl FnMut(&[ProcessStatus]) -> bool,
) -> Vec<ProcessStatus> {
    let deadline = Instant::now() + DEADLINE;
    let mut changes = engine.changes(Some(app));
    loop {
        changes.borrow_and_update();
        let procs = engine.processes(app).await.expect("processes");
        if done(&procs) {
            return procs;
        }
        match timeout_at(deadline, changes.changed()).await {
            Ok(Ok(())) => {}
            _ => panic!("timed out waiting for {what}: {procs:#?}"),
        }
    }
}
