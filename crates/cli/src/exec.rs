//! `ps:exec`: runs a command in a process over the exec WebSocket.
//!
//! Frames after the first (text JSON [`ExecStart`]) are binary and start
//! with a channel byte: 0 stdin (ours), 1 stdout, 2 stderr, 3 status (the
//! final [`ExecStatus`]), 4 resize (ours, [`TerminalSize`] JSON). When our
//! stdin reaches EOF we send one frame on channel 0 with no payload bytes:
//! the server closes the command's stdin then. The server closes the socket
//! with 1000 once the command has exited; we exit with its exit code.
//!
//! With `-t` and a terminal on stdin (and `-i`), the local terminal is put
//! in raw mode for the session and restored on every way out (normal end,
//! error, SIGTERM/SIGHUP/SIGINT, panic unwinding) by [`RawMode`]'s drop.

use crate::session::Session;
use crate::terminal::{self, RawMode};
use crate::ws;
use anyhow::{anyhow, Context};
use drycc_api_types::{
    channel, decode_exec_frame, encode_exec_frame, ExecFrame, ExecFrameError, ExecStart,
    ExecStatus, TerminalSize,
};
use futures::{SinkExt, StreamExt};
use std::io::{IsTerminal, Read, Write};
use std::time::Duration;
use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;

pub struct ExecOptions {
    pub app: String,
    pub process: String,
    pub command: Vec<String>,
    pub stdin: bool,
    pub tty: bool,
}

/// A frame on `chan` carrying `payload`.
pub fn frame(chan: u8, payload: &[u8]) -> Vec<u8> {
    encode_exec_frame(chan, payload)
}

/// The resize frame for `size`.
pub fn resize_frame(size: TerminalSize) -> Vec<u8> {
    // Serialising two integers cannot fail.
    let json = serde_json::to_vec(&size).unwrap_or_default();
    frame(channel::RESIZE, &json)
}

/// Reads stdin on its own thread (a blocking read must not hold the
/// runtime) and hands chunks over; the channel closes at EOF.
fn spawn_stdin_reader() -> mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel(16);
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin();
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            match stdin.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    if tx.blocking_send(buf[..n].to_vec()).is_err() {
                        break;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            }
        }
    });
    rx
}

async fn next_stdin(rx: &mut Option<mpsc::Receiver<Vec<u8>>>) -> Option<Vec<u8>> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

async fn next_signal(sig: &mut Option<Signal>) {
    match sig {
        Some(sig) => {
            sig.recv().await;
        }
        None => std::future::pending().await,
    }
}

enum End {
    Closed(Option<CloseFrame>),
    Lost(String),
    Signal(i32),
}

