//! Rollouts: a new release written as desired state (a deploy, a config
//! change, a rollback), handed to the reconciler and waited for.

use std::collections::BTreeMap;

use drycc_api_types::BuildCreateRequest;
use drycc_model::scale::structure_after_deploy;
use drycc_store::{BuildRef, NewConfig, NewRelease, Release};
use tokio::sync::mpsc;

use super::access::{self, Access};
use super::{DeployError, Service, ServiceError, ServiceResult};
use crate::desired;

/// What a new release changes.
pub struct ReleaseChange {
    pub owner: String,
    pub summary: String,
    pub build: BuildRef,
    pub config: NewConfig,
    /// The structure to apply with the release (deploys); `None` keeps it.
    pub structure: Option<BTreeMap<String, u32>>,
}

/// Write the next release as desired state (`pending`, with its structure,
/// in one transaction), hand it to the reconciler and wait for its
/// judgement. The wait holds no lock, and a caller that goes away changes
/// nothing: the reconciler judges the release all the same.
pub async fn release(
    svc: &Service,
    app_id: &str,
    change: ReleaseChange,
    progress: Option<&mpsc::Sender<String>>,
) -> Result<Release, DeployError> {
    let release = {
        let lock = svc.app_lock(app_id);
        let _guard = lock.lock().await;
        svc.store
            .create_release(
                app_id,
                NewRelease {
                    owner: change.owner,
                    summary: change.summary,
                    build: change.build,
                    config: change.config,
                    structure: change.structure,
                },
            )
            .await?
    };
    svc.event(
        app_id,
        &format!("{} (v{})", release.summary, release.version),
    )
    .await;
    let status = svc.reconciler.subscribe(app_id);
    svc.reconciler.enqueue(app_id);
    say(
        progress,
        format!(
            "-----> Rolling out v{}: {}",
            release.version, release.summary
        ),
    )
    .await;
    super::wait::wait_release(svc, app_id, release.version, status).await?;
    Ok(release)
}

async fn say(progress: Option<&mpsc::Sender<String>>, line: String) {
    if let Some(progress) = progress {
        // A client that went away must not stop the deploy.
        let _ = progress.send(line).await;
    }
}

/// Roll an app back to `version` (the one before the latest when `None`)
/// as `user`; the new release's version.
pub async fn rollback(
    svc: &Service,
    user: &drycc_store::User,
    id: &str,
    version: Option<&serde_json::Value>,
) -> ServiceResult<u32> {
    let app = access::app_for(svc, user, id, Access::Write).await?;
    let latest = svc.store.latest_release(&app.id).await?;
    let target = match version {
        None | Some(serde_json::Value::Null) => i64::from(latest.version) - 1,
        Some(value) => value
            .as_i64()
            .or_else(|| {
                value
                    .as_str()
                    .and_then(|s| s.trim_start_matches('v').parse().ok())
            })
            .ok_or_else(|| ServiceError::invalid("version: a valid integer is required."))?,
    };
    if target < 0 {
        return Err(ServiceError::invalid("version cannot be below 0"));
    }
    if target <= 1 {
        return Err(ServiceError::invalid(
            "Cannot roll back to initial release.",
        ));
    }
    let target = u32::try_from(target)
        .map_err(|_| ServiceError::invalid("version: a valid integer is required."))?;
    let release = svc
        .store
        .release(&app.id, target)
        .await?
        .ok_or_else(|| ServiceError::not_found(format!("Release v{target} not found.")))?;
    if release.failed {
        return Err(ServiceError::invalid("Cannot roll back to failed release."));
    }
    if let Some(build) = release.build.as_ref().filter(|b| !b.sha.is_empty()) {
        let dir = desired::slug_dir(&svc.paths, &app.id, build);
        if !tokio::fs::try_exists(&dir).await.unwrap_or(false) {
            return Err(ServiceError::invalid(format!(
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
    let created = self::release(svc, &app.id, change, None).await?;
    Ok(created.version)
}

/// Deploy the image a user names (`drycc pull`), with the process types
/// of its config and of the request's Procfile.
pub async fn deploy_image(
    svc: &Service,
    user: &drycc_store::User,
    id: &str,
    request: &BuildCreateRequest,
) -> ServiceResult<Release> {
    let app = access::app_for(svc, user, id, Access::Write).await?;
    let reference = request.image.trim();
    if reference.is_empty() {
        return Err(ServiceError::invalid("image: this field may not be blank."));
    }
    drycc_images::parse_reference(reference)
        .map_err(|e| ServiceError::invalid(format!("image: {e}")))?;
    let procfile = match &request.procfile {
        Some(procfile) if !procfile.is_empty() => Some(checked_procfile(procfile, &svc.settings)?),
        _ => None,
    };
    if !svc.engine.capabilities().images {
        return Err(ServiceError::unavailable(
            "image apps run on a Docker engine and none is reachable: start dockerd (or point DRYCC_DOCKER_HOST at one) and restart the controller",
        ));
    }
    let latest = match svc.store.desired_release(&app.id).await? {
        Some(release) => release,
        None => svc.store.latest_release(&app.id).await?,
    };
    let login =
        desired::registry_login(&latest.config.registry).map(|c| drycc_images::Credentials {
            username: c.username,
            password: c.password,
        });
    let image = svc
        .images
        .inspector
        .inspect(reference, login.as_ref())
        .await
        .map_err(|e| ServiceError::invalid(format!("image {reference}: {e}")))?;
    let build = super::image_build::new_build(
        reference,
        &image,
        procfile,
        request.sha.clone().unwrap_or_default(),
        String::new(),
    )
    .map_err(ServiceError::Invalid)?;
    let types = build.procfile.keys().cloned().collect();
    let change = ReleaseChange {
        owner: user.username.clone(),
        summary: format!("{} deployed {reference}", user.username),
        build: BuildRef::New(build),
        config: NewConfig::from(&latest.config),
        structure: Some(structure_after_deploy(&app.structure, &types)),
    };
    Ok(self::release(svc, &app.id, change, None).await?)
}

/// The Procfile of a request, each type name and command checked.
fn checked_procfile(
    procfile: &BTreeMap<String, String>,
    settings: &crate::settings::Settings,
) -> ServiceResult<BTreeMap<String, String>> {
    if let Some(ptype) = procfile
        .iter()
        .find(|(t, c)| t.contains(['\n', '\r']) || c.contains(['\n', '\r']))
        .map(|(t, _)| t)
    {
        return Err(ServiceError::invalid(format!(
            "procfile: the entry of {ptype:?} spans lines; a type and its command are one line each"
        )));
    }
    let text: String = procfile
        .iter()
        .map(|(ptype, command)| format!("{ptype}: {command}\n"))
        .collect();
    super::limits::check_procfile(
        &text,
        settings.max_procfile_kib as usize,
        settings.max_procfile_lines as usize,
    )
    .map_err(|e| ServiceError::invalid(format!("procfile: {e}")))?;
    let parsed = drycc_procfile::parse(&text)
        .map_err(|e| ServiceError::invalid(format!("procfile: {e}")))?;
    Ok(parsed
        .entries()
        .iter()
        .map(|e| (e.name.clone(), e.command.clone()))
        .collect())
}
