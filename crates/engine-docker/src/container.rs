//! What a process is as a container: its labels (everything a later engine
//! needs to rebuild its table), its create body (command, environment,
//! published ports, limits), the reading of `inspect` back into a process,
//! images, and the mapping of Docker's errors onto `EngineError`.

use std::collections::{BTreeMap, HashMap};

use bollard::errors::Error as DockerError;
use bollard::models::{
    ContainerCreateBody, ContainerInspectResponse, ContainerState, ContainerStateStatusEnum,
    HostConfig, PortBinding,
};
use bollard::query_parameters::CreateImageOptionsBuilder;
use chrono::{DateTime, Utc};
use futures::StreamExt;

use crate::state::{image_of, Shared};
use crate::words;
use drycc_engine::{Command, EngineError, Env, ProbeAction, ProcessTemplate, Result};

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

/// The environment of a process: the release's values, then what the engine
/// owns (`PORT`, `HOSTNAME`), which always wins.
pub(crate) fn process_env(template: &ProcessTemplate, name: &str) -> Env {
    let mut env = template.env.clone();
    if let Some(spec) = image_of(template) {
        env.insert("PORT".to_string(), spec.port.to_string());
    }
    env.insert("HOSTNAME".to_string(), name.to_string());
    env
}

/// The arguments after the entrypoint.
pub(crate) fn command_args(template: &ProcessTemplate, name: &str) -> Result<Vec<String>> {
    match &template.command {
        Command::Args(args) => Ok(args.clone()),
        Command::Line(line) => words::split_and_expand(line, &process_env(template, name))
            .map_err(|e| EngineError::Invalid(format!("invalid command {line:?}: {e}"))),
    }
}

/// The container ports a process publishes: its `PORT`, then the ports its
/// probes name (each reachable on a host port of its own).
pub(crate) fn container_ports(template: &ProcessTemplate) -> Vec<u16> {
    let mut ports = Vec::new();
    if let Some(spec) = image_of(template) {
        ports.push(spec.port);
    }
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

/// The create body of a process's container.
pub(crate) fn create_body(
    template: &ProcessTemplate,
    name: &str,
    instance: &str,
    ports: &BTreeMap<u16, u16>,
    restarts: u32,
    init: bool,
) -> Result<ContainerCreateBody> {
    let spec = image_of(template).ok_or_else(|| {
        EngineError::Unsupported("the Docker engine runs images only".to_string())
    })?;
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
        ..HostConfig::default()
    };
    Ok(ContainerCreateBody {
        image: Some(spec.reference.clone()),
        hostname: Some(hostname_of(name)),
        // Always explicit, so that what runs never depends on whether the
        // image's own entrypoint happens to match the one we were told.
        entrypoint: Some(spec.entrypoint.clone()),
        cmd: Some(command_args(template, name)?),
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
    let mut argv = image_of(template)
        .map(|s| s.entrypoint.clone())
        .unwrap_or_default();
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
pub(crate) async fn ensure_image(shared: &Shared, reference: &str) -> Result<()> {
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
        Err(e) if status_of(&e) == Some(404) => pull(shared, reference).await?,
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

async fn pull(shared: &Shared, reference: &str) -> Result<()> {
    tracing::info!(image = %reference, "pulling an image");
    // `fromImage` with the whole reference: the daemon splits off the tag
    // or digest itself; a reference without one means `latest`.
    let options = CreateImageOptionsBuilder::new()
        .from_image(reference)
        .build();
    let mut progress = shared.docker.create_image(Some(options), None, None);
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
            }),
            command,
            env: [("GREETING".to_string(), "hi there".to_string())].into(),
            grace_period: Duration::from_secs(3),
            readiness: None,
            liveness: None,
            cpu_millis: Some(250),
            memory_bytes: Some(64 << 20),
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
        let body = create_body(&t, "a-web-h-xxxxx", "inst", &ports, 2, true).unwrap();
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
        let plain = create_body(&t, "a-web-h-xxxxx", "inst", &ports, 0, false).unwrap();
        assert!(!plain.env.unwrap().iter().any(|e| e.starts_with("TINI")));
        let host = body.host_config.unwrap();
        assert_eq!(host.nano_cpus, Some(250_000_000));
        assert_eq!(host.memory, Some(64 << 20));
        let binding = &host.port_bindings.unwrap()["5000/tcp"];
        assert_eq!(
            binding.as_ref().unwrap()[0].host_port.as_deref(),
            Some("23000")
        );
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
