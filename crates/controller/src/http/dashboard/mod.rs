//! The dashboard: server-rendered pages under `/dashboard/` on the API's
//! port, for the same accounts. It reads what the API reads and acts
//! through the API's own functions (same permissions, rules and messages);
//! process tables and logs follow the engine's changes over Server-Sent
//! Events. Its assets are in the binary: the page needs no internet.

mod actions;
mod assets;
pub mod html;
mod live;
mod pages;
pub mod session;

use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use tower_http::set_header::SetResponseHeaderLayer;

use crate::http::error::ApiError;
use crate::http::Shared;
use html::{Notice, Page, Tab, Viewer};
use session::{NoSession, Session};

/// Scripts, styles and connections from this origin only; no inline
/// script, no framing.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

pub fn router(state: Shared) -> Router {
    Router::new()
        .route("/dashboard", get(pages::apps))
        .route(
            "/dashboard/login",
            get(pages::login_form).post(pages::login),
        )
        .route("/dashboard/logout", post(actions::logout))
        .route("/dashboard/assets/{file}", get(assets::serve))
        .route("/dashboard/apps/{app}", pages::tab(Tab::Processes))
        .route("/dashboard/apps/{app}/events", get(live::processes))
        .route("/dashboard/apps/{app}/scale", post(actions::scale))
        .route("/dashboard/apps/{app}/restart", post(actions::restart))
        .route("/dashboard/apps/{app}/releases", pages::tab(Tab::Releases))
        .route("/dashboard/apps/{app}/rollback", post(actions::rollback))
        .route("/dashboard/apps/{app}/config", pages::tab(Tab::Config))
        .route(
            "/dashboard/apps/{app}/autoscale",
            pages::tab(Tab::Autoscale).post(actions::autoscale_set),
        )
        .route(
            "/dashboard/apps/{app}/autoscale/unset",
            post(actions::autoscale_unset),
        )
        .route(
            "/dashboard/apps/{app}/autoscale/{ptype}/history",
            get(pages::history),
        )
        .route("/dashboard/apps/{app}/logs", pages::tab(Tab::Logs))
        .route("/dashboard/apps/{app}/logs/stream", get(live::logs))
        .route("/dashboard/{*rest}", get(not_found))
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::extract::DefaultBodyLimit::max(64 * 1024))
        .layer(SetResponseHeaderLayer::overriding(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_FRAME_OPTIONS,
            HeaderValue::from_static("DENY"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::REFERRER_POLICY,
            HeaderValue::from_static("same-origin"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            HeaderName::from_static("drycc_platform_version"),
            HeaderValue::from_static(env!("CARGO_PKG_VERSION")),
        ))
        .with_state(state)
}

/// A page with a status.
fn page(status: StatusCode, page: Page<'_>) -> Response {
    (status, Html(html::render(page))).into_response()
}

/// A page that only says what went wrong.
fn error_page(status: StatusCode, session: Option<&Session>, message: &str) -> Response {
    page(
        status,
        Page {
            title: status.canonical_reason().unwrap_or("Error").to_string(),
            viewer: session.map(viewer),
            app: None,
            notice: Some(Notice::Refused(message.to_string())),
            body: r#"<p><a href="/dashboard/">Back to the apps</a></p>"#.into(),
            chart: false,
        },
    )
}

fn viewer(session: &Session) -> Viewer<'_> {
    Viewer {
        username: &session.user.username,
        csrf: &session.csrf,
    }
}

/// The session of a page view; without one, the sign-in page.
async fn reader(state: &Shared, headers: &HeaderMap) -> Result<Session, Response> {
    match session::session(state, headers).await {
        Ok(session) => Ok(session),
        Err(NoSession::SignedOut) => Err(Redirect::to("/dashboard/login").into_response()),
        Err(NoSession::Unavailable) => Err(unavailable()),
    }
}

fn unavailable() -> Response {
    error_page(
        StatusCode::SERVICE_UNAVAILABLE,
        None,
        "The controller cannot read its state store; try again shortly.",
    )
}

/// The session of an action: it must have one, and the form must carry
/// its CSRF token.
async fn actor(
    state: &Shared,
    headers: &HeaderMap,
    form: &std::collections::HashMap<String, String>,
) -> Result<Session, Response> {
    let session = match session::session(state, headers).await {
        Ok(session) => session,
        Err(NoSession::SignedOut) => {
            return Err(error_page(
                StatusCode::UNAUTHORIZED,
                None,
                "Sign in first: this action needs a session.",
            ))
        }
        Err(NoSession::Unavailable) => return Err(unavailable()),
    };
    let sent = form.get("csrf").map(String::as_str).unwrap_or_default();
    if !session::same(sent, &session.csrf) {
        return Err(error_page(
            StatusCode::FORBIDDEN,
            Some(&session),
            "The form's CSRF token is missing or wrong: reload the page and try again.",
        ));
    }
    Ok(session)
}

/// An API error as a page.
fn api_error_page(session: &Session, error: ApiError) -> Response {
    error_page(error.status, Some(session), &error.detail)
}

async fn not_found() -> Response {
    error_page(
        StatusCode::NOT_FOUND,
        None,
        "No such page of the dashboard.",
    )
}

async fn method_not_allowed(method: axum::http::Method) -> Response {
    error_page(
        StatusCode::METHOD_NOT_ALLOWED,
        None,
        &format!(
            "Method \"{method}\" not allowed here: pages are read with GET, forms post with POST."
        ),
    )
}
