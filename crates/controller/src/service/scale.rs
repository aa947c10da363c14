//! Scaling: a type's count written into the app's structure (desired
//! state), for a user (validated by `drycc_model::scale`) or for the
//! autoscaler, and the wait until the types run it.

use std::collections::{BTreeMap, BTreeSet};

use drycc_model::scale::{validate_scale, ScaleContext};
use serde_json::Value;

use super::access::{self, Access};
use super::wait::wait_types;
use super::{Service, ServiceError, ServiceResult};

/// Scale an app's types as `user` (the API's and the dashboard's one path,
/// so both apply the same rules and answer with the same messages).
pub async fn scale(
    svc: &Service,
    user: &drycc_store::User,
    id: &str,
    request: &Value,
) -> ServiceResult<()> {
    let app = access::app_for(svc, user, id, Access::Write).await?;
    let request = request.as_object().ok_or_else(|| {
        ServiceError::invalid(
            "Invalid scaling format: expected an object of process types to counts, e.g. {\"web\": 2}",
        )
    })?;
    let lock = svc.app_lock(&app.id);
    let guard = lock.lock().await;
    let release = svc.store.desired_release(&app.id).await?;
    let types: Option<BTreeSet<String>> = release
        .as_ref()
        .and_then(|r| r.build.as_ref())
        .map(|b| b.procfile.keys().cloned().collect());
    let autoscaled = autoscaled(svc, &app.id).await?;
    let context = ScaleContext {
        types: types.as_ref(),
        max_per_type: svc.settings.max_processes_per_type,
        autoscaled: &autoscaled,
    };
    let counts = validate_scale(request, &context)?;
    if release.is_none() {
        return Err(ServiceError::invalid(
            "No build associated with this release",
        ));
    }
    write_structure(svc, &app.id, &counts).await?;
    drop(guard);
    wait_structure(svc, &app.id, &counts).await?;
    Ok(())
}

/// Autoscale rules of the app as (min, max) per type.
async fn autoscaled(svc: &Service, app: &str) -> ServiceResult<BTreeMap<String, (u32, u32)>> {
    let settings = svc.store.get_settings(app).await?;
    Ok(settings
        .autoscale
        .iter()
        .filter_map(|(ptype, rule)| {
            let rule: drycc_api_types::AutoscaleRule = serde_json::from_value(rule.clone()).ok()?;
            Some((ptype.clone(), (rule.min, rule.max)))
        })
        .collect())
}

/// Merge the new counts into the app's structure (desired state). The
/// caller holds the app lock, over its validation and this write only.
pub async fn write_structure(
    svc: &Service,
    app_id: &str,
    counts: &BTreeMap<String, u32>,
) -> ServiceResult<()> {
    let mut app = svc
        .store
        .get_app(app_id)
        .await?
        .ok_or(ServiceError::AppNotFound)?;
    app.structure
        .extend(counts.iter().map(|(k, v)| (k.clone(), *v)));
    svc.store.set_structure(app_id, &app.structure).await?;
    Ok(())
}

/// Hand the written structure to the reconciler and wait, holding no lock,
/// until the changed types have converged (503 after the deploy timeout;
/// the structure stays as requested).
pub async fn wait_structure(
    svc: &Service,
    app_id: &str,
    counts: &BTreeMap<String, u32>,
) -> ServiceResult<()> {
    let status = svc.reconciler.subscribe(app_id);
    let generation = svc.reconciler.enqueue(app_id);
    let types: BTreeSet<String> = counts.keys().cloned().collect();
    wait_types(svc, app_id, generation, &types, status).await?;
    Ok(())
}
