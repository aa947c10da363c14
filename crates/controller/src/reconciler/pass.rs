//! One pass over one app: read its desired state, hand the engine what
//! changed, remove what the release no longer has, judge a pending
//! release ([`desired::verdict::judge`]) and publish the outcome on the
//! app's status watch.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use drycc_engine::{AutoscaleSpec, Deployment, EngineError};
use drycc_store::ReleaseState;

use super::{Fault, Reconciler};
use crate::context::Context;
use crate::desired::{self, verdict::judge, verdict::Judgement};

/// Why a pass did not finish: the store or the engine failed. The task
/// tries again with back-off.
#[derive(Debug, thiserror::Error)]
pub enum PassError {
    #[error(transparent)]
    Store(#[from] drycc_store::StoreError),
    #[error(transparent)]
    Engine(#[from] EngineError),
}

/// What the app's task does after a pass.
pub(super) enum Next {
    /// The engine has the desired state and nothing is pending.
    Done,
    /// The app is gone from the store and the engine.
    Gone,
    /// A release was just judged failed: pass again to run the last good one.
    Again,
    /// A release is pending: judge it again on a change, or at `deadline`.
    Wait(tokio::time::Instant),
}

/// What one app's task has given the engine.
#[derive(Default)]
pub(super) struct Applied {
    /// The deployments of the last pass, not applied again while unchanged.
    pub(super) deployments: Option<Vec<Deployment>>,
    /// Every type this task has applied: the engine keeps desired state for
    /// a type until it is removed, whether or not processes of it run yet.
    types: BTreeSet<String>,
    /// The autoscale rules last handed to an engine with its own
    /// autoscaler, by type.
    pub(super) autoscale: Option<BTreeMap<String, Option<AutoscaleSpec>>>,
}

/// Read the app's desired state, hand it to the engine (unless `applied`
/// shows this task gave it the same deployments already), remove the types
/// it no longer has, and judge a pending release.
pub(super) async fn pass(
    ctx: &Context,
    reconciler: &Reconciler,
    app_id: &str,
    generation: u64,
    applied: &mut Applied,
) -> Result<Next, PassError> {
    let Some(app) = ctx.store.get_app(app_id).await? else {
        if ctx.engine.apps().await?.iter().any(|a| a == app_id) {
            tracing::info!(app = app_id, "Removing an app the store no longer has.");
            ctx.engine.remove_app(app_id).await?;
        }
        reconciler.publish(app_id, |s| {
            s.applied = s.applied.max(generation);
            s.deployments = Arc::new(Vec::new());
        });
        return Ok(Next::Gone);
    };
    let release = ctx.store.desired_release(app_id).await?;
    let deployments = match &release {
        Some(release) => {
            let profile = desired::has_profile(&ctx.paths, app_id, release).await;
            desired::deployments(ctx, &app, release, profile)
        }
        None => Vec::new(),
    };
    let pending = release
        .as_ref()
        .filter(|r| r.state == ReleaseState::Pending);

    if applied.deployments.as_ref() != Some(&deployments) {
        for deployment in &deployments {
            match ctx.engine.apply(deployment.clone()).await {
                Ok(()) => {
                    applied.types.insert(deployment.template.ptype.clone());
                }
                Err(error) => {
                    return refused(ctx, reconciler, app_id, generation, pending, error).await
                }
            }
        }
        applied.deployments = Some(deployments.clone());
    }
    if ctx.engine.capabilities().autoscaler {
        let rules = engine_autoscale_rules(ctx, app_id, &deployments).await?;
        if applied.autoscale.as_ref() != Some(&rules) {
            for (ptype, rule) in &rules {
                if let Err(error) = ctx.engine.autoscale(app_id, ptype, rule.clone()).await {
                    return refused(ctx, reconciler, app_id, generation, pending, error).await;
                }
            }
            applied.autoscale = Some(rules);
        }
    }
    let processes = ctx.engine.processes(app_id).await?;
    let wanted: BTreeSet<&str> = deployments
        .iter()
        .map(|d| d.template.ptype.as_str())
        .collect();
    let stale: BTreeSet<String> = processes
        .iter()
        .map(|p| p.ptype.as_str())
        .chain(applied.types.iter().map(String::as_str))
        .filter(|t| !wanted.contains(t))
        .map(str::to_string)
        .collect();
    for ptype in &stale {
        ctx.engine.remove_type(app_id, ptype).await?;
        applied.types.remove(ptype);
    }
    let deployments = Arc::new(deployments);
    reconciler.publish(app_id, |s| {
        s.applied = s.applied.max(generation);
        s.deployments = deployments.clone();
        if s.fault.as_ref().is_some_and(|(g, _)| *g <= generation) {
            s.fault = None;
        }
    });

    let Some(release) = pending else {
        return Ok(Next::Done);
    };
    let elapsed = (chrono::Utc::now() - release.created)
        .to_std()
        .unwrap_or_default();
    let timeout = ctx.settings.deploy_timeout();
    match judge(&deployments, &processes, elapsed, timeout) {
        Judgement::Succeeded => {
            if ctx
                .store
                .mark_release_succeeded(app_id, release.version)
                .await?
            {
                tracing::info!(
                    app = app_id,
                    version = release.version,
                    "Release rolled out."
                );
            }
            reconciler.publish(app_id, |s| s.judged += 1);
            Ok(Next::Done)
        }
        Judgement::Failed(reason) => {
            fail(ctx, reconciler, app_id, release.version, &reason).await?;
            Ok(Next::Again)
        }
        Judgement::Pending { remaining } => Ok(Next::Wait(tokio::time::Instant::now() + remaining)),
    }
}

/// The engine refused a pass: an invalid desired state fails the pending
/// release (or is published as the app's fault, which retrying will not
/// mend); anything else is published and retried with back-off.
async fn refused(
    ctx: &Context,
    reconciler: &Reconciler,
    app_id: &str,
    generation: u64,
    pending: Option<&drycc_store::Release>,
    error: EngineError,
) -> Result<Next, PassError> {
    match error {
        EngineError::Invalid(reason) => {
            if let Some(release) = pending {
                fail(ctx, reconciler, app_id, release.version, &reason).await?;
                return Ok(Next::Again);
            }
            tracing::warn!(app = app_id, %reason, "The engine refused the app's desired state.");
            reconciler.publish(app_id, |s| {
                s.fault = Some((generation, Fault::Invalid(reason)));
            });
            Ok(Next::Done)
        }
        error => {
            let fault = Fault::Unavailable(error.detail());
            reconciler.publish(app_id, |s| s.fault = Some((generation, fault)));
            Err(error.into())
        }
    }
}

/// For an engine with its own autoscaler: the rule of every deployed type
/// (`None` for a type without one), with the stabilisation windows of the
/// controller's settings.
async fn engine_autoscale_rules(
    ctx: &Context,
    app_id: &str,
    deployments: &[Deployment],
) -> Result<BTreeMap<String, Option<AutoscaleSpec>>, PassError> {
    let settings = ctx.store.get_settings(app_id).await?;
    let (_, policy) = ctx.settings.autoscale();
    Ok(deployments
        .iter()
        .map(|d| {
            let ptype = d.template.ptype.clone();
            let rule = settings
                .autoscale
                .get(&ptype)
                .and_then(|v| {
                    serde_json::from_value::<drycc_api_types::AutoscaleRule>(v.clone()).ok()
                })
                .map(|rule| AutoscaleSpec {
                    min: rule.min,
                    max: rule.max,
                    cpu_percent: rule.cpu_percent,
                    up_window: policy.up_window,
                    down_window: policy.down_window,
                });
            (ptype, rule)
        })
        .collect())
}

/// Fail a pending release: the store marks it and restores the structure
/// it replaced in one transaction; the app's log says why.
async fn fail(
    ctx: &Context,
    reconciler: &Reconciler,
    app_id: &str,
    version: u32,
    reason: &str,
) -> Result<(), PassError> {
    if ctx
        .store
        .fail_rollout(app_id, version, reason)
        .await?
        .is_some()
    {
        tracing::warn!(app = app_id, version, %reason, "Release failed to roll out.");
        ctx.event(app_id, &format!("v{version} failed: {reason}"))
            .await;
    }
    reconciler.publish(app_id, |s| s.judged += 1);
    Ok(())
}
