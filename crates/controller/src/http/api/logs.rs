//! `/v2/apps/<id>/logs`: the app's recent log lines (GET) or a follow
//! stream (WebSocket).

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{FromRequest, Request, State};
use axum::http::header::{CONTENT_TYPE, UPGRADE};
use axum::response::{IntoResponse, Response};
use drycc_api_types::LogsStart;
use drycc_engine::LogLine;

use drycc_engine::Followed;
use tokio_stream::StreamExt;

use crate::context::timestamp;
use crate::events;
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::AuthUser;
use crate::http::extract::{Path, Query};
use crate::http::Shared;
use crate::service::access::{app_for, Access};

/// Lines returned when the client does not ask for a number.
const DEFAULT_LINES: usize = 100;
/// Upper bound of one request, whatever the client asks.
const MAX_LINES: usize = 10_000;

#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LogQuery {
    /// How many recent lines (default 100, at most 10000).
    log_lines: Option<String>,
    /// Only this process's lines.
    process: Option<String>,
}

pub fn format_line(line: &LogLine) -> String {
    format!(
        "{} {}[{}]: {}",
        timestamp(&line.time),
        line.app,
        line.source,
        line.text
    )
}

#[utoipa::path(
    operation_id = "logs_logs",
    get,
    path = "/apps/{app}/logs",
    tag = "logs",
    params(("app" = String, Path, description = "The app's id."), LogQuery),
    responses((status = 200, description = "The app's recent log lines, one per line.", content_type = "text/plain", body = String), (status = 101, description = "With `Upgrade: websocket`: a follow stream; first frame `LogsStart`."), crate::http::api::openapi::Errors),
)]
pub async fn logs(
    State(state): State<Shared>,
    AuthUser(user): AuthUser,
    Path(id): Path<String>,
    Query(query): Query<LogQuery>,
    request: Request,
) -> ApiResult<Response> {
    let app = app_for(&state, &user, &id, Access::Read).await?;
    if request.headers().contains_key(UPGRADE) {
        let upgrade = WebSocketUpgrade::from_request(request, &state)
            .await
            .map_err(|e| ApiError::bad_request(e.to_string()))?;
        let state = state.clone();
        let upgrade = crate::http::limits::bounded(upgrade, &state);
        return Ok(
            upgrade.on_upgrade(move |socket| state.session(follow(state.clone(), app.id, socket)))
        );
    }
    let lines = match query.log_lines.as_deref() {
        None | Some("") => DEFAULT_LINES,
        Some(text) => text.parse::<usize>().map_err(|_| {
            ApiError::bad_request(format!(
                "log_lines: \"{}\" is not a number of lines",
                text.chars().take(20).collect::<String>()
            ))
        })?,
    }
    .min(MAX_LINES);
    let text = recent(&state, &app.id, lines, query.process.as_deref()).await?;
    Ok(([(CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response())
}

pub(crate) async fn recent(
    state: &Shared,
    app: &str,
    lines: usize,
    process: Option<&str>,
) -> ApiResult<String> {
    let selected = match process {
        Some(events::SOURCE) => state.events.recent(&state.store, app, lines).await?,
        Some(_) => state.engine.logs(app, lines, process).await?,
        None => events::merge_tail(
            state.engine.logs(app, lines, None).await?,
            state.events.recent(&state.store, app, lines).await?,
            lines,
        ),
    };
    let mut text = String::new();
    for line in &selected {
        text.push_str(&format_line(line));
        text.push('\n');
    }
    Ok(text)
}

async fn follow(state: Shared, app: String, mut socket: WebSocket) {
    let start: LogsStart = match socket.recv().await {
        Some(Ok(Message::Text(text))) => match serde_json::from_str(&text) {
            Ok(start) => start,
            Err(error) => {
                let _ = socket
                    .send(Message::Text(
                        format!("invalid first frame: {error}").into(),
                    ))
                    .await;
                return;
            }
        },
        Some(Err(error)) if crate::http::limits::is_too_big(&error) => {
            return crate::http::limits::close_too_big(&mut socket, &state).await
        }
        _ => return,
    };
    // Subscribe before reading the backlog so no line falls in between.
    let live = state.engine.follow_logs(&app);
    let platform = drycc_engine::follow_broadcast(state.events.follow(&app));
    let mut followed = live.merge(platform);
    let lines = start.lines.unwrap_or(DEFAULT_LINES).min(MAX_LINES);
    if let Ok(text) = recent(&state, &app, lines, start.process.as_deref()).await {
        for line in text.lines() {
            if socket
                .send(Message::Text(line.to_string().into()))
                .await
                .is_err()
            {
                return;
            }
        }
    }
    if !start.follow {
        let _ = socket.send(Message::Close(None)).await;
        return;
    }
    loop {
        let received = tokio::select! {
            item = followed.next() => match item {
                Some(item) => item,
                None => return,
            },
            incoming = socket.recv() => match incoming {
                Some(Err(error)) if crate::http::limits::is_too_big(&error) => {
                    return crate::http::limits::close_too_big(&mut socket, &state).await
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                _ => continue,
            },
        };
        let text = match received {
            Followed::Line(line) if start.process.as_deref().is_none_or(|p| p == line.source) => {
                format_line(&line)
            }
            Followed::Line(_) => continue,
            // Never a silent loss: the reader learns what it missed.
            Followed::Skipped(skipped) => format!(
                "{app}[{}]: {skipped} log lines skipped: this follower fell behind",
                events::SOURCE
            ),
        };
        if socket.send(Message::Text(text.into())).await.is_err() {
            return;
        }
    }
}
