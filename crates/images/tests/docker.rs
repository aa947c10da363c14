//! Image configs from a real Docker engine and a real registry: run under
//! `scripts/with-docker.sh` (which sets DOCKER_HOST and
//! DRYCC_TEST_REGISTRY); without them every test here skips, loudly.

use bollard::query_parameters::RemoveImageOptionsBuilder;
use bollard::Docker;
use drycc_images::testing::{build_busybox_image, docker_from_env, push, skip, test_registry};
use drycc_images::{ImageConfig, ImageError, Inspector};

/// The PATH Docker's builder gives an image that sets none.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

fn default_path() -> (String, String) {
    ("PATH".into(), DEFAULT_PATH.into())
}

fn docker_and_registry(test: &str) -> Option<(Docker, String)> {
    match (docker_from_env(), test_registry()) {
        (Some(docker), Some(registry)) => Some((docker, registry)),
        _ => {
            skip(test, "DOCKER_HOST or DRYCC_TEST_REGISTRY is unset");
            None
        }
    }
}

/// A repository of this test run: parallel runs against one engine or one
/// registry do not meet.
fn repository(registry: &str, name: &str) -> String {
    format!("{registry}/drycc-images-test/{name}-{}", std::process::id())
}

async fn remove(docker: &Docker, tag: &str) {
    // The tag only: parent layers may be the build cache of other tests.
    let options = RemoveImageOptionsBuilder::default()
        .force(true)
        .noprune(true)
        .build();
    if let Err(e) = docker.remove_image(tag, Some(options), None).await {
        eprintln!("removing {tag}: {e}");
    }
}

/// The digest the registry gives the manifest Docker pushed.
async fn registry_digest(registry: &str, repository: &str, tag: &str) -> anyhow::Result<String> {
    let url = format!("http://{registry}/v2/{repository}/manifests/{tag}");
    // The registry is on loopback: never through the environment's proxy.
    let response = reqwest::Client::builder()
        .no_proxy()
        .build()?
        .head(&url)
        .header(
            "Accept",
            "application/vnd.docker.distribution.manifest.v2+json, \
             application/vnd.oci.image.manifest.v1+json",
        )
        .send()
        .await?
        .error_for_status()?;
    let digest = response
        .headers()
        .get("Docker-Content-Digest")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| anyhow::anyhow!("{url}: no Docker-Content-Digest"))?;
    Ok(digest.to_string())
}

#[tokio::test]
async fn docker_from_env_speaks_the_engines_api_version() -> anyhow::Result<()> {
    let Some((docker, _)) = docker_and_registry("docker_from_env_speaks_the_engines_api_version")
    else {
        return Ok(());
    };
    // No negotiation here: docker_from_env did it (bollard's default version
    // is newer than an older engine accepts).
    let version = docker.version().await?;
    assert!(version.api_version.is_some(), "{version:?}");
    docker
        .list_images(None::<bollard::query_parameters::ListImagesOptions>)
        .await?;
    Ok(())
}

#[tokio::test]
async fn a_pushed_image_read_from_docker_then_from_the_registry() -> anyhow::Result<()> {
    let Some((docker, registry)) =
        docker_and_registry("a_pushed_image_read_from_docker_then_from_the_registry")
    else {
        return Ok(());
    };
    let repository = repository(&registry, "plain");
    let tag = format!("{repository}:1");
    build_busybox_image(
        &docker,
        &tag,
        "EXPOSE 5000\nENV FOO=bar\nWORKDIR /srv\nCMD [\"httpd\", \"-f\", \"-p\", \"5000\"]",
    )
    .await?;
    push(&docker, &tag).await?;
    let path = repository.trim_start_matches(&format!("{registry}/"));
    let digest = registry_digest(&registry, path, "1").await?;

    let expected = ImageConfig {
        reference: tag.clone(),
        digest: Some(digest.clone()),
        entrypoint: vec![],
        cmd: vec!["httpd".into(), "-f".into(), "-p".into(), "5000".into()],
        exposed_ports: vec![5000],
        working_dir: Some("/srv".into()),
        env: vec![default_path(), ("FOO".into(), "bar".into())],
    };
    // The engine's copy: its RepoDigests name the pushed manifest.
    let local = Inspector::new(Some(docker.clone()))
        .inspect(&tag, None)
        .await?;
    assert_eq!(local, expected, "from the Docker engine");

    remove(&docker, &tag).await;
    match docker.inspect_image(&tag).await {
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        }) => {}
        other => panic!("the local copy should be gone: {other:?}"),
    }
    let inspector = Inspector::new(Some(docker.clone()));
    let remote = inspector.inspect(&tag, None).await?;
    assert_eq!(remote, expected, "from the registry");

    // By digest, with and without the tag.
    let by_digest = inspector
        .inspect(&format!("{repository}@{digest}"), None)
        .await?;
    assert_eq!(by_digest.digest.as_deref(), Some(digest.as_str()));
    assert_eq!(by_digest.reference, format!("{repository}@{digest}"));
    assert_eq!(by_digest.cmd, expected.cmd);
    let both = inspector.inspect(&format!("{tag}@{digest}"), None).await?;
    assert_eq!(both.env, expected.env);
    Ok(())
}

