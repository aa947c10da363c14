//! The `Inspector`: an image's config from the local Docker engine when it
//! has the image, else from the image's registry through the OCI
//! distribution API (manifest, then config blob; no layer is fetched).

use std::time::Duration;

use bollard::Docker;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::{OciDistributionError, OciErrorCode};
use oci_client::manifest::ImageIndexEntry;
use oci_client::secrets::RegistryAuth;
use oci_client::Client;
use tokio::sync::OnceCell;

use crate::config::{ConfigBlob, CONFIG_MEDIA_TYPES};
use crate::{parse_reference, ImageConfig, ImageError, ImageReference};

/// A registry that does not accept a connection within this long is
/// reported unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Longest wait for any read from a registry that has accepted the
/// connection.
const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Registry credentials (HTTP Basic, or the password exchanged for a bearer
/// token when the registry asks for one).
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// Reads image configs; one is meant to be shared (it keeps connections
/// and anonymous registry tokens).
pub struct Inspector {
    docker: Option<Docker>,
    /// Whether the Docker API version has been agreed on with the engine
    /// (bollard speaks the newest version unless told otherwise, which
    /// older engines refuse).
    negotiated: OnceCell<()>,
    /// Anonymous pulls over HTTPS.
    client: Client,
    /// Anonymous pulls from registries on this machine, over HTTP.
    loopback: Client,
}

impl std::fmt::Debug for Inspector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inspector")
            .field("docker", &self.docker.is_some())
            .finish_non_exhaustive()
    }
}

impl Inspector {
    /// With `docker`, images the engine has are read from it first.
    pub fn new(docker: Option<Docker>) -> Inspector {
        Inspector {
            docker,
            negotiated: OnceCell::new(),
            client: Client::new(client_config(None)),
            loopback: Client::new(client_config(Some(Vec::new()))),
        }
    }

    /// The local Docker engine's copy when it has the image, else the
    /// registry through the OCI distribution API.
    pub async fn inspect(
        &self,
        reference: &str,
        credentials: Option<&Credentials>,
    ) -> Result<ImageConfig, ImageError> {
        let reference = parse_reference(reference)?;
        if let Some(docker) = &self.docker {
            if let Some(config) = self.inspect_local(docker, &reference).await? {
                tracing::debug!(%reference, "image config read from the Docker engine");
                return Ok(config);
            }
        }
        let config = self.inspect_registry(&reference, credentials).await?;
        tracing::debug!(%reference, digest = ?config.digest, "image config read from the registry");
        Ok(config)
    }

    async fn inspect_local(
        &self,
        docker: &Docker,
        reference: &ImageReference,
    ) -> Result<Option<ImageConfig>, ImageError> {
        self.negotiated
            .get_or_try_init(|| async {
                // The version is shared by every clone of `docker`.
                docker.clone().negotiate_version().await.map(|_| ())
            })
            .await
            .map_err(|source| ImageError::Docker { source })?;
        let image = match docker.inspect_image(&reference.to_string()).await {
            Ok(image) => image,
            // 404: the engine does not have it; 400: the engine cannot
            // even name it (an older engine and an IPv6 registry), so it
            // does not have it either.
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404 | 400,
                message,
            }) => {
                tracing::debug!(%reference, %message, "image not in the local Docker engine");
                return Ok(None);
            }
            Err(source) => return Err(ImageError::Docker { source }),
        };
        let digest = match reference.digest() {
            Some(digest) => Some(digest.to_string()),
            None => repo_digest(reference, image.repo_digests.as_deref().unwrap_or_default()),
        };
        Ok(Some(ImageConfig::from_docker(
            reference.to_string(),
            digest,
            image.config.unwrap_or_default(),
        )))
    }

    async fn inspect_registry(
        &self,
        reference: &ImageReference,
        credentials: Option<&Credentials>,
    ) -> Result<ImageConfig, ImageError> {
        let loopback = reference.is_loopback_registry();
        let (client, auth) = match credentials {
            // A client of its own: a client keeps the first credentials it
            // is given for a registry, and must not lend them to the next
            // caller.
            Some(credentials) => (
                Client::new(client_config(
                    loopback.then(|| vec![reference.registry().to_string()]),
                )),
                RegistryAuth::Basic(credentials.username.clone(), credentials.password.clone()),
            ),
            None if loopback => (self.loopback.clone(), RegistryAuth::Anonymous),
            None => (self.client.clone(), RegistryAuth::Anonymous),
        };
        let (manifest, digest, config, index_digest) = client
            .pull_manifest_and_config_and_list_digest(&reference.to_oci(), &auth)
            .await
            .map_err(|e| registry_error(reference, e))?;
        let media_type = manifest.config.media_type;
        if !CONFIG_MEDIA_TYPES.contains(&media_type.as_str()) {
            return Err(ImageError::NotAnImage {
                reference: reference.to_string(),
                media_type,
            });
        }
        let blob: ConfigBlob = serde_json::from_str(&config).map_err(|e| ImageError::Registry {
            reference: reference.to_string(),
            source: format!("the image config is not valid JSON: {e}").into(),
        })?;
        Ok(ImageConfig::from_blob(
            reference.to_string(),
            Some(index_digest.unwrap_or(digest)),
            blob,
        ))
    }
}

