//! A fake engine for the reconciler's tests: it records the calls, keeps
//! the desired deployments, and runs processes only when a test says so.

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;
use drycc_engine::{
    Capabilities, Deployment, Engine, EngineError, ExecRequest, ExecSession, LogLine, LogStream,
    ProcessState, ProcessStatus, Result,
};
use tokio::sync::watch;

#[derive(Default)]
struct Inner {
    calls: Vec<String>,
    desired: BTreeMap<(String, String), Deployment>,
    processes: BTreeMap<String, Vec<ProcessStatus>>,
}

pub struct FakeEngine {
    inner: Mutex<Inner>,
    changes: watch::Sender<u64>,
    /// `apply` of a template with this command fails as invalid.
    pub refuse_command: Option<String>,
}

impl FakeEngine {
    pub fn new() -> FakeEngine {
        FakeEngine {
            inner: Mutex::default(),
            changes: watch::channel(0).0,
            refuse_command: None,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn bump(&self) {
        self.changes.send_modify(|n| *n += 1);
    }

    /// Every call so far, as `apply app/type/hash x N`, `remove_type app/type`
    /// or `remove_app app`.
    pub fn calls(&self) -> Vec<String> {
        self.lock().calls.clone()
    }

    /// The desired deployment of one type.
    pub fn desired(&self, app: &str, ptype: &str) -> Option<Deployment> {
        self.lock()
            .desired
            .get(&(app.to_string(), ptype.to_string()))
            .cloned()
    }

    /// Make the app's processes exactly what its deployments ask for, all
    /// ready (or, with `ready` false, started but never ready).
    pub fn converge(&self, app: &str, ready: bool) {
        let mut inner = self.lock();
        let processes: Vec<ProcessStatus> = inner
            .desired
            .iter()
            .filter(|((a, _), _)| a == app)
            .flat_map(|(_, d)| (0..d.replicas).map(move |i| process(d, i, ready)))
            .collect();
        inner.processes.insert(app.to_string(), processes);
        drop(inner);
        self.bump();
    }

    /// Processes that run without any desired state (an engine that
    /// adopted them, or an app the store no longer has).
    pub fn run_orphan(&self, app: &str, ptype: &str) {
        let mut inner = self.lock();
        let template = crate::desired::verdict::tests::deployment(ptype, "orphan", 1);
        let mut orphan = process(&template, 0, true);
        orphan.app = app.to_string();
        inner
            .processes
            .entry(app.to_string())
            .or_default()
            .push(orphan);
        drop(inner);
        self.bump();
    }
}

fn process(deployment: &Deployment, index: u32, ready: bool) -> ProcessStatus {
    let t = &deployment.template;
    ProcessStatus {
        name: format!("{}-{}-{}-{index}", t.app, t.ptype, t.hash),
        app: t.app.clone(),
        ptype: t.ptype.clone(),
        release: t.release,
        hash: t.hash.clone(),
        state: if ready {
            ProcessState::Up
        } else {
            ProcessState::Starting
        },
        started: chrono::Utc::now(),
        ready,
        restarts: 0,
        pid: None,
        endpoint: None,
        last_exit: None,
        command: t.command.display(),
        argv: Vec::new(),
        image: None,
    }
}

#[async_trait]
impl Engine for FakeEngine {
    async fn apply(&self, deployment: Deployment) -> Result<()> {
        let t = &deployment.template;
        let command = t.command.display();
        if self.refuse_command.as_deref() == Some(command.as_str()) {
            return Err(EngineError::Invalid(format!(
                "invalid deployment: {command} is refused"
            )));
        }
        let mut inner = self.lock();
        inner.calls.push(format!(
            "apply {}/{}/{} x {}",
            t.app, t.ptype, t.hash, deployment.replicas
        ));
        inner
            .desired
            .insert((t.app.clone(), t.ptype.clone()), deployment);
        drop(inner);
        self.bump();
        Ok(())
    }

    async fn remove_type(&self, app: &str, ptype: &str) -> Result<()> {
        let mut inner = self.lock();
        inner.calls.push(format!("remove_type {app}/{ptype}"));
        inner.desired.remove(&(app.to_string(), ptype.to_string()));
        if let Some(list) = inner.processes.get_mut(app) {
            list.retain(|p| p.ptype != ptype);
        }
        drop(inner);
        self.bump();
        Ok(())
    }

    async fn remove_app(&self, app: &str) -> Result<()> {
        let mut inner = self.lock();
        inner.calls.push(format!("remove_app {app}"));
        inner.desired.retain(|(a, _), _| a != app);
        inner.processes.remove(app);
        drop(inner);
        self.bump();
        Ok(())
    }

    async fn processes(&self, app: &str) -> Result<Vec<ProcessStatus>> {
        Ok(self.lock().processes.get(app).cloned().unwrap_or_default())
    }

    async fn restart_process(&self, _app: &str, name: &str) -> Result<()> {
        Err(EngineError::ProcessNotFound(name.to_string()))
    }

    async fn exec(&self, _app: &str, name: &str, _request: ExecRequest) -> Result<ExecSession> {
        Err(EngineError::ProcessNotFound(name.to_string()))
    }

    async fn logs(
        &self,
        _app: &str,
        _lines: usize,
        _process: Option<&str>,
    ) -> Result<Vec<LogLine>> {
        Ok(Vec::new())
    }

    fn follow_logs(&self, _app: &str) -> LogStream {
        Box::pin(tokio_stream::empty())
    }

    fn changes(&self, _app: Option<&str>) -> watch::Receiver<u64> {
        // One counter for all apps: a waiter re-reads and finds nothing new.
        self.changes.subscribe()
    }

    async fn usage(&self, app: &str) -> Result<Vec<drycc_engine::ProcessUsage>> {
        self.lock().calls.push(format!("usage {app}"));
        Ok(Vec::new())
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            checkouts: true,
            images: true,
            limits: Err("the fake engine runs nothing".to_string()),
            autoscaler: false,
        }
    }

    async fn apps(&self) -> Result<Vec<String>> {
        let inner = self.lock();
        let mut apps: Vec<String> = inner
            .desired
            .keys()
            .map(|(a, _)| a.clone())
            .chain(inner.processes.keys().cloned())
            .collect();
        apps.sort();
        apps.dedup();
        Ok(apps)
    }

    async fn close(&self) {}

    async fn stop_all(&self) {}
}
