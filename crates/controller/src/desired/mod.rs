//! Desired state, pure: a release and the app's structure as engine
//! deployments (what the reconciler applies), and the verdict on a
//! rollout from the processes that run ([`verdict`]). Nothing here reads
//! the store or calls the engine; whether a slug has `.profile.d` scripts
//! is looked up apart ([`has_profile`], off the async threads) and handed
//! in.

use std::collections::BTreeMap;
use std::time::Duration;

use drycc_engine::{Artifact, Command, Deployment, Probe, ProbeAction, ProcessTemplate};
use drycc_model::naming::template_hash_as;
use drycc_store::{App, Release};

use crate::context::{timestamp, Context, Paths};

pub mod verdict;

/// Whether the slug `release` runs has `.profile.d` scripts (Heroku's
/// convention: they set up the environment of each process, a
/// virtualenv's PATH, ...). One stat of a local directory.
pub async fn has_profile(paths: &Paths, app: &str, release: &Release) -> bool {
    let Some(build) = &release.build else {
        return false;
    };
    // An image runs its own way (`deployments` reads the record alike).
    let image = build
        .image_config
        .as_ref()
        .and_then(|v| serde_json::from_value::<ImageRecord>(v.clone()).ok());
    if image.is_some() {
        return false;
    }
    let dir = slug_dir(paths, app, build).join(drycc_buildpacks::slug::PROFILE_D);
    tokio::fs::metadata(dir)
        .await
        .is_ok_and(|meta| meta.is_dir())
}

/// The engine deployments of one release under the app's structure;
/// `profile`: its slug has `.profile.d` scripts ([`has_profile`]).
pub fn deployments(ctx: &Context, app: &App, release: &Release, profile: bool) -> Vec<Deployment> {
    let Some(build) = &release.build else {
        return Vec::new();
    };
    let user = ctx.run_as(app);
    if ctx.isolation && user.is_none() {
        // Every app gets its user at creation or at start; never run one
        // as the controller's user instead.
        tracing::error!(app = %app.id, "The app has no user id of its own; its processes are not started.");
        return Vec::new();
    }
    let config = &release.config;
    let mut env: BTreeMap<String, String> = config.values.clone();
    env.insert("DRYCC_APP".into(), app.id.clone());
    env.insert("WORKFLOW_RELEASE".into(), format!("v{}", release.version));
    env.insert("WORKFLOW_RELEASE_SUMMARY".into(), release.summary.clone());
    env.insert(
        "WORKFLOW_RELEASE_CREATED_AT".into(),
        timestamp(&release.created),
    );
    if !build.sha.is_empty() {
        env.insert("SOURCE_VERSION".into(), build.sha.clone());
    }
    let image = build
        .image_config
        .as_ref()
        .and_then(|v| serde_json::from_value::<ImageRecord>(v.clone()).ok());
    let container_port = config
        .values
        .get("PORT")
        .and_then(|p| p.parse::<u16>().ok())
        .unwrap_or(CONTAINER_PORT);
    let (artifact, profile) = match &image {
        Some(record) => (
            Artifact::Image(drycc_engine::ImageSpec {
                reference: build.image.clone(),
                entrypoint: record.entrypoint.clone(),
                port: container_port,
                credentials: registry_login(&config.registry),
            }),
            record.slug,
        ),
        None => {
            let workdir = slug_dir(&ctx.paths, &app.id, build);
            (Artifact::Checkout { path: workdir }, profile)
        }
    };
    // Native processes run as the app's user; containers isolate by their
    // own means.
    let user = match artifact {
        Artifact::Checkout { .. } => user,
        Artifact::Image(_) => None,
    };
    build
        .procfile
        .iter()
        .map(|(ptype, command)| {
            let generation = app.restart_generations.get(ptype).copied().unwrap_or(0);
            let grace = config
                .termination_grace_period
                .get(ptype)
                .map(|secs| Duration::from_secs(*secs))
                .unwrap_or_else(|| ctx.settings.default_grace());
            let probes = config.healthcheck.get(ptype);
            let template = ProcessTemplate {
                app: app.id.clone(),
                ptype: ptype.clone(),
                release: release.version,
                hash: template_hash_as(
                    &app.id,
                    ptype,
                    release.version,
                    generation,
                    user.map(|u| u.uid),
                ),
                artifact: artifact.clone(),
                command: match &image {
                    // The image's own CMD, unless the Procfile names one.
                    Some(record) if record.web_is_cmd && ptype == "web" => {
                        Command::Args(record.cmd.clone())
                    }
                    // The slug image's entrypoint is `/bin/sh -c`.
                    Some(record) if record.slug => {
                        Command::Args(vec![drycc_buildpacks::slug::with_profile(command)])
                    }
                    _ if profile => Command::Line(drycc_buildpacks::slug::with_profile(command)),
                    _ => Command::Line(command.clone()),
                },
                env: env.clone(),
                grace_period: grace,
                readiness: probes
                    .and_then(|p| p.get("readinessProbe"))
                    .and_then(probe_from_json)
                    .map(|probe| native_port(probe, container_port)),
                liveness: probes
                    .and_then(|p| p.get("livenessProbe"))
                    .and_then(probe_from_json)
                    .map(|probe| native_port(probe, container_port)),
                cpu_millis: config
                    .cpu
                    .get(ptype)
                    .and_then(|v| drycc_model::limits::parse_cpu(v).ok())
                    .map(|q| q.limit),
                memory_bytes: config
                    .memory
                    .get(ptype)
                    .and_then(|v| drycc_model::limits::parse_memory(v).ok())
                    .map(|q| q.limit),
                user,
            };
            Deployment {
                template,
                replicas: app.structure.get(ptype).copied().unwrap_or(0),
            }
        })
        .collect()
}

