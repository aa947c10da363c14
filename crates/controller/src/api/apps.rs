//! `/v2/apps/`: create, list, show, destroy.

use axum::extract::State;
use axum::http::StatusCode;
use drycc_api_types::{AppCreateRequest, List};
use drycc_model::app::{generate_app_name, validate_app_name};

use super::{paginate, Page};
use crate::auth::{app_for, may_access, Access, AuthUser};
use crate::deploy::{wait_for, Verdict};
use crate::error::{optional_json, ApiError, ApiResult, Json, Path, Query};
use crate::state::{timestamp, Shared};

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
    params(crate::api::Page),
    responses((status = 200, description = "The apps the user may see.", body = drycc_api_types::List<drycc_api_types::App>), crate::api::openapi::Errors),
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
    responses((status = 201, description = "The new app.", body = drycc_api_types::App), crate::api::openapi::Errors),
)]
pub async fn create(
    State(state): State<Shared>,
    AuthUser(user): AuthUser,
    body: axum::body::Bytes,
) -> ApiResult<(StatusCode, Json<drycc_api_types::App>)> {
    let requested = optional_json::<AppCreateRequest>(&body)?.id;
    // One creation per owner at a time, so the count below stays true
    // until the new app exists (app names have no `:`).
    let owner_lock = state.app_lock(&format!("owner:{}", user.username));
    let _owner_guard = owner_lock.lock().await;
    if !user.is_superuser {
        let max = usize::try_from(state.settings.max_apps_per_user).unwrap_or(usize::MAX);
        let owned = state
            .store
            .list_apps()
            .await?
            .iter()
            .filter(|app| app.owner == user.username)
            .count();
        if owned >= max {
            return Err(ApiError::conflict(format!(
                "App limit reached: {} owns {owned} apps, the most one user may own (DRYCC_MAX_APPS_PER_USER); destroy one first.",
                user.username
            )));
        }
    }
    let app = match requested {
        Some(id) => {
            validate_app_name(&id).map_err(|e| ApiError::bad_request(format!("id: {e}")))?;
            state.store.create_app(&id, &user.username).await?
        }
        None => create_with_generated_name(&state, &user.username).await?,
    };
    state.routes.store_changed();
    state.routes.sync().await;
    Ok((StatusCode::CREATED, Json(app_view(&app))))
}

async fn create_with_generated_name(state: &Shared, owner: &str) -> ApiResult<drycc_store::App> {
    for attempt in 0..20 {
        let name = generate_app_name(&mut rand::thread_rng(), attempt);
        match state.store.create_app(&name, owner).await {
            Ok(app) => return Ok(app),
            Err(drycc_store::StoreError::Conflict(_)) => continue,
            Err(other) => return Err(other.into()),
        }
    }
    Err(ApiError::conflict(
        "Could not find a free app name; pass one explicitly.",
    ))
}

#[utoipa::path(
    operation_id = "apps_show",
    get,
    path = "/apps/{app}",
    tag = "apps",
    params(("app" = String, Path, description = "The app's id.")),
    responses((status = 200, description = "The app.", body = drycc_api_types::App), crate::api::openapi::Errors),
)]
pub async fn show(
    State(state): State<Shared>,
    AuthUser(user): AuthUser,
    Path(id): Path<String>,
) -> ApiResult<Json<drycc_api_types::App>> {
    let app = app_for(&state, &user, &id, Access::Read).await?;
    Ok(Json(app_view(&app)))
}

/// Destroy an app: its rows go at once (desired state: nothing), its
/// processes stop (the reconciler removes them), then its repository and
/// slugs are deleted.
#[utoipa::path(
    operation_id = "apps_destroy",
    delete,
    path = "/apps/{app}",
    tag = "apps",
    params(("app" = String, Path, description = "The app's id.")),
    responses((status = 204, description = "The app and its processes are gone."), crate::api::openapi::Errors),
)]
pub async fn destroy(
    State(state): State<Shared>,
    AuthUser(user): AuthUser,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let app = app_for(&state, &user, &id, Access::Write).await?;
    {
        let lock = state.app_lock(&app.id);
        let _guard = lock.lock().await;
        state.store.delete_app(&app.id).await?;
    }
    state.forget_app_lock(&app.id);
    state.autoscaler.forget(&app.id, None);
    state.routes.store_changed();
    // The reconciler removes what the store no longer has; the files go
    // once no process can be using them any more.
    state.reconciler.enqueue(&app.id);
    let timeout = state.settings.deploy_timeout() + state.settings.default_grace();
    let ended = wait_for(&state, &app.id, timeout, |processes| {
        if processes.is_empty() {
            Verdict::Done
        } else {
            Verdict::Pending
        }
    })
    .await;
    if ended.is_err() {
        tracing::warn!(app = %app.id, "Processes of a destroyed app are still running; removing its files anyway.");
    }
    for dir in [
        state.repos_dir().join(format!("{}.git", app.id)),
        state.slugs_dir().join(&app.id),
        state.checkouts_dir().join(&app.id),
        state.cache_dir().join(&app.id),
        state.homes_dir().join(&app.id),
    ] {
        if let Err(error) = tokio::fs::remove_dir_all(&dir).await {
            if error.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(path = %dir.display(), %error, "Could not remove app data.");
            }
        }
    }
    Ok(StatusCode::NO_CONTENT)
}
