//! What the conformance harnesses of the Docker engine share: the daemon
//! of `DOCKER_HOST` with a busybox image built once per test binary, and a
//! fresh engine instance on it with a fast crash back-off.

use std::sync::Arc;
use std::time::Duration;

use drycc_engine_conformance::FAST_BACKOFF;
use drycc_engine_docker::{DockerConfig, DockerEngine};
use drycc_images::testing::{build_busybox_image, docker_from_env, skip};
use tokio::sync::OnceCell;

/// A busybox image of the tests, built at most once per test binary
/// (Docker caches the layers across runs).
pub struct Image {
    pub reference: &'static str,
    /// Dockerfile lines after the busybox install.
    pub extra: &'static str,
    pub built: OnceCell<()>,
}

/// An engine on a fresh instance `<prefix>-<pid>-<nanos>` of the daemon of
/// `DOCKER_HOST`, with `image` built; `tune` adds to the configuration.
/// `None`, after saying so loudly, without `DOCKER_HOST`.
pub async fn engine(
    what: &str,
    image: &Image,
    prefix: &str,
    tune: impl FnOnce(&mut DockerConfig),
) -> Option<Arc<DockerEngine>> {
    let Some(client) = docker_from_env() else {
        skip(
            what,
            "DOCKER_HOST is not set (scripts/with-docker.sh sets it)",
        );
        return None;
    };
    image
        .built
        .get_or_init(|| async {
            build_busybox_image(&client, image.reference, image.extra)
                .await
                .expect("the test image");
        })
        .await;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    let mut config = DockerConfig {
        backoff: FAST_BACKOFF,
        readiness_poll: Duration::from_millis(100),
        recheck: Duration::from_secs(2),
        ..DockerConfig::new(format!("{prefix}-{}-{nanos}", std::process::id()))
    };
    tune(&mut config);
    let engine = DockerEngine::connect(client, config)
        .await
        .expect("a Docker engine");
    Some(engine)
}
