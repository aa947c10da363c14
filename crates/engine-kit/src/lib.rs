//! Runtime helpers that every engine needs in the same way, so that the
//! engines differ only in how they run processes: the process table
//! (`table`), the reconcile loop of one process type over it
//! (`reconcile`), readiness and liveness probe loops with TCP and HTTP
//! checks (`probe`), CPU millicores between two readings (`usage`), change
//! counters that callers wait on (`changes`), the record of an exit in a
//! process's status (`status`) and the orders a process's supervisor
//! follows (`supervise`). The rules themselves (back-off, rollout steps)
//! are in `drycc_model::lifecycle`; the engine interface is in
//! `drycc_engine`.

pub mod changes;
pub mod probe;
pub mod reconcile;
pub mod status;
pub mod supervise;
pub mod table;
pub mod usage;
