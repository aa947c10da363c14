//! What a process is as a container: its labels (everything a later engine
//! needs to rebuild its table), its create body (image, command,
//! environment, published ports, the checkout's mount, limits), the reading
//! of `inspect` back into a process, images, and the mapping of Docker's
//! errors onto `EngineError`.
//!
//! An image process runs its image with the entrypoint it was given and the
//! command as words; a checkout process runs the engine's slug image with
//! the checkout mounted at [`CHECKOUT_DIR`], no entrypoint, and a
//! `Command::Line` under `/bin/sh -c`, as a native process would.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use bollard::errors::Error as DockerError;
use bollard::models::{
    ContainerCreateBody, ContainerInspectResponse, ContainerState, ContainerStateStatusEnum,
    HostConfig, Mount, MountType, PortBinding,
};
use bollard::query_parameters::CreateImageOptionsBuilder;
use chrono::{DateTime, Utc};
use futures::StreamExt;

use crate::state::Shared;
use drycc_engine::{
    Artifact, Command, EngineError, Env, ProbeAction, ProcessTemplate, RegistryCredentials, Result,
};
use drycc_procfile::words;

/// Where a checkout is mounted in its container: the process's working
/// directory and `HOME`, as on Heroku.
pub(crate) const CHECKOUT_DIR: &str = "/app";

/// The container port a checkout's process listens on (its `PORT`).
pub(crate) const CHECKOUT_PORT: u16 = 5000;

pub(crate) const LABEL_HERITAGE: &str = "heritage";
pub(crate) const HERITAGE: &str = "drycc";
pub(crate) const LABEL_INSTANCE: &str = "drycc.instance";
pub(crate) const LABEL_APP: &str = "app";
pub(crate) const LABEL_TYPE: &str = "type";
pub(crate) const LABEL_VERSION: &str = "version";
pub(crate) const LABEL_HASH: &str = "hash";
/// The whole template as JSON: what the next engine rebuilds the process
/// from.
pub(crate) const LABEL_TEMPLATE: &str = "drycc.template";
/// Restarts the process had when its container was created (a container
/// created anew for a crashed process keeps counting).
pub(crate) const LABEL_RESTARTS: &str = "drycc.restarts";

/// The label filters of every query of this engine: its own containers
/// only, so that engines (and tests) sharing a daemon never see each other.
pub(crate) fn filters(instance: &str, app: Option<&str>) -> HashMap<String, Vec<String>> {
    let mut labels = vec![
        format!("{LABEL_HERITAGE}={HERITAGE}"),
        format!("{LABEL_INSTANCE}={instance}"),
    ];
    if let Some(app) = app {
        labels.push(format!("{LABEL_APP}={app}"));
    }
    HashMap::from([("label".to_string(), labels)])
}

/// The environment of a process: for a checkout `HOME` first (the release
/// may set another), then the release's values, then what the engine owns
/// (`PORT`, `HOSTNAME`), which always wins.
pub(crate) fn process_env(template: &ProcessTemplate, name: &str) -> Env {
    let mut env = Env::new();
    if checkout_of(template).is_some() {
        env.insert("HOME".to_string(), CHECKOUT_DIR.to_string());
    }
    env.extend(template.env.clone());
    env.insert("PORT".to_string(), port_of(template).to_string());
    env.insert("HOSTNAME".to_string(), name.to_string());
    env
}

/// The checkout directory of a template; `None` for an image.
pub(crate) fn checkout_of(template: &ProcessTemplate) -> Option<&Path> {
    match &template.artifact {
        Artifact::Checkout { path } => Some(path),
        Artifact::Image(_) => None,
    }
}

/// The container port the process listens on: its `PORT`.
pub(crate) fn port_of(template: &ProcessTemplate) -> u16 {
    match &template.artifact {
        Artifact::Image(spec) => spec.port,
        Artifact::Checkout { .. } => CHECKOUT_PORT,
    }
}

/// The image a process's container is made of: its own, or for a checkout
/// the engine's slug image (`None` when it has none).
pub(crate) fn image_ref<'a>(
    template: &'a ProcessTemplate,
    slug_image: Option<&'a str>,
) -> Option<&'a str> {
    match &template.artifact {
        Artifact::Image(spec) => Some(&spec.reference),
        Artifact::Checkout { .. } => slug_image,
    }
}

