//! The objects of one app on a cluster, as pure functions of the engine
//! interface's types and the engine's settings (`docs/kubernetes.md` is
//! the mapping): nothing here talks to the API server, so the golden files
//! of `tests/golden/` pin exactly what is applied.

use std::collections::BTreeMap;
use std::time::Duration;

use drycc_engine::{Artifact, AutoscaleSpec, Command, Probe, ProbeAction, ProcessTemplate};
use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment,
};
use k8s_openapi::api::autoscaling::v2::{
    CrossVersionObjectReference, HPAScalingRules, HorizontalPodAutoscaler,
    HorizontalPodAutoscalerBehavior, HorizontalPodAutoscalerSpec, MetricSpec, MetricTarget,
    ResourceMetricSource,
};
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, EnvVar, EnvVarSource, ExecAction, HTTPGetAction,
    LocalObjectReference, Namespace, PodSpec, PodTemplateSpec, Probe as KubeProbe,
    ResourceRequirements, Secret, SecretKeySelector, Service, ServicePort, ServiceSpec,
    TCPSocketAction, Toleration,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::ByteString;
use sha2::{Digest, Sha256};

/// Label keys. `app`, `type`, `version` and `heritage` are the ones Drycc
/// operators already select on with `kubectl`.
pub const APP: &str = "app";
pub const TYPE: &str = "type";
pub const VERSION: &str = "version";
pub const HERITAGE: &str = "heritage";
pub const HERITAGE_VALUE: &str = "drycc";
/// The template hash of `drycc_model::naming`, on pods: what
/// `is_converged` compares.
pub const HASH: &str = "drycc.cc/hash";
/// Which engine instance made a Namespace: `apps()` and `stop_all()` only
/// see their own.
pub const INSTANCE: &str = "drycc.cc/instance";
/// The command as users see it (`ps`), on the pod template.
pub const COMMAND: &str = "drycc.cc/command";
/// A digest of the Deployment as applied, replicas left out: the same
/// digest on the cluster means only the count can have changed.
pub const APPLIED: &str = "drycc.cc/applied";
/// What `kubectl rollout restart` sets; a changed value rolls the type.
pub const RESTARTED_AT: &str = "kubectl.kubernetes.io/restartedAt";

/// The engine's settings that shape the objects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    /// Label of the Namespaces this engine made.
    pub instance: String,
    /// `PORT` when neither the template's environment nor its image says.
    pub default_port: u16,
    /// A Secret of type `kubernetes.io/dockerconfigjson` in each app's
    /// Namespace, for private registries.
    pub image_pull_secret: Option<String>,
    /// Node labels every pod requires (`nodeSelector`): apps kept to a
    /// pool of nodes. Empty: any node.
    pub node_selector: BTreeMap<String, String>,
    /// Taint keys every pod tolerates, whatever their value and effect
    /// (`operator: Exists`): nodes reserved to apps by a taint.
    pub tolerations: Vec<String>,
}

/// What a Deployment carries besides its template.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rollout {
    /// `None` leaves the count to whoever owns it (an autoscaler).
    pub replicas: Option<u32>,
    /// The `restartedAt` annotation of the pod template (kept as found
    /// when the type was not restarted, so that applying again rolls
    /// nothing).
    pub restarted_at: Option<String>,
}

/// `<app>-<type>`: the Deployment and the HorizontalPodAutoscaler.
pub fn type_name(app: &str, ptype: &str) -> String {
    format!("{app}-{ptype}")
}

/// `<app>-<type>-v<N>-env`: the environment of one release of one type.
pub fn secret_name(app: &str, ptype: &str, release: u32) -> String {
    format!("{app}-{ptype}-v{release}-env")
}

