//! `/git/<app>.git/*`: HTTP Basic auth with the user's token, then the
//! request is handed to `git http-backend` (CGI), streamed both ways so
//! that build progress reaches `git push` while it happens.

use std::path::Path as FsPath;
use std::process::Stdio;

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use futures::TryStreamExt;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;
use tokio_util::io::{ReaderStream, StreamReader};

use super::{ENV_APP, ENV_CHECKOUTS_DIR, ENV_HOOK_EXE, ENV_HOOK_SECRET, ENV_HOOK_URL, ENV_USER};
use crate::auth::{app_for, user_for_token, Access};
use crate::state::Shared;

fn plain(status: StatusCode, message: impl Into<String>) -> Response {
    let mut text = message.into();
    text.push('\n');
    (status, text).into_response()
}

fn challenge(message: &str) -> Response {
    let mut response = plain(StatusCode::UNAUTHORIZED, message);
    response.headers_mut().insert(
        WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"drycc\""),
    );
    response
}

/// `user:token` from an HTTP Basic header.
fn basic_credentials(request: &Request) -> Option<(String, String)> {
    let value = request.headers().get(AUTHORIZATION)?.to_str().ok()?;
    let encoded = value.strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, token) = text.split_once(':')?;
    Some((user.to_string(), token.to_string()))
}

pub async fn serve(
    State(state): State<Shared>,
    Path((repo, rest)): Path<(String, String)>,
    request: Request,
) -> Response {
    let Some(app_id) = repo.strip_suffix(".git") else {
        return plain(
            StatusCode::NOT_FOUND,
            "repository paths look like /git/<app>.git",
        );
    };
    let Some((username, token)) = basic_credentials(&request) else {
        return challenge("authentication required: use your drycc username and token");
    };
    let user = match user_for_token(&state, &token).await {
        Ok(user) if user.username == username => user,
        _ => return challenge("invalid username or token"),
    };
    let app = match app_for(&state, &user, app_id, Access::Write).await {
        Ok(app) => app,
        Err(error) => return plain(error.status, error.detail),
    };
    let repo_dir = state.repos_dir().join(format!("{}.git", app.id));
    if let Err(error) = ensure_repository(&repo_dir).await {
        tracing::error!(%error, app = %app.id, "Could not create the git repository.");
        return plain(
            StatusCode::INTERNAL_SERVER_ERROR,
            "could not create the repository",
        );
    }
    match run_backend(&state, &app.id, &user.username, &rest, request).await {
        Ok(response) => response,
        Err(error) => {
            tracing::error!(%error, app = %app.id, "git http-backend failed.");
            plain(StatusCode::BAD_GATEWAY, "git http-backend failed")
        }
    }
}

/// A bare repository that accepts pushes and runs our pre-receive hook.
async fn ensure_repository(dir: &FsPath) -> std::io::Result<()> {
    if !dir.join("HEAD").exists() {
        tokio::fs::create_dir_all(dir).await?;
        let status = Command::new("git")
            .args(["init", "--bare", "--quiet", "--initial-branch=main"])
            .arg(dir)
            .status()
            .await?;
        if !status.success() {
            return Err(std::io::Error::other("git init failed"));
        }
        let status = Command::new("git")
            .arg("--git-dir")
            .arg(dir)
            .args(["config", "http.receivepack", "true"])
            .status()
            .await?;
        if !status.success() {
            return Err(std::io::Error::other("git config failed"));
        }
    }
    let hook = dir.join("hooks").join("pre-receive");
    if tokio::fs::metadata(&hook).await.is_err() {
        // The controller passes its own executable in the environment, so
        // the hook never names a path that a rebuild or upgrade can move.
        let script = format!("#!/bin/sh\nexec \"${ENV_HOOK_EXE}\" git-hook\n");
        tokio::fs::create_dir_all(dir.join("hooks")).await?;
        tokio::fs::write(&hook, script).await?;
        use std::os::unix::fs::PermissionsExt;
        tokio::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).await?;
    }
    Ok(())
}

async fn run_backend(
    state: &Shared,
    app: &str,
    user: &str,
    rest: &str,
    request: Request,
) -> std::io::Result<Response> {
    let (parts, body) = request.into_parts();
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let mut command = Command::new("git");
    command
        .arg("http-backend")
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", &state.data_dir)
        .env("GIT_PROJECT_ROOT", state.repos_dir())
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("PATH_INFO", format!("/{app}.git/{rest}"))
        .env("REQUEST_METHOD", parts.method.as_str())
        .env("QUERY_STRING", parts.uri.query().unwrap_or_default())
        .env("CONTENT_TYPE", header("content-type"))
        .env("HTTP_CONTENT_ENCODING", header("content-encoding"))
        .env("GIT_PROTOCOL", header("git-protocol"))
        .env("REMOTE_USER", user)
        .env("REMOTE_ADDR", "127.0.0.1")
        // The running binary, even if its file was replaced since it started.
        .env(ENV_HOOK_EXE, format!("/proc/{}/exe", std::process::id()))
        .env(ENV_HOOK_URL, &state.api_url)
        .env(ENV_HOOK_SECRET, &state.hook_secret)
        .env(ENV_APP, app)
        .env(ENV_USER, user)
        .env(ENV_CHECKOUTS_DIR, state.checkouts_dir())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if let Some(length) = parts
        .headers
        .get("content-length")
        .and_then(|v| v.to_str().ok())
    {
        command.env("CONTENT_LENGTH", length);
    }
    let mut child = command.spawn()?;
    let (Some(mut stdin), Some(stdout), Some(stderr)) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        return Err(std::io::Error::other("git http-backend pipes missing"));
    };
    tokio::spawn(async move {
        let stream = body.into_data_stream().map_err(std::io::Error::other);
        let mut reader = StreamReader::new(stream);
        if let Err(error) = tokio::io::copy(&mut reader, &mut stdin).await {
            tracing::debug!(%error, "git request body ended early.");
        }
        let _ = stdin.shutdown().await;
    });
    tokio::spawn(async move {
        let mut lines = BufReader::new(stderr).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            tracing::info!(target: "git", "{line}");
        }
    });
    tokio::spawn(async move {
        let _ = child.wait().await;
    });

    // CGI: headers, a blank line, then the body.
    let mut reader = BufReader::new(stdout);
    let mut response = Response::builder();
    let mut status = StatusCode::OK;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).await? == 0 {
            break;
        }
        let line = line.trim_end_matches(['\r', '\n']);
        if line.is_empty() {
            break;
        }
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("status") {
            let code = value.split_whitespace().next().and_then(|c| c.parse().ok());
            status = code
                .and_then(|c: u16| StatusCode::from_u16(c).ok())
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        } else if let (Ok(name), Ok(value)) = (
            HeaderName::try_from(name.trim()),
            HeaderValue::try_from(value),
        ) {
            response = response.header(name, value);
        }
    }
    response
        .status(status)
        .body(Body::from_stream(ReaderStream::new(reader)))
        .map_err(std::io::Error::other)
}
