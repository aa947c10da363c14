//! Client-side checks of command arguments, done before the configuration
//! is read or anything is sent: `type=num`, limits, timeouts, `KEY=value`,
//! release versions, autoscale bounds and Procfile text.

use drycc_api_types::AutoscaleRule;
use regex::Regex;
use std::collections::BTreeMap;
use std::sync::LazyLock;

/// A bad argument; the message is shown as `Error: <message>`.
#[derive(Debug, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

const PTYPE: &str = "[a-z0-9]+(?:-[a-z0-9]+)*";

static SCALE_RE: LazyLock<Regex> = LazyLock::new(|| re(&format!("^({PTYPE})=([0-9]+)$")));
static PTYPE_RE: LazyLock<Regex> = LazyLock::new(|| re(&format!("^{PTYPE}$")));
static CPU_RE: LazyLock<Regex> = LazyLock::new(|| {
    let v = r"(?:[0-9]+m|[0-9]+(?:\.[0-9]{1,3})?)";
    re(&format!("^({PTYPE})=({v}(?:/{v})?)$"))
});
static MEMORY_RE: LazyLock<Regex> = LazyLock::new(|| {
    let v = "[0-9]+[BbKkMmGg]";
    re(&format!("^({PTYPE})=({v}(?:/{v})?)$"))
});
static CONFIG_KEY_RE: LazyLock<Regex> = LazyLock::new(|| re("^[A-Za-z_][A-Za-z0-9_]*$"));
static VERSION_RE: LazyLock<Regex> = LazyLock::new(|| re("^[vV]?([0-9]+)$"));

fn re(pattern: &str) -> Regex {
    // The patterns are constants of this module, covered by its tests.
    Regex::new(pattern).unwrap_or_else(|e| panic!("bad built-in pattern {pattern}: {e}"))
}

/// `web=2 worker=1` -> `{"web": 2, "worker": 1}`.
pub fn parse_scale(targets: &[String]) -> Result<BTreeMap<String, u32>, Invalid> {
    let mut out = BTreeMap::new();
    for target in targets {
        let caps = SCALE_RE.captures(target).ok_or_else(|| {
            Invalid(format!(
                "'{target}' does not match the pattern 'type=num', ex: web=2"
            ))
        })?;
        let count = caps[2]
            .parse::<u32>()
            .map_err(|_| Invalid(format!("'{target}': {} is too many processes", &caps[2])))?;
        out.insert(caps[1].to_string(), count);
    }
    Ok(out)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LimitKind {
    Cpu,
    Memory,
}

impl LimitKind {
    pub fn label(self) -> &'static str {
        match self {
            LimitKind::Cpu => "cpu",
            LimitKind::Memory => "memory",
        }
    }
}

/// `web=500m` (CPU) or `web=512M` (memory), optionally `request/limit`.
pub fn parse_limits(
    kind: LimitKind,
    items: &[String],
) -> Result<BTreeMap<String, String>, Invalid> {
    let (pattern, example) = match kind {
        LimitKind::Cpu => (&*CPU_RE, "web=500m"),
        LimitKind::Memory => (&*MEMORY_RE, "web=512M"),
    };
    let mut out = BTreeMap::new();
    for item in items {
        let caps = pattern.captures(item).ok_or_else(|| {
            Invalid(format!(
                "'{item}' does not match the pattern 'type={}', ex: {example}",
                kind.label()
            ))
        })?;
        out.insert(caps[1].to_string(), caps[2].to_string());
    }
    Ok(out)
}

/// Process type names, as for `limits:unset web worker`.
pub fn parse_types(items: &[String]) -> Result<Vec<String>, Invalid> {
    items
        .iter()
        .map(|t| {
            if PTYPE_RE.is_match(t) {
                Ok(t.clone())
            } else {
                Err(Invalid(format!(
                    "'{t}' is not a valid process type, ex: web"
                )))
            }
        })
        .collect()
}

/// A process type or a process name (`ps:restart`, `ps:exec`).
pub fn parse_process_ref(item: &str) -> Result<String, Invalid> {
    if PTYPE_RE.is_match(item) {
        Ok(item.to_string())
    } else {
        Err(Invalid(format!(
            "'{item}' is not a valid process type or process name"
        )))
    }
}

/// `web=30` -> `{"web": 30}` (seconds).
pub fn parse_timeouts(items: &[String]) -> Result<BTreeMap<String, u64>, Invalid> {
    let mut out = BTreeMap::new();
    for item in items {
        let invalid = || {
            Invalid(format!(
                "'{item}' does not match the pattern 'type=seconds', ex: web=30"
            ))
        };
        let caps = SCALE_RE.captures(item).ok_or_else(invalid)?;
        let secs = caps[2].parse::<u64>().map_err(|_| invalid())?;
        out.insert(caps[1].to_string(), secs);
    }
    Ok(out)
}

