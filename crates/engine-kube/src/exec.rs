//! Commands run in a process's Pod through its `exec` subresource: a
//! WebSocket to the API server (channel.k8s.io, one byte of channel before
//! each frame), relayed to and from the engine's `ExecSession`.
//!
//! Input (stdin, end of stdin, terminal resizes) goes through a task of its
//! own so that a command that reads little can never stall its output.
//! Output is pumped per stream; the exit code comes from the Status the
//! server sends on its status channel once the command ended, and
//! `ExecOutput::Exit` is sent after every byte of output.

// Answers from the network must never panic the engine.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

use std::time::Duration;

use bytes::Bytes;
use futures::{FutureExt, SinkExt};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Status;
use kube::api::{AttachParams, TerminalSize};
use kube::{Api, Client};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, watch};

use crate::errors::engine_error;
use drycc_engine::{EngineError, ExecInput, ExecOutput, ExecRequest, ExecSession, Result};

/// Output chunk size; also the size of each stream's pipe inside kube.
const CHUNK: usize = 16 * 1024;
/// The shell's codes for a command that is missing or cannot be executed,
/// as the other engines give them.
const NOT_FOUND: i32 = 127;
const NOT_EXECUTABLE: i32 = 126;
/// The connection ended without telling how the command ended.
const UNKNOWN_EXIT: i32 = 255;
/// How long the last resize may take to reach the server before the
/// input side is dropped with the session.
const RESIZE_TIMEOUT: Duration = Duration::from_secs(5);

/// Start `request.command` in `container` (the Pod's only one when
/// `None`) of `pod`. Errors before the command started (no such Pod, a
/// refusal of the server) are the engine's; everything after, including a
/// command that does not exist in the image, ends the session with an exit
/// code.
pub async fn exec(
    client: Client,
    namespace: &str,
    pod: &str,
    container: Option<&str>,
    request: ExecRequest,
) -> Result<ExecSession> {
    if request.command.is_empty() {
        return Err(EngineError::Invalid("exec needs a command".to_string()));
    }
    let api: Api<Pod> = Api::namespaced(client, namespace);
    let params = AttachParams {
        container: container.map(str::to_string),
        stdin: request.stdin,
        stdout: true,
        // A terminal carries both streams as one, as it does locally.
        stderr: !request.tty,
        tty: request.tty,
        max_stdin_buf_size: Some(CHUNK),
        max_stdout_buf_size: Some(CHUNK),
        max_stderr_buf_size: Some(CHUNK),
    };
    let mut attached = api
        .exec(pod, request.command.clone(), &params)
        .await
        .map_err(|error| engine_error(&format!("exec in process {pod}"), error))?;

    let (input_tx, input_rx) = mpsc::channel(64);
    let (output_tx, output_rx) = mpsc::channel(64);
    let (finished_tx, finished_rx) = watch::channel(false);
    let writer = tokio::spawn(relay_input(
        input_rx,
        attached.stdin(),
        attached.terminal_size(),
        request.size.filter(|_| request.tty),
    ));
    let mut pumps = Vec::new();
    if let Some(stdout) = attached.stdout() {
        pumps.push(tokio::spawn(pump(
            stdout,
            output_tx.clone(),
            finished_rx.clone(),
            ExecOutput::Stdout,
        )));
    }
    if let Some(stderr) = attached.stderr() {
        pumps.push(tokio::spawn(pump(
            stderr,
            output_tx.clone(),
            finished_rx,
            ExecOutput::Stderr,
        )));
    }
    let status = attached.take_status();
    tokio::spawn(async move {
        let status = async move {
            match status {
                Some(status) => status.await,
                None => None,
            }
        };
        let status = tokio::select! {
            status = status => status,
            // Nobody reads any more: dropping the process closes the
            // WebSocket, and the server ends the command.
            _ = output_tx.closed() => {
                writer.abort();
                return;
            }
        };
        // The message loop ends right after the status (or has ended
        // without one): once it has, every byte of output is in the pipes.
        let ended = attached.join().await;
        let _ = finished_tx.send(true);
        for pump in pumps {
            let _ = pump.await;
        }
        writer.abort();
        let failure = ended.err().map(|error| error.to_string());
        let (code, message) = exit_of(status.as_ref(), failure);
        if let Some(message) = message {
            let _ = output_tx
                .send(ExecOutput::Stderr(Bytes::from(message + "\n")))
                .await;
        }
        let _ = output_tx.send(ExecOutput::Exit(code)).await;
    });
    Ok(ExecSession {
        input: input_tx,
        output: output_rx,
    })
}

/// The engine's input, written to the WebSocket by kube's message loop.
async fn relay_input<W>(
    mut input: mpsc::Receiver<ExecInput>,
    mut stdin: Option<W>,
    mut resize: Option<futures::channel::mpsc::Sender<TerminalSize>>,
    initial: Option<(u16, u16)>,
) where
    W: tokio::io::AsyncWrite + Unpin,
{
    if let (Some(sender), Some((width, height))) = (resize.as_mut(), initial) {
        send_size(sender, width, height).await;
    }
    while let Some(message) = input.recv().await {
        match message {
            ExecInput::Stdin(data) => {
                if let Some(pipe) = stdin.as_mut() {
                    if pipe.write_all(&data).await.is_err() || pipe.flush().await.is_err() {
                        // The session is ending; drop the rest.
                        stdin = None;
                    }
                }
            }
            // Shutting the pipe down is the end of file: kube sends the
            // stream close of v5.channel.k8s.io (or, on v4, closes the
            // WebSocket, the only end of stdin that version knows).
            ExecInput::Eof => {
                if let Some(mut pipe) = stdin.take() {
                    let _ = pipe.shutdown().await;
                }
            }
            ExecInput::Resize { width, height } => {
                if let Some(sender) = resize.as_mut() {
                    send_size(sender, width, height).await;
                }
            }
        }
    }
    // The client dropped its input: that is the end of stdin too.
    if let Some(mut pipe) = stdin.take() {
        let _ = pipe.shutdown().await;
    }
}

