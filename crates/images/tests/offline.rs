//! Registries this test controls, on 127.0.0.1: one that is down, and fake
//! ones that want credentials (HTTP Basic, or a bearer token from a token
//! endpoint). These need neither Docker nor the test registry.

use std::net::SocketAddr;

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use base64::Engine as _;
use drycc_images::{Credentials, ImageError, Inspector};
use serde_json::json;
use sha2::{Digest, Sha256};

#[tokio::test]
async fn a_registry_that_is_down_is_unreachable() -> anyhow::Result<()> {
    // A port that was free a moment ago: nothing listens on it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let reference = format!("127.0.0.1:{port}/app:1");
    match Inspector::new(None).inspect(&reference, None).await {
        Err(e @ ImageError::RegistryUnreachable { .. }) => {
            let message = e.to_string();
            eprintln!("{message}");
            assert!(message.contains(&format!("127.0.0.1:{port}")), "{message}");
            assert!(message.to_lowercase().contains("refused"), "{message}");
        }
        other => panic!("expected RegistryUnreachable, got {other:?}"),
    }
    Ok(())
}

#[tokio::test]
async fn bad_references_are_refused_before_any_request() {
    // The registry does not exist: an attempt to reach it would fail
    // differently.
    let inspector = Inspector::new(None);
    for (reference, missing_tag) in [
        ("example", true),
        ("127.0.0.1:1/example", true),
        ("Example:1", false),
        ("127.0.0.1:1/app:-x", false),
        ("127.0.0.1:1/app@sha256:123", false),
    ] {
        match inspector.inspect(reference, None).await {
            Err(ImageError::MissingTag { .. }) if missing_tag => {}
            Err(ImageError::InvalidReference { .. }) if !missing_tag => {}
            other => panic!("{reference}: got {other:?}"),
        }
    }
}

#[derive(Clone, Copy)]
enum Auth {
    Basic,
    Bearer,
}

#[derive(Clone)]
struct Fake {
    auth: Auth,
    addr: SocketAddr,
    manifest: String,
    manifest_digest: String,
    config: String,
    config_digest: String,
}

const USER: &str = "me";
const PASSWORD: &str = "s3cret";
const TOKEN: &str = "token-for-me";
const MANIFEST_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";

fn sha256(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

fn basic() -> String {
    let pair = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"));
    format!("Basic {pair}")
}

impl Fake {
    fn authorized(&self, headers: &HeaderMap) -> bool {
        let expected = match self.auth {
            Auth::Basic => basic(),
            Auth::Bearer => format!("Bearer {TOKEN}"),
        };
        headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            == Some(expected.as_str())
    }

    fn challenge(&self) -> Response {
        let challenge = match self.auth {
            Auth::Basic => "Basic realm=\"fake\"".to_string(),
            Auth::Bearer => format!(
                "Bearer realm=\"http://{}/token\",service=\"fake\"",
                self.addr
            ),
        };
        let body =
            json!({"errors": [{"code": "UNAUTHORIZED", "message": "authentication required"}]});
        (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, challenge)],
            body.to_string(),
        )
            .into_response()
    }
}

async fn version(State(fake): State<Fake>, headers: HeaderMap) -> Response {
    if fake.authorized(&headers) {
        "{}".into_response()
    } else {
        fake.challenge()
    }
}

async fn token(headers: HeaderMap) -> Response {
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if given == Some(basic().as_str()) {
        json!({"token": TOKEN}).to_string().into_response()
    } else {
        StatusCode::UNAUTHORIZED.into_response()
    }
}

async fn serve_manifest(
    State(fake): State<Fake>,
    Path(reference): Path<String>,
    headers: HeaderMap,
) -> Response {
    if !fake.authorized(&headers) {
        return fake.challenge();
    }
    if reference != "1" && reference != fake.manifest_digest {
        return StatusCode::NOT_FOUND.into_response();
    }
    (
        [
            (header::CONTENT_TYPE, MANIFEST_TYPE.to_string()),
            (
                header::HeaderName::from_static("docker-content-digest"),
                fake.manifest_digest.clone(),
            ),
        ],
        fake.manifest.clone(),
    )
        .into_response()
}

