//! The Kubernetes engine: the engine interface on a cluster, with the
//! object mapping of `docs/kubernetes.md` (a Namespace per app, a
//! Deployment per process type, a Secret per release, a Service for `web`,
//! a HorizontalPodAutoscaler per autoscaled type). State is observed through
//! watches (reflectors), never by polling.
//!
//! Layout:
//! - `manifests`: the objects, as pure functions of a template and the
//!   engine's settings (golden files in `tests/golden/`);
//! - `pods`: a Pod as a process status (the state mapping);
//! - `watch`: the reflectors that keep Pods and Deployments in memory and
//!   bump the per-app change counters;
//! - `errors`: API server errors as engine errors;
//! - `exec`, `logs`: the Pod subresources;
//! - `metrics`: usage from the resource metrics API, when there is one.

// Input from users, files and the network must never panic the program.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use drycc_engine::{
    Artifact, AutoscaleSpec, Capabilities, Command, Deployment, Engine, EngineError, ExecRequest,
    ExecSession, LogLine, LogStream, ProcessStatus, ProcessUsage, Result,
};
use drycc_engine_changes::Changes;
use k8s_openapi::api::apps::v1::Deployment as KubeDeployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{Namespace, Pod, Secret, Service};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PropagationPolicy};
use kube::runtime::reflector::Store;
use kube::{Client, ResourceExt};
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub mod errors;
pub mod exec;
pub mod logs;
pub mod manifests;
pub mod metrics;
pub mod pods;
mod watch_state;

pub use watch_state::WatchErrors;

use errors::{engine_error, is_not_found};
use manifests::{Rollout, Settings, APPLIED, HASH, HERITAGE, INSTANCE, RESTARTED_AT, VERSION};

/// The field manager of everything this engine applies.
pub const FIELD_MANAGER: &str = "drycc";

/// How long `connect` waits for the first listing of Pods and Deployments.
const SYNC_TIMEOUT: Duration = Duration::from_secs(30);

/// How long one `apply` may take before it is reported as the cluster's
/// failure to answer.
const API_TIMEOUT: Duration = Duration::from_secs(30);

/// How long `autoscale` waits for its write to show in the watches.
const SEEN_TIMEOUT: Duration = Duration::from_secs(10);

/// How long `stop_all` waits for the pods of the removed apps to go.
const STOP_TIMEOUT: Duration = Duration::from_secs(60);

/// The engine's settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KubeConfig {
    /// Label value (`drycc.cc/instance`) of the Namespaces this engine
    /// makes: `apps()` and `stop_all()` see only those.
    pub instance: String,
    /// `PORT` of a process whose template and image name none.
    pub default_port: u16,
    /// An image pull Secret every pod names, for private registries.
    pub image_pull_secret: Option<String>,
    /// Node labels every pod requires (`nodeSelector`); empty: any node.
    pub node_selector: BTreeMap<String, String>,
    /// Taint keys every pod tolerates (`operator: Exists`).
    pub tolerations: Vec<String>,
}

impl Default for KubeConfig {
    fn default() -> Self {
        KubeConfig {
            instance: "drycc".to_string(),
            default_port: 5000,
            image_pull_secret: None,
            node_selector: BTreeMap::new(),
            tolerations: Vec::new(),
        }
    }
}

