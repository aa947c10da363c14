//! The autoscaler: every sync period, for every process type with a rule,
//! sample its processes' CPU, decide with `drycc_model::autoscale` (the
//! HPA's calculation and Drycc's stabilisation windows), and write a new
//! count as desired state, which the reconciler applies like any scale.
//!
//! Every decision goes to the app's log with its inputs and to a bounded
//! history per type, which `GET /settings/` shows as the rule's status
//! (current utilisation, current and desired replicas, last rescale), as
//! `kubectl get hpa` does.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use drycc_model::autoscale::{decide, Decision, Policy, Reason, Rule, Sample};
use tokio_util::sync::CancellationToken;

use crate::service::autoscale::describe;
use crate::service::{scale, Service};

/// Run passes every sync period until `stop`.
pub async fn run(svc: Arc<Service>, stop: CancellationToken) {
    if svc.engine.capabilities().autoscaler {
        return follow(svc, stop).await;
    }
    let (period, policy) = svc.settings.autoscale();
    let mut ticker = tokio::time::interval(period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = ticker.tick() => {}
        }
        if let Err(error) = pass(&svc, &policy).await {
            tracing::warn!(%error, "Autoscaler pass failed; trying again next period.");
        }
    }
}

/// One pass over every app with rules.
async fn pass(svc: &Service, policy: &Policy) -> anyhow::Result<()> {
    for app in svc.store.list_apps().await? {
        let settings = svc.store.get_settings(&app.id).await?;
        if settings.autoscale.is_empty() {
            continue;
        }
        let Some(release) = svc.store.last_good_release(&app.id).await? else {
            continue;
        };
        let usage = svc.usage.sample(svc.engine.as_ref(), &app.id).await?;
        let mut counts = BTreeMap::new();
        for (ptype, value) in &settings.autoscale {
            let Ok(rule) = serde_json::from_value::<drycc_api_types::AutoscaleRule>(value.clone())
            else {
                continue;
            };
            // Utilisation is against the CPU request; without one (the
            // limit was unset after the rule was set) there is nothing to
            // measure against.
            let Some(request) = release
                .config
                .cpu
                .get(ptype)
                .and_then(|v| drycc_model::limits::parse_cpu(v).ok())
                .map(|q| q.request.max(1))
            else {
                continue;
            };
            let samples: Vec<Sample> = usage
                .iter()
                .filter(|u| &u.ptype == ptype)
                .map(|u| Sample {
                    ready: u.ready,
                    request_millis: request,
                    usage_millis: u.cpu_millis,
                })
                .collect();
            let current = app.structure.get(ptype).copied().unwrap_or(0);
            let rule = Rule {
                min: rule.min,
                max: rule.max,
                cpu_percent: rule.cpu_percent,
            };
            let since = svc.autoscale.since_last_rescale(&app.id, ptype);
            let decision = decide(&rule, current, &samples, since, policy);
            svc.event(&app.id, &describe(ptype, &rule, &decision)).await;
            svc.autoscale.remember(&app.id, ptype, &decision);
            if decision.rescales() {
                counts.insert(ptype.clone(), decision.desired);
            }
        }
        if !counts.is_empty() {
            // The same path as a scale request (under the app's lock, so no
            // concurrent change is lost), without waiting.
            let lock = svc.app_lock(&app.id);
            let guard = lock.lock().await;
            scale::write_structure(svc, &app.id, &counts).await?;
            drop(guard);
            svc.reconciler.enqueue(&app.id);
        }
    }
    Ok(())
}

/// With an engine that scales by itself (a HorizontalPodAutoscaler per
/// rule, which the reconciler writes): on every change of the engine (and
/// every sync period, in case a change was missed), write the counts it
/// chose back to the structure, so that `ps`, `autoscale:list` and the
/// next deploy agree with the cluster. Each change is in the app's log and
/// the type's history.
async fn follow(svc: Arc<Service>, stop: CancellationToken) {
    let (period, _) = svc.settings.autoscale();
    let mut changes = svc.engine.changes(None);
    let mut ticker = tokio::time::interval(period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = ticker.tick() => {}
            changed = changes.changed() => {
                if changed.is_err() {
                    return;
                }
                // A scale moves many pods: one read after the burst.
                tokio::time::sleep(Duration::from_millis(200)).await;
                changes.borrow_and_update();
            }
        }
        if let Err(error) = write_back(&svc).await {
            tracing::warn!(%error, "Cannot read the counts the engine's autoscaler chose; trying again.");
        }
    }
}

/// One pass of [`follow`] over every app with rules.
async fn write_back(svc: &Service) -> anyhow::Result<()> {
    for app in svc.store.list_apps().await? {
        let settings = svc.store.get_settings(&app.id).await?;
        if settings.autoscale.is_empty() {
            continue;
        }
        let chosen = svc.engine.autoscaled(&app.id).await?;
        let lock = svc.app_lock(&app.id);
        let guard = lock.lock().await;
        // Read again under the lock: a scale or rule change may have won.
        let Some(current) = svc.store.get_app(&app.id).await? else {
            continue;
        };
        let settings = svc.store.get_settings(&app.id).await?;
        let counts: BTreeMap<String, u32> = chosen
            .into_iter()
            .filter(|(ptype, count)| {
                settings.autoscale.contains_key(ptype)
                    && current.structure.get(ptype).copied().unwrap_or(0) != *count
            })
            .collect();
        if counts.is_empty() {
            continue;
        }
        scale::write_structure(svc, &app.id, &counts).await?;
        drop(guard);
        for (ptype, desired) in &counts {
            let decision = Decision {
                current: current.structure.get(ptype).copied().unwrap_or(0),
                desired: *desired,
                utilization: None,
                ratio: None,
                reason: Reason::Scaled,
            };
            svc.event(
                &app.id,
                &format!(
                    "autoscale: {ptype} {} -> {desired} (by the cluster's HorizontalPodAutoscaler)",
                    decision.current
                ),
            )
            .await;
            svc.autoscale.remember(&app.id, ptype, &decision);
            svc.autoscale.rescaled(&app.id, ptype);
        }
    }
    Ok(())
}
