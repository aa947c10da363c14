//! The REST API (Drycc v2 shapes): one module per resource.

mod apps;
mod auth;
mod certs;
mod config;
mod domains;
mod exec;
mod logs;
mod perms;
pub(crate) mod pods;
mod releases;
mod settings;

use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Router;
use tower_http::set_header::SetResponseHeaderLayer;

use crate::error::ApiError;
use crate::state::Shared;

pub fn router(state: Shared) -> Router {
    crate::limits::set_body_bytes(
        usize::try_from(state.settings.max_body_kib)
            .unwrap_or(usize::MAX)
            .saturating_mul(1024),
    );
    let v2 = Router::new()
        .route("/", get(auth::probe))
        .route("/auth/register", post(auth::register))
        .route("/auth/login", post(auth::login))
        .route("/auth/whoami", get(auth::whoami))
        .route("/auth/logout", post(auth::logout))
        .route(
            "/admin/users/{username}/tokens",
            axum::routing::delete(auth::revoke_user_tokens),
        )
        .route("/certs", get(certs::list).post(certs::create))
        .route("/certs/{name}", get(certs::show).delete(certs::delete))
        .route("/certs/{name}/domain", post(certs::attach))
        .route(
            "/certs/{name}/domain/{domain}",
            axum::routing::delete(certs::detach),
        )
        .route("/apps", get(apps::list).post(apps::create))
        .route("/apps/{app}", get(apps::show).delete(apps::destroy))
        .route(
            "/apps/{app}/builds",
            get(releases::list_builds).post(releases::create_build),
        )
        .route("/apps/{app}/releases", get(releases::list))
        .route("/apps/{app}/releases/rollback", post(releases::rollback))
        .route("/apps/{app}/releases/{version}", get(releases::show))
        .route("/apps/{app}/config", get(config::show).post(config::update))
        .route("/apps/{app}/scale", post(pods::scale))
        .route("/apps/{app}/ptypes/scale", post(pods::scale))
        .route("/apps/{app}/pods", get(pods::list))
        .route("/apps/{app}/pods/restart", post(pods::restart_all))
        .route("/apps/{app}/pods/{target}", get(pods::list_type))
        .route(
            "/apps/{app}/pods/{target}/restart",
            post(pods::restart_type),
        )
        .route("/apps/{app}/pods/{target}/describe", get(pods::describe))
        .route("/apps/{app}/pods/{target}/exec", get(exec::exec))
        .route(
            "/apps/{app}/pods/{target}/{name}/restart",
            post(pods::restart_one),
        )
        .route("/apps/{app}/logs", get(logs::logs))
        .route(
            "/apps/{app}/settings",
            get(settings::show).post(settings::update),
        )
        .route(
            "/apps/{app}/settings/autoscale/{ptype}/history",
            get(settings::autoscale_history),
        )
        .route(
            "/apps/{app}/domains",
            get(domains::list).post(domains::create),
        )
        .route(
            "/apps/{app}/domains/{domain}",
            axum::routing::delete(domains::delete),
        )
        .route("/apps/{app}/perms", get(perms::list).post(perms::create))
        .route(
            "/apps/{app}/perms/{user}",
            axum::routing::delete(perms::delete),
        );

    Router::new()
        .route("/healthz", get(|| async { "OK" }))
        .route("/readiness", get(|| async { "OK" }))
        .route("/metrics", get(crate::metrics::serve))
        .nest("/v2", v2)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(crate::limits::body_bytes()))
        .layer(axum::middleware::from_fn(refuse_oversized))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::limits::refuse_large_headers,
        ))
        .layer(SetResponseHeaderLayer::overriding(
            HeaderName::from_static("drycc_api_version"),
            HeaderValue::from_static(drycc_api_types::API_VERSION),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            HeaderName::from_static("drycc_platform_version"),
            HeaderValue::from_static(env!("CARGO_PKG_VERSION")),
        ))
        .with_state(state)
}

/// Bodies up to this size are read and dropped before a 413, so that the
/// client, still sending, gets the answer instead of a reset connection.
const DRAIN_LIMIT: usize = 64 * 1024 * 1024;

/// A declared `Content-Length` over the limit gets a clear 413 at once.
async fn refuse_oversized(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let declared = request
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    let Some(length) = declared.filter(|length| *length > crate::limits::body_bytes()) else {
        return next.run(request).await;
    };
    if length <= DRAIN_LIMIT {
        let mut body = request.into_body().into_data_stream();
        use futures::StreamExt;
        while let Some(Ok(_)) = body.next().await {}
    }
    crate::limits::body_too_large().into_response()
}

async fn method_not_allowed(method: axum::http::Method) -> impl IntoResponse {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("Method \"{method}\" not allowed."),
    )
}

async fn not_found() -> impl IntoResponse {
    ApiError::new(StatusCode::NOT_FOUND, "Not found.")
}

/// `?limit=&offset=` of list endpoints.
#[derive(serde::Deserialize, Default)]
pub struct Page {
    pub limit: Option<usize>,
    pub offset: Option<usize>,
}

/// One page of `items`, with `next`/`previous` links relative to `path`.
pub fn paginate<T>(items: Vec<T>, page: &Page, path: &str) -> drycc_api_types::List<T> {
    let count = items.len();
    let offset = page.offset.unwrap_or(0);
    let limit = page.limit.unwrap_or(100).clamp(1, 1000);
    let link = |offset: usize| format!("{path}?limit={limit}&offset={offset}");
    let next = (offset.saturating_add(limit) < count).then(|| link(offset + limit));
    let previous = (offset > 0).then(|| link(offset.saturating_sub(limit)));
    let results: Vec<T> = items.into_iter().skip(offset).take(limit).collect();
    drycc_api_types::List {
        count,
        next,
        previous,
        results,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_link_to_their_neighbours() {
        let page = |limit, offset| Page {
            limit: Some(limit),
            offset: Some(offset),
        };
        let list = paginate((0..5).collect(), &page(2, 0), "/v2/apps");
        assert_eq!((list.count, list.results), (5, vec![0, 1]));
        assert_eq!(list.next.as_deref(), Some("/v2/apps?limit=2&offset=2"));
        assert_eq!(list.previous, None);
        let list = paginate((0..5).collect(), &page(2, 4), "/v2/apps");
        assert_eq!(list.results, vec![4]);
        assert_eq!(list.next, None);
        assert_eq!(list.previous.as_deref(), Some("/v2/apps?limit=2&offset=2"));
        let list = paginate((0..5).collect::<Vec<i32>>(), &page(0, usize::MAX), "/x");
        assert!(list.results.is_empty());
        assert_eq!(list.next, None);
    }
}
