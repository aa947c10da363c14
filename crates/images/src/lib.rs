//! Container image configs read without running the image: what a
//! container started from it runs (entrypoint, cmd), where (working
//! directory), with which environment and which TCP ports it exposes.
//!
//! [`Inspector::inspect`] asks the local Docker engine first (an image
//! built or pulled there need not be in any registry), then the image's
//! registry through the OCI distribution API: the manifest (OCI or Docker
//! v2, single image or multi-platform index) and the config blob, never the
//! layers. [`parse_reference`] checks a reference without any network
//! access, so a request naming a malformed or untagged image is answered
//! before anything else is done.
//!
//! With the `testing` feature, [`testing`] builds small images from the
//! host's static busybox and pushes them to the test registry started by
//! `scripts/with-docker.sh`.

// Input from users, files and the network must never panic the program.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod build;
mod config;
mod error;
mod inspect;
mod publish;
mod reference;
#[cfg(feature = "testing")]
pub mod testing;

pub use build::build_image;
pub use config::ImageConfig;
pub use error::{BoxError, ImageError};
pub use inspect::{Credentials, Inspector};
pub use publish::{build_slug_image, push_image, SLUG_DIR};
pub use reference::{parse_reference, ImageReference};

/// The Docker Engine API client this crate's API takes, for callers that
/// need the same version.
pub use bollard;
