//! The reconcile loop of one (app, type), written once over an engine's
//! process table: ask `drycc_model::lifecycle::type_step` for the next
//! step and carry it out, until there is nothing more to do right now.

use std::sync::Arc;

use drycc_engine::ProcessTemplate;
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
