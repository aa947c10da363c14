//! `/v2/apps/<id>/builds/` and `/releases/`: list, show, create build, roll back.

use axum::extract::State;
use axum::http::StatusCode;
use drycc_api_types::{BuildCreateRequest, List, RollbackRequest, RollbackResponse};

use super::{paginate, Page};
use crate::context::timestamp;
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::AuthUser;
use crate::http::extract::{optional_json, Json, Path, Query};
use crate::http::Shared;
use crate::service::access::{app_for, Access};
use crate::service::rollout;

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
    params(("app" = String, Path, description = "The app's id."), crate::http::api::Page),
    responses((status = 200, description = "The app's builds.", body = drycc_api_types::List<drycc_api_types::Build>), crate::http::api::openapi::Errors),
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
    responses((status = 201, description = "The new build, deployed.", body = drycc_api_types::Build), crate::http::api::openapi::Errors),
)]
pub async fn create_build(
    State(state): State<Shared>,
    AuthUser(user): AuthUser,
    Path(id): Path<String>,
    Json(request): Json<BuildCreateRequest>,
) -> ApiResult<(StatusCode, Json<drycc_api_types::Build>)> {
    let release = rollout::deploy_image(&state, &user, &id, &request).await?;
    let build = release
        .build
        .as_ref()
        .ok_or_else(|| ApiError::internal("the new release has no build"))?;
    Ok((StatusCode::CREATED, Json(build_view(build))))
}

#[utoipa::path(
    operation_id = "releases_list",
    get,
    path = "/apps/{app}/releases",
    tag = "releases",
    params(("app" = String, Path, description = "The app's id."), crate::http::api::Page),
    responses((status = 200, description = "The app's releases, newest first.", body = drycc_api_types::List<drycc_api_types::Release>), crate::http::api::openapi::Errors),
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
    responses((status = 200, description = "The release.", body = drycc_api_types::Release), crate::http::api::openapi::Errors),
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
    responses((status = 201, description = "The new release's version.", body = drycc_api_types::RollbackResponse), crate::http::api::openapi::Errors),
)]
pub async fn rollback(
    State(state): State<Shared>,
    AuthUser(user): AuthUser,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> ApiResult<(StatusCode, Json<RollbackResponse>)> {
    let request: RollbackRequest = optional_json(&body)?;
    let version = rollout::rollback(&state, &user, &id, request.version.as_ref()).await?;
    Ok((StatusCode::CREATED, Json(RollbackResponse { version })))
}
