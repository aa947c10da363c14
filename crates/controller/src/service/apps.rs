//! Apps: their creation (a name, the owner's bound) and their
//! destruction (rows first, as desired state; files once the processes
//! have ended).

use drycc_model::app::{generate_app_name, validate_app_name};

use super::access::{self, Access};
use super::wait::{wait_for, Verdict};
use super::{Service, ServiceError, ServiceResult};

/// Create an app for `user`, named `requested` or a generated name.
pub async fn create(
    svc: &Service,
    user: &drycc_store::User,
    requested: Option<String>,
) -> ServiceResult<drycc_store::App> {
    // One creation per owner at a time, so the count below stays true
    // until the new app exists (app names have no `:`).
    let owner_lock = svc.app_lock(&format!("owner:{}", user.username));
    let _owner_guard = owner_lock.lock().await;
    if !user.is_superuser {
        let max = usize::try_from(svc.settings.max_apps_per_user).unwrap_or(usize::MAX);
        let owned = svc
            .store
            .list_apps()
            .await?
            .iter()
            .filter(|app| app.owner == user.username)
            .count();
        if owned >= max {
            return Err(ServiceError::conflict(format!(
                "App limit reached: {} owns {owned} apps, the most one user may own (DRYCC_MAX_APPS_PER_USER); destroy one first.",
                user.username
            )));
        }
    }
    let app = match requested {
        Some(id) => {
            validate_app_name(&id).map_err(|e| ServiceError::invalid(format!("id: {e}")))?;
            svc.store.create_app(&id, &user.username).await?
        }
        None => create_with_generated_name(svc, &user.username).await?,
    };
    svc.routes.store_changed();
    svc.routes.sync().await;
    Ok(app)
}

async fn create_with_generated_name(svc: &Service, owner: &str) -> ServiceResult<drycc_store::App> {
    for attempt in 0..20 {
        let name = generate_app_name(&mut rand::thread_rng(), attempt);
        match svc.store.create_app(&name, owner).await {
            Ok(app) => return Ok(app),
            Err(drycc_store::StoreError::Conflict(_)) => continue,
            Err(other) => return Err(other.into()),
        }
    }
    Err(ServiceError::conflict(
        "Could not find a free app name; pass one explicitly.",
    ))
}

/// Destroy an app as `user`: its rows go at once (desired state:
/// nothing), its processes stop (the reconciler removes them), then its
/// repository and slugs are deleted.
pub async fn destroy(svc: &Service, user: &drycc_store::User, id: &str) -> ServiceResult<()> {
    let app = access::app_for(svc, user, id, Access::Write).await?;
    {
        let lock = svc.app_lock(&app.id);
        let _guard = lock.lock().await;
        svc.store.delete_app(&app.id).await?;
    }
    svc.forget_app_lock(&app.id);
    svc.autoscale.forget(&app.id, None);
    svc.routes.store_changed();
    // The reconciler removes what the store no longer has; the files go
    // once no process can be using them any more.
    svc.reconciler.enqueue(&app.id);
    let timeout = svc.settings.deploy_timeout() + svc.settings.default_grace();
    let ended = wait_for(svc, &app.id, timeout, |processes| {
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
        svc.paths.repos().join(format!("{}.git", app.id)),
        svc.paths.slugs().join(&app.id),
        svc.paths.checkouts().join(&app.id),
        svc.paths.cache().join(&app.id),
        svc.paths.homes().join(&app.id),
    ] {
        if let Err(error) = tokio::fs::remove_dir_all(&dir).await {
            if error.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(path = %dir.display(), %error, "Could not remove app data.");
            }
        }
    }
    Ok(())
}
