//! The context every layer reads: the store, the engine, the settings, the
//! data directory's paths and the app's platform events. Built whole, once,
//! in `server.rs`; nothing in it is set later.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use drycc_engine::Engine;
use drycc_store::Store;

use crate::events::Events;
use crate::settings::Settings;

pub struct Context {
    pub store: Store,
    pub engine: Arc<dyn Engine>,
    pub settings: Settings,
    pub paths: Paths,
    /// Platform events of the apps, shown in their logs.
    pub events: Events,
    /// Whether each app's processes run as the app's own user (the
    /// controller runs as root; see `isolation`).
    pub isolation: bool,
}

impl Context {
    pub fn new(
        store: Store,
        engine: Arc<dyn Engine>,
        settings: Settings,
        data_dir: PathBuf,
        isolation: bool,
    ) -> Context {
        let paths = Paths::new(data_dir, settings.buildpacks_dir.clone());
        Context {
            store,
            engine,
            settings,
            paths,
            events: Events::default(),
            isolation,
        }
    }

    /// Record a platform event of `app` (shown in its logs).
    pub async fn event(&self, app: &str, text: &str) {
        self.events.record(&self.store, app, text).await;
    }

    /// The user the processes of `app` run as (`None`: the controller's).
    pub fn run_as(&self, app: &drycc_store::App) -> Option<drycc_engine::RunAs> {
        crate::isolation::run_as(self.isolation, app)
    }
}

/// Where the controller keeps what it owns, under the data directory.
#[derive(Clone, Debug)]
pub struct Paths {
    data: PathBuf,
    buildpacks: PathBuf,
}

impl Paths {
    /// The paths under `data`; built-in buildpacks in `buildpacks` when
    /// given (`DRYCC_BUILDPACKS_DIR`).
    pub fn new(data: PathBuf, buildpacks: Option<PathBuf>) -> Paths {
        let buildpacks = buildpacks.unwrap_or_else(|| data.join("buildpacks"));
        Paths { data, buildpacks }
    }

    pub fn data(&self) -> &Path {
        &self.data
    }

    /// The bare repositories, `<app>.git`.
    pub fn repos(&self) -> PathBuf {
        self.data.join("repos")
    }

    /// The private homes of apps that run as their own user, `<app>`.
    pub fn homes(&self) -> PathBuf {
        self.data.join("homes")
    }

    /// Compiled slugs, `<app>/<slug>` (see `desired::slug_dir`).
    pub fn slugs(&self) -> PathBuf {
        self.data.join("slugs")
    }

    /// Pushed commits extracted by the git hook, `<app>/<sha>`, until a
    /// build moves them into a slug.
    pub fn checkouts(&self) -> PathBuf {
        self.data.join("checkouts")
    }

    /// The per-app build caches, `<app>`, kept between pushes.
    pub fn cache(&self) -> PathBuf {
        self.data.join("cache")
    }

    /// Scratch directories of builds.
    pub fn tmp(&self) -> PathBuf {
        self.data.join("tmp")
    }

    /// The built-in buildpacks, written at start.
    pub fn buildpacks(&self) -> PathBuf {
        self.buildpacks.clone()
    }

    /// Fetched buildpacks, one directory per URL and ref.
    pub fn fetched_buildpacks(&self) -> PathBuf {
        self.data.join("buildpacks-fetched")
    }
}

/// `%Y-%m-%dT%H:%M:%SZ`, the API's timestamp format.
pub fn timestamp(time: &chrono::DateTime<chrono::Utc>) -> String {
    time.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}
