//! An app's config: partial updates merged into the config of the release
//! the app should run, validated, and released.

use std::collections::BTreeMap;

use drycc_api_types::ConfigUpdate;
use drycc_store::{BuildRef, NewConfig, Release};
use serde_json::Value;

use super::access::{self, Access};
use super::rollout::{self, ReleaseChange};
use super::{Service, ServiceError, ServiceResult};

/// What `registry` holds: the credentials of the app's image registry.
const REGISTRY_KEYS: [&str; 2] = ["username", "password"];

/// The longest grace period a type may ask for (one hour).
const MAX_GRACE_SECONDS: u64 = 3600;

/// Merge `update` into the app's config as `user` and release it.
pub async fn update(
    svc: &Service,
    user: &drycc_store::User,
    id: &str,
    update: &ConfigUpdate,
) -> ServiceResult<Release> {
    let app = access::app_for(svc, user, id, Access::Write).await?;
    // The base is the release the app should run (a pending one included):
    // a failed release's config is not carried forward.
    let current = match svc.store.desired_release(&app.id).await? {
        Some(release) => release,
        None => svc.store.latest_release(&app.id).await?,
    };
    let before = NewConfig::from(&current.config);
    let (after, changes) = merge(&before, update)?;
    if changes.is_empty() {
        return Err(ServiceError::conflict(format!(
            "{} changed nothing - release stopped",
            user.username
        )));
    }
    let change = ReleaseChange {
        owner: user.username.clone(),
        summary: format!("{} {}", user.username, changes.join(", ")),
        build: BuildRef::Keep(current.build.as_ref().map(|b| b.uuid.clone())),
        config: after,
        structure: None,
    };
    Ok(rollout::release(svc, &app.id, change, None).await?)
}

/// Merge a partial update into a config; returns the new config and a
/// summary of what changed (`added FOO`, `changed limits for web`).
pub fn merge(before: &NewConfig, update: &ConfigUpdate) -> ServiceResult<(NewConfig, Vec<String>)> {
    let mut after = before.clone();
    let mut changes = Vec::new();
    if let Some(values) = &update.values {
        for (key, value) in values {
            validate_env_key(key)?;
            match value {
                None | Some(Value::Null) => {
                    if after.values.remove(key).is_some() {
                        changes.push(format!("removed {key}"));
                    }
                }
                Some(value) => {
                    let text = scalar_text("values", key, value)?;
                    match after.values.insert(key.clone(), text.clone()) {
                        None => changes.push(format!("added {key}")),
                        Some(old) if old != text => changes.push(format!("changed {key}")),
                        Some(_) => {}
                    }
                }
            }
        }
    }
    merge_typed(
        &mut after.cpu,
        update.cpu.as_ref(),
        "cpu",
        &mut changes,
        |ptype, v| {
            let text = scalar_text("cpu", ptype, v)?;
            drycc_model::limits::parse_cpu(&text)
                .map_err(|e| ServiceError::invalid(format!("cpu: {e}")))?;
            Ok(text)
        },
    )?;
    merge_typed(
        &mut after.memory,
        update.memory.as_ref(),
        "memory",
        &mut changes,
        |ptype, v| {
            let text = scalar_text("memory", ptype, v)?;
            drycc_model::limits::parse_memory(&text)
                .map_err(|e| ServiceError::invalid(format!("memory: {e}")))?;
            Ok(text)
        },
    )?;
    merge_typed(
        &mut after.termination_grace_period,
        update.termination_grace_period.as_ref(),
        "termination_grace_period",
        &mut changes,
        |ptype, v| {
            let seconds = v
                .as_u64()
                .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
                .filter(|s| *s <= MAX_GRACE_SECONDS);
            seconds.ok_or_else(|| {
                ServiceError::invalid(format!(
                    "termination_grace_period: {ptype}={}: use whole seconds from 0 to {MAX_GRACE_SECONDS}",
                    short(v)
                ))
            })
        },
    )?;
    merge_typed(
        &mut after.tags,
        update.tags.as_ref(),
        "tags",
        &mut changes,
        |key, v| scalar_text("tags", key, v),
    )?;
    merge_typed(
        &mut after.registry,
        update.registry.as_ref(),
        "registry",
        &mut changes,
        |key, v| scalar_text("registry", key, v),
    )?;
    if let Some(update) = &update.healthcheck {
        let mut checks: BTreeMap<String, Value> = before
            .healthcheck
            .as_object()
            .map(|o| o.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default();
        merge_typed(
            &mut checks,
            Some(update),
            "healthcheck",
            &mut changes,
            |ptype, v| {
                validate_healthcheck(ptype, v)?;
                Ok(v.clone())
            },
        )?;
        after.healthcheck = Value::Object(checks.into_iter().collect());
    }
    Ok((after, changes))
}

fn merge_typed<T: PartialEq>(
    target: &mut BTreeMap<String, T>,
    update: Option<&BTreeMap<String, Option<Value>>>,
    field: &str,
    changes: &mut Vec<String>,
    parse: impl Fn(&str, &Value) -> ServiceResult<T>,
) -> ServiceResult<()> {
    let Some(update) = update else {
        return Ok(());
    };
    for (key, value) in update {
        match field {
            "tags" => {}
            "registry" if REGISTRY_KEYS.contains(&key.as_str()) => {}
            "registry" => {
                return Err(ServiceError::invalid(format!(
                    "registry: unknown key {:?}; the keys are {}",
                    key.chars().take(40).collect::<String>(),
                    REGISTRY_KEYS.join(" and ")
                )))
            }
            _ => validate_ptype(field, key)?,
        }
        match value {
            None | Some(Value::Null) => {
                if target.remove(key).is_some() {
                    changes.push(format!("changed {field} for {key}"));
                }
            }
            Some(value) => {
                let parsed = parse(key, value)?;
                if target.get(key) != Some(&parsed) {
                    target.insert(key.clone(), parsed);
                    changes.push(format!("changed {field} for {key}"));
                }
            }
        }
    }
    Ok(())
}

fn short(value: &Value) -> String {
    value.to_string().chars().take(40).collect()
}

fn scalar_text(field: &str, key: &str, value: &Value) -> ServiceResult<String> {
    match value {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        other => Err(ServiceError::invalid(format!(
            "{field}: {key}: expected a string, got {}",
            short(other)
        ))),
    }
}

fn validate_env_key(key: &str) -> ServiceResult<()> {
    let mut chars = key.chars();
    let ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && key.len() <= 255;
    if ok {
        Ok(())
    } else {
        Err(ServiceError::invalid(format!(
            "values: \"{}\" is not a valid environment variable name: use letters, digits and _, not starting with a digit",
            key.chars().take(40).collect::<String>()
        )))
    }
}

fn validate_ptype(field: &str, ptype: &str) -> ServiceResult<()> {
    let ok = !ptype.is_empty()
        && ptype.len() <= 63
        && ptype
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !ptype.starts_with('-')
        && !ptype.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(ServiceError::invalid(format!(
            "{field}: \"{}\" is not a process type: use lowercase letters, digits and inner hyphens",
            ptype.chars().take(40).collect::<String>()
        )))
    }
}