async fn send_size(
    sender: &mut futures::channel::mpsc::Sender<TerminalSize>,
    width: u16,
    height: u16,
) {
    let size = TerminalSize { width, height };
    if tokio::time::timeout(RESIZE_TIMEOUT, sender.send(size))
        .await
        .is_err()
    {
        tracing::debug!("a terminal resize did not reach the exec connection");
    }
}

enum Step {
    Read(std::io::Result<usize>),
    Finished,
}

/// Copy one output stream to the session until its end. Once the message
/// loop has `finished`, what is left in the pipe is read without waiting:
/// a loop that stopped on an error never closes its pipes.
async fn pump<R>(
    mut stream: R,
    output: mpsc::Sender<ExecOutput>,
    mut finished: watch::Receiver<bool>,
    wrap: fn(Bytes) -> ExecOutput,
) where
    R: AsyncRead + Unpin,
{
    let mut buf = vec![0u8; CHUNK];
    let mut draining = false;
    loop {
        let step = if draining {
            match stream.read(&mut buf).now_or_never() {
                Some(read) => Step::Read(read),
                None => return,
            }
        } else {
            tokio::select! {
                biased;
                read = stream.read(&mut buf) => Step::Read(read),
                _ = finished.wait_for(|done| *done) => Step::Finished,
            }
        };
        match step {
            Step::Read(Ok(0)) | Step::Read(Err(_)) => return,
            Step::Read(Ok(n)) => {
                if output
                    .send(wrap(Bytes::copy_from_slice(&buf[..n])))
                    .await
                    .is_err()
                {
                    return;
                }
            }
            Step::Finished => draining = true,
        }
    }
}

/// The exit code the server reported, and a line for stderr when the
/// command did not run or the connection failed. Kubernetes reports
/// `Success`, or `NonZeroExitCode` with the code as an `ExitCode` cause;
/// a command the runtime could not start is a `Failure` whose message says
/// why.
fn exit_of(status: Option<&Status>, failure: Option<String>) -> (i32, Option<String>) {
    let Some(status) = status else {
        let why = match failure {
            Some(error) => format!("the exec connection failed: {error}"),
            None => "the exec connection closed before the command's exit status".to_string(),
        };
        return (UNKNOWN_EXIT, Some(why));
    };
    if status.status.as_deref() == Some("Success") {
        return (0, None);
    }
    let message = status.message.clone().unwrap_or_default();
    if status.reason.as_deref() == Some("NonZeroExitCode") {
        let cause = status
            .details
            .iter()
            .flat_map(|details| details.causes.iter().flatten())
            .find(|cause| cause.reason.as_deref() == Some("ExitCode"))
            .and_then(|cause| cause.message.as_deref()?.trim().parse::<i32>().ok());
        // The message ends with "exit code N" when no cause says it.
        let code = cause.or_else(|| {
            message
                .rsplit("exit code ")
                .next()
                .and_then(|tail| tail.trim().parse().ok())
        });
        return (code.unwrap_or(1), None);
    }
    let lower = message.to_ascii_lowercase();
    let code = if lower.contains("not found") || lower.contains("no such file") {
        NOT_FOUND
    } else if lower.contains("permission denied") || lower.contains("not executable") {
        NOT_EXECUTABLE
    } else {
        1
    };
    let message = if message.is_empty() {
        "the command failed to run".to_string()
    } else {
        message
    };
    (code, Some(message))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{StatusCause, StatusDetails};

    fn status(status: &str, reason: Option<&str>, message: &str) -> Status {
        Status {
            status: Some(status.to_string()),
            reason: reason.map(str::to_string),
            message: Some(message.to_string()),
            ..Status::default()
        }
    }

    #[test]
    fn exit_codes_follow_the_status() {
        assert_eq!(exit_of(Some(&status("Success", None, "")), None), (0, None));
        let mut failed = status(
            "Failure",
            Some("NonZeroExitCode"),
            "command terminated with non-zero exit code: error executing command [sh -c exit 3], exit code 3",
        );
        assert_eq!(exit_of(Some(&failed), None).0, 3);
        failed.details = Some(StatusDetails {
            causes: Some(vec![StatusCause {
                reason: Some("ExitCode".to_string()),
                message: Some("42".to_string()),
                field: None,
            }]),
            ..StatusDetails::default()
        });
        assert_eq!(exit_of(Some(&failed), None).0, 42);
        let missing = status(
            "Failure",
            Some("InternalError"),
            r#"OCI runtime exec failed: exec: "nope": executable file not found in $PATH"#,
        );
        let (code, message) = exit_of(Some(&missing), None);
        assert_eq!(code, 127);
        assert!(message.unwrap().contains("executable file not found"));
        let (code, message) = exit_of(None, None);
        assert_eq!(code, 255);
        assert!(message.unwrap().contains("closed before"));
    }
}