/// The container's entrypoint: an image's as given; none for a checkout,
/// whose command must not be wrapped by the slug image's.
fn entrypoint_of(template: &ProcessTemplate) -> Vec<String> {
    match &template.artifact {
        Artifact::Image(spec) => spec.entrypoint.clone(),
        Artifact::Checkout { .. } => Vec::new(),
    }
}

/// The arguments after the entrypoint. For an image a `Command::Line` is
/// split into words and expanded here; for a checkout it runs under
/// `/bin/sh -c` with the shell's whole syntax, as a native process does.
pub(crate) fn command_args(template: &ProcessTemplate, name: &str) -> Result<Vec<String>> {
    match (&template.command, &template.artifact) {
        (Command::Args(args), _) => Ok(args.clone()),
        (Command::Line(line), Artifact::Checkout { .. }) => {
            Ok(vec!["/bin/sh".to_string(), "-c".to_string(), line.clone()])
        }
        (Command::Line(line), Artifact::Image(_)) => {
            words::split_and_expand(line, &process_env(template, name))
                .map_err(|e| EngineError::Invalid(format!("invalid command {line:?}: {e}")))
        }
    }
}

/// The container ports a process publishes: its `PORT`, then the ports its
/// probes name (each reachable on a host port of its own).
pub(crate) fn container_ports(template: &ProcessTemplate) -> Vec<u16> {
    let mut ports = vec![port_of(template)];
    for probe in [&template.readiness, &template.liveness]
        .into_iter()
        .flatten()
    {
        if let ProbeAction::Tcp { port: Some(p) } | ProbeAction::Http { port: Some(p), .. } =
            &probe.action
        {
            if !ports.contains(p) {
                ports.push(*p);
            }
        }
    }
    ports
}

/// What a container is made of besides its template: this engine's
/// settings.
pub(crate) struct Setup<'a> {
    pub(crate) instance: &'a str,
    /// The image checkouts run in.
    pub(crate) slug_image: Option<&'a str>,
    /// Docker's init as PID 1.
    pub(crate) init: bool,
}

/// The create body of a process's container.
pub(crate) fn create_body(
    template: &ProcessTemplate,
    name: &str,
    setup: &Setup<'_>,
    ports: &BTreeMap<u16, u16>,
    restarts: u32,
) -> Result<ContainerCreateBody> {
    let image = image_ref(template, setup.slug_image).ok_or_else(|| {
        EngineError::Unsupported(
            "the Docker engine runs checkouts only with a slug image, and it has none".to_string(),
        )
    })?;
    let checkout = match checkout_of(template) {
        Some(path) => Some(path.to_str().ok_or_else(|| {
            EngineError::Invalid(format!("the checkout path {path:?} is not UTF-8"))
        })?),
        None => None,
    };
    let (instance, init) = (setup.instance, setup.init);
    let template_json = serde_json::to_string(template)
        .map_err(|e| EngineError::Invalid(format!("the template cannot be recorded: {e}")))?;
    let labels = HashMap::from([
        (LABEL_HERITAGE.to_string(), HERITAGE.to_string()),
        (LABEL_INSTANCE.to_string(), instance.to_string()),
        (LABEL_APP.to_string(), template.app.clone()),
        (LABEL_TYPE.to_string(), template.ptype.clone()),
        (LABEL_VERSION.to_string(), template.release.to_string()),
        (LABEL_HASH.to_string(), template.hash.clone()),
        (LABEL_TEMPLATE.to_string(), template_json),
        (LABEL_RESTARTS.to_string(), restarts.to_string()),
    ]);
    let mut env: Vec<String> = process_env(template, name)
        .into_iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    if init {
        // Docker's init (tini) forwards signals to its child only unless
        // told to signal the child's whole process group, which is what a
        // native process gets (and Heroku does): SIGTERM reaches the
        // helpers a shell started too.
        env.push("TINI_KILL_PROCESS_GROUP=1".to_string());
    }
    let port_bindings = ports
        .iter()
        .map(|(container, host)| {
            (
                format!("{container}/tcp"),
                Some(vec![PortBinding {
                    host_ip: Some("127.0.0.1".to_string()),
                    host_port: Some(host.to_string()),
                }]),
            )
        })
        .collect();
    let host_config = HostConfig {
        port_bindings: Some(port_bindings),
        nano_cpus: template
            .cpu_millis
            .map(|m| i64::try_from(m.saturating_mul(1_000_000)).unwrap_or(i64::MAX)),
        memory: template
            .memory_bytes
            .map(|b| i64::try_from(b).unwrap_or(i64::MAX)),
        init: Some(init),
        // A mount rather than a bind string: a missing directory is an
        // error, where `Binds` would create an empty one.
        mounts: checkout.map(|source| {
            vec![Mount {
                target: Some(CHECKOUT_DIR.to_string()),
                source: Some(source.to_string()),
                typ: Some(MountType::BIND),
                read_only: Some(false),
                ..Mount::default()
            }]
        }),
        ..HostConfig::default()
    };
    Ok(ContainerCreateBody {
        image: Some(image.to_string()),
        hostname: Some(hostname_of(name)),
        // Always explicit (empty for a checkout), so that what runs never
        // depends on whether the image's own entrypoint happens to match
        // the one we were told.
        entrypoint: Some(entrypoint_of(template)),
        cmd: Some(command_args(template, name)?),
        working_dir: checkout.map(|_| CHECKOUT_DIR.to_string()),
        env: Some(env),
        labels: Some(labels),
        exposed_ports: Some(ports.keys().map(|p| format!("{p}/tcp")).collect()),
        host_config: Some(host_config),
        ..ContainerCreateBody::default()
    })
}

