//! Manifest media types against a real registry (DRYCC_TEST_REGISTRY, set
//! by `scripts/with-docker.sh`): OCI and Docker v2 image manifests,
//! OCI indexes and Docker manifest lists, pushed over the distribution API
//! by hand so that each shape is exactly what the test says.

use drycc_images::testing::{skip, test_registry};
use drycc_images::{ImageError, Inspector};
use serde_json::json;
use sha2::{Digest, Sha256};

fn registry(test: &str) -> Option<String> {
    let registry = test_registry();
    if registry.is_none() {
        skip(test, "DRYCC_TEST_REGISTRY is unset");
    }
    registry
}

fn sha256(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

#[derive(Clone, Copy, Debug)]
enum Flavour {
    Oci,
    Docker,
}

impl Flavour {
    fn manifest(self) -> &'static str {
        match self {
            Flavour::Oci => "application/vnd.oci.image.manifest.v1+json",
            Flavour::Docker => "application/vnd.docker.distribution.manifest.v2+json",
        }
    }
    fn index(self) -> &'static str {
        match self {
            Flavour::Oci => "application/vnd.oci.image.index.v1+json",
            Flavour::Docker => "application/vnd.docker.distribution.manifest.list.v2+json",
        }
    }
    fn config(self) -> &'static str {
        match self {
            Flavour::Oci => "application/vnd.oci.image.config.v1+json",
            Flavour::Docker => "application/vnd.docker.container.image.v1+json",
        }
    }
    fn layer(self) -> &'static str {
        match self {
            Flavour::Oci => "application/vnd.oci.image.layer.v1.tar+gzip",
            Flavour::Docker => "application/vnd.docker.image.rootfs.diff.tar.gzip",
        }
    }
}

/// A repository of the test registry, written to over HTTP.
struct Repository {
    http: reqwest::Client,
    registry: String,
    name: String,
}

/// A pushed blob or manifest: what a descriptor needs.
struct Pushed {
    digest: String,
    size: usize,
    body: serde_json::Value,
}

impl Repository {
    fn new(registry: &str, name: &str) -> anyhow::Result<Self> {
        Ok(Repository {
            // The registry is on loopback: never through the environment's
            // proxy.
            http: reqwest::Client::builder().no_proxy().build()?,
            registry: registry.to_string(),
            name: format!("drycc-images-test/{name}-{}", std::process::id()),
        })
    }

    fn reference(&self, tag: &str) -> String {
        format!("{}/{}:{tag}", self.registry, self.name)
    }

    async fn blob(&self, data: &[u8]) -> anyhow::Result<Pushed> {
        let digest = sha256(data);
        let start = self
            .http
            .post(format!(
                "http://{}/v2/{}/blobs/uploads/",
                self.registry, self.name
            ))
            .send()
            .await?
            .error_for_status()?;
        let location = start
            .headers()
            .get("Location")
            .and_then(|l| l.to_str().ok())
            .ok_or_else(|| anyhow::anyhow!("blob upload without a Location"))?;
        let mut url = if location.starts_with('/') {
            format!("http://{}{location}", self.registry)
        } else {
            location.to_string()
        };
        url.push(if url.contains('?') { '&' } else { '?' });
        url.push_str(&format!("digest={digest}"));
        self.http
            .put(url)
            .header("Content-Type", "application/octet-stream")
            .body(data.to_vec())
            .send()
            .await?
            .error_for_status()?;
        Ok(Pushed {
            digest,
            size: data.len(),
            body: serde_json::Value::Null,
        })
    }

    async fn manifest(
        &self,
        reference: &str,
        media_type: &str,
        body: serde_json::Value,
    ) -> anyhow::Result<Pushed> {
        let json = body;
        let body = serde_json::to_vec(&json)?;
        let response = self
            .http
            .put(format!(
                "http://{}/v2/{}/manifests/{reference}",
                self.registry, self.name
            ))
            .header("Content-Type", media_type)
            .body(body.clone())
            .send()
            .await?;
        let status = response.status();
        if !status.is_success() {
            anyhow::bail!("{reference}: {status} {}", response.text().await?);
        }
        Ok(Pushed {
            digest: sha256(&body),
            size: body.len(),
            body: json,
        })
    }

