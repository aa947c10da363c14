//! The rows of the store as Rust values, and the inputs that create them.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A user account. `password_hash` is whatever the caller stored (argon2 PHC
/// string); the store never sees a password.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// UUID string.
    pub id: String,
    pub username: String,
    pub email: String,
    pub is_superuser: bool,
    pub password_hash: String,
    pub created: DateTime<Utc>,
}

/// An API token as the store knows it (only its hash is kept), with the
/// user it belongs to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Token {
    pub user: User,
    pub created: DateTime<Utc>,
    /// When it stops being accepted; `None` for tokens issued before
    /// tokens expired (the caller decides from `created`).
    pub expires: Option<DateTime<Utc>>,
}

/// An application. `id` is its name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct App {
    pub uuid: String,
    pub id: String,
    /// Username of the owner.
    pub owner: String,
    /// Desired process count per type.
    pub structure: BTreeMap<String, u32>,
    /// Per type, a counter bumped by every restart request; the reconciler
    /// replaces processes whose generation is older.
    pub restart_generations: BTreeMap<String, u64>,
    /// The app's own user and group id (its processes run as it); `None`
    /// only for an app created before ids existed, until the controller
    /// gives it one ([`crate::Store::assign_missing_app_uids`]).
    pub uid: Option<u32>,
    pub created: DateTime<Utc>,
    pub updated: DateTime<Utc>,
}

/// What was deployed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Build {
    pub uuid: String,
    pub app: String,
    pub owner: String,
    pub image: String,
    pub stack: String,
    pub sha: String,
    /// Process type -> command.
    pub procfile: BTreeMap<String, String>,
    pub dockerfile: String,
    /// The image's config (JSON, read by the controller) of an image build.
    pub image_config: Option<serde_json::Value>,
    pub created: DateTime<Utc>,
    pub updated: DateTime<Utc>,
}

/// The configuration of one release.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Config {
    pub uuid: String,
    pub app: String,
    pub owner: String,
    /// Environment values.
    pub values: BTreeMap<String, String>,
    /// Process type -> CPU limit (`"500m"`).
    pub cpu: BTreeMap<String, String>,
    /// Process type -> memory limit (`"512M"`).
    pub memory: BTreeMap<String, String>,
    /// `{type: {livenessProbe?, readinessProbe?}}`, kept as the API sent it.
    pub healthcheck: serde_json::Value,
    /// Process type -> seconds.
    pub termination_grace_period: BTreeMap<String, u64>,
    pub tags: BTreeMap<String, String>,
    /// Private image registry credentials (`username`, `password`).
    pub registry: BTreeMap<String, String>,
    pub created: DateTime<Utc>,
    pub updated: DateTime<Utc>,
}

/// An immutable (build, config) pair with a dense version number.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Release {
    pub uuid: String,
    pub app: String,
    pub owner: String,
    pub version: u32,
    pub summary: String,
    /// `None` for v1 and for every release before the first build.
    pub build: Option<Build>,
    pub config: Config,
    /// Where the rollout of this release stands; `failed` and `exception`
    /// are what the API shows of it.
    pub state: ReleaseState,
    pub failed: bool,
    pub exception: String,
    /// The app's structure before this release replaced it (deploys and
    /// rollbacks); restored if the release fails. `None`: kept as it was.
    pub previous_structure: Option<BTreeMap<String, u32>>,
    pub created: DateTime<Utc>,
    pub updated: DateTime<Utc>,
}

/// The rollout state of a release. Only the reconciler moves a release out
/// of `Pending`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReleaseState {
    /// Written as desired state; its rollout has not been judged yet.
    Pending,
    /// Every process of it became ready: a good release to return to.
    Succeeded,
    /// It did not roll out (or was superseded before it did).
    Failed,
}

impl ReleaseState {
    /// The value of the `state` column.
    pub fn as_str(self) -> &'static str {
        match self {
            ReleaseState::Pending => "pending",
            ReleaseState::Succeeded => "succeeded",
            ReleaseState::Failed => "failed",
        }
    }

    /// The state named by a `state` column value.
    pub fn parse(text: &str) -> Option<ReleaseState> {
        match text {
            "pending" => Some(ReleaseState::Pending),
            "succeeded" => Some(ReleaseState::Succeeded),
            "failed" => Some(ReleaseState::Failed),
            _ => None,
        }
    }
}

