//! The HTTP side: which path is served by what. zero-cache connects to the WebSocket at
//! `/changes/v0/stream` (`websocket`); operators and probes read the others (`health`,
//! `metadata`); `/openapi.json` describes them all (`openapi`). `auth` checks the shared token
//! for the stream and `/metadata/*`.

pub mod auth;
pub mod health;
pub mod metadata;
pub mod openapi;
pub mod websocket;

use std::sync::Arc;

use axum::http::StatusCode;
use axum::middleware::from_fn_with_state;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};

use serde_json::json;

use crate::server_state::ServerState;

pub fn router(state: Arc<ServerState>) -> Router {
    // The configuration and the connections' state: only for holders of the token.
    let guarded = Router::new()
        .route("/metadata/status", get(metadata::status))
        .route("/metadata/tables", get(metadata::tables))
        .route("/metadata/schemas", get(metadata::schemas))
        .route_layer(from_fn_with_state(state.clone(), auth::require_token));
    Router::new()
        // Checks the token itself, before the upgrade, in the words zero-cache logs.
        .route("/changes/v0/stream", get(websocket::stream))
        .route("/health", get(health::health))
        .route("/ready", get(health::ready))
        .merge(guarded)
        .route("/metrics", get(metadata::metrics))
        .route("/openapi.json", get(openapi::serve))
        // Axum's own 404 and 405 have empty bodies; every refusal here says why.
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
}

async fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(json!({"error": "not found", "message": "no endpoint at this path; /openapi.json lists them"})),
    )
        .into_response()
}

async fn method_not_allowed() -> Response {
    (
        StatusCode::METHOD_NOT_ALLOWED,
        Json(json!({"error": "method not allowed", "message": "every endpoint here answers GET only"})),
    )
        .into_response()
}
