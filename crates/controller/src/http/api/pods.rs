//! `/v2/apps/<id>/scale/`, `/pods/...`: the formation and its processes.

use std::collections::{BTreeMap, BTreeSet};

use axum::extract::State;
use axum::http::StatusCode;
use drycc_api_types::{ContainerDescription, Pod, PodDescription, PodList, RestartRequest};
use drycc_engine::ProcessStatus;
use serde_json::Value;

use crate::context::timestamp;
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::AuthUser;
use crate::http::extract::{optional_json, Json, Path, Query};
use crate::http::Shared;
use crate::service::access::{app_for, Access};
use crate::service::usage::{all_usage, usage_of};
use crate::service::{restart, scale, Service};

pub fn pod_view(process: &ProcessStatus) -> Pod {
    Pod {
        name: process.name.clone(),
        release: format!("v{}", process.release),
        ptype: process.ptype.clone(),
        state: process.state.to_string(),
        started: timestamp(&process.started),
        ready: if process.ready { "1/1" } else { "0/1" }.into(),
        restarts: process.restarts,
        cpu_millis: None,
        memory_bytes: None,
    }
}

#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// `true`: each process's CPU and memory too (`drycc ps --usage`).
    usage: Option<String>,
}

pub(crate) async fn pod_list(
    state: &Service,
    app: &str,
    ptype: Option<&str>,
) -> ApiResult<PodList> {
    let results: Vec<Pod> = state
        .engine
        .processes(app)
        .await?
        .iter()
        .filter(|p| ptype.is_none_or(|t| p.ptype == t))
        .map(pod_view)
        .collect();
    Ok(PodList {
        count: results.len(),
        results,
    })
}

#[utoipa::path(
    operation_id = "pods_list",
    get,
    path = "/apps/{app}/pods",
    tag = "pods",
    params(("app" = String, Path, description = "The app's id."), ListQuery),
    responses((status = 200, description = "The app's processes.", body = drycc_api_types::PodList), crate::http::api::openapi::Errors),
)]
pub async fn list(
    State(state): State<Shared>,
    AuthUser(user): AuthUser,
    Path(id): Path<String>,
    Query(query): Query<ListQuery>,
) -> ApiResult<Json<PodList>> {
    let app = app_for(&state, &user, &id, Access::Read).await?;
    let mut list = pod_list(&state, &app.id, None).await?;
    match query.usage.as_deref() {
        None | Some("false") => {}
        Some("true") => {
            let usage = all_usage(&state, &app.id).await;
            for pod in &mut list.results {
                if let Some(u) = usage.iter().find(|u| u.name == pod.name) {
                    pod.cpu_millis = u.cpu_millis;
                    pod.memory_bytes = u.memory_bytes;
                }
            }
        }
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "usage: \"{}\" is not true or false",
                other.chars().take(20).collect::<String>()
            )))
        }
    }
    Ok(Json(list))
}

#[utoipa::path(
    operation_id = "pods_list_type",
    get,
    path = "/apps/{app}/pods/{target}",
    tag = "pods",
    params(("app" = String, Path, description = "The app's id."), ("target" = String, Path, description = "A process type.")),
    responses((status = 200, description = "The processes of the type.", body = drycc_api_types::PodList), crate::http::api::openapi::Errors),
)]
pub async fn list_type(
    State(state): State<Shared>,
    AuthUser(user): AuthUser,
    Path((id, ptype)): Path<(String, String)>,
) -> ApiResult<Json<PodList>> {
    let app = app_for(&state, &user, &id, Access::Read).await?;
    Ok(Json(pod_list(&state, &app.id, Some(&ptype)).await?))
}

