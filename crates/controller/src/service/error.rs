//! What a service answers when it cannot do what was asked. Each variant
//! says whose fault it is; `http::error` is the one place that turns them
//! into statuses, and a loop logs them with their sources.

use drycc_engine::EngineError;
use drycc_store::StoreError;

use crate::reconciler::Fault;

/// Why a request of a user (or a loop) was not done.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// No such app, or one the user may not see (404).
    #[error("No App matches the given query.")]
    AppNotFound,
    /// The user may see the app but not change it (403).
    #[error("You do not have permission to perform this action.")]
    Forbidden,
    /// No credentials, or invalid or expired ones (401).
    #[error("{0}")]
    Unauthorized(String),
    /// Something the request names does not exist (404).
    #[error("{0}")]
    NotFound(String),
    /// The request is wrong; the reason says how (400).
    #[error("{0}")]
    Invalid(String),
    /// The request conflicts with the current state (409).
    #[error("{0}")]
    Conflict(String),
    /// Something the request needs is not there now (503).
    #[error("{0}")]
    Unavailable(String),
    /// A scale request the model refuses.
    #[error(transparent)]
    Scale(#[from] drycc_model::scale::ScaleError),
    /// The change was written but did not take effect.
    #[error(transparent)]
    Deploy(#[from] DeployError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// A bug, never caused by input (500, logged).
    #[error("{0}")]
    Internal(String),
}

pub type ServiceResult<T> = Result<T, ServiceError>;

impl ServiceError {
    pub fn invalid(reason: impl Into<String>) -> ServiceError {
        ServiceError::Invalid(reason.into())
    }
    pub fn not_found(what: impl Into<String>) -> ServiceError {
        ServiceError::NotFound(what.into())
    }
    pub fn conflict(what: impl Into<String>) -> ServiceError {
        ServiceError::Conflict(what.into())
    }
    pub fn unauthorized(why: impl Into<String>) -> ServiceError {
        ServiceError::Unauthorized(why.into())
    }
    pub fn unavailable(why: impl Into<String>) -> ServiceError {
        ServiceError::Unavailable(why.into())
    }
    pub fn internal(error: impl std::fmt::Display) -> ServiceError {
        ServiceError::Internal(error.to_string())
    }
}

/// Why a change did not take effect, from the store to the engine.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    /// The release was created but did not roll out: it is marked failed
    /// with the reason and the last good release runs again (400).
    #[error("release v{version} failed: {reason}")]
    ReleaseFailed { version: u32, reason: String },
    /// Processes did not converge within the deploy timeout; the desired
    /// state stays and the engine keeps trying (503).
    #[error("{0}")]
    TimedOut(String),
    /// A new process keeps crashing (503).
    #[error("{0}")]
    CrashLoop(String),
    /// The engine refused the desired state, as the reconciler found
    /// (400, with its reason).
    #[error("{0}")]
    Refused(String),
    /// The reconciler cannot reach the engine, or this controller cannot
    /// wait any longer (stopping, stepped down) (503).
    #[error("engine unavailable: {0}")]
    Unavailable(String),
    /// The controller stops or stopped leading: the change is saved and
    /// goes on (503).
    #[error("{0}")]
    Interrupted(String),
    /// An engine call of the waiter failed (by the engine error's kind).
    #[error("{}", engine_message(.0))]
    Engine(#[source] EngineError),
    /// The store failed (503) or did not find something (404).
    #[error("the state store failed: {0}")]
    Store(#[from] StoreError),
    /// The app was destroyed meanwhile (404).
    #[error("the app no longer exists")]
    AppGone,
}

impl From<EngineError> for DeployError {
    fn from(error: EngineError) -> DeployError {
        DeployError::Engine(error)
    }
}

impl From<Fault> for DeployError {
    fn from(fault: Fault) -> DeployError {
        match fault {
            Fault::Invalid(reason) => DeployError::Refused(reason),
            Fault::Unavailable(reason) => DeployError::Unavailable(reason),
        }
    }
}

/// What a user is told of an engine error: its reason, and what was
/// unavailable when it was.
pub fn engine_message(error: &EngineError) -> String {
    match error {
        EngineError::ProcessNotFound(name) => format!("process {name} not found"),
        EngineError::Invalid(reason) | EngineError::Unsupported(reason) => reason.clone(),
        EngineError::Unavailable { .. } => format!("engine unavailable: {}", error.detail()),
        EngineError::Io(error) => format!("engine unavailable: {error}"),
    }
}