/// Per-app settings that do not create releases.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settings {
    pub uuid: String,
    pub app: String,
    pub owner: String,
    /// Process type -> autoscale rule (`{"min", "max", "cpu_percent"}`), kept
    /// as JSON so the rule's shape belongs to the model crate.
    pub autoscale: BTreeMap<String, serde_json::Value>,
    pub routable: bool,
    pub created: DateTime<Utc>,
    pub updated: DateTime<Utc>,
}

/// A custom domain of an app: the router answers for it as for the app's
/// own host.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Domain {
    pub uuid: String,
    pub app: String,
    /// Username of whoever added it.
    pub owner: String,
    /// Lower-case DNS name.
    pub domain: String,
    /// The name of the TLS certificate attached to it, if any.
    pub certificate: Option<String>,
    pub created: DateTime<Utc>,
    pub updated: DateTime<Utc>,
}

/// A TLS certificate: a PEM chain and its private key, owned by the user
/// who added it. `Debug` never prints the key.
#[derive(Clone, PartialEq, Eq)]
pub struct Cert {
    pub uuid: String,
    pub name: String,
    /// Username of whoever added it.
    pub owner: String,
    /// PEM chain, leaf first.
    pub certificate: String,
    /// PEM private key: for the router only, never shown back.
    pub key: String,
    /// The domains it is attached to, sorted.
    pub domains: Vec<String>,
    pub created: DateTime<Utc>,
    pub updated: DateTime<Utc>,
}

impl std::fmt::Debug for Cert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cert")
            .field("name", &self.name)
            .field("owner", &self.owner)
            .field("domains", &self.domains)
            .finish_non_exhaustive()
    }
}

/// A build to create together with a release. Its owner is the release's.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewBuild {
    pub image: String,
    pub stack: String,
    pub sha: String,
    pub procfile: BTreeMap<String, String>,
    pub dockerfile: String,
    pub image_config: Option<serde_json::Value>,
}

/// Which build a new release points at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BuildRef {
    /// An existing build of the same app, by uuid (`None`: no build, as v1).
    Keep(Option<String>),
    /// A build row created in the same transaction as the release.
    New(NewBuild),
}

/// The full configuration of a new release; the caller has already merged
/// the user's partial update into the previous config.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewConfig {
    pub values: BTreeMap<String, String>,
    pub cpu: BTreeMap<String, String>,
    pub memory: BTreeMap<String, String>,
    pub healthcheck: serde_json::Value,
    pub termination_grace_period: BTreeMap<String, u64>,
    pub tags: BTreeMap<String, String>,
    pub registry: BTreeMap<String, String>,
}

impl Default for NewConfig {
    fn default() -> Self {
        NewConfig {
            values: BTreeMap::new(),
            cpu: BTreeMap::new(),
            memory: BTreeMap::new(),
            healthcheck: serde_json::Value::Object(serde_json::Map::new()),
            termination_grace_period: BTreeMap::new(),
            tags: BTreeMap::new(),
            registry: BTreeMap::new(),
        }
    }
}

impl From<&Config> for NewConfig {
    /// The same configuration, for a release that changes only the build (a
    /// deploy) or restores an old pair (a rollback).
    fn from(c: &Config) -> Self {
        NewConfig {
            values: c.values.clone(),
            cpu: c.cpu.clone(),
            memory: c.memory.clone(),
            healthcheck: c.healthcheck.clone(),
            termination_grace_period: c.termination_grace_period.clone(),
            tags: c.tags.clone(),
            registry: c.registry.clone(),
        }
    }
}

/// Everything [`Store::create_release`](crate::Store::create_release) needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewRelease {
    /// Username recorded as the owner of the release (and of its new rows).
    pub owner: String,
    pub summary: String,
    pub build: BuildRef,
    pub config: NewConfig,
    /// When set, replaces the app's structure in the same transaction.
    pub structure: Option<BTreeMap<String, u32>>,
}
