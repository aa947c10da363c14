//! Access: passwords, tokens, and who may read or change an app.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use chrono::{DateTime, Utc};
use drycc_store::{App, Token, User};
use rand::RngCore;
use sha2::{Digest, Sha256};

use super::{Service, ServiceError, ServiceResult};

/// Hash a password with argon2id (slow on purpose: run it off the async
/// workers, on the blocking pool).
pub async fn hash_password(password: String) -> ServiceResult<String> {
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut rand::rngs::OsRng);
        let hash = Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|hash| hash.to_string());
        release_free_memory();
        hash
    })
    .await
    .map_err(ServiceError::internal)?
    .map_err(ServiceError::internal)
}

pub async fn verify_password(password: String, stored: String) -> ServiceResult<bool> {
    tokio::task::spawn_blocking(move || {
        let valid = PasswordHash::new(&stored)
            .map(|hash| {
                Argon2::default()
                    .verify_password(password.as_bytes(), &hash)
                    .is_ok()
            })
            .unwrap_or(false);
        release_free_memory();
        valid
    })
    .await
    .map_err(ServiceError::internal)
}

/// argon2 works in 19 MiB of memory; glibc keeps such a freed block in the
/// heap (its mmap threshold grows after the first one), so without a trim
/// every controller that ever checked a password stays 20 MiB larger.
fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free heap pages to the kernel; it
    // touches no live allocation.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// A new random token (256 bits, hex) and the hash that the store keeps.
pub fn new_token() -> (String, String) {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let token = hex::encode(bytes);
    let hash = token_hash(&token);
    (token, hash)
}

pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// The message of a 401 for an expired token.
pub const EXPIRED: &str = "Token expired: log in again (drycc auth:login).";

pub async fn user_for_token(svc: &Service, token: &str) -> ServiceResult<User> {
    let hash = token_hash(token);
    let record = svc
        .store
        .token_by_hash(&hash)
        .await?
        .ok_or_else(|| ServiceError::unauthorized("Invalid token."))?;
    if expired(&record, svc.settings.token_ttl(), Utc::now()) {
        // Forgotten at once: it can never be valid again.
        svc.store.delete_token(&hash).await?;
        return Err(ServiceError::unauthorized(EXPIRED));
    }
    Ok(record.user)
}

/// Whether a token is past its expiry at `now`. Tokens issued before
/// tokens expired have none: they last `ttl` from their creation.
pub fn expired(token: &Token, ttl: chrono::Duration, now: DateTime<Utc>) -> bool {
    let expires = token.expires.unwrap_or_else(|| {
        token
            .created
            .checked_add_signed(ttl)
            .unwrap_or(DateTime::<Utc>::MAX_UTC)
    });
    now >= expires
}

/// What a request wants to do with an app.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
}

/// The app, if `user` may access it; else 404 for reads (the app's
/// existence is not revealed) and 403 for writes.
pub async fn app_for(svc: &Service, user: &User, id: &str, access: Access) -> ServiceResult<App> {
    let app = svc
        .store
        .get_app(id)
        .await?
        .ok_or(ServiceError::AppNotFound)?;
    if may_access(svc, user, &app).await? {
        return Ok(app);
    }
    match access {
        Access::Read => Err(ServiceError::AppNotFound),
        Access::Write => Err(ServiceError::Forbidden),
    }
}

pub async fn may_access(svc: &Service, user: &User, app: &App) -> ServiceResult<bool> {
    Ok(user.is_superuser
        || app.owner == user.username
        || svc.store.has_perm(&app.id, &user.username).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(created: &str, expires: Option<&str>) -> Token {
        let time = |s: &str| {
            DateTime::parse_from_rfc3339(s)
                .expect("time")
                .with_timezone(&Utc)
        };
        Token {
            user: User {
                id: "id".into(),
                username: "alice".into(),
                email: String::new(),
                is_superuser: false,
                password_hash: String::new(),
                created: time(created),
            },
            created: time(created),
            expires: expires.map(time),
        }
    }

    #[test]
    fn tokens_expire_at_their_expiry_or_after_the_ttl() {
        let at = |s: &str| {
            DateTime::parse_from_rfc3339(s)
                .expect("time")
                .with_timezone(&Utc)
        };
        let day = chrono::Duration::days(1);
        let issued = token("2024-01-01T00:00:00Z", Some("2024-01-02T00:00:00Z"));
        assert!(!expired(&issued, day, at("2024-01-01T23:59:59Z")));
        assert!(expired(&issued, day, at("2024-01-02T00:00:00Z")));
        // The stored expiry wins over today's ttl.
        assert!(!expired(
            &issued,
            chrono::Duration::seconds(1),
            at("2024-01-01T12:00:00Z")
        ));
        // Issued before expiry existed: created + ttl.
        let old = token("2024-01-01T00:00:00Z", None);
        assert!(!expired(&old, day, at("2024-01-01T23:00:00Z")));
        assert!(expired(&old, day, at("2024-01-02T00:00:01Z")));
        assert!(!expired(
            &old,
            chrono::Duration::MAX,
            at("2999-01-01T00:00:00Z")
        ));
    }
}
