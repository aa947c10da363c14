//! Controller settings: every flag has an environment variable twin.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Clone, Debug, Parser)]
#[command(
    name = "drycc-controller",
    version,
    about = "The Drycc platform controller: REST API, state, reconciler, git receiver and router in one process"
)]
pub struct Cli {
    #[command(flatten)]
    pub settings: Settings,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Clone, Debug, Subcommand)]
pub enum Command {
    /// Run as git's pre-receive hook (installed in every app repository).
    #[command(hide = true)]
    GitHook,
    /// Stop every app process (SIGTERM, grace period, SIGKILL) while the
    /// controller is not running. A controller that stops leaves apps
    /// running, so that upgrading the platform never restarts them.
    StopApps,
    /// Run only the HTTP router, following the routing table of the
    /// controller at `DRYCC_CONTROLLER_URL`; it keeps serving its last
    /// table while the controller is down or restarting.
    Router,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum EngineKind {
    /// Source apps natively; images on the Docker engine when there is one.
    Local,
    /// Source apps in containers of the slug image too (`DRYCC_SLUG_IMAGE`).
    Docker,
    Kubernetes,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum RegistrationMode {
    Enabled,
    #[value(name = "admin_only", alias = "admin-only")]
    AdminOnly,
    Disabled,
}

#[derive(Clone, Debug, clap::Args)]
pub struct Settings {
    /// REST API and git endpoint.
    #[arg(long, env = "DRYCC_LISTEN", default_value = "127.0.0.1:8000")]
    pub listen: SocketAddr,
    /// The HTTP router (`off` disables it).
    #[arg(long, env = "DRYCC_ROUTER_LISTEN", default_value = "127.0.0.1:8080")]
    pub router_listen: String,
    /// The router's TLS listener (`off` disables it): the hosts of domains
    /// with an attached certificate (`drycc certs:attach`), chosen by SNI.
    #[arg(long, env = "DRYCC_ROUTER_TLS_LISTEN", default_value = "off")]
    pub router_tls_listen: String,
    /// Seconds a client may take to send a request's headers to the router.
    #[arg(long, env = "DRYCC_ROUTER_HEADER_TIMEOUT", default_value_t = 30.0)]
    pub router_header_timeout: f64,
    /// Largest request head the router reads, in KiB (431 beyond; at least 8).
    #[arg(long, env = "DRYCC_ROUTER_MAX_HEADER_KIB", default_value_t = 64)]
    pub router_max_header_kib: usize,
    /// One log line per request through the router (`on` or `off`), at info
    /// level under the target `drycc_router::access`.
    #[arg(long, env = "DRYCC_ROUTER_ACCESS_LOG", default_value = "off", value_parser = ["on", "off"])]
    pub router_access_log: String,
    /// The secret a standalone router presents to the controller (default:
    /// `router.secret` in the data dir, created on first use).
    #[arg(long, env = "DRYCC_ROUTER_SECRET", hide_env_values = true)]
    pub router_secret: Option<String>,
    /// The controller a standalone router (`drycc-controller router`) follows.
    #[arg(
        long,
        env = "DRYCC_CONTROLLER_URL",
        default_value = "http://127.0.0.1:8000"
    )]
    pub controller_url: String,
    /// Apps answer on `<app>.<domain>`.
    #[arg(long, env = "DRYCC_DOMAIN", default_value = "localhost")]
    pub domain: String,
    /// SQLite file, checkouts, logs, runtime state (default:
    /// `$XDG_DATA_HOME/drycc`, else `~/.local/share/drycc`; for root
    /// `/var/lib/drycc` unless `~/.local/share/drycc` exists).
    #[arg(long, env = "DRYCC_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Pid files of running processes (default: on tmpfs, one directory per
    /// data dir, since a file is written and removed for every process).
    #[arg(long, env = "DRYCC_RUN_DIR")]
    pub run_dir: Option<PathBuf>,
    /// `postgres://...` for PostgreSQL; SQLite in the data dir by default.
    #[arg(long, env = "DRYCC_DATABASE_URL")]
    pub database_url: Option<String>,
    #[arg(long, env = "DRYCC_ENGINE", value_enum, default_value = "local")]
    pub engine: EngineKind,
    /// The Docker daemon that runs image and Dockerfile apps: a
    /// `unix://` or `tcp://` address, or `off`. Default: `DOCKER_HOST`,
    /// else `/var/run/docker.sock` when it exists.
    #[arg(long, env = "DRYCC_DOCKER_HOST")]
    pub docker_host: Option<String>,
    /// The image source apps run in with `DRYCC_ENGINE=docker` (their
    /// slug mounted at /app); it must have `/bin/sh` and the runtimes the
    /// apps need.
    #[arg(long, env = "DRYCC_SLUG_IMAGE")]
    pub slug_image: Option<String>,
    /// The registry (`host[:port][/prefix]`) where images built here are
    /// pushed for `DRYCC_ENGINE=kubernetes`, whose nodes pull them from
    /// it: source apps' slugs (on `DRYCC_SLUG_IMAGE`) and Dockerfile builds.
    #[arg(long, env = "DRYCC_REGISTRY")]
    pub registry: Option<String>,
    /// Node labels every app pod requires with `DRYCC_ENGINE=kubernetes`
    /// (its `nodeSelector`): `key=value[,key=value...]`; empty: any node.
    #[arg(long, env = "DRYCC_KUBE_NODE_SELECTOR", default_value = "", value_parser = parse_node_selector)]
    pub kube_node_selector: NodeSelector,
    /// Taint keys every app pod tolerates with `DRYCC_ENGINE=kubernetes`
    /// (whatever the value and effect): `key[,key...]`; empty: none.
    #[arg(long, env = "DRYCC_KUBE_TOLERATIONS", default_value = "", value_parser = parse_tolerations)]
    pub kube_tolerations: Tolerations,
    #[arg(
        long,
        env = "DRYCC_REGISTRATION_MODE",
        value_enum,
        default_value = "enabled"
    )]
    pub registration_mode: RegistrationMode,
    /// Seconds an API token is accepted after login (default 30 days).
    #[arg(long, env = "DRYCC_TOKEN_TTL", default_value_t = 30 * 86_400, value_parser = clap::value_parser!(u64).range(1..=10 * 365 * 86_400))]
    pub token_ttl: u64,
    /// Failed logins of one username within a window before further
    /// attempts are refused (429) until the window has passed.
    #[arg(long, env = "DRYCC_LOGIN_MAX_FAILURES", default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    pub login_max_failures: u32,
    /// Failed logins from one client address within a window (any
    /// usernames) before its attempts are refused.
    #[arg(long, env = "DRYCC_LOGIN_MAX_FAILURES_PER_ADDRESS", default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..))]
    pub login_max_failures_per_address: u32,
    /// Seconds of the failed-login window (later lockouts last 2, 4, ...
    /// up to 64 windows).
    #[arg(long, env = "DRYCC_LOGIN_WINDOW", default_value_t = 60.0)]
    pub login_window: f64,
    /// The user ids given to apps (`first-last`): each app's processes
    /// run as a uid and gid of its own from this range when the controller
    /// runs as root. No account needs to exist for them.
    #[arg(long, env = "DRYCC_APP_UID_RANGE", default_value = "200000-299999", value_parser = crate::isolation::parse_uid_range)]
    pub app_uid_range: std::ops::RangeInclusive<u32>,
    /// Largest API request body, in KiB (413 beyond).
    #[arg(long, env = "DRYCC_MAX_BODY_KIB", default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..=1024 * 1024))]
    pub max_body_kib: u32,
    /// Largest request line and headers of an API request, in KiB (431
    /// beyond).
    #[arg(long, env = "DRYCC_MAX_HEADER_KIB", default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub max_header_kib: u32,
    /// Largest WebSocket message a client may send to exec or a log
    /// follower, in KiB (the socket is closed with 1009 beyond).
    #[arg(long, env = "DRYCC_MAX_WS_MESSAGE_KIB", default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=64 * 1024))]
    pub max_ws_message_kib: u32,
    /// Exec sessions one user may have open at once (429 beyond).
    #[arg(long, env = "DRYCC_MAX_EXEC_SESSIONS_PER_USER", default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_exec_sessions_per_user: u32,
    /// Pushes to one app at once (429 beyond).
    #[arg(long, env = "DRYCC_MAX_PUSHES_PER_APP", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_pushes_per_app: u32,
    /// Largest Procfile, in KiB.
    #[arg(long, env = "DRYCC_MAX_PROCFILE_KIB", default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=64 * 1024))]
    pub max_procfile_kib: u32,
    /// Most lines of a Procfile.
    #[arg(long, env = "DRYCC_MAX_PROCFILE_LINES", default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_procfile_lines: u32,
    /// Apps one user may own (409 beyond); administrators are not bound.
    #[arg(long, env = "DRYCC_MAX_APPS_PER_USER", default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_apps_per_user: u32,
    /// Longest line of process output kept as one log line, in KiB; longer
    /// lines are cut into lines of this length.
    #[arg(long, env = "DRYCC_MAX_LOG_LINE_KIB", default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub max_log_line_kib: u32,
    /// Upper bound of one scale value.
    #[arg(long, env = "DRYCC_MAX_PROCESSES_PER_TYPE", default_value_t = 100)]
    pub max_processes_per_type: u32,
    /// Seconds a rollout may take to become ready.
    #[arg(long, env = "DRYCC_DEPLOY_TIMEOUT", default_value_t = 120)]
    pub deploy_timeout: u64,
    /// Seconds between SIGTERM and SIGKILL, unless the type has its own.
    #[arg(long, env = "DRYCC_TERMINATION_GRACE_PERIOD", default_value_t = 30)]
    pub termination_grace_period: u64,
    /// Seconds between two passes of the autoscaler.
    #[arg(long, env = "DRYCC_AUTOSCALE_SYNC_PERIOD", default_value_t = 15.0)]
    pub autoscale_sync_period: f64,
    /// Seconds since the last rescale before a type may scale up again.
    #[arg(long, env = "DRYCC_AUTOSCALE_UP_WINDOW", default_value_t = 180.0)]
    pub autoscale_up_window: f64,
    /// Seconds since the last rescale before a type may scale down.
    #[arg(long, env = "DRYCC_AUTOSCALE_DOWN_WINDOW", default_value_t = 300.0)]
    pub autoscale_down_window: f64,
    /// How far utilisation may stray from the target without a rescale.
    #[arg(long, env = "DRYCC_AUTOSCALE_TOLERANCE", default_value_t = 0.1)]
    pub autoscale_tolerance: f64,
    /// First crash back-off in seconds (doubles up to 300 s).
    #[arg(long, env = "DRYCC_CRASH_BACKOFF", default_value_t = 10.0)]
    pub crash_backoff: f64,
    /// Where process output goes (default: `logs` in the data dir). A tmpfs
    /// makes a mass scale-up faster (no file creation on disk) at the cost
    /// of memory.
    #[arg(long, env = "DRYCC_LOG_DIR")]
    pub log_dir: Option<PathBuf>,
    /// Output kept per process, in KiB (older output is cut off).
    #[arg(long, env = "DRYCC_LOG_KIB_PER_PROCESS", default_value_t = 4096)]
    pub log_kib_per_process: u64,
    /// Where the built-in buildpacks are written at start (default:
    /// `buildpacks` in the data dir).
    #[arg(long, env = "DRYCC_BUILDPACKS_DIR")]
    pub buildpacks_dir: Option<PathBuf>,
    /// Slugs kept per app: those of the newest builds, plus the one the
    /// app runs; older ones are removed after each build.
    #[arg(long, env = "DRYCC_SLUGS_KEEP", default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    pub slugs_keep: u32,
    /// The `coordination.k8s.io` Lease (`<namespace>/<name>`) that replicas
    /// sharing one database elect their leader with: only the leader runs
    /// the reconciler and the autoscaler. Unset, this controller is always
    /// the leader.
    #[arg(long, env = "DRYCC_LEADER_LEASE")]
    pub leader_lease: Option<String>,
    /// Seconds a leader's lease lasts without renewal (renewed every third
    /// of it); a stopped leader's place is taken at most this long after.
    #[arg(long, env = "DRYCC_LEADER_LEASE_SECONDS", default_value_t = 15, value_parser = clap::value_parser!(u32).range(3..=3600))]
    pub leader_lease_seconds: u32,
    /// This controller's Pod, labelled `drycc.cc/leader=true` while it
    /// leads (with `DRYCC_POD_NAMESPACE`); also the start of its identity.
    #[arg(long, env = "DRYCC_POD_NAME")]
    pub pod_name: Option<String>,
    #[arg(long, env = "DRYCC_POD_NAMESPACE")]
    pub pod_namespace: Option<String>,
}

