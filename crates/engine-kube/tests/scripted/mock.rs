//! A scripted API server behind kube's `Client`: each scenario takes the
//! requests one by one, checks them and answers.

use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{combinators::BoxBody, BodyExt, Full, StreamBody};
use hyper::body::Frame;
use kube::client::Body;
use kube::Client;
use tokio::sync::mpsc;
use tower_test::mock::{Handle, SendResponse};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
pub type Answer = Response<BoxBody<Bytes, BoxError>>;

/// Long enough for any scenario; it only stops a broken one from hanging.
pub const GUARD: Duration = Duration::from_secs(30);

pub struct Server {
    handle: Handle<Request<Body>, Answer>,
}

/// One request as the server saw it.
pub struct Seen {
    pub method: Method,
    pub path: String,
    pub query: Vec<(String, String)>,
    pub respond: SendResponse<Answer>,
}

impl Seen {
    pub fn param(&self, key: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The query, sorted, as `k=v` strings: for exact comparisons.
    pub fn query_sorted(&self) -> Vec<String> {
        let mut pairs: Vec<String> = self.query.iter().map(|(k, v)| format!("{k}={v}")).collect();
        pairs.sort();
        pairs
    }
}

/// A client whose every request goes to the returned server.
pub fn scripted() -> (Client, Server) {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Answer>();
    (Client::new(service, "default"), Server { handle })
}

impl Server {
    pub async fn next(&mut self) -> Seen {
        let (request, respond) = self
            .handle
            .next_request()
            .await
            .expect("the engine made no further request");
        let uri = request.uri();
        Seen {
            method: request.method().clone(),
            path: uri.path().to_string(),
            query: parse_query(uri.query().unwrap_or("")),
            respond,
        }
    }

    /// The next request, which must be `method path`.
    pub async fn expect(&mut self, method: Method, path: &str) -> Seen {
        let seen = self.next().await;
        assert_eq!(
            (&seen.method, seen.path.as_str()),
            (&method, path),
            "unexpected request"
        );
        seen
    }
}

pub fn text(status: StatusCode, body: impl Into<Bytes>) -> Answer {
    Response::builder()
        .status(status)
        .body(Full::new(body.into()).map_err(|e| match e {}).boxed())
        .unwrap()
}

pub fn ok(body: impl Into<Bytes>) -> Answer {
    text(StatusCode::OK, body)
}

/// A `metav1.Status` failure, as the API server answers errors.
pub fn failure(code: u16, reason: &str, message: &str, details: serde_json::Value) -> Answer {
    let mut status = serde_json::json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    });
    if !details.is_null() {
        status["details"] = details;
    }
    let mut answer = text(
        StatusCode::from_u16(code).unwrap(),
        serde_json::to_vec(&status).unwrap(),
    );
    answer.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    answer
}

/// A body that stays open: each chunk sent is one HTTP chunk, and
/// dropping the sender ends the body, as a kubelet ends a followed log.
pub fn chunked() -> (mpsc::Sender<Bytes>, Answer) {
    let (tx, rx) = mpsc::channel::<Bytes>(8);
    let frames = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|chunk| (Ok::<_, BoxError>(Frame::data(chunk)), rx))
    });
    let answer = Response::builder()
        .status(StatusCode::OK)
        .body(BodyExt::boxed(StreamBody::new(frames)))
        .unwrap();
    (tx, answer)
}

/// Run the engine's side and the server's side together; a panic on the
/// server's side (a failed check) fails the test.
pub async fn play<C, S, T>(client_side: C, server_side: S) -> T
where
    C: Future<Output = T>,
    S: Future<Output = ()> + Send + 'static,
{
    let server = tokio::spawn(server_side);
    let result = tokio::time::timeout(GUARD, client_side)
        .await
        .expect("the scenario did not finish");
    tokio::time::timeout(GUARD, server)
        .await
        .expect("the server's side did not finish")
        .expect("the server's side failed");
    result
}

fn parse_query(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(k), decode(v))
        })
        .collect()
}

/// `application/x-www-form-urlencoded` decoding, as kube encodes queries.
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
