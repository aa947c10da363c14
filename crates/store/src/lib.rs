//! Persistence of the Drycc controller: users, API tokens, apps, builds,
//! configs, releases, settings, app permissions, custom domains and TLS
//! certificates.
//!
//! One [`Store`] type serves SQLite (the default, one file in the data
//! directory, WAL mode) and PostgreSQL (`postgres://...`) with the same code,
//! the same SQL and the same migrations, through `sqlx::AnyPool`. Every method
//! that changes state runs in one transaction.
//!
//! ```no_run
//! # async fn demo() -> Result<(), drycc_store::StoreError> {
//! let store = drycc_store::Store::open("sqlite:///var/lib/drycc/drycc.db?mode=rwc").await?;
//! let admin = store.create_user("admin", "admin@example.com", "$argon2id$...").await?;
//! assert!(admin.is_superuser); // the first user is an admin
//! let app = store.create_app("steely-mainsail", &admin.username).await?;
//! assert_eq!(store.latest_release(&app.id).await?.version, 1);
//! # Ok(()) }
//! ```
//!
//! # Schema
//!
//! (`migrations/0001_initial.sql`, `0002_release_state.sql`,
//! `0003_token_expiry.sql` ... `0009_app_uids.sql`;
//! `_sqlx_migrations` records what ran.)
//!
//! | table | columns | keys |
//! |---|---|---|
//! | `users` | `id`, `username`, `email`, `is_superuser`, `password_hash`, `created` | PK `id`, UNIQUE `username` |
//! | `tokens` | `token_hash`, `user_id`, `created`, `expires` (NULL: issued before expiry existed) | PK `token_hash`, FK `user_id` -> `users` (cascade) |
//! | `apps` | `uuid`, `id` (the name), `owner`, `structure`*, `restart_generations`*, `uid` (the app's user id; NULL until assigned), `created`, `updated` | PK `uuid`, UNIQUE `id`, UNIQUE `uid`, FK `owner` -> `users.username` |
//! | `builds` | `uuid`, `app`, `owner`, `image`, `stack`, `sha`, `procfile`*, `dockerfile`, `created`, `updated` | PK `uuid`, FK `app` -> `apps.id` |
//! | `configs` | `uuid`, `app`, `owner`, `env_values`*, `cpu`*, `memory`*, `healthcheck`*, `termination_grace_period`*, `tags`*, `registry`*, `created`, `updated` | PK `uuid`, FK `app` -> `apps.id` |
//! | `releases` | `uuid`, `app`, `owner`, `version`, `summary`, `build_uuid` (nullable), `config_uuid`, `failed`, `exception`, `state`, `previous_structure`*, `created`, `updated` | PK `uuid`, UNIQUE (`app`, `version`), FKs to `apps.id`, `builds`, `configs` |
//! | `settings` | `uuid`, `app`, `owner`, `autoscale`*, `routable`, `created`, `updated` | PK `uuid`, UNIQUE `app` |
//! | `domains` | `uuid`, `app`, `owner`, `domain`, `certificate` (nullable), `created`, `updated` | PK `uuid`, UNIQUE `domain`, FK `app` -> `apps.id`, FK `certificate` -> `certs.name` |
//! | `certs` | `uuid`, `name`, `owner`, `certificate` (PEM), `private_key` (PEM, never shown back), `created`, `updated` | PK `uuid`, UNIQUE `name` |
//! | `app_perms` | `app`, `username`, `created` | PK (`app`, `username`), FKs to `apps.id`, `users.username` |
//!
//! `*` marks JSON text columns. Types are deliberately the common subset of
//! both engines and of what the sqlx Any driver can carry:
//!
//! - ids are UUID strings generated in Rust, so no `AUTOINCREMENT`/`SERIAL`
//!   dialect is needed and ids are known before the insert;
//! - timestamps are fixed-width RFC 3339 UTC text with microseconds, which
//!   sorts correctly as text on both engines;
//! - integers are `BIGINT`; booleans are `BIGINT` 0/1, because the Any driver
//!   cannot decode a SQLite `BOOLEAN` column;
//! - maps (structure, procfile, env values, limits, healthchecks, autoscale
//!   rules) are JSON text. They are always read and written whole with their
//!   parent row, never queried by key, and their shapes follow the Drycc API
//!   (which may grow fields); a JSON column keeps the schema small, identical
//!   on both engines, and free of migrations when a map's value shape
//!   changes.
//!
//! A buildpack build (a `git push` of source) keeps its slug's directory
//! name in `image` and the buildpacks that compiled it in `stack`; image
//! builds keep their image reference in `image`.
//!
//! A release is immutable and points at one config row and at most one build
//! row; every release gets its own config row (configs are small) while
//! builds are shared by the releases that keep them. Release versions are
//! `MAX(version) + 1` computed under the app's lock in the creating
//! transaction, with `UNIQUE (app, version)` as the backstop: dense, never
//! reused, failed releases included.
//!
//! A release's `state` is `pending` until the controller's reconciler
//! judges its rollout `succeeded` or `failed` (a release without a build is
//! `succeeded` at once). [`Store::desired_release`] is the newest release
//! that has not failed, the one the app should run;
//! [`Store::last_good_release`] the newest `succeeded` one. A new release
//! fails any older `pending` one ("superseded"), and failing a rollout
//! restores the structure the release replaced in the same transaction.
//!
//! # Change notices
//!
//! Controllers sharing a PostgreSQL database tell each other which app's
//! desired state changed: [`Store::announce_change`] sends the app's name
//! with `NOTIFY` on [`APP_CHANGES_CHANNEL`], [`Store::listen_changes`]
//! `LISTEN`s on a connection of its own ([`AppChanges`]). SQLite sends and
//! hears nothing: one controller per file.
//!
//! # Concurrency
//!
//! SQLite write transactions start with `BEGIN IMMEDIATE` and connections
//! wait up to 5 s on a busy database; on PostgreSQL, read-modify-write
//! methods lock the app row (`UPDATE apps ... WHERE id = $1`) first, and
//! `create_user` locks the users table so only one first user can exist.
//!
//! # Testing
//!
//! `cargo test -p drycc-store` runs every behaviour test against a SQLite
//! file in a temporary directory and, when `DRYCC_TEST_DATABASE_URL` is a
//! `postgres://` URL of a role that may `CREATE DATABASE`, again against a
//! fresh database per test (dropped afterwards). `scripts/with-postgres.sh`
//! starts a throwaway local PostgreSQL cluster and does exactly that.

// Input from users, files and the network must never panic the program.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod apps;
mod certs;
mod changes;
mod codec;
mod domains;
mod error;
mod events;
mod perms;
mod records;
mod releases;
mod settings;
mod store;
mod users;

pub use changes::{AppChanges, APP_CHANGES_CHANNEL};
pub use error::{Result, StoreError};
pub use events::{Event, EVENTS_KEPT};
pub use records::{
    App, Build, BuildRef, Cert, Config, Domain, NewBuild, NewConfig, NewRelease, Release,
    ReleaseState, Settings, Token, User,
};
pub use store::{Backend, Store, DEFAULT_APP_UIDS};
