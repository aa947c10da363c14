//! The reconcile loop of one (app, type), written once over an engine's
//! process table: ask `drycc_model::lifecycle::type_step` for the next
//! step and carry it out, until there is nothing more to do right now.
//! A restart of one process is a step of that loop too (`restart`).

use std::sync::Arc;

use drycc_engine::{EngineError, ProcessTemplate};
use drycc_model::lifecycle::{type_step, Observed};

/// What the loop needs of an engine's process table.
pub trait Table {
    /// The desired template and replica count of (`app`, `ptype`); `None`
    /// when nothing is to be done (not deployed, or the engine is closed).
    fn desired(&self, app: &str, ptype: &str) -> Option<(Arc<ProcessTemplate>, u32)>;

    /// The processes of (`app`, `ptype`) as the lifecycle rules see them.
    fn observe<'a>(
        &'a self,
        app: &'a str,
        ptype: &'a str,
    ) -> impl Iterator<Item = Observed<'a, &'a str>>;

    /// Ask the process `name` of `app` to stop (it becomes `terminating`).
    fn stop(&mut self, app: &str, name: &str);

    /// Enter a new process of `template` (it becomes `starting`).
    fn start(&mut self, template: &Arc<ProcessTemplate>);

    /// The type of process `name` of `app` and whether it is stopping.
    fn find(&self, app: &str, name: &str) -> Option<(String, bool)>;

    /// Whether `ptype` of `app` is deployed (closed engine or not).
    fn deployed(&self, app: &str, ptype: &str) -> bool;

    /// Mark process `name` of `app` for replacement.
    fn retire(&mut self, app: &str, name: &str);
}

/// Replace process `name` of `app`: counted like a process of an old
/// template from now on, the rollout rule starts a successor (new name)
/// and retires this one once the successor is ready: capacity never drops.
pub fn restart(table: &mut impl Table, app: &str, name: &str) -> Result<(), EngineError> {
    let (ptype, stopping) = table
        .find(app, name)
        .ok_or_else(|| EngineError::ProcessNotFound(name.to_string()))?;
    if stopping {
        return Err(EngineError::Invalid(format!(
            "process {name} is terminating; it is being replaced already"
        )));
    }
    if !table.deployed(app, &ptype) {
        return Err(EngineError::Invalid(format!(
            "process {name} belongs to no deployment"
        )));
    }
    table.retire(app, name);
    converge(table, app, &ptype);
    Ok(())
}

/// Converge one (app, type). Stops and starts take effect in the table at
/// once; the slow work follows in the engine's supervisors.
pub fn converge(table: &mut impl Table, app: &str, ptype: &str) {
    // Each pass either starts processes (bounded by the replica count)
    // or retires some (bounded by the existing ones), so this ends in a
    // few passes; the bound only guards against a rule bug.
    for _ in 0..8 {
        let Some((template, replicas)) = table.desired(app, ptype) else {
            return;
        };
        let step = type_step(replicas, &template.hash, table.observe(app, ptype));
        if step.is_empty() {
            return;
        }
        let start = step.start;
        let victims: Vec<String> = step.terminate.iter().map(|s| s.to_string()).collect();
        for victim in victims {
            table.stop(app, &victim);
        }
        for _ in 0..start {
            table.start(&template);
        }
    }
}
