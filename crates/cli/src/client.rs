//! The HTTP client of the controller's REST API: builds URLs, sends
//! `Authorization: token <t>`, turns answers into wire types and failures
//! into one readable message ([`ApiError`]).

use drycc_api_types::List;
use reqwest::{Method, StatusCode, Url};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("cannot reach the controller at {url}: {reason}")]
    Unreachable { url: String, reason: String },
    /// The controller answered with an error status; `message` is its
    /// `detail` (or the field errors).
    #[error("{message}")]
    Status { status: u16, message: String },
    #[error("unexpected answer from the controller to {what}: {reason}")]
    Decode { what: String, reason: String },
    #[error("invalid controller URL '{url}': {reason}")]
    BadUrl { url: String, reason: String },
    #[error("request to the controller failed: {0}")]
    Other(String),
}

impl ApiError {
    pub fn status(&self) -> Option<u16> {
        match self {
            ApiError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// The message of an error answer: `detail`, else the field errors one a
/// line (`field: message`), else the status and the body.
pub fn error_message(status: u16, body: &[u8]) -> String {
    if let Ok(value) = serde_json::from_slice::<Value>(body) {
        if let Some(detail) = value.get("detail").and_then(Value::as_str) {
            return detail.to_string();
        }
        match &value {
            Value::Object(map) if !map.is_empty() => {
                return map
                    .iter()
                    .map(|(field, v)| {
                        let text = messages(v);
                        if field == "non_field_errors" || field == "detail" {
                            text
                        } else {
                            format!("{field}: {text}")
                        }
                    })
                    .collect::<Vec<_>>()
                    .join("\n");
            }
            Value::Array(items) if !items.is_empty() => return messages(&value),
            Value::String(s) if !s.is_empty() => return s.clone(),
            _ => {}
        }
    }
    let reason = StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Unknown Error");
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        format!("{reason} ({status})")
    } else {
        let short: String = text.chars().take(500).collect();
        format!("{reason} ({status}): {short}")
    }
}

fn messages(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(items) => items.iter().map(messages).collect::<Vec<_>>().join(" "),
        other => other.to_string(),
    }
}

/// One short reason for a failed connection ("connection refused").
pub fn transport_reason(err: &(dyn std::error::Error + 'static)) -> String {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    let mut last = err.to_string();
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            return io_reason(io);
        }
        last = e.to_string();
        source = e.source();
    }
    last
}

pub fn io_reason(e: &std::io::Error) -> String {
    use std::io::ErrorKind::*;
    match e.kind() {
        ConnectionRefused => "connection refused".into(),
        ConnectionReset => "connection reset by peer".into(),
        ConnectionAborted => "connection aborted".into(),
        TimedOut => "timed out".into(),
        _ => e.to_string(),
    }
}

/// Is the URL's host this machine? (Proxies are never used for it, as Go's
/// client and curl behave.)
fn is_loopback(url: &Url) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    match host.parse::<std::net::IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => host == "localhost" || host.ends_with(".localhost"),
    }
}

pub struct Client {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
    page_size: u32,
}

