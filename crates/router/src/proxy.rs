//! Sending a request to one of an app's backends: pooled keep-alive
//! connections, one retry on another backend when the request could not be
//! sent, and WebSocket (any `Upgrade`) pass-through.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{Either, Empty};
use hyper::body::{Body as _, Incoming};
use hyper::header::HOST;
use hyper::{Method, Request, Response, StatusCode, Uri, Version};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};

use crate::headers;
use crate::table::Route;

/// What goes to a backend: the client's body, or none (a retried request).
pub type UpstreamBody = Either<Incoming, Empty<Bytes>>;

/// How long an idle pooled connection to a backend is kept.
const POOL_IDLE: Duration = Duration::from_secs(60);

/// Why a request got no answer from the app.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("the request path is not valid: {0}")]
    BadPath(#[from] hyper::http::uri::InvalidUri),
    #[error("no web process of app {app} answered ({backend}): {source}")]
    Unreachable {
        app: String,
        backend: SocketAddr,
        #[source]
        source: hyper_util::client::legacy::Error,
    },
}

impl ProxyError {
    pub fn status(&self) -> StatusCode {
        match self {
            ProxyError::BadPath(_) => StatusCode::BAD_REQUEST,
            ProxyError::Unreachable { .. } => StatusCode::BAD_GATEWAY,
        }
    }
}

pub struct Proxy {
    client: Client<HttpConnector, UpstreamBody>,
}

impl Default for Proxy {
    fn default() -> Self {
        Proxy::new()
    }
}

impl Proxy {
    pub fn new() -> Proxy {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(Duration::from_secs(5)));
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(POOL_IDLE)
            .build(connector);
        Proxy { client }
    }

    /// Send `request` (headers already prepared) to a backend of `route`,
    /// which has at least one. A request that could not be sent is tried
    /// once more on the next backend when it has no body to lose.
    pub async fn send(
        &self,
        route: &Route,
        mut request: Request<Incoming>,
    ) -> Result<Response<Incoming>, ProxyError> {
        let count = route.backends.len();
        let first = route.pick();
        // HTTP/2 from the client travels as HTTP/1.1 to the backend, which
        // needs a Host header (h2 puts it in the URI).
        if request.version() != Version::HTTP_11 && request.version() != Version::HTTP_10 {
            if !request.headers().contains_key(HOST) {
                if let Some(value) = request
                    .uri()
                    .authority()
                    .and_then(|a| hyper::header::HeaderValue::from_str(a.as_str()).ok())
                {
                    request.headers_mut().insert(HOST, value);
                }
            }
            *request.version_mut() = Version::HTTP_11;
        }
        let path = request
            .uri()
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_string();
        let retry = (count > 1 && request.body().is_end_stream()).then(|| {
            let mut copy = Request::new(Empty::<Bytes>::new());
            *copy.method_mut() = request.method().clone();
            *copy.version_mut() = request.version();
            *copy.headers_mut() = request.headers().clone();
            copy
        });
        let idempotent = matches!(
            *request.method(),
            Method::GET | Method::HEAD | Method::OPTIONS
        );
        let backend = route.backends[first % count];
        *request.uri_mut() = backend_uri(backend, &path)?;
        let error = match self.client.request(request.map(Either::Left)).await {
            Ok(response) => return Ok(response),
            Err(error) => error,
        };
        // Connect refused: nothing was sent. A reset on an idempotent
        // request: sending it again does no harm.
        let Some(mut copy) = retry.filter(|_| error.is_connect() || idempotent) else {
            return Err(ProxyError::Unreachable {
                app: route.app.clone(),
                backend,
                source: error,
            });
        };
        tracing::debug!(app = %route.app, %backend, %error, "Retrying on another web process.");
        let backend = route.backends[(first + 1) % count];
        *copy.uri_mut() = backend_uri(backend, &path)?;
        self.client
            .request(copy.map(Either::Right))
            .await
            .map_err(|source| ProxyError::Unreachable {
                app: route.app.clone(),
                backend,
                source,
            })
    }
}

fn backend_uri(backend: SocketAddr, path: &str) -> Result<Uri, ProxyError> {
    Ok(format!("http://{backend}{path}").parse()?)
}

/// Join the client's and the backend's upgraded connections and copy
/// bytes both ways until either side closes.
pub fn splice(client: hyper::upgrade::OnUpgrade, backend: &mut Response<Incoming>) {
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
pub fn prepare_response(response: &mut Response<Incoming>) {
    if response.status() != StatusCode::SWITCHING_PROTOCOLS {
        headers::strip_hop_by_hop(response.headers_mut(), false);
    }
}
