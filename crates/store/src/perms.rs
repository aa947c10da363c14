//! Sharing an app with other users.

use crate::apps::lock_app;
use crate::apps::user_exists;
use crate::codec::{now, ts, RowExt};
use crate::error::{Result, StoreError};
use crate::store::Store;

impl Store {
    /// Shares `app` with `username`. Granting twice is not an error.
    ///
    /// Errors: `NotFound` when the app or the user does not exist.
    pub async fn grant(&self, app: &str, username: &str) -> Result<()> {
        let mut tx = self.begin_write().await?;
        lock_app(&mut tx, app).await?;
        if !user_exists(&mut tx, username).await? {
            return Err(StoreError::NotFound(format!("User {username} not found")));
        }
        sqlx::query(
            "INSERT INTO app_perms (app, username, created) VALUES ($1, $2, $3) \
             ON CONFLICT (app, username) DO NOTHING",
        )
        .bind(app)
        .bind(username)
        .bind(ts(&now()))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Stops sharing `app` with `username`. Returns whether it was shared.
    pub async fn revoke(&self, app: &str, username: &str) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query("DELETE FROM app_perms WHERE app = $1 AND username = $2")
            .bind(app)
            .bind(username)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
    }

    /// The usernames `app` is shared with, sorted (the owner is not listed
    /// unless explicitly granted).
    pub async fn list_perms(&self, app: &str) -> Result<Vec<String>> {
        sqlx::query("SELECT username FROM app_perms WHERE app = $1 ORDER BY username")
            .bind(app)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|row| row.text("username"))
            .collect()
    }

    /// Whether `app` is explicitly shared with `username`. Ownership and
    /// superuser rights are the caller's to check.
    pub async fn has_perm(&self, app: &str, username: &str) -> Result<bool> {
        let n = sqlx::query("SELECT COUNT(*) AS n FROM app_perms WHERE app = $1 AND username = $2")
            .bind(app)
            .bind(username)
            .fetch_one(&self.pool)
            .await?
            .int("n")?;
        Ok(n > 0)
    }
}
