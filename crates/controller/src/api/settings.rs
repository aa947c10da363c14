//! `/v2/apps/<id>/settings/`: autoscale rules and routability. Settings
//! create no release. Enforcement of autoscale rules belongs to the
//! autoscaler; here they are validated, stored, and the type is brought into
//! `[min, max]` at once.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::StatusCode;
use drycc_api_types::{AutoscaleHistory, AutoscaleRecord, AutoscaleRule, SettingsUpdate};
use serde_json::Value;

use crate::api::pods::{wait_structure, write_structure};
use crate::auth::{app_for, Access, AuthUser};
use crate::error::{ApiError, ApiResult, Json, Path};
use crate::state::{timestamp, AppState, Shared};

pub fn settings_view(
    state: &AppState,
    settings: &drycc_store::Settings,
) -> drycc_api_types::Settings {
    let autoscale_status = settings
        .autoscale
        .keys()
        .filter_map(|ptype| {
            let status = state.autoscaler.status(&settings.app, ptype);
            let last = status.last?;
            let rule: drycc_api_types::AutoscaleRule =
                serde_json::from_value(settings.autoscale.get(ptype)?.clone()).ok()?;
            let rule = drycc_model::autoscale::Rule {
                min: rule.min,
                max: rule.max,
                cpu_percent: rule.cpu_percent,
            };
            Some((
                ptype.clone(),
                drycc_api_types::AutoscaleStatus {
                    utilization: last.decision.utilization,
                    current: last.decision.current,
                    desired: last.decision.desired,
                    last_scale: status.last_rescale.as_ref().map(timestamp),
                    reason: crate::autoscaler::describe(ptype, &rule, &last.decision),
                },
            ))
        })
        .collect();
    drycc_api_types::Settings {
        autoscale_status,
        uuid: settings.uuid.clone(),
        app: settings.app.clone(),
        owner: settings.owner.clone(),
        autoscale: settings
            .autoscale
            .iter()
            .filter_map(|(k, v)| Some((k.clone(), serde_json::from_value(v.clone()).ok()?)))
            .collect(),
        routable: settings.routable,
        created: timestamp(&settings.created),
        updated: timestamp(&settings.updated),
    }
}

#[utoipa::path(
    operation_id = "settings_show",
    get,
    path = "/apps/{app}/settings",
    tag = "settings",
    params(("app" = String, Path, description = "The app's id.")),
    responses((status = 200, description = "The app's settings.", body = drycc_api_types::Settings), crate::api::openapi::Errors),
)]
pub async fn show(
    State(state): State<Shared>,
    AuthUser(user): AuthUser,
    Path(id): Path<String>,
) -> ApiResult<Json<drycc_api_types::Settings>> {
    let app = app_for(&state, &user, &id, Access::Read).await?;
    Ok(Json(settings_view(
        &state,
        &state.store.get_settings(&app.id).await?,
    )))
}

fn parse_rule(ptype: &str, value: &Value) -> ApiResult<AutoscaleRule> {
    let field = |name: &str| -> ApiResult<u32> {
        value
            .get(name)
            .and_then(Value::as_u64)
            .and_then(|v| u32::try_from(v).ok())
            .ok_or_else(|| {
                ApiError::bad_request(format!(
                    "autoscale: {ptype}: \"{name}\" must be a positive integer, e.g. {{\"min\": 3, \"max\": 8, \"cpu_percent\": 75}}"
                ))
            })
    };
    let rule = AutoscaleRule {
        min: field("min")?,
        max: field("max")?,
        cpu_percent: field("cpu_percent")?,
    };
    if rule.min < 1 || rule.min > rule.max {
        return Err(ApiError::bad_request(format!(
            "autoscale: {ptype}: min and max must satisfy 1 <= min <= max (got min {}, max {}), e.g. {{\"min\": 3, \"max\": 8, \"cpu_percent\": 75}}",
            rule.min, rule.max
        )));
    }
    if rule.cpu_percent < 1 {
        return Err(ApiError::bad_request(format!(
            "autoscale: {ptype}: cpu_percent must be at least 1, e.g. {{\"min\": 3, \"max\": 8, \"cpu_percent\": 75}}"
        )));
    }
    Ok(rule)
}

#[utoipa::path(
    operation_id = "settings_update",
    post,
    path = "/apps/{app}/settings",
    tag = "settings",
    params(("app" = String, Path, description = "The app's id.")),
    request_body = drycc_api_types::SettingsUpdate,
    responses((status = 201, description = "The new settings.", body = drycc_api_types::Settings), crate::api::openapi::Errors),
)]
pub async fn update(
    State(state): State<Shared>,
    AuthUser(user): AuthUser,
    Path(id): Path<String>,
    Json(update): Json<SettingsUpdate>,
) -> ApiResult<(StatusCode, Json<drycc_api_types::Settings>)> {
    let settings = update_settings(&state, &user, &id, &update).await?;
    Ok((StatusCode::CREATED, Json(settings_view(&state, &settings))))
}

