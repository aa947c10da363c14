//! The engine conformance suite against the Kubernetes engine on the
//! testbed's cluster (`scripts/k8s-testbed.sh`), twice:
//! - `kwok`: on kwok's simulated node, where pods become Running and Ready
//!   at once and nothing runs in them, so the suite skips (and says so)
//!   what needs a running program;
//! - `real_node`: on the testbed's real node (kubelet, containerd, runc),
//!   where the pods run the busybox image the testbed built, and nothing
//!   is skipped.
//!
//! Process names are pod names, and one process is restarted by deleting
//! its Pod (see the harness's answers below).

mod support;

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Arc;

use drycc_engine::{Artifact, Command, Engine, ImageSpec, ProcessTemplate};
use drycc_engine_conformance::{plain_template, Harness};
use drycc_engine_kube::{KubeConfig, KubeEngine};
use k8s_openapi::api::core::v1::Node;

/// The testbed's real node: its label (pods select it) and its taint
/// (pods tolerate it; every other pod goes to kwok's node).
const REAL_NODE: &str = "real-node";
const REAL_NODE_LABEL: (&str, &str) = ("drycc.cc/testbed-node", "real");
const REAL_NODE_TAINT: &str = "drycc.cc/real-node";
/// Built by `scripts/k8s-testbed.sh build` from /bin/busybox and imported
/// into the real node's containerd: never pulled.
const BUSYBOX: &str = "localhost/drycc-testbed/busybox:1";

struct Kube {
    engine: Arc<KubeEngine>,
    image: &'static str,
    runs_processes: bool,
}

async fn kwok() -> Option<Kube> {
    let (_, engine) = support::engine("engine-kube conformance", "conformance").await?;
    Some(Kube {
        engine: Arc::new(engine),
        // Never pulled: kwok starts no container.
        image: "busybox:1.36",
        runs_processes: false,
    })
}

async fn real_node() -> Option<Kube> {
    let test = "engine-kube conformance on the real node";
    let client = support::client(test).await?;
    let nodes: kube::Api<Node> = kube::Api::all(client.clone());
    match nodes.get_opt(REAL_NODE).await {
        Ok(Some(_)) => {}
        Ok(None) if std::env::var("DRYCC_K8S_REQUIRED").as_deref() == Ok("1") => {
            panic!("{test}: DRYCC_K8S_REQUIRED=1 but the cluster has no Node {REAL_NODE} (the testbed was started with DRYCC_K8S_REAL_NODE=0?)")
        }
        Ok(None) => {
            let _ = writeln!(
                std::io::stderr(),
                "WARNING: {test} skipped: the cluster has no Node {REAL_NODE}"
            );
            return None;
        }
        Err(e) => panic!("{test}: reading the Node {REAL_NODE}: {e}"),
    }
    let config = KubeConfig {
        instance: "conformance-real".to_string(),
        node_selector: BTreeMap::from([(
            REAL_NODE_LABEL.0.to_string(),
            REAL_NODE_LABEL.1.to_string(),
        )]),
        tolerations: vec![REAL_NODE_TAINT.to_string()],
        ..KubeConfig::default()
    };
    let engine = match KubeEngine::connect(client, config).await {
        Ok(engine) => engine,
        Err(e) => panic!("{test}: connecting the engine: {}", e.detail()),
    };
    Some(Kube {
        engine: Arc::new(engine),
        image: BUSYBOX,
        runs_processes: true,
    })
}

impl Harness for Kube {
    fn engine(&self) -> Arc<dyn Engine> {
        self.engine.clone()
    }

    fn template(&self, app: &str, ptype: &str, release: u32, script: &str) -> ProcessTemplate {
        let artifact = Artifact::Image(ImageSpec {
            reference: self.image.to_string(),
            entrypoint: Vec::new(),
            port: 5000,
            credentials: None,
        });
        let command = Command::Args(vec!["sh".into(), "-c".into(), script.to_string()]);
        plain_template(app, ptype, release, artifact, command)
    }

    fn web_script(&self) -> String {
        "exec httpd -f -p $PORT -h /".to_string()
    }

    fn runs_processes(&self) -> bool {
        self.runs_processes
    }

    fn names_carry_the_hash(&self) -> bool {
        false
    }

    fn restart_keeps_capacity(&self) -> bool {
        false
    }

    fn usage_is_sampled(&self) -> bool {
        true
    }
}

mod on_kwok {
    drycc_engine_conformance::conformance_tests!(async super::kwok);
}

mod on_real_node {
    drycc_engine_conformance::conformance_tests!(async super::real_node);
}
