//! `/v2/apps/<id>/builds/` and `/releases/`: list, show, create build, roll back.

use axum::extract::State;
use axum::http::StatusCode;
use drycc_api_types::{BuildCreateRequest, List, RollbackRequest, RollbackResponse};
use std::collections::BTreeMap;

use drycc_model::scale::structure_after_deploy;
use drycc_store::{BuildRef, NewConfig};

use super::{paginate, Page};
use crate::auth::{app_for, Access, AuthUser};
use crate::deploy::{self, ReleaseChange};
use crate::error::{optional_json, ApiError, ApiResult, Json, Path, Query};
use crate::image_build;
use crate::state::{timestamp, Shared};

pub fn build_view(build: &drycc_store::Build) -> drycc_api_types::Build {
    drycc_api_types::Build {
        uuid: build.uuid.clone(),
        app: build.app.clone(),
        owner: build.owner.clone(),
        image: build.image.clone(),
        stack: build.stack.clone(),
        sha: build.sha.clone(),
        procfile: build.procfile.clone(),
        dockerfile: build.dockerfile.clone(),
        created: timestamp(&build.created),
        updated: timestamp(&build.updated),
    }
}

pub fn release_view(release: &drycc_store::Release) -> drycc_api_types::Release {
    drycc_api_types::Release {
        uuid: release.uuid.clone(),
        app: release.app.clone(),
        owner: release.owner.clone(),
        version: release.version,
        summary: release.summary.clone(),
        build: release.build.as_ref().map(|b| b.uuid.clone()),
        config: release.config.uuid.clone(),
        failed: release.failed,
        exception: release.exception.clone(),
        created: timestamp(&release.created),
        updated: timestamp(&release.updated),
    }
}

#[utoipa::path(
    operation_id = "releases_list_builds",
    get,
    path = "/apps/{app}/builds",
    tag = "builds",
    params(("app" = String, Path, description = "The app's id."), crate::api::Page),
    responses((status = 200, description = "The app's builds.", body = drycc_api_types::List<drycc_api_types::Build>), crate::api::openapi::Errors),
)]
pub async fn list_builds(
    State(state): State<Shared>,
    AuthUser(user): AuthUser,
    Path(id): Path<String>,
    Query(page): Query<Page>,
    axum::extract::OriginalUri(uri): axum::extract::OriginalUri,
) -> ApiResult<Json<List<drycc_api_types::Build>>> {
    let app = app_for(&state, &user, &id, Access::Read).await?;
    let builds = state.store.list_builds(&app.id).await?;
    Ok(Json(paginate(
        builds.iter().map(build_view).collect(),
        &page,
        uri.path(),
    )))
}