/// A host name is at most 63 characters; a longer process name is cut
/// (the `HOSTNAME` variable keeps the whole name).
fn hostname_of(name: &str) -> String {
    name.chars()
        .take(63)
        .collect::<String>()
        .trim_end_matches('-')
        .to_string()
}

/// What runs in the container: its entrypoint, then its arguments.
pub(crate) fn argv_of(template: &ProcessTemplate, name: &str) -> Vec<String> {
    let mut argv = entrypoint_of(template);
    argv.extend(command_args(template, name).unwrap_or_default());
    argv
}

/// A container of this engine as read back from the daemon.
#[derive(Clone, Debug)]
pub(crate) struct Found {
    pub(crate) name: String,
    pub(crate) template: ProcessTemplate,
    pub(crate) running: bool,
    pub(crate) pid: Option<u32>,
    pub(crate) started: DateTime<Utc>,
    pub(crate) ports: BTreeMap<u16, u16>,
    pub(crate) restarts: u32,
    /// Why it is not running, when it ran and exited.
    pub(crate) exit: Option<String>,
    pub(crate) argv: Vec<String>,
    /// The image it was created from (for a checkout, the slug image of
    /// the engine that made it).
    pub(crate) image: Option<String>,
}

/// Read a container back, `Err` with the reason when it is not one this
/// engine can manage.
pub(crate) fn found_of(inspect: &ContainerInspectResponse) -> std::result::Result<Found, String> {
    let name = inspect
        .name
        .as_deref()
        .map(|n| n.trim_start_matches('/').to_string())
        .ok_or("it has no name")?;
    let config = inspect.config.as_ref().ok_or("it has no config")?;
    let labels = config.labels.clone().unwrap_or_default();
    let json = labels
        .get(LABEL_TEMPLATE)
        .ok_or("it has no template label")?;
    let template: ProcessTemplate =
        serde_json::from_str(json).map_err(|e| format!("its template label is unreadable: {e}"))?;
    let restarts = labels
        .get(LABEL_RESTARTS)
        .and_then(|r| r.parse().ok())
        .unwrap_or(0);
    let state = inspect.state.clone().unwrap_or_default();
    let running = state.running == Some(true);
    // Created but never started (an engine stopped between the two): it
    // has not exited, it has yet to run.
    let never_ran = state.status == Some(ContainerStateStatusEnum::CREATED);
    let mut argv: Vec<String> = inspect.path.iter().cloned().collect();
    argv.extend(inspect.args.clone().unwrap_or_default());
    Ok(Found {
        name,
        template,
        running,
        pid: pid_of(&state),
        started: started_of(&state).unwrap_or_else(Utc::now),
        ports: host_ports_of(inspect),
        restarts,
        exit: (!running && !never_ran).then(|| exit_reason(&state)),
        argv,
        image: config.image.clone(),
    })
}

pub(crate) fn pid_of(state: &ContainerState) -> Option<u32> {
    state
        .pid
        .and_then(|p| u32::try_from(p).ok())
        .filter(|p| *p != 0)
}

pub(crate) fn started_of(state: &ContainerState) -> Option<DateTime<Utc>> {
    let text = state.started_at.as_deref()?;
    let time = DateTime::parse_from_rfc3339(text).ok()?.with_timezone(&Utc);
    // A container never started says 0001-01-01.
    (time.timestamp() > 0).then_some(time)
}

