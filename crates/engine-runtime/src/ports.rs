//! The ports an engine promises its processes on 127.0.0.1 (a native
//! process's `PORT`, a container's published ports): ports of a configured
//! range that nothing can be bound on now and that no process of the engine
//! holds, handed out round robin so that a port just freed is not handed
//! out again at once.

use std::collections::HashSet;
use std::io;
use std::net::{Ipv4Addr, TcpListener};
use std::ops::RangeInclusive;
use std::sync::Mutex;

/// The promised ports of one engine.
#[derive(Debug)]
pub struct Ports {
    range: RangeInclusive<u16>,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    taken: HashSet<u16>,
    /// Where the round robin goes on.
    cursor: u16,
}

/// Whether `port` on 127.0.0.1 can be bound now.
pub fn bindable(port: u16) -> bool {
    TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok()
}

impl Ports {
    /// Ports of `range`, the round robin starting at a random place:
    /// engines on one machine share a range, and so rarely promise the same
    /// free port before either process binds it.
    pub fn new(range: RangeInclusive<u16>) -> Ports {
        let cursor = if range.is_empty() {
            *range.start()
        } else {
            rand::Rng::gen_range(&mut rand::thread_rng(), range.clone())
        };
        Ports {
            range,
            state: Mutex::new(State {
                taken: HashSet::new(),
                cursor,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Promise `count` free ports (all or none).
    pub fn take(&self, count: usize) -> io::Result<Vec<u16>> {
        self.take_where(count, bindable)
    }

    /// [`Ports::take`], with the check of a port passed in so the rule is
    /// tested without depending on what else holds ports.
    fn take_where(&self, count: usize, free: impl Fn(u16) -> bool) -> io::Result<Vec<u16>> {
        let (start, end) = (*self.range.start(), *self.range.end());
        let mut state = self.lock();
        let mut cursor = state.cursor;
        let mut found = Vec::with_capacity(count);
        let size = u32::from(end.saturating_sub(start)) + 1;
        for _ in 0..size {
            if found.len() == count || self.range.is_empty() {
                break;
            }
            let port = if self.range.contains(&cursor) {
                cursor
            } else {
                start
            };
            cursor = if port >= end { start } else { port + 1 };
            // Binding under the lock keeps "free and not promised" atomic.
            if !state.taken.contains(&port) && !found.contains(&port) && free(port) {
                found.push(port);
            }
        }
        if found.len() < count {
            return Err(io::Error::new(
                io::ErrorKind::AddrInUse,
                format!("no free TCP port on 127.0.0.1 in {start}-{end}"),
            ));
        }
        state.cursor = cursor;
        state.taken.extend(found.iter().copied());
        Ok(found)
    }

    /// Count `port` as promised (a process found running holds it).
    pub fn claim(&self, port: u16) {
        self.lock().taken.insert(port);
    }

    /// Give ports back (their process is gone or got others).
    pub fn release(&self, ports: impl IntoIterator<Item = u16>) {
        let mut state = self.lock();
        for port in ports {
            state.taken.remove(&port);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(range: RangeInclusive<u16>, cursor: u16) -> Ports {
        let ports = Ports::new(range);
        ports.lock().cursor = cursor;
        ports
    }

    #[test]
    fn ports_skip_taken_and_busy_ones_and_go_round() {
        let busy = |port: u16| port != 100;
        let ports = pool(100..=103, 100);
        ports.claim(101);
        assert_eq!(ports.take_where(1, busy).unwrap(), [102]);
        assert_eq!(ports.take_where(1, busy).unwrap(), [103]);
        ports.release([102, 103]);
        // Round again past the busy and the taken port.
        assert_eq!(ports.take_where(1, busy).unwrap(), [102]);
        // A cursor outside the range starts at its beginning.
        let outside = pool(100..=103, 7);
        assert_eq!(outside.take_where(1, |_| true).unwrap(), [100]);
        assert!(ports.take_where(3, |_| true).is_err(), "all or none");
        assert_eq!(ports.take_where(2, |_| true).unwrap(), [103, 100]);
        assert!(ports.take_where(1, |_| true).is_err());
    }

    #[test]
    fn a_bound_port_is_not_free() {
        let held = TcpListener::bind(("127.0.0.1", 0)).unwrap();
        let port = held.local_addr().unwrap().port();
        assert!(!bindable(port));
        assert!(Ports::new(port..=port).take(1).is_err());
        drop(held);
        assert_eq!(Ports::new(port..=port).take(1).unwrap(), [port]);
    }
}