/// `POST /builds/` (`drycc pull`): an image build. The image's config is
/// read (local Docker engine first, else its registry) before anything is
/// written, so an unknown image, a missing tag, a registry that is down or
/// an image with nothing to run change nothing; then a release deploys it.
#[utoipa::path(
    operation_id = "releases_create_build",
    post,
    path = "/apps/{app}/builds",
    tag = "builds",
    params(("app" = String, Path, description = "The app's id.")),
    request_body = drycc_api_types::BuildCreateRequest,
    responses((status = 201, description = "The new build, deployed.", body = drycc_api_types::Build), crate::api::openapi::Errors),
)]
pub async fn create_build(
    State(state): State<Shared>,
    AuthUser(user): AuthUser,
    Path(id): Path<String>,
    Json(request): Json<BuildCreateRequest>,
) -> ApiResult<(StatusCode, Json<drycc_api_types::Build>)> {
    let app = app_for(&state, &user, &id, Access::Write).await?;
    let reference = request.image.trim();
    if reference.is_empty() {
        return Err(ApiError::bad_request("image: this field may not be blank."));
    }
    drycc_images::parse_reference(reference)
        .map_err(|e| ApiError::bad_request(format!("image: {e}")))?;
    let procfile = match &request.procfile {
        Some(procfile) if !procfile.is_empty() => {
            Some(checked_procfile(procfile, &state.settings)?)
        }
        _ => None,
    };
    if !state.engine.capabilities().images {
        return Err(ApiError::unavailable(
            "image apps run on a Docker engine and none is reachable: start dockerd (or point DRYCC_DOCKER_HOST at one) and restart the controller",
        ));
    }
    let latest = match state.store.desired_release(&app.id).await? {
        Some(release) => release,
        None => state.store.latest_release(&app.id).await?,
    };
    let login =
        deploy::registry_login(&latest.config.registry).map(|c| drycc_images::Credentials {
            username: c.username,
            password: c.password,
        });
    let image = state
        .images
        .inspect(reference, login.as_ref())
        .await
        .map_err(|e| ApiError::bad_request(format!("image {reference}: {e}")))?;
    let build = image_build::new_build(
        reference,
        &image,
        procfile,
        request.sha.clone().unwrap_or_default(),
        String::new(),
    )
    .map_err(ApiError::bad_request)?;
    let types = build.procfile.keys().cloned().collect();
    let change = ReleaseChange {
        owner: user.username.clone(),
        summary: format!("{} deployed {reference}", user.username),
        build: BuildRef::New(build),
        config: NewConfig::from(&latest.config),
        structure: Some(structure_after_deploy(&app.structure, &types)),
    };
    let release = deploy::release(&state, &app.id, change, None).await?;
    let build = release
        .build
        .as_ref()
        .ok_or_else(|| ApiError::internal("the new release has no build"))?;
    Ok((StatusCode::CREATED, Json(build_view(build))))
}

/// The Procfile of a request, each type name and command checked.
fn checked_procfile(
    procfile: &BTreeMap<String, String>,
    settings: &crate::settings::Settings,
) -> ApiResult<BTreeMap<String, String>> {
    if let Some(ptype) = procfile
        .iter()
        .find(|(t, c)| t.contains(['\n', '\r']) || c.contains(['\n', '\r']))
        .map(|(t, _)| t)
    {
        return Err(ApiError::bad_request(format!(
            "procfile: the entry of {ptype:?} spans lines; a type and its command are one line each"
        )));
    }
    let text: String = procfile
        .iter()
        .map(|(ptype, command)| format!("{ptype}: {command}\n"))
        .collect();
    crate::limits::check_procfile(
        &text,
        settings.max_procfile_kib as usize,
        settings.max_procfile_lines as usize,
    )
    .map_err(|e| ApiError::bad_request(format!("procfile: {e}")))?;
    let parsed = drycc_procfile::parse(&text)
        .map_err(|e| ApiError::bad_request(format!("procfile: {e}")))?;
    Ok(parsed
        .entries()
        .iter()
        .map(|e| (e.name.clone(), e.command.clone()))
        .collect())
}

#[utoipa::path(
    operation_id = "releases_list",
    get,
    path = "/apps/{app}/releases",
    tag = "releases",
    params(("app" = String, Path, description = "The app's id."), crate::api::Page),
    responses((status = 200, description = "The app's releases, newest first.", body = drycc_api_types::List<drycc_api_types::Release>), crate::api::openapi::Errors),
)]
pub async fn list(
    State(state): State<Shared>,
    AuthUser(user): AuthUser,
    Path(id): Path<String>,
    Query(page): Query<Page>,
    axum::extract::OriginalUri(uri): axum::extract::OriginalUri,
) -> ApiResult<Json<List<drycc_api_types::Release>>> {
    let app = app_for(&state, &user, &id, Access::Read).await?;
    let releases = state.store.list_releases(&app.id).await?;
    Ok(Json(paginate(
        releases.iter().map(release_view).collect(),
        &page,
        uri.path(),
    )))
}

fn parse_version(text: &str) -> ApiResult<u32> {
    text.strip_prefix('v').unwrap_or(text).parse().map_err(|_| {
        ApiError::bad_request(format!(
            "invalid release version \"{}\": use vN, e.g. v3",
            text.chars().take(20).collect::<String>()
        ))
    })
}

