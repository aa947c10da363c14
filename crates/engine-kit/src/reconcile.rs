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

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::time::Duration;

    use drycc_engine::{Artifact, Command};

    struct Proc {
        ptype: String,
        hash: String,
        ready: bool,
        seq: u64,
        stopping: bool,
        retiring: bool,
    }

    /// A table of one app that records what the loop asks of it.
    #[derive(Default)]
    struct Fake {
        types: BTreeMap<String, (Arc<ProcessTemplate>, u32)>,
        procs: BTreeMap<String, Proc>,
        seq: u64,
        started: Vec<String>,
        stopped: Vec<String>,
    }

    fn template(ptype: &str, hash: &str) -> Arc<ProcessTemplate> {
        Arc::new(ProcessTemplate {
            app: "a".into(),
            ptype: ptype.into(),
            release: 1,
            hash: hash.into(),
            artifact: Artifact::Checkout { path: "/".into() },
            command: Command::Line("true".into()),
            env: Default::default(),
            grace_period: Duration::from_secs(1),
            readiness: None,
            liveness: None,
            cpu_millis: None,
            memory_bytes: None,
        })
    }

    impl Table for Fake {
        fn desired(&self, _app: &str, ptype: &str) -> Option<(Arc<ProcessTemplate>, u32)> {
            self.types.get(ptype).cloned()
        }

        fn observe<'a>(
            &'a self,
            _app: &'a str,
            ptype: &'a str,
        ) -> impl Iterator<Item = Observed<'a, &'a str>> {
            self.procs
                .iter()
                .filter(move |(_, p)| p.ptype == ptype)
                .map(|(name, p)| Observed {
                    id: name.as_str(),
                    template_hash: &p.hash,
                    ready: p.ready,
                    created: p.seq,
                    stopping: p.stopping,
                    retiring: p.retiring,
                })
        }

        fn stop(&mut self, _app: &str, name: &str) {
            if let Some(p) = self.procs.get_mut(name) {
                p.stopping = true;
                self.stopped.push(name.to_string());
            }
        }

        fn start(&mut self, template: &Arc<ProcessTemplate>) {
            self.seq += 1;
            let name = format!("{}-{}", template.ptype, self.seq);
            self.started.push(name.clone());
            self.procs.insert(
                name,
                Proc {
                    ptype: template.ptype.clone(),
                    hash: template.hash.clone(),
                    ready: false,
                    seq: self.seq,
                    stopping: false,
                    retiring: false,
                },
            );
        }

        fn find(&self, _app: &str, name: &str) -> Option<(String, bool)> {
            let p = self.procs.get(name)?;
            Some((p.ptype.clone(), p.stopping))
        }

        fn deployed(&self, _app: &str, ptype: &str) -> bool {
            self.types.contains_key(ptype)
        }

        fn retire(&mut self, _app: &str, name: &str) {
            if let Some(p) = self.procs.get_mut(name) {
                p.retiring = true;
            }
        }
    }

    #[test]
    fn converge_starts_what_is_missing_and_stops_the_excess() {
        let mut fake = Fake::default();
        fake.types.insert("web".into(), (template("web", "h1"), 3));
        converge(&mut fake, "a", "web");
        assert_eq!(fake.started, vec!["web-1", "web-2", "web-3"]);
        fake.types.insert("web".into(), (template("web", "h1"), 1));
        converge(&mut fake, "a", "web");
        // Not ready alike: the newest go.
        fake.stopped.sort();
        assert_eq!(fake.stopped, vec!["web-2", "web-3"]);
        // Nothing deployed: nothing to do.
        converge(&mut fake, "a", "worker");
        assert_eq!(fake.started.len(), 3);
    }

    #[test]
    fn restart_starts_a_successor_and_refuses_what_it_cannot_restart() {
        let mut fake = Fake::default();
        fake.types.insert("web".into(), (template("web", "h1"), 1));
        converge(&mut fake, "a", "web");
        if let Some(p) = fake.procs.get_mut("web-1") {
            p.ready = true;
        }
        restart(&mut fake, "a", "web-1").unwrap();
        assert_eq!(fake.started, vec!["web-1", "web-2"]);
        assert!(fake.stopped.is_empty(), "capacity never drops");
        assert!(matches!(
            restart(&mut fake, "a", "web-9"),
            Err(EngineError::ProcessNotFound(_))
        ));
        fake.stop("a", "web-2");
        assert!(matches!(
            restart(&mut fake, "a", "web-2"),
            Err(EngineError::Invalid(_))
        ));
        fake.types.clear();
        assert!(matches!(
            restart(&mut fake, "a", "web-1"),
            Err(EngineError::Invalid(_))
        ));
    }
}
