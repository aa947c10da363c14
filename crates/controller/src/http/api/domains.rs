//! `/v2/apps/<id>/domains/`: custom domains. The router answers for an
//! app's domains as for `<app>.<DRYCC_DOMAIN>`; adding or removing one
//! answers once the routing table holds the change.

use axum::extract::State;
use axum::http::StatusCode;
use drycc_api_types::{DomainRequest, List};
use drycc_model::domain::validate_domain;

use super::{paginate, Page};
use crate::context::timestamp;
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::AuthUser;
use crate::http::extract::{Json, Path, Query};
use crate::http::Shared;
use crate::service::access::{app_for, Access};

pub fn domain_view(domain: &drycc_store::Domain) -> drycc_api_types::Domain {
    drycc_api_types::Domain {
        uuid: domain.uuid.clone(),
        app: domain.app.clone(),
        owner: domain.owner.clone(),
        domain: domain.domain.clone(),
        created: timestamp(&domain.created),
        updated: timestamp(&domain.updated),
    }
}

#[utoipa::path(
    operation_id = "domains_list",
    get,
    path = "/apps/{app}/domains",
    tag = "domains",
    params(("app" = String, Path, description = "The app's id."), crate::http::api::Page),
    responses((status = 200, description = "The app's domains.", body = drycc_api_types::List<drycc_api_types::Domain>), crate::http::api::openapi::Errors),
)]
pub async fn list(
    State(state): State<Shared>,
    AuthUser(user): AuthUser,
    Path(id): Path<String>,
    Query(page): Query<Page>,
    axum::extract::OriginalUri(uri): axum::extract::OriginalUri,
) -> ApiResult<Json<List<drycc_api_types::Domain>>> {
    let app = app_for(&state, &user, &id, Access::Read).await?;
    let domains = state.store.list_domains(&app.id).await?;
    let views = domains.iter().map(domain_view).collect();
    Ok(Json(paginate(views, &page, uri.path())))
}

#[utoipa::path(
    operation_id = "domains_create",
    post,
    path = "/apps/{app}/domains",
    tag = "domains",
    params(("app" = String, Path, description = "The app's id.")),
    request_body = drycc_api_types::DomainRequest,
    responses((status = 201, description = "The new domain.", body = drycc_api_types::Domain), crate::http::api::openapi::Errors),
)]
pub async fn create(
    State(state): State<Shared>,
    AuthUser(user): AuthUser,
    Path(id): Path<String>,
    Json(request): Json<DomainRequest>,
) -> ApiResult<(StatusCode, Json<drycc_api_types::Domain>)> {
    let app = app_for(&state, &user, &id, Access::Write).await?;
    let domain = validate_domain(&request.domain, &state.settings.domain)
        .map_err(|e| ApiError::bad_request(format!("domain: {e}")))?;
    let added = state
        .store
        .add_domain(&app.id, &user.username, &domain)
        .await?;
    state.routes.store_changed();
    state.routes.sync().await;
    Ok((StatusCode::CREATED, Json(domain_view(&added))))
}

#[utoipa::path(
    operation_id = "domains_delete",
    delete,
    path = "/apps/{app}/domains/{domain}",
    tag = "domains",
    params(("app" = String, Path, description = "The app's id."), ("domain" = String, Path, description = "The domain.")),
    responses((status = 204, description = "Removed."), crate::http::api::openapi::Errors),
)]
pub async fn delete(
    State(state): State<Shared>,
    AuthUser(user): AuthUser,
    Path((id, domain)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let app = app_for(&state, &user, &id, Access::Write).await?;
    let domain = domain
        .strip_suffix('.')
        .unwrap_or(&domain)
        .to_ascii_lowercase();
    if !state.store.remove_domain(&app.id, &domain).await? {
        return Err(ApiError::not_found(format!(
            "Domain {} is not a domain of {}; `drycc domains:list` shows them.",
            domain.chars().take(253).collect::<String>(),
            app.id
        )));
    }
    state.routes.store_changed();
    state.routes.sync().await;
    Ok(StatusCode::NO_CONTENT)
}