async fn blob(
    State(fake): State<Fake>,
    Path(digest): Path<String>,
    headers: HeaderMap,
) -> Response {
    if !fake.authorized(&headers) {
        return fake.challenge();
    }
    if digest != fake.config_digest {
        return StatusCode::NOT_FOUND.into_response();
    }
    fake.config.clone().into_response()
}

/// A registry serving `private/app:1` to the right credentials only.
async fn serve(auth: Auth) -> anyhow::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let config = json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {"Cmd": ["serve"], "ExposedPorts": {"443/tcp": {}}},
        "rootfs": {"type": "layers", "diff_ids": []},
    })
    .to_string();
    let config_digest = sha256(config.as_bytes());
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST_TYPE,
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": config_digest,
            "size": config.len(),
        },
        "layers": [],
    })
    .to_string();
    let fake = Fake {
        auth,
        addr,
        manifest_digest: sha256(manifest.as_bytes()),
        manifest,
        config,
        config_digest,
    };
    let app = Router::new()
        .route("/v2/", get(version))
        .route("/token", get(token))
        .route("/v2/private/app/manifests/{reference}", get(serve_manifest))
        .route("/v2/private/app/blobs/{digest}", get(blob))
        .with_state(fake);
    let server = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            eprintln!("fake registry: {e}");
        }
    });
    Ok((addr, server))
}

async fn credentials_are_needed_and_not_kept(auth: Auth) -> anyhow::Result<()> {
    let (addr, server) = serve(auth).await?;
    let reference = format!("127.0.0.1:{}/private/app:1", addr.port());
    let inspector = Inspector::new(None);
    let right = Credentials {
        username: USER.into(),
        password: PASSWORD.into(),
    };
    let wrong = Credentials {
        username: USER.into(),
        password: "guess".into(),
    };

    let anonymous = inspector.inspect(&reference, None).await;
    assert!(
        matches!(anonymous, Err(ImageError::Unauthorized { .. })),
        "anonymous: {anonymous:?}"
    );
    let guessed = inspector.inspect(&reference, Some(&wrong)).await;
    assert!(
        matches!(guessed, Err(ImageError::Unauthorized { .. })),
        "wrong password: {guessed:?}"
    );
    let config = inspector.inspect(&reference, Some(&right)).await?;
    assert_eq!(config.cmd, vec!["serve"]);
    assert_eq!(config.exposed_ports, vec![443]);
    assert!(config.digest.is_some());
    // The next caller without credentials does not get the last one's.
    let after = inspector.inspect(&reference, None).await;
    assert!(
        matches!(after, Err(ImageError::Unauthorized { .. })),
        "anonymous after a pull with credentials: {after:?}"
    );
    server.abort();
    Ok(())
}

#[tokio::test]
async fn basic_auth_credentials_are_needed_and_not_kept() -> anyhow::Result<()> {
    credentials_are_needed_and_not_kept(Auth::Basic).await
}

#[tokio::test]
async fn bearer_token_credentials_are_needed_and_not_kept() -> anyhow::Result<()> {
    credentials_are_needed_and_not_kept(Auth::Bearer).await
}

#[tokio::test]
async fn a_docker_engine_that_is_down_is_a_docker_error() -> anyhow::Result<()> {
    // A socket nothing listens on: bollard wants the file to exist.
    let dir = tempfile::tempdir()?;
    let socket = dir.path().join("docker.sock");
    let listener = std::os::unix::net::UnixListener::bind(&socket)?;
    drop(listener);
    let docker = bollard::Docker::connect_with_unix(
        &socket.to_string_lossy(),
        5,
        bollard::API_DEFAULT_VERSION,
    )?;
    let result = Inspector::new(Some(docker))
        .inspect("127.0.0.1:1/app:1", None)
        .await;
    match result {
        Err(e @ ImageError::Docker { .. }) => {
            let message = e.to_string();
            eprintln!("{message}");
            assert!(message.to_lowercase().contains("refused"), "{message}");
        }
        other => panic!("expected a Docker error, got {other:?}"),
    }
    Ok(())
}