pub struct KubeEngine {
    client: Client,
    settings: Settings,
    pods: Store<Pod>,
    deployments: Store<KubeDeployment>,
    autoscalers: Store<HorizontalPodAutoscaler>,
    watch_errors: Arc<WatchErrors>,
    changes: Arc<Changes>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl KubeEngine {
    /// An engine on the cluster of `client`: starts the reflectors and
    /// waits for their first listing, so that `processes()` answers from
    /// a complete picture.
    pub async fn connect(client: Client, config: KubeConfig) -> Result<KubeEngine> {
        let changes = Arc::new(Changes::default());
        let ours = format!("{HERITAGE}={}", manifests::HERITAGE_VALUE);
        let namespaces = format!("{ours},{INSTANCE}={}", config.instance);
        let watch_errors = Arc::new(WatchErrors::default());
        let (pods, pods_task) = watch_state::reflect::<Pod>(
            Api::all(client.clone()),
            &ours,
            Arc::clone(&changes),
            Arc::clone(&watch_errors),
        );
        let (deployments, deployments_task) = watch_state::reflect::<KubeDeployment>(
            Api::all(client.clone()),
            &ours,
            Arc::clone(&changes),
            Arc::clone(&watch_errors),
        );
        let (autoscalers, autoscalers_task) = watch_state::reflect::<HorizontalPodAutoscaler>(
            Api::all(client.clone()),
            &ours,
            Arc::clone(&changes),
            Arc::clone(&watch_errors),
        );
        let namespaces_task = watch_state::bump_on::<Namespace>(
            Api::all(client.clone()),
            &namespaces,
            Arc::clone(&changes),
            Arc::clone(&watch_errors),
        );
        let engine = KubeEngine {
            client,
            settings: Settings {
                instance: config.instance,
                default_port: config.default_port,
                image_pull_secret: config.image_pull_secret,
                node_selector: config.node_selector,
                tolerations: config.tolerations,
            },
            pods,
            deployments,
            autoscalers,
            watch_errors: Arc::clone(&watch_errors),
            changes,
            tasks: Mutex::new(vec![
                pods_task,
                deployments_task,
                autoscalers_task,
                namespaces_task,
            ]),
        };
        let synced = async {
            engine.pods.wait_until_ready().await.is_ok()
                && engine.deployments.wait_until_ready().await.is_ok()
                && engine.autoscalers.wait_until_ready().await.is_ok()
        };
        match tokio::time::timeout(SYNC_TIMEOUT, synced).await {
            Ok(true) => Ok(engine),
            _ => {
                let why = watch_errors
                    .last()
                    .map(|e| format!(" (last error: {e})"))
                    .unwrap_or_default();
                Err(EngineError::unavailable(format!(
                    "the cluster did not list pods, deployments and autoscalers within {SYNC_TIMEOUT:?}{why}"
                )))
            }
        }
    }

    /// An engine on the cluster that kube's usual discovery finds:
    /// `KUBECONFIG` (or `~/.kube/config`), else the in-cluster service
    /// account of a controller running as a Pod.
    pub async fn infer(config: KubeConfig) -> Result<KubeEngine> {
        let client = Client::try_default()
            .await
            .map_err(|e| EngineError::unavailable_because("finding the Kubernetes cluster", e))?;
        KubeEngine::connect(client, config).await
    }

    /// The errors the engine's watches have met (a health check: none is
    /// expected while the cluster is up and the engine has its rights).
    pub fn watch_errors(&self) -> &WatchErrors {
        &self.watch_errors
    }

    fn api<K>(&self, namespace: &str) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        <K as kube::Resource>::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), namespace)
    }

    fn apply_params() -> PatchParams {
        PatchParams::apply(FIELD_MANAGER).force()
    }

    /// Deployments of the app in the reflector's store.
    fn deployment_in_store(&self, app: &str, name: &str) -> Option<Arc<KubeDeployment>> {
        self.deployments
            .get(&kube::runtime::reflector::ObjectRef::new(name).within(app))
    }

    async fn ensure_namespace(&self, app: &str) -> Result<()> {
        let namespace = manifests::namespace(app, &self.settings);
        Api::<Namespace>::all(self.client.clone())
            .patch(app, &Self::apply_params(), &Patch::Apply(&namespace))
            .await
            .map_err(|e| engine_error(&format!("creating namespace {app}"), e))?;
        Ok(())
    }

    /// `Engine::apply` without its time limit.
    async fn apply_now(&self, deployment: Deployment) -> Result<()> {
        validate(&deployment)?;
        let t = &deployment.template;
        let app = t.app.as_str();
        let name = manifests::type_name(app, &t.ptype);
        let api: Api<KubeDeployment> = self.api(app);
        let existing = api
            .get_opt(&name)
            .await
            .map_err(|e| engine_error(&format!("reading deployment {name}"), e))?;
        let autoscaled = existing.is_some() && self.has_autoscaler(app, &name).await?;

        let pod_meta = existing
            .as_ref()
            .and_then(|d| d.spec.template.metadata.as_ref());
        let label = |key: &str| {
            pod_meta
                .and_then(|m| m.labels.as_ref())
                .and_then(|l| l.get(key).cloned())
        };
        // Same release under a new hash: the controller restarted the
        // type, which Kubernetes spells `restartedAt`. Otherwise the
        // annotation stays as it is, so that applying again rolls nothing.
        let restarted = existing.is_some()
            && label(VERSION) == Some(format!("v{}", t.release))
            && label(HASH).as_deref() != Some(t.hash.as_str());
        let restarted_at = if restarted {
            Some(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        } else {
            pod_meta
                .and_then(|m| m.annotations.as_ref())
                .and_then(|a| a.get(RESTARTED_AT).cloned())
        };
        let current = existing.as_ref().and_then(|d| d.spec.replicas);
        // An autoscaled type's count is the autoscaler's: applied as it is
        // now, so that this apply never takes it back.
        let replicas = match (autoscaled, current) {
            (true, Some(now)) => u32::try_from(now).unwrap_or(0),
            _ => deployment.replicas,
        };
        let rollout = Rollout {
            replicas: Some(replicas),
            restarted_at,
        };
        let desired =
            manifests::deployment(t, &self.settings, &rollout).map_err(EngineError::Invalid)?;

        let digest = |d: &KubeDeployment| {
            d.metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(APPLIED).cloned())
        };
        if let Some(existing) = &existing {
            if digest(existing).is_some() && digest(existing) == digest(&desired) {
                // Only the count can differ: the /scale subresource.
                if !autoscaled && current != Some(i32::try_from(replicas).unwrap_or(i32::MAX)) {
                    let patch = serde_json::json!({ "spec": { "replicas": replicas } });
                    let params = PatchParams {
                        field_manager: Some(FIELD_MANAGER.to_string()),
                        ..Default::default()
                    };
                    api.patch_scale(&name, &params, &Patch::Merge(&patch))
                        .await
                        .map_err(|e| engine_error(&format!("scaling {name}"), e))?;
                }
                self.changes.bump(Some(app));
                return Ok(());
            }
        }

        // What this apply makes anew is taken back when a later step is
        // refused, so that a refused deployment leaves nothing behind.
        let namespaces: Api<Namespace> = Api::all(self.client.clone());
        let namespace_existed = existing.is_some()
            || namespaces
                .get_opt(app)
                .await
                .map_err(|e| engine_error(&format!("reading namespace {app}"), e))?
                .is_some();
        let secret = manifests::env_secret(t);
        let secret_name = secret.name_any();
        let secrets: Api<Secret> = self.api(app);
        let secret_existed = namespace_existed
            && secrets
                .get_opt(&secret_name)
                .await
                .map_err(|e| engine_error(&format!("reading secret {secret_name}"), e))?
                .is_some();
        if let Err(e) = self.write(t, &secret, &desired).await {
            let undone = if !namespace_existed {
                delete_quietly(&namespaces, app, "namespace").await
            } else if !secret_existed {
                delete_quietly(&secrets, &secret_name, "secret").await
            } else {
                Ok(())
            };
            if let Err(undo) = undone {
                tracing::warn!("taking back a refused apply of {name}: {}", undo.detail());
            }
            return Err(e);
        }
        self.prune_secrets(app, &t.ptype, t.release).await?;
        self.changes.bump(Some(app));
        Ok(())
    }

    /// The objects of one apply, in order: Namespace, release Secret,
    /// Deployment, and the Service for `web`.
    async fn write(
        &self,
        t: &drycc_engine::ProcessTemplate,
        secret: &Secret,
        desired: &KubeDeployment,
    ) -> Result<()> {
        let app = t.app.as_str();
        let name = desired.name_any();
        let secret_name = secret.name_any();
        self.ensure_namespace(app).await?;
        self.api::<Secret>(app)
            .patch(&secret_name, &Self::apply_params(), &Patch::Apply(secret))
            .await
            .map_err(|e| engine_error(&format!("writing secret {secret_name}"), e))?;
        self.api::<KubeDeployment>(app)
            .patch(&name, &Self::apply_params(), &Patch::Apply(desired))
            .await
            .map_err(|e| engine_error(&format!("applying deployment {name}"), e))?;
        if t.ptype == "web" {
            let port = manifests::port_of(t, &self.settings);
            let service = manifests::service(app, port);
            self.api::<Service>(app)
                .patch(app, &Self::apply_params(), &Patch::Apply(&service))
                .await
                .map_err(|e| engine_error(&format!("applying service {app}"), e))?;
        }
        Ok(())
    }

    /// Delete the type's release Secrets older than the one before
    /// `release` (that one may still be in use while a rollout goes on).
    async fn prune_secrets(&self, app: &str, ptype: &str, release: u32) -> Result<()> {
        let api: Api<Secret> = self.api(app);
        let selector = labels_selector(&manifests::type_labels(app, ptype));
        let secrets = api
            .list(&ListParams::default().labels(&selector))
            .await
            .map_err(|e| engine_error(&format!("listing secrets of {app}/{ptype}"), e))?;
        for secret in secrets {
            let version = secret
                .labels()
                .get(VERSION)
                .and_then(|v| v.strip_prefix('v'))
                .and_then(|v| v.parse::<u32>().ok());
            if version.is_some_and(|v| v.saturating_add(1) < release) {
                delete_quietly(&api, &secret.name_any(), "secret").await?;
            }
        }
        Ok(())
    }

    /// Wait (a while at most) until the reflectors show what this engine
    /// just wrote, so that its own reads that follow see it.
    async fn seen(&self, done: impl FnMut() -> bool) {
        let mut changes = self.changes.subscribe(None);
        let deadline = tokio::time::Instant::now() + SEEN_TIMEOUT;
        if !drycc_engine_changes::wait_until(&mut changes, Some(deadline), done).await {
            tracing::warn!("a write was not seen by the watches within {SEEN_TIMEOUT:?}");
        }
    }

    async fn has_autoscaler(&self, app: &str, name: &str) -> Result<bool> {
        let api: Api<HorizontalPodAutoscaler> = self.api(app);
        api.get_opt(name)
            .await
            .map(|h| h.is_some())
            .map_err(|e| engine_error(&format!("reading autoscaler {name}"), e))
    }
}

