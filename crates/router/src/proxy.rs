//! Sending a request to one of an app's backends: keep-alive connections
//! driven directly with hyper's HTTP/1 client (a small pool per router
//! thread and backend), one retry on another backend when nothing of the
//! request was written, and WebSocket (any `Upgrade`) pass-through.
//!
//! Each router thread has its own [`Proxy`], so the pool's mutex is never
//! contended; a connection goes back to the pool when its response body
//! has been read to the end ([`PooledBody`]), without a task of its own.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{Either, Empty};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{HeaderValue, HOST};
use hyper::http::uri::{PathAndQuery, Uri};
use hyper::{Method, Request, Response, StatusCode, Version};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::access;
use crate::headers;
use crate::metrics::AppMetrics;
use crate::table::Route;

/// What goes to a backend: the client's body, or none (a retried request).
pub type UpstreamBody = Either<Incoming, Empty<Bytes>>;

/// A pooled connection idle this long may have been closed by the app's
/// own keep-alive timeout just as a request is sent on it; an idempotent
/// request without a body sent on one keeps a copy of its head to be sent
/// again. Under load connections are never idle that long: no copy.
const STALE_AFTER: Duration = Duration::from_millis(500);

/// How long an idle pooled connection to a backend is kept.
const POOL_IDLE: Duration = Duration::from_secs(60);

/// Idle connections kept per backend and router thread.
const POOL_MAX: usize = 256;

/// How long connecting to a backend may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a backend did not answer.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("cannot connect: {0}")]
    Connect(#[source] std::io::Error),
    #[error("connecting timed out")]
    ConnectTimeout,
    #[error(transparent)]
    Http(#[from] hyper::Error),
}

/// Why a request got no answer from the app.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("no web process of app {app} answered ({backend}): {source}")]
    Unreachable {
        app: String,
        backend: SocketAddr,
        #[source]
        source: BackendError,
    },
}

impl ProxyError {
    pub fn status(&self) -> StatusCode {
        match self {
            ProxyError::Unreachable { .. } => StatusCode::BAD_GATEWAY,
        }
    }
}

/// An idle connection, ready for a request once its last answer was read.
struct Idle {
    sender: SendRequest<UpstreamBody>,
    since: Instant,
}

/// Idle connections per backend.
#[derive(Default)]
struct Pools(Mutex<HashMap<SocketAddr, Vec<Idle>>>);

impl Pools {
    /// An idle connection to `backend`, and how long it was idle.
    fn take(&self, backend: SocketAddr) -> Option<(SendRequest<UpstreamBody>, Duration)> {
        let mut pools = self.0.lock().ok()?;
        let idle = pools.get_mut(&backend)?;
        let now = Instant::now();
        while let Some(entry) = idle.pop() {
            let idle_for = now.duration_since(entry.since);
            if !entry.sender.is_closed() && idle_for < POOL_IDLE {
                return Some((entry.sender, idle_for));
            }
        }
        None
    }

    fn put(&self, backend: SocketAddr, sender: SendRequest<UpstreamBody>) {
        if sender.is_closed() {
            return;
        }
        if let Ok(mut pools) = self.0.lock() {
            let idle = pools.entry(backend).or_default();
            if idle.len() < POOL_MAX {
                idle.push(Idle {
                    sender,
                    since: Instant::now(),
                });
            }
        }
    }

    /// Close connections idle for too long (those of backends that left
    /// the table, too).
    fn sweep(&self) {
        if let Ok(mut pools) = self.0.lock() {
            let now = Instant::now();
            pools.retain(|_, idle| {
                idle.retain(|e| !e.sender.is_closed() && now.duration_since(e.since) < POOL_IDLE);
                !idle.is_empty()
            });
        }
    }
}

/// A backend's response body; its connection returns to the pool once the
/// body was read to the end (a body dropped early closes it).
pub struct PooledBody {
    inner: Incoming,
    back: Option<(SendRequest<UpstreamBody>, SocketAddr, Arc<Pools>)>,
    backend: SocketAddr,
    /// Logged when the body is done with ([`access`]), when the log is on.
    record: Option<Box<access::Record>>,
}

impl Drop for PooledBody {
    fn drop(&mut self) {
        if let Some(record) = &self.record {
            record.emit();
        }
    }
}

impl PooledBody {
    /// The backend that answered.
    pub fn backend(&self) -> SocketAddr {
        self.backend
    }

