//! What the source reports about itself: `/metadata/status` (connections, watermarks, lag,
//! snapshot progress, the last schema change), `/metadata/tables` and `/metadata/schemas` (the loaded configuration) and
//! `/metrics` (Prometheus). None of them shows the connection string or the token. The three
//! `/metadata/*` routes sit behind the token (`http::auth`, applied in `http::router`); `/metrics`
//! stays open for scrapers and shows counts only.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::server_state::ServerState;

pub async fn status(State(state): State<Arc<ServerState>>) -> Json<serde_json::Value> {
    Json(json!({
        "uptimeSeconds": state.uptime().as_secs(),
        "configHash": state.config_hash(),
        "tables": state.loaded.tables.len(),
        "connections": state.connections.views(),
        "lastSchemaChange": state.schema_changes.get(),
    }))
}

pub async fn tables(State(state): State<Arc<ServerState>>) -> Json<serde_json::Value> {
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
                "pipeline": mapping.as_ref().and_then(|m| m.get("pipeline")).cloned(),
                "needsPreImages": state.loaded.config.needs_pre_images(&t.name),
                "primaryKey": t.primary_key,
                "columns": t.columns.iter().map(|c| json!({
                    "name": c.name, "serverName": c.server_name, "type": c.kind.as_str(), "optional": c.optional,
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    Json(json!({"tables": tables}))
}

pub async fn schemas(State(state): State<Arc<ServerState>>) -> Json<serde_json::Value> {
    let c = &state.loaded.config;
    Json(json!({
        "hash": c.hash,
        "schema": c.schema,
        "tableMappings": c.mappings,
        "permissions": c.permissions,
    }))
}

pub async fn metrics(State(state): State<Arc<ServerState>>) -> Response {
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
