//! API errors: every failure becomes `{"detail": "<message>"}` with a 4xx
//! status, a 503 when something it needs is unavailable, or a 500 for bugs
//! (logged, never caused by input). The services' errors get their status
//! here and nowhere else.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use drycc_api_types::ErrorDetail;
use drycc_engine::EngineError;
use drycc_store::StoreError;

use crate::service::{engine_message, DeployError, ServiceError};

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
            StoreError::Database(cause) if is_outage(&cause) => {
                tracing::warn!(%cause, "The state store is unavailable.");
                ApiError::unavailable(format!("the state store is unavailable: {cause}"))
            }
            other => ApiError::internal(other),
        }
    }
}

/// A database that cannot be reached (no connection in time, the pool
/// closed, the network or TLS failed), rather than one that refused.
fn is_outage(error: &sqlx::Error) -> bool {
    matches!(
        error,
        sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::WorkerCrashed
    )
}

impl From<EngineError> for ApiError {
    fn from(error: EngineError) -> ApiError {
        match &error {
            EngineError::ProcessNotFound(_) => ApiError::not_found(engine_message(&error)),
            EngineError::Invalid(_) | EngineError::Unsupported(_) => {
                ApiError::bad_request(engine_message(&error))
            }
            EngineError::Unavailable { .. } => ApiError::unavailable(error.detail()),
            EngineError::Io(error) => ApiError::internal(error),
        }
    }
}

impl From<DeployError> for ApiError {
    fn from(error: DeployError) -> ApiError {
        match error {
            DeployError::ReleaseFailed { .. } | DeployError::Refused(_) => {
                ApiError::bad_request(error.to_string())
            }
            DeployError::TimedOut(_)
            | DeployError::CrashLoop(_)
            | DeployError::Unavailable(_)
            | DeployError::Interrupted(_) => ApiError::unavailable(error.to_string()),
            DeployError::Engine(EngineError::ProcessNotFound(_)) => {
                ApiError::not_found(error.to_string())
            }
            DeployError::Engine(EngineError::Invalid(_) | EngineError::Unsupported(_)) => {
                ApiError::bad_request(error.to_string())
            }
            DeployError::Engine(_) => ApiError::unavailable(error.to_string()),
            DeployError::Store(error) => error.into(),
            DeployError::AppGone => ApiError::app_not_found(),
        }
    }
}

/// Every status a service's answer gets is decided here.
impl From<ServiceError> for ApiError {
    fn from(error: ServiceError) -> ApiError {
        match error {
            ServiceError::AppNotFound => ApiError::app_not_found(),
            ServiceError::Forbidden => ApiError::forbidden(),
            ServiceError::Unauthorized(why) => ApiError::unauthorized(why),
            ServiceError::NotFound(what) => ApiError::not_found(what),
            ServiceError::Invalid(why) => ApiError::bad_request(why),
            ServiceError::Conflict(what) => ApiError::conflict(what),
            ServiceError::Unavailable(why) => ApiError::unavailable(why),
            ServiceError::Scale(error) => {
                use drycc_model::scale::ScaleError;
                let message = error.to_string();
                match error {
                    ScaleError::UnknownType(_) => ApiError::not_found(message),
                    ScaleError::Autoscaled { .. } => ApiError::conflict(message),
                    _ => ApiError::bad_request(message),
                }
            }
            ServiceError::Deploy(error) => error.into(),
            ServiceError::Store(error) => error.into(),
            ServiceError::Engine(error) => error.into(),
            ServiceError::Internal(what) => ApiError::internal(what),
        }
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_error_gets_the_status_of_whose_fault_it_is() {
        let status = |error: ServiceError| ApiError::from(error).status;
        // A release that did not roll out is the user's to mend.
        let failed = DeployError::ReleaseFailed {
            version: 2,
            reason: "invalid deployment: bad is refused".into(),
        };
        let api = ApiError::from(ServiceError::from(failed));
        assert_eq!(api.status, StatusCode::BAD_REQUEST);
        assert_eq!(
            api.detail,
            "release v2 failed: invalid deployment: bad is refused"
        );
        // A missing process is a 404 however it is found missing.
        let missing = || EngineError::ProcessNotFound("web-1".into());
        assert_eq!(status(missing().into()), StatusCode::NOT_FOUND);
        assert_eq!(
            status(DeployError::from(missing()).into()),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            ApiError::from(DeployError::from(missing())).detail,
            "process web-1 not found"
        );
        // Outages are 503s with their cause; a stopping controller too.
        let outage = ApiError::from(StoreError::Database(sqlx::Error::PoolTimedOut));
        assert_eq!(outage.status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(outage
            .detail
            .starts_with("the state store is unavailable: "));
        assert_eq!(
            status(DeployError::Interrupted("stopping".into()).into()),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(
            status(ServiceError::invalid("count: not a number")),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(status(ServiceError::AppNotFound), StatusCode::NOT_FOUND);
        assert_eq!(status(ServiceError::Forbidden), StatusCode::FORBIDDEN);
    }
}
