//! Dockerfile builds on the Docker engine: the context directory is sent as
//! a tar archive written in chunks while the engine reads it (never whole
//! in memory), and the build's output is handed over line by line.

use std::io::{self, Write};
use std::path::PathBuf;

use bollard::query_parameters::BuildImageOptionsBuilder;
use bollard::Docker;
use bytes::Bytes;
use futures::StreamExt;
use tokio::sync::mpsc;

use crate::ImageError;

/// Files added at the top of the archive besides the context directory's:
/// (name, contents).
pub(crate) type Extra = Vec<(String, Vec<u8>)>;

/// Build `tag` from `context` (a directory with a `Dockerfile` at its top),
/// giving each line of the engine's output to `output`.
pub async fn build_image(
    docker: &Docker,
    tag: &str,
    context: PathBuf,
    output: impl FnMut(&str),
) -> Result<(), ImageError> {
    build_with(docker, tag, Some(context), Vec::new(), output).await
}

pub(crate) async fn build_with(
    docker: &Docker,
    tag: &str,
    context: Option<PathBuf>,
    extra: Extra,
    mut output: impl FnMut(&str),
) -> Result<(), ImageError> {
    docker
        .clone()
        .negotiate_version()
        .await
        .map_err(|source| ImageError::Docker { source })?;
    let (sender, mut receiver) = mpsc::channel::<io::Result<Bytes>>(4);
    let archive = tokio::task::spawn_blocking(move || write_context(context, extra, sender));
    let body = futures::stream::poll_fn(move |cx| receiver.poll_recv(cx));
    let options = BuildImageOptionsBuilder::default()
        .t(tag)
        .rm(true)
        .forcerm(true)
        .build();
    let mut stream = docker.build_image(options, None, Some(bollard::body_try_stream(body)));
    let mut failure = None;
    while let Some(item) = stream.next().await {
        match item {
            Ok(info) => {
                if let Some(text) = &info.stream {
                    for line in text.lines().filter(|l| !l.trim().is_empty()) {
                        output(line);
                    }
                }
                if let Some(error) = info.error_detail.and_then(|d| d.message) {
                    failure = Some(error);
                    break;
                }
            }
            Err(bollard::errors::Error::DockerStreamError { error }) => {
                failure = Some(error);
                break;
            }
            Err(bollard::errors::Error::DockerResponseServerError { message, .. }) => {
                failure = Some(message);
                break;
            }
            Err(source) => return Err(ImageError::Docker { source }),
        }
    }
    drop(stream);
    // The archive's own error only matters when the engine did not say
    // what went wrong (it stops reading on its own errors).
    let archived = archive.await.map_err(|e| ImageError::Build {
        tag: tag.to_string(),
        reason: format!("the build context writer failed: {e}"),
    })?;
    if let Some(reason) = failure {
        return Err(ImageError::Build {
            tag: tag.to_string(),
            reason: reason.trim().to_string(),
        });
    }
    archived.map_err(|e| ImageError::Build {
        tag: tag.to_string(),
        reason: format!("cannot send the build context: {e}"),
    })
}

/// The build context as a tar stream in chunks over `sender`.
fn write_context(
    context: Option<PathBuf>,
    extra: Extra,
    sender: mpsc::Sender<io::Result<Bytes>>,
) -> io::Result<()> {
    let mut archive = tar::Builder::new(ChunkWriter::new(sender));
    // Symbolic links stay links: the engine resolves them inside the
    // context, never on this machine.
    archive.follow_symlinks(false);
    if let Some(dir) = context {
        archive.append_dir_all(".", &dir)?;
    }
    for (name, data) in extra {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o755);
        header.set_cksum();
        archive.append_data(&mut header, name, data.as_slice())?;
    }
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
