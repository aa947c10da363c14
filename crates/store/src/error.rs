//! The one error type of the store.

/// Everything a [`Store`](crate::Store) method can fail with.
///
/// `NotFound`, `Conflict` and `Exhausted` carry a message meant for the API
/// user (the controller maps them to 404 and 409); the other variants are faults of the
/// database or of stored data and map to 5xx.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The addressed row does not exist.
    #[error("{0}")]
    NotFound(String),
    /// A uniqueness rule forbids the change.
    #[error("{0}")]
    Conflict(String),
    /// A configured range has nothing left to give (app user ids).
    #[error("{0}")]
    Exhausted(String),
    /// The database refused or failed.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// A JSON column could not be written or read.
    #[error("invalid JSON in the store: {0}")]
    Serde(#[from] serde_json::Error),
    /// The schema migrations failed.
    #[error("migration failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    /// A stored value does not have the shape the schema promises
    /// (a timestamp that is not RFC 3339, a negative version, ...).
    #[error("corrupt data in the store: {0}")]
    Corrupt(String),
    /// The database URL is not one the store understands.
    #[error("unsupported database URL: {0}")]
    UnsupportedUrl(String),
}

impl StoreError {
    /// True when the error is a violated UNIQUE or PRIMARY KEY constraint.
    pub(crate) fn is_unique_violation(&self) -> bool {
        matches!(self, StoreError::Database(sqlx::Error::Database(e)) if e.is_unique_violation())
    }
}

/// Shorthand used by every method of the store.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Maps a UNIQUE violation to `Conflict(msg)`, any other error to `Database`.
pub(crate) fn conflict_if_unique(msg: &str) -> impl FnOnce(sqlx::Error) -> StoreError + '_ {
    move |e| {
        let e = StoreError::from(e);
        if e.is_unique_violation() {
            StoreError::Conflict(msg.to_string())
        } else {
            e
        }
    }
}
