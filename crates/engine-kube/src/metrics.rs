//! Usage from the resource metrics API (`metrics.k8s.io/v1beta1`, served
//! by metrics-server through the API server's aggregator): a Pod's CPU, a
//! rate over the metrics window, and its memory working set. The API is
//! optional on a cluster: without it (or before a Pod's first samples)
//! a process has a reading without numbers.

use std::collections::BTreeMap;

use kube::api::{Api, ApiResource, DynamicObject, ListParams};
use kube::Client;
use serde_json::Value;

/// The PodMetrics resource.
fn pod_metrics() -> ApiResource {
    ApiResource {
        group: "metrics.k8s.io".to_string(),
        version: "v1beta1".to_string(),
        api_version: "metrics.k8s.io/v1beta1".to_string(),
        kind: "PodMetrics".to_string(),
        plural: "pods".to_string(),
    }
}

/// One Pod's usage: CPU in millicores, memory in bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PodUsage {
    pub cpu_millis: u64,
    pub memory_bytes: u64,
}

/// The usage of the Pods of `namespace` matching `selector`, by Pod name;
/// empty when the cluster has no metrics API (or it cannot answer now).
pub async fn pod_usage(
    client: &Client,
    namespace: &str,
    selector: &str,
) -> BTreeMap<String, PodUsage> {
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &pod_metrics());
    match api.list(&ListParams::default().labels(selector)).await {
        Ok(list) => list
            .items
            .iter()
            .filter_map(|m| Some((m.metadata.name.clone()?, usage_of(&m.data)?)))
            .collect(),
        Err(kube::Error::Api(status)) if status.code == 403 => {
            // The API is there and the engine may not read it: an
            // operator's error, said where operators look.
            tracing::warn!(namespace, message = %status.message, "no usage figures: the engine may not list pods of metrics.k8s.io");
            BTreeMap::new()
        }
        Err(error) => {
            // No metrics API, or metrics-server not answering: no numbers.
            tracing::debug!(namespace, %error, "no pod metrics");
            BTreeMap::new()
        }
    }
}

/// The sum over a PodMetrics' containers; `None` when a figure is missing
/// or unreadable.
fn usage_of(data: &Value) -> Option<PodUsage> {
    let containers = data.get("containers")?.as_array()?;
    if containers.is_empty() {
        return None;
    }
    let mut total = PodUsage::default();
    for c in containers {
        let usage = c.get("usage")?;
        let cpu = quantity(usage.get("cpu")?.as_str()?)?;
        let memory = quantity(usage.get("memory")?.as_str()?)?;
        total.cpu_millis += (cpu * 1000.0).round() as u64;
        total.memory_bytes += memory.round() as u64;
    }
    Some(total)
}

/// A Kubernetes quantity (`250m`, `12345n`, `64Mi`, `1.5G`, `1e3`) in base
/// units; `None` when it is not one, or negative.
pub fn quantity(text: &str) -> Option<f64> {
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(split);
    let (number, suffix) = match suffix.strip_prefix(['e', 'E']) {
        Some(exponent) if !exponent.is_empty() => {
            let e: i32 = exponent.parse().ok()?;
            (number.parse::<f64>().ok()? * 10f64.powi(e), "")
        }
        _ => (number.parse::<f64>().ok()?, suffix),
    };
    let factor = match suffix {
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "" => 1.0,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024.0,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        _ => return None,
    };
    let value = number * factor;
    (value.is_finite() && value >= 0.0).then_some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_in_base_units() {
        assert_eq!(quantity("250m"), Some(0.25));
        assert_eq!(quantity("2"), Some(2.0));
        assert_eq!(
            quantity("1500000n").map(|v| (v * 1000.0).round()),
            Some(2.0)
        );
        assert_eq!(quantity("64Mi"), Some(64.0 * 1024.0 * 1024.0));
        assert_eq!(quantity("1234Ki"), Some(1234.0 * 1024.0));
        assert_eq!(quantity("1.5G"), Some(1.5e9));
        assert_eq!(quantity("1e3"), Some(1000.0));
        assert_eq!(quantity("12x"), None);
        assert_eq!(quantity(""), None);
        assert_eq!(quantity("-1"), None);
    }

    #[test]
    fn a_pod_sums_its_containers() {
        let data = serde_json::json!({"containers": [
            {"name": "a", "usage": {"cpu": "12000000n", "memory": "1Mi"}},
            {"name": "b", "usage": {"cpu": "3m", "memory": "1024Ki"}},
        ]});
        assert_eq!(
            usage_of(&data),
            Some(PodUsage {
                cpu_millis: 15,
                memory_bytes: 2 * 1024 * 1024
            })
        );
        assert_eq!(usage_of(&serde_json::json!({"containers": []})), None);
        assert_eq!(
            usage_of(&serde_json::json!({"containers": [{"usage": {"cpu": "1"}}]})),
            None
        );
    }
}
