//! The state shared by every request handler.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use drycc_engine::Engine;
use drycc_store::Store;

use crate::reconciler::Reconciler;
use crate::routes::RoutePublisher;
use crate::settings::Settings;

pub struct AppState {
    pub store: Store,
    pub engine: Arc<dyn Engine>,
    pub settings: Settings,
    pub data_dir: PathBuf,
    /// Whether each app's processes run as the app's own user (the
    /// controller runs as root; see `isolation`).
    pub isolation: bool,
    /// Base URL of this controller's API, for the git hook's callback.
    pub api_url: String,
    /// Random secret that the git hook presents to the internal build
    /// endpoint; it never leaves this machine's process tree.
    pub hook_secret: String,
    /// The work queue of the reconciler and its status watches.
    pub reconciler: Reconciler,
    /// The Docker engine that builds Dockerfile apps, when one is reachable.
    pub docker: Option<drycc_images::bollard::Docker>,
    /// Reads image configs (the Docker engine's copy, else the registry).
    pub images: drycc_images::Inspector,
    /// Platform events of the apps, shown in their logs.
    pub events: crate::events::Events,
    /// The autoscaler's memory: last rescales and decisions per type.
    pub autoscaler: crate::autoscaler::Autoscaler,
    /// The processes' CPU and memory, sampled for every reader alike.
    pub usage: crate::usage::Usage,
    /// Failed logins per username and address (in memory).
    pub login_limiter: crate::login_limit::LoginLimiter,
    /// The routing table, pushed to the router.
    pub routes: RoutePublisher,
    /// What a standalone router presents to follow the routing table.
    pub router_secret: String,
    /// The embedded router's counters, served on `GET /metrics`.
    pub router_metrics: Arc<drycc_router::Metrics>,
    /// Cancelled when the controller starts to stop: requests waiting for
    /// an outcome answer at once instead of holding the shutdown up.
    pub stopping: tokio_util::sync::CancellationToken,
    /// Whether this controller leads (runs the reconciler and the
    /// autoscaler) and who does; see [`crate::leader`].
    pub role: tokio::sync::watch::Receiver<crate::leader::Role>,
    /// Open exec sessions per user (`DRYCC_MAX_EXEC_SESSIONS_PER_USER`).
    pub exec_sessions: crate::limits::Slots,
    /// Pushes in progress per app (`DRYCC_MAX_PUSHES_PER_APP`).
    pub pushes: crate::limits::Slots,
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

pub type Shared = Arc<AppState>;

impl AppState {
    pub fn new(
        store: Store,
        engine: Arc<dyn Engine>,
        settings: Settings,
        data_dir: PathBuf,
        api_url: String,
        hook_secret: String,
        router_secret: String,
    ) -> AppState {
        let login_limiter = crate::login_limit::LoginLimiter::new(
            settings.login_window(),
            settings.login_max_failures,
            settings.login_max_failures_per_address,
        );
        AppState {
            store,
            engine,
            settings,
            data_dir,
            isolation: crate::isolation::enabled(),
            api_url,
            hook_secret,
            reconciler: Reconciler::new(),
            events: Default::default(),
            images: drycc_images::Inspector::new(None),
            docker: None,
            autoscaler: Default::default(),
            usage: Default::default(),
            login_limiter,
            routes: RoutePublisher::new(),
            router_secret,
            router_metrics: Arc::default(),
            stopping: tokio_util::sync::CancellationToken::new(),
            role: crate::leader::sole_leader("drycc-controller"),
            exec_sessions: Default::default(),
            pushes: Default::default(),
            locks: Mutex::new(HashMap::new()),
        }
    }

    /// This controller applies desired state to the engine now.
    pub fn leading(&self) -> bool {
        self.role.borrow().leader
    }

    /// Record a platform event of `app` (shown in its logs).
    pub async fn event(&self, app: &str, text: &str) {
        self.events.record(&self.store, app, text).await;
    }

    /// The lock that serialises the validate-then-write step of changes to
    /// one app's desired state (never held while waiting for the engine).
    pub fn app_lock(&self, app: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = match self.locks.lock() {
            Ok(locks) => locks,
            Err(poisoned) => poisoned.into_inner(),
        };
        locks.entry(app.to_string()).or_default().clone()
    }

    /// Drop the lock of a destroyed app, so the map does not grow without
    /// bound. A request still holding it keeps its own reference.
    pub fn forget_app_lock(&self, app: &str) {
        let mut locks = match self.locks.lock() {
            Ok(locks) => locks,
            Err(poisoned) => poisoned.into_inner(),
        };
        locks.remove(app);
    }

    pub fn repos_dir(&self) -> PathBuf {
        self.data_dir.join("repos")
    }

    /// The private homes of apps that run as their own user, `<app>`.
    pub fn homes_dir(&self) -> PathBuf {
        self.data_dir.join("homes")
    }

    /// The user the processes of `app` run as (`None`: the controller's).
    pub fn run_as(&self, app: &drycc_store::App) -> Option<drycc_engine::RunAs> {
        crate::isolation::run_as(self.isolation, app)
    }

    /// Compiled slugs, `<app>/<slug>` (see `deploy::slug_dir`).
    pub fn slugs_dir(&self) -> PathBuf {
        self.data_dir.join("slugs")
    }

    /// Pushed commits extracted by the git hook, `<app>/<sha>`, until a
    /// build moves them into a slug.
    pub fn checkouts_dir(&self) -> PathBuf {
        self.data_dir.join("checkouts")
    }

    /// The per-app build caches, `<app>`, kept between pushes.
    pub fn cache_dir(&self) -> PathBuf {
        self.data_dir.join("cache")
    }

    /// The built-in buildpacks, written at start.
    pub fn buildpacks_dir(&self) -> PathBuf {
        self.settings
            .buildpacks_dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("buildpacks"))
    }

    /// Fetched buildpacks, one directory per URL and ref.
    pub fn fetched_buildpacks_dir(&self) -> PathBuf {
        self.data_dir.join("buildpacks-fetched")
    }
}

/// `%Y-%m-%dT%H:%M:%SZ`, the API's timestamp format.
pub fn timestamp(time: &chrono::DateTime<chrono::Utc>) -> String {
    time.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}
