//! Users and API tokens.

use chrono::{DateTime, Utc};
use sqlx::any::AnyRow;

use crate::codec::{bool_int, now, ts, RowExt};
use crate::error::{conflict_if_unique, Result, StoreError};
use crate::records::{Token, User};
use crate::store::{Backend, Store};

const USER_COLUMNS: &str = "users.id, users.username, users.email, users.is_superuser, \
     users.password_hash, users.created";

fn user_from_row(row: &AnyRow) -> Result<User> {
    Ok(User {
        id: row.text("id")?,
        username: row.text("username")?,
        email: row.text("email")?,
        is_superuser: row.flag("is_superuser")?,
        password_hash: row.text("password_hash")?,
        created: row.time("created")?,
    })
}

impl Store {
    /// Creates a user. The first user ever becomes a superuser; the count
    /// and the insert share one transaction, so two concurrent first sign-ups
    /// cannot both become admins. Registration policy is the caller's.
    ///
    /// Errors: `Conflict("username already exists")`.
    pub async fn create_user(
        &self,
        username: &str,
        email: &str,
        password_hash: &str,
    ) -> Result<User> {
        let mut tx = self.begin_write().await?;
        if self.backend == Backend::Postgres {
            // Readers go on; a second writer waits until this one commits and
            // then counts the new row. (SQLite: BEGIN IMMEDIATE already did.)
            sqlx::query("LOCK TABLE users IN SHARE ROW EXCLUSIVE MODE")
                .execute(&mut *tx)
                .await?;
        }
        let existing = sqlx::query("SELECT COUNT(*) AS n FROM users")
            .fetch_one(&mut *tx)
            .await?
            .int("n")?;
        let user = User {
            id: uuid::Uuid::new_v4().to_string(),
            username: username.to_string(),
            email: email.to_string(),
            is_superuser: existing == 0,
            password_hash: password_hash.to_string(),
            created: now(),
        };
        sqlx::query(
            "INSERT INTO users (id, username, email, is_superuser, password_hash, created) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&user.id)
        .bind(&user.username)
        .bind(&user.email)
        .bind(bool_int(user.is_superuser))
        .bind(&user.password_hash)
        .bind(ts(&user.created))
        .execute(&mut *tx)
        .await
        .map_err(conflict_if_unique("username already exists"))?;
        tx.commit().await?;
        Ok(user)
    }

    /// The user called `username`, if any.
    pub async fn user_by_name(&self, username: &str) -> Result<Option<User>> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE username = $1");
        sqlx::query(&sql)
            .bind(username)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(user_from_row)
            .transpose()
    }

    /// The user with this id, if any.
    pub async fn user_by_id(&self, id: &str) -> Result<Option<User>> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1");
        sqlx::query(&sql)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(user_from_row)
            .transpose()
    }

    /// Every user, ordered by username.
    pub async fn list_users(&self) -> Result<Vec<User>> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users ORDER BY username");
        sqlx::query(&sql)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(user_from_row)
            .collect()
    }

    /// How many users exist.
    pub async fn user_count(&self) -> Result<u64> {
        let n = sqlx::query("SELECT COUNT(*) AS n FROM users")
            .fetch_one(&self.pool)
            .await?
            .int("n")?;
        u64::try_from(n).map_err(|_| StoreError::Corrupt(format!("negative user count {n}")))
    }

    /// Records a token for `user_id`, accepted until `expires`. Only its
    /// hash is stored: the caller passes the hex SHA-256 of the token it
    /// handed out.
    ///
    /// Errors: `NotFound` when the user does not exist, `Conflict` when the
    /// hash is already recorded.
    pub async fn create_token(
        &self,
        user_id: &str,
        token_hash: &str,
        expires: DateTime<Utc>,
    ) -> Result<()> {
        let mut tx = self.begin_write().await?;
        let users = sqlx::query("SELECT COUNT(*) AS n FROM users WHERE id = $1")
            .bind(user_id)
            .fetch_one(&mut *tx)
            .await?
            .int("n")?;
        if users == 0 {
            return Err(StoreError::NotFound(format!("User {user_id} not found")));
        }
        sqlx::query(
            "INSERT INTO tokens (token_hash, user_id, created, expires) VALUES ($1, $2, $3, $4)",
        )
        .bind(token_hash)
        .bind(user_id)
        .bind(ts(&now()))
        .bind(ts(&expires))
        .execute(&mut *tx)
        .await
        .map_err(conflict_if_unique("token already exists"))?;
        tx.commit().await?;
        Ok(())
    }

    /// The token with this hash and its user, expired or not (expiry is
    /// the caller's rule).
    pub async fn token_by_hash(&self, token_hash: &str) -> Result<Option<Token>> {
        let sql = format!(
            "SELECT {USER_COLUMNS}, tokens.created AS token_created, tokens.expires \
             FROM tokens JOIN users ON users.id = tokens.user_id \
             WHERE tokens.token_hash = $1"
        );
        let Some(row) = sqlx::query(&sql)
            .bind(token_hash)
            .fetch_optional(&self.pool)
            .await?
        else {
            return Ok(None);
        };
        let expires = match row.opt_text("expires")? {
            None => None,
            Some(text) => Some(
                DateTime::parse_from_rfc3339(&text)
                    .map(|t| t.with_timezone(&Utc))
                    .map_err(|e| StoreError::Corrupt(format!("column expires: {text:?}: {e}")))?,
            ),
        };
        Ok(Some(Token {
            user: user_from_row(&row)?,
            created: row.time("token_created")?,
            expires,
        }))
    }

    /// Revokes every token of a user. Returns how many there were.
    pub async fn delete_user_tokens(&self, user_id: &str) -> Result<u64> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query("DELETE FROM tokens WHERE user_id = $1")
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected())
    }

    /// Forgets tokens that expired at or before `now` (those with an
    /// expiry). Returns how many.
    pub async fn delete_expired_tokens(&self, now: DateTime<Utc>) -> Result<u64> {
        let mut tx = self.begin_write().await?;
        // Fixed-width RFC 3339 text sorts in time order on both backends.
        let done = sqlx::query("DELETE FROM tokens WHERE expires IS NOT NULL AND expires <= $1")
            .bind(ts(&now))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected())
    }

    /// Revokes a token. Returns whether it existed.
    pub async fn delete_token(&self, token_hash: &str) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query("DELETE FROM tokens WHERE token_hash = $1")
            .bind(token_hash)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
    }
}
