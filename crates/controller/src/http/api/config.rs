//! `/v2/apps/<id>/config/`: show, and partial updates that create a release.

use axum::extract::State;
use axum::http::StatusCode;
use drycc_api_types::ConfigUpdate;

use crate::context::timestamp;
use crate::http::error::ApiResult;
use crate::http::extract::AuthUser;
use crate::http::extract::{Json, Path};
use crate::http::Shared;
use crate::service::access::{app_for, Access};
use crate::service::Service;

pub fn config_view(state: &Service, config: &drycc_store::Config) -> drycc_api_types::Config {
    let enforced = state.engine.capabilities().limits;
    let healthcheck = config
        .healthcheck
        .as_object()
        .map(|o| o.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default();
    drycc_api_types::Config {
        uuid: config.uuid.clone(),
        app: config.app.clone(),
        owner: config.owner.clone(),
        values: config.values.clone(),
        cpu: config.cpu.clone(),
        memory: config.memory.clone(),
        healthcheck,
        termination_grace_period: config.termination_grace_period.clone(),
        tags: config.tags.clone(),
        registry: config
            .registry
            .iter()
            .map(|(k, v)| {
                let shown = if k == "password" {
                    "********".to_string()
                } else {
                    v.clone()
                };
                (k.clone(), shown)
            })
            .collect(),
        created: timestamp(&config.created),
        updated: timestamp(&config.updated),
        limits_enforced: Some(enforced.is_ok()),
        limits_note: enforced.err(),
    }
}

#[utoipa::path(
    operation_id = "config_show",
    get,
    path = "/apps/{app}/config",
    tag = "config",
    params(("app" = String, Path, description = "The app's id.")),
    responses((status = 200, description = "The app's config.", body = drycc_api_types::Config), crate::http::api::openapi::Errors),
)]
pub async fn show(
    State(state): State<Shared>,
    AuthUser(user): AuthUser,
    Path(id): Path<String>,
) -> ApiResult<Json<drycc_api_types::Config>> {
    let app = app_for(&state, &user, &id, Access::Read).await?;
    let release = state.store.latest_release(&app.id).await?;
    Ok(Json(config_view(&state, &release.config)))
}

#[utoipa::path(
    operation_id = "config_update",
    post,
    path = "/apps/{app}/config",
    tag = "config",
    params(("app" = String, Path, description = "The app's id.")),
    request_body = drycc_api_types::ConfigUpdate,
    responses((status = 201, description = "The new config, released.", body = drycc_api_types::Config), crate::http::api::openapi::Errors),
)]
pub async fn update(
    State(state): State<Shared>,
    AuthUser(user): AuthUser,
    Path(id): Path<String>,
    Json(update): Json<ConfigUpdate>,
) -> ApiResult<(StatusCode, Json<drycc_api_types::Config>)> {
    let release = crate::service::config::update(&state, &user, &id, &update).await?;
    Ok((
        StatusCode::CREATED,
        Json(config_view(&state, &release.config)),
    ))
}
