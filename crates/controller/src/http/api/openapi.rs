//! `GET /v2/openapi.json`: the OpenAPI document of the REST API.
//!
//! The document is not written by hand: each handler carries a
//! `#[utoipa::path]` attribute naming its method, path, parameters and
//! the wire types of `drycc-api-types` it takes and returns, and the v2
//! router is built from those same attributes (see `api::v2_routes`), so
//! a route cannot be served without being documented.

use std::collections::BTreeMap;

use axum::response::IntoResponse;
use drycc_api_types::ErrorDetail;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityScheme};
use utoipa::openapi::{ContentBuilder, RefOr, Response, ResponseBuilder};
use utoipa::{Modify, OpenApi, ToSchema};

/// The name of the token scheme that handlers refer to in `security(..)`.
pub const TOKEN: &str = "token";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Drycc Workflow controller",
        description = "The REST API of the Drycc Workflow controller (v2 shapes). \
            Paths are answered with or without a trailing slash. Authenticate with \
            `Authorization: token <token>` (from `POST /v2/auth/login/`).",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    components(schemas(ErrorDetail)),
    modifiers(&TokenScheme),
    security(("token" = [])),
)]
pub struct ApiDoc;

/// `Authorization: token <token>`, an API key in OpenAPI's words.
struct TokenScheme;

impl Modify for TokenScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            TOKEN,
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "Authorization",
                "`token <token>`, the token from `POST /v2/auth/login/`.",
            ))),
        );
    }
}

/// The error answers every endpoint may give, each `{"detail": ...}`.
pub struct Errors;

impl utoipa::IntoResponses for Errors {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        [
            (
                "400",
                "The request is invalid; `detail` says what is wrong.",
            ),
            ("401", "No token, or an invalid or expired one."),
            ("403", "The token's user may not do this."),
            ("404", "No such resource (or one the user may not see)."),
            ("409", "The request conflicts with the current state."),
            (
                "413",
                "The body or a value is over a limit, named in `detail`.",
            ),
            ("415", "The body is not JSON."),
            (
                "429",
                "Too many requests (failed logins: `Retry-After` says when to retry) or too many at once (exec sessions of a user); `detail` names the limit.",
            ),
            (
                "431",
                "The request line and headers are over `DRYCC_MAX_HEADER_KIB`, named in `detail`.",
            ),
            (
                "503",
                "The engine is unavailable or a rollout did not finish.",
            ),
        ]
        .into_iter()
        .map(|(status, description)| {
            let content = ContentBuilder::new()
                .schema(Some(utoipa::openapi::Ref::from_schema_name(
                    ErrorDetail::name(),
                )))
                .build();
            let response = ResponseBuilder::new()
                .description(description)
                .content("application/json", content)
                .build();
            (status.to_string(), RefOr::T(response))
        })
        .collect()
    }
}

/// The document: the paths and schemas of every v2 route (each under
/// `/v2`), with the shared parts above.
pub fn document() -> utoipa::openapi::OpenApi {
    let mut document = ApiDoc::openapi();
    let (_, routes) = utoipa_axum::router::OpenApiRouter::<crate::http::Shared>::new()
        .nest("/v2", super::v2_routes())
        .split_for_parts();
    document.merge(routes);
    document
}

/// `GET /v2/openapi.json`: open to all, like the API's own description.
#[utoipa::path(
    operation_id = "openapi_serve",
    get,
    path = "/openapi.json",
    tag = "meta",
    security(()),
    responses((status = 200, description = "This document.", content_type = "application/json", body = Object)),
)]
pub async fn serve() -> axum::response::Response {
    static JSON: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let json = JSON.get_or_init(|| document().to_json().unwrap_or_default());
    (
        [(
            axum::http::header::CONTENT_TYPE,
            axum::http::HeaderValue::from_static("application/json"),
        )],
        json.clone(),
    )
        .into_response()
}