impl Client {
    /// A client of `controller` (`http://host:port`), with `token` when
    /// logged in; `page_size` 0 means 100.
    pub fn new(controller: &str, token: Option<&str>, page_size: u32) -> Result<Client, ApiError> {
        let base = controller.trim_end_matches('/').to_string();
        let parsed = Url::parse(&base).map_err(|e| ApiError::BadUrl {
            url: base.clone(),
            reason: e.to_string(),
        })?;
        match parsed.scheme() {
            "http" => {}
            "https" => {
                return Err(ApiError::BadUrl {
                    url: base,
                    reason: "this drycc client is built without TLS; use an http:// controller URL"
                        .into(),
                })
            }
            other => {
                return Err(ApiError::BadUrl {
                    url: base,
                    reason: format!("unsupported scheme '{other}', expected http://"),
                })
            }
        }
        let mut builder = reqwest::Client::builder()
            .user_agent(concat!("drycc-cli/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(15));
        if is_loopback(&parsed) {
            builder = builder.no_proxy();
        }
        let http = builder
            .build()
            .map_err(|e| ApiError::Other(transport_reason(&e)))?;
        Ok(Client {
            http,
            base,
            token: token.map(String::from),
            page_size: if page_size == 0 { 100 } else { page_size },
        })
    }

    fn url(&self, path: &str, query: &[(&str, String)]) -> Result<Url, ApiError> {
        let mut url =
            Url::parse(&format!("{}{}", self.base, path)).map_err(|e| ApiError::BadUrl {
                url: format!("{}{}", self.base, path),
                reason: e.to_string(),
            })?;
        if !query.is_empty() {
            let mut pairs = url.query_pairs_mut();
            for (k, v) in query {
                pairs.append_pair(k, v);
            }
        }
        Ok(url)
    }

    /// Sends one request and returns the body of a successful answer.
    async fn send(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&dyn erased::Body>,
    ) -> Result<Vec<u8>, ApiError> {
        let url = self.url(path, query)?;
        let mut req = self.http.request(method, url);
        if let Some(token) = &self.token {
            req = req.header(reqwest::header::AUTHORIZATION, format!("token {token}"));
        }
        if let Some(body) = body {
            req = req
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.to_json()?);
        }
        let resp = req.send().await.map_err(|e| self.transport(e))?;
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(|e| self.transport(e))?;
        if !status.is_success() {
            return Err(ApiError::Status {
                status: status.as_u16(),
                message: error_message(status.as_u16(), &bytes),
            });
        }
        Ok(bytes.to_vec())
    }

    fn transport(&self, e: reqwest::Error) -> ApiError {
        if e.is_timeout() {
            return ApiError::Unreachable {
                url: self.base.clone(),
                reason: "timed out".into(),
            };
        }
        if e.is_connect() || e.is_request() {
            return ApiError::Unreachable {
                url: self.base.clone(),
                reason: transport_reason(&e),
            };
        }
        ApiError::Other(transport_reason(&e))
    }

    fn decode<T: DeserializeOwned>(path: &str, bytes: &[u8]) -> Result<T, ApiError> {
        serde_json::from_slice(bytes).map_err(|e| ApiError::Decode {
            what: path.to_string(),
            reason: e.to_string(),
        })
    }

    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ApiError> {
        let bytes = self.send(Method::GET, path, &[], None).await?;
        Self::decode(path, &bytes)
    }

    /// A text answer (logs).
    pub async fn get_text(&self, path: &str, query: &[(&str, String)]) -> Result<String, ApiError> {
        let bytes = self.send(Method::GET, path, query, None).await?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    pub async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, ApiError> {
        let bytes = self.send(Method::POST, path, &[], Some(body)).await?;
        Self::decode(path, &bytes)
    }

    /// A POST whose answer body is not needed (204, or ignored).
    pub async fn post_ignore<B: Serialize>(&self, path: &str, body: &B) -> Result<(), ApiError> {
        self.send(Method::POST, path, &[], Some(body)).await?;
        Ok(())
    }

    pub async fn delete(&self, path: &str) -> Result<(), ApiError> {
        self.send(Method::DELETE, path, &[], None).await?;
        Ok(())
    }

    /// Every item of a paginated list, page by page.
    pub async fn list<T: DeserializeOwned>(&self, path: &str) -> Result<Vec<T>, ApiError> {
        let mut items = Vec::new();
        loop {
            let query = [
                ("limit", self.page_size.to_string()),
                ("offset", items.len().to_string()),
            ];
            let bytes = self.send(Method::GET, path, &query, None).await?;
            let page: List<T> = Self::decode(path, &bytes)?;
            let got = page.results.len();
            items.extend(page.results);
            if got == 0 || items.len() >= page.count || page.next.is_none() {
                return Ok(items);
            }
        }
    }
}

/// Object-safe serialisation, so that `send` is not generic.
mod erased {
    use super::ApiError;

    pub trait Body {
        fn to_json(&self) -> Result<Vec<u8>, ApiError>;
    }

    impl<T: serde::Serialize> Body for T {
        fn to_json(&self) -> Result<Vec<u8>, ApiError> {
            serde_json::to_vec(self).map_err(|e| ApiError::Other(e.to_string()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detail_is_the_message() {
        assert_eq!(
            error_message(404, br#"{"detail": "Not found."}"#),
            "Not found."
        );
    }

    #[test]
    fn field_errors_are_joined() {
        assert_eq!(
            error_message(400, br#"{"id": ["App with this id already exists."], "non_field_errors": ["bad", "worse"]}"#),
            "id: App with this id already exists.\nbad worse"
        );
    }

    #[test]
    fn other_bodies_show_the_status() {
        assert_eq!(error_message(502, b""), "Bad Gateway (502)");
        assert_eq!(
            error_message(500, b"<html>boom</html>"),
            "Internal Server Error (500): <html>boom</html>"
        );
        assert_eq!(error_message(400, br#"["a", "b"]"#), "a b");
    }

    #[test]
    fn io_reasons_are_short() {
        let e = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert_eq!(transport_reason(&e), "connection refused");
    }

    #[test]
    fn loopback_hosts() {
        for u in [
            "http://127.0.0.1:8000",
            "http://localhost",
            "http://[::1]:80",
            "http://a.localhost",
        ] {
            assert!(is_loopback(&Url::parse(u).unwrap()), "{u}");
        }
        assert!(!is_loopback(&Url::parse("http://example.com").unwrap()));
    }

    #[test]
    fn https_is_refused_clearly() {
        let err = Client::new("https://x", None, 0).err().unwrap();
        assert!(err.to_string().contains("without TLS"), "{err}");
    }
}
