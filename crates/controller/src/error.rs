//! API errors: every failure becomes `{"detail": "<message>"}` with a 4xx
//! status, or a 500 for bugs (logged, never caused by input).

use axum::extract::rejection::JsonRejection;
use axum::extract::FromRequest;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use drycc_api_types::ErrorDetail;
use drycc_store::StoreError;
use serde::de::DeserializeOwned;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub detail: String,
}

impl ApiError {
    pub fn new(status: StatusCode, detail: impl Into<String>) -> ApiError {
        ApiError {
            status,
            detail: detail.into(),
        }
    }
    pub fn bad_request(detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, detail)
    }
    pub fn not_found(detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, detail)
    }
    /// The one answer for an app that does not exist or may not be seen.
    pub fn app_not_found() -> ApiError {
        ApiError::not_found("No App matches the given query.")
    }
    pub fn forbidden() -> ApiError {
        ApiError::new(
            StatusCode::FORBIDDEN,
            "You do not have permission to perform this action.",
        )
    }
    pub fn forbidden_with(detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, detail)
    }
    pub fn unauthorized(detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, detail)
    }
    pub fn conflict(detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, detail)
    }
    pub fn unavailable(detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, detail)
    }
    pub fn internal(error: impl std::fmt::Display) -> ApiError {
        tracing::error!(%error, "Request failed on an internal error.");
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            axum::Json(ErrorDetail {
                detail: self.detail,
            }),
        )
            .into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> ApiError {
        match error {
            StoreError::NotFound(what) => ApiError::not_found(what),
            StoreError::Conflict(what) | StoreError::Exhausted(what) => ApiError::conflict(what),
            other => ApiError::internal(other),
        }
    }
}

impl From<drycc_engine::EngineError> for ApiError {
    fn from(error: drycc_engine::EngineError) -> ApiError {
        use drycc_engine::EngineError;
        match error {
            EngineError::ProcessNotFound(name) => {
                ApiError::not_found(format!("process {name} not found"))
            }
            EngineError::Invalid(why) => ApiError::bad_request(why),
            EngineError::Unsupported(why) => ApiError::bad_request(why),
            error @ EngineError::Unavailable { .. } => ApiError::unavailable(error.detail()),
            EngineError::Io(error) => ApiError::internal(error),
        }
    }
}

impl From<crate::deploy::DeployError> for ApiError {
    fn from(error: crate::deploy::DeployError) -> ApiError {
        use crate::deploy::DeployError;
        match error {
            DeployError::ReleaseFailed { .. } | DeployError::Invalid(_) => {
                ApiError::bad_request(error.to_string())
            }
            DeployError::TimedOut(_) | DeployError::CrashLoop(_) => {
                ApiError::unavailable(error.to_string())
            }
            DeployError::Unavailable(_) => ApiError::unavailable(error.to_string()),
            DeployError::Store(error) => error.into(),
            DeployError::AppGone => ApiError::app_not_found(),
        }
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

/// `Json` whose rejections are `{"detail": ...}` 400s (or 413/415) instead
/// of axum's plain-text answers.
pub struct Json<T>(pub T);

impl<S, T> FromRequest<S> for Json<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(Json(value)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

fn json_rejection(rejection: JsonRejection) -> ApiError {
    match rejection {
        JsonRejection::MissingJsonContentType(_) => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Unsupported media type: send the body as JSON with `Content-Type: application/json`.",
        ),
        JsonRejection::BytesRejection(bytes) if bytes.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            crate::limits::body_too_large()
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
