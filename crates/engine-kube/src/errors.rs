//! What the API server's refusals mean to a Drycc user.
//!
//! Every call of the engine goes through [`engine_error`], which turns a
//! `kube::Error` into the engine's own error with a sentence an end user can
//! act on: a missing Pod is a missing process, a rejected object names the
//! fields the server objected to, a refusal by RBAC names the verb, resource
//! and namespace the controller's service account lacks, a conflict says
//! that the object changed meanwhile, and a server that cannot be reached
//! keeps its cause chain.

// Answers from the network must never panic the engine.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

use std::error::Error as StdError;
use std::fmt;

use drycc_engine::EngineError;
use kube::core::Status;

/// The engine's error for a failed API call. `what` says what was being
/// done, in the user's words ("scale web of myapp"), and starts every
/// message.
pub fn engine_error(what: &str, error: kube::Error) -> EngineError {
    match error {
        kube::Error::Api(status) => api_error(what, &status),
        // A request the client refused to build: its input was wrong
        // (an empty name, exec parameters that contradict each other).
        kube::Error::BuildRequest(cause) => EngineError::Invalid(format!("{what}: {cause}")),
        other if is_timeout(&other) => EngineError::Unavailable {
            what: format!("{what}: the Kubernetes API server did not answer in time"),
            source: Some(Box::new(Chain::of(&other))),
        },
        other => EngineError::Unavailable {
            what: format!("{what}: cannot reach the Kubernetes API server"),
            source: Some(Box::new(Chain::of(&other))),
        },
    }
}

/// Whether the call failed because the object changed or appeared
/// meanwhile (409): the engine re-reads and retries once.
pub fn is_conflict(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(status) if status.code == 409 || status.is_conflict())
}

/// Whether the object (or its namespace) does not exist (404).
pub fn is_not_found(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(status) if status.is_not_found())
}

fn api_error(what: &str, status: &Status) -> EngineError {
    let target = Target::of(status);
    let message = status.message.trim();
    match status.code {
        404 => match &target {
            Some(target) if singular(&target.resource) == "pod" && !target.name.is_empty() => {
                EngineError::ProcessNotFound(target.name.clone())
            }
            // Something the controller made is gone from the cluster (deleted
            // by hand, or its namespace is being removed): the next
            // reconcile makes it again, so it is worth a retry.
            Some(target) => EngineError::unavailable(format!(
                "{what}: {} not found in the cluster",
                target.describe()
            )),
            None => {
                EngineError::unavailable(format!("{what}: not found in the cluster: {message}"))
            }
        },
        422 => EngineError::Invalid(format!("{what}: {}", invalid(status, target.as_ref()))),
        403 => EngineError::unavailable(format!("{what}: {}", forbidden(message))),
        409 => EngineError::unavailable(format!(
            "conflict: {what}: {} changed meanwhile, retry",
            target
                .as_ref()
                .map(Target::describe)
                .unwrap_or_else(|| "the object".to_string())
        )),
        401 => EngineError::unavailable(format!(
            "{what}: the API server refused the controller's credentials \
             (an expired or revoked token?): {message}"
        )),
        400 => EngineError::Invalid(format!("{what}: {message}")),
        408 | 429 | 504 => EngineError::unavailable(format!(
            "{what}: the Kubernetes API server is too busy to answer in time, retry: {message}"
        )),
        _ if status.reason == "ServerTimeout" || status.reason == "Timeout" => {
            EngineError::unavailable(format!(
                "{what}: the Kubernetes API server is too busy to answer in time, retry: {message}"
            ))
        }
        code => EngineError::unavailable(format!(
            "{what}: the Kubernetes API server failed ({code}): {message}"
        )),
    }
}

/// The object a Status is about: from its details, or else from the
/// message's `resource.group "name"` that every server message starts with.
struct Target {
    /// Plural resource, without its group (`deployments`).
    resource: String,
    name: String,
}

