//! `/v2/apps/`: create, list, show, destroy.

use axum::extract::State;
use axum::http::StatusCode;
use drycc_api_types::{AppCreateRequest, List};

use super::{paginate, Page};
use crate::context::timestamp;
use crate::http::error::ApiResult;
use crate::http::extract::AuthUser;
use crate::http::extract::{optional_json, Json, Path, Query};
use crate::http::Shared;
use crate::service::access::{app_for, may_access, Access};
use crate::service::apps;

pub fn app_view(app: &drycc_store::App) -> drycc_api_types::App {
    drycc_api_types::App {
        uuid: app.uuid.clone(),
        id: app.id.clone(),
        owner: app.owner.clone(),
        structure: app.structure.clone(),
        created: timestamp(&app.created),
        updated: timestamp(&app.updated),
    }
}

#[utoipa::path(
    operation_id = "apps_list",
    get,
    path = "/apps",
    tag = "apps",
    params(crate::http::api::Page),
    responses((status = 200, description = "The apps the user may see.", body = drycc_api_types::List<drycc_api_types::App>), crate::http::api::openapi::Errors),
)]
pub async fn list(
    State(state): State<Shared>,
    AuthUser(user): AuthUser,
    Query(page): Query<Page>,
    axum::extract::OriginalUri(uri): axum::extract::OriginalUri,
) -> ApiResult<Json<List<drycc_api_types::App>>> {
    let mut visible = Vec::new();
    for app in state.store.list_apps().await? {
        if may_access(&state, &user, &app).await? {
            visible.push(app_view(&app));
        }
    }
    Ok(Json(paginate(visible, &page, uri.path())))
}

#[utoipa::path(
    operation_id = "apps_create",
    post,
    path = "/apps",
    tag = "apps",
    request_body = Option<drycc_api_types::AppCreateRequest>,
    responses((status = 201, description = "The new app.", body = drycc_api_types::App), crate::http::api::openapi::Errors),
)]
pub async fn create(
    State(state): State<Shared>,
    AuthUser(user): AuthUser,
    body: axum::body::Bytes,
) -> ApiResult<(StatusCode, Json<drycc_api_types::App>)> {
    let requested = optional_json::<AppCreateRequest>(&body)?.id;
    let app = apps::create(&state, &user, requested).await?;
    Ok((StatusCode::CREATED, Json(app_view(&app))))
}

#[utoipa::path(
    operation_id = "apps_show",
    get,
    path = "/apps/{app}",
    tag = "apps",
    params(("app" = String, Path, description = "The app's id.")),
    responses((status = 200, description = "The app.", body = drycc_api_types::App), crate::http::api::openapi::Errors),
)]
pub async fn show(
    State(state): State<Shared>,
    AuthUser(user): AuthUser,
    Path(id): Path<String>,
) -> ApiResult<Json<drycc_api_types::App>> {
    let app = app_for(&state, &user, &id, Access::Read).await?;
    Ok(Json(app_view(&app)))
}

/// Destroy an app (see [`apps::destroy`]).
#[utoipa::path(
    operation_id = "apps_destroy",
    delete,
    path = "/apps/{app}",
    tag = "apps",
    params(("app" = String, Path, description = "The app's id.")),
    responses((status = 204, description = "The app and its processes are gone."), crate::http::api::openapi::Errors),
)]
pub async fn destroy(
    State(state): State<Shared>,
    AuthUser(user): AuthUser,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    apps::destroy(&state, &user, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
