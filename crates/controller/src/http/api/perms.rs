//! `/v2/apps/<id>/perms/`: sharing an app with other users.

use axum::extract::State;
use axum::http::StatusCode;
use drycc_api_types::{PermRequest, Perms};

use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::AuthUser;
use crate::http::extract::{Json, Path};
use crate::http::Shared;
use crate::service::access::{app_for, Access};

#[utoipa::path(
    operation_id = "perms_list",
    get,
    path = "/apps/{app}/perms",
    tag = "perms",
    params(("app" = String, Path, description = "The app's id.")),
    responses((status = 200, description = "The app's collaborators.", body = drycc_api_types::Perms), crate::http::api::openapi::Errors),
)]
pub async fn list(
    State(state): State<Shared>,
    AuthUser(user): AuthUser,
    Path(id): Path<String>,
) -> ApiResult<Json<Perms>> {
    let app = app_for(&state, &user, &id, Access::Read).await?;
    Ok(Json(Perms {
        users: state.store.list_perms(&app.id).await?,
    }))
}

#[utoipa::path(
    operation_id = "perms_create",
    post,
    path = "/apps/{app}/perms",
    tag = "perms",
    params(("app" = String, Path, description = "The app's id.")),
    request_body = drycc_api_types::PermRequest,
    responses((status = 201, description = "The user is a collaborator."), crate::http::api::openapi::Errors),
)]
pub async fn create(
    State(state): State<Shared>,
    AuthUser(user): AuthUser,
    Path(id): Path<String>,
    Json(request): Json<PermRequest>,
) -> ApiResult<StatusCode> {
    let app = app_for(&state, &user, &id, Access::Write).await?;
    if app.owner != user.username && !user.is_superuser {
        return Err(ApiError::forbidden());
    }
    let grantee = state
        .store
        .user_by_name(&request.username)
        .await?
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "No user named {}.",
                request.username.chars().take(150).collect::<String>()
            ))
        })?;
    state.store.grant(&app.id, &grantee.username).await?;
    Ok(StatusCode::CREATED)
}

#[utoipa::path(
    operation_id = "perms_delete",
    delete,
    path = "/apps/{app}/perms/{user}",
    tag = "perms",
    params(("app" = String, Path, description = "The app's id."), ("user" = String, Path, description = "The collaborator.")),
    responses((status = 204, description = "The user is no collaborator any more."), crate::http::api::openapi::Errors),
)]
pub async fn delete(
    State(state): State<Shared>,
    AuthUser(user): AuthUser,
    Path((id, username)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let app = app_for(&state, &user, &id, Access::Write).await?;
    if app.owner != user.username && !user.is_superuser && user.username != username {
        return Err(ApiError::forbidden());
    }
    if state.store.revoke(&app.id, &username).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!(
            "{username} has no access to {}.",
            app.id
        )))
    }
}
