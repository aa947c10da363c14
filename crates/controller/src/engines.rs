//! Two engines behind one: checkouts run on the local engine (or, with
//! `DRYCC_ENGINE=docker`, in containers of the slug image), images on the
//! container engine (Docker). Each type goes to the
//! engine of its artifact; what both report is merged, so the rest of the
//! controller sees a single engine.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use drycc_engine::{
    Artifact, Capabilities, Deployment, Engine, EngineError, ExecRequest, ExecSession, LogLine,
    LogStream, ProcessStatus, ProcessUsage, Result,
};
use tokio::sync::watch;
use tokio_stream::StreamExt;

use crate::events::merge_tail;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Slot {
    Local,
    Containers,
}

pub struct Engines {
    local: Arc<dyn Engine>,
    containers: Arc<dyn Engine>,
    /// Which engine runs each type: a type whose artifact changed kind is
    /// removed from the other engine.
    placed: Mutex<HashMap<(String, String), Slot>>,
    /// Where checkouts run.
    checkouts: Slot,
    /// Bumped on a change of either engine.
    changes: watch::Sender<u64>,
    /// Forwards both engines' change counters; ends with `close`.
    forward: tokio::task::JoinHandle<()>,
}

impl Engines {
    /// Both engines behind one. Must run inside a tokio runtime.
    pub fn new(
        local: Arc<dyn Engine>,
        containers: Arc<dyn Engine>,
        checkouts_in_containers: bool,
    ) -> Engines {
        let changes = watch::channel(0u64).0;
        let (mut a, mut b) = (local.changes(None), containers.changes(None));
        let sender = changes.clone();
        let forward = tokio::spawn(async move {
            loop {
                let open = tokio::select! {
                    r = a.changed() => r.is_ok(),
                    r = b.changed() => r.is_ok(),
                };
                if !open {
                    return;
                }
                sender.send_modify(|n| *n = n.wrapping_add(1));
            }
        });
        Engines {
            local,
            containers,
            placed: Mutex::new(HashMap::new()),
            checkouts: if checkouts_in_containers {
                Slot::Containers
            } else {
                Slot::Local
            },
            changes,
            forward,
        }
    }

    fn engine(&self, slot: Slot) -> &Arc<dyn Engine> {
        match slot {
            Slot::Local => &self.local,
            Slot::Containers => &self.containers,
        }
    }

    fn all(&self) -> [&Arc<dyn Engine>; 2] {
        [&self.local, &self.containers]
    }

    /// The engine that has process `name` of `app`.
    async fn owner(&self, app: &str, name: &str) -> Result<&Arc<dyn Engine>> {
        for engine in self.all() {
            if engine.processes(app).await?.iter().any(|p| p.name == name) {
                return Ok(engine);
            }
        }
        Err(EngineError::ProcessNotFound(name.to_string()))
    }
}

#[async_trait]
impl Engine for Engines {
    async fn apply(&self, deployment: Deployment) -> Result<()> {
        let slot = match deployment.template.artifact {
            Artifact::Checkout { .. } => self.checkouts,
            Artifact::Image(_) => Slot::Containers,
        };
        let key = (
            deployment.template.app.clone(),
            deployment.template.ptype.clone(),
        );
        let before = self
            .placed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key.clone(), slot);
        if before != Some(slot) {
            // Unknown after a restart, or moved: make sure the other engine
            // does not keep running the type.
            let other = match slot {
                Slot::Local => Slot::Containers,
                Slot::Containers => Slot::Local,
            };
            self.engine(other).remove_type(&key.0, &key.1).await?;
        }
        self.engine(slot).apply(deployment).await
    }

    async fn remove_type(&self, app: &str, ptype: &str) -> Result<()> {
        self.placed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&(app.to_string(), ptype.to_string()));
        for engine in self.all() {
            engine.remove_type(app, ptype).await?;
        }
        Ok(())
    }

    async fn remove_app(&self, app: &str) -> Result<()> {
        self.placed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|(a, _), _| a != app);
        for engine in self.all() {
            engine.remove_app(app).await?;
        }
        Ok(())
    }

    async fn processes(&self, app: &str) -> Result<Vec<ProcessStatus>> {
        let mut all = self.local.processes(app).await?;
        all.extend(self.containers.processes(app).await?);
        all.sort_by(|a, b| (&a.ptype, &a.name).cmp(&(&b.ptype, &b.name)));
        Ok(all)
    }

    async fn restart_process(&self, app: &str, name: &str) -> Result<()> {
        self.owner(app, name)
            .await?
            .restart_process(app, name)
            .await
    }

    async fn exec(&self, app: &str, name: &str, request: ExecRequest) -> Result<ExecSession> {
        self.owner(app, name).await?.exec(app, name, request).await
    }

    async fn logs(&self, app: &str, lines: usize, process: Option<&str>) -> Result<Vec<LogLine>> {
        let local = self.local.logs(app, lines, process).await?;
        let containers = self.containers.logs(app, lines, process).await?;
        Ok(merge_tail(local, containers, lines))
    }

    fn follow_logs(&self, app: &str) -> LogStream {
        Box::pin(
            self.local
                .follow_logs(app)
                .merge(self.containers.follow_logs(app)),
        )
    }

    fn changes(&self, _app: Option<&str>) -> watch::Receiver<u64> {
        // One counter: a waiter on one app may wake for another and re-read.
        self.changes.subscribe()
    }

    async fn usage(&self, app: &str) -> Result<Vec<ProcessUsage>> {
        let mut all = self.local.usage(app).await?;
        all.extend(self.containers.usage(app).await?);
        Ok(all)
    }

    fn capabilities(&self) -> Capabilities {
        let (local, containers) = (self.local.capabilities(), self.containers.capabilities());
        Capabilities {
            checkouts: local.checkouts || containers.checkouts,
            images: local.images || containers.images,
            limits: local.limits.and(containers.limits),
            autoscaler: false,
        }
    }

    async fn apps(&self) -> Result<Vec<String>> {
        let mut apps = self.local.apps().await?;
        apps.extend(self.containers.apps().await?);
        apps.sort();
        apps.dedup();
        Ok(apps)
    }

    async fn close(&self) {
        self.forward.abort();
        for engine in self.all() {
            engine.close().await;
        }
    }

    async fn stop_all(&self) {
        self.forward.abort();
        for engine in self.all() {
            engine.stop_all().await;
        }
    }
}