    /// An image whose config runs `cmd` on `arch`, pushed by digest.
    async fn image(
        &self,
        flavour: Flavour,
        config_media_type: &str,
        arch: &str,
        cmd: &str,
    ) -> anyhow::Result<Pushed> {
        let layer = self
            .blob(format!("layer of {arch} {cmd}").as_bytes())
            .await?;
        let config = json!({
            "architecture": arch,
            "os": "linux",
            "config": {
                "Cmd": [cmd],
                "Env": [format!("ARCH={arch}")],
                "ExposedPorts": {"8000/tcp": {}},
                "WorkingDir": "/app",
            },
            "rootfs": {"type": "layers", "diff_ids": [layer.digest]},
        });
        let config = self.blob(&serde_json::to_vec(&config)?).await?;
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": flavour.manifest(),
            "config": {"mediaType": config_media_type, "digest": config.digest, "size": config.size},
            "layers": [{"mediaType": flavour.layer(), "digest": layer.digest, "size": layer.size}],
        });
        let digest = sha256(&serde_json::to_vec(&manifest)?);
        self.manifest(&digest, flavour.manifest(), manifest).await
    }

    async fn index(
        &self,
        flavour: Flavour,
        tag: &str,
        entries: &[(&Pushed, &str)],
    ) -> anyhow::Result<Pushed> {
        let manifests: Vec<_> = entries
            .iter()
            .map(|(pushed, arch)| {
                json!({
                    "mediaType": flavour.manifest(),
                    "digest": pushed.digest,
                    "size": pushed.size,
                    "platform": {"architecture": arch, "os": "linux"},
                })
            })
            .collect();
        let index = json!({
            "schemaVersion": 2,
            "mediaType": flavour.index(),
            "manifests": manifests,
        });
        self.manifest(tag, flavour.index(), index).await
    }
}

async fn manifests_and_indexes(flavour: Flavour) -> anyhow::Result<()> {
    let Some(registry) = registry(&format!("manifests_and_indexes({flavour:?})")) else {
        return Ok(());
    };
    let repository = Repository::new(&registry, &format!("{flavour:?}").to_lowercase())?;
    let arm = repository
        .image(flavour, flavour.config(), "arm64", "arm")
        .await?;
    let amd = repository
        .image(flavour, flavour.config(), "amd64", "amd")
        .await?;
    let inspector = Inspector::new(None);

    // A single-platform manifest, by tag.
    let single = repository
        .manifest("single", flavour.manifest(), amd.body.clone())
        .await?;
    assert_eq!(single.digest, amd.digest);
    let config = inspector
        .inspect(&repository.reference("single"), None)
        .await?;
    assert_eq!(config.cmd, vec!["amd"]);
    assert_eq!(config.env, vec![("ARCH".into(), "amd64".into())]);
    assert_eq!(config.exposed_ports, vec![8000]);
    assert_eq!(config.working_dir.as_deref(), Some("/app"));
    assert_eq!(config.digest.as_deref(), Some(amd.digest.as_str()));

    // An index: linux/amd64 although it is not first; the digest is the
    // index's.
    let multi = repository
        .index(flavour, "multi", &[(&arm, "arm64"), (&amd, "amd64")])
        .await?;
    let config = inspector
        .inspect(&repository.reference("multi"), None)
        .await?;
    assert_eq!(config.cmd, vec!["amd"]);
    assert_eq!(config.digest.as_deref(), Some(multi.digest.as_str()));

    // No linux/amd64: the first entry.
    repository
        .index(flavour, "arm-only", &[(&arm, "arm64")])
        .await?;
    let config = inspector
        .inspect(&repository.reference("arm-only"), None)
        .await?;
    assert_eq!(config.cmd, vec!["arm"]);
    assert_eq!(config.env, vec![("ARCH".into(), "arm64".into())]);
    Ok(())
}

#[tokio::test]
async fn oci_manifests_and_indexes() -> anyhow::Result<()> {
    manifests_and_indexes(Flavour::Oci).await
}

#[tokio::test]
async fn docker_manifests_and_manifest_lists() -> anyhow::Result<()> {
    manifests_and_indexes(Flavour::Docker).await
}

#[tokio::test]
async fn an_artifact_is_not_an_image() -> anyhow::Result<()> {
    let Some(registry) = registry("an_artifact_is_not_an_image") else {
        return Ok(());
    };
    let repository = Repository::new(&registry, "artifact")?;
    let chart = repository
        .image(
            Flavour::Oci,
            "application/vnd.cncf.helm.config.v1+json",
            "amd64",
            "x",
        )
        .await?;
    let reference = format!("{registry}/{}@{}", repository.name, chart.digest);
    match Inspector::new(None).inspect(&reference, None).await {
        Err(e @ ImageError::NotAnImage { .. }) => {
            assert!(e.to_string().contains("helm"), "{e}");
        }
        other => panic!("expected NotAnImage, got {other:?}"),
    }
    Ok(())
}
