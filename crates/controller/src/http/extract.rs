//! The extractors of the API: the authenticated user, and `Json`, `Path`
//! and `Query` whose rejections are `{"detail": ...}` answers.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use drycc_store::User;
use serde::de::DeserializeOwned;

use super::error::{ApiError, ApiResult};
use super::Shared;
use crate::service::access::user_for_token;

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
        user_for_token(state, token)
            .await
            .map(AuthUser)
            .map_err(ApiError::from)
    }
}

/// `Json` whose rejections are `{"detail": ...}` 400s (or 413/415) instead
/// of axum's plain-text answers.
pub struct Json<T>(pub T);

impl<T> FromRequest<Shared> for Json<T>
where
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &Shared) -> Result<Self, ApiError> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(Json(value)),
            Err(rejection) => Err(json_rejection(rejection, state.body_bytes())),
        }
    }
}

fn json_rejection(rejection: JsonRejection, body_bytes: usize) -> ApiError {
    match rejection {
        JsonRejection::MissingJsonContentType(_) => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Unsupported media type: send the body as JSON with `Content-Type: application/json`.",
        ),
        JsonRejection::BytesRejection(bytes) if bytes.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            super::limits::body_too_large(body_bytes)
        }
        JsonRejection::JsonSyntaxError(error) => {
            ApiError::bad_request(format!("JSON parse error - {}", error.body_text()))
        }
        JsonRejection::JsonDataError(error) => {
            ApiError::bad_request(format!("Invalid request body - {}", error.body_text()))
        }
        other => ApiError::bad_request(other.body_text()),
    }
}

impl<T: serde::Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

/// Parse an optional JSON body: empty means `T::default()`.
pub fn optional_json<T: DeserializeOwned + Default>(body: &[u8]) -> ApiResult<T> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("JSON parse error - {e}")))
}

/// `Path` whose rejections are `{"detail": ...}` 400s.
pub struct Path<T>(pub T);

impl<S, T> axum::extract::FromRequestParts<S> for Path<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, ApiError> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(value)| Path(value))
            .map_err(|rejection| ApiError::bad_request(rejection.body_text()))
    }
}

/// `Query` whose rejections are `{"detail": ...}` 400s.
pub struct Query<T>(pub T);

impl<S, T> axum::extract::FromRequestParts<S> for Query<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, ApiError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(value)| Query(value))
            .map_err(|rejection| ApiError::bad_request(rejection.body_text()))
    }
}
