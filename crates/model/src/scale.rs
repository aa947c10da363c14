//! Scale requests and the structure (formation) of an app.

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

/// Why a scale request is refused; the text is the API's message.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ScaleError {
    #[error("Invalid scaling format: {0}")]
    Format(String),
    #[error("Container type {0} does not exist in application")]
    UnknownType(String),
    #[error("Cannot set scale for reserved types, procfile type is: run")]
    Reserved,
    #[error("No build associated with this release")]
    NoBuild,
    #[error("process type {ptype} is autoscaled (min {min}, max {max}); remove the rule first with `drycc autoscale:unset {ptype}`")]
    Autoscaled { ptype: String, min: u32, max: u32 },
}

/// What a scale request is checked against.
pub struct ScaleContext<'a> {
    /// Types of the current release's build; `None` when there is no build.
    pub types: Option<&'a BTreeSet<String>>,
    pub max_per_type: u32,
    /// Types under an autoscale rule, with (min, max).
    pub autoscaled: &'a BTreeMap<String, (u32, u32)>,
}

/// Validate a whole request before anything is applied: either every entry
/// is good, or nothing changes.
pub fn validate_scale(
    request: &serde_json::Map<String, Value>,
    context: &ScaleContext<'_>,
) -> Result<BTreeMap<String, u32>, ScaleError> {
    if request.is_empty() {
        return Err(ScaleError::Format(
            "expected an object of process types to counts, e.g. {\"web\": 2}".into(),
        ));
    }
    let mut counts = BTreeMap::new();
    for (ptype, value) in request {
        if ptype == "run" {
            return Err(ScaleError::Reserved);
        }
        let count = parse_count(ptype, value, context.max_per_type)?;
        counts.insert(ptype.clone(), count);
    }
    let types = context.types.ok_or(ScaleError::NoBuild)?;
    for ptype in counts.keys() {
        if !types.contains(ptype) {
            return Err(ScaleError::UnknownType(ptype.clone()));
        }
    }
    for ptype in counts.keys() {
        if let Some((min, max)) = context.autoscaled.get(ptype) {
            return Err(ScaleError::Autoscaled {
                ptype: ptype.clone(),
                min: *min,
                max: *max,
            });
        }
    }
    Ok(counts)
}

fn parse_count(ptype: &str, value: &Value, max: u32) -> Result<u32, ScaleError> {
    // Drycc's CLI sends counts as strings; accept "3" as well as 3.
    let number = match value {
        Value::Number(n) => n.as_u64().or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && *f >= 0.0)
                .map(|f| f as u64)
        }),
        Value::String(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
            s.parse::<u64>().ok()
        }
        _ => None,
    };
    let shown: String = value.to_string().chars().take(40).collect();
    let number = number.ok_or_else(|| {
        ScaleError::Format(format!(
            "{ptype}={shown}: the count must be a non-negative integer"
        ))
    })?;
    if number > u64::from(max) {
        return Err(ScaleError::Format(format!(
            "{ptype}={number}: the count must be at most {max} (DRYCC_MAX_PROCESSES_PER_TYPE)"
        )));
    }
    Ok(number as u32)
}

/// The structure after a deploy: existing counts kept, a new `web` starts at
/// 1, every other new type at 0, types gone from the Procfile are dropped.
pub fn structure_after_deploy(
    previous: &BTreeMap<String, u32>,
    types: &BTreeSet<String>,
) -> BTreeMap<String, u32> {
    types
        .iter()
        .map(|ptype| {
            let count = previous
                .get(ptype)
                .copied()
                .unwrap_or(if ptype == "web" { 1 } else { 0 });
            (ptype.clone(), count)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn types(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    fn check(
        request: Value,
        types: Option<&BTreeSet<String>>,
    ) -> Result<BTreeMap<String, u32>, ScaleError> {
        let autoscaled = BTreeMap::from([("auto".to_string(), (3, 8))]);
        let context = ScaleContext {
            types,
            max_per_type: 100,
            autoscaled: &autoscaled,
        };
        validate_scale(
            request.as_object().expect("test input is an object"),
            &context,
        )
    }

    #[test]
    fn accepts_integers_and_digit_strings() {
        let t = types(&["web", "sleeper"]);
        let counts = check(json!({"web": 5, "sleeper": "1"}), Some(&t)).unwrap();
        assert_eq!(
            counts,
            BTreeMap::from([("web".into(), 5), ("sleeper".into(), 1)])
        );
    }

    #[test]
    fn refuses_bad_values() {
        let t = types(&["web"]);
        for bad in [
            json!(-1),
            json!(1.5),
            json!("x"),
            json!(null),
            json!([1]),
            json!(""),
        ] {
            let err = check(json!({ "web": bad }), Some(&t)).unwrap_err();
            assert!(matches!(err, ScaleError::Format(_)), "{bad}");
            assert!(err.to_string().starts_with("Invalid scaling format: "));
        }
        let err = check(json!({"web": 101}), Some(&t)).unwrap_err();
        assert!(err.to_string().contains("at most 100"));
    }

    #[test]
    fn refuses_unknown_reserved_and_missing_build() {
        let t = types(&["web"]);
        assert_eq!(
            check(json!({"worker": 1}), Some(&t))
                .unwrap_err()
                .to_string(),
            "Container type worker does not exist in application"
        );
        assert_eq!(
            check(json!({"run": 1}), Some(&t)).unwrap_err().to_string(),
            "Cannot set scale for reserved types, procfile type is: run"
        );
        assert_eq!(
            check(json!({"web": 1}), None).unwrap_err().to_string(),
            "No build associated with this release"
        );
        let t = types(&["web", "auto"]);
        let err = check(json!({"auto": 1}), Some(&t)).unwrap_err();
        assert!(err.to_string().contains("drycc autoscale:unset auto"));
    }

    #[test]
    fn one_bad_entry_refuses_the_whole_request() {
        let t = types(&["web", "worker"]);
        assert!(check(json!({"web": 2, "worker": -1}), Some(&t)).is_err());
    }

    #[test]
    fn structure_rules_after_deploy() {
        let previous = BTreeMap::from([("web".to_string(), 3), ("old".to_string(), 2)]);
        let next = structure_after_deploy(&previous, &types(&["web", "worker"]));
        assert_eq!(
            next,
            BTreeMap::from([("web".into(), 3), ("worker".into(), 0)])
        );
        let fresh = structure_after_deploy(&BTreeMap::new(), &types(&["web", "sleeper"]));
        assert_eq!(
            fresh,
            BTreeMap::from([("web".into(), 1), ("sleeper".into(), 0)])
        );
    }
}
