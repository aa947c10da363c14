//! Dashboard sessions: an API token in an `HttpOnly`, `SameSite=Strict`
//! cookie, and the CSRF token every form posts with it.
//!
//! The session is an ordinary token of the user (same expiry, revoked by
//! `DELETE /v2/admin/users/<name>/tokens` like any other), so signing out
//! deletes it and nothing else has to be kept. The CSRF token is derived
//! from the session token (a hash of it under a fixed label): it is
//! unguessable without the cookie, which scripts cannot read, and needs no
//! storage. Before signing in there is no session: the sign-in form posts a
//! random value that must match a cookie set with the form (double submit).

use axum::http::header::{COOKIE, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue};
use drycc_store::User;
use sha2::{Digest, Sha256};

use crate::http::error::ApiError;
use crate::http::Shared;

/// The session cookie: the user's token.
pub const SESSION_COOKIE: &str = "drycc_session";
/// The sign-in form's CSRF cookie.
pub const LOGIN_COOKIE: &str = "drycc_login";
/// Cookies are sent to the dashboard only, never to the API.
const COOKIE_PATH: &str = "/dashboard";

/// A signed-in user of the dashboard.
pub struct Session {
    pub user: User,
    pub token: String,
    pub csrf: String,
}

/// Why a request has no usable session.
#[derive(Debug, PartialEq, Eq)]
pub enum NoSession {
    /// No cookie, or one of no (longer) valid token.
    SignedOut,
    /// The store could not be read.
    Unavailable,
}

/// The value of cookie `name` in the request.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.trim().to_string())
        .filter(|value| !value.is_empty())
}

/// The session of the request's cookie, if its token is valid.
pub async fn session(state: &Shared, headers: &HeaderMap) -> Result<Session, NoSession> {
    let token = cookie(headers, SESSION_COOKIE).ok_or(NoSession::SignedOut)?;
    session_of(state, token).await
}

/// The session of a token, if it is (still) valid.
pub async fn session_of(state: &Shared, token: String) -> Result<Session, NoSession> {
    // Tokens are 64 hex digits; anything else is not looked up.
    if token.len() != 64 || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(NoSession::SignedOut);
    }
    match crate::service::access::user_for_token(state, &token).await {
        Ok(user) => Ok(Session {
            user,
            csrf: csrf_for(&token),
            token,
        }),
        Err(error) => Err(if ApiError::from(error).status.is_client_error() {
            NoSession::SignedOut
        } else {
            NoSession::Unavailable
        }),
    }
}

/// The CSRF token of a session token.
pub fn csrf_for(token: &str) -> String {
    hex::encode(Sha256::digest(format!("drycc-dashboard-csrf\0{token}")))
}

/// Equal without an early exit, so the time taken tells nothing of where
/// a guess goes wrong.
pub fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |diff, (x, y)| diff | (x ^ y))
            == 0
}

/// Whether the request came over TLS (a proxy in front says so): cookies
/// are then `Secure`.
fn over_tls(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|proto| proto.eq_ignore_ascii_case("https"))
}

/// A `Set-Cookie` value: `HttpOnly`, `SameSite=Strict`, the dashboard's
/// path; empty values expire the cookie.
pub fn set_cookie(
    request: &HeaderMap,
    name: &str,
    value: &str,
) -> (axum::http::HeaderName, HeaderValue) {
    let mut text = format!("{name}={value}; Path={COOKIE_PATH}; HttpOnly; SameSite=Strict");
    if value.is_empty() {
        text.push_str("; Max-Age=0");
    }
    if over_tls(request) {
        text.push_str("; Secure");
    }
    let value = HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""));
    (SET_COOKIE, value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_found_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert(
            COOKIE,
            HeaderValue::from_static("a=1; drycc_session=abc ; b=2"),
        );
        assert_eq!(cookie(&headers, SESSION_COOKIE).as_deref(), Some("abc"));
        assert_eq!(cookie(&headers, "c"), None);
        headers.insert(COOKIE, HeaderValue::from_static("drycc_session="));
        assert_eq!(cookie(&headers, SESSION_COOKIE), None);
    }

    #[test]
    fn csrf_tokens_differ_per_session_and_compare_exactly() {
        let a = csrf_for("a");
        assert_eq!(a, csrf_for("a"));
        assert_ne!(a, csrf_for("b"));
        assert!(same(&a, &csrf_for("a")));
        assert!(!same(&a, &csrf_for("b")));
        assert!(!same(&a, ""));
    }

    #[test]
    fn cookies_are_http_only_and_strict() {
        let (_, value) = set_cookie(&HeaderMap::new(), SESSION_COOKIE, "t");
        let value = value.to_str().unwrap_or_default().to_string();
        assert!(
            value.contains("HttpOnly") && value.contains("SameSite=Strict"),
            "{value}"
        );
        assert!(!value.contains("Secure"));
        let mut tls = HeaderMap::new();
        tls.insert("x-forwarded-proto", HeaderValue::from_static("https"));
        let (_, value) = set_cookie(&tls, SESSION_COOKIE, "");
        let value = value.to_str().unwrap_or_default().to_string();
        assert!(
            value.contains("Max-Age=0") && value.contains("Secure"),
            "{value}"
        );
    }
}