/// `loopback`: `Some(registries)` for a client that speaks plain HTTP to
/// registries on this machine (every registry when the list is empty, for
/// a client only ever given loopback ones).
fn client_config(loopback: Option<Vec<String>>) -> ClientConfig {
    let is_loopback = loopback.is_some();
    let protocol = match loopback {
        None => ClientProtocol::Https,
        Some(registries) if registries.is_empty() => ClientProtocol::Http,
        Some(registries) => ClientProtocol::HttpsExcept(registries),
    };
    let mut config = ClientConfig {
        protocol,
        connect_timeout: Some(CONNECT_TIMEOUT),
        read_timeout: Some(READ_TIMEOUT),
        platform_resolver: Some(Box::new(pick_platform)),
        user_agent: concat!("drycc-images/", env!("CARGO_PKG_VERSION")),
        ..ClientConfig::default()
    };
    if is_loopback {
        // A registry on this machine must not be asked through the
        // environment's proxy (HTTP_PROXY), which cannot see it. A proxy
        // of our own that every loopback host bypasses turns the
        // environment's off.
        config.http_proxy = Some(UNUSED_PROXY.to_string());
        config.no_proxy = Some(LOOPBACK_HOSTS.to_string());
    }
    config
}

const UNUSED_PROXY: &str = "http://127.0.0.1:1";
const LOOPBACK_HOSTS: &str = "localhost,127.0.0.0/8,::1";

/// Of a multi-platform image: linux/amd64, else the first entry that is an
/// image for some platform (not an attestation, whose platform is
/// unknown/unknown), else the first entry.
fn pick_platform(entries: &[ImageIndexEntry]) -> Option<String> {
    let platform = |entry: &ImageIndexEntry| {
        entry
            .platform
            .as_ref()
            .map(|p| (p.os.to_string(), p.architecture.to_string()))
    };
    entries
        .iter()
        .find(|e| platform(e).is_some_and(|(os, arch)| os == "linux" && arch == "amd64"))
        .or_else(|| {
            entries
                .iter()
                .find(|e| platform(e).is_none_or(|(os, _)| os != "unknown"))
        })
        .or_else(|| entries.first())
        .map(|entry| entry.digest.clone())
}

/// The engine's digest for the reference's repository: `RepoDigests` are
/// `name@digest`, in Docker's short form for Docker Hub (`busybox@...`).
fn repo_digest(reference: &ImageReference, repo_digests: &[String]) -> Option<String> {
    repo_digests.iter().find_map(|entry| {
        let theirs = parse_reference(entry).ok()?;
        (theirs.registry() == reference.registry() && theirs.repository() == reference.repository())
            .then(|| theirs.digest().map(str::to_string))
            .flatten()
    })
}

