//! What a user, or a loop, can ask of the platform: access to an app,
//! scale, restart, rollouts and their waits, settings, usage, limits and
//! builds. A service validates, writes desired state in one store
//! transaction under the app's lock, hands the app to the reconciler and
//! waits for the outcome; it answers with [`ServiceError`], never an HTTP
//! type (`http::error` maps it).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::context::Context;
use crate::reconciler::Reconciler;
use crate::role::Role;

pub mod access;
pub mod apps;
pub mod autoscale;
pub mod build;
pub mod config;
mod error;
pub mod image_build;
pub mod limits;
pub mod login_limit;
pub mod restart;
pub mod rollout;
pub mod routes;
pub mod scale;
pub mod settings;
pub mod usage;
pub mod wait;

#[cfg(test)]
mod passes;

pub use error::{engine_message, DeployError, ServiceError, ServiceResult};

/// The context and the handles the services share. Built whole in
/// `server.rs`.
pub struct Service {
    pub ctx: Arc<Context>,
    /// The reconciler's queue and status watches.
    pub reconciler: Reconciler,
    /// The routing table's publisher, which waits can sync with.
    pub routes: Arc<routes::RoutePublisher>,
    /// Whether this controller leads (runs the reconciler and the
    /// autoscaler) and who does.
    pub role: watch::Receiver<Role>,
    /// Cancelled when the controller starts to stop: requests waiting for
    /// an outcome answer at once instead of holding the shutdown up.
    pub stopping: CancellationToken,
    /// The processes' CPU and memory, sampled for every reader alike.
    pub usage: usage::Usage,
    /// The autoscaler's memory: last rescales and decisions per type.
    pub autoscale: Arc<autoscale::Memory>,
    /// What builds images: a Docker engine, when one is reachable, and the
    /// reader of image configs.
    pub images: Images,
    /// Work a request started that outlives it (a push's build and
    /// release), waited for when the controller stops.
    pub tasks: tokio_util::task::TaskTracker,
    locks: AppLocks,
}

/// The Docker engine that builds Dockerfile apps and slug images, when one
/// is reachable, and the reader of image configs (the Docker engine's
/// copy, else the registry).
pub struct Images {
    pub docker: Option<drycc_images::bollard::Docker>,
    pub inspector: drycc_images::Inspector,
}

impl Images {
    pub fn new(docker: Option<drycc_images::bollard::Docker>) -> Images {
        Images {
            inspector: drycc_images::Inspector::new(docker.clone()),
            docker,
        }
    }
}

impl std::ops::Deref for Service {
    type Target = Context;

    fn deref(&self) -> &Context {
        &self.ctx
    }
}

impl Service {
    pub fn new(
        ctx: Arc<Context>,
        reconciler: Reconciler,
        routes: Arc<routes::RoutePublisher>,
        role: watch::Receiver<Role>,
        images: Images,
    ) -> Service {
        Service {
            ctx,
            reconciler,
            routes,
            role,
            stopping: CancellationToken::new(),
            usage: Default::default(),
            autoscale: Default::default(),
            images,
            tasks: tokio_util::task::TaskTracker::new(),
            locks: AppLocks::default(),
        }
    }

    /// This controller applies desired state to the engine now.
    pub fn leading(&self) -> bool {
        self.role.borrow().leader
    }

    /// The lock that serialises the validate-then-write step of changes to
    /// one app's desired state (never held while waiting for the engine).
    pub fn app_lock(&self, app: &str) -> Arc<tokio::sync::Mutex<()>> {
        self.locks.get(app)
    }

    /// Drop the lock of a destroyed app, so the map does not grow without
    /// bound. A request still holding it keeps its own reference.
    pub fn forget_app_lock(&self, app: &str) {
        self.locks.forget(app)
    }
}

/// One lock per app, made on first use.
#[derive(Default)]
struct AppLocks(Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>);

impl AppLocks {
    fn locked(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<tokio::sync::Mutex<()>>>> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn get(&self, app: &str) -> Arc<tokio::sync::Mutex<()>> {
        self.locked().entry(app.to_string()).or_default().clone()
    }

    fn forget(&self, app: &str) {
        self.locked().remove(app);
    }
}
