//! The engine interface: how the reconciler asks for processes to exist.
//!
//! The interface is declarative, in Kubernetes' style: "for app A, process
//! type T, keep R replicas of this template". The engine owns the deployment
//! behaviour behind that sentence (rolling replacement when the template
//! changes, crash back-off, graceful termination), and exposes single-process
//! operations (restart, exec, logs) plus a way to observe state.
//!
//! This crate holds the interface only, with no OS, container or cluster
//! dependency: each engine lives in a crate of its own (`engine-local`,
//! `engine-docker`) and the controller only sees the types defined here.
//! What a process runs is an [`Artifact`] (a checkout on the engine's host,
//! or an image), where it can be reached is an endpoint, and platform
//! events are the controller's: an engine only reports its processes.

// Input from users, files and the network must never panic the program.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

use std::collections::BTreeMap;
use std::error::Error as StdError;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use tokio::sync::{broadcast, mpsc, watch};
use tokio_stream::Stream;

pub use drycc_model::state::ProcessState;

/// Environment variables, sorted so templates compare and hash stably.
pub type Env = BTreeMap<String, String>;

/// A health probe, the subset of Kubernetes' probe that the engines honour.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Probe {
    pub action: ProbeAction,
    pub initial_delay: Duration,
    pub period: Duration,
    pub timeout: Duration,
    pub failure_threshold: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ProbeAction {
    /// TCP connect; `None` means the process's own `PORT`.
    Tcp { port: Option<u16> },
    /// HTTP GET answering 2xx/3xx; `None` port means the process's own `PORT`.
    Http { path: String, port: Option<u16> },
    /// Command run in the process's environment; exit 0 passes.
    Exec { command: Vec<String> },
}

/// What a process runs.
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Artifact {
    /// A build's checkout (an unpacked slug) in a directory of the engine's
    /// host; processes run with it as working directory.
    Checkout { path: PathBuf },
    /// A container image.
    Image(ImageSpec),
}

/// A container image and the parts of its config the engine needs.
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct ImageSpec {
    /// A pullable reference with a tag or digest (`registry/repo:tag`).
    pub reference: String,
    /// The image's ENTRYPOINT: kept when a Procfile command replaces CMD,
    /// as Kubernetes' `args` do.
    pub entrypoint: Vec<String>,
    /// The port the process listens on inside its container, given to it
    /// as `PORT`; the engine publishes it where the router can reach it.
    pub port: u16,
    /// For a private registry. Never serialised: an engine that records
    /// templates (container labels) must not write a password down.
    #[serde(skip)]
    pub credentials: Option<RegistryCredentials>,
}

/// The login of a private image registry.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct RegistryCredentials {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for RegistryCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryCredentials")
            .field("username", &self.username)
            .field("password", &"********")
            .finish()
    }
}

/// What a process executes, independent of how an engine launches it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Command {
    /// A Procfile line. Native engines run it with a shell, as do container
    /// engines for a checkout; for an image they split it into words,
    /// expand `$VAR` and `${VAR}` from the process environment and pass the
    /// words as arguments after the image's entrypoint.
    Line(String),
    /// Exact arguments after the entrypoint (an image's own CMD).
    Args(Vec<String>),
}

impl Command {
    /// The command as shown to users (`ps`, `describe`).
    pub fn display(&self) -> String {
        match self {
            Command::Line(line) => line.clone(),
            Command::Args(args) => args.join(" "),
        }
    }
}

/// Everything needed to start one process of one type of one release.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ProcessTemplate {
    pub app: String,
    pub ptype: String,
    /// Release version N (shown as `vN`).
    pub release: u32,
    /// Stable hash of the template (see `drycc_model::naming`); it is part of
    /// every process name and changes with every release or restart of the type.
    pub hash: String,
    pub artifact: Artifact,
    pub command: Command,
    /// The release environment. The engine adds `PORT` and `HOSTNAME` itself.
    pub env: Env,
    /// Time between SIGTERM and SIGKILL.
    pub grace_period: Duration,
    /// `None`: a `web` process is ready when its PORT accepts TCP; any other
    /// type is ready once started.
    pub readiness: Option<Probe>,
    pub liveness: Option<Probe>,
    /// CPU limit in millicores, memory limit in bytes.
    pub cpu_millis: Option<u64>,
    pub memory_bytes: Option<u64>,
    /// The user a native process runs as (its commands, probes and exec
    /// sessions too); `None`: the engine's own user. Container engines
    /// isolate by other means and ignore it. Defaulted so that templates
    /// recorded before it existed still read.
    #[serde(default)]
    pub user: Option<RunAs>,
}

/// An app's own unprivileged user: its processes get this uid and gid and
/// no supplementary groups, so they can neither read another app's files
/// nor signal another app's (or the platform's) processes. Plain numbers:
/// no account needs to exist in `/etc/passwd`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct RunAs {
    pub uid: u32,
    pub gid: u32,
}

