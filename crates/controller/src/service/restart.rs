//! Restarts: a rolling restart of types (their restart generation bumped,
//! so their template hash changes, as desired state) and the replacement
//! of one process (the one engine call a request makes itself).

use std::collections::BTreeSet;

use super::access::{self, Access};
use super::wait::{wait_for, wait_types, Verdict};
use super::{DeployError, Service, ServiceError, ServiceResult};

/// Restart `types` (all of them when `None`) of an app as `user`; the
/// app's id on success.
pub async fn restart(
    svc: &Service,
    user: &drycc_store::User,
    id: &str,
    types: Option<BTreeSet<String>>,
) -> ServiceResult<String> {
    let app = access::app_for(svc, user, id, Access::Write).await?;
    restart_types(svc, &app.id, types).await?;
    Ok(app.id)
}

/// A rolling restart: bump the types' restart generation so their template
/// hash changes (desired state), then let the reconciler apply it and the
/// engine roll them one at a time.
async fn restart_types(
    svc: &Service,
    app_id: &str,
    types: Option<BTreeSet<String>>,
) -> ServiceResult<()> {
    let lock = svc.app_lock(app_id);
    let guard = lock.lock().await;
    let release = svc
        .store
        .desired_release(app_id)
        .await?
        .filter(|r| r.build.is_some())
        .ok_or_else(|| ServiceError::invalid("No build associated with this release"))?;
    let known: BTreeSet<String> = release
        .build
        .as_ref()
        .map(|b| b.procfile.keys().cloned().collect())
        .unwrap_or_default();
    let types = match types {
        Some(types) => {
            if let Some(unknown) = types.iter().find(|t| !known.contains(*t)) {
                return Err(ServiceError::not_found(format!(
                    "Container type {unknown} does not exist in application"
                )));
            }
            types
        }
        None => known,
    };
    let list: Vec<String> = types.iter().cloned().collect();
    svc.store.bump_restart_generation(app_id, &list).await?;
    drop(guard);
    let status = svc.reconciler.subscribe(app_id);
    let generation = svc.reconciler.enqueue(app_id);
    wait_types(svc, app_id, generation, &types, status).await?;
    Ok(())
}

/// Replace one process of an app as `user`; the app's id on success.
pub async fn restart_process(
    svc: &Service,
    user: &drycc_store::User,
    id: &str,
    ptype: &str,
    name: &str,
) -> ServiceResult<String> {
    let app = access::app_for(svc, user, id, Access::Write).await?;
    let processes = svc.engine.processes(&app.id).await?;
    let process = processes
        .iter()
        .find(|p| p.name == name && p.ptype == ptype)
        .ok_or_else(|| ServiceError::not_found(format!("process {name} not found")))?;
    let old_name = process.name.clone();
    svc.engine.restart_process(&app.id, &old_name).await?;
    // Done when the old process is gone and the type is back at capacity.
    let expected = processes
        .iter()
        .filter(|p| p.ptype == ptype && p.ready)
        .count();
    wait_for(svc, &app.id, svc.settings.deploy_timeout(), |now| {
        let ready = now.iter().filter(|p| p.ptype == ptype && p.ready).count();
        if !now.iter().any(|p| p.name == old_name) && ready >= expected {
            Verdict::Done
        } else {
            Verdict::Pending
        }
    })
    .await
    .map_err(|error| match error {
        DeployError::TimedOut(_) => ServiceError::unavailable(format!(
            "process {old_name} was not replaced within the deploy timeout"
        )),
        other => other.into(),
    })?;
    Ok(app.id)
}
