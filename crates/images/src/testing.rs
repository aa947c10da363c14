//! Helpers for tests that need real images (feature `testing`): nothing can
//! be pulled, so images are built `FROM scratch` with the host's static
//! busybox, and pushed to the registry `scripts/with-docker.sh` starts.
//!
//! Tests skip when [`docker_from_env`] or [`test_registry`] is `None`, and
//! say so with [`skip`], so that a run without Docker is not mistaken for
//! a run that tested it.

use std::io::{self, Write};

use anyhow::Context;
pub use bollard::Docker;

/// The busybox the images are built from; it must be statically linked
/// (Debian: busybox-static), as `FROM scratch` has no libc.
pub const BUSYBOX: &str = "/bin/busybox";

/// The Docker engine named by `DOCKER_HOST`, or `None` when it is unset,
/// with the API version agreed on: bollard speaks the newest version, which
/// older engines (Debian's 20.10 speaks 1.41) refuse. The agreement is one
/// request, made on a thread of its own so that this can be called from
/// sync and async code alike; an engine that does not answer it is
/// reported, and the tests fail at their first request.
pub fn docker_from_env() -> Option<Docker> {
    let host = std::env::var("DOCKER_HOST")
        .ok()
        .filter(|h| !h.is_empty())?;
    let docker = match Docker::connect_with_host(&host) {
        Ok(docker) => docker,
        Err(e) => {
            let _ = writeln!(
                io::stderr(),
                "WARNING: DOCKER_HOST={host} cannot be used ({e}); Docker tests skipped"
            );
            return None;
        }
    };
    // The version is shared by every clone of `docker`.
    let probe = docker.clone();
    let agreed = std::thread::scope(|scope| {
        scope
            .spawn(|| -> anyhow::Result<()> {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?;
                runtime.block_on(probe.negotiate_version())?;
                Ok(())
            })
            .join()
    });
    match agreed {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            let _ = writeln!(
                io::stderr(),
                "WARNING: the Docker engine at DOCKER_HOST={host} does not answer: {e:#}"
            );
        }
        Err(_) => {
            let _ = writeln!(
                io::stderr(),
                "WARNING: asking {host} for its API version panicked"
            );
        }
    }
    Some(docker)
}

/// The registry of `DRYCC_TEST_REGISTRY` (`127.0.0.1:<port>`), or `None`.
pub fn test_registry() -> Option<String> {
    std::env::var("DRYCC_TEST_REGISTRY")
        .ok()
        .filter(|r| !r.is_empty())
}

/// Says loudly that `test` is skipped and why. Written to stderr directly
/// rather than with `eprintln!`, which the test harness captures (and
/// shows only for failing tests).
pub fn skip(test: &str, why: &str) {
    let _ = writeln!(
        io::stderr(),
        "WARNING: {test} skipped: {why} (run it under scripts/with-docker.sh)"
    );
}

/// Builds `tag`: `FROM scratch`, busybox as /bin/busybox with its applets
/// linked in /bin, then the lines of `dockerfile_tail` (`CMD [...]`,
/// `EXPOSE 5000`, ...). The build context is streamed to the engine as a
/// tar archive.
pub async fn build_busybox_image(
    docker: &Docker,
    tag: &str,
    dockerfile_tail: &str,
) -> anyhow::Result<()> {
    negotiate(docker).await?;
    let dockerfile = format!(
        "FROM scratch\n\
         COPY busybox /bin/busybox\n\
         RUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\n\
         {dockerfile_tail}\n"
    );
    let busybox = std::fs::read(BUSYBOX)
        .with_context(|| format!("{BUSYBOX} (Debian: apt-get install busybox-static)"))?;
    let files = vec![
        ("Dockerfile".to_string(), dockerfile.into_bytes()),
        ("busybox".to_string(), busybox),
    ];
    let mut log = String::new();
    crate::build::build_with(docker, tag, None, files, |line| {
        log.push_str(line);
        log.push('\n');
    })
    .await
    .with_context(|| {
        format!(
            "the RUN step fails when {BUSYBOX} is not statically linked (Debian's \
             busybox-static is)\n{log}"
        )
    })?;
    Ok(())
}

/// Pushes `tag` (`registry/repository:tag`) to its registry.
pub async fn push(docker: &Docker, tag: &str) -> anyhow::Result<()> {
    crate::push_image(docker, tag, |_| {}).await?;
    Ok(())
}

/// Agrees on the API version with the engine (shared by every clone of
/// `docker`): bollard speaks the newest one, which older engines refuse.
async fn negotiate(docker: &Docker) -> anyhow::Result<()> {
    docker
        .clone()
        .negotiate_version()
        .await
        .context("cannot talk to the Docker engine (DOCKER_HOST)")?;
    Ok(())
}
