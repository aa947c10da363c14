//! An app's settings: autoscale rules (validated, stored, and the type
//! brought into `[min, max]` at once) and routability. Settings make no
//! release; the autoscaler enforces the rules.

use std::collections::BTreeMap;

use drycc_api_types::{AutoscaleRule, SettingsUpdate};
use serde_json::Value;

use super::access::{self, Access};
use super::scale::{wait_structure, write_structure};
use super::{Service, ServiceError, ServiceResult};

/// Change an app's settings as `user` (the API's and the dashboard's one
/// path: same rules, same messages).
pub async fn update(
    svc: &Service,
    user: &drycc_store::User,
    id: &str,
    update: &SettingsUpdate,
) -> ServiceResult<drycc_store::Settings> {
    let app = access::app_for(svc, user, id, Access::Write).await?;
    let lock = svc.app_lock(&app.id);
    let guard = lock.lock().await;
    let current = svc.store.get_settings(&app.id).await?;
    let release = svc.store.desired_release(&app.id).await?;
    let mut autoscale = current.autoscale.clone();
    let mut clamp = BTreeMap::new();
    if let Some(rules) = &update.autoscale {
        for (ptype, rule) in rules {
            match rule {
                None | Some(Value::Null) => {
                    if autoscale.remove(ptype).is_none() {
                        return Err(ServiceError::not_found(format!(
                            "No autoscale rule for process type {ptype}; `drycc autoscale:list` shows the rules"
                        )));
                    }
                    // Unsetting keeps the current count.
                    svc.autoscale.forget(&app.id, Some(ptype));
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
                            ServiceError::not_found(format!(
                                "Container type {ptype} does not exist in application"
                            ))
                        })?;
                    if !release.config.cpu.contains_key(ptype) {
                        return Err(ServiceError::invalid(format!(
                            "autoscale: {ptype} has no CPU limit; utilisation is measured against it: run `drycc limits:set --cpu {ptype}=<value>` first"
                        )));
                    }
                    let count = app.structure.get(ptype).copied().unwrap_or(0);
                    clamp.insert(ptype.clone(), count.clamp(rule.min, rule.max));
                    autoscale.insert(
                        ptype.clone(),
                        serde_json::to_value(rule).map_err(ServiceError::internal)?,
                    );
                }
            }
        }
    }
    let settings = svc
        .store
        .put_settings(&app.id, &user.username, &autoscale, update.routable)
        .await?;
    if update.routable.is_some() {
        svc.routes.store_changed();
        svc.routes.sync().await;
    }
    let counts: BTreeMap<String, u32> = clamp
        .into_iter()
        .filter(|(ptype, count)| app.structure.get(ptype) != Some(count))
        .collect();
    for ptype in counts.keys() {
        // Bringing the count into [min, max] is a rescale: the windows start.
        svc.autoscale.rescaled(&app.id, ptype);
    }
    if release.is_some() && !counts.is_empty() {
        write_structure(svc, &app.id, &counts).await?;
        drop(guard);
        wait_structure(svc, &app.id, &counts).await?;
    } else if update.autoscale.is_some() && svc.engine.capabilities().autoscaler {
        // The engine's own autoscaler takes the rule from the reconciler:
        // answer once it has (or with the engine's refusal).
        drop(guard);
        wait_structure(svc, &app.id, &BTreeMap::new()).await?;
    }
    Ok(settings)
}

fn parse_rule(ptype: &str, value: &Value) -> ServiceResult<AutoscaleRule> {
    let field = |name: &str| -> ServiceResult<u32> {
        value
            .get(name)
            .and_then(Value::as_u64)
            .and_then(|v| u32::try_from(v).ok())
            .ok_or_else(|| {
                ServiceError::invalid(format!(
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
        return Err(ServiceError::invalid(format!(
            "autoscale: {ptype}: min and max must satisfy 1 <= min <= max (got min {}, max {}), e.g. {{\"min\": 3, \"max\": 8, \"cpu_percent\": 75}}",
            rule.min, rule.max
        )));
    }
    if rule.cpu_percent < 1 {
        return Err(ServiceError::invalid(format!(
            "autoscale: {ptype}: cpu_percent must be at least 1, e.g. {{\"min\": 3, \"max\": 8, \"cpu_percent\": 75}}"
        )));
    }
    Ok(rule)
}