    /// Log `record` once this body was sent (its bytes counted).
    pub fn log_when_done(&mut self, mut record: Box<access::Record>) {
        record.backend = Some(self.backend);
        self.record = Some(record);
    }

    fn release(&mut self) {
        if let Some((sender, backend, pools)) = self.back.take() {
            pools.put(backend, sender);
        }
    }
}

impl Body for PooledBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let (Poll::Ready(Some(Ok(frame))), Some(record)) = (&polled, &mut self.record) {
            if let Some(data) = frame.data_ref() {
                record.bytes += data.len() as u64;
            }
        }
        match &polled {
            Poll::Ready(None) => self.release(),
            Poll::Ready(Some(Ok(_))) if self.inner.is_end_stream() => self.release(),
            Poll::Ready(Some(Err(_))) => self.back = None,
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

pub struct Proxy {
    pools: Arc<Pools>,
}

impl Default for Proxy {
    fn default() -> Self {
        Proxy::new()
    }
}

async fn connect(backend: SocketAddr) -> Result<SendRequest<UpstreamBody>, BackendError> {
    let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(backend))
        .await
        .map_err(|_| BackendError::ConnectTimeout)?
        .map_err(BackendError::Connect)?;
    let _ = stream.set_nodelay(true);
    let (sender, connection) = http1::Builder::new()
        .handshake(TokioIo::new(stream))
        .await?;
    tokio::spawn(async move {
        if let Err(error) = connection.with_upgrades().await {
            tracing::debug!(%backend, %error, "A backend connection ended with an error.");
        }
    });
    Ok(sender)
}

/// The request target a backend gets: origin form (`/path?query`), as a
/// client's HTTP/1.1 request already has it; HTTP/2 and absolute-form
/// requests are rewritten.
fn origin_form(uri: &mut Uri) {
    if uri.scheme().is_none() && uri.authority().is_none() {
        return;
    }
    let path = uri
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"));
    *uri = Uri::from(path);
}

impl Proxy {
    pub fn new() -> Proxy {
        Proxy {
            pools: Arc::default(),
        }
    }

    /// Close idle connections kept too long; the router calls this now and
    /// then.
    pub fn sweep(&self) {
        self.pools.sweep();
    }

    /// Send `request` (headers already prepared) to a backend of `route`,
    /// which has at least one. A request of which nothing was written (the
    /// connection was refused, or a pooled one had closed) goes to the next
    /// backend, once; the request itself is kept for that, never copied.
    pub async fn send(
        &self,
        route: &Route,
        metrics: &AppMetrics,
        request: Request<Incoming>,
    ) -> Result<Response<PooledBody>, ProxyError> {
        let mut request = request;
        let started = Instant::now();
        // An HTTP/2 (or absolute-form) request travels as HTTP/1.1 in
        // origin form to the backend, which needs a Host header.
        if !request.headers().contains_key(HOST) {
            if let Some(value) = request
                .uri()
                .authority()
                .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
            {
                request.headers_mut().insert(HOST, value);
            }
        }
        if request.version() != Version::HTTP_11 && request.version() != Version::HTTP_10 {
            *request.version_mut() = Version::HTTP_11;
        }
        origin_form(request.uri_mut());
        let mut request = request.map(Either::Left);
        let idempotent = matches!(
            *request.method(),
            Method::GET | Method::HEAD | Method::OPTIONS
        ) && request.body().is_end_stream();

        let count = route.backends.len();
        let first = route.pick();
        let attempts = count.min(2);
        let mut failure = None;
        let mut stale_retried = false;
        for attempt in 0..attempts {
            let backend = route.backends[(first + attempt) % count];
            if attempt > 0 {
                metrics.retried();
                if let Some((failed, error)) = &failure {
                    tracing::debug!(app = %route.app, %failed, %backend, %error, "Retrying on another web process.");
                }
            }
            // Pooled connections first (one that closed meanwhile gives the
            // request back), then a new one.
            loop {
                let (mut sender, pooled, idle_for) = match self.pools.take(backend) {
                    Some((sender, idle_for)) => (sender, true, idle_for),
                    None => match connect(backend).await {
                        Ok(sender) => (sender, false, Duration::ZERO),
                        Err(error) => {
                            failure = Some((backend, error));
                            break;
                        }
                    },
                };
                if sender.ready().await.is_err() {
                    if pooled {
                        continue;
                    }
                    failure = Some((backend, BackendError::Connect(closed())));
                    break;
                }
                let spare = (idempotent && pooled && idle_for >= STALE_AFTER && !stale_retried)
                    .then(|| head_copy(&request));
                match sender.try_send_request(request).await {
                    Ok(response) => {
                        metrics.latency.observe(started.elapsed());
                        return Ok(self.pooled(response, sender, backend));
                    }
                    Err(mut error) => {
                        if let Some(unsent) = error.take_message() {
                            request = unsent;
                            if pooled {
                                continue;
                            }
                            failure = Some((backend, error.into_error().into()));
                            break;
                        }
                        // Sent on a connection that may have been closed by
                        // the app's keep-alive timeout meanwhile: once more,
                        // on a new connection.
                        match spare {
                            Some(spare) => {
                                tracing::debug!(app = %route.app, %backend, error = %error.error(), "Sending again on a new connection.");
                                metrics.retried();
                                stale_retried = true;
                                request = spare;
                                continue;
                            }
                            // Sent, at least in part: not repeated.
                            None => {
                                return Err(ProxyError::Unreachable {
                                    app: route.app.clone(),
                                    backend,
                                    source: error.into_error().into(),
                                })
                            }
                        }
                    }
                }
            }
        }
        let (backend, source) = failure.unwrap_or_else(|| {
            (
                route.backends[first % count],
                BackendError::Connect(closed()),
            )
        });
        Err(ProxyError::Unreachable {
            app: route.app.clone(),
            backend,
            source,
        })
    }