/// Desired state of one process type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Deployment {
    pub template: ProcessTemplate,
    pub replicas: u32,
}

/// Observed state of one process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcessStatus {
    pub name: String,
    pub app: String,
    pub ptype: String,
    pub release: u32,
    pub hash: String,
    pub state: ProcessState,
    /// When the current incarnation started (or the process was created).
    pub started: DateTime<Utc>,
    pub ready: bool,
    pub restarts: u32,
    /// The host's id of the process's main program, when one runs now
    /// and the engine can see it (`describe` only; nothing depends on it).
    pub pid: Option<u32>,
    /// Where the router can reach it, once it has an address.
    pub endpoint: Option<SocketAddr>,
    /// Last exit code or reason, for `describe` and failed rollouts.
    pub last_exit: Option<String>,
    pub command: String,
    /// What the engine started: the program's path, then its arguments
    /// (`/bin/sh`, `-c`, the command when it runs under a shell). Empty
    /// until the process first started.
    pub argv: Vec<String>,
    pub image: Option<String>,
}

/// What one process uses now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcessUsage {
    pub name: String,
    pub ptype: String,
    pub ready: bool,
    /// CPU in millicores since the previous reading; `None` at the first.
    pub cpu_millis: Option<u64>,
    pub memory_bytes: Option<u64>,
}

/// One line of process output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogLine {
    pub time: DateTime<Utc>,
    pub app: String,
    /// Process name, or `controller` for platform events.
    pub source: String,
    pub text: String,
}

/// What a log follower receives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Followed {
    Line(LogLine),
    /// Lines missed because the follower fell behind.
    Skipped(u64),
}

pub type LogStream = Pin<Box<dyn Stream<Item = Followed> + Send>>;

