//! What the HTTP handlers and every zero-cache connection share, for the life of the process.
//!
//! Its own module so that the HTTP side (`http`), which hands each WebSocket to a session, and
//! the session (`replication::session`), which reads this state, both depend on it and not on
//! each other.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use mongodb::Database;

use crate::config::inputs::Loaded;
use crate::config::settings::Settings;
use crate::connection_status::{Connections, now_ms};
use crate::metrics::Metrics;
use crate::mongo::replica_registry::ReplicaRegistry;
use crate::replication::schema_status::SchemaChangeStatus;
use crate::rows::RowsError;
use crate::zero::catalog::{Catalog, Shard};

/// A refused connection is logged at most this often: zero-cache retries about every 25 ms.
const REFUSAL_WARNING_EVERY_MS: u64 = 60_000;

pub struct ServerState {
    pub settings: Settings,
    pub db: Database,
    pub loaded: Loaded,
    pub registry: ReplicaRegistry,
    pub metrics: Arc<Metrics>,
    pub connections: Connections,
    /// The last schema change handled (`/metadata/status`).
    pub schema_changes: SchemaChangeStatus,
    started: Instant,
    last_refusal_warning_ms: AtomicU64,
}

impl ServerState {
    pub fn new(settings: Settings, db: Database, loaded: Loaded) -> Self {
        ServerState {
            registry: ReplicaRegistry::new(&db, &settings.registry_collection),
            metrics: Arc::new(Metrics::new()),
            connections: Connections::default(),
            schema_changes: SchemaChangeStatus::default(),
            started: Instant::now(),
            last_refusal_warning_ms: AtomicU64::new(0),
            settings,
            db,
            loaded,
        }
    }

    /// Identifies the configuration a replica was built from (see `mongo::replica_registry`).
    pub fn config_hash(&self) -> &str {
        &self.loaded.config.hash
    }

    /// The tables of a connection for this app and shard.
    pub fn catalog_for(&self, shard: &Shard) -> Result<Catalog, RowsError> {
        Catalog::new(
            &self.loaded.tables,
            shard,
            &self.loaded.config.bookkeeping,
            self.loaded.config.permissions.as_ref(),
        )
        .map(|c| c.with_pipelines(&self.loaded.pipelines))
    }

    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    /// Token check in constant time (for equal lengths); no token configured means open.
    pub fn authorized(&self, given: Option<&str>) -> bool {
        match &self.settings.source_token {
            None => true,
            Some(expected) => given.is_some_and(|g| expected.matches(g)),
        }
    }

    /// Whether a refused connection should be logged now (at most once a minute).
    pub fn refusal_warning_due(&self) -> bool {
        let now = now_ms();
        let last = self.last_refusal_warning_ms.load(Ordering::Relaxed);
        if now.saturating_sub(last) > REFUSAL_WARNING_EVERY_MS {
            self.last_refusal_warning_ms.store(now, Ordering::Relaxed);
            return true;
        }
        false
    }
}
