//! The REST API's wire shapes (Drycc controller v2), shared by the
//! controller and the `drycc` CLI so that the two cannot drift apart.
//!
//! Timestamps travel as strings in `%Y-%m-%dT%H:%M:%SZ` (UTC); this crate
//! keeps them as `String` so that it needs no time library.

// Input from users, files and the network must never panic the program.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// Header carrying the API version on every response.
pub const API_VERSION_HEADER: &str = "DRYCC_API_VERSION";
pub const API_VERSION: &str = "2.3";
/// Header carrying the controller's version on every response.
pub const PLATFORM_VERSION_HEADER: &str = "DRYCC_PLATFORM_VERSION";

/// A paginated list.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct List<T> {
    pub count: usize,
    #[serde(default)]
    pub next: Option<String>,
    #[serde(default)]
    pub previous: Option<String>,
    pub results: Vec<T>,
}

/// `{"detail": "<message>"}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorDetail {
    pub detail: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RegisterRequest {
    #[cfg_attr(feature = "openapi", schema(pattern = r"^[A-Za-z0-9@.+_-]{1,150}$"))]
    pub username: String,
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 1024))]
    pub password: String,
    #[serde(default)]
    pub email: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LoginRequest {
    #[cfg_attr(feature = "openapi", schema(pattern = r"^[A-Za-z0-9@.+_-]{1,150}$"))]
    pub username: String,
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 1024))]
    pub password: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TokenResponse {
    pub token: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct User {
    pub id: String,
    pub username: String,
    pub email: String,
    pub is_superuser: bool,
    pub date_joined: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AppCreateRequest {
    /// 5 to 63 characters; a generated name when left out.
    #[serde(default)]
    #[cfg_attr(
        feature = "openapi",
        schema(pattern = r"^[a-z][a-z0-9-]{3,61}[a-z0-9]$")
    )]
    pub id: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct App {
    pub uuid: String,
    pub id: String,
    pub owner: String,
    pub structure: BTreeMap<String, u32>,
    pub created: String,
    pub updated: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Build {
    pub uuid: String,
    pub app: String,
    pub owner: String,
    pub image: String,
    pub stack: String,
    pub sha: String,
    pub procfile: BTreeMap<String, String>,
    pub dockerfile: String,
    pub created: String,
    pub updated: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BuildCreateRequest {
    pub image: String,
    #[serde(default)]
    pub stack: Option<String>,
    #[serde(default)]
    pub procfile: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub sha: Option<String>,
    #[serde(default)]
    pub dockerfile: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Release {
    pub uuid: String,
    pub app: String,
    pub owner: String,
    pub version: u32,
    pub summary: String,
    /// The build's uuid, if any.
    pub build: Option<String>,
    /// The config's uuid.
    pub config: String,
    pub failed: bool,
    pub exception: String,
    pub created: String,
    pub updated: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RollbackRequest {
    #[serde(default)]
    pub version: Option<Value>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RollbackResponse {
    pub version: u32,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Config {
    pub uuid: String,
    pub app: String,
    pub owner: String,
    pub values: BTreeMap<String, String>,
    pub cpu: BTreeMap<String, String>,
    pub memory: BTreeMap<String, String>,
    pub healthcheck: BTreeMap<String, Value>,
    pub termination_grace_period: BTreeMap<String, u64>,
    pub tags: BTreeMap<String, String>,
    /// Private registry credentials: `username` as set, `password` masked
    /// (the API never sends it back).
    #[serde(default)]
    pub registry: BTreeMap<String, String>,
    pub created: String,
    pub updated: String,
    /// Whether the engine enforces CPU and memory limits (`None` from a
    /// server that does not say).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits_enforced: Option<bool>,
    /// Why limits are not enforced, when they are not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits_note: Option<String>,
}

/// A partial config update: each present key merges, `null` unsets.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConfigUpdate {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values: Option<BTreeMap<String, Option<Value>>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<BTreeMap<String, Option<Value>>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<BTreeMap<String, Option<Value>>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<BTreeMap<String, Option<Value>>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub termination_grace_period: Option<BTreeMap<String, Option<Value>>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<BTreeMap<String, Option<Value>>>,
    /// `username` and `password` of the app's private image registry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry: Option<BTreeMap<String, Option<Value>>>,
}

/// One process, as `ps` shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Pod {
    pub name: String,
    pub release: String,
    #[serde(rename = "type")]
    pub ptype: String,
    pub state: String,
    pub started: String,
    pub ready: String,
    pub restarts: u32,
    /// CPU in millicores, with `?usage=true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_millis: Option<u64>,
    /// Memory in bytes, with `?usage=true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_bytes: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PodList {
    pub count: usize,
    pub results: Vec<Pod>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RestartRequest {
    #[serde(default)]
    pub types: Option<String>,
}

/// One container of a process, as `ps:describe` shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ContainerDescription {
    pub container: String,
    /// Empty (and left out) for native processes, which have no image.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub image: String,
    /// The program that runs (`/bin/sh -c` for a command under a shell);
    /// left out before the process first started.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    pub state: BTreeMap<String, Value>,
    pub ready: bool,
    #[serde(rename = "restartCount")]
    pub restart_count: u32,
    #[serde(default)]
    pub pid: Option<u32>,
    #[serde(default)]
    pub port: Option<u16>,
    #[serde(default)]
    pub release: String,
    /// CPU used in millicores over the last moment, when measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_millis: Option<u64>,
    /// Size in bytes of the slug the process runs (buildpack builds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slug_size: Option<u64>,
    /// Memory in bytes, when measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_bytes: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PodDescription {
    pub count: usize,
    pub results: Vec<ContainerDescription>,
}

/// One autoscale rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AutoscaleRule {
    pub min: u32,
    pub max: u32,
    pub cpu_percent: u32,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Settings {
    pub uuid: String,
    pub app: String,
    pub owner: String,
    pub autoscale: BTreeMap<String, AutoscaleRule>,
    /// What the autoscaler last saw and did per rule (`kubectl get hpa`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub autoscale_status: BTreeMap<String, AutoscaleStatus>,
    pub routable: bool,
    pub created: String,
    pub updated: String,
}

/// The autoscaler's last decision for one type.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AutoscaleStatus {
    /// CPU utilisation in percent of the requests; `None` without samples.
    pub utilization: Option<u32>,
    pub current: u32,
    pub desired: u32,
    /// When the type was last rescaled, if since the controller started.
    pub last_scale: Option<String>,
    /// The decision as a sentence.
    pub reason: String,
}

/// One autoscaler decision of a type (`.../settings/autoscale/<type>/history/`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AutoscaleRecord {
    pub time: String,
    /// CPU utilisation in percent of the requests; `None` without samples.
    pub utilization: Option<u32>,
    pub current: u32,
    pub desired: u32,
    /// Whether the count changed.
    pub rescaled: bool,
}

/// The autoscaler's recent decisions of a type, oldest first.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AutoscaleHistory {
    pub count: usize,
    pub results: Vec<AutoscaleRecord>,
}

/// `{"autoscale": {"web": {...} | null}}`: a rule per type, `null` unsets.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SettingsUpdate {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscale: Option<BTreeMap<String, Option<Value>>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routable: Option<bool>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PermRequest {
    #[cfg_attr(feature = "openapi", schema(pattern = r"^[A-Za-z0-9@.+_-]{1,150}$"))]
    pub username: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Perms {
    pub users: Vec<String>,
}

/// A custom domain of an app (`/v2/apps/<id>/domains/`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Domain {
    pub uuid: String,
    pub app: String,
    pub owner: String,
    pub domain: String,
    pub created: String,
    pub updated: String,
}

/// A TLS certificate (`/v2/certs/`); its private key is never shown.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Cert {
    pub uuid: String,
    pub name: String,
    pub owner: String,
    /// PEM chain, leaf first.
    pub certificate: String,
    /// The domains it is attached to.
    pub domains: Vec<String>,
    pub created: String,
    pub updated: String,
}

