//! Opening the database, the pool and the transaction discipline.

use std::path::Path;
use std::sync::Once;
use std::time::Duration;

use sqlx::any::AnyPoolOptions;
use sqlx::migrate::Migrator;
use sqlx::{AnyConnection, AnyPool, Connection, Executor, Row};

use crate::error::{Result, StoreError};

static DRIVERS: Once = Once::new();

/// The embedded migrations (`crates/store/migrations/*.sql`), the same files
/// for both backends.
static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// Connections of a SQLite pool: one writer at a time anyway (WAL), a few
/// concurrent readers.
const SQLITE_POOL_SIZE: u32 = 4;
const POSTGRES_POOL_SIZE: u32 = 10;
/// How long a SQLite connection waits for the write lock before `SQLITE_BUSY`.
const SQLITE_BUSY_TIMEOUT_MS: u64 = 5_000;

/// Run on every new SQLite connection. `foreign_keys` is per connection in
/// SQLite (off by default); `synchronous = NORMAL` is the documented safe
/// pairing with WAL.
const SQLITE_CONNECTION_PRAGMAS: &str =
    "PRAGMA busy_timeout = 5000; PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL;";

/// Which database a [`Store`] talks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// The backend a database URL selects.
    pub fn from_url(url: &str) -> Result<Backend> {
        if url.starts_with("sqlite:") {
            Ok(Backend::Sqlite)
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Ok(Backend::Postgres)
        } else {
            let scheme = url.split(':').next().unwrap_or_default();
            Err(StoreError::UnsupportedUrl(format!(
                "scheme {scheme:?}: expected sqlite:// or postgres://"
            )))
        }
    }
}

/// The persistence layer: a pool of connections to SQLite or PostgreSQL.
///
/// Cheap to clone (the pool is shared). Every method that changes state runs
/// in exactly one transaction.
#[derive(Clone, Debug)]
pub struct Store {
    pub(crate) pool: AnyPool,
    pub(crate) backend: Backend,
    /// The URL it was opened with, for the change listener's own
    /// connection (never printed: it may hold a password).
    pub(crate) url: crate::changes::Url,
    /// Where apps' user ids come from (see [`Store::with_app_uids`]).
    pub(crate) app_uids: std::ops::RangeInclusive<u32>,
}

/// The user ids given to apps unless configured otherwise: far above the
/// ids of accounts and of the usual subordinate ranges of containers.
pub const DEFAULT_APP_UIDS: std::ops::RangeInclusive<u32> = 200_000..=299_999;

impl Store {
    /// Opens (and on SQLite with `mode=rwc`, creates) the database at `url`
    /// and brings its schema up to date.
    ///
    /// `url` is `sqlite://<path>?mode=rwc`, `sqlite::memory:` (tests only: one
    /// connection) or `postgres://user:pass@host:port/db`.
    pub async fn open(url: &str) -> Result<Store> {
        DRIVERS.call_once(sqlx::any::install_default_drivers);
        let backend = Backend::from_url(url)?;
        let pool = match backend {
            Backend::Sqlite => open_sqlite_pool(url).await?,
            Backend::Postgres => {
                AnyPoolOptions::new()
                    .max_connections(POSTGRES_POOL_SIZE)
                    .connect(url)
                    .await?
            }
        };
        MIGRATOR.run(&pool).await?;
        Ok(Store {
            pool,
            backend,
            url: crate::changes::Url(url.to_string()),
            app_uids: DEFAULT_APP_UIDS,
        })
    }

    /// The store with apps' user ids allocated from `range`.
    pub fn with_app_uids(mut self, range: std::ops::RangeInclusive<u32>) -> Store {
        self.app_uids = range;
        self
    }

    /// Opens (creating it if needed) the SQLite database file at `path`.
    pub async fn open_sqlite(path: &Path) -> Result<Store> {
        Store::open(&sqlite_url(path)?).await
    }

    /// The backend in use.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The underlying pool, for diagnostics and tests (`PRAGMA journal_mode`).
    /// Writes through it bypass the store's invariants.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Cheap round trip, for readiness probes.
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Closes every connection; later calls fail.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Starts a transaction that will write.
    ///
    /// On SQLite it is `BEGIN IMMEDIATE`: the write lock is taken (waiting up
    /// to the busy timeout) before anything is read, so a read-then-write
    /// transaction cannot fail with `SQLITE_BUSY` halfway. On PostgreSQL it is
    /// a plain `BEGIN`; methods that read-then-write lock the rows they
    /// depend on first.
    pub(crate) async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>> {
        Ok(match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.pool.begin().await?,
        })
    }
}

/// `sqlite://<path>?mode=rwc` with the characters sqlx percent-decodes
/// escaped.
fn sqlite_url(path: &Path) -> Result<String> {
    let s = path.to_str().ok_or_else(|| {
        StoreError::UnsupportedUrl(format!("database path {path:?} is not UTF-8"))
    })?;
    let escaped = s
        .replace('%', "%25")
        .replace('?', "%3F")
        .replace('#', "%23");
    Ok(format!("sqlite://{escaped}?mode=rwc"))
}

async fn open_sqlite_pool(url: &str) -> Result<AnyPool> {
    let memory = url.contains(":memory:") || url.contains("mode=memory");
    if !memory {
        // The journal mode is a property of the file. Switching to WAL needs
        // an exclusive lock that busy_timeout does not wait for, so do it once
        // here, on a single connection, before the pool opens more.
        let mut conn = AnyConnection::connect(url).await?;
        conn.execute("PRAGMA busy_timeout = 5000").await?;
        let row = sqlx::query("PRAGMA journal_mode = WAL")
            .fetch_one(&mut conn)
            .await?;
        let mode: String = row.try_get(0)?;
        if !mode.eq_ignore_ascii_case("wal") {
            tracing::warn!(journal_mode = %mode, "SQLite refused WAL mode; concurrent readers will wait for writers.");
        }
        conn.close().await?;
    }
    let mut options = AnyPoolOptions::new()
        .max_connections(if memory { 1 } else { SQLITE_POOL_SIZE })
        .acquire_timeout(Duration::from_millis(SQLITE_BUSY_TIMEOUT_MS * 6))
        .after_connect(|conn, _meta| {
            Box::pin(async move {
                conn.execute(SQLITE_CONNECTION_PRAGMAS).await?;
                Ok(())
            })
        });
    if memory {
        // An in-memory database lives as long as its connection.
        options = options
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None);
    }
    Ok(options.connect(url).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_from_url() {
        assert_eq!(
            Backend::from_url("sqlite://x.db?mode=rwc").ok(),
            Some(Backend::Sqlite)
        );
        assert_eq!(
            Backend::from_url("postgres://u@h/db").ok(),
            Some(Backend::Postgres)
        );
        assert_eq!(
            Backend::from_url("postgresql://u@h/db").ok(),
            Some(Backend::Postgres)
        );
        assert!(matches!(
            Backend::from_url("mysql://x"),
            Err(StoreError::UnsupportedUrl(_))
        ));
    }

    #[test]
    fn sqlite_url_escapes() {
        let url = sqlite_url(Path::new("/tmp/a?b#c%d.db")).ok();
        assert_eq!(
            url.as_deref(),
            Some("sqlite:///tmp/a%3Fb%23c%25d.db?mode=rwc")
        );
    }
}