pub async fn run(session: &Session, opts: ExecOptions) -> anyhow::Result<i32> {
    let mut tty = opts.tty;
    let stdin_is_terminal = std::io::stdin().is_terminal();
    if tty && opts.stdin && !stdin_is_terminal {
        eprintln!("Unable to use a TTY - input is not a terminal");
        tty = false;
    }
    let path = format!("/v2/apps/{}/pods/{}/exec/", opts.app, opts.process);
    let socket = ws::connect(&session.config, &path).await?;
    let (mut sink, mut stream) = socket.split();
    let controller = session.config.controller.clone();
    let lost = |e| anyhow!(ws::map_error(&controller, e));

    let start = ExecStart {
        command: opts.command.clone(),
        tty,
        stdin: opts.stdin,
    };
    sink.send(Message::Text(serde_json::to_string(&start)?.into()))
        .await
        .map_err(lost)?;

    // Everything that can fail is set up before raw mode, so that an error
    // message is printed on a sane terminal.
    let mut sigint = Some(signal(SignalKind::interrupt()).context("cannot watch SIGINT")?);
    let mut sigterm = Some(signal(SignalKind::terminate()).context("cannot watch SIGTERM")?);
    let mut sighup = Some(signal(SignalKind::hangup()).context("cannot watch SIGHUP")?);
    let mut winch = if tty {
        Some(signal(SignalKind::window_change()).context("cannot watch SIGWINCH")?)
    } else {
        None
    };
    let _raw = if tty && opts.stdin && stdin_is_terminal {
        Some(RawMode::enable().context("cannot put the terminal in raw mode")?)
    } else {
        None
    };
    if tty {
        if let Some(size) = terminal::size() {
            sink.send(Message::Binary(resize_frame(size).into()))
                .await
                .map_err(lost)?;
        }
    }
    let mut stdin_rx = opts.stdin.then(spawn_stdin_reader);

    let mut status: Option<ExecStatus> = None;
    let end = loop {
        tokio::select! {
            msg = stream.next() => match msg {
                None => break End::Closed(None),
                Some(Err(e)) => break End::Lost(ws::map_error(&controller, e).to_string()),
                Some(Ok(Message::Binary(data))) => {
                    if let Some(s) = handle_frame(&data)? {
                        status = Some(s);
                    }
                }
                Some(Ok(Message::Close(frame))) => break End::Closed(frame),
                Some(Ok(_)) => {}
            },
            chunk = next_stdin(&mut stdin_rx) => {
                let payload = chunk.unwrap_or_default();
                if payload.is_empty() {
                    // EOF: one empty stdin frame, then no more reading.
                    stdin_rx = None;
                }
                sink.send(Message::Binary(frame(channel::STDIN, &payload).into()))
                    .await
                    .map_err(lost)?;
            },
            _ = next_signal(&mut winch) => {
                if let Some(size) = terminal::size() {
                    sink.send(Message::Binary(resize_frame(size).into()))
                        .await
                        .map_err(lost)?;
                }
            },
            _ = next_signal(&mut sigint) => break End::Signal(2),
            _ = next_signal(&mut sigterm) => break End::Signal(15),
            _ = next_signal(&mut sighup) => break End::Signal(1),
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(2), sink.close()).await;
    drop(_raw);
    outcome(status, end)
}

/// Writes stdout/stderr frames; returns the status of a status frame.
/// Frames of other channels are ignored.
fn handle_frame(data: &[u8]) -> anyhow::Result<Option<ExecStatus>> {
    match decode_exec_frame(data) {
        Ok(ExecFrame::Stdout(payload)) => {
            let mut out = std::io::stdout().lock();
            out.write_all(payload)?;
            out.flush()?;
        }
        Ok(ExecFrame::Stderr(payload)) => {
            let mut err = std::io::stderr().lock();
            err.write_all(payload)?;
            err.flush()?;
        }
        Ok(ExecFrame::Status(status)) => return Ok(Some(status)),
        Err(ExecFrameError::Status(e)) => {
            return Err(anyhow!("unreadable exec status from the controller: {e}"))
        }
        Ok(_) | Err(_) => {}
    }
    Ok(None)
}

/// The exit code of the session, or why there is none.
fn outcome(status: Option<ExecStatus>, end: End) -> anyhow::Result<i32> {
    if let Some(status) = status {
        return Ok(status.exit_code());
    }
    match end {
        End::Signal(n) => Ok(128 + n),
        End::Lost(reason) => Err(anyhow!(
            "the exec session was interrupted before the command finished: {reason}"
        )),
        End::Closed(Some(frame)) if frame.code != CloseCode::Normal => {
            let reason = frame.reason.to_string();
            if reason.is_empty() {
                Err(anyhow!(
                    "the controller closed the exec session (code {})",
                    u16::from(frame.code)
                ))
            } else {
                Err(anyhow!(reason))
            }
        }
        End::Closed(_) => Err(anyhow!(
            "the exec session ended without the command's exit status"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_carry_the_channel_first() {
        assert_eq!(frame(channel::STDIN, b"hi"), vec![0, b'h', b'i']);
        assert_eq!(frame(channel::STDIN, b""), vec![0]);
        let resize = resize_frame(TerminalSize {
            width: 80,
            height: 24,
        });
        assert_eq!(resize[0], 4);
        assert_eq!(&resize[1..], br#"{"Width":80,"Height":24}"#);
    }

    #[test]
    fn status_frames_give_the_exit_code() {
        let json = serde_json::to_vec(&ExecStatus::from_exit_code(3)).unwrap();
        let status = handle_frame(&frame(channel::STATUS, &json))
            .unwrap()
            .unwrap();
        assert_eq!(outcome(Some(status), End::Closed(None)).unwrap(), 3);
        assert!(handle_frame(&frame(channel::STATUS, b"nope")).is_err());
        assert!(handle_frame(&[]).unwrap().is_none());
    }

    #[test]
    fn endings_without_status() {
        assert_eq!(outcome(None, End::Signal(15)).unwrap(), 143);
        let err = outcome(
            None,
            End::Closed(Some(CloseFrame {
                code: CloseCode::Error,
                reason: "process not found".into(),
            })),
        )
        .unwrap_err();
        assert_eq!(err.to_string(), "process not found");
        assert!(outcome(None, End::Closed(None)).is_err());
        assert!(outcome(None, End::Lost("reset".into())).is_err());
    }
}