/// `KEY=value` pairs; the value may contain `=` and be empty.
pub fn parse_config_values(items: &[String]) -> Result<BTreeMap<String, String>, Invalid> {
    let mut out = BTreeMap::new();
    for item in items {
        let invalid = || {
            Invalid(format!(
                "'{item}' does not match the pattern 'key=var', ex: MODE=test"
            ))
        };
        let (key, value) = item.split_once('=').ok_or_else(invalid)?;
        if !CONFIG_KEY_RE.is_match(key) {
            return Err(invalid());
        }
        out.insert(key.to_string(), value.to_string());
    }
    Ok(out)
}

/// The keys of `registry:*`.
const REGISTRY_KEYS: [&str; 2] = ["username", "password"];

/// `username=...` and `password=...` (the value may contain `=`).
pub fn parse_registry(items: &[String]) -> Result<BTreeMap<String, String>, Invalid> {
    let mut out = BTreeMap::new();
    for item in items {
        let key = parse_registry_key(item.split_once('=').map_or(item.as_str(), |(k, _)| k))?;
        let Some((_, value)) = item.split_once('=') else {
            return Err(Invalid(format!(
                "'{item}' does not match the pattern 'key=value', ex: username=bob"
            )));
        };
        if value.is_empty() {
            return Err(Invalid(format!(
                "{key} is empty; give a value, ex: {key}=..."
            )));
        }
        out.insert(key, value.to_string());
    }
    Ok(out)
}

/// `username` or `password`.
pub fn parse_registry_key(key: &str) -> Result<String, Invalid> {
    if REGISTRY_KEYS.contains(&key) {
        Ok(key.to_string())
    } else {
        Err(Invalid(format!(
            "'{key}' is not a registry key: use username or password"
        )))
    }
}

pub fn parse_config_keys(keys: &[String]) -> Result<Vec<String>, Invalid> {
    keys.iter()
        .map(|k| {
            if CONFIG_KEY_RE.is_match(k) {
                Ok(k.clone())
            } else {
                Err(Invalid(format!(
                    "'{k}' is not a valid config key, ex: MODE"
                )))
            }
        })
        .collect()
}

/// `v3` or `3` -> 3.
pub fn parse_version(text: &str) -> Result<u32, Invalid> {
    VERSION_RE
        .captures(text)
        .and_then(|c| c[1].parse().ok())
        .ok_or_else(|| Invalid(format!("'{text}' is not a valid release version, ex: v3")))
}

/// `1 <= min <= max`, `1 <= cpu_percent`.
pub fn autoscale_rule(
    ptype: &str,
    min: u32,
    max: u32,
    cpu_percent: u32,
) -> Result<AutoscaleRule, Invalid> {
    parse_types(&[ptype.to_string()])?;
    if min < 1 {
        return Err(Invalid("--min must be at least 1".into()));
    }
    if max < min {
        return Err(Invalid(format!(
            "--max ({max}) must not be below --min ({min})"
        )));
    }
    if cpu_percent < 1 {
        return Err(Invalid("--cpu-percent must be at least 1".into()));
    }
    Ok(AutoscaleRule {
        min,
        max,
        cpu_percent,
    })
}

