//! `healthchecks:list`, `healthchecks:set`, `healthchecks:unset`: the
//! config's `healthcheck` map, `{"<type>": {"livenessProbe"?: probe,
//! "readinessProbe"?: probe}}`, each probe in Kubernetes' JSON shape.

use super::{get_config, post_config};
use crate::cli::HealthchecksCmd;
use crate::session::Ctx;
use crate::table;
use crate::validate::{self, Invalid};
use anyhow::bail;
use drycc_api_types::{Config, ConfigUpdate};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

const PROBES: [&str; 2] = ["livenessProbe", "readinessProbe"];
const TIMINGS: [&str; 5] = [
    "initialDelaySeconds",
    "timeoutSeconds",
    "periodSeconds",
    "successThreshold",
    "failureThreshold",
];

/// `livenessProbe`/`liveness` and `readinessProbe`/`readiness`.
pub fn probe_name(text: &str) -> Result<&'static str, Invalid> {
    match text.to_ascii_lowercase().as_str() {
        "livenessprobe" | "liveness" => Ok("livenessProbe"),
        "readinessprobe" | "readiness" => Ok("readinessProbe"),
        _ => Err(Invalid(format!(
            "'{text}' is not a health check type: use livenessProbe or readinessProbe"
        ))),
    }
}

/// The probe's timing fields, in Kubernetes' names.
#[derive(Clone, Copy, Debug, Default)]
pub struct Timings {
    pub initial_delay_seconds: Option<u32>,
    pub timeout_seconds: Option<u32>,
    pub period_seconds: Option<u32>,
    pub success_threshold: Option<u32>,
    pub failure_threshold: Option<u32>,
}

fn port(args: &[String], handler: &str) -> Result<u16, Invalid> {
    match args {
        [one] => one
            .parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| Invalid(format!("'{one}' is not a port number (1-65535)"))),
        _ => Err(Invalid(format!(
            "{handler} takes one port number, ex: {handler} 8000"
        ))),
    }
}

/// Builds the Kubernetes probe JSON.
pub fn build_probe(
    handler: &str,
    args: &[String],
    path: &str,
    headers: &[String],
    timings: Timings,
) -> Result<Value, Invalid> {
    let mut probe = Map::new();
    match handler {
        "httpGet" => {
            let port = port(args, handler)?;
            if !path.starts_with('/') {
                return Err(Invalid(format!("the path '{path}' must start with '/'")));
            }
            let mut get = json!({"path": path, "port": port});
            if !headers.is_empty() {
                let headers = headers
                    .iter()
                    .map(|h| {
                        let (name, value) = h.split_once(':').ok_or_else(|| {
                            Invalid(format!(
                                "'{h}' does not match the pattern 'Name: value', ex: 'X-Probe: 1'"
                            ))
                        })?;
                        Ok(json!({"name": name.trim(), "value": value.trim()}))
                    })
                    .collect::<Result<Vec<_>, Invalid>>()?;
                get["httpHeaders"] = Value::Array(headers);
            }
            probe.insert("httpGet".into(), get);
        }
        "tcpSocket" => {
            let port = port(args, handler)?;
            probe.insert("tcpSocket".into(), json!({"port": port}));
        }
        "exec" => {
            if args.is_empty() {
                return Err(Invalid(
                    "exec needs a command, ex: exec -- cat /tmp/healthy".into(),
                ));
            }
            probe.insert("exec".into(), json!({"command": args}));
        }
        other => {
            return Err(Invalid(format!(
                "'{other}' is not a probe type: use httpGet, tcpSocket or exec"
            )))
        }
    }
    let values = [
        timings.initial_delay_seconds,
        timings.timeout_seconds,
        timings.period_seconds,
        timings.success_threshold,
        timings.failure_threshold,
    ];
    for (name, value) in TIMINGS.iter().zip(values) {
        if let Some(v) = value {
            probe.insert((*name).into(), json!(v));
        }
    }
    Ok(Value::Object(probe))
}