/// `DRYCC_KUBE_NODE_SELECTOR`: node labels by key.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeSelector(pub std::collections::BTreeMap<String, String>);

/// `DRYCC_KUBE_TOLERATIONS`: taint keys.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tolerations(pub Vec<String>);

/// A label or taint key as Kubernetes takes it: an optional DNS prefix
/// and `/`, then a name of up to 63 letters, digits, `-`, `_` and `.`,
/// starting and ending alphanumeric.
fn check_key(key: &str) -> Result<(), String> {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    let prefix_ok = prefix.is_none_or(|p| {
        !p.is_empty()
            && p.len() <= 253
            && p.split('.').all(|part| {
                !part.is_empty()
                    && part
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            })
    });
    if !prefix_ok || !label_value_ok(name) || name.is_empty() {
        return Err(format!(
            "{key:?} is not a label key: [prefix/]name, the prefix a DNS name, the name 1-63 letters, digits, '-', '_' or '.' starting and ending with a letter or digit"
        ));
    }
    Ok(())
}

/// A label value: empty, or up to 63 letters, digits, `-`, `_` and `.`,
/// starting and ending alphanumeric.
fn label_value_ok(value: &str) -> bool {
    let bytes = value.as_bytes();
    value.len() <= 63
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && bytes.first().is_none_or(u8::is_ascii_alphanumeric)
        && bytes.last().is_none_or(u8::is_ascii_alphanumeric)
}