/// The published ports of a container: container port -> host port.
pub(crate) fn host_ports_of(inspect: &ContainerInspectResponse) -> BTreeMap<u16, u16> {
    let mut ports = BTreeMap::new();
    let bindings = inspect
        .host_config
        .as_ref()
        .and_then(|h| h.port_bindings.clone())
        .unwrap_or_default();
    for (key, list) in bindings {
        let Some(container) = key.split('/').next().and_then(|p| p.parse::<u16>().ok()) else {
            continue;
        };
        let host = list
            .unwrap_or_default()
            .into_iter()
            .find_map(|b| b.host_port.and_then(|p| p.parse::<u16>().ok()));
        if let Some(host) = host {
            ports.insert(container, host);
        }
    }
    ports
}

/// Why a container is not running, as `describe` shows it.
pub(crate) fn exit_reason(state: &ContainerState) -> String {
    if state.oom_killed == Some(true) {
        return "OOMKilled".to_string();
    }
    let code = state.exit_code.unwrap_or(0);
    match state.error.as_deref().filter(|e| !e.is_empty()) {
        Some(error) => format!("exited with code {code}: {error}"),
        None => format!("exited with code {code}"),
    }
}

/// The HTTP status of a daemon's answer, when it answered.
pub(crate) fn status_of(e: &DockerError) -> Option<u16> {
    match e {
        DockerError::DockerResponseServerError { status_code, .. } => Some(*status_code),
        _ => None,
    }
}

/// A daemon error that is not about the request (the daemon is gone, slow
/// or broken): `Unavailable`, with the cause kept.
pub(crate) fn unavailable(what: impl Into<String>, e: DockerError) -> EngineError {
    EngineError::unavailable_because(what, e)
}

/// Map an error of a request about one thing: the daemon's refusals (4xx)
/// are the request's fault, the rest is the daemon's.
pub(crate) fn map_error(what: &str, e: DockerError) -> EngineError {
    match &e {
        DockerError::DockerResponseServerError {
            status_code,
            message,
        } if (400..500).contains(status_code) => EngineError::Invalid(format!("{what}: {message}")),
        _ => unavailable(what.to_string(), e),
    }
}

/// Whether a pull failure says the image does not exist (or may not be
/// read), rather than that the registry or the daemon cannot be reached.
fn is_unknown_image(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    [
        "not found",
        "manifest unknown",
        "does not exist",
        "pull access denied",
        "repository name must",
        "invalid reference format",
        "unauthorized",
        "name unknown",
    ]
    .iter()
    .any(|needle| m.contains(needle))
}

/// Make sure the image is on the daemon: look, and pull it when it is not
/// there. An image that does not exist is the user's error (`Invalid`); a
/// daemon or registry that cannot be reached is `Unavailable`.
pub(crate) async fn ensure_image(
    shared: &Shared,
    reference: &str,
    credentials: Option<&RegistryCredentials>,
) -> Result<()> {
    if shared
        .images
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .contains(reference)
    {
        return Ok(());
    }
    match shared.docker.inspect_image(reference).await {
        Ok(_) => {}
        Err(e) if status_of(&e) == Some(404) => pull(shared, reference, credentials).await?,
        Err(e) if status_of(&e) == Some(400) => {
            return Err(EngineError::Invalid(format!(
                "invalid image reference {reference:?}: {e}"
            )))
        }
        Err(e) => return Err(unavailable(format!("inspecting image {reference}"), e)),
    }
    shared
        .images
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(reference.to_string());
    Ok(())
}

/// Forget that an image is present (the daemon said it is not).
pub(crate) fn image_gone(shared: &Shared, reference: &str) {
    shared
        .images
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(reference);
}

/// The registry login of an image template, if it has one.
pub(crate) fn credentials_of(template: &ProcessTemplate) -> Option<&RegistryCredentials> {
    match &template.artifact {
        Artifact::Image(image) => image.credentials.as_ref(),
        Artifact::Checkout { .. } => None,
    }
}

