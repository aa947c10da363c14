//! The engine conformance suite against the Kubernetes engine on the
//! testbed's control plane (`scripts/k8s-testbed.sh`), where kwok plays
//! the kubelet: pods become Running and Ready at once and nothing runs in
//! them, so the suite skips (and says so) what needs a running program.
//! Process names are pod names, and one process is restarted by deleting
//! its Pod (see the harness's answers below).

mod support;

use std::sync::Arc;

use drycc_engine::{Artifact, Command, Engine, ImageSpec, ProcessTemplate};
use drycc_engine_conformance::{plain_template, Harness};
use drycc_engine_kube::KubeEngine;

struct Kube {
    engine: Arc<KubeEngine>,
}

async fn kube() -> Option<Kube> {
    let (_, engine) = support::engine("engine-kube conformance", "conformance").await?;
    Some(Kube {
        engine: Arc::new(engine),
    })
}

impl Harness for Kube {
    fn engine(&self) -> Arc<dyn Engine> {
        self.engine.clone()
    }

    fn template(&self, app: &str, ptype: &str, release: u32, script: &str) -> ProcessTemplate {
        // Never pulled: kwok starts no container.
        let artifact = Artifact::Image(ImageSpec {
            reference: "busybox:1.36".to_string(),
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
        false
    }

    fn names_carry_the_hash(&self) -> bool {
        false
    }

    fn restart_keeps_capacity(&self) -> bool {
        false
    }
}

drycc_engine_conformance::conformance_tests!(async kube);