impl Target {
    fn of(status: &Status) -> Option<Target> {
        if let Some(details) = &status.details {
            if !details.kind.is_empty() {
                return Some(Target {
                    resource: details.kind.to_ascii_lowercase(),
                    name: details.name.clone(),
                });
            }
        }
        Target::from_message(&status.message)
    }

    /// `pods "web-1" not found`, `Operation cannot be fulfilled on
    /// deployments.apps "web": ...`, `Deployment.apps "web" is invalid: ...`
    fn from_message(message: &str) -> Option<Target> {
        let quote = message.find('"')?;
        let rest = &message[quote + 1..];
        let name = &rest[..rest.find('"')?];
        let resource = message[..quote].trim_end().rsplit(' ').next()?;
        let resource = resource.split('.').next()?.to_ascii_lowercase();
        if resource.is_empty() {
            return None;
        }
        Some(Target {
            resource,
            name: name.to_string(),
        })
    }

    /// `deployment "myapp-web"`: the resource in the singular, as users
    /// and `kubectl get` name it.
    fn describe(&self) -> String {
        let kind = singular(&self.resource);
        if self.name.is_empty() {
            kind
        } else {
            format!("{kind} \"{}\"", self.name)
        }
    }
}

/// A resource's plural (`deployments`, `ingresses`) or kind (`Ingress`,
/// lowercased) in the singular.
fn singular(resource: &str) -> String {
    if let Some(stem) = resource.strip_suffix("sses") {
        format!("{stem}ss")
    } else if resource.ends_with("ss") {
        resource.to_string()
    } else {
        resource.strip_suffix('s').unwrap_or(resource).to_string()
    }
}

/// A 422: the fields the server refused and why, else its message.
fn invalid(status: &Status, target: Option<&Target>) -> String {
    let causes: Vec<String> = status
        .details
        .iter()
        .flat_map(|details| details.causes.iter())
        .filter(|cause| !cause.message.is_empty())
        .map(|cause| {
            if cause.field.is_empty() {
                cause.message.clone()
            } else {
                format!("{}: {}", cause.field, cause.message)
            }
        })
        .collect();
    if causes.is_empty() {
        return format!("the cluster refused it: {}", status.message.trim());
    }
    let object = target
        .map(Target::describe)
        .unwrap_or_else(|| "the object".to_string());
    format!("the cluster refused {object}: {}", causes.join("; "))
}

/// A 403, which RBAC phrases as `User "U" cannot VERB resource "R" in API
/// group "G" in the namespace "N"`.
fn forbidden(message: &str) -> String {
    // A namespace being deleted refuses new objects with a 403 too.
    if message.contains("because it is being terminated") {
        return format!("the app's namespace is being deleted, retry once it is gone: {message}");
    }
    let Some(rbac) = Rbac::parse(message) else {
        return format!("the cluster forbids it: {message}");
    };
    let resource = match rbac.group.as_deref() {
        Some(group) if !group.is_empty() => format!("{}.{group}", rbac.resource),
        _ => rbac.resource.clone(),
    };
    let scope = match &rbac.namespace {
        Some(namespace) => format!("in namespace \"{namespace}\""),
        None => "at cluster scope".to_string(),
    };
    // In a cluster the controller runs as a service account; elsewhere as
    // the kubeconfig's user.
    let who = if rbac.user.starts_with("system:serviceaccount:") {
        format!("the controller's service account ({})", rbac.user)
    } else {
        format!("the controller's user \"{}\"", rbac.user)
    };
    format!(
        "{who} lacks the permission to {} {resource} {scope}; \
         grant it in the controller's RBAC rules",
        rbac.verb
    )
}

struct Rbac {
    user: String,
    verb: String,
    resource: String,
    group: Option<String>,
    namespace: Option<String>,
}

impl Rbac {
    fn parse(message: &str) -> Option<Rbac> {
        let user = quoted_after(message, "User ")?;
        let verb = message
            .split("cannot ")
            .nth(1)?
            .split_whitespace()
            .next()?
            .to_string();
        let resource = quoted_after(message, "resource ")?;
        Some(Rbac {
            user,
            verb,
            resource,
            group: quoted_after(message, "API group "),
            namespace: quoted_after(message, "namespace "),
        })
    }
}

