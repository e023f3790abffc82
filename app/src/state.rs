//! What every request handler shares: the database, the validated settings and the token keys.
//!
//! Its own module (not the crate root) so that the handlers' modules import it without the
//! router, which imports the handlers, being on the other end of that import.

use std::sync::Arc;

use axum::extract::FromRef;

use crate::auth::Keys;
use crate::config::Config;
use crate::db::Db;

/// Shared by every handler.
#[derive(Clone, Debug)]
pub struct AppState {
    pub db: Db,
    pub config: Arc<Config>,
    pub keys: Arc<Keys>,
}

impl AppState {
    pub fn new(db: Db, config: Config) -> AppState {
        let keys = Keys::new(config.auth_secret.expose(), config.token_ttl_secs);
        AppState {
            db,
            config: Arc::new(config),
            keys: Arc::new(keys),
        }
    }
}

/// Lets the token extractor (`auth::AuthUser`) take the keys without knowing `AppState`.
impl FromRef<AppState> for Arc<Keys> {
    fn from_ref(state: &AppState) -> Arc<Keys> {
        state.keys.clone()
    }
}
