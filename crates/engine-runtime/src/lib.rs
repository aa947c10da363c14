//! The runtime of the engines that keep their own process table (local
//! processes, Docker containers), so that they differ only in how they run
//! one process:
//! - `process_table`: the state shared by an engine's handle and its
//!   supervisors, and the `Engine` operations that only touch it; what an
//!   engine adds is behind its `Host`;
//! - `supervisor`: one task per process (start, probes, crash restart with
//!   back-off, SIGTERM then SIGKILL after the grace period), the same for
//!   every engine; how one process runs is behind `Runner`;
//! - `table` and `reconcile`: the entries of the table and the reconcile
//!   loop of one process type over them (the rollout rules of
//!   `drycc_model::lifecycle`);
//! - `orders`: what the table asks of a supervisor; `status`: the record
//!   of an exit in a process's status;
//! - `probe`: readiness and liveness loops, TCP and HTTP checks;
//! - `usage`: which processes a usage sample reads, and CPU in millicores
//!   between two readings;
//! - `ports`: the ports promised to processes on 127.0.0.1.
//!
//! The rules themselves (back-off, rollout steps) are in
//! `drycc_model::lifecycle`; the engine interface is in `drycc_engine`, the
//! change counters every engine hands out in `drycc_engine_changes`.

pub mod orders;
pub mod ports;
pub mod probe;
pub mod process_table;
pub mod reconcile;
pub mod status;
pub mod supervisor;
pub mod table;
pub mod usage;

pub use process_table::{new_status, Host, Policy, ProcessTable, State};
pub use supervisor::{Run, Runner, Signal};
