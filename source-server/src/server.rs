//! The HTTP side: the WebSocket endpoint zero-cache connects to, plus health, metadata and
//! metrics endpoints for operators. Holds the state every connection shares.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::extract::{Query, State, WebSocketUpgrade};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use mongodb::Database;
use serde_json::json;
use tracing::warn;

use crate::catalog::{Catalog, Shard};
use crate::config::Settings;
use crate::connection::{ConnectParams, serve_connection};
use crate::loader::Loaded;
use crate::metrics::Metrics;
use crate::registry::ReplicaRegistry;
use crate::rows::RowsError;
use crate::status::{Connections, now_ms};
use zerostack_spec::secret::constant_time_eq;

pub struct ServerState {
    pub settings: Settings,
    pub db: Database,
    pub loaded: Loaded,
    pub registry: ReplicaRegistry,
    pub metrics: Arc<Metrics>,
    pub connections: Connections,
    started: Instant,
    last_auth_warning_ms: AtomicU64,
}

impl ServerState {
    pub fn new(settings: Settings, db: Database, loaded: Loaded) -> Self {
        ServerState {
            registry: ReplicaRegistry::new(&db, &settings.registry_collection),
            metrics: Arc::new(Metrics::new()),
            connections: Connections::default(),
            started: Instant::now(),
            last_auth_warning_ms: AtomicU64::new(0),
            settings,
            db,
            loaded,
        }
    }

    /// Identifies the configuration a replica was built from (see `registry`).
    pub fn config_hash(&self) -> &str {
        &self.loaded.config.hash
    }

    pub fn catalog_for(&self, shard: &Shard) -> Result<Catalog, RowsError> {
        Catalog::new(
            &self.loaded.tables,
            shard,
            &self.loaded.config.bookkeeping,
            self.loaded.config.permissions.as_ref(),
        )
    }

    /// Token check in constant time (for equal lengths); no token configured means open.
    fn authorized(&self, given: Option<&str>) -> bool {
        match &self.settings.source_token {
            None => true,
            Some(expected) => {
                given.is_some_and(|g| constant_time_eq(g.as_bytes(), expected.0.as_bytes()))
            }
        }
    }
}

pub fn router(state: Arc<ServerState>) -> Router {
    Router::new()
        .route("/changes/v0/stream", get(stream))
        .route("/health", get(|| async { Json(json!({"status": "ok"})) }))
        .route("/ready", get(ready))
        .route("/metadata/status", get(status))
        .route("/metadata/tables", get(tables))
        .route("/metadata/schemas", get(schemas))
        .route("/metrics", get(metrics))
        .route(
            "/openapi.json",
            get(|| async { Json(crate::openapi::document()) }),
        )
        .with_state(state)
}

async fn stream(
    State(state): State<Arc<ServerState>>,
    Query(params): Query<ConnectParams>,
    ws: WebSocketUpgrade,
) -> Response {
    if !state.authorized(params.token.as_deref()) {
        // zero-cache retries about every 25 ms, so warn at most once a minute.
        let now = now_ms();
        let last = state.last_auth_warning_ms.load(Ordering::Relaxed);
        if now.saturating_sub(last) > 60_000 {
            state.last_auth_warning_ms.store(now, Ordering::Relaxed);
            warn!(
                "refused a change-stream connection: missing or wrong token (check the token in ZERO_UPSTREAM_DB)"
            );
        }
        return (StatusCode::UNAUTHORIZED, "missing or wrong token\n").into_response();
    }
    // zero-cache's `ws` client caps messages at 100 MiB; ours are far smaller.
    ws.max_message_size(64 << 20)
        .on_upgrade(move |socket| serve_connection(socket, params, state))
}

async fn ready(State(state): State<Arc<ServerState>>) -> Response {
    let ping = tokio::time::timeout(
        Duration::from_secs(2),
        state.db.run_command(bson::doc! {"ping": 1}),
    )
    .await;
    match ping {
        Ok(Ok(_)) => {
            Json(json!({"ready": true, "tables": state.loaded.tables.len()})).into_response()
        }
        Ok(Err(_)) | Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"ready": false, "reason": "MongoDB is not reachable"})),
        )
            .into_response(),
    }
}

async fn status(State(state): State<Arc<ServerState>>) -> Json<serde_json::Value> {
    Json(json!({
        "uptimeSeconds": state.started.elapsed().as_secs(),
        "configHash": state.config_hash(),
        "tables": state.loaded.tables.len(),
        "connections": state.connections.views(),
    }))
}

async fn tables(State(state): State<Arc<ServerState>>) -> Json<serde_json::Value> {
    let mappings = serde_json::to_value(&state.loaded.config.mappings).unwrap_or_default();
    let tables: Vec<_> = state
        .loaded
        .config
        .tables
        .iter()
        .map(|t| {
            let mapping = mappings
                .get("mappings")
                .unwrap_or(&mappings)
                .get(&t.name)
                .cloned();
            json!({
                "name": t.name,
                "schema": t.schema,
                "serverName": t.server_name,
                "source": t.source,
                "filter": mapping.as_ref().and_then(|m| m.get("filter")).cloned(),
                "projection": mapping.as_ref().and_then(|m| m.get("projection")).cloned(),
                "primaryKey": t.primary_key,
                "columns": t.columns.iter().map(|c| json!({
                    "name": c.name, "serverName": c.server_name, "type": c.kind.as_str(), "optional": c.optional,
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    Json(json!({"tables": tables}))
}

async fn schemas(State(state): State<Arc<ServerState>>) -> Json<serde_json::Value> {
    let c = &state.loaded.config;
    Json(json!({
        "hash": c.hash,
        "schema": c.schema,
        "tableMappings": c.mappings,
        "permissions": c.permissions,
    }))
}

async fn metrics(State(state): State<Arc<ServerState>>) -> Response {
    if !state.settings.metrics_enabled {
        return (StatusCode::NOT_FOUND, "metrics are disabled\n").into_response();
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.encode(),
    )
        .into_response()
}
