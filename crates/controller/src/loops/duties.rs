//! What only the leader does, started and stopped with its role.
//!
//! Every replica serves the API and writes desired state to the shared
//! store, but only the leader ([`crate::loops::leader`]) applies it to the engine:
//! the reconciler, the autoscaler (which writes structures the reconciler
//! applies) and the listener for changes other replicas announce run while
//! this controller leads, and stop at once when it no longer does, before
//! anything else: never two reconcilers. A replica that becomes leader
//! hands every app to its reconciler, as a fresh start does.
//!
//! A follower's enqueues go to the leader instead: the app's name is
//! announced through the store (PostgreSQL `NOTIFY`), which the leader
//! listens to.

use anyhow::Context;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use std::sync::Arc;

use crate::role::Role;
use crate::service::Service;

/// Follow the role until `stop`: lead while it says so.
pub async fn run(svc: Arc<Service>, stop: CancellationToken) {
    let mut role = svc.role.clone();
    loop {
        if !wait_for_role(&mut role, true, &stop).await {
            return;
        }
        let duty = CancellationToken::new();
        let reconciler = tokio::spawn(crate::reconciler::run(
            svc.ctx.clone(),
            svc.reconciler.clone(),
            duty.clone(),
        ));
        if let Err(error) = resume(&svc).await {
            tracing::error!(error = %format!("{error:#}"), "Cannot hand the apps to the reconciler; it handles those changed from now on.");
        }
        let autoscaler = tokio::spawn(super::autoscaler::run(svc.clone(), duty.clone()));
        let listener = tokio::spawn(listen(svc.clone(), duty.clone()));
        let stopping = !wait_for_role(&mut role, false, &stop).await;
        duty.cancel();
        for (task, name) in [
            (reconciler, "reconciler"),
            (autoscaler, "autoscaler"),
            (listener, "change listener"),
        ] {
            if let Err(error) = task.await {
                tracing::error!(%error, "The {name} ended abnormally.");
            }
        }
        if stopping {
            return;
        }
        tracing::warn!("No longer the leader: the reconciler and the autoscaler stopped.");
    }
}

/// Wait until the role's `leader` is `leading`; false when `stop` comes
/// first (or the role can no longer change and is not that).
async fn wait_for_role(
    role: &mut watch::Receiver<Role>,
    leading: bool,
    stop: &CancellationToken,
) -> bool {
    loop {
        if role.borrow_and_update().leader == leading {
            return !stop.is_cancelled();
        }
        tokio::select! {
            _ = stop.cancelled() => return false,
            changed = role.changed() => if changed.is_err() {
                // The election ended: the role stays as it is.
                stop.cancelled().await;
                return false;
            },
        }
    }
}

/// Hand every app to the reconciler: those in the store (a `pending`
/// release is judged again, never assumed good) and those the engine runs
/// (what the store no longer has is removed). Does not wait for any of it.
pub async fn resume(svc: &Service) -> anyhow::Result<()> {
    let mut apps: std::collections::BTreeSet<String> = svc
        .store
        .list_apps()
        .await
        .context("cannot read the apps from the store")?
        .into_iter()
        .map(|app| app.id)
        .collect();
    match svc.engine.apps().await {
        Ok(running) => apps.extend(running),
        Err(error) => {
            tracing::warn!(%error, "Cannot list the engine's apps; only the store's are reconciled.")
        }
    }
    tracing::info!(apps = apps.len(), "Reconciling every app.");
    for app in &apps {
        svc.reconciler.enqueue(app);
    }
    Ok(())
}

/// While leading: enqueue the apps other replicas announce. A lost
/// connection may have lost announcements, so every app is looked at
/// again after it.
async fn listen(svc: Arc<Service>, duty: CancellationToken) {
    let retry = std::time::Duration::from_secs(1);
    loop {
        let changes = tokio::select! {
            _ = duty.cancelled() => return,
            changes = svc.store.listen_changes() => changes,
        };
        let mut changes = match changes {
            Ok(Some(changes)) => changes,
            // SQLite: one controller per database, nobody to listen to.
            Ok(None) => return,
            Err(error) => {
                tracing::warn!(%error, "Cannot listen to other controllers' changes; retrying.");
                tokio::select! {
                    _ = duty.cancelled() => return,
                    _ = tokio::time::sleep(retry) => continue,
                }
            }
        };
        loop {
            let next = tokio::select! {
                _ = duty.cancelled() => return,
                next = changes.next() => next,
            };
            match next {
                Ok(Some(app)) => {
                    svc.reconciler.enqueue(&app);
                }
                Ok(None) => {
                    tracing::warn!("Lost the connection for other controllers' changes; reconciling every app.");
                    if let Err(error) = resume(&svc).await {
                        tracing::warn!(error = %format!("{error:#}"), "Cannot list the apps.");
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "Cannot listen to other controllers' changes; retrying.");
                    break;
                }
            }
        }
        if let Err(error) = resume(&svc).await {
            tracing::warn!(error = %format!("{error:#}"), "Cannot list the apps.");
        }
        tokio::select! {
            _ = duty.cancelled() => return,
            _ = tokio::time::sleep(retry) => {}
        }
    }
}

/// On every replica: pass the apps its API enqueues to the leader while
/// this one does not lead (the leader's own reconciler has them already).
pub async fn relay(svc: Arc<Service>, mut enqueued: mpsc::UnboundedReceiver<String>) {
    while let Some(app) = enqueued.recv().await {
        if svc.leading() {
            continue;
        }
        if let Err(error) = svc.store.announce_change(&app).await {
            tracing::warn!(app = %app, %error, "Cannot tell the leader about a change; it sees it at its next start.");
        }
    }
}
