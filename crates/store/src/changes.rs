//! Word of changed apps between controllers that share one database.
//!
//! Controllers sharing a PostgreSQL database (replicas electing a leader)
//! must tell the one that reconciles when another wrote an app's desired
//! state. PostgreSQL's `NOTIFY` carries the app's name on
//! [`APP_CHANGES_CHANNEL`]; the leader `LISTEN`s on a connection of its own.
//! SQLite is one machine's database with one controller: nothing is sent,
//! and there is nothing to listen to.

use sqlx::postgres::PgListener;

use crate::{Backend, Result, Store};

/// The PostgreSQL channel that carries the names of changed apps.
pub const APP_CHANGES_CHANNEL: &str = "drycc_app_changes";

/// A database URL, kept out of `Debug` output (it may hold a password).
#[derive(Clone)]
pub(crate) struct Url(pub(crate) String);

impl std::fmt::Debug for Url {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Url(..)")
    }
}

/// Notifications of changed apps, on a connection of their own.
pub struct AppChanges {
    listener: PgListener,
}

impl AppChanges {
    /// The next changed app. `Ok(None)` when the connection was lost: the
    /// notifications sent meanwhile are gone, so the caller should look at
    /// every app again; the next call reconnects.
    pub async fn next(&mut self) -> Result<Option<String>> {
        Ok(self
            .listener
            .try_recv()
            .await?
            .map(|n| n.payload().to_string()))
    }
}

impl Store {
    /// Tell the other controllers of this database that `app`'s desired
    /// state changed (PostgreSQL only; nothing on SQLite). Delivered once
    /// the sending transaction (here: none) commits.
    pub async fn announce_change(&self, app: &str) -> Result<()> {
        if self.backend == Backend::Postgres {
            // Counted, not selected: the Any driver cannot carry a `void` column.
            sqlx::query("SELECT count(*) FROM (SELECT pg_notify($1, $2)) AS sent")
                .bind(APP_CHANGES_CHANNEL)
                .bind(app)
                .execute(&self.pool)
                .await?;
        }
        Ok(())
    }

    /// Listen to the changes other controllers announce; `None` on SQLite.
    pub async fn listen_changes(&self) -> Result<Option<AppChanges>> {
        if self.backend != Backend::Postgres {
            return Ok(None);
        }
        let mut listener = PgListener::connect(&self.url.0).await?;
        listener.listen(APP_CHANGES_CHANNEL).await?;
        Ok(Some(AppChanges { listener }))
    }
}
