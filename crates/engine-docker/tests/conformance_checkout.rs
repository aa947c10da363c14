//! The engine conformance suite against the Docker engine running
//! checkouts: `Artifact::Checkout` of a temporary directory (with an empty
//! `www/`) bind-mounted into containers of a slug image built locally from
//! busybox, each script a `Command::Line` run by the container's shell. A
//! fresh engine instance per test on the daemon of `DOCKER_HOST`, a fast
//! crash back-off. Skipped, loudly, without `DOCKER_HOST`.

mod support;

use std::sync::Arc;

use drycc_engine::{Artifact, Command, Engine, ProcessTemplate};
use drycc_engine_conformance::{plain_template, Harness};
use drycc_engine_docker::DockerEngine;
use support::Image;
use tempfile::TempDir;

/// The slug image: busybox on nothing, no `/app` of its own (the checkout
/// is mounted there).
static SLUG_IMAGE: Image = Image {
    reference: "drycc-conformance/slug:1",
    extra: "RUN mkdir -p /tmp",
    built: tokio::sync::OnceCell::const_new(),
};

struct Docker {
    engine: Arc<DockerEngine>,
    /// The checkout every template runs (on this host, the daemon's).
    checkout: TempDir,
}

async fn docker() -> Option<Docker> {
    let engine = support::engine(
        "engine-docker checkout conformance",
        &SLUG_IMAGE,
        "conformance-checkout",
        |config| config.slug_image = Some(SLUG_IMAGE.reference.to_string()),
    )
    .await?;
    assert!(engine.capabilities().checkouts);
    let checkout = tempfile::tempdir().expect("a temporary directory");
    std::fs::create_dir(checkout.path().join("www")).expect("the checkout's www/");
    Some(Docker { engine, checkout })
}

impl Harness for Docker {
    fn engine(&self) -> Arc<dyn Engine> {
        self.engine.clone()
    }

    fn template(&self, app: &str, ptype: &str, release: u32, script: &str) -> ProcessTemplate {
        let artifact = Artifact::Checkout {
            path: self.checkout.path().to_path_buf(),
        };
        plain_template(
            app,
            ptype,
            release,
            artifact,
            Command::Line(script.to_string()),
        )
    }

    fn web_script(&self) -> String {
        "exec httpd -f -p $PORT -h /app/www".to_string()
    }
}

drycc_engine_conformance::conformance_tests!(async docker);
