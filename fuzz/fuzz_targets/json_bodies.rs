//! The JSON request bodies of the REST API: the first byte picks a body
//! type, the rest is the body. Each is deserialised as the handlers'
//! extractor does (serde_json into the `drycc-api-types` type) and, when
//! it parses, checked by the validators of `drycc-model` the handlers
//! call. Nothing may panic, and a parsed body serialises to JSON that
//! parses back to the same value.
#![no_main]

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;

use drycc_api_types as api;
use libfuzzer_sys::fuzz_target;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

/// Parses `body` as `T`; a parsed value must survive a JSON round trip.
fn parse<T: DeserializeOwned + Serialize + PartialEq + Debug>(body: &[u8]) -> Option<T> {
    let value: T = serde_json::from_slice(body).ok()?;
    let json = serde_json::to_vec(&value).expect("a parsed body serialises");
    let again: T = serde_json::from_slice(&json).expect("a serialised body parses");
    assert_eq!(again, value);
    Some(value)
}

/// Text of a scalar JSON value, as the config handler reads one.
fn scalar(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn limits(values: &Option<BTreeMap<String, Option<Value>>>, check: fn(&str) -> bool) {
    for value in values.iter().flatten().filter_map(|(_, v)| v.as_ref()) {
        if let Some(text) = scalar(value) {
            check(&text);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&kind, body)) = data.split_first() else {
        return;
    };
    match kind % 14 {
        0 => {
            let _ = parse::<api::RegisterRequest>(body);
        }
        1 => {
            let _ = parse::<api::LoginRequest>(body);
        }
        2 => {
            if let Some(id) = parse::<api::AppCreateRequest>(body).and_then(|r| r.id) {
                if let Err(error) = drycc_model::app::validate_app_name(&id) {
                    let _ = error.to_string();
                }
            }
        }
        3 => {
            let _ = parse::<api::BuildCreateRequest>(body);
        }
        4 => {
            let _ = parse::<api::RollbackRequest>(body);
        }
        5 => {
            if let Some(update) = parse::<api::ConfigUpdate>(body) {
                limits(&update.cpu, |t| {
                    drycc_model::limits::parse_cpu(t)
                        .map_err(|e| e.to_string())
                        .is_ok()
                });
                limits(&update.memory, |t| {
                    drycc_model::limits::parse_memory(t)
                        .map_err(|e| e.to_string())
                        .is_ok()
                });
            }
        }
        6 => {
            // A scale request: an object of types to counts, checked with
            // and without a build.
            if let Some(Value::Object(request)) = parse::<Value>(body) {
                let types: BTreeSet<String> = ["web", "worker"].map(String::from).into();
                let autoscaled = BTreeMap::from([("worker".to_string(), (1, 3))]);
                for types in [None, Some(&types)] {
                    let context = drycc_model::scale::ScaleContext {
                        types,
                        max_per_type: 100,
                        autoscaled: &autoscaled,
                    };
                    match drycc_model::scale::validate_scale(&request, &context) {
                        Ok(counts) => assert!(counts.values().all(|n| *n <= 100)),
                        Err(error) => {
                            let _ = error.to_string();
                        }
                    }
                }
            }
        }
        7 => {
            let _ = parse::<api::RestartRequest>(body);
        }
        8 => {
            if let Some(update) = parse::<api::SettingsUpdate>(body) {
                for value in update
                    .autoscale
                    .iter()
                    .flatten()
                    .filter_map(|(_, v)| v.as_ref())
                {
                    let _ = serde_json::from_value::<api::AutoscaleRule>(value.clone());
                }
            }
        }
        9 => {
            let _ = parse::<api::PermRequest>(body);
        }
        10 => {
            if let Some(request) = parse::<api::DomainRequest>(body) {
                match drycc_model::domain::validate_domain(&request.domain, "example.com") {
                    Ok(domain) => assert!(!domain.is_empty()),
                    Err(error) => {
                        let _ = error.to_string();
                    }
                }
            }
        }
        11 => {
            let _ = parse::<api::CertCreateRequest>(body);
        }
        12 => {
            let _ = parse::<api::ExecStart>(body);
        }
        _ => {
            let _ = parse::<api::LogsStart>(body);
        }
    }
});
