//! Failed sign-ins, counted per key in a sliding window: a key with `max` failures in the last
//! `window` is refused until the oldest of them leaves the window.
//!
//! The login keeps two of these, one keyed by lowercased username (guessing one account's
//! password) and one by client address (trying many accounts). Memory is bounded: a key keeps
//! at most `max` timestamps and the table at most `capacity` keys; when it is full, expired
//! keys are dropped first, then the key whose newest failure is oldest. The limits live in this
//! process, so each replica counts on its own.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Keys per table before the oldest are evicted.
pub const DEFAULT_CAPACITY: usize = 10_000;
/// Longer keys are cut (on a character boundary) before counting.
const MAX_KEY_CHARS: usize = 64;

#[derive(Debug)]
pub struct FailureLimiter {
    max: usize,
    window: Duration,
    capacity: usize,
    table: Mutex<HashMap<String, VecDeque<Instant>>>,
}

fn key_of(key: &str) -> String {
    key.chars().take(MAX_KEY_CHARS).collect()
}

impl FailureLimiter {
    pub fn new(max: u32, window: Duration, capacity: usize) -> FailureLimiter {
        FailureLimiter {
            max: usize::try_from(max).unwrap_or(usize::MAX).max(1),
            window,
            capacity: capacity.max(1),
            table: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, VecDeque<Instant>>> {
        // A panic while holding the lock leaves counters, not broken invariants.
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `Err(retry_after)` when the key is over its limit at `now`.
    pub fn check_at(&self, key: &str, now: Instant) -> Result<(), Duration> {
        let mut table = self.lock();
        let Some(times) = table.get_mut(&key_of(key)) else {
            return Ok(());
        };
        while times
            .front()
            .is_some_and(|t| now.duration_since(*t) >= self.window)
        {
            times.pop_front();
        }
        if times.len() >= self.max {
            let oldest = *times.front().expect("non-empty");
            let retry = self.window.saturating_sub(now.duration_since(oldest));
            return Err(retry.max(Duration::from_secs(1)));
        }
        Ok(())
    }

    pub fn check(&self, key: &str) -> Result<(), Duration> {
        self.check_at(key, Instant::now())
    }

    /// Counts one failure of `key` at `now`.
    pub fn record_at(&self, key: &str, now: Instant) {
        let key = key_of(key);
        let mut table = self.lock();
        if !table.contains_key(&key) && table.len() >= self.capacity {
            let window = self.window;
            table.retain(|_, t| t.back().is_some_and(|b| now.duration_since(*b) < window));
            if table.len() >= self.capacity
                && let Some(stalest) = table
                    .iter()
                    .min_by_key(|(_, t)| t.back().copied())
                    .map(|(k, _)| k.clone())
            {
                table.remove(&stalest);
            }
        }
        let times = table.entry(key).or_default();
        times.push_back(now);
        while times.len() > self.max {
            times.pop_front();
        }
    }

    pub fn record(&self, key: &str) {
        self.record_at(key, Instant::now())
    }

    /// Forgets a key's failures (a successful sign-in of that user).
    pub fn clear(&self, key: &str) {
        self.lock().remove(&key_of(key));
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_after_max_failures_until_the_window_slides() {
        let l = FailureLimiter::new(3, Duration::from_secs(60), 100);
        let t0 = Instant::now();
        for i in 0..3 {
            assert!(l.check_at("alice", t0).is_ok(), "failure {i}");
            l.record_at("alice", t0 + Duration::from_secs(i));
        }
        let retry = l
            .check_at("alice", t0 + Duration::from_secs(10))
            .unwrap_err();
        assert_eq!(retry, Duration::from_secs(50));
        assert!(l.check_at("bob", t0).is_ok(), "other keys are not affected");
        // The first failure leaves the window at t0 + 60 s.
        assert!(l.check_at("alice", t0 + Duration::from_secs(60)).is_ok());
        l.clear("alice");
        assert!(l.is_empty());
    }

    #[test]
    fn memory_is_bounded() {
        let l = FailureLimiter::new(5, Duration::from_secs(60), 10);
        let t0 = Instant::now();
        for i in 0..1000u64 {
            l.record_at(&format!("user{i}"), t0 + Duration::from_millis(i));
        }
        assert_eq!(l.len(), 10);
        for _ in 0..100 {
            l.record_at("one", t0);
        }
        let table = l.lock();
        assert!(table.get("one").unwrap().len() <= 5);
        drop(table);
        // Long keys are cut on a character boundary.
        l.record_at(&"é".repeat(1000), t0);
        assert!(l.lock().keys().all(|k| k.chars().count() <= MAX_KEY_CHARS));
    }
}