fn validate_healthcheck(ptype: &str, value: &Value) -> ServiceResult<()> {
    let bad = |why: &str| {
        ServiceError::invalid(format!(
            "healthcheck: {ptype}: {why}; expected {{\"readinessProbe\"|\"livenessProbe\": {{\"httpGet\": {{\"path\": \"/\", \"port\": 5000}}}} | {{\"tcpSocket\": {{\"port\": 5000}}}} | {{\"exec\": {{\"command\": [..]}}}}}}"
        ))
    };
    let object = value.as_object().ok_or_else(|| bad("not an object"))?;
    if object.is_empty() {
        return Err(bad("no probe given"));
    }
    for (kind, probe) in object {
        if kind != "readinessProbe" && kind != "livenessProbe" {
            return Err(bad(&format!("unknown probe kind \"{kind}\"")));
        }
        if crate::desired::probe_from_json(probe).is_none() {
            return Err(bad(&format!("{kind} has no valid action")));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn update(value: Value) -> ConfigUpdate {
        serde_json::from_value(value).expect("valid update")
    }

    #[test]
    fn merges_and_summarises() {
        let before = NewConfig::default();
        let (after, changes) = merge(&before, &update(json!({"values": {"FOO": "1"}}))).unwrap();
        assert_eq!(after.values.get("FOO").map(String::as_str), Some("1"));
        assert_eq!(changes, vec!["added FOO"]);
        let (after2, changes) = merge(&after, &update(json!({"values": {"FOO": null}}))).unwrap();
        assert!(after2.values.is_empty());
        assert_eq!(changes, vec!["removed FOO"]);
        let (_, changes) = merge(&after, &update(json!({"values": {"FOO": "1"}}))).unwrap();
        assert!(changes.is_empty());
    }

    #[test]
    fn refuses_bad_values() {
        let before = NewConfig::default();
        for bad in [
            json!({"values": {"1X": "a"}}),
            json!({"values": {"X": {"a": 1}}}),
            json!({"cpu": {"web": "lots"}}),
            json!({"memory": {"web": "12Q"}}),
            json!({"cpu": {"Web": "500m"}}),
            json!({"termination_grace_period": {"web": -1}}),
            json!({"termination_grace_period": {"web": 99999}}),
            json!({"healthcheck": {"web": {"readinessProbe": {"bogus": {}}}}}),
        ] {
            assert!(merge(&before, &update(bad.clone())).is_err(), "{bad}");
        }
    }

    #[test]
    fn limits_and_grace() {
        let before = NewConfig::default();
        let (after, changes) = merge(
            &before,
            &update(json!({"cpu": {"web": "500m"}, "termination_grace_period": {"web": 2}})),
        )
        .unwrap();
        assert_eq!(after.cpu.get("web").map(String::as_str), Some("500m"));
        assert_eq!(after.termination_grace_period.get("web"), Some(&2));
        assert_eq!(changes.len(), 2);
    }
}
