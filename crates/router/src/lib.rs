//! The HTTP router: a request for `<app>.<domain>` goes to one of that
//! app's ready `web` processes, round robin. It knows nothing of engines:
//! it asks a [`Backends`] for the addresses of ready web processes on every
//! request, so a process taken out of service stops receiving traffic at once.

// Input from users, files and the network must never panic the program.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, HOST};
use hyper::{Request, Response, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

/// Where an app's ready web processes listen.
#[async_trait]
pub trait Backends: Send + Sync + 'static {
    /// `None` when no such app exists; an empty list when it has no ready
    /// web process.
    async fn web_backends(&self, app: &str) -> Option<Vec<SocketAddr>>;
}

type Body = BoxBody<Bytes, hyper::Error>;

pub struct Router {
    domain: String,
    backends: Arc<dyn Backends>,
    client: Client<hyper_util::client::legacy::connect::HttpConnector, Incoming>,
    next: AtomicUsize,
}

/// The app named by a `Host` header under `domain` (`myapp.localhost:8080`
/// -> `myapp`), if any.
pub fn app_from_host(host: &str, domain: &str) -> Option<String> {
    let host = host.rsplit_once(':').map_or(host, |(name, port)| {
        if port.bytes().all(|b| b.is_ascii_digit()) {
            name
        } else {
            host
        }
    });
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    let app = host.strip_suffix(&format!(".{}", domain.to_ascii_lowercase()))?;
    (!app.is_empty() && !app.contains('.')).then(|| app.to_string())
}

fn text(status: StatusCode, message: String) -> Response<Body> {
    let body = Full::new(Bytes::from(message + "\n"))
        .map_err(|never| match never {})
        .boxed();
    let mut response = Response::new(body);
    *response.status_mut() = status;
    response
}

impl Router {
    pub fn new(domain: String, backends: Arc<dyn Backends>) -> Arc<Router> {
        Arc::new(Router {
            domain,
            backends,
            client: Client::builder(TokioExecutor::new()).build_http(),
            next: AtomicUsize::new(0),
        })
    }

    /// Serve until `shutdown` resolves.
    pub async fn serve(
        self: Arc<Self>,
        listener: TcpListener,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) {
        tokio::pin!(shutdown);
        loop {
            let (stream, _) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        tracing::warn!(%error, "Router accept failed.");
                        continue;
                    }
                },
                _ = &mut shutdown => return,
            };
            let router = self.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |request| {
                    let router = router.clone();
                    async move { Ok::<_, Infallible>(router.route(request).await) }
                });
                let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                if let Err(error) = builder
                    .serve_connection_with_upgrades(TokioIo::new(stream), service)
                    .await
                {
                    tracing::debug!(%error, "Router connection ended with an error.");
                }
            });
        }
    }

    async fn route(&self, mut request: Request<Incoming>) -> Response<Body> {
        let host = request
            .headers()
            .get(HOST)
            .and_then(|h| h.to_str().ok())
            .or_else(|| request.uri().host())
            .unwrap_or_default()
            .to_string();
        let Some(app) = app_from_host(&host, &self.domain) else {
            return text(
                StatusCode::NOT_FOUND,
                format!("no app here: use http://<app>.{}/", self.domain),
            );
        };
        let Some(backends) = self.backends.web_backends(&app).await else {
            return text(StatusCode::NOT_FOUND, format!("app {app} not found"));
        };
        if backends.is_empty() {
            return text(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("app {app} has no ready web process: try `drycc scale web=1 -a {app}`"),
            );
        }
        let backend = backends[self.next.fetch_add(1, Ordering::Relaxed) % backends.len()];
        let path = request
            .uri()
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or_else(|| "/".into());
        let uri = match format!("http://{backend}{path}").parse() {
            Ok(uri) => uri,
            Err(_) => return text(StatusCode::BAD_REQUEST, "bad request path".into()),
        };
        *request.uri_mut() = uri;
        if let Ok(value) = HeaderValue::from_str(&host) {
            request.headers_mut().insert(HOST, value);
        }
        request
            .headers_mut()
            .insert("x-forwarded-proto", HeaderValue::from_static("http"));
        match self.client.request(request).await {
            Ok(response) => response.map(|body| body.boxed()),
            Err(error) => {
                tracing::warn!(%app, %backend, %error, "Router could not reach a web process.");
                text(
                    StatusCode::BAD_GATEWAY,
                    format!("app {app}: the web process did not answer"),
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_map_to_apps() {
        assert_eq!(
            app_from_host("myapp.localhost", "localhost").as_deref(),
            Some("myapp")
        );
        assert_eq!(
            app_from_host("myapp.localhost:8080", "localhost").as_deref(),
            Some("myapp")
        );
        assert_eq!(
            app_from_host("MyApp.LocalHost.", "localhost").as_deref(),
            Some("myapp")
        );
        assert_eq!(app_from_host("a.b.localhost", "localhost"), None);
        assert_eq!(app_from_host("localhost", "localhost"), None);
        assert_eq!(app_from_host("myapp.example.com", "localhost"), None);
        assert_eq!(
            app_from_host("myapp.example.com", "example.com").as_deref(),
            Some("myapp")
        );
    }
}
