//! Login attempts, limited per username and per client address.
//!
//! After `limit` failed logins within a window, further attempts (right or
//! wrong) are refused until the window has passed; each further lockout of
//! the same key without a quiet spell in between lasts twice as long as the
//! one before (up to 64 windows). A successful login resets its username's
//! count, never its address's (one valid account must not unlock an
//! address that guesses others' passwords). The counts live in memory and
//! start over when the controller restarts. Time is passed in, so the rules
//! are tested without waiting.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// Lockouts grow up to this many windows.
const MAX_GROWTH: u32 = 6;
/// Above this many keys, stale ones are dropped at the next failure.
const PRUNE_ABOVE: usize = 1024;

#[derive(Clone, Debug, Hash, PartialEq, Eq)]
enum Key {
    User(String),
    Address(IpAddr),
}

#[derive(Debug)]
struct Entry {
    window_start: Instant,
    failures: u32,
    /// Lockouts so far; the next one lasts `window << lockouts`.
    lockouts: u32,
    blocked_until: Option<Instant>,
    last_failure: Instant,
}

impl Entry {
    fn new(now: Instant) -> Entry {
        Entry {
            window_start: now,
            failures: 0,
            lockouts: 0,
            blocked_until: None,
            last_failure: now,
        }
    }

    fn remaining(&self, now: Instant) -> Option<Duration> {
        self.blocked_until
            .filter(|until| *until > now)
            .map(|until| until - now)
    }

    /// Quiet for longer than its next lockout would last: forgotten.
    fn stale(&self, window: Duration, now: Instant) -> bool {
        let quiet = window * (2u32 << self.lockouts.min(MAX_GROWTH));
        self.remaining(now).is_none() && now.duration_since(self.last_failure) >= quiet
    }

    fn fail(&mut self, limit: u32, window: Duration, now: Instant) {
        self.last_failure = now;
        if now.duration_since(self.window_start) >= window {
            self.window_start = now;
            self.failures = 0;
        }
        self.failures += 1;
        if self.failures < limit {
            return;
        }
        let until = if self.lockouts == 0 {
            self.window_start + window
        } else {
            now + window * (1u32 << self.lockouts.min(MAX_GROWTH))
        };
        self.blocked_until = Some(until.max(now + Duration::from_millis(1)));
        self.lockouts += 1;
        // Counting starts again once the lockout is over.
        self.window_start = until;
        self.failures = 0;
    }
}

pub struct LoginLimiter {
    window: Duration,
    per_user: u32,
    per_address: u32,
    entries: Mutex<HashMap<Key, Entry>>,
}

impl LoginLimiter {
    pub fn new(window: Duration, per_user: u32, per_address: u32) -> LoginLimiter {
        LoginLimiter {
            window: window.max(Duration::from_millis(1)),
            per_user: per_user.max(1),
            per_address: per_address.max(1),
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Entry>> {
        match self.entries.lock() {
            Ok(entries) => entries,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// `Err(how long to wait)` while the username or the address is locked
    /// out.
    pub fn check(&self, username: &str, address: IpAddr, now: Instant) -> Result<(), Duration> {
        let entries = self.entries();
        let wait = [Key::User(username.to_string()), Key::Address(address)]
            .iter()
            .filter_map(|key| entries.get(key)?.remaining(now))
            .max();
        match wait {
            Some(wait) => Err(wait),
            None => Ok(()),
        }
    }

    /// A wrong password (or an unknown username).
    pub fn failed(&self, username: &str, address: IpAddr, now: Instant) {
        let mut entries = self.entries();
        if entries.len() > PRUNE_ABOVE {
            let window = self.window;
            entries.retain(|_, entry| !entry.stale(window, now));
        }
        for (key, limit) in [
            (Key::User(username.to_string()), self.per_user),
            (Key::Address(address), self.per_address),
        ] {
            let entry = entries.entry(key).or_insert_with(|| Entry::new(now));
            if entry.stale(self.window, now) {
                *entry = Entry::new(now);
            }
            entry.fail(limit, self.window, now);
        }
    }

    /// A successful login: the username starts with a clean slate.
    pub fn succeeded(&self, username: &str) {
        self.entries().remove(&Key::User(username.to_string()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WINDOW: Duration = Duration::from_secs(60);

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, last])
    }

    #[test]
    fn the_attempt_after_the_limit_waits_for_the_window() {
        let limiter = LoginLimiter::new(WINDOW, 5, 100);
        let start = Instant::now();
        for second in 0..5 {
            let now = start + Duration::from_secs(second);
            assert_eq!(limiter.check("alice", ip(1), now), Ok(()));
            limiter.failed("alice", ip(1), now);
        }
        let now = start + Duration::from_secs(5);
        assert_eq!(
            limiter.check("alice", ip(1), now),
            Err(Duration::from_secs(55))
        );
        // From another address too: the username is locked.
        assert!(limiter.check("alice", ip(2), now).is_err());
        assert_eq!(limiter.check("bob", ip(1), now), Ok(()));
        assert_eq!(limiter.check("alice", ip(1), start + WINDOW), Ok(()));
    }

    #[test]
    fn failures_outside_the_window_do_not_add_up() {
        let limiter = LoginLimiter::new(WINDOW, 3, 100);
        let start = Instant::now();
        limiter.failed("alice", ip(1), start);
        limiter.failed("alice", ip(1), start + Duration::from_secs(1));
        let later = start + WINDOW + Duration::from_secs(1);
        limiter.failed("alice", ip(1), later);
        limiter.failed("alice", ip(1), later);
        assert_eq!(limiter.check("alice", ip(1), later), Ok(()));
        limiter.failed("alice", ip(1), later);
        assert!(limiter.check("alice", ip(1), later).is_err());
    }

    #[test]
    fn lockouts_grow_and_success_resets_the_user_only() {
        let limiter = LoginLimiter::new(WINDOW, 2, 1000);
        let mut now = Instant::now();
        let lock = |now: Instant| {
            limiter.failed("alice", ip(1), now);
            limiter.failed("alice", ip(1), now);
            limiter.check("alice", ip(1), now).expect_err("locked")
        };
        assert_eq!(lock(now), WINDOW);
        now += WINDOW;
        assert_eq!(lock(now), WINDOW * 2);
        now += WINDOW * 2;
        assert_eq!(lock(now), WINDOW * 4);
        now += WINDOW * 4;
        limiter.succeeded("alice");
        assert_eq!(lock(now), WINDOW, "a success starts over");
    }

    #[test]
    fn an_address_is_limited_across_usernames() {
        let limiter = LoginLimiter::new(WINDOW, 5, 3);
        let now = Instant::now();
        for name in ["a", "b", "c"] {
            limiter.failed(name, ip(1), now);
        }
        assert_eq!(limiter.check("d", ip(1), now), Err(WINDOW));
        assert_eq!(limiter.check("d", ip(2), now), Ok(()));
        // A success of one user does not unlock the address.
        limiter.succeeded("a");
        assert!(limiter.check("a", ip(1), now).is_err());
    }

    #[test]
    fn quiet_keys_are_forgotten() {
        let limiter = LoginLimiter::new(WINDOW, 1, 1000);
        let now = Instant::now();
        for n in 0..=PRUNE_ABOVE {
            limiter.failed(&format!("user{n}"), ip(1), now);
        }
        limiter.failed("late", ip(2), now + WINDOW * 10);
        assert!(limiter.entries().len() <= 3, "{}", limiter.entries().len());
    }
}
