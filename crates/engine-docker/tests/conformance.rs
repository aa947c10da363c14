//! The engine conformance suite against the Docker engine: busybox
//! containers of an image built locally (nothing can be pulled), a fresh
//! engine instance per test on the daemon of `DOCKER_HOST`, a fast crash
//! back-off. Skipped, loudly, without `DOCKER_HOST`.

mod support;

use std::sync::Arc;

use drycc_engine::{Artifact, Command, Engine, ImageSpec, ProcessTemplate};
use drycc_engine_conformance::{plain_template, Harness};
use drycc_engine_docker::DockerEngine;
use support::Image;

/// The suite's image: busybox on nothing, with an empty web root.
static IMAGE: Image = Image {
    reference: "drycc-conformance/busybox:1",
    extra: "RUN mkdir -p /www",
    built: tokio::sync::OnceCell::const_new(),
};

struct Docker {
    engine: Arc<DockerEngine>,
}

async fn docker() -> Option<Docker> {
    let engine =
        support::engine("engine-docker conformance", &IMAGE, "conformance", |_| {}).await?;
    Some(Docker { engine })
}

impl Harness for Docker {
    fn engine(&self) -> Arc<dyn Engine> {
        self.engine.clone()
    }

    fn template(&self, app: &str, ptype: &str, release: u32, script: &str) -> ProcessTemplate {
        let artifact = Artifact::Image(ImageSpec {
            reference: IMAGE.reference.to_string(),
            entrypoint: Vec::new(),
            port: 5000,
            credentials: None,
        });
        let command = Command::Args(vec!["sh".into(), "-c".into(), script.to_string()]);
        plain_template(app, ptype, release, artifact, command)
    }

    fn web_script(&self) -> String {
        "exec httpd -f -p $PORT -h /www".to_string()
    }
}

drycc_engine_conformance::conformance_tests!(async docker);
