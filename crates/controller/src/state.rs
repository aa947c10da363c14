//! The state shared by every request handler.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use drycc_engine::Engine;
use drycc_store::Store;

use crate::settings::Settings;

pub struct AppState {
    pub store: Store,
    pub engine: Arc<dyn Engine>,
    pub settings: Settings,
    pub data_dir: PathBuf,
    /// Base URL of this controller's API, for the git hook's callback.
    pub api_url: String,
    /// Random secret that the git hook presents to the internal build
    /// endpoint; it never leaves this machine's process tree.
    pub hook_secret: String,
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
    ) -> AppState {
        AppState {
            store,
            engine,
            settings,
            data_dir,
            api_url,
            hook_secret,
            locks: Mutex::new(HashMap::new()),
        }
    }

    /// The lock that serialises deploys, scales and restarts of one app, so
    /// that two changes never interleave their rollouts.
    pub fn app_lock(&self, app: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = match self.locks.lock() {
            Ok(locks) => locks,
            Err(poisoned) => poisoned.into_inner(),
        };
        locks.entry(app.to_string()).or_default().clone()
    }

    pub fn repos_dir(&self) -> PathBuf {
        self.data_dir.join("repos")
    }

    pub fn slugs_dir(&self) -> PathBuf {
        self.data_dir.join("slugs")
    }
}

/// `%Y-%m-%dT%H:%M:%SZ`, the API's timestamp format.
pub fn timestamp(time: &chrono::DateTime<chrono::Utc>) -> String {
    time.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}
