//! The errors of a buildpack build, each with a message a user can act on.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum BuildpackError {
    #[error("invalid buildpack \"{spec}\": {reason}")]
    InvalidSpec { spec: String, reason: String },
    #[error("unknown built-in buildpack \"{0}\" (built in: {1})")]
    UnknownBuiltin(String, String),
    #[error("cannot fetch buildpack {spec}: {reason}")]
    Fetch { spec: String, reason: String },
    #[error("{spec} is not a buildpack: it has no bin/{missing}")]
    NotABuildpack { spec: String, missing: &'static str },
    #[error("the {0} buildpack does not apply to this app (bin/detect failed)")]
    NotDetected(String),
    #[error("no buildpack applies to this app (tried: {0}): add a Procfile, set BUILDPACK_URL or list buildpacks in .buildpacks")]
    NoneDetected(String),
    #[error("the {name} buildpack failed to compile ({status})")]
    CompileFailed { name: String, status: String },
    #[error("bin/release of the {name} buildpack failed: {reason}")]
    ReleaseFailed { name: String, reason: String },
    #[error("{context} {path}: {source}")]
    Io {
        context: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl BuildpackError {
    pub(crate) fn io(
        context: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> BuildpackError {
        let path = path.into();
        move |source| BuildpackError::Io {
            context,
            path,
            source,
        }
    }
}

pub type Result<T> = std::result::Result<T, BuildpackError>;