pub async fn run(cmd: HealthchecksCmd, ctx: &Ctx) -> anyhow::Result<i32> {
    match cmd {
        HealthchecksCmd::List { app, ptype } => {
            if let Some(t) = &ptype {
                validate::parse_types(std::slice::from_ref(t))?;
            }
            let session = ctx.session()?;
            let app = session.app(&app)?;
            let config = get_config(&session, &app).await?;
            print!("{}", healthchecks_view(&app, &config, ptype.as_deref()));
        }
        HealthchecksCmd::Set {
            app,
            probe,
            handler,
            args,
            ptype,
            path,
            headers,
            initial_delay_seconds,
            timeout_seconds,
            period_seconds,
            success_threshold,
            failure_threshold,
        } => {
            let probe = probe_name(&probe)?;
            validate::parse_types(std::slice::from_ref(&ptype))?;
            let timings = Timings {
                initial_delay_seconds,
                timeout_seconds,
                period_seconds,
                success_threshold,
                failure_threshold,
            };
            let spec = build_probe(&handler, &args, &path, &headers, timings)?;
            let session = ctx.session()?;
            let app = session.app(&app)?;
            // The type's other probe is kept: the update replaces the type's entry.
            let current = get_config(&session, &app).await?;
            let mut entry = type_entry(&current, &ptype);
            entry.insert(probe.to_string(), spec);
            let update = healthcheck_update(&ptype, Some(Value::Object(entry)));
            let config = post_config(&session, &app, "Applying healthchecks", &update).await?;
            print!("{}", healthchecks_view(&app, &config, None));
        }
        HealthchecksCmd::Unset { app, probes, ptype } => {
            let probes = probes
                .iter()
                .map(|p| probe_name(p))
                .collect::<Result<Vec<_>, _>>()?;
            validate::parse_types(std::slice::from_ref(&ptype))?;
            let session = ctx.session()?;
            let app = session.app(&app)?;
            let current = get_config(&session, &app).await?;
            let mut entry = type_entry(&current, &ptype);
            if entry.is_empty() {
                bail!("No healthchecks set for process type {ptype} in {app} app.");
            }
            if probes.is_empty() {
                entry.clear();
            }
            for p in probes {
                entry.remove(p);
            }
            let value = (!entry.is_empty()).then_some(Value::Object(entry));
            let update = healthcheck_update(&ptype, value);
            let config = post_config(&session, &app, "Removing healthchecks", &update).await?;
            print!("{}", healthchecks_view(&app, &config, None));
        }
    }
    Ok(0)
}

fn type_entry(config: &Config, ptype: &str) -> Map<String, Value> {
    match config.healthcheck.get(ptype) {
        Some(Value::Object(map)) => map.clone(),
        _ => Map::new(),
    }
}

fn healthcheck_update(ptype: &str, value: Option<Value>) -> ConfigUpdate {
    let mut map = BTreeMap::new();
    map.insert(ptype.to_string(), value);
    ConfigUpdate {
        healthcheck: Some(map),
        ..Default::default()
    }
}

/// One line describing a probe: `httpGet port=8000 path=/ periodSeconds=5`.
fn describe_probe(probe: &Value) -> String {
    let mut parts: Vec<String> = Vec::new();
    let text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    if let Some(get) = probe.get("httpGet") {
        parts.push("httpGet".into());
        if let Some(port) = get.get("port") {
            parts.push(format!("port={}", text(port)));
        }
        if let Some(path) = get.get("path") {
            parts.push(format!("path={}", text(path)));
        }
        if let Some(Value::Array(headers)) = get.get("httpHeaders") {
            for h in headers {
                let name = h.get("name").map(text).unwrap_or_default();
                let value = h.get("value").map(text).unwrap_or_default();
                parts.push(format!("header={name}:{value}"));
            }
        }
    } else if let Some(tcp) = probe.get("tcpSocket") {
        parts.push("tcpSocket".into());
        if let Some(port) = tcp.get("port") {
            parts.push(format!("port={}", text(port)));
        }
    } else if let Some(exec) = probe.get("exec") {
        parts.push("exec".into());
        if let Some(Value::Array(cmd)) = exec.get("command") {
            parts.push(cmd.iter().map(text).collect::<Vec<_>>().join(" "));
        }
    }
    for name in TIMINGS {
        if let Some(v) = probe.get(name) {
            parts.push(format!("{name}={}", text(v)));
        }
    }
    parts.join(" ")
}