#[tokio::test]
async fn an_image_only_the_engine_has() -> anyhow::Result<()> {
    let Some((docker, _)) = docker_and_registry("an_image_only_the_engine_has") else {
        return Ok(());
    };
    // A Docker Hub name: had the engine not answered, the registry would
    // have been asked (and, with no network, been unreachable).
    let tag = format!("drycc-images-test/local-{}:dev", std::process::id());
    build_busybox_image(
        &docker,
        &tag,
        "ENTRYPOINT [\"/bin/httpd\", \"-f\"]\nEXPOSE 8080/tcp 53/udp 9090\nENV A=1 B=two=2",
    )
    .await?;
    let config = Inspector::new(Some(docker.clone()))
        .inspect(&tag, None)
        .await;
    remove(&docker, &tag).await;
    assert_eq!(
        config?,
        ImageConfig {
            reference: format!("docker.io/{tag}"),
            digest: None,
            entrypoint: vec!["/bin/httpd".into(), "-f".into()],
            cmd: vec![],
            exposed_ports: vec![8080, 9090],
            working_dir: None,
            env: vec![
                default_path(),
                ("A".into(), "1".into()),
                ("B".into(), "two=2".into())
            ],
        }
    );
    Ok(())
}

#[tokio::test]
async fn entrypoint_and_cmd_from_the_registry() -> anyhow::Result<()> {
    let Some((docker, registry)) = docker_and_registry("entrypoint_and_cmd_from_the_registry")
    else {
        return Ok(());
    };
    let tag = format!("{}:v2.0", repository(&registry, "entrypoint"));
    build_busybox_image(
        &docker,
        &tag,
        "ENTRYPOINT [\"/bin/sh\", \"-c\"]\nCMD [\"echo hello; sleep 1\"]",
    )
    .await?;
    push(&docker, &tag).await?;
    remove(&docker, &tag).await;
    let config = Inspector::new(None).inspect(&tag, None).await?;
    assert_eq!(config.reference, tag);
    assert_eq!(config.entrypoint, vec!["/bin/sh", "-c"]);
    assert_eq!(config.cmd, vec!["echo hello; sleep 1"]);
    assert!(config.exposed_ports.is_empty());
    assert_eq!(config.working_dir, None);
    assert_eq!(config.env, vec![default_path()]);
    assert!(config
        .digest
        .as_deref()
        .is_some_and(|d| d.starts_with("sha256:")));
    Ok(())
}

#[tokio::test]
async fn an_unknown_repository_is_not_found() -> anyhow::Result<()> {
    let Some((docker, registry)) = docker_and_registry("an_unknown_repository_is_not_found") else {
        return Ok(());
    };
    let tag = format!("{}:1", repository(&registry, "never-pushed"));
    match Inspector::new(Some(docker)).inspect(&tag, None).await {
        Err(ImageError::NotFound { reference }) => assert_eq!(reference, tag),
        other => panic!("expected NotFound, got {other:?}"),
    }
    Ok(())
}

#[tokio::test]
async fn an_unknown_tag_is_not_found() -> anyhow::Result<()> {
    let Some((docker, registry)) = docker_and_registry("an_unknown_tag_is_not_found") else {
        return Ok(());
    };
    let repository = repository(&registry, "one-tag");
    let tag = format!("{repository}:1");
    build_busybox_image(&docker, &tag, "CMD [\"true\"]").await?;
    push(&docker, &tag).await?;
    remove(&docker, &tag).await;
    let inspector = Inspector::new(Some(docker));
    inspector.inspect(&tag, None).await?;
    let missing = format!("{repository}:2");
    match inspector.inspect(&missing, None).await {
        Err(e @ ImageError::NotFound { .. }) => {
            assert!(e.to_string().contains(&missing), "{e}");
        }
        other => panic!("expected NotFound, got {other:?}"),
    }
    Ok(())
}