/// The text between the quotes that follow `key` in `text`.
fn quoted_after(text: &str, key: &str) -> Option<String> {
    let start = text.find(&format!("{key}\""))? + key.len() + 1;
    let rest = &text[start..];
    Some(rest[..rest.find('"')?].to_string())
}

fn is_timeout(error: &kube::Error) -> bool {
    let mut cause: Option<&(dyn StdError + 'static)> = Some(error);
    while let Some(error) = cause {
        if let Some(io) = error.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::TimedOut {
                return true;
            }
        }
        if error.is::<tokio::time::error::Elapsed>() {
            return true;
        }
        let text = error.to_string().to_ascii_lowercase();
        if text.contains("timed out") || text.contains("deadline has elapsed") {
            return true;
        }
        cause = error.source();
    }
    false
}

/// An error's cause chain as one line. Layers that repeat their cause in
/// their own message (`ServiceError: client error (Connect): ...`) are
/// trimmed so that each cause is said once.
#[derive(Debug)]
pub struct Chain(String);

impl Chain {
    pub fn of(error: &(dyn StdError + 'static)) -> Chain {
        let mut parts: Vec<String> = Vec::new();
        let mut cause = Some(error);
        while let Some(error) = cause {
            let mut text = error.to_string();
            if let Some(source) = error.source() {
                let inner = source.to_string();
                if let Some(own) = text.strip_suffix(&inner) {
                    text = own.trim_end_matches([':', ' ']).to_string();
                }
            }
            // kube's wrappers only name the layer (`ServiceError`).
            for prefix in ["ServiceError", "HyperError"] {
                if let Some(rest) = text.strip_prefix(prefix) {
                    text = rest.trim_start_matches([':', ' ']).to_string();
                }
            }
            if !text.is_empty() && parts.last() != Some(&text) {
                parts.push(text);
            }
            cause = error.source();
        }
        Chain(parts.join(": "))
    }
}

impl fmt::Display for Chain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl StdError for Chain {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_read_from_messages() {
        let t = Target::from_message(r#"pods "myapp-web-1" not found"#).unwrap();
        assert_eq!(
            (t.resource.as_str(), t.name.as_str()),
            ("pods", "myapp-web-1")
        );
        let t = Target::from_message(
            r#"Operation cannot be fulfilled on deployments.apps "myapp-web": the object has been modified"#,
        )
        .unwrap();
        assert_eq!(t.describe(), r#"deployment "myapp-web""#);
        assert!(Target::from_message("no quotes here").is_none());
    }

    #[test]
    fn resources_are_named_in_the_singular() {
        assert_eq!(singular("deployments"), "deployment");
        assert_eq!(singular("ingresses"), "ingress");
        assert_eq!(singular("ingress"), "ingress");
        assert_eq!(
            singular("horizontalpodautoscalers"),
            "horizontalpodautoscaler"
        );
        assert_eq!(singular("deployment"), "deployment");
    }

    #[test]
    fn a_user_that_is_no_service_account_is_named_as_a_user() {
        let text = forbidden(
            r#"pods is forbidden: User "admin" cannot list resource "pods" in API group "" in the namespace "myapp""#,
        );
        assert_eq!(
            text,
            "the controller's user \"admin\" lacks the permission to list pods in namespace \"myapp\"; \
             grant it in the controller's RBAC rules"
        );
    }

    #[test]
    fn rbac_refusals_are_parsed() {
        let rbac = Rbac::parse(
            r#"deployments.apps "x" is forbidden: User "system:serviceaccount:drycc:controller" cannot patch resource "deployments/scale" in API group "apps" in the namespace "myapp""#,
        )
        .unwrap();
        assert_eq!(rbac.user, "system:serviceaccount:drycc:controller");
        assert_eq!(rbac.verb, "patch");
        assert_eq!(rbac.resource, "deployments/scale");
        assert_eq!(rbac.group.as_deref(), Some("apps"));
        assert_eq!(rbac.namespace.as_deref(), Some("myapp"));
    }
}