/// `key=value[,key=value...]`, empty for none.
pub fn parse_node_selector(text: &str) -> Result<NodeSelector, String> {
    let mut labels = std::collections::BTreeMap::new();
    for pair in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').ok_or_else(|| {
            format!("{pair:?} is not key=value (e.g. drycc.cc/pool=apps,disk=ssd)")
        })?;
        let (key, value) = (key.trim(), value.trim());
        check_key(key)?;
        if !label_value_ok(value) {
            return Err(format!(
                "{value:?} (of {key}) is not a label value: up to 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit"
            ));
        }
        if labels.insert(key.to_string(), value.to_string()).is_some() {
            return Err(format!("{key} is given twice"));
        }
    }
    Ok(NodeSelector(labels))
}

/// `key[,key...]`, empty for none.
pub fn parse_tolerations(text: &str) -> Result<Tolerations, String> {
    let mut keys = Vec::new();
    for key in text.split(',').map(str::trim).filter(|k| !k.is_empty()) {
        check_key(key)?;
        if !keys.iter().any(|k| k == key) {
            keys.push(key.to_string());
        }
    }
    Ok(Tolerations(keys))
}

/// The data directory of a root controller unless configured.
pub const ROOT_DATA_DIR: &str = "/var/lib/drycc";

impl Settings {
    pub fn data_dir(&self) -> PathBuf {
        if let Some(dir) = &self.data_dir {
            return dir.clone();
        }
        if let Some(xdg) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
            return PathBuf::from(xdg).join("drycc");
        }
        let home = std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("."));
        let in_home = home.join(".local/share/drycc");
        // A root controller runs apps as users of their own, who must reach
        // their checkouts in the data directory: root's home (0700) would
        // shut them out. An existing one is kept (and refused at start
        // with a message that says why).
        if nix::unistd::geteuid().is_root() && !in_home.exists() {
            return PathBuf::from(ROOT_DATA_DIR);
        }
        in_home
    }

    pub fn run_dir(&self) -> PathBuf {
        if let Some(dir) = &self.run_dir {
            return dir.clone();
        }
        let uid = nix::unistd::getuid().as_raw();
        drycc_engine_local::default_run_dir(uid).join(self.instance())
    }

    /// Where the Docker daemon is, if this controller should use one.
    pub fn docker_host(&self) -> Option<String> {
        match self.docker_host.as_deref().map(str::trim) {
            Some("off") => None,
            Some(host) if !host.is_empty() => Some(host.to_string()),
            _ => match std::env::var("DOCKER_HOST") {
                Ok(host) if !host.trim().is_empty() => Some(host.trim().to_string()),
                _ => std::path::Path::new("/var/run/docker.sock")
                    .exists()
                    .then(|| "unix:///var/run/docker.sock".to_string()),
            },
        }
    }

    /// A short name of this controller's data dir, which tells apart
    /// controllers of one machine (run dirs, control groups).
    pub fn instance(&self) -> String {
        use sha2::Digest;
        let data_dir = self.data_dir();
        let digest = sha2::Sha256::digest(data_dir.as_os_str().as_encoded_bytes());
        hex::encode(&digest[..8])
    }

    pub fn database_url(&self) -> String {
        match &self.database_url {
            Some(url) if !url.is_empty() => url.clone(),
            _ => format!(
                "sqlite://{}?mode=rwc",
                self.data_dir().join("drycc.db").display()
            ),
        }
    }

    /// The autoscaler's sync period and policy.
    pub fn autoscale(&self) -> (Duration, drycc_model::autoscale::Policy) {
        let seconds = |s: f64| Duration::from_secs_f64(s.clamp(0.0, 86_400.0));
        (
            seconds(self.autoscale_sync_period).max(Duration::from_millis(100)),
            drycc_model::autoscale::Policy {
                tolerance: self.autoscale_tolerance.clamp(0.0, 1.0),
                up_window: seconds(self.autoscale_up_window),
                down_window: seconds(self.autoscale_down_window),
            },
        )
    }

    pub fn token_ttl(&self) -> chrono::Duration {
        chrono::Duration::seconds(i64::try_from(self.token_ttl).unwrap_or(i64::MAX / 1000))
    }

    pub fn login_window(&self) -> Duration {
        Duration::from_secs_f64(self.login_window.clamp(0.001, 86_400.0))
    }

    pub fn deploy_timeout(&self) -> Duration {
        Duration::from_secs(self.deploy_timeout)
    }

    /// The leader election's Lease as (namespace, name), `None` when off;
    /// an error names what is wrong with the setting.
    pub fn leader_lease(&self) -> Result<Option<(String, String)>, String> {
        let Some(lease) = self.leader_lease.as_deref().map(str::trim) else {
            return Ok(None);
        };
        if lease.is_empty() || lease.eq_ignore_ascii_case("off") {
            return Ok(None);
        }
        let valid = |s: &str| {
            !s.is_empty()
                && s.len() <= 63
                && s.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
                && !s.starts_with(['-', '.'])
                && !s.ends_with(['-', '.'])
        };
        match lease.split_once('/') {
            Some((namespace, name)) if valid(namespace) && valid(name) => {
                Ok(Some((namespace.to_string(), name.to_string())))
            }
            _ => Err(format!(
                "DRYCC_LEADER_LEASE={lease:?} is not <namespace>/<name> (lowercase letters, digits, '-' and '.'), e.g. drycc/drycc-controller"
            )),
        }
    }

    pub fn default_grace(&self) -> Duration {
        Duration::from_secs(self.termination_grace_period)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(lease: Option<&str>) -> Settings {
        let mut settings = Cli::parse_from(["drycc-controller"]).settings;
        settings.leader_lease = lease.map(str::to_string);
        settings
    }

    #[test]
    fn the_leader_lease_is_a_namespace_and_a_name() {
        assert_eq!(settings(None).leader_lease(), Ok(None));
        assert_eq!(settings(Some("")).leader_lease(), Ok(None));
        assert_eq!(settings(Some("off")).leader_lease(), Ok(None));
        assert_eq!(
            settings(Some("drycc/drycc-controller")).leader_lease(),
            Ok(Some(("drycc".into(), "drycc-controller".into())))
        );
        for bad in [
            "drycc", "/name", "drycc/", "Drycc/x", "a/b/c", "a/-b", "a/b_c",
        ] {
            let error = settings(Some(bad)).leader_lease().unwrap_err();
            assert!(error.contains("<namespace>/<name>"), "{bad}: {error}");
        }
    }

    #[test]
    fn node_selectors_and_tolerations_are_label_keys() {
        let parsed = parse_node_selector("drycc.cc/testbed-node=real, disk=ssd").unwrap();
        assert_eq!(
            parsed.0.into_iter().collect::<Vec<_>>(),
            vec![
                ("disk".to_string(), "ssd".to_string()),
                ("drycc.cc/testbed-node".to_string(), "real".to_string())
            ]
        );
        assert_eq!(parse_node_selector("").unwrap(), NodeSelector::default());
        assert_eq!(
            parse_tolerations("drycc.cc/real-node,gpu,gpu").unwrap().0,
            vec!["drycc.cc/real-node".to_string(), "gpu".to_string()]
        );
        for bad in ["disk", "=ssd", "disk=-x", "Bad_/x=1", "a=1,a=2", "a b=1"] {
            assert!(parse_node_selector(bad).is_err(), "{bad}");
        }
        for bad in ["-gpu", "a/b/c=", "x/"] {
            assert!(parse_tolerations(bad).is_err(), "{bad}");
        }
        let cli = Cli::parse_from([
            "drycc-controller",
            "--kube-node-selector",
            "pool=apps",
            "--kube-tolerations",
            "dedicated",
        ]);
        assert_eq!(
            cli.settings.kube_tolerations.0,
            vec!["dedicated".to_string()]
        );
        assert_eq!(cli.settings.kube_node_selector.0.len(), 1);
    }
}
