//! WebSocket connections to the controller (exec, follow logs), with the
//! same `Authorization` header and error messages as the HTTP client.

use crate::client::{error_message, io_reason, ApiError};
use crate::config::ClientConfig;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Error as WsError;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// `http://host` -> `ws://host` (and https -> wss).
pub fn ws_url(controller: &str, path: &str) -> String {
    let base = controller.trim_end_matches('/');
    let base = if let Some(rest) = base.strip_prefix("https://") {
        format!("wss://{rest}")
    } else if let Some(rest) = base.strip_prefix("http://") {
        format!("ws://{rest}")
    } else {
        base.to_string()
    };
    format!("{base}{path}")
}

pub async fn connect(config: &ClientConfig, path: &str) -> Result<Ws, ApiError> {
    let url = ws_url(&config.controller, path);
    let mut request = url
        .as_str()
        .into_client_request()
        .map_err(|e| ApiError::BadUrl {
            url: url.clone(),
            reason: e.to_string(),
        })?;
    let auth = HeaderValue::from_str(&format!("token {}", config.token)).map_err(|_| {
        ApiError::Other("the token in the client configuration is not valid".into())
    })?;
    request.headers_mut().insert("Authorization", auth);
    match tokio_tungstenite::connect_async(request).await {
        Ok((ws, _)) => Ok(ws),
        Err(e) => Err(map_error(&config.controller, e)),
    }
}

pub fn map_error(controller: &str, e: WsError) -> ApiError {
    match e {
        WsError::Http(resp) => {
            let status = resp.status().as_u16();
            let body = resp.body().as_deref().unwrap_or_default();
            ApiError::Status {
                status,
                message: error_message(status, body),
            }
        }
        WsError::Io(io) => ApiError::Unreachable {
            url: controller.to_string(),
            reason: io_reason(&io),
        },
        WsError::ConnectionClosed | WsError::AlreadyClosed => {
            ApiError::Other("the connection to the controller was closed".into())
        }
        other => ApiError::Other(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ws_urls() {
        assert_eq!(
            ws_url("http://127.0.0.1:8000/", "/v2/apps/a/logs"),
            "ws://127.0.0.1:8000/v2/apps/a/logs"
        );
        assert_eq!(ws_url("https://h", "/x"), "wss://h/x");
    }
}
