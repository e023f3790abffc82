//! `/health` (liveness: the process answers) and `/ready` (readiness: MongoDB answers a ping).

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::server_state::ServerState;

pub async fn health() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

pub async fn ready(State(state): State<Arc<ServerState>>) -> Response {
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
