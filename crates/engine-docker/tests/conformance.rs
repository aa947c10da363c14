//! The engine conformance suite against the Docker engine: busybox
//! containers of an image built locally (nothing can be pulled), a fresh
//! engine instance per test on the daemon of `DOCKER_HOST`, a fast crash
//! back-off. Skipped, loudly, without `DOCKER_HOST`.

use std::sync::Arc;
use std::time::Duration;

use drycc_engine::{Artifact, Command, Engine, ImageSpec, ProcessTemplate};
use drycc_engine_conformance::Harness;
use drycc_engine_docker::{BackoffPolicy, DockerConfig, DockerEngine};
use drycc_images::testing::{build_busybox_image, docker_from_env, skip};

/// The suite's image: busybox on nothing, with an empty web root.
const IMAGE: &str = "drycc-conformance/busybox:1";

/// Built once per test binary (Docker caches the layers across runs).
static BUILT: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();

struct Docker {
    engine: Arc<DockerEngine>,
}

async fn docker() -> Option<Docker> {
    let Some(client) = docker_from_env() else {
        skip(
            "engine-docker conformance",
            "DOCKER_HOST is not set (scripts/with-docker.sh sets it)",
        );
        return None;
    };
    BUILT
        .get_or_init(|| async {
            build_busybox_image(&client, IMAGE, "RUN mkdir -p /www")
                .await
                .expect("the conformance image");
        })
        .await;
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
        ..DockerConfig::new(format!("conformance-{}-{nanos}", std::process::id()))
    };
    let engine = DockerEngine::connect(client, config)
        .await
        .expect("a Docker engine");
    Some(Docker { engine })
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
            artifact: Artifact::Image(ImageSpec {
                reference: IMAGE.to_string(),
                entrypoint: Vec::new(),
                port: 5000,
                credentials: None,
            }),
            command: Command::Args(vec!["sh".into(), "-c".into(), script.to_string()]),
            env: Default::default(),
            grace_period: Duration::from_secs(5),
            readiness: None,
            liveness: None,
            cpu_millis: None,
            memory_bytes: None,
        }
    }

    fn web_script(&self) -> String {
        "exec httpd -f -p $PORT -h /www".to_string()
    }
}

drycc_engine_conformance::conformance_tests!(async docker);
