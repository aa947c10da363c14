//! `/v2/auth/*`: register, login, whoami, logout; and an admin's
//! revocation of every token of a user.

use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::{ConnectInfo, State};
use axum::http::header::{AUTHORIZATION, RETRY_AFTER};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use drycc_api_types::{LoginRequest, RegisterRequest, TokenResponse};
use tokio::time::Instant;

use crate::context::timestamp;
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::AuthUser;
use crate::http::extract::Json;
use crate::http::Shared;
use crate::service::access::{hash_password, new_token, token_hash, verify_password};
use crate::settings::RegistrationMode;

const MAX_USERNAME: usize = 150;
const MAX_PASSWORD: usize = 1024;

pub fn user_view(user: &drycc_store::User) -> drycc_api_types::User {
    drycc_api_types::User {
        id: user.id.clone(),
        username: user.username.clone(),
        email: user.email.clone(),
        is_superuser: user.is_superuser,
        date_joined: timestamp(&user.created),
    }
}

/// `GET /v2/`: clients probe it to recognise a controller; it needs a token.
#[utoipa::path(
    operation_id = "auth_probe",
    get,
    path = "/",
    tag = "auth",
    responses((status = 200, description = "A controller, and the token is valid."), crate::http::api::openapi::Errors),
)]
pub async fn probe(_user: AuthUser) -> StatusCode {
    StatusCode::OK
}

fn validate_username(username: &str) -> ApiResult<()> {
    let ok = !username.is_empty()
        && username.len() <= MAX_USERNAME
        && username
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "@.+-_".contains(c));
    if ok {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!(
            "username: enter a valid username of at most {MAX_USERNAME} characters: letters, digits and @/./+/-/_ only."
        )))
    }
}

#[utoipa::path(
    operation_id = "auth_register",
    post,
    path = "/auth/register",
    tag = "auth",
    request_body = drycc_api_types::RegisterRequest,
    security(()),
    responses((status = 201, description = "The new user.", body = drycc_api_types::User), crate::http::api::openapi::Errors),
)]
pub async fn register(
    State(state): State<Shared>,
    headers: HeaderMap,
    Json(request): Json<RegisterRequest>,
) -> ApiResult<(StatusCode, Json<drycc_api_types::User>)> {
    validate_username(&request.username)?;
    if request.password.is_empty() || request.password.len() > MAX_PASSWORD {
        return Err(ApiError::bad_request(format!(
            "password: a password of 1 to {MAX_PASSWORD} bytes is required."
        )));
    }
    let email = request.email.unwrap_or_default();
    if email.len() > 254 || (!email.is_empty() && !email.contains('@')) {
        return Err(ApiError::bad_request("email: enter a valid email address."));
    }
    let first = state.store.user_count().await? == 0;
    if !first {
        match state.settings.registration_mode {
            RegistrationMode::Enabled => {}
            RegistrationMode::AdminOnly => {
                if !registered_by_admin(&state, &headers).await {
                    return Err(ApiError::forbidden_with(
                        "Registration is limited to administrators: an admin's token must authorise it.",
                    ));
                }
            }
            RegistrationMode::Disabled => {
                return Err(ApiError::forbidden_with("User registration is disabled."))
            }
        }
    }
    let hash = hash_password(request.password).await?;
    let user = state
        .store
        .create_user(&request.username, &email, &hash)
        .await?;
    Ok((StatusCode::CREATED, Json(user_view(&user))))
}

/// A hash of a random password, verified against when no such user exists.
async fn unknown_user_hash() -> ApiResult<String> {
    static HASH: tokio::sync::OnceCell<String> = tokio::sync::OnceCell::const_new();
    HASH.get_or_try_init(|| hash_password(crate::service::access::new_token().0))
        .await
        .cloned()
        .map_err(ApiError::from)
}

/// Whether the request carries the token of an admin (`admin_only` mode).
async fn registered_by_admin(state: &Shared, headers: &HeaderMap) -> bool {
    let Some(token) = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("token "))
    else {
        return false;
    };
    crate::service::access::user_for_token(state, token.trim())
        .await
        .is_ok_and(|user| user.is_superuser)
}

#[utoipa::path(
    operation_id = "auth_login",
    post,
    path = "/auth/login",
    tag = "auth",
    request_body = drycc_api_types::LoginRequest,
    security(()),
    responses((status = 200, description = "A new token.", body = drycc_api_types::TokenResponse), crate::http::api::openapi::Errors),
)]
pub async fn login(
    State(state): State<Shared>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Json(request): Json<LoginRequest>,
) -> ApiResult<Response> {
    match authenticate(&state, &request.username, request.password, peer.ip()).await? {
        Login::Token(token) => Ok(Json(TokenResponse { token }).into_response()),
        Login::Wait(wait) => Ok(too_many_attempts(wait)),
    }
}

