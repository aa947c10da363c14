//! The reconcile loop of one (app, type), written once over an engine's
//! process table: ask `drycc_model::lifecycle::type_step` for the next
//! step and carry it out, until there is nothing more to do right now.
//! A restart of one process is a step of that loop too (`restart`).

use std::sync::Arc;

use drycc_engine::{EngineError, ProcessTemplate};
use drycc_model::lifecycle::{type_step, Observed};

use crate::table::{Table, Tracked};

/// The desired template and replica count of (`app`, `ptype`); `None`
/// when nothing is to be done (not deployed, or the engine is closed).
fn desired(table: &impl Table, app: &str, ptype: &str) -> Option<(Arc<ProcessTemplate>, u32)> {
    if table.closed() {
        return None;
    }
    let desired = table.apps().get(app)?.types.get(ptype)?;
    Some((Arc::clone(&desired.template), desired.replicas))
}

/// The processes of (`app`, `ptype`) as the lifecycle rules see them.
fn observe<'a, T: Table>(
    table: &'a T,
    app: &str,
    ptype: &'a str,
) -> impl Iterator<Item = Observed<'a, &'a str>> {
    table
        .apps()
        .get(app)
        .into_iter()
        .flat_map(|entry| entry.procs.values())
        .filter(move |p| p.status.ptype == ptype)
        .map(|p| Observed {
            id: p.status.name.as_str(),
            template_hash: &p.template.hash,
            ready: p.status.ready,
            created: p.seq,
            stopping: p.stopping,
            retiring: p.retiring,
        })
}

fn process_mut<'a, T: Table>(
    table: &'a mut T,
    app: &str,
    name: &str,
) -> Option<&'a mut Tracked<T::Extra>> {
    table.apps_mut().get_mut(app)?.procs.get_mut(name)
}

/// Converge one (app, type). Stops and starts take effect in the table at
/// once; the slow work follows in the engine's supervisors.
pub fn converge(table: &mut impl Table, app: &str, ptype: &str) {
    // Each pass either starts processes (bounded by the replica count)
    // or retires some (bounded by the existing ones), so this ends in a
    // few passes; the bound only guards against a rule bug.
    for _ in 0..8 {
        let Some((template, replicas)) = desired(table, app, ptype) else {
            return;
        };
        let step = type_step(replicas, &template.hash, observe(table, app, ptype));
        if step.is_empty() {
            return;
        }
        let start = step.start;
        let victims: Vec<String> = step.terminate.iter().map(|s| s.to_string()).collect();
        for victim in victims {
            if let Some(proc) = process_mut(table, app, &victim) {
                proc.request_stop();
            }
        }
        for _ in 0..start {
            table.start(&template);
        }
    }
}

