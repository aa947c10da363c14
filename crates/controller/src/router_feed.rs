//! The routing table for routers that run on their own: the shared secret
//! they present, `GET /internal/routes` (the table as JSON lines: the
//! current one at once, then each new one, a blank line as a heartbeat),
//! and the `drycc-controller router` subcommand that follows it.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use drycc_router::follow::HEARTBEAT;
use drycc_router::RouteTable;
use rand::RngCore;

use crate::settings::Settings;
use crate::state::Shared;

/// The secret a standalone router presents: `DRYCC_ROUTER_SECRET`, else
/// `router.secret` in the data directory, created on first use (mode 0600)
/// and kept across restarts.
pub fn secret(settings: &Settings) -> anyhow::Result<String> {
    if let Some(secret) = settings.router_secret.as_deref().filter(|s| !s.is_empty()) {
        return Ok(secret.to_string());
    }
    let data_dir = settings.data_dir();
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("cannot create the data directory {}", data_dir.display()))?;
    let path = data_dir.join("router.secret");
    read_or_create(&path).with_context(|| format!("cannot read or create {}", path.display()))
}

fn read_or_create(path: &Path) -> std::io::Result<String> {
    if let Ok(text) = std::fs::read_to_string(path) {
        if !text.trim().is_empty() {
            return Ok(text.trim().to_string());
        }
    }
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let secret = hex::encode(bytes);
    // Written aside, then linked into place: a reader never sees half a
    // file, and of two writers the first wins.
    let temporary = PathBuf::from(format!("{}.{}", path.display(), std::process::id()));
    {
        use std::os::unix::fs::OpenOptionsExt;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&temporary)?;
        file.write_all(secret.as_bytes())?;
        file.sync_all()?;
    }
    let linked = std::fs::hard_link(&temporary, path);
    let _ = std::fs::remove_file(&temporary);
    match linked {
        Ok(()) => Ok(secret),
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {
            Ok(std::fs::read_to_string(path)?.trim().to_string())
        }
        Err(error) => Err(error),
    }
}

/// Compare without an early exit, so timing says nothing of the secret.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn line(table: &RouteTable) -> bytes::Bytes {
    let mut text = serde_json::to_vec(table.routes()).unwrap_or_default();
    text.push(b'\n');
    text.into()
}

/// `GET /internal/routes`.
pub async fn stream(State(state): State<Shared>, headers: HeaderMap) -> Response {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    if !same(presented.as_bytes(), state.router_secret.as_bytes()) {
        return (StatusCode::UNAUTHORIZED, "a router secret is required\n").into_response();
    }
    struct Feed {
        tables: tokio::sync::watch::Receiver<Arc<RouteTable>>,
        stopping: tokio_util::sync::CancellationToken,
        first: bool,
    }
    let feed = Feed {
        tables: state.routes.subscribe(),
        stopping: state.stopping.clone(),
        first: true,
    };
    let body = futures::stream::unfold(feed, |mut feed| async move {
        loop {
            if feed.first {
                // Nothing until a table was computed: an empty table would
                // replace the router's last good one.
                if feed.tables.borrow_and_update().generation() > 0 {
                    feed.first = false;
                    let bytes = line(&feed.tables.borrow());
                    return Some((Ok::<_, std::convert::Infallible>(bytes), feed));
                }
            }
            tokio::select! {
                _ = feed.stopping.cancelled() => return None,
                changed = feed.tables.changed() => {
                    changed.ok()?;
                    if !feed.first {
                        let bytes = line(&feed.tables.borrow_and_update());
                        return Some((Ok(bytes), feed));
                    }
                }
                _ = tokio::time::sleep(HEARTBEAT) => {
                    return Some((Ok(bytes::Bytes::from_static(b"\n")), feed));
                }
            }
        }
    });
    (
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(body),
    )
        .into_response()
}

/// `drycc-controller router`: the router on its own, following the
/// controller at `DRYCC_CONTROLLER_URL`. It serves its last table while
/// the controller is away.
pub async fn run_router(settings: Settings) -> anyhow::Result<()> {
    let secret = secret(&settings)?;
    let (sender, receiver) = drycc_router::channel();
    // Its counters on `GET /metrics` for a host that is no app's.
    let metrics: Arc<drycc_router::Metrics> = Default::default();
    let mut routers = Vec::new();
    for (listen, kind) in crate::server::router_listeners(&settings) {
        routers.push(
            crate::server::start_router_threads(
                listen,
                receiver.clone(),
                &settings,
                metrics.clone(),
                true,
                kind,
            )
            .await?,
        );
    }
    let stop = tokio_util::sync::CancellationToken::new();
    let controller = settings.controller_url.clone();
    let follower = tokio::spawn({
        let stop = stop.clone();
        async move {
            drycc_router::follow::follow(&controller, &secret, sender, stop.cancelled_owned()).await
        }
    });
    tracing::info!(controller = %settings.controller_url, "Following the controller's routing table.");
    crate::server::shutdown_signal().await;
    stop.cancel();
    let _ = follower.await;
    for router in routers {
        let _ = tokio::task::spawn_blocking(move || router.stop()).await;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_secret_file_is_created_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("router.secret");
        let first = read_or_create(&path).unwrap();
        assert_eq!(first.len(), 64);
        assert_eq!(read_or_create(&path).unwrap(), first);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(same(b"abc", b"abc"));
        assert!(!same(b"abc", b"abd"));
        assert!(!same(b"abc", b"ab"));
    }
}
