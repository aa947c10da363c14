//! `GET /internal/routes`, the routing table for routers that run on
//! their own (`drycc-controller router`): the table as JSON lines, the
//! current one at once, then each new one, a blank line as a heartbeat.
//! A router presents the secret of `loops::router::secret`.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use drycc_router::follow::HEARTBEAT;
use drycc_router::RouteTable;

use crate::http::Shared;

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_compare_whole() {
        assert!(same(b"abc", b"abc"));
        assert!(!same(b"abc", b"abd"));
        assert!(!same(b"abc", b"ab"));
    }
}
