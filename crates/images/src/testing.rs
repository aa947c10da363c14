//! Helpers for tests that need real images (feature `testing`): nothing can
//! be pulled, so images are built `FROM scratch` with the host's static
//! busybox, and pushed to the registry `scripts/with-docker.sh` starts.
//!
//! Tests skip when [`docker_from_env`] or [`test_registry`] is `None`, and
//! say so with [`skip`], so that a run without Docker is not mistaken for
//! a run that tested it.

use std::io::{self, Write};

use anyhow::{bail, Context};
use bollard::query_parameters::{BuildImageOptionsBuilder, PushImageOptionsBuilder};
use bollard::Docker;
use bytes::Bytes;
use futures::StreamExt;
use tokio::sync::mpsc;

use crate::parse_reference;

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
    let (sender, mut receiver) = mpsc::channel::<io::Result<Bytes>>(4);
    let archive = tokio::task::spawn_blocking(move || write_context(&dockerfile, sender));
    let body = futures::stream::poll_fn(move |cx| receiver.poll_recv(cx));

    let options = BuildImageOptionsBuilder::default()
        .t(tag)
        .rm(true)
        .forcerm(true)
        .build();
    let mut output = docker.build_image(options, None, Some(bollard::body_try_stream(body)));
    let mut log = String::new();
    let mut failure = None;
    while let Some(item) = output.next().await {
        match item {
            Ok(info) => log.extend(info.stream),
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
    }
    drop(output);
    // The archive's error only matters when the engine did not say what
    // went wrong (it stops reading on its own errors).
    let archived = archive.await.context("the build context writer panicked")?;
    if let Some(e) = failure {
        bail!(
            "building {tag} failed: {e} (the RUN step fails when {BUSYBOX} is not \
             statically linked: Debian's busybox-static is)\n{log}"
        );
    }
    archived.with_context(|| format!("cannot send the build context of {tag}"))?;
    Ok(())
}

/// Pushes `tag` (`registry/repository:tag`) to its registry.
pub async fn push(docker: &Docker, tag: &str) -> anyhow::Result<()> {
    negotiate(docker).await?;
    let reference = parse_reference(tag)?;
    let Some(image_tag) = reference.tag() else {
        bail!("push {tag}: name a tag to push");
    };
    // The name as given (Docker's short form included), without the tag.
    let name = tag
        .strip_suffix(image_tag)
        .and_then(|n| n.strip_suffix(':'))
        .unwrap_or(tag);
    let options = PushImageOptionsBuilder::default().tag(image_tag).build();
    let mut output = docker.push_image(name, Some(options), None);
    while let Some(item) = output.next().await {
        item.with_context(|| format!("pushing {tag} failed"))?;
    }
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

/// The build context: the Dockerfile and busybox, as a tar stream in
/// chunks over `sender`.
fn write_context(dockerfile: &str, sender: mpsc::Sender<io::Result<Bytes>>) -> io::Result<()> {
    let mut busybox = std::fs::File::open(BUSYBOX).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("{BUSYBOX}: {e} (Debian: apt-get install busybox-static)"),
        )
    })?;
    let mut archive = tar::Builder::new(ChunkWriter::new(sender));
    let mut header = tar::Header::new_gnu();
    header.set_size(dockerfile.len() as u64);
    header.set_mode(0o644);
    header.set_cksum();
    archive.append_data(&mut header, "Dockerfile", dockerfile.as_bytes())?;
    archive.append_file("busybox", &mut busybox)?;
    archive.into_inner()?.flush()
}

/// Sends what is written in chunks of `CHUNK` bytes.
struct ChunkWriter {
    sender: mpsc::Sender<io::Result<Bytes>>,
    buffer: Vec<u8>,
}

const CHUNK: usize = 64 * 1024;

impl ChunkWriter {
    fn new(sender: mpsc::Sender<io::Result<Bytes>>) -> Self {
        ChunkWriter {
            sender,
            buffer: Vec::with_capacity(CHUNK),
        }
    }

    fn send(&mut self) -> io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(
            &mut self.buffer,
            Vec::with_capacity(CHUNK),
        ));
        self.sender.blocking_send(Ok(chunk)).map_err(|_| {
            io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the Docker engine stopped reading the build context",
            )
        })
    }
}

impl Write for ChunkWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let room = CHUNK - self.buffer.len();
        let taken = data.len().min(room);
        self.buffer.extend_from_slice(&data[..taken]);
        if self.buffer.len() == CHUNK {
            self.send()?;
        }
        Ok(taken)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send()
    }
}