/// The outcome of a login that was not refused outright.
pub(crate) enum Login {
    /// A new token of the user.
    Token(String),
    /// Locked out: how long to wait.
    Wait(Duration),
}

/// Check a username and password under the login limits and issue a token
/// (the API's and the dashboard's one path).
pub(crate) async fn authenticate(
    state: &Shared,
    username: &str,
    password: String,
    address: std::net::IpAddr,
) -> ApiResult<Login> {
    let invalid = || ApiError::bad_request("Unable to log in with provided credentials.");
    let limiter = &state.login_limiter;
    // Refused before the password is checked: a locked-out guesser costs
    // no argon2 work.
    if let Err(wait) = limiter.check(username, address, Instant::now()) {
        return Ok(Login::Wait(wait));
    }
    let user = state.store.user_by_name(username).await?;
    // An unknown name costs the same argon2 work as a wrong password, so
    // the answer's timing does not tell which names exist.
    let hash = match &user {
        Some(user) => user.password_hash.clone(),
        None => unknown_user_hash().await?,
    };
    let valid = verify_password(password, hash).await?;
    let Some(user) = user.filter(|_| valid) else {
        limiter.failed(username, address, Instant::now());
        return Err(invalid());
    };
    limiter.succeeded(&user.username);
    let (token, hash) = new_token();
    let now = chrono::Utc::now();
    // Expired tokens are useless: forget them while we are writing anyway.
    state.store.delete_expired_tokens(now).await?;
    let expires = now
        .checked_add_signed(state.settings.token_ttl())
        .unwrap_or(chrono::DateTime::<chrono::Utc>::MAX_UTC);
    state.store.create_token(&user.id, &hash, expires).await?;
    Ok(Login::Token(token))
}

/// Whole seconds of a wait, rounded up.
pub(crate) fn wait_seconds(wait: Duration) -> u64 {
    wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
}

/// The message of a refused login while locked out.
pub(crate) fn too_many_message(seconds: u64) -> String {
    format!("Too many failed login attempts: try again in {seconds} seconds.")
}

/// 429 with `Retry-After` in whole seconds (rounded up).
fn too_many_attempts(wait: Duration) -> Response {
    let seconds = wait_seconds(wait);
    let mut response =
        ApiError::new(StatusCode::TOO_MANY_REQUESTS, too_many_message(seconds)).into_response();
    response
        .headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from(seconds));
    response
}

#[utoipa::path(
    operation_id = "auth_whoami",
    get,
    path = "/auth/whoami",
    tag = "auth",
    responses((status = 200, description = "The token's user.", body = drycc_api_types::User), crate::http::api::openapi::Errors),
)]
pub async fn whoami(AuthUser(user): AuthUser) -> Json<drycc_api_types::User> {
    Json(user_view(&user))
}

#[utoipa::path(
    operation_id = "auth_logout",
    post,
    path = "/auth/logout",
    tag = "auth",
    responses((status = 204, description = "The token is revoked."), crate::http::api::openapi::Errors),
)]
pub async fn logout(
    State(state): State<Shared>,
    AuthUser(_user): AuthUser,
    headers: HeaderMap,
) -> ApiResult<StatusCode> {
    let token = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_whitespace().nth(1))
        .unwrap_or_default();
    state.store.delete_token(&token_hash(token)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE /v2/admin/users/<username>/tokens/`: an admin revokes every
/// token of a user (who must log in again everywhere).
#[utoipa::path(
    operation_id = "auth_revoke_user_tokens",
    delete,
    path = "/admin/users/{username}/tokens",
    tag = "auth",
    params(("username" = String, Path, description = "The user whose tokens go.")),
    responses((status = 204, description = "Every token of the user is revoked."), crate::http::api::openapi::Errors),
)]
pub async fn revoke_user_tokens(
    State(state): State<Shared>,
    AuthUser(admin): AuthUser,
    axum::extract::Path(username): axum::extract::Path<String>,
) -> ApiResult<StatusCode> {
    if !admin.is_superuser {
        return Err(ApiError::forbidden());
    }
    let user = state
        .store
        .user_by_name(&username)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("No user named {username}.")))?;
    let revoked = state.store.delete_user_tokens(&user.id).await?;
    tracing::info!(admin = %admin.username, user = %username, revoked, "Revoked every token of a user.");
    Ok(StatusCode::NO_CONTENT)
}