/// The slug directory name of a build: its `image` for buildpack builds
/// (one slug per build), the commit for builds made before slugs had
/// names of their own.
pub fn slug_name(build: &drycc_store::Build) -> String {
    if build.image.is_empty() {
        build.sha.clone()
    } else {
        build.image.clone()
    }
}

/// Where the processes of a native build run.
pub fn slug_dir(paths: &Paths, app: &str, build: &drycc_store::Build) -> std::path::PathBuf {
    paths.slugs().join(app).join(slug_name(build))
}

/// The app's registry login, when both its parts are set.
pub fn registry_login(
    registry: &BTreeMap<String, String>,
) -> Option<drycc_engine::RegistryCredentials> {
    Some(drycc_engine::RegistryCredentials {
        username: registry.get("username")?.clone(),
        password: registry.get("password")?.clone(),
    })
}

/// What an image build runs, read from the image's config when the build
/// was made and kept with it (`builds.image_config`).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ImageRecord {
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    #[serde(default)]
    pub exposed_ports: Vec<u16>,
    #[serde(default)]
    pub working_dir: Option<String>,
    #[serde(default)]
    pub digest: Option<String>,
    /// `web` runs the image's CMD (no Procfile line for it).
    #[serde(default)]
    pub web_is_cmd: bool,
    /// A source app's slug made into an image (for engines that run only
    /// images): Procfile lines run under `/bin/sh -c` in the slug's
    /// directory, after its `.profile.d` scripts, as they do natively.
    #[serde(default)]
    pub slug: bool,
}

/// The port a container app listens on unless its config sets `PORT`.
pub const CONTAINER_PORT: u16 = 5000;

/// Native processes share the host network, so each listens on its own
/// `PORT` instead of the container port: a probe aimed at the container
/// port (`healthchecks:set readinessProbe httpGet 5000`) checks the
/// process's own `PORT`. Any other port is checked as given.
fn native_port(mut probe: Probe, container_port: u16) -> Probe {
    match &mut probe.action {
        ProbeAction::Tcp { port } | ProbeAction::Http { port, .. } => {
            if *port == Some(container_port) {
                *port = None;
            }
        }
        ProbeAction::Exec { .. } => {}
    }
    probe
}

/// A Kubernetes probe object (`{"tcpSocket": {"port": 5000}, "periodSeconds": 5}`)
/// as the engine's `Probe`; `None` for shapes the config validation refuses.
pub fn probe_from_json(value: &serde_json::Value) -> Option<Probe> {
    let seconds = |key: &str, default: u64| {
        Duration::from_secs(value.get(key).and_then(|v| v.as_u64()).unwrap_or(default))
    };
    let port = |action: &serde_json::Value| {
        action
            .get("port")
            .and_then(|p| p.as_u64())
            .and_then(|p| u16::try_from(p).ok())
    };
    let action = if let Some(http) = value.get("httpGet") {
        ProbeAction::Http {
            path: http
                .get("path")
                .and_then(|p| p.as_str())
                .unwrap_or("/")
                .to_string(),
            port: port(http),
        }
    } else if let Some(tcp) = value.get("tcpSocket") {
        ProbeAction::Tcp { port: port(tcp) }
    } else if let Some(exec) = value.get("exec") {
        let command = exec
            .get("command")?
            .as_array()?
            .iter()
            .map(|c| c.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()?;
        ProbeAction::Exec { command }
    } else {
        return None;
    };
    Some(Probe {
        action,
        initial_delay: seconds("initialDelaySeconds", 0),
        period: seconds("periodSeconds", 1),
        timeout: seconds("timeoutSeconds", 1),
        failure_threshold: value
            .get("failureThreshold")
            .and_then(|v| v.as_u64())
            .and_then(|v| u32::try_from(v).ok())
            .unwrap_or(3),
    })
}