/// `POST /v2/certs/`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CertCreateRequest {
    pub name: String,
    pub certificate: String,
    pub key: String,
}

/// Never prints the key.
impl std::fmt::Debug for CertCreateRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertCreateRequest")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// `POST /v2/apps/<id>/domains/`, `POST /v2/certs/<name>/domain/`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DomainRequest {
    #[cfg_attr(
        feature = "openapi",
        schema(max_length = 253, pattern = r"^[A-Za-z0-9.-]+$")
    )]
    pub domain: String,
}

/// First frame of an exec WebSocket.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ExecStart {
    pub command: Vec<String>,
    #[serde(default)]
    pub tty: bool,
    #[serde(default)]
    pub stdin: bool,
}

/// Channel bytes of exec frames (Kubernetes' convention).
pub mod channel {
    pub const STDIN: u8 = 0;
    pub const STDOUT: u8 = 1;
    pub const STDERR: u8 = 2;
    pub const STATUS: u8 = 3;
    pub const RESIZE: u8 = 4;
}

/// `{"Width": w, "Height": h}` on the resize channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TerminalSize {
    #[serde(rename = "Width")]
    pub width: u16,
    #[serde(rename = "Height")]
    pub height: u16,
}

/// The final frame on the status channel.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ExecStatus {
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<ExecStatusDetails>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ExecStatusDetails {
    pub causes: Vec<ExecStatusCause>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ExecStatusCause {
    pub reason: String,
    pub message: String,
}

impl ExecStatus {
    pub fn from_exit_code(code: i32) -> ExecStatus {
        if code == 0 {
            return ExecStatus {
                status: "Success".into(),
                reason: None,
                details: None,
            };
        }
        ExecStatus {
            status: "Failure".into(),
            reason: Some("NonZeroExitCode".into()),
            details: Some(ExecStatusDetails {
                causes: vec![ExecStatusCause {
                    reason: "ExitCode".into(),
                    message: code.to_string(),
                }],
            }),
        }
    }

    /// The exit code this status stands for; a failure without a readable
    /// code counts as 1.
    pub fn exit_code(&self) -> i32 {
        if self.status == "Success" {
            return 0;
        }
        self.details
            .as_ref()
            .and_then(|d| d.causes.iter().find(|c| c.reason == "ExitCode"))
            .and_then(|c| c.message.parse().ok())
            .unwrap_or(1)
    }
}

/// One frame of an exec WebSocket after the first: a channel byte, then
/// the channel's data. Both ends decode frames with [`decode_exec_frame`].
#[derive(Clone, Debug, PartialEq)]
pub enum ExecFrame<'a> {
    /// Client to server; empty data means the end of stdin.
    Stdin(&'a [u8]),
    Stdout(&'a [u8]),
    Stderr(&'a [u8]),
    /// Server to client, last: how the command ended.
    Status(ExecStatus),
    /// Client to server: the terminal's new size.
    Resize(TerminalSize),
}

/// Why a frame could not be decoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ExecFrameError {
    #[error("empty frame: a frame starts with its channel byte")]
    Empty,
    #[error("unknown channel {0}")]
    UnknownChannel(u8),
    #[error("unreadable exec status: {0}")]
    Status(String),
    #[error("unreadable terminal size: {0}")]
    Resize(String),
}

/// Decodes one exec frame (see [`channel`]). Never panics, whatever the
/// bytes: they come from the network.
pub fn decode_exec_frame(bytes: &[u8]) -> Result<ExecFrame<'_>, ExecFrameError> {
    let (&channel_byte, data) = bytes.split_first().ok_or(ExecFrameError::Empty)?;
    match channel_byte {
        channel::STDIN => Ok(ExecFrame::Stdin(data)),
        channel::STDOUT => Ok(ExecFrame::Stdout(data)),
        channel::STDERR => Ok(ExecFrame::Stderr(data)),
        channel::STATUS => serde_json::from_slice(data)
            .map(ExecFrame::Status)
            .map_err(|e| ExecFrameError::Status(e.to_string())),
        channel::RESIZE => serde_json::from_slice(data)
            .map(ExecFrame::Resize)
            .map_err(|e| ExecFrameError::Resize(e.to_string())),
        other => Err(ExecFrameError::UnknownChannel(other)),
    }
}

/// The bytes of a frame on `channel` carrying `data`.
pub fn encode_exec_frame(channel: u8, data: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(data.len() + 1);
    bytes.push(channel);
    bytes.extend_from_slice(data);
    bytes
}

/// First frame of a logs WebSocket.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LogsStart {
    #[serde(default)]
    pub lines: Option<usize>,
    #[serde(default)]
    pub follow: bool,
    /// Only this process's lines, when set.
    #[serde(default)]
    pub process: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exec_status_round_trips_exit_codes() {
        for code in [0, 1, 3, 130] {
            let status = ExecStatus::from_exit_code(code);
            let json = serde_json::to_string(&status).unwrap();
            let back: ExecStatus = serde_json::from_str(&json).unwrap();
            assert_eq!(back.exit_code(), code);
        }
        let json = serde_json::to_value(ExecStatus::from_exit_code(3)).unwrap();
        assert_eq!(json["details"]["causes"][0]["message"], "3");
        assert_eq!(json["reason"], "NonZeroExitCode");
    }

    #[test]
    fn pod_uses_type_key() {
        let pod = Pod {
            name: "a-web-x-y".into(),
            release: "v2".into(),
            ptype: "web".into(),
            state: "up".into(),
            started: "2023-12-08T02:25:00Z".into(),
            ready: "1/1".into(),
            restarts: 0,
            cpu_millis: None,
            memory_bytes: None,
        };
        let json = serde_json::to_value(&pod).unwrap();
        assert_eq!(json["type"], "web");
        assert!(
            json.get("cpu_millis").is_none(),
            "left out unless asked for"
        );
    }

    #[test]
    fn exec_frames_decode_by_channel() {
        assert_eq!(decode_exec_frame(&[]), Err(ExecFrameError::Empty));
        assert_eq!(decode_exec_frame(&[0]), Ok(ExecFrame::Stdin(b"")));
        assert_eq!(
            decode_exec_frame(&encode_exec_frame(channel::STDOUT, b"hi")),
            Ok(ExecFrame::Stdout(b"hi"))
        );
        assert_eq!(
            decode_exec_frame(b"\x04{\"Width\":80,\"Height\":24}"),
            Ok(ExecFrame::Resize(TerminalSize {
                width: 80,
                height: 24
            }))
        );
        assert!(matches!(
            decode_exec_frame(b"\x04{\"Width\":-1,\"Height\":24}"),
            Err(ExecFrameError::Resize(_))
        ));
        assert!(matches!(
            decode_exec_frame(b"\x03nope"),
            Err(ExecFrameError::Status(_))
        ));
        assert_eq!(
            decode_exec_frame(&[9, 1]),
            Err(ExecFrameError::UnknownChannel(9))
        );
    }

    #[test]
    fn numbers_in_bodies_survive_a_round_trip() {
        // Found by the json_bodies fuzz target: without exact float
        // parsing, this number read back one unit in the last place off.
        let body = br#"{"values": {"BIG": 1111111111111110111111111111111111}}"#;
        let update: ConfigUpdate = serde_json::from_slice(body).unwrap();
        let again: ConfigUpdate =
            serde_json::from_slice(&serde_json::to_vec(&update).unwrap()).unwrap();
        assert_eq!(again, update);
    }
}
