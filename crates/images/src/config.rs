//! What a container started from an image runs by default, read from the
//! two shapes the same fields come in: the Docker Engine's image inspect
//! and an image config blob (the OCI `application/vnd.oci.image.config.v1+json`
//! and Docker's `application/vnd.docker.container.image.v1+json` agree on
//! the fields read here).

use std::collections::BTreeMap;

use serde::Deserialize;

/// The run configuration of an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageConfig {
    /// The reference as given, normalised (`registry/repository:tag`).
    pub reference: String,
    /// The manifest digest when known: the registry's (for a multi-platform
    /// image, the digest of its index, as Docker's `RepoDigests` show), or
    /// the local engine's record of it for the same repository.
    pub digest: Option<String>,
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    /// TCP ports from `ExposedPorts` (`"5000/tcp"` is 5000), sorted.
    pub exposed_ports: Vec<u16>,
    pub working_dir: Option<String>,
    /// `Env` split at the first '='; an entry without one (which unsets a
    /// variable) is left out.
    pub env: Vec<(String, String)>,
}

/// The media types of image config blobs.
pub(crate) const CONFIG_MEDIA_TYPES: &[&str] = &[
    "application/vnd.oci.image.config.v1+json",
    "application/vnd.docker.container.image.v1+json",
];

/// The fields of an image config blob this crate reads. Any of them may be
/// absent or null.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct ConfigBlob {
    #[serde(default)]
    config: Option<RunConfig>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RunConfig {
    #[serde(default)]
    entrypoint: Option<Vec<String>>,
    #[serde(default)]
    cmd: Option<Vec<String>>,
    #[serde(default)]
    exposed_ports: Option<BTreeMap<String, serde_json::Value>>,
    #[serde(default)]
    working_dir: Option<String>,
    #[serde(default)]
    env: Option<Vec<String>>,
}

impl ImageConfig {
    pub(crate) fn from_blob(reference: String, digest: Option<String>, blob: ConfigBlob) -> Self {
        let config = blob.config.unwrap_or_default();
        ImageConfig {
            reference,
            digest,
            entrypoint: config.entrypoint.unwrap_or_default(),
            cmd: config.cmd.unwrap_or_default(),
            exposed_ports: tcp_ports(config.exposed_ports.unwrap_or_default().keys()),
            working_dir: non_empty(config.working_dir),
            env: split_env(config.env.unwrap_or_default()),
        }
    }

    pub(crate) fn from_docker(
        reference: String,
        digest: Option<String>,
        config: bollard::models::ImageConfig,
    ) -> Self {
        ImageConfig {
            reference,
            digest,
            entrypoint: config.entrypoint.unwrap_or_default(),
            cmd: config.cmd.unwrap_or_default(),
            exposed_ports: tcp_ports(config.exposed_ports.unwrap_or_default().iter()),
            working_dir: non_empty(config.working_dir),
            env: split_env(config.env.unwrap_or_default()),
        }
    }
}

fn non_empty(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.is_empty())
}

/// `"5000/tcp"` and `"5000"` (TCP is the default) are 5000; UDP, SCTP and
/// anything that is not a port number is left out.
fn tcp_ports<'a>(ports: impl Iterator<Item = &'a String>) -> Vec<u16> {
    let mut tcp: Vec<u16> = ports
        .filter_map(|port| {
            let (number, protocol) = port.split_once('/').unwrap_or((port, "tcp"));
            if !protocol.eq_ignore_ascii_case("tcp") {
                return None;
            }
            number.parse::<u16>().ok().filter(|p| *p > 0)
        })
        .collect();
    tcp.sort_unstable();
    tcp.dedup();
    tcp
}

fn split_env(env: Vec<String>) -> Vec<(String, String)> {
    env.into_iter()
        .filter_map(|entry| {
            let (name, value) = entry.split_once('=')?;
            (!name.is_empty()).then(|| (name.to_string(), value.to_string()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blob(json: &str) -> ConfigBlob {
        match serde_json::from_str(json) {
            Ok(blob) => blob,
            Err(e) => panic!("{json}: {e}"),
        }
    }

    #[test]
    fn a_docker_config_blob() {
        let config = ImageConfig::from_blob(
            "r/a:1".into(),
            Some("sha256:x".into()),
            blob(
                r#"{"architecture":"amd64","os":"linux","config":{
                    "Entrypoint":["/bin/sh","-c"],"Cmd":["httpd -f"],
                    "ExposedPorts":{"8080/tcp":{},"5000/tcp":{},"53/udp":{},"7000":{},"x/tcp":{}},
                    "WorkingDir":"/srv","Env":["PATH=/bin","FOO=a=b","EMPTY=","UNSET","=x"]},
                    "rootfs":{"type":"layers","diff_ids":[]}}"#,
            ),
        );
        assert_eq!(
            config,
            ImageConfig {
                reference: "r/a:1".into(),
                digest: Some("sha256:x".into()),
                entrypoint: vec!["/bin/sh".into(), "-c".into()],
                cmd: vec!["httpd -f".into()],
                exposed_ports: vec![5000, 7000, 8080],
                working_dir: Some("/srv".into()),
                env: vec![
                    ("PATH".into(), "/bin".into()),
                    ("FOO".into(), "a=b".into()),
                    ("EMPTY".into(), String::new()),
                ],
            }
        );
    }

    #[test]
    fn nulls_and_absent_fields_are_empty() {
        for json in [
            r#"{}"#,
            r#"{"config":null}"#,
            r#"{"config":{}}"#,
            r#"{"config":{"Entrypoint":null,"Cmd":null,"ExposedPorts":null,"WorkingDir":"","Env":null}}"#,
        ] {
            let config = ImageConfig::from_blob("r/a:1".into(), None, blob(json));
            assert!(config.entrypoint.is_empty(), "{json}");
            assert!(config.cmd.is_empty(), "{json}");
            assert!(config.exposed_ports.is_empty(), "{json}");
            assert_eq!(config.working_dir, None, "{json}");
            assert!(config.env.is_empty(), "{json}");
        }
    }

    #[test]
    fn a_docker_engine_config() {
        let config = ImageConfig::from_docker(
            "r/a:1".into(),
            None,
            bollard::models::ImageConfig {
                cmd: Some(vec!["httpd".into()]),
                exposed_ports: Some(vec!["5000/tcp".into(), "5000/udp".into(), "80/TCP".into()]),
                working_dir: Some(String::new()),
                env: Some(vec!["FOO=bar".into()]),
                ..Default::default()
            },
        );
        assert_eq!(config.cmd, vec!["httpd".to_string()]);
        assert!(config.entrypoint.is_empty());
        assert_eq!(config.exposed_ports, vec![80, 5000]);
        assert_eq!(config.working_dir, None);
        assert_eq!(config.env, vec![("FOO".into(), "bar".into())]);
    }
}
