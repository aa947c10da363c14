//! The bounds checked on a request as it arrives (body, headers,
//! WebSocket messages); the table of every bound is in
//! `service::limits`.

use axum::http::StatusCode;
use axum::response::IntoResponse;

use super::error::ApiError;
use super::Shared;

/// The message of every 413 of the API, for a limit of `limit` bytes.
pub fn body_too_large(limit: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("Request body too large: at most {limit} bytes are accepted (DRYCC_MAX_BODY_KIB)."),
    )
}

/// 431 when the request line and headers together exceed the limit.
/// (hyper bounds what it buffers before this runs; this is the limit a
/// client is told about.)
pub async fn refuse_large_headers(
    axum::extract::State(state): axum::extract::State<Shared>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let limit = usize::try_from(state.settings.max_header_kib)
        .unwrap_or(usize::MAX)
        .saturating_mul(1024);
    let size = request.uri().to_string().len()
        + request
            .headers()
            .iter()
            .map(|(name, value)| name.as_str().len() + value.len() + 4)
            .sum::<usize>();
    if size > limit {
        return ApiError::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            format!(
                "Request headers too large: {size} bytes, at most {limit} are accepted (DRYCC_MAX_HEADER_KIB)."
            ),
        )
        .into_response();
    }
    next.run(request).await
}

/// The largest WebSocket message (and frame) a client may send.
pub fn ws_message_bytes(state: &Shared) -> usize {
    usize::try_from(state.settings.max_ws_message_kib)
        .unwrap_or(usize::MAX)
        .saturating_mul(1024)
}

/// A WebSocket upgrade bounded by `DRYCC_MAX_WS_MESSAGE_KIB`.
pub fn bounded(
    upgrade: axum::extract::ws::WebSocketUpgrade,
    state: &Shared,
) -> axum::extract::ws::WebSocketUpgrade {
    let max = ws_message_bytes(state);
    upgrade.max_message_size(max).max_frame_size(max)
}

/// Whether a receive error is a message over the limit.
pub fn is_too_big(error: &axum::Error) -> bool {
    error.to_string().contains("Message too long")
}

/// Close a socket whose client sent a message over the limit: 1009
/// (message too big), with the limit and its setting as the reason.
pub async fn close_too_big(socket: &mut axum::extract::ws::WebSocket, state: &Shared) {
    use axum::extract::ws::{CloseFrame, Message};
    let reason = format!(
        "message too big: at most {} KiB (DRYCC_MAX_WS_MESSAGE_KIB)",
        state.settings.max_ws_message_kib
    );
    let _ = socket
        .send(Message::Close(Some(CloseFrame {
            code: 1009,
            reason: reason.into(),
        })))
        .await;
}