fn healthchecks_view(app: &str, config: &Config, only: Option<&str>) -> String {
    let mut rows: Vec<Vec<String>> = Vec::new();
    for (ptype, entry) in &config.healthcheck {
        if only.is_some_and(|o| o != ptype) {
            continue;
        }
        for probe in PROBES {
            if let Some(spec) = entry.get(probe) {
                rows.push(vec![ptype.clone(), probe.to_string(), describe_probe(spec)]);
            }
        }
    }
    if rows.is_empty() {
        return format!("No healthchecks set in {app} app.\n");
    }
    table::render(&["TYPE", "PROBE", "DETAILS"], &rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn probe_names() {
        assert_eq!(probe_name("readinessProbe").unwrap(), "readinessProbe");
        assert_eq!(probe_name("liveness").unwrap(), "livenessProbe");
        assert!(probe_name("startup").is_err());
    }

    #[test]
    fn http_probe_json() {
        let probe = build_probe(
            "httpGet",
            &v(&["8000"]),
            "/healthz",
            &v(&["X-Probe: 1"]),
            Timings {
                period_seconds: Some(5),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(
            probe,
            json!({
                "httpGet": {"path": "/healthz", "port": 8000, "httpHeaders": [{"name": "X-Probe", "value": "1"}]},
                "periodSeconds": 5
            })
        );
    }

    #[test]
    fn tcp_and_exec_probe_json() {
        assert_eq!(
            build_probe("tcpSocket", &v(&["5000"]), "/", &[], Timings::default()).unwrap(),
            json!({"tcpSocket": {"port": 5000}})
        );
        assert_eq!(
            build_probe(
                "exec",
                &v(&["cat", "/tmp/ok"]),
                "/",
                &[],
                Timings::default()
            )
            .unwrap(),
            json!({"exec": {"command": ["cat", "/tmp/ok"]}})
        );
    }

    #[test]
    fn bad_probes() {
        let t = Timings::default();
        assert!(build_probe("httpGet", &v(&["http"]), "/", &[], t).is_err());
        assert!(build_probe("httpGet", &v(&["0"]), "/", &[], t).is_err());
        assert!(build_probe("httpGet", &v(&["80", "81"]), "/", &[], t).is_err());
        assert!(build_probe("httpGet", &v(&["80"]), "x", &[], t).is_err());
        assert!(build_probe("httpGet", &v(&["80"]), "/", &v(&["nocolon"]), t).is_err());
        assert!(build_probe("grpc", &v(&["80"]), "/", &[], t).is_err());
        assert!(build_probe("exec", &[], "/", &[], t).is_err());
    }

    #[test]
    fn list_view() {
        let mut c = super::super::config::sample_config();
        assert_eq!(
            healthchecks_view("foo", &c, None),
            "No healthchecks set in foo app.\n"
        );
        c.healthcheck.insert(
            "web".into(),
            json!({
                "readinessProbe": {"httpGet": {"path": "/", "port": 8000}, "periodSeconds": 5},
                "livenessProbe": {"tcpSocket": {"port": 8000}}
            }),
        );
        assert_eq!(
            healthchecks_view("foo", &c, None),
            "TYPE    PROBE             DETAILS\n\
             web     livenessProbe     tcpSocket port=8000\n\
             web     readinessProbe    httpGet port=8000 path=/ periodSeconds=5\n"
        );
        assert_eq!(
            healthchecks_view("foo", &c, Some("worker")),
            "No healthchecks set in foo app.\n"
        );
    }
}