#[utoipa::path(
    operation_id = "releases_show",
    get,
    path = "/apps/{app}/releases/{version}",
    tag = "releases",
    params(("app" = String, Path, description = "The app's id."), ("version" = String, Path, description = "`v<N>` or `<N>`.")),
    responses((status = 200, description = "The release.", body = drycc_api_types::Release), crate::api::openapi::Errors),
)]
pub async fn show(
    State(state): State<Shared>,
    AuthUser(user): AuthUser,
    Path((id, version)): Path<(String, String)>,
) -> ApiResult<Json<drycc_api_types::Release>> {
    let app = app_for(&state, &user, &id, Access::Read).await?;
    let version = parse_version(&version)?;
    let release = state
        .store
        .release(&app.id, version)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("Release v{version} not found.")))?;
    Ok(Json(release_view(&release)))
}

#[utoipa::path(
    operation_id = "releases_rollback",
    post,
    path = "/apps/{app}/releases/rollback",
    tag = "releases",
    params(("app" = String, Path, description = "The app's id.")),
    request_body = Option<drycc_api_types::RollbackRequest>,
    responses((status = 201, description = "The new release's version.", body = drycc_api_types::RollbackResponse), crate::api::openapi::Errors),
)]
pub async fn rollback(
    State(state): State<Shared>,
    AuthUser(user): AuthUser,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> ApiResult<(StatusCode, Json<RollbackResponse>)> {
    let request: RollbackRequest = optional_json(&body)?;
    let version = rollback_app(&state, &user, &id, request.version.as_ref()).await?;
    Ok((StatusCode::CREATED, Json(RollbackResponse { version })))
}

/// Roll an app back to `version` (the one before the latest when `None`)
/// as `user`; the new release's version.
pub(crate) async fn rollback_app(
    state: &Shared,
    user: &drycc_store::User,
    id: &str,
    version: Option<&serde_json::Value>,
) -> ApiResult<u32> {
    let app = app_for(state, user, id, Access::Write).await?;
    let latest = state.store.latest_release(&app.id).await?;
    let target = match version {
        None | Some(serde_json::Value::Null) => i64::from(latest.version) - 1,
        Some(value) => value
            .as_i64()
            .or_else(|| {
                value
                    .as_str()
                    .and_then(|s| s.trim_start_matches('v').parse().ok())
            })
            .ok_or_else(|| ApiError::bad_request("version: a valid integer is required."))?,
    };
    if target < 0 {
        return Err(ApiError::bad_request("version cannot be below 0"));
    }
    if target <= 1 {
        return Err(ApiError::bad_request(
            "Cannot roll back to initial release.",
        ));
    }
    let target = u32::try_from(target)
        .map_err(|_| ApiError::bad_request("version: a valid integer is required."))?;
    let release = state
        .store
        .release(&app.id, target)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("Release v{target} not found.")))?;
    if release.failed {
        return Err(ApiError::bad_request("Cannot roll back to failed release."));
    }
    if let Some(build) = release.build.as_ref().filter(|b| !b.sha.is_empty()) {
        let dir = deploy::slug_dir(state, &app.id, build);
        if !tokio::fs::try_exists(&dir).await.unwrap_or(false) {
            return Err(ApiError::bad_request(format!(
                "Cannot roll back to v{target}: its slug was removed (only the newest DRYCC_SLUGS_KEEP builds keep theirs)."
            )));
        }
    }
    let structure = release.build.as_ref().map(|build| {
        let types = build.procfile.keys().cloned().collect();
        drycc_model::scale::structure_after_deploy(&app.structure, &types)
    });
    let change = ReleaseChange {
        owner: user.username.clone(),
        summary: format!("{} rolled back to v{}", user.username, target),
        build: BuildRef::Keep(release.build.as_ref().map(|b| b.uuid.clone())),
        config: NewConfig::from(&release.config),
        structure,
    };
    let created = deploy::release(state, &app.id, change, None).await?;
    Ok(created.version)
}
