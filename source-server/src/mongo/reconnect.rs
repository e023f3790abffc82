//! When a broken change stream is worth reopening, and how long to wait before each attempt.
//!
//! A `mongod` that restarts, a primary that steps down or a network blip ends the change stream
//! with an error. zero-cache's connection has nothing to do with that, so the session reopens
//! the stream itself at its last commit (nothing is lost: MongoDB keeps the oplog) instead of
//! dropping zero-cache. Only errors that a later attempt can cure are retried; the others end
//! the connection as before.

use std::time::Duration;

use mongodb::error::ErrorKind;

/// Server error codes that mean "this node cannot serve you right now" (the SDAM and
/// change-stream specifications' lists), plus the label MongoDB puts on resumable errors.
const TRANSIENT_CODES: &[i32] = &[
    6,     // HostUnreachable
    7,     // HostNotFound
    43,    // CursorNotFound
    63,    // StaleShardVersion
    89,    // NetworkTimeout
    91,    // ShutdownInProgress
    133,   // FailedToSatisfyReadPreference
    150,   // StaleEpoch
    189,   // PrimarySteppedDown
    234,   // RetryChangeStream
    262,   // ExceededTimeLimit
    9001,  // SocketException
    10107, // NotWritablePrimary
    11600, // InterruptedAtShutdown
    11602, // InterruptedDueToReplStateChange
    13388, // StaleConfig
    13435, // NotPrimaryNoSecondaryOk
    13436, // NotPrimaryOrSecondary
];

/// Whether reopening the stream later may succeed.
pub fn is_transient(e: &mongodb::error::Error) -> bool {
    if e.contains_label("ResumableChangeStreamError") {
        return true;
    }
    match e.kind.as_ref() {
        ErrorKind::Command(c) => TRANSIENT_CODES.contains(&c.code),
        ErrorKind::Io(_)
        | ErrorKind::ServerSelection { .. }
        | ErrorKind::ConnectionPoolCleared { .. } => true,
        _ => false,
    }
}

/// Exponential backoff from 100 ms to 5 s, reset once a stream works again.
#[derive(Debug, Clone)]
pub struct Backoff {
    next: Duration,
    pub attempts: u32,
}

const FIRST: Duration = Duration::from_millis(100);
const MAX: Duration = Duration::from_secs(5);

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            next: FIRST,
            attempts: 0,
        }
    }
}

impl Backoff {
    /// The wait before the next attempt.
    pub fn next_delay(&mut self) -> Duration {
        let d = self.next;
        self.next = (self.next * 2).min(MAX);
        self.attempts += 1;
        d
    }

    pub fn reset(&mut self) {
        *self = Backoff::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_cap_and_resets() {
        let mut b = Backoff::default();
        let waits: Vec<u128> = (0..8).map(|_| b.next_delay().as_millis()).collect();
        assert_eq!(waits, [100, 200, 400, 800, 1600, 3200, 5000, 5000]);
        b.reset();
        assert_eq!(b.next_delay(), FIRST);
    }
}
