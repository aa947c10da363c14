//! API server errors as engine errors: a user's mistake (`Invalid`) is
//! told apart from a cluster that cannot act now (`Unavailable`), and the
//! server's own message is kept.

use drycc_engine::EngineError;

/// `what` failed with `error`.
pub fn engine_error(what: &str, error: kube::Error) -> EngineError {
    match &error {
        kube::Error::Api(status) => {
            let message = if status.message.is_empty() {
                status.reason.clone()
            } else {
                status.message.clone()
            };
            match status.code {
                400 | 422 => EngineError::Invalid(format!("{what}: {message}")),
                403 => EngineError::unavailable(format!(
                    "{what}: the cluster refused it (missing permission?): {message}"
                )),
                _ => EngineError::unavailable_because(what.to_string(), error),
            }
        }
        _ => EngineError::unavailable_because(what.to_string(), error),
    }
}

/// Whether the API server said the object is not there.
pub fn is_not_found(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(status) if status.code == 404)
}
