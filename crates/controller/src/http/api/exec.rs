//! `WS /v2/apps/<id>/pods/<name>/exec/`: run a command in a process's
//! environment, with Kubernetes' channel framing (see api.md).

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::response::Response;
use bytes::Bytes;
use drycc_api_types::{
    channel, decode_exec_frame, encode_exec_frame, ExecFrame, ExecStart, ExecStatus,
};
use drycc_engine::{ExecInput, ExecOutput, ExecRequest};

use crate::http::error::ApiResult;
use crate::http::extract::AuthUser;
use crate::http::extract::Path;
use crate::http::Shared;
use crate::service::access::{app_for, Access};

#[utoipa::path(
    operation_id = "exec_exec",
    get,
    path = "/apps/{app}/pods/{target}/exec",
    tag = "pods",
    params(("app" = String, Path, description = "The app's id."), ("target" = String, Path, description = "A process's name.")),
    responses((status = 101, description = "A WebSocket: first frame `ExecStart`, then channel-framed stdin/stdout/stderr/status (see api.md)."), crate::http::api::openapi::Errors),
)]
pub async fn exec(
    State(state): State<Shared>,
    AuthUser(user): AuthUser,
    Path((id, name)): Path<(String, String)>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> ApiResult<Response> {
    let app = app_for(&state, &user, &id, Access::Write).await?;
    let upgrade = upgrade.map_err(|rejection| {
        crate::http::error::ApiError::bad_request(format!(
            "exec is a WebSocket endpoint: connect with `Upgrade: websocket` ({})",
            rejection.body_text()
        ))
    })?;
    let max = usize::try_from(state.settings.max_exec_sessions_per_user).unwrap_or(usize::MAX);
    let Some(slot) = state.exec_sessions.take(&user.username, max) else {
        return Err(crate::http::error::ApiError::new(
            axum::http::StatusCode::TOO_MANY_REQUESTS,
            format!(
                "Too many exec sessions: {} has {max} open, the most one user may have at once (DRYCC_MAX_EXEC_SESSIONS_PER_USER).",
                user.username
            ),
        ));
    };
    if !state
        .engine
        .processes(&app.id)
        .await?
        .iter()
        .any(|p| p.name == name)
    {
        return Err(crate::http::error::ApiError::not_found(format!(
            "process {name} not found"
        )));
    }
    let upgrade = crate::http::limits::bounded(upgrade, &state);
    Ok(upgrade.on_upgrade(move |socket| {
        let tracked = state.session(session(state.clone(), app.id, name, socket));
        async move {
            tracked.await;
            // The place is given back when the session ends, however it ends.
            drop(slot);
        }
    }))
}

fn frame(channel: u8, data: &[u8]) -> Message {
    Message::Binary(encode_exec_frame(channel, data).into())
}

async fn fail(mut socket: WebSocket, mut message: String) {
    // A line of its own on the client's stderr.
    if !message.ends_with('\n') {
        message.push('\n');
    }
    let _ = socket
        .send(frame(channel::STDERR, message.as_bytes()))
        .await;
    let status = ExecStatus {
        status: "Failure".into(),
        reason: Some("BadRequest".into()),
        details: None,
    };
    let _ = socket
        .send(frame(
            channel::STATUS,
            &serde_json::to_vec(&status).unwrap_or_default(),
        ))
        .await;
    let _ = socket
        .send(Message::Close(Some(CloseFrame {
            code: 1000,
            reason: "".into(),
        })))
        .await;
}

async fn session(state: Shared, app: String, name: String, mut socket: WebSocket) {
    let start = match socket.recv().await {
        Some(Ok(Message::Text(text))) => serde_json::from_str::<ExecStart>(&text),
        Some(Ok(Message::Binary(bytes))) => serde_json::from_slice::<ExecStart>(&bytes),
        Some(Err(error)) if crate::http::limits::is_too_big(&error) => {
            return crate::http::limits::close_too_big(&mut socket, &state).await
        }
        _ => return,
    };
    let start = match start {
        Ok(start) if !start.command.is_empty() => start,
        Ok(_) => return fail(socket, "command: at least one word is required".into()).await,
        Err(error) => {
            return fail(
                socket,
                format!("invalid first frame: {error}; expected {{\"command\": [..], \"tty\": bool, \"stdin\": bool}}"),
            )
            .await
        }
    };
    let request = ExecRequest {
        command: start.command,
        tty: start.tty,
        stdin: start.stdin,
        size: None,
    };
    let mut session = match state.engine.exec(&app, &name, request).await {
        Ok(session) => session,
        Err(error) => return fail(socket, error.to_string()).await,
    };
    let mut stdin_open = true;
    loop {
        tokio::select! {
            output = session.output.recv() => match output {
                Some(ExecOutput::Stdout(data)) => {
                    if socket.send(frame(channel::STDOUT, &data)).await.is_err() { return; }
                }
                Some(ExecOutput::Stderr(data)) => {
                    if socket.send(frame(channel::STDERR, &data)).await.is_err() { return; }
                }
                Some(ExecOutput::Exit(code)) => {
                    let status = serde_json::to_vec(&ExecStatus::from_exit_code(code)).unwrap_or_default();
                    let _ = socket.send(frame(channel::STATUS, &status)).await;
                    let _ = socket.send(Message::Close(Some(CloseFrame { code: 1000, reason: "".into() }))).await;
                    return;
                }
                None => {
                    let _ = socket.send(Message::Close(Some(CloseFrame { code: 1011, reason: "exec ended without a status".into() }))).await;
                    return;
                }
            },
            incoming = socket.recv(), if stdin_open => match incoming {
                Some(Ok(Message::Binary(bytes))) => {
                    if let Some(input) = parse_input(&bytes) {
                        if session.input.send(input).await.is_err() { stdin_open = false; }
                    }
                }
                Some(Ok(Message::Text(text))) => {
                    if let Some(input) = parse_input(text.as_bytes()) {
                        if session.input.send(input).await.is_err() { stdin_open = false; }
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(error)) if crate::http::limits::is_too_big(&error) => {
                    let _ = session.input.send(ExecInput::Eof).await;
                    return crate::http::limits::close_too_big(&mut socket, &state).await;
                }
                // The client went away: closing stdin lets the command end.
                Some(Err(_)) | None => {
                    let _ = session.input.send(ExecInput::Eof).await;
                    stdin_open = false;
                }
            },
        }
    }
}

/// A client frame: stdin data (empty = end of stdin) or a terminal size.
/// Anything else, undecodable frames included, is ignored.
fn parse_input(bytes: &[u8]) -> Option<ExecInput> {
    match decode_exec_frame(bytes).ok()? {
        ExecFrame::Stdin([]) => Some(ExecInput::Eof),
        ExecFrame::Stdin(data) => Some(ExecInput::Stdin(Bytes::copy_from_slice(data))),
        ExecFrame::Resize(size) => Some(ExecInput::Resize {
            width: size.width,
            height: size.height,
        }),
        _ => None,
    }
}
