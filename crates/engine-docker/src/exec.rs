//! Commands run in a process's container (`docker exec`), attached: stdin
//! when asked, stdout and stderr (one stream with a TTY), terminal resizes,
//! and the exit code read back from the exec once its output ended.

use std::sync::Arc;
use std::time::Duration;

use bollard::container::LogOutput;
use bollard::exec::{CreateExecOptions, ResizeExecOptions, StartExecOptions, StartExecResults};
use futures::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

use crate::container::{self, status_of};
use crate::state::Shared;
use drycc_engine::{EngineError, ExecInput, ExecOutput, ExecRequest, ExecSession, Result};

/// The exit code when the daemon cannot tell it.
const UNKNOWN_EXIT: i32 = -1;

pub(crate) async fn start(
    shared: &Arc<Shared>,
    name: &str,
    request: ExecRequest,
) -> Result<ExecSession> {
    if request.command.is_empty() {
        return Err(EngineError::Invalid("exec needs a command".to_string()));
    }
    let docker = shared.docker.clone();
    let options = CreateExecOptions {
        cmd: Some(request.command.clone()),
        attach_stdin: Some(request.stdin),
        attach_stdout: Some(true),
        attach_stderr: Some(true),
        tty: Some(request.tty),
        ..CreateExecOptions::default()
    };
    let created = docker
        .create_exec(name, options)
        .await
        .map_err(|e| match status_of(&e) {
            Some(404) => EngineError::ProcessNotFound(name.to_string()),
            Some(409) => EngineError::Invalid(format!(
                "process {name} is not running; exec needs a running process"
            )),
            _ => container::map_error("exec", e),
        })?;
    let id = created.id;
    let start = StartExecOptions {
        detach: false,
        tty: request.tty,
        output_capacity: None,
    };
    let (mut output, mut input) = match docker
        .start_exec(&id, Some(start))
        .await
        .map_err(|e| container::map_error("exec", e))?
    {
        StartExecResults::Attached { output, input } => (output, input),
        StartExecResults::Detached => {
            return Err(EngineError::unavailable("the exec did not attach"));
        }
    };
    if request.tty {
        if let Some((width, height)) = request.size {
            resize(&docker, &id, width, height).await;
        }
    }
    let (input_tx, mut input_rx) = mpsc::channel::<ExecInput>(64);
    let (output_tx, output_rx) = mpsc::channel::<ExecOutput>(64);
    let cancel = shared.cancel.clone();
    shared.tasks.spawn(async move {
        let mut input_open = true;
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                message = input_rx.recv(), if input_open => match message {
                    Some(ExecInput::Stdin(bytes)) => {
                        if input.write_all(&bytes).await.is_err() || input.flush().await.is_err() {
                            input_open = false;
                        }
                    }
                    Some(ExecInput::Resize { width, height }) => {
                        resize(&docker, &id, width, height).await;
                    }
                    // End of stdin, or the client went away: half-close,
                    // the command reads EOF.
                    Some(ExecInput::Eof) | None => {
                        let _ = input.shutdown().await;
                        input_open = false;
                    }
                },
                item = output.next() => match item {
                    Some(Ok(LogOutput::StdErr { message })) => {
                        if output_tx.send(ExecOutput::Stderr(message)).await.is_err() {
                            return;
                        }
                    }
                    Some(Ok(LogOutput::StdOut { message } | LogOutput::Console { message })) => {
                        if output_tx.send(ExecOutput::Stdout(message)).await.is_err() {
                            return;
                        }
                    }
                    Some(Ok(LogOutput::StdIn { .. })) => {}
                    Some(Err(_)) | None => break,
                },
            }
        }
        let code = exit_code(&docker, &id).await;
        let _ = output_tx.send(ExecOutput::Exit(code)).await;
    });
    Ok(ExecSession {
        input: input_tx,
        output: output_rx,
    })
}

async fn resize(docker: &bollard::Docker, id: &str, width: u16, height: u16) {
    let options = ResizeExecOptions { width, height };
    if let Err(e) = docker.resize_exec(id, options).await {
        tracing::debug!(exec = %id, error = %e, "could not resize an exec's terminal");
    }
}

/// The exec's exit code; its output can end a moment before the daemon
/// records it.
async fn exit_code(docker: &bollard::Docker, id: &str) -> i32 {
    for _ in 0..100 {
        match docker.inspect_exec(id).await {
            Ok(inspect) if inspect.running != Some(true) => {
                return inspect
                    .exit_code
                    .and_then(|c| i32::try_from(c).ok())
                    .unwrap_or(UNKNOWN_EXIT);
            }
            Ok(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            Err(_) => return UNKNOWN_EXIT,
        }
    }
    UNKNOWN_EXIT
}