/// Replace process `name` of `app`: counted like a process of an old
/// template from now on, the rollout rule starts a successor (new name)
/// and retires this one once the successor is ready: capacity never drops.
pub fn restart(table: &mut impl Table, app: &str, name: &str) -> Result<(), EngineError> {
    let (ptype, stopping) = table
        .apps()
        .get(app)
        .and_then(|entry| entry.procs.get(name))
        .map(|p| (p.status.ptype.clone(), p.stopping))
        .ok_or_else(|| EngineError::ProcessNotFound(name.to_string()))?;
    if stopping {
        return Err(EngineError::Invalid(format!(
            "process {name} is terminating; it is being replaced already"
        )));
    }
    let deployed = table.apps().get(app).map(|e| e.types.contains_key(&ptype));
    if deployed != Some(true) {
        return Err(EngineError::Invalid(format!(
            "process {name} belongs to no deployment"
        )));
    }
    if let Some(proc) = process_mut(table, app, name) {
        proc.retiring = true;
    }
    converge(table, app, &ptype);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    use drycc_engine::{Artifact, Command, ProcessState, ProcessStatus};
    use drycc_engine_conformance::plain_template;
    use tokio::sync::watch;

    use crate::orders::Order;
    use crate::table::{AppEntry, Desired};

    /// A table of one app "a" that records the starts the loop asks for.
    #[derive(Default)]
    struct Fake {
        apps: HashMap<String, AppEntry<()>>,
        closed: bool,
        seq: u64,
        started: Vec<String>,
    }

    impl Fake {
        fn deploy(&mut self, ptype: &str, release: u32, replicas: u32) {
            let artifact = Artifact::Checkout { path: "/".into() };
            let command = Command::Line("true".into());
            let template = Arc::new(plain_template("a", ptype, release, artifact, command));
            let entry = self.apps.entry("a".into()).or_default();
            entry
                .types
                .insert(ptype.into(), Desired { replicas, template });
        }

        fn stopping(&self) -> Vec<String> {
            let procs = self.apps.get("a").map(|e| &e.procs).into_iter().flatten();
            procs
                .filter(|(_, p)| p.stopping)
                .map(|(n, _)| n.clone())
                .collect()
        }
    }

    impl Table for Fake {
        type Extra = ();

        fn apps(&self) -> &HashMap<String, AppEntry<()>> {
            &self.apps
        }

        fn apps_mut(&mut self) -> &mut HashMap<String, AppEntry<()>> {
            &mut self.apps
        }

        fn closed(&self) -> bool {
            self.closed
        }

        fn start(&mut self, template: &Arc<ProcessTemplate>) {
            self.seq += 1;
            let name = format!("{}-{}", template.ptype, self.seq);
            self.started.push(name.clone());
            let status = ProcessStatus {
                name: name.clone(),
                app: "a".into(),
                ptype: template.ptype.clone(),
                release: template.release,
                hash: template.hash.clone(),
                state: ProcessState::Starting,
                started: Default::default(),
                ready: false,
                restarts: 0,
                pid: None,
                endpoint: None,
                last_exit: None,
                command: String::new(),
                argv: Vec::new(),
                image: None,
            };
            let orders = watch::channel(Order::Run).0;
            let proc = Tracked::new(status, Arc::clone(template), self.seq, orders, ());
            let entry = self.apps.entry("a".into()).or_default();
            entry.procs.insert(name, proc);
        }
    }

    #[test]
    fn converge_starts_what_is_missing_and_stops_the_excess() {
        let mut fake = Fake::default();
        fake.deploy("web", 1, 3);
        converge(&mut fake, "a", "web");
        assert_eq!(fake.started, vec!["web-1", "web-2", "web-3"]);
        fake.deploy("web", 1, 1);
        converge(&mut fake, "a", "web");
        // Not ready alike: the newest go.
        assert_eq!(fake.stopping(), vec!["web-2", "web-3"]);
        // Nothing deployed, or closed: nothing to do.
        converge(&mut fake, "a", "worker");
        fake.closed = true;
        fake.deploy("web", 1, 5);
        converge(&mut fake, "a", "web");
        assert_eq!(fake.started.len(), 3);
    }

    #[test]
    fn restart_starts_a_successor_and_refuses_what_it_cannot_restart() {
        let mut fake = Fake::default();
        fake.deploy("web", 1, 1);
        converge(&mut fake, "a", "web");
        if let Some(p) = process_mut(&mut fake, "a", "web-1") {
            p.status.ready = true;
        }
        restart(&mut fake, "a", "web-1").unwrap();
        assert_eq!(fake.started, vec!["web-1", "web-2"]);
        assert!(fake.stopping().is_empty(), "capacity never drops");
        assert!(matches!(
            restart(&mut fake, "a", "web-9"),
            Err(EngineError::ProcessNotFound(_))
        ));
        if let Some(p) = process_mut(&mut fake, "a", "web-2") {
            p.request_stop();
        }
        assert!(matches!(
            restart(&mut fake, "a", "web-2"),
            Err(EngineError::Invalid(_))
        ));
        if let Some(entry) = fake.apps.get_mut("a") {
            entry.types.clear();
        }
        assert!(matches!(
            restart(&mut fake, "a", "web-1"),
            Err(EngineError::Invalid(_))
        ));
    }
}
