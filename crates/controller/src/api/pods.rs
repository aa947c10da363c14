//! `/v2/apps/<id>/scale/`, `/pods/...`: the formation and its processes.

use std::collections::{BTreeMap, BTreeSet};

use axum::extract::State;
use axum::http::StatusCode;
use drycc_api_types::{ContainerDescription, Pod, PodDescription, PodList, RestartRequest};
use drycc_engine::ProcessStatus;
use drycc_model::scale::{validate_scale, ScaleContext};
use serde_json::Value;

use crate::auth::{app_for, Access, AuthUser};
use crate::deploy::{wait_for, wait_types, DeployError, Verdict};
use crate::error::{optional_json, ApiError, ApiResult, Json, Path, Query};
use crate::state::{timestamp, AppState, Shared};

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
    state: &AppState,
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
    responses((status = 200, description = "The app's processes.", body = drycc_api_types::PodList), crate::api::openapi::Errors),
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
    responses((status = 200, description = "The processes of the type.", body = drycc_api_types::PodList), crate::api::openapi::Errors),
)]
pub async fn list_type(
    State(state): State<Shared>,
    AuthUser(user): AuthUser,
    Path((id, ptype)): Path<(String, String)>,
) -> ApiResult<Json<PodList>> {
    let app = app_for(&state, &user, &id, Access::Read).await?;
    Ok(Json(pod_list(&state, &app.id, Some(&ptype)).await?))
}

/// Autoscale rules of the app as (min, max) per type.
async fn autoscaled(state: &AppState, app: &str) -> ApiResult<BTreeMap<String, (u32, u32)>> {
    let settings = state.store.get_settings(app).await?;
    Ok(settings
        .autoscale
        .iter()
        .filter_map(|(ptype, rule)| {
            let rule: drycc_api_types::AutoscaleRule = serde_json::from_value(rule.clone()).ok()?;
            Some((ptype.clone(), (rule.min, rule.max)))
        })
        .collect())
}

#[utoipa::path(
    operation_id = "pods_scale",
    post,
    path = "/apps/{app}/scale",
    tag = "pods",
    params(("app" = String, Path, description = "The app's id.")),
    request_body = std::collections::BTreeMap<String, u32>,
    responses((status = 204, description = "The types run the asked counts."), crate::api::openapi::Errors),
)]
pub async fn scale(
    State(state): State<Shared>,
    AuthUser(user): AuthUser,
    Path(id): Path<String>,
    Json(request): Json<Value>,
) -> ApiResult<StatusCode> {
    scale_app(&state, &user, &id, &request).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Scale an app's types as `user` (the API's and the dashboard's one path,
/// so both apply the same rules and answer with the same messages).
pub(crate) async fn scale_app(
    state: &Shared,
    user: &drycc_store::User,
    id: &str,
    request: &Value,
) -> ApiResult<()> {
    let app = app_for(state, user, id, Access::Write).await?;
    let request = request.as_object().ok_or_else(|| {
        ApiError::bad_request(
            "Invalid scaling format: expected an object of process types to counts, e.g. {\"web\": 2}",
        )
    })?;
    let lock = state.app_lock(&app.id);
    let guard = lock.lock().await;
    let release = state.store.desired_release(&app.id).await?;
    let types: Option<BTreeSet<String>> = release
        .as_ref()
        .and_then(|r| r.build.as_ref())
        .map(|b| b.procfile.keys().cloned().collect());
    let autoscaled = autoscaled(state, &app.id).await?;
    let context = ScaleContext {
        types: types.as_ref(),
        max_per_type: state.settings.max_processes_per_type,
        autoscaled: &autoscaled,
    };
    let counts = validate_scale(request, &context).map_err(scale_error)?;
    if release.is_none() {
        return Err(ApiError::bad_request(
            "No build associated with this release",
        ));
    }
    write_structure(state, &app.id, &counts).await?;
    drop(guard);
    wait_structure(state, &app.id, &counts).await?;
    Ok(())
}

/// `POST .../ptypes/scale/`: the same as `.../scale/` (Drycc has both).
#[utoipa::path(
    operation_id = "pods_scale_ptypes",
    post,
    path = "/apps/{app}/ptypes/scale",
    tag = "pods",
    params(("app" = String, Path, description = "The app's id.")),
    request_body = std::collections::BTreeMap<String, u32>,
    responses((status = 204, description = "The types run the asked counts."), crate::api::openapi::Errors),
)]
pub async fn scale_ptypes(
    state: State<Shared>,
    user: AuthUser,
    id: Path<String>,
    request: Json<Value>,
) -> ApiResult<StatusCode> {
    scale(state, user, id, request).await
}

