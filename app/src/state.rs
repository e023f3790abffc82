//! What every request handler shares: the database, the validated settings, the session
//! store, the password hasher, the sign-in limits and the OIDC verifier.
//!
//! Its own module (not the crate root) so that the handlers' modules import it without the
//! router, which imports the handlers, being on the other end of that import.

use std::sync::Arc;
use std::time::Duration;

use crate::auth::oidc::Oidc;
use crate::auth::password::Passwords;
use crate::auth::rate_limit::{DEFAULT_CAPACITY, FailureLimiter};
use crate::auth::session::Sessions;
use crate::config::Config;
use crate::db::Db;

/// The two failure counters of sign-in.
#[derive(Debug)]
pub struct LoginLimiter {
    pub by_user: FailureLimiter,
    pub by_address: FailureLimiter,
}

/// Shared by every handler.
#[derive(Clone, Debug)]
pub struct AppState {
    pub db: Db,
    pub config: Arc<Config>,
    pub sessions: Sessions,
    pub passwords: Arc<Passwords>,
    pub limiter: Arc<LoginLimiter>,
    pub oidc: Option<Arc<Oidc>>,
}

impl AppState {
    pub fn new(db: Db, config: Config) -> AppState {
        let window = Duration::from_secs(config.login_limits.window_secs);
        let limiter = LoginLimiter {
            by_user: FailureLimiter::new(
                config.login_limits.max_failures_per_user,
                window,
                DEFAULT_CAPACITY,
            ),
            by_address: FailureLimiter::new(
                config.login_limits.max_failures_per_address,
                window,
                DEFAULT_CAPACITY,
            ),
        };
        let passwords = Passwords::new(config.password_cost)
            .expect("the Argon2 cost is valid (checked by its unit test)");
        AppState {
            sessions: db.sessions(config.session_ttl_secs),
            oidc: config.oidc.clone().map(|s| Arc::new(Oidc::new(s))),
            db,
            config: Arc::new(config),
            passwords: Arc::new(passwords),
            limiter: Arc::new(limiter),
        }
    }
}
