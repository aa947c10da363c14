//! The entries of the process table, one per app: desired deployments per
//! type and one entry per process, with what the engine itself adds to a
//! process (`X`: a container's ports, nothing natively). `ProcessTable`
//! holds them under its mutex; `Table` is how the reconcile loop reaches
//! them (and how its tests give it a table of their own).

use std::collections::{BTreeMap, HashMap};
use std::ops::{Deref, DerefMut};
use std::sync::Arc;

use tokio::sync::watch;

use drycc_engine::{ProcessState, ProcessStatus, ProcessTemplate};

use crate::orders::{self, Order};

/// What an engine's table gives the reconcile loop.
pub trait Table {
    /// What the engine adds to each process entry.
    type Extra;

    fn apps(&self) -> &HashMap<String, AppEntry<Self::Extra>>;

    fn apps_mut(&mut self) -> &mut HashMap<String, AppEntry<Self::Extra>>;

    /// Nothing starts or restarts any more (`stop_all`, `close`).
    fn closed(&self) -> bool;

    /// Enter a new process of `template` (it becomes `starting`).
    fn start(&mut self, template: &Arc<ProcessTemplate>);
}

/// One app in the table.
pub struct AppEntry<X> {
    /// Desired state per process type.
    pub types: HashMap<String, Desired>,
    /// Every process that exists, by name.
    pub procs: BTreeMap<String, Tracked<X>>,
    /// `remove_app` was called: forget the app once its last process is
    /// gone.
    pub removed: bool,
}

impl<X> AppEntry<X> {
    /// Every process of the app, sorted by type then name (the map is
    /// sorted by name; a stable sort by type keeps that order).
    pub fn statuses(&self) -> Vec<drycc_engine::ProcessStatus> {
        let mut list: Vec<_> = self.procs.values().map(|p| p.status.clone()).collect();
        list.sort_by(|a, b| a.ptype.cmp(&b.ptype));
        list
    }
}

impl<X> Default for AppEntry<X> {
    fn default() -> Self {
        AppEntry {
            types: HashMap::new(),
            procs: BTreeMap::new(),
            removed: false,
        }
    }
}

/// The desired deployment of one type.
pub struct Desired {
    pub replicas: u32,
    pub template: Arc<ProcessTemplate>,
}

/// One process in the table.
pub struct Tracked<X> {
    pub status: ProcessStatus,
    pub template: Arc<ProcessTemplate>,
    /// Creation order ("newest" for scale-down victims).
    pub seq: u64,
    /// Being replaced (`restart_process`): counted like a process of an old
    /// template, so the rollout rule starts its successor first.
    pub retiring: bool,
    /// Asked to terminate; it no longer counts for anything.
    pub stopping: bool,
    /// The orders its supervisor follows.
    pub orders: watch::Sender<Order>,
    /// What the engine adds (reached through `Deref`).
    pub extra: X,
}

impl<X> Tracked<X> {
    /// A new process of `template`, its supervisor following `orders`.
    pub fn new(
        status: ProcessStatus,
        template: Arc<ProcessTemplate>,
        seq: u64,
        orders: watch::Sender<Order>,
        extra: X,
    ) -> Self {
        Tracked {
            status,
            template,
            seq,
            retiring: false,
            stopping: false,
            orders,
            extra,
        }
    }

    /// Mark the process terminating and wake its supervisor.
    pub fn request_stop(&mut self) {
        orders::request_stop(&mut self.stopping, &mut self.status, &self.orders);
    }

    /// Let go of the process without touching it (engine released).
    pub fn detach(&self) {
        orders::detach(&self.orders);
    }

    /// Whether `exec` may run in it: its command is running now.
    pub fn is_running(&self) -> bool {
        !self.stopping
            && self.status.pid.is_some()
            && matches!(self.status.state, ProcessState::Starting | ProcessState::Up)
    }
}

impl<X> Deref for Tracked<X> {
    type Target = X;

    fn deref(&self) -> &X {
        &self.extra
    }
}

impl<X> DerefMut for Tracked<X> {
    fn deref_mut(&mut self) -> &mut X {
        &mut self.extra
    }
}