fn scale_error(error: drycc_model::scale::ScaleError) -> ApiError {
    use drycc_model::scale::ScaleError;
    let message = error.to_string();
    match error {
        ScaleError::UnknownType(_) => ApiError::not_found(message),
        ScaleError::Autoscaled { .. } => ApiError::conflict(message),
        _ => ApiError::bad_request(message),
    }
}

/// Merge the new counts into the app's structure (desired state). The
/// caller holds the app lock, over its validation and this write only.
pub async fn write_structure(
    state: &AppState,
    app_id: &str,
    counts: &BTreeMap<String, u32>,
) -> ApiResult<()> {
    let mut app = state
        .store
        .get_app(app_id)
        .await?
        .ok_or_else(ApiError::app_not_found)?;
    app.structure
        .extend(counts.iter().map(|(k, v)| (k.clone(), *v)));
    state.store.set_structure(app_id, &app.structure).await?;
    Ok(())
}

/// Hand the written structure to the reconciler and wait, holding no lock,
/// until the changed types have converged (503 after the deploy timeout;
/// the structure stays as requested).
pub async fn wait_structure(
    state: &AppState,
    app_id: &str,
    counts: &BTreeMap<String, u32>,
) -> ApiResult<()> {
    let status = state.reconciler.subscribe(app_id);
    let generation = state.reconciler.enqueue(app_id);
    let types: BTreeSet<String> = counts.keys().cloned().collect();
    wait_types(state, app_id, generation, &types, status).await?;
    Ok(())
}

#[utoipa::path(
    operation_id = "pods_restart_all",
    post,
    path = "/apps/{app}/pods/restart",
    tag = "pods",
    params(("app" = String, Path, description = "The app's id.")),
    request_body = Option<drycc_api_types::RestartRequest>,
    responses((status = 200, description = "The processes after the restart.", body = drycc_api_types::PodList), crate::api::openapi::Errors),
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
    let app = restart(&state, &user, &id, types).await?;
    Ok(Json(pod_list(&state, &app, None).await?))
}

#[utoipa::path(
    operation_id = "pods_restart_type",
    post,
    path = "/apps/{app}/pods/{target}/restart",
    tag = "pods",
    params(("app" = String, Path, description = "The app's id."), ("target" = String, Path, description = "A process type.")),
    responses((status = 200, description = "The processes after the restart.", body = drycc_api_types::PodList), crate::api::openapi::Errors),
)]
pub async fn restart_type(
    State(state): State<Shared>,
    AuthUser(user): AuthUser,
    Path((id, ptype)): Path<(String, String)>,
) -> ApiResult<Json<PodList>> {
    let app = restart(&state, &user, &id, Some(BTreeSet::from([ptype]))).await?;
    Ok(Json(pod_list(&state, &app, None).await?))
}

/// Restart `types` (all of them when `None`) of an app as `user`; the
/// app's id on success.
pub(crate) async fn restart(
    state: &Shared,
    user: &drycc_store::User,
    id: &str,
    types: Option<BTreeSet<String>>,
) -> ApiResult<String> {
    let app = app_for(state, user, id, Access::Write).await?;
    restart_types(state, &app.id, types).await?;
    Ok(app.id)
}

/// A rolling restart: bump the types' restart generation so their template
/// hash changes (desired state), then let the reconciler apply it and the
/// engine roll them one at a time.
async fn restart_types(
    state: &AppState,
    app_id: &str,
    types: Option<BTreeSet<String>>,
) -> ApiResult<()> {
    let lock = state.app_lock(app_id);
    let guard = lock.lock().await;
    let release = state
        .store
        .desired_release(app_id)
        .await?
        .filter(|r| r.build.is_some())
        .ok_or_else(|| ApiError::bad_request("No build associated with this release"))?;
    let known: BTreeSet<String> = release
        .build
        .as_ref()
        .map(|b| b.procfile.keys().cloned().collect())
        .unwrap_or_default();
    let types = match types {
        Some(types) => {
            if let Some(unknown) = types.iter().find(|t| !known.contains(*t)) {
                return Err(ApiError::not_found(format!(
                    "Container type {unknown} does not exist in application"
                )));
            }
            types
        }
        None => known,
    };
    let list: Vec<String> = types.iter().cloned().collect();
    state.store.bump_restart_generation(app_id, &list).await?;
    drop(guard);
    let status = state.reconciler.subscribe(app_id);
    let generation = state.reconciler.enqueue(app_id);
    wait_types(state, app_id, generation, &types, status).await?;
    Ok(())
}

