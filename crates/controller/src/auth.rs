//! Passwords, tokens, the authenticated-user extractor and app permissions.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use drycc_store::{App, User};
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::error::{ApiError, ApiResult};
use crate::state::Shared;

/// Hash a password with argon2id (slow on purpose: run it off the async
/// workers, on the blocking pool).
pub async fn hash_password(password: String) -> ApiResult<String> {
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut rand::rngs::OsRng);
        let hash = Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|hash| hash.to_string());
        release_free_memory();
        hash
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(ApiError::internal)
}

pub async fn verify_password(password: String, stored: String) -> ApiResult<bool> {
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
    .map_err(ApiError::internal)
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

/// The user behind `Authorization: token <key>`.
pub struct AuthUser(pub User);

impl FromRequestParts<Shared> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Shared) -> Result<Self, ApiError> {
        let header = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .ok_or_else(|| {
                ApiError::unauthorized("Authentication credentials were not provided.")
            })?;
        let token = header
            .strip_prefix("token ")
            .or_else(|| header.strip_prefix("Token "))
            .map(str::trim)
            .filter(|token| !token.is_empty())
            .ok_or_else(|| {
                ApiError::unauthorized("Invalid token header. Use `Authorization: token <key>`.")
            })?;
        user_for_token(state, token).await.map(AuthUser)
    }
}

pub async fn user_for_token(state: &Shared, token: &str) -> ApiResult<User> {
    state
        .store
        .user_by_token_hash(&token_hash(token))
        .await?
        .ok_or_else(|| ApiError::unauthorized("Invalid token."))
}

/// What a request wants to do with an app.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
}

/// The app, if `user` may access it; else 404 for reads (the app's
/// existence is not revealed) and 403 for writes.
pub async fn app_for(state: &Shared, user: &User, id: &str, access: Access) -> ApiResult<App> {
    let app = state
        .store
        .get_app(id)
        .await?
        .ok_or_else(ApiError::app_not_found)?;
    if may_access(state, user, &app).await? {
        return Ok(app);
    }
    match access {
        Access::Read => Err(ApiError::app_not_found()),
        Access::Write => Err(ApiError::forbidden()),
    }
}

pub async fn may_access(state: &Shared, user: &User, app: &App) -> ApiResult<bool> {
    Ok(user.is_superuser
        || app.owner == user.username
        || state.store.has_perm(&app.id, &user.username).await?)
}
