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
                // A Namespace being deleted refuses new objects with a 403
                // that is no missing permission: retrying once it is gone
                // succeeds.
                403 if message.contains("being terminated") => EngineError::unavailable(format!(
                    "{what}: the app's namespace is still being deleted; try again once it is gone"
                )),
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

#[cfg(test)]
mod tests {
    use super::*;
    use kube::core::Status;

    fn api(code: u16, reason: &str, message: &str) -> kube::Error {
        kube::Error::Api(Status::failure(message, reason).with_code(code).boxed())
    }

    #[test]
    fn user_errors_are_invalid_and_the_rest_unavailable() {
        let e = engine_error(
            "applying deployment a-web",
            api(422, "Invalid", "spec.x: bad"),
        );
        assert!(
            matches!(&e, EngineError::Invalid(m) if m == "applying deployment a-web: spec.x: bad")
        );
        let e = engine_error("x", api(403, "Forbidden", "pods is forbidden: User \"u\""));
        assert!(matches!(&e, EngineError::Unavailable { .. }));
        assert!(e.to_string().contains("missing permission"), "{e}");
        let e = engine_error(
            "writing secret s",
            api(
                403,
                "Forbidden",
                "unable to create new content in namespace a because it is being terminated",
            ),
        );
        assert!(e.to_string().contains("still being deleted"), "{e}");
        let e = engine_error(
            "reading deployment d",
            api(500, "InternalError", "etcd is sad"),
        );
        assert!(matches!(&e, EngineError::Unavailable { .. }));
        assert!(e.detail().contains("etcd is sad"), "{}", e.detail());
        assert!(is_not_found(&api(404, "NotFound", "nope")));
        assert!(!is_not_found(&api(409, "Conflict", "again")));
    }
}