/// Procfile text (`web: cmd` lines) -> `{type: command}`, with the same
/// grammar and messages as the controller (`drycc-procfile`).
pub fn parse_procfile(text: &str) -> Result<BTreeMap<String, String>, Invalid> {
    let procfile = drycc_procfile::parse(text).map_err(|e| Invalid(format!("Procfile: {e}")))?;
    if procfile.is_empty() {
        return Err(Invalid("the Procfile defines no process type".into()));
    }
    Ok(procfile.to_map())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn scale_targets() {
        let parsed = parse_scale(&v(&["web=2", "worker-1=0", "web=3"])).unwrap();
        assert_eq!(parsed.get("web"), Some(&3));
        assert_eq!(parsed.get("worker-1"), Some(&0));
        for bad in [
            "web", "web=", "=2", "Web=2", "web=-1", "web=2x", "web-=1", "-web=1", "web = 2",
            "a--b=1",
        ] {
            assert_eq!(
                parse_scale(&v(&[bad])).unwrap_err().to_string(),
                format!("'{bad}' does not match the pattern 'type=num', ex: web=2")
            );
        }
        assert!(parse_scale(&v(&["web=99999999999"]))
            .unwrap_err()
            .to_string()
            .contains("too many"));
    }

    #[test]
    fn cpu_limits() {
        let parsed = parse_limits(
            LimitKind::Cpu,
            &v(&["web=500m", "worker=1", "x=0.5", "y=250m/500m"]),
        )
        .unwrap();
        assert_eq!(parsed["web"], "500m");
        assert_eq!(parsed["worker"], "1");
        assert_eq!(parsed["x"], "0.5");
        assert_eq!(parsed["y"], "250m/500m");
        for bad in ["web=500M", "web", "web=", "web=1G", "WEB=1", "web=m"] {
            assert_eq!(
                parse_limits(LimitKind::Cpu, &v(&[bad]))
                    .unwrap_err()
                    .to_string(),
                format!("'{bad}' does not match the pattern 'type=cpu', ex: web=500m")
            );
        }
    }

    #[test]
    fn memory_limits() {
        let parsed = parse_limits(
            LimitKind::Memory,
            &v(&["web=512M", "w=1G", "k=64k", "r=256M/1G"]),
        )
        .unwrap();
        assert_eq!(parsed["web"], "512M");
        assert_eq!(parsed["r"], "256M/1G");
        for bad in ["web=512", "web=1T", "web=", "web=G", "web=1.5G"] {
            assert_eq!(
                parse_limits(LimitKind::Memory, &v(&[bad]))
                    .unwrap_err()
                    .to_string(),
                format!("'{bad}' does not match the pattern 'type=memory', ex: web=512M")
            );
        }
    }

    #[test]
    fn timeouts_and_types() {
        assert_eq!(parse_timeouts(&v(&["web=30"])).unwrap()["web"], 30);
        assert_eq!(
            parse_timeouts(&v(&["web=3s"])).unwrap_err().to_string(),
            "'web=3s' does not match the pattern 'type=seconds', ex: web=30"
        );
        assert_eq!(
            parse_types(&v(&["web", "a-b"])).unwrap(),
            v(&["web", "a-b"])
        );
        assert_eq!(
            parse_types(&v(&["web=1"])).unwrap_err().to_string(),
            "'web=1' is not a valid process type, ex: web"
        );
    }

    #[test]
    fn config_pairs() {
        let parsed =
            parse_config_values(&v(&["A=1", "URL=http://x?a=b", "EMPTY=", "_x=y"])).unwrap();
        assert_eq!(parsed["URL"], "http://x?a=b");
        assert_eq!(parsed["EMPTY"], "");
        for bad in ["A", "=x", "1A=x", "A-B=x"] {
            assert_eq!(
                parse_config_values(&v(&[bad])).unwrap_err().to_string(),
                format!("'{bad}' does not match the pattern 'key=var', ex: MODE=test")
            );
        }
        assert!(parse_config_keys(&v(&["A=1"])).is_err());
        assert_eq!(parse_config_keys(&v(&["A"])).unwrap(), v(&["A"]));
    }

    #[test]
    fn versions() {
        assert_eq!(parse_version("v3").unwrap(), 3);
        assert_eq!(parse_version("12").unwrap(), 12);
        for bad in ["v", "x3", "v-1", "3.0", ""] {
            assert_eq!(
                parse_version(bad).unwrap_err().to_string(),
                format!("'{bad}' is not a valid release version, ex: v3")
            );
        }
    }

    #[test]
    fn autoscale_bounds() {
        assert_eq!(
            autoscale_rule("web", 3, 8, 75).unwrap(),
            AutoscaleRule {
                min: 3,
                max: 8,
                cpu_percent: 75
            }
        );
        assert_eq!(
            autoscale_rule("web", 0, 8, 75).unwrap_err().to_string(),
            "--min must be at least 1"
        );
        assert_eq!(
            autoscale_rule("web", 5, 3, 75).unwrap_err().to_string(),
            "--max (3) must not be below --min (5)"
        );
        assert_eq!(
            autoscale_rule("web", 1, 1, 0).unwrap_err().to_string(),
            "--cpu-percent must be at least 1"
        );
        assert!(autoscale_rule("Web", 1, 1, 1).is_err());
    }

    #[test]
    fn procfile_text() {
        let p = parse_procfile("\u{feff}# comment\r\nweb: echo foo: bar\r\n\nworker:   sleep 1\n")
            .unwrap();
        assert_eq!(p["web"], "echo foo: bar");
        assert_eq!(p["worker"], "sleep 1");
        assert!(parse_procfile("web echo")
            .unwrap_err()
            .to_string()
            .contains("line 1"));
        assert!(parse_procfile("web:").is_err());
        assert!(parse_procfile("web: a\nweb: b")
            .unwrap_err()
            .to_string()
            .contains("line 2"));
        assert!(parse_procfile("# nothing").is_err());
    }
}
