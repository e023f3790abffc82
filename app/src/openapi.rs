//! The OpenAPI 3.1 description served at `/openapi.json`.
//!
//! Hand-written (no code generation dependency), so it must be kept in step with
//! `server::table` by hand: `tests/export.rs` walks that table and checks that every route is
//! described here with its method.

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
            "Public client configuration: {zeroCacheUrl, devLogin, oidc: null | {issuer, audience}}",
            false,
            None,
            "200",
        ),
    );
    let creds = |required: &[&str]| {
        let props: serde_json::Map<String, Value> = required
            .iter()
            .map(|k| (k.to_string(), json!({"type": "string"})))
            .collect();
        json!({"type": "object", "required": required, "properties": props})
    };
    let mut o = op(
        "Sign up: {username (3-32 of A-Z a-z 0-9 _ . -, unique ignoring case), name, password \
         (8-256)} → 201 {user: {_id, username, name}} and the session cookie. 400 {error, field}; \
         409 {error, field: \"username\"} when taken",
        false,
        Some(creds(&["username", "name", "password"])),
        "201",
    );
    o["responses"]["409"] = json!({"$ref": "#/components/responses/Error"});
    add("/api/auth/signup", "post", o);
    let rate_limited = json!({"description": "too many failed sign-ins: {error, retryAfterSecs} and Retry-After",
        "content": {"application/json": {}}});
    let mut o = op(
        "Sign in: {username, password} → {user} and the HttpOnly session cookie (the token is \
         never in the body). 401 {error: \"wrong username or password\"} for an unknown user \
         and a wrong password alike",
        false,
        Some(creds(&["username", "password"])),
        "200",
    );
    o["responses"]["401"] = json!({"$ref": "#/components/responses/Error"});
    o["responses"]["429"] = rate_limited.clone();
    add("/api/auth/login", "post", o);
    let mut o = op(
        "A bearer token for API clients (and Node Zero clients' `auth`): {username, password} → \
         {token, user, expiresInSecs}; send it as Authorization: Bearer <token>. Rate-limited \
         like login; no cookie",
        false,
        Some(creds(&["username", "password"])),
        "200",
    );
    o["responses"]["401"] = json!({"$ref": "#/components/responses/Error"});
    o["responses"]["429"] = rate_limited;
    add("/api/auth/token", "post", o);
    let mut o = op(
        "Dev login (only with DEV_LOGIN=true, else 404): {username} of an existing user → {user} \
         and the cookie, no password",
        false,
        Some(creds(&["username"])),
        "200",
    );
    o["responses"]["404"] = json!({"$ref": "#/components/responses/Error"});
    add("/api/auth/dev-login", "post", o);
    let mut o = op(
        "OIDC sign-in (when OIDC_ISSUER, OIDC_JWKS_URL, OIDC_AUDIENCE are set, else 404): \
         {idToken} (RS256/ES256) → {user} and the cookie; the user is created on first sign-in",
        false,
        Some(creds(&["idToken"])),
        "200",
    );
    o["responses"]["401"] = json!({"$ref": "#/components/responses/Error"});
    o["responses"]["404"] = json!({"$ref": "#/components/responses/Error"});
    add("/api/auth/oidc", "post", o);
    add(
        "/api/auth/session",
        "get",
        op("The signed-in {user} (no token)", true, None, "200"),
    );
    add(
        "/api/auth/logout",
        "post",
        op(
            "Sign out: revokes this session (cookie and bearer alike) and clears the cookie",
            true,
            None,
            "204",
        ),
    );
    add(
        "/api/auth/password",
        "post",
        op(
            "Change the password: {currentPassword, newPassword}; ends the user's other sessions",
            true,
            Some(creds(&["currentPassword", "newPassword"])),
            "204",
        ),
    );
    add(
        "/api/auth/users",
        "get",
        op(
            "The active users: [{_id, username, name}]",
            true,
            None,
            "200",
        ),
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
                "bearer": {"type": "http", "scheme": "bearer",
                           "description": "an opaque session token from POST /api/auth/token"},
                "cookie": {"type": "apiKey", "in": "cookie", "name": "zrocket_session"}
            },
            "responses": {
                "Error": {"description": "an error", "content": {"application/json": {"schema": {
                    "type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}}}}}
            }
        }
    })
}
