//! `/v2/apps/<id>/settings/`: autoscale rules and routability. Settings
//! create no release. Enforcement of autoscale rules belongs to the
//! autoscaler; here they are validated, stored, and the type is brought into
//! `[min, max]` at once.

use axum::extract::State;
use axum::http::StatusCode;
use drycc_api_types::{AutoscaleHistory, AutoscaleRecord, SettingsUpdate};

use crate::context::timestamp;
use crate::http::error::ApiResult;
use crate::http::extract::AuthUser;
use crate::http::extract::{Json, Path};
use crate::http::Shared;
use crate::service::access::{app_for, Access};
use crate::service::Service;

pub fn settings_view(
    state: &Service,
    settings: &drycc_store::Settings,
) -> drycc_api_types::Settings {
    let autoscale_status = settings
        .autoscale
        .keys()
        .filter_map(|ptype| {
            let status = state.autoscale.status(&settings.app, ptype);
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
                    reason: crate::service::autoscale::describe(ptype, &rule, &last.decision),
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
    responses((status = 200, description = "The app's settings.", body = drycc_api_types::Settings), crate::http::api::openapi::Errors),
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

#[utoipa::path(
    operation_id = "settings_update",
    post,
    path = "/apps/{app}/settings",
    tag = "settings",
    params(("app" = String, Path, description = "The app's id.")),
    request_body = drycc_api_types::SettingsUpdate,
    responses((status = 201, description = "The new settings.", body = drycc_api_types::Settings), crate::http::api::openapi::Errors),
)]
pub async fn update(
    State(state): State<Shared>,
    AuthUser(user): AuthUser,
    Path(id): Path<String>,
    Json(update): Json<SettingsUpdate>,
) -> ApiResult<(StatusCode, Json<drycc_api_types::Settings>)> {
    let settings = crate::service::settings::update(&state, &user, &id, &update).await?;
    Ok((StatusCode::CREATED, Json(settings_view(&state, &settings))))
}

/// `GET /v2/apps/<id>/settings/autoscale/<type>/history`: the autoscaler's
/// recent decisions for a type, oldest first.
#[utoipa::path(
    operation_id = "settings_autoscale_history",
    get,
    path = "/apps/{app}/settings/autoscale/{ptype}/history",
    tag = "settings",
    params(("app" = String, Path, description = "The app's id."), ("ptype" = String, Path, description = "A process type.")),
    responses((status = 200, description = "The autoscaler's recent decisions.", body = drycc_api_types::AutoscaleHistory), crate::http::api::openapi::Errors),
)]
pub async fn autoscale_history(
    State(state): State<Shared>,
    AuthUser(user): AuthUser,
    Path((id, ptype)): Path<(String, String)>,
) -> ApiResult<Json<AutoscaleHistory>> {
    let app = app_for(&state, &user, &id, Access::Read).await?;
    let results: Vec<AutoscaleRecord> = state
        .autoscale
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
pub(crate) fn record_view(record: &crate::service::autoscale::Record) -> AutoscaleRecord {
    AutoscaleRecord {
        time: timestamp(&record.time),
        utilization: record.decision.utilization,
        current: record.decision.current,
        desired: record.decision.desired,
        rescaled: record.decision.rescales(),
    }
}