#[utoipa::path(
    operation_id = "pods_restart_one",
    post,
    path = "/apps/{app}/pods/{target}/{name}/restart",
    tag = "pods",
    params(("app" = String, Path, description = "The app's id."), ("target" = String, Path, description = "A process type."), ("name" = String, Path, description = "A process's name.")),
    responses((status = 200, description = "The processes after the restart.", body = drycc_api_types::PodList), crate::api::openapi::Errors),
)]
pub async fn restart_one(
    State(state): State<Shared>,
    AuthUser(user): AuthUser,
    Path((id, ptype, name)): Path<(String, String, String)>,
) -> ApiResult<Json<PodList>> {
    let app = restart_process(&state, &user, &id, &ptype, &name).await?;
    Ok(Json(pod_list(&state, &app, None).await?))
}

/// Replace one process of an app as `user`; the app's id on success.
pub(crate) async fn restart_process(
    state: &Shared,
    user: &drycc_store::User,
    id: &str,
    ptype: &str,
    name: &str,
) -> ApiResult<String> {
    let app = app_for(state, user, id, Access::Write).await?;
    let processes = state.engine.processes(&app.id).await?;
    let process = processes
        .iter()
        .find(|p| p.name == name && p.ptype == ptype)
        .ok_or_else(|| ApiError::not_found(format!("process {name} not found")))?;
    let old_name = process.name.clone();
    state.engine.restart_process(&app.id, &old_name).await?;
    // Done when the old process is gone and the type is back at capacity.
    let expected = processes
        .iter()
        .filter(|p| p.ptype == ptype && p.ready)
        .count();
    wait_for(state, &app.id, state.settings.deploy_timeout(), |now| {
        let ready = now.iter().filter(|p| p.ptype == ptype && p.ready).count();
        if !now.iter().any(|p| p.name == old_name) && ready >= expected {
            Verdict::Done
        } else {
            Verdict::Pending
        }
    })
    .await
    .map_err(|error| match error {
        DeployError::TimedOut(_) => ApiError::unavailable(format!(
            "process {old_name} was not replaced within the deploy timeout"
        )),
        other => other.into(),
    })?;
    Ok(app.id)
}

/// Every process's CPU and memory. CPU is measured between two readings,
/// so while the last sample lacks a process's CPU (its first reading, or
/// the process is newer than the sample) another follows shortly, a few
/// times at most.
pub(crate) async fn all_usage(state: &AppState, app: &str) -> Vec<drycc_engine::ProcessUsage> {
    const ATTEMPTS: usize = 4;
    let engine = state.engine.as_ref();
    let running: Vec<String> = engine
        .processes(app)
        .await
        .map(|all| all.into_iter().map(|p| p.name).collect())
        .unwrap_or_default();
    let mut usage = Vec::new();
    for attempt in 1..=ATTEMPTS {
        usage = state.usage.sample(engine, app).await.unwrap_or_default();
        let measured = |name: &String| {
            usage
                .iter()
                .any(|u| &u.name == name && u.cpu_millis.is_some())
        };
        if running.iter().all(measured) || attempt == ATTEMPTS {
            break;
        }
        tokio::time::sleep(crate::usage::MIN_WINDOW).await;
    }
    usage
}

/// One process's CPU and memory (see [`all_usage`]).
async fn usage_of(state: &AppState, app: &str, name: &str) -> (Option<u64>, Option<u64>) {
    all_usage(state, app)
        .await
        .into_iter()
        .find(|u| u.name == name)
        .map_or((None, None), |u| (u.cpu_millis, u.memory_bytes))
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
    responses((status = 200, description = "The process's containers.", body = drycc_api_types::PodDescription), crate::api::openapi::Errors),
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
    let dir = crate::deploy::slug_dir(state, app, build);
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