async fn pull(
    shared: &Shared,
    reference: &str,
    credentials: Option<&RegistryCredentials>,
) -> Result<()> {
    tracing::info!(image = %reference, "pulling an image");
    // `fromImage` with the whole reference: the daemon splits off the tag
    // or digest itself; a reference without one means `latest`.
    let options = CreateImageOptionsBuilder::new()
        .from_image(reference)
        .build();
    let login = credentials.map(|c| bollard::auth::DockerCredentials {
        username: Some(c.username.clone()),
        password: Some(c.password.clone()),
        ..Default::default()
    });
    let mut progress = shared.docker.create_image(Some(options), None, login);
    while let Some(item) = progress.next().await {
        match item {
            Ok(_) => {}
            Err(DockerError::DockerStreamError { error }) => {
                return Err(if is_unknown_image(&error) {
                    EngineError::Invalid(format!("image {reference} cannot be pulled: {error}"))
                } else {
                    EngineError::unavailable(format!("pulling image {reference} failed: {error}"))
                });
            }
            Err(e) => {
                let message = e.to_string();
                return Err(match status_of(&e) {
                    Some(status) if (400..500).contains(&status) || is_unknown_image(&message) => {
                        EngineError::Invalid(format!(
                            "image {reference} cannot be pulled: {message}"
                        ))
                    }
                    _ => unavailable(format!("pulling image {reference}"), e),
                });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use drycc_engine::{Artifact, ImageSpec, Probe};
    use std::time::Duration;

    fn template(command: Command) -> ProcessTemplate {
        ProcessTemplate {
            app: "a".into(),
            ptype: "web".into(),
            release: 3,
            hash: "h".into(),
            artifact: Artifact::Image(ImageSpec {
                reference: "img:1".into(),
                entrypoint: vec!["/entry".into()],
                port: 5000,
                credentials: None,
            }),
            command,
            env: [("GREETING".to_string(), "hi there".to_string())].into(),
            grace_period: Duration::from_secs(3),
            readiness: None,
            liveness: None,
            cpu_millis: Some(250),
            memory_bytes: Some(64 << 20),
            user: None,
        }
    }

    #[test]
    fn a_line_expands_port_hostname_and_release_env() {
        let t = template(Command::Line(
            "serve -p $PORT --name ${HOSTNAME} \"$GREETING\"".into(),
        ));
        assert_eq!(
            command_args(&t, "a-web-h-xxxxx").unwrap(),
            ["serve", "-p", "5000", "--name", "a-web-h-xxxxx", "hi there"]
        );
        assert_eq!(
            argv_of(&t, "a-web-h-xxxxx")[..2],
            ["/entry".to_string(), "serve".to_string()]
        );
        let bad = template(Command::Line("echo $(date)".into()));
        assert!(matches!(
            command_args(&bad, "n"),
            Err(EngineError::Invalid(_))
        ));
    }

    #[test]
    fn the_create_body_carries_labels_limits_and_ports() {
        let t = template(Command::Args(vec!["x".into()]));
        let ports = BTreeMap::from([(5000, 23000)]);
        let setup = Setup {
            instance: "inst",
            slug_image: Some("slug:1"),
            init: true,
        };
        let body = create_body(&t, "a-web-h-xxxxx", &setup, &ports, 2).unwrap();
        assert_eq!(body.image.as_deref(), Some("img:1"));
        assert_eq!(body.working_dir, None);
        assert_eq!(
            body.entrypoint.as_deref(),
            Some(&["/entry".to_string()][..])
        );
        assert_eq!(body.cmd.as_deref(), Some(&["x".to_string()][..]));
        let labels = body.labels.unwrap();
        assert_eq!(labels[LABEL_VERSION], "3");
        assert_eq!(labels[LABEL_RESTARTS], "2");
        assert_eq!(labels[LABEL_INSTANCE], "inst");
        let back: ProcessTemplate = serde_json::from_str(&labels[LABEL_TEMPLATE]).unwrap();
        assert_eq!(back, t);
        let env = body.env.unwrap();
        assert!(env.contains(&"PORT=5000".to_string()));
        assert!(env.contains(&"HOSTNAME=a-web-h-xxxxx".to_string()));
        assert!(env.contains(&"TINI_KILL_PROCESS_GROUP=1".to_string()));
        let setup = Setup {
            init: false,
            ..setup
        };
        let plain = create_body(&t, "a-web-h-xxxxx", &setup, &ports, 0).unwrap();
        assert!(!plain.env.unwrap().iter().any(|e| e.starts_with("TINI")));
        assert!(!env.iter().any(|e| e.starts_with("HOME=")));
        let host = body.host_config.unwrap();
        assert_eq!(host.mounts, None);
        assert_eq!(host.nano_cpus, Some(250_000_000));
        assert_eq!(host.memory, Some(64 << 20));
        let binding = &host.port_bindings.unwrap()["5000/tcp"];
        assert_eq!(
            binding.as_ref().unwrap()[0].host_port.as_deref(),
            Some("23000")
        );
    }

    fn checkout(command: Command) -> ProcessTemplate {
        ProcessTemplate {
            artifact: Artifact::Checkout {
                path: "/srv/checkouts/a/1".into(),
            },
            ..template(command)
        }
    }

    #[test]
    fn a_checkout_runs_in_the_slug_image_with_its_directory_at_app() {
        let t = checkout(Command::Line("echo a && echo $PORT > /app/out".into()));
        let ports = BTreeMap::from([(CHECKOUT_PORT, 23000)]);
        let setup = Setup {
            instance: "inst",
            slug_image: Some("slug:1"),
            init: true,
        };
        let body = create_body(&t, "a-web-h-xxxxx", &setup, &ports, 0).unwrap();
        assert_eq!(body.image.as_deref(), Some("slug:1"));
        // Cleared, not left out: the slug image's own must not wrap it.
        assert_eq!(body.entrypoint, Some(vec![]));
        assert_eq!(
            body.cmd.unwrap(),
            ["/bin/sh", "-c", "echo a && echo $PORT > /app/out"]
        );
        assert_eq!(body.working_dir.as_deref(), Some("/app"));
        let env = body.env.unwrap();
        assert!(env.contains(&"HOME=/app".to_string()));
        assert!(env.contains(&"PORT=5000".to_string()));
        let host = body.host_config.unwrap();
        let mounts = host.mounts.unwrap();
        assert_eq!(mounts.len(), 1);
        assert_eq!(mounts[0].source.as_deref(), Some("/srv/checkouts/a/1"));
        assert_eq!(mounts[0].target.as_deref(), Some("/app"));
        assert_eq!(mounts[0].typ, Some(MountType::BIND));
        assert_eq!(mounts[0].read_only, Some(false));
        assert!(host.port_bindings.unwrap().contains_key("5000/tcp"));
        assert_eq!(container_ports(&t), [CHECKOUT_PORT]);
        assert_eq!(
            argv_of(&t, "n"),
            ["/bin/sh", "-c", "echo a && echo $PORT > /app/out"]
        );

        // Exact arguments run as they are; the release may set HOME.
        let mut t = checkout(Command::Args(vec!["./bin/web".into(), "-v".into()]));
        t.env.insert("HOME".into(), "/home/app".into());
        let body = create_body(&t, "n", &setup, &ports, 0).unwrap();
        assert_eq!(body.cmd.unwrap(), ["./bin/web", "-v"]);
        assert!(body.env.unwrap().contains(&"HOME=/home/app".to_string()));

        // Without a slug image there is nothing to run it in.
        let setup = Setup {
            slug_image: None,
            ..setup
        };
        assert!(matches!(
            create_body(&t, "n", &setup, &ports, 0),
            Err(EngineError::Unsupported(_))
        ));
    }

    #[test]
    fn probe_ports_are_published_too() {
        let mut t = template(Command::Args(vec![]));
        let probe = |port| Probe {
            action: ProbeAction::Http {
                path: "/".into(),
                port,
            },
            initial_delay: Duration::ZERO,
            period: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            failure_threshold: 3,
        };
        t.readiness = Some(probe(Some(8080)));
        t.liveness = Some(probe(Some(5000)));
        assert_eq!(container_ports(&t), [5000, 8080]);
    }

    #[test]
    fn unknown_images_are_told_apart_from_unreachable_registries() {
        assert!(is_unknown_image(
            "manifest for x:1 not found: manifest unknown"
        ));
        assert!(is_unknown_image(
            "pull access denied for x, repository does not exist"
        ));
        assert!(!is_unknown_image(
            "Get \"https://r/v2/\": dial tcp 127.0.0.1:1: connect: connection refused"
        ));
    }

    #[test]
    fn exit_reasons() {
        let state = ContainerState {
            exit_code: Some(3),
            ..ContainerState::default()
        };
        assert_eq!(exit_reason(&state), "exited with code 3");
        let state = ContainerState {
            exit_code: Some(137),
            oom_killed: Some(true),
            ..ContainerState::default()
        };
        assert_eq!(exit_reason(&state), "OOMKilled");
    }
}
