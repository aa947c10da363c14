//! The errors of reading an image's config, each with a message a user can
//! act on: what is wrong and what is allowed.

/// A failure of a registry client, boxed so that the HTTP client this crate
/// uses is not part of its API.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("invalid image reference \"{reference}\": {reason}")]
    InvalidReference { reference: String, reason: String },
    #[error(
        "image reference \"{reference}\" has no tag: name the version explicitly, \
         e.g. \"{reference}:1.0\" or \"{reference}@sha256:<digest>\" (no tag means no version, \
         not \"latest\")"
    )]
    MissingTag { reference: String },
    #[error(
        "image {reference} not found: its registry has no such repository, \
         or no such tag or digest in it"
    )]
    NotFound { reference: String },
    #[error(
        "access to image {reference} was refused: the registry wants credentials, or the \
         ones given are wrong or may not pull it (some registries answer this way for a \
         repository that does not exist)"
    )]
    Unauthorized { reference: String },
    #[error(
        "cannot reach the registry {registry}: {}; check the address and that the registry \
         is up (registries on 127.0.0.1, localhost and [::1] are spoken to over HTTP, \
         all others over HTTPS)",
        root_cause(.source.as_ref())
    )]
    RegistryUnreachable {
        registry: String,
        #[source]
        source: BoxError,
    },
    #[error("{reference} is not a container image: its config has media type {media_type}")]
    NotAnImage {
        reference: String,
        media_type: String,
    },
    #[error("cannot read image {reference} from its registry: {}", chain(.source.as_ref()))]
    Registry {
        reference: String,
        #[source]
        source: BoxError,
    },
    /// A Dockerfile build failed: the engine's message (a failing step,
    /// a syntax error) and the end of the build's output.
    #[error("building {tag} failed: {reason}")]
    Build { tag: String, reason: String },
    /// The registry refused a push (or the engine could not reach it).
    #[error("pushing {tag} failed: {reason}")]
    Push { tag: String, reason: String },
    #[error("the Docker engine failed: {}", chain(.source))]
    Docker {
        #[source]
        source: bollard::errors::Error,
    },
}

/// The innermost error: for a failed connection the one that says why
/// ("Connection refused", a DNS or TLS failure) under the layers that say
/// which request failed.
fn root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut current = error;
    while let Some(next) = current.source() {
        current = next;
    }
    current.to_string()
}

/// Every message of an error and its sources, outermost first, skipping a
/// source whose message the outer one already contains.
fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut current = error.source();
    while let Some(next) = current {
        let message = next.to_string();
        if !text.contains(&message) {
            text.push_str(": ");
            text.push_str(&message);
        }
        current = next.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn unreachable_names_the_root_cause() {
        let source = Outer(std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            "Connection refused",
        ));
        let error = ImageError::RegistryUnreachable {
            registry: "127.0.0.1:1".into(),
            source: Box::new(source),
        };
        let message = error.to_string();
        assert!(
            message.starts_with("cannot reach the registry 127.0.0.1:1: Connection refused;"),
            "{message}"
        );
    }

    #[test]
    fn registry_errors_show_their_chain_once() {
        let source = Outer(std::io::Error::other("inner"));
        let error = ImageError::Registry {
            reference: "r/a:1".into(),
            source: Box::new(source),
        };
        assert_eq!(
            error.to_string(),
            "cannot read image r/a:1 from its registry: outer: inner"
        );
    }

    #[test]
    fn missing_tag_shows_an_example() {
        let error = ImageError::MissingTag {
            reference: "host:5000/example".into(),
        };
        let message = error.to_string();
        assert!(message.contains("\"host:5000/example:1.0\""), "{message}");
    }
}