/// The port the process listens on: the template's `PORT`, else the
/// image's, else the engine's default.
pub fn port_of(template: &ProcessTemplate, settings: &Settings) -> u16 {
    if let Some(port) = template.env.get("PORT").and_then(|p| p.parse().ok()) {
        return port;
    }
    match &template.artifact {
        Artifact::Image(spec) if spec.port != 0 => spec.port,
        _ => settings.default_port,
    }
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The labels (and selector) of one type's objects.
pub fn type_labels(app: &str, ptype: &str) -> BTreeMap<String, String> {
    labels(&[(APP, app), (TYPE, ptype), (HERITAGE, HERITAGE_VALUE)])
}

/// Namespace `<app>`.
pub fn namespace(app: &str, settings: &Settings) -> Namespace {
    Namespace {
        metadata: ObjectMeta {
            name: Some(app.to_string()),
            labels: Some(labels(&[
                (HERITAGE, HERITAGE_VALUE),
                (INSTANCE, &settings.instance),
            ])),
            ..Default::default()
        },
        ..Default::default()
    }
}

/// Secret `<app>-<type>-v<N>-env`: the release environment, one key per
/// variable (`PORT` is the container's own, not a secret).
pub fn env_secret(template: &ProcessTemplate) -> Secret {
    let mut labels = type_labels(&template.app, &template.ptype);
    labels.insert(VERSION.to_string(), format!("v{}", template.release));
    Secret {
        metadata: ObjectMeta {
            name: Some(secret_name(
                &template.app,
                &template.ptype,
                template.release,
            )),
            namespace: Some(template.app.clone()),
            labels: Some(labels),
            ..Default::default()
        },
        type_: Some("Opaque".to_string()),
        data: Some(
            template
                .env
                .iter()
                .filter(|(k, _)| k.as_str() != "PORT")
                .map(|(k, v)| (k.clone(), ByteString(v.clone().into_bytes())))
                .collect(),
        ),
        ..Default::default()
    }
}

/// The container's arguments: a Procfile line split into words with
/// `$VAR` expanded from the environment and `PORT`; exact arguments as
/// given. The image's ENTRYPOINT is kept (no `command`).
pub fn args(template: &ProcessTemplate, port: u16) -> Result<Vec<String>, String> {
    let args = match &template.command {
        Command::Args(args) => args.clone(),
        Command::Line(line) => {
            let mut env = template.env.clone();
            env.insert("PORT".to_string(), port.to_string());
            drycc_procfile::words::split_and_expand(line, &env)
                .map_err(|e| format!("command {line:?}: {e}"))?
        }
    };
    if args.is_empty() {
        return Err(format!(
            "process type {:?} has an empty command",
            template.ptype
        ));
    }
    Ok(args)
}

fn seconds(d: Duration) -> i32 {
    i32::try_from(d.as_secs() + u64::from(d.subsec_nanos() > 0)).unwrap_or(i32::MAX)
}

fn port_ref(port: Option<u16>, default: u16) -> IntOrString {
    IntOrString::Int(i32::from(port.unwrap_or(default)))
}

/// An engine probe as a container probe; `PORT` where it names none.
pub fn probe(probe: &Probe, port: u16) -> KubeProbe {
    let mut out = KubeProbe {
        initial_delay_seconds: Some(seconds(probe.initial_delay)),
        period_seconds: Some(seconds(probe.period).max(1)),
        timeout_seconds: Some(seconds(probe.timeout).max(1)),
        failure_threshold: Some(i32::try_from(probe.failure_threshold.max(1)).unwrap_or(i32::MAX)),
        ..Default::default()
    };
    match &probe.action {
        ProbeAction::Tcp { port: p } => {
            out.tcp_socket = Some(TCPSocketAction {
                port: port_ref(*p, port),
                ..Default::default()
            })
        }
        ProbeAction::Http { path, port: p } => {
            out.http_get = Some(HTTPGetAction {
                path: Some(path.clone()),
                port: port_ref(*p, port),
                ..Default::default()
            })
        }
        ProbeAction::Exec { command } => {
            out.exec = Some(ExecAction {
                command: Some(command.clone()),
            })
        }
    }
    out
}

/// A `web` process is ready when its `PORT` accepts TCP (5 s delay,
/// period and timeout), unless the template says otherwise.
pub fn default_readiness(port: u16) -> KubeProbe {
    KubeProbe {
        tcp_socket: Some(TCPSocketAction {
            port: IntOrString::Int(i32::from(port)),
            ..Default::default()
        }),
        initial_delay_seconds: Some(5),
        period_seconds: Some(5),
        timeout_seconds: Some(5),
        ..Default::default()
    }
}

/// Bytes as the API server writes them back: `Gi` or `Mi` when exact.
fn memory_quantity(bytes: u64) -> String {
    const MI: u64 = 1024 * 1024;
    const GI: u64 = 1024 * MI;
    match bytes {
        0 => "0".to_string(),
        b if b % GI == 0 => format!("{}Gi", b / GI),
        b if b % MI == 0 => format!("{}Mi", b / MI),
        b => b.to_string(),
    }
}

fn resources(template: &ProcessTemplate) -> Option<ResourceRequirements> {
    let mut limits = BTreeMap::new();
    if let Some(cpu) = template.cpu_millis {
        limits.insert("cpu".to_string(), Quantity(format!("{cpu}m")));
    }
    if let Some(memory) = template.memory_bytes {
        limits.insert("memory".to_string(), Quantity(memory_quantity(memory)));
    }
    if limits.is_empty() {
        return None;
    }
    // Requests equal limits: what the scheduler reserves is what the
    // process may use (Guaranteed when both are set).
    Some(ResourceRequirements {
        requests: Some(limits.clone()),
        limits: Some(limits),
        ..Default::default()
    })
}

/// The container's environment: `PORT`, then each release variable from
/// the release's Secret.
fn env(template: &ProcessTemplate, port: u16) -> Vec<EnvVar> {
    let secret = secret_name(&template.app, &template.ptype, template.release);
    let mut env = vec![EnvVar {
        name: "PORT".to_string(),
        value: Some(port.to_string()),
        ..Default::default()
    }];
    env.extend(
        template
            .env
            .keys()
            .filter(|k| k.as_str() != "PORT")
            .map(|key| EnvVar {
                name: key.clone(),
                value_from: Some(EnvVarSource {
                    secret_key_ref: Some(SecretKeySelector {
                        name: secret.clone(),
                        key: key.clone(),
                        optional: None,
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }),
    );
    env
}

/// The settings' tolerated taint keys, as tolerations of any value and
/// effect.
fn tolerations(settings: &Settings) -> Option<Vec<Toleration>> {
    (!settings.tolerations.is_empty()).then(|| {
        settings
            .tolerations
            .iter()
            .map(|key| Toleration {
                key: Some(key.clone()),
                operator: Some("Exists".to_string()),
                ..Default::default()
            })
            .collect()
    })
}

/// Deployment `<app>-<type>`, annotated with the digest of itself
/// ([`APPLIED`], replicas left out). Fails, with a user's message, when
/// the template cannot run on a cluster.
pub fn deployment(
    template: &ProcessTemplate,
    settings: &Settings,
    rollout: &Rollout,
) -> Result<Deployment, String> {
    let Artifact::Image(image) = &template.artifact else {
        return Err("the Kubernetes engine runs images only, not checkouts".to_string());
    };
    let port = port_of(template, settings);
    let name = type_name(&template.app, &template.ptype);
    let selector = type_labels(&template.app, &template.ptype);
    let mut pod_labels = selector.clone();
    pod_labels.insert(VERSION.to_string(), format!("v{}", template.release));
    pod_labels.insert(HASH.to_string(), template.hash.clone());
    let mut annotations = BTreeMap::new();
    annotations.insert(COMMAND.to_string(), template.command.display());
    if let Some(at) = &rollout.restarted_at {
        annotations.insert(RESTARTED_AT.to_string(), at.clone());
    }
    let readiness = match &template.readiness {
        Some(p) => Some(probe(p, port)),
        None if template.ptype == "web" => Some(default_readiness(port)),
        None => None,
    };
    let container = Container {
        name: name.clone(),
        image: Some(image.reference.clone()),
        args: Some(args(template, port)?),
        env: Some(env(template, port)),
        ports: Some(vec![ContainerPort {
            container_port: i32::from(port),
            name: Some("http".to_string()),
            protocol: Some("TCP".to_string()),
            ..Default::default()
        }]),
        resources: resources(template),
        readiness_probe: readiness,
        liveness_probe: template.liveness.as_ref().map(|p| probe(p, port)),
        ..Default::default()
    };
    let mut deployment = Deployment {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: Some(template.app.clone()),
            labels: Some(selector.clone()),
            ..Default::default()
        },
        spec: DeploymentSpec {
            replicas: None,
            selector: LabelSelector {
                match_labels: Some(selector),
                ..Default::default()
            },
            strategy: Some(DeploymentStrategy {
                type_: Some("RollingUpdate".to_string()),
                rolling_update: Some(RollingUpdateDeployment {
                    max_surge: Some(IntOrString::Int(1)),
                    max_unavailable: Some(IntOrString::Int(0)),
                }),
            }),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(pod_labels),
                    annotations: Some(annotations),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    containers: vec![container],
                    termination_grace_period_seconds: Some(i64::from(seconds(
                        template.grace_period,
                    ))),
                    image_pull_secrets: settings
                        .image_pull_secret
                        .as_ref()
                        .map(|name| vec![LocalObjectReference { name: name.clone() }]),
                    node_selector: (!settings.node_selector.is_empty())
                        .then(|| settings.node_selector.clone()),
                    tolerations: tolerations(settings),
                    ..Default::default()
                }),
            },
            ..Default::default()
        },
        ..Default::default()
    };
    let digest = digest(&deployment);
    deployment.metadata.annotations = Some(labels(&[(APPLIED, &digest)]));
    deployment.spec.replicas = rollout
        .replicas
        .map(|r| i32::try_from(r).unwrap_or(i32::MAX));
    Ok(deployment)
}

/// The digest of a Deployment (16 hex digits of SHA-256 of its JSON).
fn digest(deployment: &Deployment) -> String {
    let json = serde_json::to_vec(deployment).unwrap_or_default();
    hex::encode(&Sha256::digest(&json)[..8])
}

/// Service `<app>`: port 80 to the `web` processes' `PORT`.
pub fn service(app: &str, port: u16) -> Service {
    Service {
        metadata: ObjectMeta {
            name: Some(app.to_string()),
            namespace: Some(app.to_string()),
            labels: Some(labels(&[(APP, app), (HERITAGE, HERITAGE_VALUE)])),
            ..Default::default()
        },
        spec: Some(ServiceSpec {
            selector: Some(type_labels(app, "web")),
            ports: Some(vec![ServicePort {
                name: Some("http".to_string()),
                port: 80,
                protocol: Some("TCP".to_string()),
                target_port: Some(IntOrString::Int(i32::from(port))),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// HorizontalPodAutoscaler `<app>-<type>` (autoscaling/v2) of the type's
/// Deployment: CPU utilisation target, bounds and the stabilisation windows.
pub fn autoscaler(app: &str, ptype: &str, rule: &AutoscaleSpec) -> HorizontalPodAutoscaler {
    let name = type_name(app, ptype);
    let count = |n: u32| i32::try_from(n).unwrap_or(i32::MAX);
    let window = |d: Duration| HPAScalingRules {
        stabilization_window_seconds: Some(seconds(d)),
        ..Default::default()
    };
    HorizontalPodAutoscaler {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: Some(app.to_string()),
            labels: Some(type_labels(app, ptype)),
            ..Default::default()
        },
        spec: HorizontalPodAutoscalerSpec {
            scale_target_ref: CrossVersionObjectReference {
                api_version: Some("apps/v1".to_string()),
                kind: "Deployment".to_string(),
                name,
            },
            min_replicas: Some(count(rule.min)),
            max_replicas: count(rule.max),
            metrics: Some(vec![MetricSpec {
                type_: "Resource".to_string(),
                resource: Some(ResourceMetricSource {
                    name: "cpu".to_string(),
                    target: MetricTarget {
                        type_: "Utilization".to_string(),
                        average_utilization: Some(count(rule.cpu_percent)),
                        ..Default::default()
                    },
                }),
                ..Default::default()
            }]),
            behavior: Some(HorizontalPodAutoscalerBehavior {
                scale_up: Some(window(rule.up_window)),
                scale_down: Some(window(rule.down_window)),
            }),
        },
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use drycc_engine::ImageSpec;

    fn settings() -> Settings {
        Settings {
            instance: "test".to_string(),
            default_port: 5000,
            image_pull_secret: None,
            node_selector: BTreeMap::new(),
            tolerations: Vec::new(),
        }
    }

    fn template(command: Command) -> ProcessTemplate {
        ProcessTemplate {
            app: "a".to_string(),
            ptype: "web".to_string(),
            release: 3,
            hash: "abc".to_string(),
            artifact: Artifact::Image(ImageSpec {
                reference: "registry/a:v3".to_string(),
                entrypoint: vec![],
                port: 8000,
                credentials: None,
            }),
            command,
            env: [("GREETING".to_string(), "hi there".to_string())].into(),
            grace_period: Duration::from_millis(1500),
            readiness: None,
            liveness: None,
            cpu_millis: None,
            memory_bytes: None,
            user: None,
        }
    }

    #[test]
    fn a_procfile_line_becomes_words_with_variables_expanded() {
        let t = template(Command::Line("serve --port $PORT \"${GREETING}\"".into()));
        assert_eq!(
            args(&t, 8000).unwrap(),
            vec!["serve", "--port", "8000", "hi there"]
        );
        let t = template(Command::Args(vec!["a b".into(), "$PORT".into()]));
        assert_eq!(args(&t, 8000).unwrap(), vec!["a b", "$PORT"]);
        assert!(args(&template(Command::Line("  ".into())), 1).is_err());
        assert!(args(&template(Command::Line("'open".into())), 1).is_err());
    }

    #[test]
    fn the_port_comes_from_the_env_then_the_image_then_the_default() {
        let mut t = template(Command::Line("x".into()));
        assert_eq!(port_of(&t, &settings()), 8000);
        t.env.insert("PORT".into(), "9000".into());
        assert_eq!(port_of(&t, &settings()), 9000);
        t.env.clear();
        t.artifact = Artifact::Image(ImageSpec {
            reference: "r".into(),
            entrypoint: vec![],
            port: 0,
            credentials: None,
        });
        assert_eq!(port_of(&t, &settings()), 5000);
    }

    #[test]
    fn the_digest_ignores_replicas_and_follows_the_template() {
        let t = template(Command::Line("serve".into()));
        let digest_of = |t: &ProcessTemplate, rollout: &Rollout| {
            deployment(t, &settings(), rollout)
                .unwrap()
                .metadata
                .annotations
                .unwrap()[APPLIED]
                .clone()
        };
        let one = Rollout {
            replicas: Some(1),
            restarted_at: None,
        };
        let five = Rollout {
            replicas: Some(5),
            restarted_at: None,
        };
        assert_eq!(digest_of(&t, &one), digest_of(&t, &five));
        let mut other = t.clone();
        other.hash = "def".into();
        assert_ne!(digest_of(&t, &one), digest_of(&other, &one));
        let restarted = Rollout {
            replicas: Some(1),
            restarted_at: Some("2026-01-01T00:00:00Z".into()),
        };
        assert_ne!(digest_of(&t, &one), digest_of(&t, &restarted));
    }

    #[test]
    fn memory_reads_as_kubectl_shows_it() {
        assert_eq!(memory_quantity(512 * 1024 * 1024), "512Mi");
        assert_eq!(memory_quantity(2 * 1024 * 1024 * 1024), "2Gi");
        assert_eq!(memory_quantity(1000), "1000");
    }

    #[test]
    fn grace_rounds_up_to_whole_seconds() {
        let d = deployment(
            &template(Command::Line("x".into())),
            &settings(),
            &Rollout::default(),
        )
        .unwrap();
        let spec = d.spec.template.spec.unwrap();
        assert_eq!(spec.termination_grace_period_seconds, Some(2));
    }

    #[test]
    fn checkouts_are_refused() {
        let mut t = template(Command::Line("x".into()));
        t.artifact = Artifact::Checkout {
            path: "/tmp".into(),
        };
        assert!(deployment(&t, &settings(), &Rollout::default()).is_err());
    }
}
