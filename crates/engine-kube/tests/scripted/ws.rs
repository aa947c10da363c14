//! A scripted API server for `exec`: one connection on 127.0.0.1, upgraded
//! to a WebSocket with the channel.k8s.io subprotocol, or refused with a
//! Status like the API server refuses before the upgrade.

// The handshake callbacks' `Result` is tungstenite's signature, not ours.
#![allow(clippy::result_large_err)]

use futures::{SinkExt, StreamExt};
use kube::Client;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::{HeaderValue, StatusCode};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

pub const STDIN: u8 = 0;
pub const STDOUT: u8 = 1;
pub const STDERR: u8 = 2;
pub const STATUS: u8 = 3;
pub const RESIZE: u8 = 4;
pub const CLOSE: u8 = 255;

pub const V5: &str = "v5.channel.k8s.io";
/// What API servers before 1.30 speak: no stream close.
pub const V4: &str = "v4.channel.k8s.io";

pub type Ws = WebSocketStream<TcpStream>;

/// The exec request the client made: its path and decoded query.
pub struct Upgrade {
    pub path: String,
    pub query: Vec<(String, String)>,
    /// The subprotocols the client offered, in its order.
    pub offered: String,
}

impl Upgrade {
    pub fn values(&self, key: &str) -> Vec<&str> {
        self.query
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    pub fn keys(&self) -> Vec<&str> {
        let mut keys: Vec<&str> = self.query.iter().map(|(k, _)| k.as_str()).collect();
        keys.sort();
        keys.dedup();
        keys
    }
}

/// A client pointed at a server that upgrades one connection to
/// `v5.channel.k8s.io` and hands it to `scenario`; the returned task fails
/// if the scenario does.
pub async fn serve<F, Fut>(scenario: F) -> (Client, JoinHandle<()>)
where
    F: FnOnce(Upgrade, Ws) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    serve_with(V5, scenario).await
}

/// `serve`, choosing `protocol` among those the client offers.
pub async fn serve_with<F, Fut>(protocol: &'static str, scenario: F) -> (Client, JoinHandle<()>)
where
    F: FnOnce(Upgrade, Ws) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let (listener, client) = listen().await;
    let task = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.expect("no exec connection");
        let (seen_tx, seen_rx) = oneshot::channel();
        let ws = tokio_tungstenite::accept_hdr_async(
            stream,
            |request: &Request, mut response: Response| {
                let _ = seen_tx.send(upgrade_of(request));
                response
                    .headers_mut()
                    .insert("Sec-WebSocket-Protocol", HeaderValue::from_static(protocol));
                Ok(response)
            },
        )
        .await
        .expect("the WebSocket handshake failed");
        let upgrade = seen_rx.await.expect("the handshake saw no request");
        scenario(upgrade, ws).await;
    });
    (client, task)
}

/// A client pointed at a server that refuses its one request with `code`
/// and a `metav1.Status` body, as the API server does before an upgrade.
pub async fn refuse(code: u16, status: serde_json::Value) -> (Client, JoinHandle<Upgrade>) {
    let (listener, client) = listen().await;
    let task = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.expect("no exec connection");
        let (seen_tx, seen_rx) = oneshot::channel();
        let body = serde_json::to_string(&status).unwrap();
        let result = tokio_tungstenite::accept_hdr_async(stream, |request: &Request, _| {
            let _ = seen_tx.send(upgrade_of(request));
            let mut refusal = ErrorResponse::new(Some(body));
            *refusal.status_mut() = StatusCode::from_u16(code).unwrap();
            refusal
                .headers_mut()
                .insert("Content-Type", HeaderValue::from_static("application/json"));
            Err(refusal)
        })
        .await;
        assert!(result.is_err(), "the refusal was not sent");
        seen_rx.await.expect("the handshake saw no request")
    });
    (client, task)
}

async fn listen() -> (TcpListener, Client) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let config = kube::Config::new(url.parse().unwrap());
    (listener, Client::try_from(config).unwrap())
}

fn upgrade_of(request: &Request) -> Upgrade {
    let uri = request.uri();
    Upgrade {
        path: uri.path().to_string(),
        query: form_pairs(uri.query().unwrap_or("")),
        offered: request
            .headers()
            .get("Sec-WebSocket-Protocol")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string(),
    }
}

fn form_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
                out.push(u8::from_str_radix(hex, 16).unwrap());
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).unwrap()
}

pub async fn send(ws: &mut Ws, channel: u8, data: &[u8]) {
    let mut frame = vec![channel];
    frame.extend_from_slice(data);
    ws.send(Message::Binary(frame.into())).await.unwrap();
}

pub async fn send_status(ws: &mut Ws, status: serde_json::Value) {
    send(ws, STATUS, &serde_json::to_vec(&status).unwrap()).await;
}

/// The next channel frame from the client (pings skipped), or `None` once
/// the connection closed.
pub async fn next(ws: &mut Ws) -> Option<(u8, Vec<u8>)> {
    loop {
        match ws.next().await? {
            Ok(Message::Binary(frame)) => {
                let (channel, data) = frame.split_first().expect("an empty frame");
                return Some((*channel, data.to_vec()));
            }
            Ok(Message::Close(_)) | Err(_) => return None,
            Ok(_) => continue,
        }
    }
}