#[utoipa::path(
    operation_id = "pods_scale",
    post,
    path = "/apps/{app}/scale",
    tag = "pods",
    params(("app" = String, Path, description = "The app's id.")),
    request_body = std::collections::BTreeMap<String, u32>,
    responses((status = 204, description = "The types run the asked counts."), crate::http::api::openapi::Errors),
)]
pub async fn scale(
    State(state): State<Shared>,
    AuthUser(user): AuthUser,
    Path(id): Path<String>,
    Json(request): Json<Value>,
) -> ApiResult<StatusCode> {
    scale::scale(&state, &user, &id, &request).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST .../ptypes/scale/`: the same as `.../scale/` (Drycc has both).
#[utoipa::path(
    operation_id = "pods_scale_ptypes",
    post,
    path = "/apps/{app}/ptypes/scale",
    tag = "pods",
    params(("app" = String, Path, description = "The app's id.")),
    request_body = std::collections::BTreeMap<String, u32>,
    responses((status = 204, description = "The types run the asked counts."), crate::http::api::openapi::Errors),
)]
pub async fn scale_ptypes(
    state: State<Shared>,
    user: AuthUser,
    id: Path<String>,
    request: Json<Value>,
) -> ApiResult<StatusCode> {
    scale(state, user, id, request).await
}

#[utoipa::path(
    operation_id = "pods_restart_all",
    post,
    path = "/apps/{app}/pods/restart",
    tag = "pods",
    params(("app" = String, Path, description = "The app's id.")),
    request_body = Option<drycc_api_types::RestartRequest>,
    responses((status = 200, description = "The processes after the restart.", body = drycc_api_types::PodList), crate::http::api::openapi::Errors),
)]
pub async fn restart_all(
    State(state): State<Shared>,
    AuthUser(user): AuthUser,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> ApiResult<Json<PodList>> {
    let request: RestartRequest = optional_json(&body)?;
    let types: Option<BTreeSet<String>> = request.types.map(|t| {
        t.split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_string)
            .collect()
    });
    let app = restart::restart(&state, &user, &id, types).await?;
    Ok(Json(pod_list(&state, &app, None).await?))
}

#[utoipa::path(
    operation_id = "pods_restart_type",
    post,
    path = "/apps/{app}/pods/{target}/restart",
    tag = "pods",
    params(("app" = String, Path, description = "The app's id."), ("target" = String, Path, description = "A process type.")),
    responses((status = 200, description = "The processes after the restart.", body = drycc_api_types::PodList), crate::http::api::openapi::Errors),
)]
pub async fn restart_type(
    State(state): State<Shared>,
    AuthUser(user): AuthUser,
    Path((id, ptype)): Path<(String, String)>,
) -> ApiResult<Json<PodList>> {
    let app = restart::restart(&state, &user, &id, Some(BTreeSet::from([ptype]))).await?;
    Ok(Json(pod_list(&state, &app, None).await?))
}

#[utoipa::path(
    operation_id = "pods_restart_one",
    post,
    path = "/apps/{app}/pods/{target}/{name}/restart",
    tag = "pods",
    params(("app" = String, Path, description = "The app's id."), ("target" = String, Path, description = "A process type."), ("name" = String, Path, description = "A process's name.")),
    responses((status = 200, description = "The processes after the restart.", body = drycc_api_types::PodList), crate::http::api::openapi::Errors),
)]
pub async fn restart_one(
    State(state): State<Shared>,
    AuthUser(user): AuthUser,
    Path((id, ptype, name)): Path<(String, String, String)>,
) -> ApiResult<Json<PodList>> {
    let app = restart::restart_process(&state, &user, &id, &ptype, &name).await?;
    Ok(Json(pod_list(&state, &app, None).await?))
}

/// What runs, as Kubernetes shows it: `command` (the program, or
/// `/bin/sh -c`) and `args`.
fn split_argv(argv: &[String]) -> (Vec<String>, Vec<String>) {
    let program = match argv {
        [sh, c, ..] if sh == "/bin/sh" && c == "-c" => 2,
        [] => 0,
        _ => 1,
    };
    (argv[..program].to_vec(), argv[program..].to_vec())
}

#[utoipa::path(
    operation_id = "pods_describe",
    get,
    path = "/apps/{app}/pods/{target}/describe",
    tag = "pods",
    params(("app" = String, Path, description = "The app's id."), ("target" = String, Path, description = "A process's name.")),
    responses((status = 200, description = "The process's containers.", body = drycc_api_types::PodDescription), crate::http::api::openapi::Errors),
)]
pub async fn describe(
    State(state): State<Shared>,
    AuthUser(user): AuthUser,
    Path((id, name)): Path<(String, String)>,
) -> ApiResult<Json<PodDescription>> {
    let app = app_for(&state, &user, &id, Access::Read).await?;
    let processes = state.engine.processes(&app.id).await?;
    let process = processes
        .iter()
        .find(|p| p.name == name)
        .ok_or_else(|| ApiError::not_found(format!("process {name} not found")))?;
    let mut fields = serde_json::Map::new();
    fields.insert("startedAt".into(), timestamp(&process.started).into());
    if let Some(last_exit) = &process.last_exit {
        fields.insert("lastExit".into(), last_exit.clone().into());
    }
    let mut detail = BTreeMap::new();
    detail.insert(process.state.to_string(), Value::Object(fields));
    let (command, args) = split_argv(&process.argv);
    let (cpu_millis, memory_bytes) = usage_of(&state, &app.id, &name).await;
    let container = ContainerDescription {
        container: process.ptype.clone(),
        image: process.image.clone().unwrap_or_default(),
        command,
        args,
        state: detail,
        ready: process.ready,
        restart_count: process.restarts,
        pid: process.pid,
        port: process.endpoint.map(|e| e.port()),
        release: format!("v{}", process.release),
        cpu_millis,
        memory_bytes,
        slug_size: slug_size(&state, &app.id, process.release).await,
    };
    Ok(Json(PodDescription {
        count: 1,
        results: vec![container],
    }))
}

/// The size of the slug release `version` runs, for a buildpack build.
/// Walks the slug's files: `describe` is asked for rarely.
async fn slug_size(state: &Shared, app: &str, version: u32) -> Option<u64> {
    let release = state.store.release(app, version).await.ok()??;
    let build = release.build.as_ref()?;
    if build.image_config.is_some() {
        return None;
    }
    let dir = crate::desired::slug_dir(&state.paths, app, build);
    tokio::task::spawn_blocking(move || dir.is_dir().then(|| drycc_buildpacks::slug::size(&dir)))
        .await
        .ok()?
}

#[cfg(test)]
mod tests {
    use super::split_argv;

    fn words(w: &[&str]) -> Vec<String> {
        w.iter().map(|w| w.to_string()).collect()
    }

    #[test]
    fn argv_splits_into_command_and_args() {
        assert_eq!(
            split_argv(&words(&["/bin/sh", "-c", "sleep $X"])),
            (words(&["/bin/sh", "-c"]), words(&["sleep $X"]))
        );
        assert_eq!(
            split_argv(&words(&["/usr/bin/sleep", "600"])),
            (words(&["/usr/bin/sleep"]), words(&["600"]))
        );
        assert_eq!(split_argv(&[]), (vec![], vec![]));
    }
}
