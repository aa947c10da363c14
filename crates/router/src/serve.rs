//! The server side: accept connections (plain, or TLS with the table's
//! certificates), read requests (bounded headers, a header read timeout),
//! find the app in the current table and hand the request to the proxy.

use std::cell::RefCell;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{Either, Full};
use hyper::body::Body as _;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE, HOST};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use crate::access;
use crate::headers::{self, Peer, RequestIds};
use crate::metrics::Metrics;
use crate::proxy::{self, PooledBody, Proxy};
use crate::table::{Lookup, Route, RouteTable};

/// What the router sends to clients.
pub type ClientBody = Either<PooledBody, Full<Bytes>>;

/// The smallest header buffer hyper accepts.
const MIN_HEADER_BYTES: usize = 8192;

/// How often idle backend connections kept too long are closed.
const SWEEP: Duration = Duration::from_secs(15);

#[derive(Clone, Debug)]
pub struct Config {
    /// A client that has not sent a whole request head by then is
    /// disconnected.
    pub header_read_timeout: Duration,
    /// A request head larger than this gets 431 (at least 8 KiB).
    pub max_header_bytes: usize,
    /// `X-Forwarded-Proto` of plain connections (TLS ones say `https`).
    pub proto: &'static str,
    /// The counters every router thread adds to.
    pub metrics: Arc<Metrics>,
    /// Answer `GET /metrics` for a host that is no app's (the standalone
    /// router; the controller serves them on its API port).
    pub metrics_on_other_hosts: bool,
    /// One log line per request ([`crate::access`]).
    pub access_log: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            header_read_timeout: Duration::from_secs(30),
            max_header_bytes: 64 * 1024,
            proto: "http",
            metrics: Arc::default(),
            metrics_on_other_hosts: false,
            access_log: false,
        }
    }
}

/// The router: a table to read and a pool of backend connections.
pub struct Router {
    table: watch::Receiver<Arc<RouteTable>>,
    proxy: Proxy,
    ids: RequestIds,
    config: Config,
}

fn text(status: StatusCode, message: String) -> Response<ClientBody> {
    let mut response = Response::new(Either::Right(Full::new(Bytes::from(message + "\n"))));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// The host a request is for: its `Host` header, else its URI's (HTTP/2).
fn host_of(request: &Request<Incoming>) -> &str {
    request
        .headers()
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| request.uri().host())
        .unwrap_or_default()
}

fn metrics_page(metrics: &Metrics) -> Response<ClientBody> {
    let mut response = Response::new(Either::Right(Full::new(Bytes::from(metrics.render()))));
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}

/// The current table of one connection: refreshed from the watch only
/// when a new one was published, so a request reads it without a lock.
struct Snapshot {
    receiver: watch::Receiver<Arc<RouteTable>>,
    table: Arc<RouteTable>,
}

impl Snapshot {
    fn current(&mut self) -> Arc<RouteTable> {
        if self.receiver.has_changed().unwrap_or(false) {
            self.table = self.receiver.borrow_and_update().clone();
        }
        self.table.clone()
    }
}

impl Router {
    pub fn new(table: watch::Receiver<Arc<RouteTable>>, config: Config) -> Arc<Router> {
        Arc::new(Router {
            table,
            proxy: Proxy::new(),
            ids: RequestIds::new(rand::random()),
            config,
        })
    }

    /// Serve until `shutdown` resolves.
    pub async fn serve(
        self: Arc<Self>,
        listener: TcpListener,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) {
        self.serve_with(listener, None, shutdown).await
    }

    /// Serve TLS connections (certificates by SNI, [`crate::tls`]) until
    /// `shutdown` resolves. A handshake gets the header read timeout.
    pub async fn serve_tls(
        self: Arc<Self>,
        listener: TcpListener,
        tls: Arc<rustls::ServerConfig>,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) {
        self.serve_with(listener, Some(TlsAcceptor::from(tls)), shutdown)
            .await
    }

