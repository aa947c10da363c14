//! A standalone router's feed: follow the controller's table over
//! `GET /internal/routes` (one JSON [`Routes`] per line, a blank line as a
//! heartbeat) and publish each on the router's watch. While the controller
//! is away the last table stays in service; the stream is opened again
//! with a short back-off.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use http_body_util::{BodyExt, Empty};
use hyper::header::{HeaderValue, AUTHORIZATION};
use hyper::{Request, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::sync::watch;

use crate::table::{RouteTable, Routes};

/// The path of the controller's stream.
pub const ROUTES_PATH: &str = "/internal/routes";
/// The controller sends a heartbeat this often; a stream silent for three
/// of them is given up.
pub const HEARTBEAT: Duration = Duration::from_secs(10);
/// Longest line accepted.
const MAX_LINE: usize = 16 * 1024 * 1024;
const BACKOFF_FIRST: Duration = Duration::from_millis(50);
const BACKOFF_LAST: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum FollowError {
    #[error("bad controller URL: {0}")]
    Url(#[from] hyper::http::Error),
    #[error("cannot reach the controller: {0}")]
    Connect(#[from] hyper_util::client::legacy::Error),
    #[error("the controller answered {0}")]
    Status(StatusCode),
    #[error("the stream broke: {0}")]
    Body(#[from] hyper::Error),
    #[error("the stream was silent for {0:?}")]
    Silent(Duration),
    #[error("the controller sent a line that is not a table: {0}")]
    Json(#[from] serde_json::Error),
    #[error("the controller sent a line longer than {MAX_LINE} bytes")]
    TooLong,
    #[error("the controller ended the stream")]
    Ended,
}

/// Follow the controller at `base_url` (`http://127.0.0.1:8000`) until
/// `stop` resolves.
pub async fn follow(
    base_url: &str,
    secret: &str,
    table: watch::Sender<Arc<RouteTable>>,
    stop: impl std::future::Future<Output = ()>,
) {
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let url = format!("{}{ROUTES_PATH}", base_url.trim_end_matches('/'));
    tokio::pin!(stop);
    let mut backoff = BACKOFF_FIRST;
    let mut was_connected = true;
    loop {
        let mut received = false;
        let outcome = tokio::select! {
            outcome = stream(&client, &url, secret, &table, &mut received) => outcome,
            _ = &mut stop => return,
        };
        if received {
            backoff = BACKOFF_FIRST;
        }
        if let Err(error) = outcome {
            // Say it once per outage, not once per attempt.
            if received || was_connected {
                tracing::warn!(%error, url, "Lost the controller's routing table stream; serving the last table.");
            } else {
                tracing::debug!(%error, "The controller is still unreachable.");
            }
        }
        was_connected = received;
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = &mut stop => return,
        }
        backoff = (backoff * 2).min(BACKOFF_LAST);
    }
}

async fn stream(
    client: &Client<hyper_util::client::legacy::connect::HttpConnector, Empty<Bytes>>,
    url: &str,
    secret: &str,
    table: &watch::Sender<Arc<RouteTable>>,
    received: &mut bool,
) -> Result<(), FollowError> {
    let mut request = Request::get(url).body(Empty::new())?;
    if let Ok(value) = HeaderValue::from_str(&format!("Bearer {secret}")) {
        request.headers_mut().insert(AUTHORIZATION, value);
    }
    let response = client.request(request).await?;
    if response.status() != StatusCode::OK {
        return Err(FollowError::Status(response.status()));
    }
    let mut body = response.into_body();
    let mut buffer = BytesMut::new();
    let silence = HEARTBEAT * 3;
    loop {
        let frame = tokio::time::timeout(silence, body.frame())
            .await
            .map_err(|_| FollowError::Silent(silence))?;
        let Some(frame) = frame else {
            return Err(FollowError::Ended);
        };
        let Ok(data) = frame?.into_data() else {
            continue;
        };
        buffer.extend_from_slice(&data);
        while let Some(end) = buffer.iter().position(|b| *b == b'\n') {
            let line = buffer.split_to(end + 1);
            let line = &line[..end];
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let routes: Routes = serde_json::from_slice(line)?;
            tracing::debug!(
                generation = routes.generation,
                apps = routes.apps.len(),
                "New routing table."
            );
            table.send_replace(Arc::new(RouteTable::new(routes)));
            *received = true;
        }
        if buffer.remaining() > MAX_LINE {
            return Err(FollowError::TooLong);
        }
    }
}
