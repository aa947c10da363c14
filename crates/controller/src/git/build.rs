//! The internal build endpoint called by the pre-receive hook: read the
//! checkout's Procfile (or detect a default), create build + release, roll
//! it out, and stream progress lines back.

use std::collections::BTreeMap;
use std::path::Path;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use drycc_model::scale::structure_after_deploy;
use drycc_store::{BuildRef, NewBuild, NewConfig};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt;

use super::{RESULT_FAILED, RESULT_OK, SECRET_HEADER};
use crate::deploy::{self, ReleaseChange};
use crate::state::Shared;

#[derive(serde::Deserialize)]
pub struct BuildRequest {
    app: String,
    user: String,
    sha: String,
}

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
    tokio::spawn(async move {
        let result = run(&state, &request, &sender).await;
        let last = match result {
            Ok(()) => RESULT_OK.to_string(),
            Err(message) => {
                for line in message.lines() {
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

async fn run(
    state: &Shared,
    request: &BuildRequest,
    progress: &mpsc::Sender<String>,
) -> Result<(), String> {
    let say = |line: String| async move {
        let _ = progress.send(line).await;
    };
    let checkout = state.slugs_dir().join(&request.app).join(&request.sha);
    if !checkout.is_dir() {
        return Err(format!("the checkout of {} is missing", request.sha));
    }
    if checkout.join("Dockerfile").is_file() {
        return Err("Dockerfile builds run on the Docker engine, which is not reachable: start a Docker daemon (or set DOCKER_HOST) and push again.".into());
    }
    let procfile = read_procfile(&checkout)?;
    let types: Vec<&str> = procfile.keys().map(String::as_str).collect();
    say(format!(
        "-----> Procfile declares types -> {}",
        types.join(", ")
    ))
    .await;
    let app = state
        .store
        .get_app(&request.app)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("app {} does not exist", request.app))?;
    // The config of the release the app should run; a failed release's
    // config is not carried forward.
    let latest = match state
        .store
        .desired_release(&app.id)
        .await
        .map_err(|e| e.to_string())?
    {
        Some(release) => release,
        None => state
            .store
            .latest_release(&app.id)
            .await
            .map_err(|e| e.to_string())?,
    };
    let type_set = procfile.keys().cloned().collect();
    let structure = structure_after_deploy(&app.structure, &type_set);
    let short = &request.sha[..request.sha.len().min(7)];
    let change = ReleaseChange {
        owner: request.user.clone(),
        summary: format!("{} deployed {short}", request.user),
        build: BuildRef::New(NewBuild {
            image: String::new(),
            stack: "native".into(),
            sha: request.sha.clone(),
            procfile,
            dockerfile: String::new(),
        }),
        config: NewConfig::from(&latest.config),
        structure: Some(structure),
    };
    match deploy::release(state, &app.id, change, Some(progress)).await {
        Ok(release) => {
            say(format!("-----> Launching... done, v{}", release.version)).await;
            say(String::new()).await;
            say(format!(
                "       {} deployed; try: curl http://{}.{}:{}/",
                app.id,
                app.id,
                state.settings.domain,
                router_port(&state.settings.router_listen)
            ))
            .await;
            Ok(())
        }
        Err(error) => Err(error.to_string()),
    }
}

fn router_port(listen: &str) -> String {
    listen.rsplit(':').next().unwrap_or("8080").to_string()
}

/// The Procfile's types, or the default `web` command detected from the
/// source; an error message asks for a Procfile when nothing is detected.
pub fn read_procfile(checkout: &Path) -> Result<BTreeMap<String, String>, String> {
    let path = checkout.join("Procfile");
    if path.is_file() {
        let bytes = std::fs::read(&path).map_err(|e| format!("cannot read Procfile: {e}"))?;
        let text =
            String::from_utf8(bytes).map_err(|_| "Procfile is not valid UTF-8".to_string())?;
        let parsed = drycc_procfile::parse(&text).map_err(|e| format!("Procfile error:\n{e}"))?;
        if parsed.is_empty() {
            return Err(
                "Procfile declares no process types: add a line such as `web: <command>`".into(),
            );
        }
        return Ok(parsed.to_map());
    }
    detect_default(checkout)
        .map(|command| BTreeMap::from([("web".to_string(), command)]))
        .ok_or_else(|| {
            "no Procfile found and no app server detected: add a Procfile with a line such as `web: <command that listens on $PORT>`".into()
        })
}

/// Default `web` commands (documented in docs/deploying.md).
pub fn detect_default(checkout: &Path) -> Option<String> {
    if let Ok(text) = std::fs::read_to_string(checkout.join("package.json")) {
        let json: serde_json::Value = serde_json::from_str(&text).ok()?;
        if json
            .pointer("/scripts/start")
            .and_then(|v| v.as_str())
            .is_some()
        {
            return Some("npm start".into());
        }
    }
    if checkout.join("config.ru").is_file() {
        return Some("bundle exec rackup -p $PORT".into());
    }
    if checkout.join("manage.py").is_file() {
        return Some("python3 manage.py runserver 0.0.0.0:$PORT --noreload".into());
    }
    for file in ["app.py", "main.py"] {
        if checkout.join(file).is_file() {
            return Some(format!("python3 {file}"));
        }
    }
    None
}
