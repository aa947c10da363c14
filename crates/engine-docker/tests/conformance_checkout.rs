//! The engine conformance suite against the Docker engine running
//! checkouts: `Artifact::Checkout` of a temporary directory (with an empty
//! `www/`) bind-mounted into containers of a slug image built locally from
//! busybox, each script a `Command::Line` run by the container's shell. A
//! fresh engine instance per test on the daemon of `DOCKER_HOST`, a fast
//! crash back-off. Skipped, loudly, without `DOCKER_HOST`.

use std::sync::Arc;
use std::time::Duration;

use drycc_engine::{Artifact, Command, Engine, ProcessTemplate};
use drycc_engine_conformance::Harness;
use drycc_engine_docker::{BackoffPolicy, DockerConfig, DockerEngine};
use drycc_images::testing::{build_busybox_image, docker_from_env, skip};
use tempfile::TempDir;

/// The slug image: busybox on nothing, no `/app` of its own (the checkout
/// is mounted there).
const SLUG_IMAGE: &str = "drycc-conformance/slug:1";

/// Built once per test binary (Docker caches the layers across runs).
static BUILT: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();

struct Docker {
    engine: Arc<DockerEngine>,
    /// The checkout every template runs (on this host, the daemon's).
    checkout: TempDir,
}

async fn docker() -> Option<Docker> {
    let Some(client) = docker_from_env() else {
        skip(
            "engine-docker checkout conformance",
            "DOCKER_HOST is not set (scripts/with-docker.sh sets it)",
        );
        return None;
    };
    BUILT
        .get_or_init(|| async {
            build_busybox_image(&client, SLUG_IMAGE, "RUN mkdir -p /tmp")
                .await
                .expect("the slug image");
        })
        .await;
    let checkout = tempfile::tempdir().expect("a temporary directory");
    std::fs::create_dir(checkout.path().join("www")).expect("the checkout's www/");
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    let config = DockerConfig {
        backoff: BackoffPolicy {
            initial: Duration::from_millis(200),
            cap: Duration::from_secs(1),
            reset_after: Duration::from_secs(60),
        },
        readiness_poll: Duration::from_millis(100),
        recheck: Duration::from_secs(2),
        slug_image: Some(SLUG_IMAGE.to_string()),
        ..DockerConfig::new(format!(
            "conformance-checkout-{}-{nanos}",
            std::process::id()
        ))
    };
    let engine = DockerEngine::connect(client, config)
        .await
        .expect("a Docker engine");
    assert!(engine.capabilities().checkouts);
    Some(Docker { engine, checkout })
}

impl Harness for Docker {
    fn engine(&self) -> Arc<dyn Engine> {
        self.engine.clone()
    }

    fn template(&self, app: &str, ptype: &str, release: u32, script: &str) -> ProcessTemplate {
        ProcessTemplate {
            app: app.to_string(),
            ptype: ptype.to_string(),
            release,
            hash: drycc_model::naming::template_hash(app, ptype, release, 0),
            artifact: Artifact::Checkout {
                path: self.checkout.path().to_path_buf(),
            },
            command: Command::Line(script.to_string()),
            env: Default::default(),
            grace_period: Duration::from_secs(5),
            readiness: None,
            liveness: None,
            cpu_millis: None,
            memory_bytes: None,
        }
    }

    fn web_script(&self) -> String {
        "exec httpd -f -p $PORT -h /app/www".to_string()
    }
}

drycc_engine_conformance::conformance_tests!(async docker);
