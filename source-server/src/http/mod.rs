//! The HTTP side: which path is served by what. zero-cache connects to the WebSocket at
//! `/changes/v0/stream` (`websocket`); operators and probes read the others (`health`,
//! `metadata`); `/openapi.json` describes them all (`openapi`).

pub mod health;
pub mod metadata;
pub mod openapi;
pub mod websocket;

use std::sync::Arc;

use axum::Router;
use axum::routing::get;

use crate::server_state::ServerState;

pub fn router(state: Arc<ServerState>) -> Router {
    Router::new()
        .route("/changes/v0/stream", get(websocket::stream))
        .route("/health", get(health::health))
        .route("/ready", get(health::ready))
        .route("/metadata/status", get(metadata::status))
        .route("/metadata/tables", get(metadata::tables))
        .route("/metadata/schemas", get(metadata::schemas))
        .route("/metrics", get(metadata::metrics))
        .route("/openapi.json", get(openapi::serve))
        .with_state(state)
}
