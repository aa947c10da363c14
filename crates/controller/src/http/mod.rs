//! Everything the controller serves over HTTP: the REST API (`api`), the
//! dashboard, the git endpoints, the routing table's feed and the
//! metrics. Handlers call `service`; `error` turns its answers into
//! statuses.

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::routing::{any, post};
use axum::Router;

use crate::service::limits::Slots;
use crate::service::login_limit::LoginLimiter;
use crate::service::Service;

pub mod api;
pub mod dashboard;
pub mod error;
pub mod extract;
pub mod git;
pub mod limits;
pub mod metrics;
pub mod router_feed;

/// What the handlers share: the services and what only HTTP needs.
pub struct HttpState {
    pub service: Arc<Service>,
    /// Failed logins per username and address (in memory).
    pub login_limiter: LoginLimiter,
    /// Base URL of this controller's API, for the git hook's callback.
    pub api_url: String,
    /// Random secret that the git hook presents to the internal build
    /// endpoint; it never leaves this machine's process tree.
    pub hook_secret: String,
    /// What a standalone router presents to follow the routing table.
    pub router_secret: String,
    /// The embedded router's counters, served on `GET /metrics`.
    pub router_metrics: Arc<drycc_router::Metrics>,
    /// Open exec sessions per user (`DRYCC_MAX_EXEC_SESSIONS_PER_USER`).
    pub exec_sessions: Slots,
    /// Pushes in progress per app (`DRYCC_MAX_PUSHES_PER_APP`).
    pub pushes: Slots,
    /// The WebSocket sessions (exec, logs), which outlive the request that
    /// upgraded; ended by `closing` and waited for when the controller
    /// stops.
    pub sessions: tokio_util::task::TaskTracker,
    pub closing: tokio_util::sync::CancellationToken,
}

pub type Shared = Arc<HttpState>;

impl std::ops::Deref for HttpState {
    type Target = Service;

    fn deref(&self) -> &Service {
        &self.service
    }
}

impl HttpState {
    pub fn new(
        service: Arc<Service>,
        api_url: String,
        hook_secret: String,
        router_secret: String,
        router_metrics: Arc<drycc_router::Metrics>,
    ) -> HttpState {
        let settings = &service.settings;
        let login_limiter = LoginLimiter::new(
            settings.login_window(),
            settings.login_max_failures,
            settings.login_max_failures_per_address,
        );
        HttpState {
            service,
            login_limiter,
            api_url,
            hook_secret,
            router_secret,
            router_metrics,
            exec_sessions: Slots::default(),
            pushes: Slots::default(),
            sessions: tokio_util::task::TaskTracker::new(),
            closing: tokio_util::sync::CancellationToken::new(),
        }
    }

    /// Run a WebSocket session until it ends or the controller closes.
    pub fn session(
        &self,
        session: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> impl std::future::Future<Output = ()> + Send + 'static {
        let closing = self.closing.clone();
        self.sessions.track_future(async move {
            tokio::select! {
                () = session => {}
                () = closing.cancelled() => {}
            }
        })
    }

    /// The largest request body the API reads (`DRYCC_MAX_BODY_KIB`).
    pub fn body_bytes(&self) -> usize {
        usize::try_from(self.settings.max_body_kib)
            .unwrap_or(usize::MAX)
            .saturating_mul(1024)
    }
}

/// Every route the controller serves on its API port.
pub fn router(state: Shared) -> Router {
    let git = Router::new()
        .route("/git/{repo}/{*rest}", any(git::cgi::serve))
        .route("/internal/git/build", post(git::build::build))
        .route(
            drycc_router::follow::ROUTES_PATH,
            axum::routing::get(router_feed::stream),
        )
        .layer(DefaultBodyLimit::disable())
        .with_state(state.clone());
    api::router(state.clone())
        .merge(git)
        .merge(dashboard::router(state))
}
