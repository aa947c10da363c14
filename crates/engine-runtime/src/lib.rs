//! The runtime of the engines that keep their own process table (local
//! processes, Docker containers), so that they differ only in how they run
//! one process: the process table (`table`), the reconcile loop of one
//! process type over it (`reconcile`), the orders a process's supervisor
//! follows (`orders`), the record of an exit in a process's status
//! (`status`), readiness and liveness probe loops with TCP and HTTP checks
//! (`probe`) and CPU millicores between two readings (`usage`). The rules
//! themselves (back-off, rollout steps) are in `drycc_model::lifecycle`;
//! the engine interface is in `drycc_engine`, the change counters every
//! engine hands out in `drycc_engine_changes`.

pub mod orders;
pub mod probe;
pub mod reconcile;
pub mod status;
pub mod table;
pub mod usage;
