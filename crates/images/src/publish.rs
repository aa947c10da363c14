//! Images made by the platform for engines that run only images (a
//! cluster): a source app's slug on top of the slug image, and pushing an
//! image to the platform's registry.

use std::path::PathBuf;

use bollard::query_parameters::PushImageOptionsBuilder;
use bollard::Docker;
use futures::StreamExt;

use crate::build::build_with;
use crate::{parse_reference, ImageError};

/// Where a slug lives in its image; processes start there (`HOME` too, as
/// on the local engine and in slug containers).
pub const SLUG_DIR: &str = "/app";

/// Build `tag`: `base` (an image with `/bin/sh` and the runtimes apps
/// need) with the slug directory's files at [`SLUG_DIR`] and `/bin/sh -c`
/// as its entrypoint.
pub async fn build_slug_image(
    docker: &Docker,
    base: &str,
    slug: PathBuf,
    tag: &str,
    output: impl FnMut(&str),
) -> Result<(), ImageError> {
    // Processes are Procfile lines: the image's entrypoint is the shell
    // that runs them (its argument, the line, is the container's args).
    let dockerfile = format!(
        "FROM {base}\nCOPY . {SLUG_DIR}\nWORKDIR {SLUG_DIR}\nENV HOME={SLUG_DIR}\n\
         ENTRYPOINT [\"/bin/sh\", \"-c\"]\nCMD []\n"
    );
    // The Dockerfile goes in the archive's root, not in the slug: a slug's
    // own file of that name (an app's) would otherwise be built instead.
    build_with(
        docker,
        tag,
        Some(slug),
        vec![("Dockerfile".to_string(), dockerfile.into_bytes())],
        output,
    )
    .await
}

/// Push `tag` (`registry/repository:tag`) from the Docker engine to its
/// registry, giving each status line to `output`.
pub async fn push_image(
    docker: &Docker,
    tag: &str,
    mut output: impl FnMut(&str),
) -> Result<(), ImageError> {
    docker
        .clone()
        .negotiate_version()
        .await
        .map_err(|source| ImageError::Docker { source })?;
    let reference = parse_reference(tag)?;
    let Some(image_tag) = reference.tag() else {
        return Err(ImageError::MissingTag {
            reference: tag.to_string(),
        });
    };
    let name = tag
        .strip_suffix(image_tag)
        .and_then(|n| n.strip_suffix(':'))
        .unwrap_or(tag);
    let options = PushImageOptionsBuilder::default().tag(image_tag).build();
    let mut stream = docker.push_image(name, Some(options), None);
    while let Some(item) = stream.next().await {
        match item {
            Ok(info) => {
                if let Some(error) = info.error_detail.and_then(|d| d.message) {
                    return Err(push_failed(tag, error));
                }
                if let Some(status) = info.status {
                    output(&status);
                }
            }
            Err(bollard::errors::Error::DockerStreamError { error }) => {
                return Err(push_failed(tag, error))
            }
            Err(bollard::errors::Error::DockerResponseServerError { message, .. }) => {
                return Err(push_failed(tag, message))
            }
            Err(source) => return Err(ImageError::Docker { source }),
        }
    }
    Ok(())
}

fn push_failed(tag: &str, reason: String) -> ImageError {
    ImageError::Push {
        tag: tag.to_string(),
        reason: reason.trim().to_string(),
    }
}
