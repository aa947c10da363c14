//! Bounds on everything a client controls, each one configurable and each
//! answered with a 4xx that names it (and the setting that changes it):
//!
//! | what | setting | answer |
//! |---|---|---|
//! | API request body | `DRYCC_MAX_BODY_KIB` | 413 |
//! | request headers (URI included) | `DRYCC_MAX_HEADER_KIB` | 431 |
//! | WebSocket message (exec, logs) | `DRYCC_MAX_WS_MESSAGE_KIB` | close 1009 |
//! | exec sessions at once per user | `DRYCC_MAX_EXEC_SESSIONS_PER_USER` | 429 |
//! | pushes at once per app | `DRYCC_MAX_PUSHES_PER_APP` | 429 |
//! | Procfile size and lines | `DRYCC_MAX_PROCFILE_KIB`, `DRYCC_MAX_PROCFILE_LINES` | 400, or a refused push |
//! | apps owned per user | `DRYCC_MAX_APPS_PER_USER` | 409 |
//! | log line length | `DRYCC_MAX_LOG_LINE_KIB` | longer lines are cut |
//!
//! The router's own (`DRYCC_ROUTER_MAX_HEADER_KIB`) and the scale bound
//! (`DRYCC_MAX_PROCESSES_PER_TYPE`) live with what they bound. What is
//! checked on a request as it arrives is in `http::limits`; here are the
//! bounds services keep.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Counted holders of something bounded per key (exec sessions per user,
/// pushes per app). A [`Slot`] is given back when dropped, however its
/// holder ends.
#[derive(Clone, Default)]
pub struct Slots {
    held: Arc<Mutex<HashMap<String, usize>>>,
}

/// One held place of [`Slots`].
pub struct Slot {
    held: Arc<Mutex<HashMap<String, usize>>>,
    key: String,
}

impl Slots {
    /// A place for `key` if it holds fewer than `max`.
    pub fn take(&self, key: &str, max: usize) -> Option<Slot> {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        let count = held.entry(key.to_string()).or_insert(0);
        if *count >= max {
            return None;
        }
        *count += 1;
        Some(Slot {
            held: Arc::clone(&self.held),
            key: key.to_string(),
        })
    }

    /// How many places `key` holds now.
    #[cfg(test)]
    pub fn count(&self, key: &str) -> usize {
        let held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        held.get(key).copied().unwrap_or(0)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = held.get_mut(&self.key) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                // The map holds only keys in use.
                held.remove(&self.key);
            }
        }
    }
}

/// A Procfile's text within the size and line limits, or why not.
pub fn check_procfile(text: &str, max_kib: usize, max_lines: usize) -> Result<(), String> {
    let max_bytes = max_kib.saturating_mul(1024);
    if text.len() > max_bytes {
        return Err(format!(
            "Procfile too large: {} bytes, at most {max_bytes} are accepted (DRYCC_MAX_PROCFILE_KIB)",
            text.len()
        ));
    }
    let lines = text.lines().count();
    if lines > max_lines {
        return Err(format!(
            "Procfile too long: {lines} lines, at most {max_lines} are accepted (DRYCC_MAX_PROCFILE_LINES)"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_bounded_per_key_and_given_back() {
        let slots = Slots::default();
        let a1 = slots.take("alice", 2).unwrap();
        let _a2 = slots.take("alice", 2).unwrap();
        assert!(slots.take("alice", 2).is_none());
        let _b = slots.take("bob", 2).unwrap();
        drop(a1);
        assert_eq!(slots.count("alice"), 1);
        assert!(slots.take("alice", 2).is_some());
        assert!(slots.take("carol", 0).is_none());
    }

    #[test]
    fn procfiles_are_bounded_in_bytes_and_lines() {
        assert!(check_procfile("web: a\nworker: b\n", 1, 2).is_ok());
        let lines = check_procfile("a: 1\nb: 2\nc: 3\n", 1, 2).unwrap_err();
        assert!(lines.contains("3 lines") && lines.contains("DRYCC_MAX_PROCFILE_LINES"));
        let big = format!("web: {}\n", "x".repeat(2000));
        let size = check_procfile(&big, 1, 10).unwrap_err();
        assert!(size.contains("at most 1024") && size.contains("DRYCC_MAX_PROCFILE_KIB"));
    }
}
