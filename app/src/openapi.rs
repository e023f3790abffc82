//! The OpenAPI 3.1 description served at `/openapi.json`.
//!
//! Hand-written (no code generation dependency), so it must be kept in step with
//! `server::router` by hand: `tests/export.rs` lists every route of the router and checks that
//! each is described here with its method.

use serde_json::{Value, json};

fn op(summary: &str, auth: bool, body: Option<Value>, ok: &str) -> Value {
    let mut o = json!({
        "summary": summary,
        "responses": {
            ok: {"description": "success", "content": {"application/json": {}}},
            "400": {"$ref": "#/components/responses/Error"},
        }
    });
    if auth {
        o["security"] = json!([{"bearer": []}, {"cookie": []}]);
        o["responses"]["401"] = json!({"$ref": "#/components/responses/Error"});
    }
    if let Some(schema) = body {
        o["requestBody"] =
            json!({"required": true, "content": {"application/json": {"schema": schema}}});
    }
    o
}

fn id_param(name: &str) -> Value {
    json!([{"name": name, "in": "path", "required": true, "schema": {"type": "string"}}])
}

/// The paths this server serves, with their methods.
pub fn document() -> Value {
    let text =
        json!({"type": "object", "required": ["text"], "properties": {"text": {"type": "string"}}});
    let mut paths = serde_json::Map::new();
    let mut add = |path: &str, method: &str, v: Value| {
        paths
            .entry(path.to_string())
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .expect("object")
            .insert(method.to_string(), v);
    };
    add(
        "/health",
        "get",
        op("Liveness: pings MongoDB", false, None, "200"),
    );
    add(
        "/openapi.json",
        "get",
        op("This document", false, None, "200"),
    );
    add(
        "/api/config",
        "get",
        op(
            "Public client configuration: {zeroCacheUrl}",
            false,
            None,
            "200",
        ),
    );
    add(
        "/api/auth/users",
        "get",
        op(
            "Users to pick from at login: [{_id, username, name}]",
            false,
            None,
            "200",
        ),
    );
    add(
        "/api/auth/login",
        "post",
        op(
            "Dev login: sets the zrocket_token cookie and returns {user, token}",
            false,
            Some(
                json!({"type": "object", "required": ["username"], "properties": {"username": {"type": "string"}}}),
            ),
            "200",
        ),
    );
    add(
        "/api/auth/session",
        "get",
        op("The current {user, token}", true, None, "200"),
    );
    add(
        "/api/auth/logout",
        "post",
        op("Clears the cookie", false, None, "200"),
    );
    add("/api/users/me", "get", op("The caller", true, None, "200"));
    let mut users = op("Search users by username or name", true, None, "200");
    users["parameters"] = json!([
        {"name": "q", "in": "query", "schema": {"type": "string"}},
        {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 100}}
    ]);
    add("/api/users", "get", users);
    add(
        "/api/rooms",
        "get",
        op("The caller's rooms", true, None, "200"),
    );
    add(
        "/api/rooms",
        "post",
        op(
            "Create a room; the caller becomes a member",
            true,
            Some(
                json!({"type": "object", "required": ["type"], "properties": {
                "type": {"enum": ["d", "c", "p"]}, "name": {"type": "string"}, "topic": {"type": "string"},
                "description": {"type": "string"}, "memberIds": {"type": "array", "items": {"type": "string"}}}}),
            ),
            "201",
        ),
    );
    for (suffix, summary) in [("join", "Join a public channel"), ("leave", "Leave a room")] {
        let mut o = op(summary, true, None, "200");
        o["parameters"] = id_param("id");
        add(&format!("/api/rooms/{{id}}/{suffix}"), "post", o);
    }
    let mut o = op(
        "Add members to a channel or group",
        true,
        Some(
            json!({"type": "object", "required": ["userIds"], "properties": {"userIds": {"type": "array", "items": {"type": "string"}}}}),
        ),
        "200",
    );
    o["parameters"] = id_param("id");
    add("/api/rooms/{id}/invite", "post", o);
    let mut o = op("A room's messages, newest first", true, None, "200");
    o["parameters"] = json!([
        {"name": "id", "in": "path", "required": true, "schema": {"type": "string"}},
        {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 200}}
    ]);
    add("/api/rooms/{id}/messages", "get", o);
    let mut o = op(
        "Send a message as the caller",
        true,
        Some(text.clone()),
        "201",
    );
    o["parameters"] = id_param("id");
    add("/api/rooms/{id}/messages", "post", o);
    let mut o = op("Edit one's own message", true, Some(text), "200");
    o["parameters"] = id_param("id");
    add("/api/messages/{id}", "patch", o);
    let mut o = op("Delete one's own message (soft delete)", true, None, "200");
    o["parameters"] = id_param("id");
    add("/api/messages/{id}", "delete", o);
    add(
        "/api/seed",
        "post",
        op(
            "Insert the demo data (idempotent, never destructive)",
            true,
            None,
            "200",
        ),
    );
    add(
        "/api/schema/export",
        "get",
        op("The Zero schema JSON", false, None, "200"),
    );
    add(
        "/api/schema/table-mappings",
        "get",
        op(
            "The table mappings {version: 1, mappings, metadata}",
            false,
            None,
            "200",
        ),
    );
    add(
        "/api/zero/mutate",
        "post",
        op(
            "Zero custom mutators (called by zero-cache)",
            true,
            Some(json!({"type": "object"})),
            "200",
        ),
    );
    add(
        "/api/zero/query",
        "post",
        op(
            "Zero named queries → ASTs (called by zero-cache)",
            true,
            Some(json!({"type": "array"})),
            "200",
        ),
    );
    json!({
        "openapi": "3.1.0",
        "info": {"title": "ZRocket", "version": env!("CARGO_PKG_VERSION"),
                 "description": "A chat app on Zero and MongoDB. Errors are {error: message}."},
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
                "cookie": {"type": "apiKey", "in": "cookie", "name": "zrocket_token"}
            },
            "responses": {
                "Error": {"description": "an error", "content": {"application/json": {"schema": {
                    "type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}}}}}
            }
        }
    })
}
