//! Process states, as shown in the STATE column.

use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProcessState {
    /// Spawned, not yet ready.
    Starting,
    /// Ready.
    Up,
    /// Exited, waiting in back-off before its next start.
    Crashed,
    /// Stop signal sent, within the grace period.
    Terminating,
    /// Exited and will not be restarted.
    Down,
    /// Anything the engine cannot classify.
    Error,
}

impl ProcessState {
    pub fn as_str(self) -> &'static str {
        match self {
            ProcessState::Starting => "starting",
            ProcessState::Up => "up",
            ProcessState::Crashed => "crashed",
            ProcessState::Terminating => "terminating",
            ProcessState::Down => "down",
            ProcessState::Error => "error",
        }
    }
}

impl fmt::Display for ProcessState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