    async fn serve_with(
        self: Arc<Self>,
        listener: TcpListener,
        tls: Option<TlsAcceptor>,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) {
        tokio::pin!(shutdown);
        let mut sweep = tokio::time::interval(SWEEP);
        loop {
            let (stream, client) = tokio::select! {
                _ = sweep.tick() => {
                    self.proxy.sweep();
                    continue;
                }
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        tracing::warn!(%error, "Router accept failed.");
                        // Out of descriptors, typically: let some close.
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                },
                _ = &mut shutdown => return,
            };
            let _ = stream.set_nodelay(true);
            let port = stream.local_addr().map_or(0, |a| a.port());
            match &tls {
                None => {
                    tokio::spawn(
                        self.clone()
                            .connection(stream, client, port, self.config.proto),
                    );
                }
                Some(acceptor) => {
                    tokio::spawn(self.clone().tls_connection(
                        acceptor.clone(),
                        stream,
                        client,
                        port,
                    ));
                }
            }
        }
    }

    async fn tls_connection(
        self: Arc<Self>,
        acceptor: TlsAcceptor,
        stream: TcpStream,
        client: SocketAddr,
        port: u16,
    ) {
        let timeout = self.config.header_read_timeout;
        match tokio::time::timeout(timeout, acceptor.accept(stream)).await {
            Ok(Ok(stream)) => self.connection(stream, client, port, "https").await,
            Ok(Err(error)) => tracing::debug!(%error, "TLS handshake failed."),
            Err(_) => tracing::debug!("TLS handshake timed out."),
        }
    }

    async fn connection<S>(
        self: Arc<Self>,
        stream: S,
        client: SocketAddr,
        port: u16,
        proto: &'static str,
    ) where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let peer = Arc::new(Peer::new(client.ip(), port, proto));
        let mut receiver = self.table.clone();
        let table = receiver.borrow_and_update().clone();
        let snapshot = RefCell::new(Snapshot { receiver, table });
        let router = self.clone();
        let service = hyper::service::service_fn(move |request| {
            let table = snapshot.borrow_mut().current();
            let router = router.clone();
            let peer = peer.clone();
            async move {
                if !router.config.access_log {
                    return Ok::<_, Infallible>(router.route(&table, request, &peer).await);
                }
                let mut record = Box::new(access::Record {
                    method: request.method().clone(),
                    host: host_of(&request).to_string(),
                    path: request.uri().path_and_query().cloned(),
                    status: 0,
                    bytes: 0,
                    backend: None,
                    started: tokio::time::Instant::now(),
                });
                let mut response = router.route(&table, request, &peer).await;
                record.status = response.status().as_u16();
                match response.body_mut() {
                    Either::Left(pooled) => pooled.log_when_done(record),
                    Either::Right(full) => {
                        record.bytes = full.size_hint().exact().unwrap_or(0);
                        record.emit();
                    }
                }
                Ok(response)
            }
        });
        let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(self.config.header_read_timeout)
            .max_buf_size(self.config.max_header_bytes.max(MIN_HEADER_BYTES));
        if let Err(error) = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), service)
            .await
        {
            tracing::debug!(%error, "Router connection ended with an error.");
        }
    }

    async fn route(
        &self,
        table: &RouteTable,
        request: Request<Incoming>,
        peer: &Peer,
    ) -> Response<ClientBody> {
        let host = host_of(&request);
        let metrics = &self.config.metrics;
        let found = table.lookup(host);
        if !matches!(found, Lookup::Found(_))
            && self.config.metrics_on_other_hosts
            && request.uri().path() == "/metrics"
            && request.method() == hyper::Method::GET
        {
            return metrics_page(metrics);
        }
        let route = match found {
            Lookup::Found(route) => route,
            Lookup::Unknown(host) => {
                metrics.unknown_host();
                return text(StatusCode::NOT_FOUND, format!("no app answers on {host}"));
            }
            Lookup::NotLoaded => {
                metrics.not_loaded();
                return text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the router has not received its routing table yet".into(),
                );
            }
        };
        let counters = metrics.app(route);
        let response = self.forward(route, request, peer).await;
        counters.answered(response.status().as_u16());
        response
    }

    async fn forward(
        &self,
        route: &Route,
        mut request: Request<Incoming>,
        peer: &Peer,
    ) -> Response<ClientBody> {
        if !route.routable {
            return text(
                StatusCode::NOT_FOUND,
                format!(
                    "app {} is not routable: `drycc routing:enable -a {}` lets traffic in",
                    route.app, route.app
                ),
            );
        }
        if route.backends.is_empty() {
            return text(
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "app {} has no ready web process: try `drycc scale web=1 -a {}`",
                    route.app, route.app
                ),
            );
        }
        let upgrade =
            headers::is_upgrade(request.headers()).then(|| hyper::upgrade::on(&mut request));
        headers::strip_hop_by_hop(request.headers_mut(), upgrade.is_some());
        headers::forward(request.headers_mut(), peer, &self.ids);
        match self
            .proxy
            .send(route, self.config.metrics.app(route), request)
            .await
        {
            Ok(mut response) => {
                if response.status() == StatusCode::SWITCHING_PROTOCOLS {
                    if let Some(client) = upgrade {
                        proxy::splice(client, &mut response);
                    }
                }
                proxy::prepare_response(&mut response);
                response.map(Either::Left)
            }
            Err(error) => {
                tracing::warn!(app = %route.app, %error, "Router could not reach a web process.");
                let message = match &error {
                    proxy::ProxyError::Unreachable { app, .. } => {
                        format!("app {app}: no web process answered")
                    }
                };
                text(error.status(), message)
            }
        }
    }
}
