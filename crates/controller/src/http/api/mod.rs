//! The REST API (Drycc v2 shapes): one module per resource.

mod apps;
pub(crate) mod auth;
mod certs;
pub(crate) mod config;
mod domains;
mod exec;
pub(crate) mod logs;
pub(crate) mod openapi;
mod perms;
pub(crate) mod pods;
pub(crate) mod releases;
pub(crate) mod settings;

use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use tower_http::set_header::SetResponseHeaderLayer;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::http::error::ApiError;
use crate::http::Shared;

/// Every `/v2` route, each with its OpenAPI operation: the router and the
/// document are built from this one list, so they cannot drift apart.
/// Only `routes!` registers routes here (a unit test checks it).
pub(crate) fn v2_routes() -> OpenApiRouter<Shared> {
    OpenApiRouter::new()
        .routes(routes!(auth::probe))
        .routes(routes!(openapi::serve))
        .routes(routes!(auth::register))
        .routes(routes!(auth::login))
        .routes(routes!(auth::whoami))
        .routes(routes!(auth::logout))
        .routes(routes!(auth::revoke_user_tokens))
        .routes(routes!(certs::list, certs::create))
        .routes(routes!(certs::show, certs::delete))
        .routes(routes!(certs::attach))
        .routes(routes!(certs::detach))
        .routes(routes!(apps::list, apps::create))
        .routes(routes!(apps::show, apps::destroy))
        .routes(routes!(releases::list_builds, releases::create_build))
        .routes(routes!(releases::list))
        .routes(routes!(releases::rollback))
        .routes(routes!(releases::show))
        .routes(routes!(config::show, config::update))
        .routes(routes!(pods::scale))
        .routes(routes!(pods::scale_ptypes))
        .routes(routes!(pods::list))
        .routes(routes!(pods::restart_all))
        .routes(routes!(pods::list_type))
        .routes(routes!(pods::restart_type))
        .routes(routes!(pods::describe))
        .routes(routes!(exec::exec))
        .routes(routes!(pods::restart_one))
        .routes(routes!(logs::logs))
        .routes(routes!(settings::show, settings::update))
        .routes(routes!(settings::autoscale_history))
        .routes(routes!(domains::list, domains::create))
        .routes(routes!(domains::delete))
        .routes(routes!(perms::list, perms::create))
        .routes(routes!(perms::delete))
}

pub fn router(state: Shared) -> Router {
    let (v2, _) = v2_routes().split_for_parts();

    Router::new()
        .route("/healthz", get(healthz))
        .route("/readiness", get(|| async { "OK" }))
        .route("/metrics", get(crate::http::metrics::serve))
        .nest("/v2", v2)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(state.body_bytes()))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            refuse_oversized,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::http::limits::refuse_large_headers,
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

/// Alive, and whether this replica leads: `{"leader": true, "holder": "..."}`.
async fn healthz(
    axum::extract::State(state): axum::extract::State<Shared>,
) -> axum::Json<crate::role::Role> {
    axum::Json(state.role.borrow().clone())
}

/// Bodies up to this size are read and dropped before a 413, so that the
/// client, still sending, gets the answer instead of a reset connection.
const DRAIN_LIMIT: usize = 64 * 1024 * 1024;

/// A declared `Content-Length` over the limit gets a clear 413 at once.
async fn refuse_oversized(
    axum::extract::State(state): axum::extract::State<Shared>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let declared = request
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    let limit = state.body_bytes();
    let Some(length) = declared.filter(|length| *length > limit) else {
        return next.run(request).await;
    };
    if length <= DRAIN_LIMIT {
        let mut body = request.into_body().into_data_stream();
        use futures::StreamExt;
        while let Some(Ok(_)) = body.next().await {}
    }
    crate::http::limits::body_too_large(limit).into_response()
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
#[derive(serde::Deserialize, Default, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Page {
    /// Results per page (1 to 1000, default 100).
    pub limit: Option<usize>,
    /// Results to skip.
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

#[cfg(test)]
mod route_list {
    /// The router serves exactly the documented routes only if nothing
    /// but `routes!` adds routes to `v2_routes`: a plain `.route(..)`,
    /// `.nest(..)` or `.merge(..)` there would serve an undocumented one.
    #[test]
    fn v2_routes_come_only_from_documented_handlers() {
        let source = include_str!("mod.rs");
        let start = source.find("fn v2_routes()").expect("v2_routes is defined");
        let body = &source[start..];
        let body = &body[..body.find("\n}\n").expect("v2_routes ends")];
        for line in body.lines().skip(1).map(str::trim) {
            assert!(
                line.is_empty()
                    || line == "OpenApiRouter::new()"
                    || line.starts_with(".routes(routes!("),
                "v2_routes registers a route without its OpenAPI operation: {line}"
            );
        }
    }

    #[test]
    fn the_document_names_every_operation_once() {
        let document = super::openapi::document();
        let json = serde_json::to_value(&document).expect("serialises");
        let mut ids = std::collections::BTreeSet::new();
        let paths = json["paths"].as_object().expect("paths");
        assert!(paths.len() >= 30, "{} paths", paths.len());
        for (path, item) in paths {
            assert!(path.starts_with("/v2"), "{path}");
            for (method, operation) in item.as_object().expect("path item") {
                let id = operation["operationId"].as_str().expect("operationId");
                assert!(ids.insert(id.to_owned()), "{method} {path}: {id} twice");
            }
        }
    }
}
