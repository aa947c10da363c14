//! `POST /internal/git/build`: the pre-receive hook's request to build a
//! push (`service::build`), answered with the build's progress lines and,
//! last, its verdict for the hook.

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt;

use crate::git::{RESULT_FAILED, RESULT_OK, SECRET_HEADER};
use crate::http::Shared;
use crate::service::build::{self, BuildRequest};

pub async fn build(
    State(state): State<Shared>,
    headers: HeaderMap,
    axum::Json(request): axum::Json<BuildRequest>,
) -> Response {
    let secret = headers.get(SECRET_HEADER).and_then(|v| v.to_str().ok());
    if secret != Some(state.hook_secret.as_str()) {
        return (StatusCode::FORBIDDEN, "forbidden\n").into_response();
    }
    let (sender, receiver) = mpsc::channel::<String>(64);
    // The build goes on if the push's connection drops (its release is
    // desired state); the controller waits for it when it stops.
    let service = state.service.clone();
    service.tasks.clone().spawn(async move {
        let result = build::run(&service, &request, &sender).await;
        let last = match result {
            Ok(()) => RESULT_OK.to_string(),
            Err(error) => {
                for line in error.to_string().lines() {
                    let _ = sender.send(format!("-----> {line}")).await;
                }
                RESULT_FAILED.to_string()
            }
        };
        let _ = sender.send(last).await;
    });
    let stream = ReceiverStream::new(receiver)
        .map(|line| Ok::<_, std::convert::Infallible>(format!("{line}\n")));
    Response::builder()
        .header("content-type", "text/plain; charset=utf-8")
        .body(Body::from_stream(stream))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}
