//! Password hashing: Argon2id (the `argon2` crate, RustCrypto), off the async runtime and a
//! bounded number at a time.
//!
//! One hash costs tens of milliseconds of one core and its memory cost in RAM, on purpose. Run
//! on the runtime's threads it would stall every other request, so it runs in
//! `spawn_blocking`; and a flood of sign-ins could still occupy every core and a lot of memory,
//! so a semaphore lets only a few hashes run at once (the rest wait their turn, for at most
//! [`QUEUE_TIMEOUT`]). Verification takes its parameters from the stored hash, so raising the
//! cost later keeps old hashes valid. Unknown users are verified against a dummy hash so that
//! "no such user" takes as long as "wrong password".

use std::sync::Arc;
use std::time::Duration;

use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Algorithm, Argon2, Params, Version};
use tokio::sync::Semaphore;
use zerostack_spec::secret::Secret;

/// How long a sign-in waits for a free hashing slot before the server answers "busy".
pub const QUEUE_TIMEOUT: Duration = Duration::from_secs(10);

/// The Argon2id cost of new hashes.
///
/// The default, m = 32 MiB, t = 3, p = 1, was measured on this project's 2-core machine with a
/// release build of `argon2` 0.6: 66 ms of CPU per hash (process CPU time over 20 hashes; wall
/// time grows to ~180 ms while both cores are busy with other work). For comparison, m = 32 MiB
/// with t = 2 took 52 ms and OWASP's minimum, m = 19 MiB with t = 2, 20 ms. Debug builds compile
/// `argon2` and `blake2` optimised too (the workspace's `[profile.dev.package]`), or a test's
/// sign-in would take seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cost {
    pub m_kib: u32,
    pub t: u32,
    pub p: u32,
}

impl Default for Cost {
    fn default() -> Cost {
        Cost {
            m_kib: 32 * 1024,
            t: 3,
            p: 1,
        }
    }
}

impl Cost {
    /// The cheapest cost Argon2 allows: for tests only, where hashing speed is not the point.
    pub const TESTS_ONLY: Cost = Cost {
        m_kib: 8,
        t: 1,
        p: 1,
    };
}

/// Hashing failed or the server is too busy to hash now.
#[derive(Debug, thiserror::Error)]
pub enum HashError {
    #[error("the server is busy; try again in a few seconds")]
    Busy,
    #[error("password hashing failed: {0}")]
    Internal(String),
}

/// Hashes and verifies, a bounded number at a time.
#[derive(Debug)]
pub struct Passwords {
    params: Params,
    slots: Arc<Semaphore>,
    /// A hash of a random password, verified for unknown users.
    dummy: String,
}

impl Passwords {
    pub fn new(cost: Cost) -> Result<Passwords, HashError> {
        let params = Params::new(cost.m_kib, cost.t, cost.p, None)
            .map_err(|e| HashError::Internal(e.to_string()))?;
        // One core stays free for the runtime on small machines.
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let slots = Arc::new(Semaphore::new(cores.saturating_sub(1).max(1)));
        let dummy = hash_now(&params, crate::auth::session::new_token().expose())?;
        Ok(Passwords {
            params,
            slots,
            dummy,
        })
    }

    /// The PHC string (`$argon2id$v=19$m=…`) of a new password.
    pub async fn hash(&self, password: &Secret) -> Result<String, HashError> {
        let params = self.params.clone();
        let password = password.clone();
        self.run(move || hash_now(&params, password.expose()))
            .await?
    }

    /// Whether `password` matches `stored`; with no stored hash, verifies against the dummy
    /// (same cost) and answers false.
    pub async fn verify(&self, password: &Secret, stored: Option<&str>) -> Result<bool, HashError> {
        let known = stored.is_some();
        let hash = stored.unwrap_or(&self.dummy).to_string();
        let password = password.clone();
        let ok = self
            .run(move || {
                Argon2::default()
                    .verify_password(password.expose().as_bytes(), hash.as_str())
                    .is_ok()
            })
            .await?;
        Ok(known && ok)
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, HashError> {
        let permit = tokio::time::timeout(QUEUE_TIMEOUT, self.slots.clone().acquire_owned())
            .await
            .map_err(|_| HashError::Busy)?
            .map_err(|_| HashError::Busy)?;
        let out = tokio::task::spawn_blocking(move || {
            let out = work();
            drop(permit);
            out
        })
        .await
        .map_err(|e| HashError::Internal(e.to_string()))?;
        Ok(out)
    }
}

fn hash_now(params: &Params, password: &str) -> Result<String, HashError> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| HashError::Internal(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_are_argon2id_salted_and_verify() {
        let p = Passwords::new(Cost::TESTS_ONLY).unwrap();
        let pw = Secret::new("correct horse battery");
        let a = p.hash(&pw).await.unwrap();
        let b = p.hash(&pw).await.unwrap();
        assert!(a.starts_with("$argon2id$v=19$m=8,t=1,p=1$"), "{a}");
        assert_ne!(a, b, "salted");
        assert!(p.verify(&pw, Some(&a)).await.unwrap());
        assert!(!p.verify(&Secret::new("wrong"), Some(&a)).await.unwrap());
        assert!(!p.verify(&pw, None).await.unwrap());
        assert!(!p.verify(&pw, Some("not a hash")).await.unwrap());
    }

    #[test]
    fn the_default_cost_is_the_measured_one() {
        assert_eq!(
            Cost::default(),
            Cost {
                m_kib: 32768,
                t: 3,
                p: 1
            }
        );
        assert!(Params::new(32768, 3, 1, None).is_ok());
    }
}