    fn pooled(
        &self,
        response: Response<Incoming>,
        sender: SendRequest<UpstreamBody>,
        backend: SocketAddr,
    ) -> Response<PooledBody> {
        // An upgraded connection belongs to the upgrade.
        let keep = response.status() != StatusCode::SWITCHING_PROTOCOLS;
        let mut response = response.map(|inner| PooledBody {
            inner,
            back: keep.then(|| (sender, backend, self.pools.clone())),
            backend,
            record: None,
        });
        if response.body().inner.is_end_stream() {
            response.body_mut().release();
        }
        response
    }
}

/// A body-less copy of a request's head.
fn head_copy(request: &Request<UpstreamBody>) -> Request<UpstreamBody> {
    let mut copy = Request::new(Either::Right(Empty::new()));
    *copy.method_mut() = request.method().clone();
    *copy.uri_mut() = request.uri().clone();
    *copy.version_mut() = request.version();
    *copy.headers_mut() = request.headers().clone();
    copy
}

fn closed() -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::ConnectionAborted,
        "the connection closed before the request was sent",
    )
}

/// Join the client's and the backend's upgraded connections and copy
/// bytes both ways until either side closes.
pub fn splice<B>(client: hyper::upgrade::OnUpgrade, backend: &mut Response<B>) {
    let backend = hyper::upgrade::on(backend);
    tokio::spawn(async move {
        let (client, backend) = match tokio::try_join!(client, backend) {
            Ok(both) => both,
            Err(error) => {
                tracing::debug!(%error, "An upgrade did not complete.");
                return;
            }
        };
        let mut client = TokioIo::new(client);
        let mut backend = TokioIo::new(backend);
        if let Err(error) = tokio::io::copy_bidirectional(&mut client, &mut backend).await {
            tracing::debug!(%error, "An upgraded connection ended with an error.");
        }
    });
}

/// Prepare a response from a backend for the client: hop-by-hop headers
/// stay on the backend's connection (a `Connection: close` from an
/// HTTP/1.0 backend must not close the client's).
pub fn prepare_response<B>(response: &mut Response<B>) {
    if response.status() != StatusCode::SWITCHING_PROTOCOLS {
        headers::strip_hop_by_hop(response.headers_mut(), false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_reach_backends_in_origin_form() {
        let mut uri: Uri = "http://myapp.localhost:8080/a/b?c=d".parse().unwrap();
        origin_form(&mut uri);
        assert_eq!(uri, "/a/b?c=d");
        let mut uri: Uri = "/kept?x".parse().unwrap();
        origin_form(&mut uri);
        assert_eq!(uri, "/kept?x");
        let mut uri: Uri = "http://myapp.localhost".parse().unwrap();
        origin_form(&mut uri);
        assert_eq!(uri, "/");
    }
}