/// A log stream over a broadcast channel, for engines that fan lines out
/// that way.
pub fn follow_broadcast(receiver: broadcast::Receiver<LogLine>) -> LogStream {
    use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
    use tokio_stream::StreamExt;
    Box::pin(
        tokio_stream::wrappers::BroadcastStream::new(receiver).map(|item| match item {
            Ok(line) => Followed::Line(line),
            Err(BroadcastStreamRecvError::Lagged(skipped)) => Followed::Skipped(skipped),
        }),
    )
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExecRequest {
    pub command: Vec<String>,
    pub tty: bool,
    pub stdin: bool,
    /// Initial terminal size (columns, rows), when `tty`.
    pub size: Option<(u16, u16)>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExecInput {
    Stdin(Bytes),
    /// End of stdin.
    Eof,
    Resize {
        width: u16,
        height: u16,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExecOutput {
    Stdout(Bytes),
    Stderr(Bytes),
    /// The command finished; always the last message.
    Exit(i32),
}

/// A running exec: send input, receive output until `ExecOutput::Exit`.
pub struct ExecSession {
    pub input: mpsc::Sender<ExecInput>,
    pub output: mpsc::Receiver<ExecOutput>,
}

/// What an engine can do, for the controller to choose an engine and to
/// tell users what holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Capabilities {
    /// Runs [`Artifact::Checkout`].
    pub checkouts: bool,
    /// Runs [`Artifact::Image`].
    pub images: bool,
    /// Whether CPU and memory limits are enforced, and why not.
    pub limits: std::result::Result<(), String>,
    /// Whether the engine scales types by CPU itself ([`Engine::autoscale`],
    /// a HorizontalPodAutoscaler on Kubernetes); otherwise the controller's
    /// own autoscaler samples [`Engine::usage`] and rescales.
    pub autoscaler: bool,
}

/// A type's autoscale rule as the engine's own autoscaler applies it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AutoscaleSpec {
    pub min: u32,
    pub max: u32,
    /// Target CPU utilisation in percent of the CPU request.
    pub cpu_percent: u32,
    /// Stabilisation windows: the highest (up) or lowest (down)
    /// recommendation over the window is used.
    pub up_window: Duration,
    pub down_window: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("process {0} not found")]
    ProcessNotFound(String),
    /// The engine (or what it drives: a Docker daemon, a cluster) cannot
    /// act now; retrying later may succeed.
    #[error("engine unavailable: {what}")]
    Unavailable {
        what: String,
        #[source]
        source: Option<Box<dyn StdError + Send + Sync>>,
    },
    /// The request can never succeed as given (a user's error).
    #[error("{0}")]
    Invalid(String),
    /// The engine does not run this kind of artifact or operation.
    #[error("{0}")]
    Unsupported(String),
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

impl EngineError {
    pub fn unavailable(what: impl Into<String>) -> EngineError {
        EngineError::Unavailable {
            what: what.into(),
            source: None,
        }
    }

    /// The message with every cause after it (`what: cause: cause`), for
    /// the edge that shows it to a user.
    pub fn detail(&self) -> String {
        let mut text = self.to_string();
        let mut cause = self.source();
        while let Some(error) = cause {
            text.push_str(": ");
            text.push_str(&error.to_string());
            cause = error.source();
        }
        text
    }

    pub fn unavailable_because(
        what: impl Into<String>,
        source: impl StdError + Send + Sync + 'static,
    ) -> EngineError {
        EngineError::Unavailable {
            what: what.into(),
            source: Some(Box::new(source)),
        }
    }
}

pub type Result<T, E = EngineError> = std::result::Result<T, E>;

#[async_trait]
pub trait Engine: Send + Sync + 'static {
    /// Declare the desired state of one type. Returns at once; the engine
    /// converges in the background. A changed template rolls: start one new
    /// process, wait until it is ready, then terminate one old process
    /// (max surge 1, max unavailable 0). Scale-down victims: not-ready first,
    /// then newest. Terminating = SIGTERM to the group, SIGKILL after grace.
    async fn apply(&self, deployment: Deployment) -> Result<()>;

    /// Stop every process of one type (graceful) and forget the type.
    async fn remove_type(&self, app: &str, ptype: &str) -> Result<()>;

    /// Stop every process of the app (graceful) and forget it.
    async fn remove_app(&self, app: &str) -> Result<()>;

    /// Every process of the app that exists now, sorted by type then name.
    async fn processes(&self, app: &str) -> Result<Vec<ProcessStatus>>;

    /// Replace one process: start a new one (new name), then terminate the
    /// old one once the new one is ready.
    async fn restart_process(&self, app: &str, name: &str) -> Result<()>;

    /// Run a command in the environment of one process.
    async fn exec(&self, app: &str, name: &str, request: ExecRequest) -> Result<ExecSession>;

    /// The last `lines` output lines of the app's processes (or of one
    /// process), oldest first, read from the engine's own source.
    async fn logs(&self, app: &str, lines: usize, process: Option<&str>) -> Result<Vec<LogLine>>;

    /// New output lines of the app's processes as they arrive. A follower
    /// that falls behind gets `Followed::Skipped(n)` and must say so to its
    /// reader. The stream ends when the engine closes.
    fn follow_logs(&self, app: &str) -> LogStream;

    /// A counter bumped on every observable change of the app's processes
    /// (of any app with `None`), so that waiters can re-read `processes`
    /// instead of polling blindly.
    fn changes(&self, app: Option<&str>) -> watch::Receiver<u64>;

    /// CPU and memory of every process of the app. CPU is measured between
    /// two calls, so the first call gives none.
    async fn usage(&self, app: &str) -> Result<Vec<ProcessUsage>>;

    fn capabilities(&self) -> Capabilities;

    /// Hand the count of one type to the engine's own autoscaler (`Some`)
    /// or take it back (`None`, which is a no-op when there is no rule).
    /// Only engines whose capabilities say `autoscaler`.
    async fn autoscale(&self, app: &str, ptype: &str, rule: Option<AutoscaleSpec>) -> Result<()> {
        let _ = (app, ptype, rule);
        Err(EngineError::Unsupported(
            "this engine has no autoscaler of its own".to_string(),
        ))
    }

    /// The counts the engine's own autoscaler has set, by type, for the
    /// types it drives; the controller writes them back to the structure
    /// so that `ps`, `autoscale:list` and the next deploy agree.
    async fn autoscaled(&self, app: &str) -> Result<std::collections::BTreeMap<String, u32>> {
        let _ = app;
        Ok(Default::default())
    }

    /// Every app the engine has processes or desired state for, so that a
    /// restarted controller can remove what the store no longer wants.
    async fn apps(&self) -> Result<Vec<String>>;

    /// Release the engine without stopping workloads (controller shutdown):
    /// processes keep running and the next engine on the same state adopts
    /// them.
    async fn close(&self);

    /// Stop every process gracefully and forget it (`stop-apps`, tests).
    async fn stop_all(&self);
}

/// Whether the deployment is fully rolled out: exactly `replicas` ready
/// processes of the template's hash and nothing else of that type left.
pub fn is_converged(deployment: &Deployment, processes: &[ProcessStatus]) -> bool {
    let of_type: Vec<_> = processes
        .iter()
        .filter(|p| p.app == deployment.template.app && p.ptype == deployment.template.ptype)
        .collect();
    let current_ready = of_type
        .iter()
        .filter(|p| p.hash == deployment.template.hash && p.ready && p.state == ProcessState::Up)
        .count();
    current_ready == deployment.replicas as usize && of_type.len() == deployment.replicas as usize
}

/// Defaults of the local engine's probes and timings.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(30);
