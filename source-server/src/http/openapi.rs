//! The OpenAPI description of the source server's HTTP API, served at `/openapi.json`.
//!
//! Written by hand: the API is small and stable, and a generator would cost more build time than
//! this file costs to keep true. Its test checks that it documents each path of [`PATHS`]; the
//! protocol test checks that the running server serves each of them.

use serde_json::{Value, json};

pub const PATHS: &[&str] = &[
    "/changes/v0/stream",
    "/health",
    "/ready",
    "/metadata/status",
    "/metadata/tables",
    "/metadata/schemas",
    "/metrics",
    "/openapi.json",
];

/// `GET /openapi.json`.
pub async fn serve() -> axum::Json<Value> {
    axum::Json(document())
}

pub fn document() -> Value {
    let ok_json = |description: &str| json!({"200": {"description": description, "content": {"application/json": {}}}});
    // `/metadata/*` needs SOURCE_TOKEN (when one is set) as a bearer token or `?token=`.
    let guarded = |description: &str| {
        json!({
            "200": {"description": description, "content": {"application/json": {}}},
            "401": {"description": "missing or wrong token", "content": {"application/json": {}}}
        })
    };
    let token = json!([{"bearer": []}, {"tokenQuery": []}]);
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "ZeroStack source-server",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "MongoDB change streams served as Zero's custom change-source protocol v0."
        },
        "paths": {
            "/changes/v0/stream": {"get": {
                "summary": "WebSocket: Zero change-source protocol v0 (zero-cache connects here)",
                "parameters": [
                    {"name": "appID", "in": "query", "schema": {"type": "string"}},
                    {"name": "shardNum", "in": "query", "schema": {"type": "integer"}},
                    {"name": "lastWatermark", "in": "query", "schema": {"type": "string"}, "description": "absent on initial sync"},
                    {"name": "replicaVersion", "in": "query", "schema": {"type": "string"}},
                    {"name": "token", "in": "query", "schema": {"type": "string"}, "description": "the shared SOURCE_TOKEN"}
                ],
                "security": token,
                "responses": {"101": {"description": "switching to WebSocket"}, "400": {"description": "a malformed parameter, named in the message"}, "401": {"description": "missing or wrong token"}}
            }},
            "/health": {"get": {"summary": "Liveness", "responses": ok_json("the process is up")}},
            "/ready": {"get": {"summary": "Readiness: MongoDB reachable and schema loaded",
                "responses": {"200": {"description": "ready"}, "503": {"description": "MongoDB unreachable"}}}},
            "/metadata/status": {"get": {"summary": "Connections, watermarks sent and acked, lag, snapshot progress", "security": token, "responses": guarded("status")}},
            "/metadata/tables": {"get": {"summary": "Published tables with their collection, filter and projection", "security": token, "responses": guarded("tables")}},
            "/metadata/schemas": {"get": {"summary": "The loaded schema, mappings, permissions and their hash", "security": token, "responses": guarded("schemas")}},
            "/metrics": {"get": {"summary": "Prometheus metrics", "responses": {"200": {"description": "OpenMetrics text"}, "404": {"description": "metrics disabled"}}}},
            "/openapi.json": {"get": {"summary": "This document", "responses": ok_json("OpenAPI 3.1")}}
        },
        "components": {"securitySchemes": {
            "bearer": {"type": "http", "scheme": "bearer", "description": "SOURCE_TOKEN"},
            "tokenQuery": {"type": "apiKey", "in": "query", "name": "token", "description": "SOURCE_TOKEN"}
        }}
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn documents_every_route() {
        let doc = super::document();
        let paths = doc["paths"].as_object().unwrap();
        assert_eq!(paths.len(), super::PATHS.len());
        for p in super::PATHS {
            assert!(paths.contains_key(*p), "{p} undocumented");
        }
    }
}
