//! `/v2/apps/<id>/perms/`: sharing an app with other users.

use axum::extract::State;
use axum::http::StatusCode;
use drycc_api_types::{PermRequest, Perms};

use crate::auth::{app_for, Access, AuthUser};
use crate::error::{ApiError, ApiResult, Json, Path};
use crate::state::Shared;

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