fn registry_error(reference: &ImageReference, error: OciDistributionError) -> ImageError {
    let not_found = || ImageError::NotFound {
        reference: reference.to_string(),
    };
    let unauthorized = || ImageError::Unauthorized {
        reference: reference.to_string(),
    };
    match &error {
        OciDistributionError::RequestError(e) if e.is_connect() || e.is_timeout() => {
            ImageError::RegistryUnreachable {
                registry: reference.registry().to_string(),
                source: Box::new(error),
            }
        }
        OciDistributionError::UnauthorizedError { .. }
        | OciDistributionError::AuthenticationFailure(_) => unauthorized(),
        OciDistributionError::RegistryError { envelope, .. } => {
            let codes = || envelope.errors.iter().map(|e| &e.code);
            if codes().any(|c| matches!(c, OciErrorCode::Unauthorized | OciErrorCode::Denied)) {
                unauthorized()
            } else if codes().any(|c| {
                matches!(
                    c,
                    OciErrorCode::NameUnknown
                        | OciErrorCode::ManifestUnknown
                        | OciErrorCode::NotFound
                        | OciErrorCode::BlobUnknown
                )
            }) {
                not_found()
            } else {
                ImageError::Registry {
                    reference: reference.to_string(),
                    source: Box::new(error),
                }
            }
        }
        OciDistributionError::ServerError { code: 404, .. } => not_found(),
        OciDistributionError::ServerError {
            code: 401 | 403, ..
        } => unauthorized(),
        _ => ImageError::Registry {
            reference: reference.to_string(),
            source: Box::new(error),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_client::errors::{OciEnvelope, OciError};

    fn reference() -> ImageReference {
        match parse_reference("127.0.0.1:5000/app:1") {
            Ok(r) => r,
            Err(e) => panic!("{e}"),
        }
    }

    fn envelope(code: OciErrorCode) -> OciDistributionError {
        OciDistributionError::RegistryError {
            envelope: OciEnvelope {
                errors: vec![OciError {
                    code,
                    message: "m".into(),
                    detail: serde_json::Value::Null,
                }],
            },
            url: "http://127.0.0.1:5000/v2/app/manifests/1".into(),
        }
    }

    #[test]
    fn registry_errors_are_classified() {
        let r = reference();
        for code in [
            OciErrorCode::NameUnknown,
            OciErrorCode::ManifestUnknown,
            OciErrorCode::NotFound,
            OciErrorCode::BlobUnknown,
        ] {
            assert!(matches!(
                registry_error(&r, envelope(code)),
                ImageError::NotFound { .. }
            ));
        }
        for code in [OciErrorCode::Unauthorized, OciErrorCode::Denied] {
            assert!(matches!(
                registry_error(&r, envelope(code)),
                ImageError::Unauthorized { .. }
            ));
        }
        assert!(matches!(
            registry_error(&r, envelope(OciErrorCode::Toomanyrequests)),
            ImageError::Registry { .. }
        ));
        let server = |code| OciDistributionError::ServerError {
            code,
            url: "u".into(),
            message: "m".into(),
        };
        assert!(matches!(
            registry_error(&r, server(404)),
            ImageError::NotFound { .. }
        ));
        assert!(matches!(
            registry_error(&r, server(403)),
            ImageError::Unauthorized { .. }
        ));
        assert!(matches!(
            registry_error(&r, server(500)),
            ImageError::Registry { .. }
        ));
        assert!(matches!(
            registry_error(
                &r,
                OciDistributionError::UnauthorizedError { url: "u".into() }
            ),
            ImageError::Unauthorized { .. }
        ));
    }

    fn entry(digest: &str, platform: Option<(&str, &str)>) -> ImageIndexEntry {
        let json = serde_json::json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": digest,
            "size": 1,
            "platform": platform.map(|(os, arch)| serde_json::json!({"os": os, "architecture": arch})),
        });
        match serde_json::from_value(json) {
            Ok(entry) => entry,
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn platforms_are_picked_amd64_first() {
        let arm = entry("arm", Some(("linux", "arm64")));
        let amd = entry("amd", Some(("linux", "amd64")));
        let attestation = entry("att", Some(("unknown", "unknown")));
        let bare = entry("bare", None);
        assert_eq!(
            pick_platform(&[arm.clone(), amd.clone()]).as_deref(),
            Some("amd")
        );
        assert_eq!(
            pick_platform(&[attestation.clone(), arm.clone()]).as_deref(),
            Some("arm")
        );
        assert_eq!(
            pick_platform(&[attestation.clone(), bare]).as_deref(),
            Some("bare")
        );
        assert_eq!(pick_platform(&[attestation]).as_deref(), Some("att"));
        assert_eq!(pick_platform(&[]), None);
    }

    #[test]
    fn repo_digests_match_by_normalised_name() {
        let sha = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        let hub = match parse_reference("busybox:1") {
            Ok(r) => r,
            Err(e) => panic!("{e}"),
        };
        let digests = vec![
            format!("127.0.0.1:5000/busybox@{sha}"),
            "garbage".to_string(),
            format!("busybox@{sha}"),
        ];
        assert_eq!(repo_digest(&hub, &digests).as_deref(), Some(sha));
        assert_eq!(
            repo_digest(&reference(), &digests),
            None,
            "another repository's digest"
        );
    }

    #[test]
    fn credentials_do_not_show_the_password() {
        let credentials = Credentials {
            username: "me".into(),
            password: "hunter2".into(),
        };
        let shown = format!("{credentials:?}");
        assert!(
            shown.contains("me") && !shown.contains("hunter2"),
            "{shown}"
        );
    }
}