impl Drop for KubeEngine {
    fn drop(&mut self) {
        for task in self
            .tasks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
        {
            task.abort();
        }
    }
}

/// `k=v,k=v` of a label map.
fn labels_selector(labels: &BTreeMap<String, String>) -> String {
    labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Delete an object; one that is not there is no error.
async fn delete_quietly<K>(api: &Api<K>, name: &str, what: &str) -> Result<()>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let params = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Background),
        ..Default::default()
    };
    match api.delete(name, &params).await {
        Ok(_) => Ok(()),
        Err(e) if is_not_found(&e) => Ok(()),
        Err(e) => Err(engine_error(&format!("deleting {what} {name}"), e)),
    }
}

/// Whether `name` is a DNS-1123 label, as Namespaces and label values of
/// names need (lower-case letters, digits, `-` inside, at most 63).
fn is_dns_label(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

/// Whether `key` may be a key of a Secret's data.
fn is_secret_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 253
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// What can never run on a cluster, refused before anything is written.
fn validate(deployment: &Deployment) -> Result<()> {
    let t = &deployment.template;
    if !is_dns_label(&t.app) || !t.app.starts_with(|c: char| c.is_ascii_lowercase()) {
        return Err(EngineError::Invalid(format!(
            "app name {:?} is not a valid Kubernetes namespace (lower-case letters, digits and '-', starting with a letter, at most 63)",
            t.app
        )));
    }
    if !is_dns_label(&t.ptype) {
        return Err(EngineError::Invalid(format!(
            "process type {:?} is not a valid Kubernetes name (lower-case letters, digits and '-', at most 63)",
            t.ptype
        )));
    }
    let name = manifests::type_name(&t.app, &t.ptype);
    if name.len() > 63 {
        return Err(EngineError::Invalid(format!(
            "{name:?} (app and process type) is longer than the 63 characters Kubernetes allows"
        )));
    }
    // Each variable is a key of the release's Secret: refused here rather
    // than half-way through the objects of the app.
    if let Some(key) = t.env.keys().find(|k| !is_secret_key(k)) {
        return Err(EngineError::Invalid(format!(
            "config variable {key:?} cannot be a Kubernetes Secret key (letters, digits, '-', '_' and '.', at most 253)"
        )));
    }
    if matches!(t.artifact, Artifact::Checkout { .. }) {
        return Err(EngineError::Unsupported(
            "the Kubernetes engine runs images only, not checkouts".to_string(),
        ));
    }
    let empty = match &t.command {
        Command::Line(line) => line.trim().is_empty(),
        Command::Args(args) => args.is_empty(),
    };
    if empty {
        return Err(EngineError::Invalid(format!(
            "process type {:?} has an empty command",
            t.ptype
        )));
    }
    Ok(())
}

#[async_trait]
impl Engine for KubeEngine {
    async fn apply(&self, deployment: Deployment) -> Result<()> {
        let what = manifests::type_name(&deployment.template.app, &deployment.template.ptype);
        match tokio::time::timeout(API_TIMEOUT, self.apply_now(deployment)).await {
            Ok(result) => result,
            // Every write is a server-side apply: the next apply after a
            // time-out converges from wherever this one stopped.
            Err(_) => Err(EngineError::unavailable(format!(
                "the cluster did not answer within {API_TIMEOUT:?} while applying {what}"
            ))),
        }
    }

    async fn remove_type(&self, app: &str, ptype: &str) -> Result<()> {
        if !is_dns_label(app) || !is_dns_label(ptype) {
            return Ok(());
        }
        let name = manifests::type_name(app, ptype);
        delete_quietly(
            &self.api::<HorizontalPodAutoscaler>(app),
            &name,
            "autoscaler",
        )
        .await?;
        delete_quietly(&self.api::<KubeDeployment>(app), &name, "deployment").await?;
        if ptype == "web" {
            delete_quietly(&self.api::<Service>(app), app, "service").await?;
        }
        let selector = labels_selector(&manifests::type_labels(app, ptype));
        match self
            .api::<Secret>(app)
            .delete_collection(
                &DeleteParams::default(),
                &ListParams::default().labels(&selector),
            )
            .await
        {
            Ok(_) => {}
            Err(e) if is_not_found(&e) => {}
            Err(e) => return Err(engine_error(&format!("deleting secrets of {name}"), e)),
        }
        self.changes.bump(Some(app));
        Ok(())
    }

    async fn remove_app(&self, app: &str) -> Result<()> {
        if !is_dns_label(app) {
            return Ok(());
        }
        delete_quietly(
            &Api::<Namespace>::all(self.client.clone()),
            app,
            "namespace",
        )
        .await?;
        self.changes.bump(Some(app));
        Ok(())
    }

    async fn processes(&self, app: &str) -> Result<Vec<ProcessStatus>> {
        let mut processes: Vec<ProcessStatus> = self
            .pods
            .state()
            .iter()
            .filter(|pod| pod.metadata.namespace.as_deref() == Some(app))
            .filter_map(|pod| pods::status_of(pod))
            .collect();
        processes.sort_by(|a, b| (&a.ptype, &a.name).cmp(&(&b.ptype, &b.name)));
        Ok(processes)
    }

    async fn restart_process(&self, app: &str, name: &str) -> Result<()> {
        if !is_dns_label(app) || name.is_empty() {
            return Err(EngineError::ProcessNotFound(name.to_string()));
        }
        // The ReplicaSet replaces a deleted Pod under a new name.
        match self
            .api::<Pod>(app)
            .delete(name, &DeleteParams::default())
            .await
        {
            Ok(_) => {
                self.changes.bump(Some(app));
                Ok(())
            }
            Err(e) if is_not_found(&e) => Err(EngineError::ProcessNotFound(name.to_string())),
            Err(e) => Err(engine_error(&format!("deleting pod {name}"), e)),
        }
    }

    async fn exec(&self, app: &str, name: &str, request: ExecRequest) -> Result<ExecSession> {
        let known = self
            .pods
            .get(&kube::runtime::reflector::ObjectRef::new(name).within(app))
            .is_some();
        if !known {
            return Err(EngineError::ProcessNotFound(name.to_string()));
        }
        // The Pod's only container, which the API server picks itself.
        exec::exec(self.client.clone(), app, name, None, request).await
    }

    async fn logs(&self, app: &str, lines: usize, process: Option<&str>) -> Result<Vec<LogLine>> {
        let mut names: Vec<String> = self
            .pods
            .state()
            .iter()
            .filter(|pod| pod.metadata.namespace.as_deref() == Some(app))
            .map(|pod| pod.name_any())
            .collect();
        if let Some(process) = process {
            if !names.iter().any(|n| n == process) {
                return Err(EngineError::ProcessNotFound(process.to_string()));
            }
            names.retain(|n| n == process);
        }
        names.sort();
        logs::tail(self.client.clone(), app, &names, lines).await
    }

    fn follow_logs(&self, app: &str) -> LogStream {
        logs::follow_app(
            self.client.clone(),
            app,
            self.pods.clone(),
            self.changes.subscribe(Some(app)),
        )
    }

    fn changes(&self, app: Option<&str>) -> watch::Receiver<u64> {
        self.changes.subscribe(app)
    }

    async fn usage(&self, app: &str) -> Result<Vec<ProcessUsage>> {
        let processes = self.processes(app).await?;
        // The metrics API, when the cluster has one; a process it has no
        // sample of yet (or every process, without the API) has a reading
        // without numbers.
        let measured = if processes.is_empty() {
            BTreeMap::new()
        } else {
            let selector = format!("{HERITAGE}={}", manifests::HERITAGE_VALUE);
            metrics::pod_usage(&self.client, app, &selector).await
        };
        Ok(processes
            .into_iter()
            .map(|p| {
                let m = measured.get(&p.name);
                ProcessUsage {
                    cpu_millis: m.map(|m| m.cpu_millis),
                    memory_bytes: m.map(|m| m.memory_bytes),
                    name: p.name,
                    ptype: p.ptype,
                    ready: p.ready,
                }
            })
            .collect())
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            checkouts: false,
            images: true,
            limits: Ok(()),
            autoscaler: true,
        }
    }

    async fn autoscale(&self, app: &str, ptype: &str, rule: Option<AutoscaleSpec>) -> Result<()> {
        if !is_dns_label(app) || !is_dns_label(ptype) {
            return match rule {
                None => Ok(()),
                Some(_) => Err(EngineError::Invalid(format!(
                    "{app}/{ptype} cannot be named on Kubernetes"
                ))),
            };
        }
        let name = manifests::type_name(app, ptype);
        let api: Api<HorizontalPodAutoscaler> = self.api(app);
        let key = kube::runtime::reflector::ObjectRef::new(&name).within(app);
        let Some(rule) = rule else {
            delete_quietly(&api, &name, "autoscaler").await?;
            self.changes.bump(Some(app));
            self.seen(|| self.autoscalers.get(&key).is_none()).await;
            return Ok(());
        };
        if rule.min < 1 || rule.max < rule.min || rule.cpu_percent < 1 {
            return Err(EngineError::Invalid(format!(
                "autoscale of {name}: need 1 <= min <= max and a CPU target of at least 1% (min {}, max {}, cpu {}%)",
                rule.min, rule.max, rule.cpu_percent
            )));
        }
        // The rule may come before the type's first deploy.
        self.ensure_namespace(app).await?;
        let hpa = manifests::autoscaler(app, ptype, &rule);
        let applied = api
            .patch(&name, &Self::apply_params(), &Patch::Apply(&hpa))
            .await
            .map_err(|e| engine_error(&format!("applying autoscaler {name}"), e))?;
        self.changes.bump(Some(app));
        let generation = applied.metadata.generation;
        self.seen(|| {
            self.autoscalers
                .get(&key)
                .is_some_and(|h| h.metadata.generation >= generation)
        })
        .await;
        Ok(())
    }

    async fn autoscaled(&self, app: &str) -> Result<BTreeMap<String, u32>> {
        let mut counts = BTreeMap::new();
        for hpa in self.autoscalers.state() {
            if hpa.metadata.namespace.as_deref() != Some(app) {
                continue;
            }
            let Some(ptype) = hpa.labels().get(manifests::TYPE).cloned() else {
                continue;
            };
            let replicas = self
                .deployment_in_store(app, &hpa.name_any())
                .and_then(|d| d.spec.replicas);
            if let Some(replicas) = replicas {
                counts.insert(ptype, u32::try_from(replicas).unwrap_or(0));
            }
        }
        Ok(counts)
    }

    async fn apps(&self) -> Result<Vec<String>> {
        let selector = format!(
            "{HERITAGE}={},{INSTANCE}={}",
            manifests::HERITAGE_VALUE,
            self.settings.instance
        );
        let namespaces = Api::<Namespace>::all(self.client.clone())
            .list(&ListParams::default().labels(&selector))
            .await
            .map_err(|e| engine_error("listing namespaces", e))?;
        let mut apps: Vec<String> = namespaces
            .into_iter()
            .filter(|ns| ns.metadata.deletion_timestamp.is_none())
            .map(|ns| ns.name_any())
            .collect();
        apps.sort();
        Ok(apps)
    }

    async fn close(&self) {
        for task in self
            .tasks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
        {
            task.abort();
        }
    }

    async fn stop_all(&self) {
        let apps = match self.apps().await {
            Ok(apps) => apps,
            Err(e) => {
                tracing::warn!("stop_all: {}", e.detail());
                return;
            }
        };
        for app in &apps {
            if let Err(e) = self.remove_app(app).await {
                tracing::warn!("stop_all: {}", e.detail());
            }
        }
        let mut changes = self.changes.subscribe(None);
        let deadline = tokio::time::Instant::now() + STOP_TIMEOUT;
        let pods = self.pods.clone();
        let gone = drycc_engine_changes::wait_until(&mut changes, Some(deadline), || {
            !pods.state().iter().any(|p| {
                p.metadata
                    .namespace
                    .as_ref()
                    .is_some_and(|ns| apps.contains(ns))
            })
        })
        .await;
        if !gone {
            tracing::warn!("stop_all: pods of {apps:?} still there after {STOP_TIMEOUT:?}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use drycc_engine::{ImageSpec, ProcessTemplate};

    fn deployment(app: &str, ptype: &str) -> Deployment {
        Deployment {
            template: ProcessTemplate {
                app: app.to_string(),
                ptype: ptype.to_string(),
                release: 1,
                hash: "h".to_string(),
                artifact: Artifact::Image(ImageSpec {
                    reference: "r".to_string(),
                    entrypoint: vec![],
                    port: 5000,
                    credentials: None,
                }),
                command: Command::Line("run".to_string()),
                env: Default::default(),
                grace_period: Duration::from_secs(1),
                readiness: None,
                liveness: None,
                cpu_millis: None,
                memory_bytes: None,
                user: None,
            },
            replicas: 1,
        }
    }

    fn refused(d: &Deployment) -> String {
        match validate(d) {
            Err(EngineError::Invalid(m) | EngineError::Unsupported(m)) => m,
            other => panic!("refused: {other:?}"),
        }
    }

    #[test]
    fn names_keys_and_commands_are_checked_before_any_write() {
        assert!(validate(&deployment("shop", "web")).is_ok());
        assert!(refused(&deployment("Shop", "web")).contains("app name"));
        assert!(refused(&deployment("1shop", "web")).contains("app name"));
        assert!(refused(&deployment("shop", "we_b")).contains("process type"));
        assert!(refused(&deployment("shop", "")).contains("process type"));
        let long = "a".repeat(40);
        assert!(refused(&deployment(&long, &long)).contains("63"));
        let mut d = deployment("shop", "web");
        d.template.env.insert("NOT OK".to_string(), "x".to_string());
        assert!(refused(&d).contains("NOT OK"));
        let mut d = deployment("shop", "web");
        d.template
            .env
            .insert("fine.key-1_X".to_string(), "x".to_string());
        assert!(validate(&d).is_ok());
        let mut d = deployment("shop", "web");
        d.template.command = Command::Args(vec![]);
        assert!(refused(&d).contains("empty command"));
        let mut d = deployment("shop", "web");
        d.template.artifact = Artifact::Checkout {
            path: "/tmp".into(),
        };
        assert!(refused(&d).contains("images only"));
    }
}