/// Change an app's settings as `user` (the API's and the dashboard's one
/// path: same rules, same messages).
pub(crate) async fn update_settings(
    state: &Shared,
    user: &drycc_store::User,
    id: &str,
    update: &SettingsUpdate,
) -> ApiResult<drycc_store::Settings> {
    let app = app_for(state, user, id, Access::Write).await?;
    let lock = state.app_lock(&app.id);
    let guard = lock.lock().await;
    let current = state.store.get_settings(&app.id).await?;
    let release = state.store.desired_release(&app.id).await?;
    let mut autoscale = current.autoscale.clone();
    let mut clamp = BTreeMap::new();
    if let Some(rules) = &update.autoscale {
        for (ptype, rule) in rules {
            match rule {
                None | Some(Value::Null) => {
                    if autoscale.remove(ptype).is_none() {
                        return Err(ApiError::not_found(format!(
                            "No autoscale rule for process type {ptype}; `drycc autoscale:list` shows the rules"
                        )));
                    }
                    // Unsetting keeps the current count.
                    state.autoscaler.forget(&app.id, Some(ptype));
                }
                Some(value) => {
                    let rule = parse_rule(ptype, value)?;
                    let release = release
                        .as_ref()
                        .filter(|r| {
                            r.build
                                .as_ref()
                                .is_some_and(|b| b.procfile.contains_key(ptype))
                        })
                        .ok_or_else(|| {
                            ApiError::not_found(format!(
                                "Container type {ptype} does not exist in application"
                            ))
                        })?;
                    if !release.config.cpu.contains_key(ptype) {
                        return Err(ApiError::bad_request(format!(
                            "autoscale: {ptype} has no CPU limit; utilisation is measured against it: run `drycc limits:set --cpu {ptype}=<value>` first"
                        )));
                    }
                    let count = app.structure.get(ptype).copied().unwrap_or(0);
                    clamp.insert(ptype.clone(), count.clamp(rule.min, rule.max));
                    autoscale.insert(
                        ptype.clone(),
                        serde_json::to_value(rule).map_err(ApiError::internal)?,
                    );
                }
            }
        }
    }
    let settings = state
        .store
        .put_settings(&app.id, &user.username, &autoscale, update.routable)
        .await?;
    if update.routable.is_some() {
        state.routes.store_changed();
        state.routes.sync().await;
    }
    let counts: BTreeMap<String, u32> = clamp
        .into_iter()
        .filter(|(ptype, count)| app.structure.get(ptype) != Some(count))
        .collect();
    for ptype in counts.keys() {
        // Bringing the count into [min, max] is a rescale: the windows start.
        state.autoscaler.rescaled(&app.id, ptype);
    }
    if release.is_some() && !counts.is_empty() {
        write_structure(state, &app.id, &counts).await?;
        drop(guard);
        wait_structure(state, &app.id, &counts).await?;
    } else if update.autoscale.is_some() && state.engine.capabilities().autoscaler {
        // The engine's own autoscaler takes the rule from the reconciler:
        // answer once it has (or with the engine's refusal).
        drop(guard);
        wait_structure(state, &app.id, &BTreeMap::new()).await?;
    }
    Ok(settings)
}

/// `GET /v2/apps/<id>/settings/autoscale/<type>/history`: the autoscaler's
/// recent decisions for a type, oldest first.
#[utoipa::path(
    operation_id = "settings_autoscale_history",
    get,
    path = "/apps/{app}/settings/autoscale/{ptype}/history",
    tag = "settings",
    params(("app" = String, Path, description = "The app's id."), ("ptype" = String, Path, description = "A process type.")),
    responses((status = 200, description = "The autoscaler's recent decisions.", body = drycc_api_types::AutoscaleHistory), crate::api::openapi::Errors),
)]
pub async fn autoscale_history(
    State(state): State<Shared>,
    AuthUser(user): AuthUser,
    Path((id, ptype)): Path<(String, String)>,
) -> ApiResult<Json<AutoscaleHistory>> {
    let app = app_for(&state, &user, &id, Access::Read).await?;
    let results: Vec<AutoscaleRecord> = state
        .autoscaler
        .history(&app.id, &ptype)
        .iter()
        .map(record_view)
        .collect();
    Ok(Json(AutoscaleHistory {
        count: results.len(),
        results,
    }))
}

/// One autoscaler decision as the API shows it.
pub(crate) fn record_view(record: &crate::autoscaler::Record) -> AutoscaleRecord {
    AutoscaleRecord {
        time: timestamp(&record.time),
        utilization: record.decision.utilization,
        current: record.decision.current,
        desired: record.decision.desired,
        rescaled: record.decision.rescales(),
    }
}
