//! Server-Sent Events for the open pages: the processes table whenever the
//! engine reports a change of the app (its change counter), and the app's
//! log lines as they come. The page never polls. Each stream belongs to a
//! session and ends when the session does (checked at every event) or when
//! the controller stops.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use drycc_engine::Followed;
use futures::{Stream, StreamExt};
use tokio::sync::watch;
use tokio::time::{Instant, Interval, MissedTickBehavior};

use super::html;
use super::session::{self, Session};
use crate::http::api::logs::format_line;
use crate::http::error::ApiError;
use crate::http::Shared;
use crate::service::access::{app_for, Access};

/// CPU is a rate: the table is sent again this often even without a
/// change, so that its CPU and memory columns stay current.
const USAGE_REFRESH: Duration = Duration::from_secs(5);
/// Changes come in bursts (a scale starts several processes): the table
/// is sent once a burst has settled this long.
const SETTLE: Duration = Duration::from_millis(100);
/// A log stream checks that its session still holds at most this often.
const LOG_SESSION_CHECK: Duration = Duration::from_secs(2);

/// The session and the readable app of a stream, or a 401/404.
async fn open(
    state: &Shared,
    headers: &HeaderMap,
    id: &str,
) -> Result<(Session, String), Response> {
    let session = session::session(state, headers)
        .await
        .map_err(|_| ApiError::unauthorized("Sign in first.").into_response())?;
    let app = app_for(state, &session.user, id, Access::Read)
        .await
        .map_err(|error| ApiError::from(error).into_response())?;
    Ok((session, app.id))
}

/// The app, if the session (still) holds and may read it.
async fn still_allowed(state: &Shared, token: &str, app: &str) -> Option<drycc_store::App> {
    let session = session::session_of(state, token.to_string()).await.ok()?;
    app_for(state, &session.user, app, Access::Read).await.ok()
}

fn sse(stream: impl Stream<Item = Event> + Send + 'static, state: &Shared) -> Response {
    let stopping = state.stopping.clone();
    let stream = stream
        .take_until(async move { stopping.cancelled().await })
        .map(Ok::<Event, Infallible>);
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}

struct Watching {
    state: Shared,
    session: Session,
    app: String,
    changes: watch::Receiver<u64>,
    refresh: Interval,
    first: bool,
}

/// `GET /dashboard/apps/<app>/events`: `processes` events carrying the
/// rows of the processes table and `formation` events carrying the desired
/// counts (`{"web": 2}`), at once and after every change.
pub async fn processes(
    State(state): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let (session, app) = match open(&state, &headers, &id).await {
        Ok(opened) => opened,
        Err(response) => return response,
    };
    let mut refresh = tokio::time::interval_at(Instant::now() + USAGE_REFRESH, USAGE_REFRESH);
    refresh.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let watching = Watching {
        changes: state.engine.changes(Some(&app)),
        state: state.clone(),
        session,
        app,
        refresh,
        first: true,
    };
    let stream = futures::stream::unfold(watching, |mut w| async move {
        if !w.first {
            tokio::select! {
                changed = w.changes.changed() => {
                    changed.ok()?;
                    tokio::time::sleep(SETTLE).await;
                    w.changes.borrow_and_update();
                }
                _ = w.refresh.tick() => {}
            }
        }
        w.first = false;
        let app = still_allowed(&w.state, &w.session.token, &w.app).await?;
        let processes = w.state.engine.processes(&w.app).await.unwrap_or_default();
        let usage = w
            .state
            .usage
            .sample(w.state.engine.as_ref(), &w.app)
            .await
            .unwrap_or_default();
        let rows = html::process_rows(&w.app, &w.session.csrf, &processes, &usage);
        let events = [
            Event::default().event("processes").data(rows),
            // The desired counts, for the scale forms.
            Event::default()
                .event("formation")
                .data(serde_json::to_string(&app.structure).unwrap_or_default()),
        ];
        Some((futures::stream::iter(events), w))
    });
    sse(stream.flatten(), &state)
}

/// `GET /dashboard/apps/<app>/logs/stream`: a `backlog` event with the
/// recent lines (one per line of its data), then a `line` event per new
/// line.
pub async fn logs(
    State(state): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let (session, app) = match open(&state, &headers, &id).await {
        Ok(opened) => opened,
        Err(response) => return response,
    };
    // Subscribed before the backlog is read, so no line falls in between.
    let live = state.engine.follow_logs(&app);
    let platform = drycc_engine::follow_broadcast(state.events.follow(&app));
    let followed = tokio_stream::StreamExt::merge(live, platform);
    let backlog = crate::http::api::logs::recent(&state, &app, super::pages::LOG_LINES, None)
        .await
        .unwrap_or_default();
    let first = Event::default()
        .event("backlog")
        .data(clean(backlog.trim_end()));
    let checked = Instant::now();
    let lines = futures::stream::unfold(
        (followed, state.clone(), session.token, app, checked),
        |(mut followed, state, token, app, mut checked)| async move {
            let item = followed.next().await?;
            if checked.elapsed() >= LOG_SESSION_CHECK {
                still_allowed(&state, &token, &app).await?;
                checked = Instant::now();
            }
            let text = match item {
                Followed::Line(line) => format_line(&line),
                Followed::Skipped(skipped) => format!(
                    "{app}[{}]: {skipped} log lines skipped: this page fell behind",
                    crate::events::SOURCE
                ),
            };
            let event = Event::default().event("line").data(clean(&text));
            Some((event, (followed, state, token, app, checked)))
        },
    );
    sse(futures::stream::once(async { first }).chain(lines), &state)
}

/// SSE data cannot carry a carriage return.
fn clean(text: &str) -> String {
    text.replace('\r', "")
}
