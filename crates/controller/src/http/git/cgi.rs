//! `/git/<app>.git/*`: HTTP Basic auth with the user's token, then the
//! request is handed to `git http-backend` (CGI), streamed both ways so
//! that build progress reaches `git push` while it happens.
//!
//! Only git's smart HTTP protocol is served: the three requests of
//! [`SmartRequest`]. Every other path (the dumb protocol's `HEAD` and
//! `objects/...`, traversals, other repositories) is a 404 before any
//! credential is checked or git runs, so `git http-backend` only ever sees
//! a path this module wrote.

use std::path::Path as FsPath;
use std::process::Stdio;

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use futures::TryStreamExt;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;
use tokio_util::io::{ReaderStream, StreamReader};

use crate::git::{
    ENV_APP, ENV_CHECKOUTS_DIR, ENV_HOOK_EXE, ENV_HOOK_SECRET, ENV_HOOK_URL, ENV_USER,
};
use crate::http::error::ApiError;
use crate::http::Shared;
use crate::service::access::{app_for, user_for_token, Access};

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

/// The requests of git's smart HTTP protocol, the only ones served.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SmartRequest {
    /// `GET info/refs?service=git-upload-pack|git-receive-pack`.
    InfoRefs,
    /// `POST git-upload-pack` (fetch, clone).
    UploadPack,
    /// `POST git-receive-pack` (push).
    ReceivePack,
}

impl SmartRequest {
    /// The request for a path below `/git/<app>.git/` (percent-decoded,
    /// as the router hands it over), its method and its query; `None` for
    /// anything else.
    pub fn parse(method: &Method, rest: &str, query: Option<&str>) -> Option<SmartRequest> {
        match (method.as_str(), rest) {
            ("GET" | "HEAD", "info/refs") => {
                let services = query
                    .unwrap_or_default()
                    .split('&')
                    .filter_map(|pair| pair.strip_prefix("service="))
                    .collect::<Vec<_>>();
                matches!(services[..], ["git-upload-pack" | "git-receive-pack"])
                    .then_some(SmartRequest::InfoRefs)
            }
            ("POST", "git-upload-pack") => Some(SmartRequest::UploadPack),
            ("POST", "git-receive-pack") => Some(SmartRequest::ReceivePack),
            _ => None,
        }
    }

    /// The path below the repository that git http-backend is given.
    fn path(self) -> &'static str {
        match self {
            SmartRequest::InfoRefs => "info/refs",
            SmartRequest::UploadPack => "git-upload-pack",
            SmartRequest::ReceivePack => "git-receive-pack",
        }
    }
}

fn not_served() -> Response {
    plain(
        StatusCode::NOT_FOUND,
        "not found: only git's smart HTTP protocol is served, at /git/<app>.git",
    )
}

pub async fn serve(
    State(state): State<Shared>,
    Path((repo, rest)): Path<(String, String)>,
    request: Request,
) -> Response {
    let Some(app_id) = repo.strip_suffix(".git") else {
        return not_served();
    };
    let Some(smart) = SmartRequest::parse(request.method(), &rest, request.uri().query()) else {
        return not_served();
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
        Err(error) => {
            let error = ApiError::from(error);
            return plain(error.status, error.detail);
        }
    };
    let repo_dir = state.paths.repos().join(format!("{}.git", app.id));
    if let Err(error) = ensure_repository(&repo_dir).await {
        tracing::error!(%error, app = %app.id, "Could not create the git repository.");
        return plain(
            StatusCode::INTERNAL_SERVER_ERROR,
            "could not create the repository",
        );
    }
    // A push builds and deploys: a bounded number at once per app.
    let slot = if smart == SmartRequest::ReceivePack {
        let max = usize::try_from(state.settings.max_pushes_per_app).unwrap_or(usize::MAX);
        match state.pushes.take(&app.id, max) {
            Some(slot) => Some(slot),
            None => {
                return plain(
                    StatusCode::TOO_MANY_REQUESTS,
                    format!(
                        "another push to {} is in progress: at most {max} at once (DRYCC_MAX_PUSHES_PER_APP); push again once it has finished",
                        app.id
                    ),
                )
            }
        }
    } else {
        None
    };
    match run_backend(&state, &app.id, &user.username, smart.path(), request, slot).await {
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
    slot: Option<crate::service::limits::Slot>,
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
        .env("HOME", state.paths.data())
        .env("GIT_PROJECT_ROOT", state.paths.repos())
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
        .env(ENV_CHECKOUTS_DIR, state.paths.checkouts())
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
        .body(Body::from_stream(futures::StreamExt::map(
            ReaderStream::new(reader),
            // A push holds its place until its answer (the build's
            // progress) has been sent or the client went away.
            move |chunk| {
                let _ = &slot;
                chunk
            },
        )))
        .map_err(std::io::Error::other)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(method: &str, rest: &str, query: Option<&str>) -> Option<SmartRequest> {
        let method = Method::from_bytes(method.as_bytes()).expect("method");
        SmartRequest::parse(&method, rest, query)
    }

    #[test]
    fn only_the_smart_protocol_is_served() {
        let upload = Some("service=git-upload-pack");
        assert_eq!(
            parse("GET", "info/refs", upload),
            Some(SmartRequest::InfoRefs)
        );
        assert_eq!(
            parse("GET", "info/refs", Some("service=git-receive-pack")),
            Some(SmartRequest::InfoRefs)
        );
        assert_eq!(
            parse("POST", "git-upload-pack", None),
            Some(SmartRequest::UploadPack)
        );
        assert_eq!(
            parse("POST", "git-receive-pack", None),
            Some(SmartRequest::ReceivePack)
        );
        // The dumb protocol, odd services, wrong methods, traversals.
        for (method, rest, query) in [
            ("GET", "info/refs", None),
            ("GET", "info/refs", Some("service=git-upload-archive")),
            (
                "GET",
                "info/refs",
                Some("service=git-upload-pack&service=git-receive-pack"),
            ),
            ("GET", "HEAD", None),
            ("GET", "objects/info/packs", None),
            ("GET", "objects/ab/cdef", None),
            ("GET", "git-upload-pack", None),
            ("POST", "info/refs", upload),
            ("GET", "../../drycc.db", None),
            ("POST", "../other.git/git-receive-pack", None),
            ("POST", "git-receive-pack/../../x", None),
        ] {
            assert_eq!(
                parse(method, rest, query),
                None,
                "{method} {rest} {query:?}"
            );
        }
    }
}
