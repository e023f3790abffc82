//! Every route of `server::table`, called without credentials: each answers 401 with a JSON
//! error, except an explicit allow-list (sign-in and sign-up, the client configuration, health,
//! the API description, the static schema exports and the UI), and none of these calls writes
//! anything to MongoDB. Because the list comes from the router's own table, a new route is
//! covered the moment it is added, and a new public one fails here until it is allow-listed.

mod common;

use std::collections::BTreeSet;

use anyhow::Result;
use common::TestApp;
use futures::TryStreamExt;
use serde_json::{Value, json};
use zerostack_harness::http::{Method, StatusCode};
use zrocket::server::{Access, route_list};

/// What may be called without signing in.
const ALLOWED: [(&str, &str); 10] = [
    ("GET", "/health"),
    ("GET", "/openapi.json"),
    ("GET", "/api/config"),
    ("POST", "/api/auth/signup"),
    ("POST", "/api/auth/login"),
    ("POST", "/api/auth/token"),
    ("POST", "/api/auth/dev-login"),
    ("POST", "/api/auth/oidc"),
    ("GET", "/api/schema/export"),
    ("GET", "/api/schema/table-mappings"),
];

/// Every document of every collection, counted.
async fn total_documents(app: &TestApp) -> Result<Vec<(String, u64)>> {
    let mut names = app.db.database.list_collection_names().await?;
    names.sort();
    let mut out = Vec::new();
    for name in names {
        let n = app
            .db
            .database
            .collection::<bson::Document>(&name)
            .count_documents(bson::doc! {})
            .await?;
        out.push((name, n));
    }
    Ok(out)
}

fn concrete(path: &str) -> String {
    path.replace("{id}", "r-general")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_route_reads_or_writes_without_credentials() -> Result<()> {
    let app = TestApp::start().await;
    let routes = route_list();
    let public: BTreeSet<(String, &str)> = routes
        .iter()
        .filter(|(_, _, a)| *a == Access::Public)
        .map(|(m, p, _)| (m.to_string(), *p))
        .collect();
    let allowed: BTreeSet<(String, &str)> =
        ALLOWED.iter().map(|(m, p)| (m.to_string(), *p)).collect();
    assert_eq!(
        public, allowed,
        "the router's public routes differ from the allow-list"
    );
    let before = total_documents(&app).await?;
    let mut called = 0;
    for (method, path, access) in &routes {
        let url = concrete(path);
        for (token, body) in [
            (None, None),
            (None, Some(json!({}))),
            (
                Some("garbage"),
                Some(json!({"username": "alice", "text": "x"})),
            ),
            (Some(&"A".repeat(43) as &str), None),
        ] {
            let (status, resp) = app.call(method.clone(), &url, token, body.clone()).await;
            called += 1;
            assert!(
                !status.is_server_error(),
                "{method} {url} with {token:?}: {status} {resp}"
            );
            if *access == Access::Public {
                continue;
            }
            assert_eq!(
                status,
                StatusCode::UNAUTHORIZED,
                "{method} {url} with {token:?}: {resp}"
            );
            assert!(resp["error"].is_string(), "{method} {url}: {resp}");
        }
    }
    // Other methods on the same paths: 405 with a JSON error, or 401 (never the handler).
    let paths: BTreeSet<&str> = routes.iter().map(|(_, p, _)| *p).collect();
    for path in paths {
        for method in [
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
        ] {
            if routes.iter().any(|(m, p, _)| *p == path && *m == method) {
                continue;
            }
            let (status, resp) = app.call(method.clone(), &concrete(path), None, None).await;
            called += 1;
            assert!(
                status == StatusCode::METHOD_NOT_ALLOWED || status == StatusCode::UNAUTHORIZED,
                "{method} {path}: {status} {resp}"
            );
            assert!(resp["error"].is_string(), "{method} {path}: {resp}");
        }
    }
    // The UI (the fallback) is public; unknown API paths are 404s.
    for (path, expected) in [
        ("/", None),
        ("/rooms/r-general", None),
        ("/assets/missing.js", Some(StatusCode::NOT_FOUND)),
        ("/api/nope", Some(StatusCode::NOT_FOUND)),
    ] {
        let (status, resp) = app.get(path, None).await;
        called += 1;
        assert_ne!(status, StatusCode::UNAUTHORIZED, "{path}");
        if let Some(expected) = expected {
            assert_eq!(status, expected, "{path}: {resp}");
        }
    }
    let after = total_documents(&app).await?;
    assert_eq!(
        before, after,
        "documents were written by unauthenticated calls"
    );
    // And no session was made by any of them.
    let sessions: Vec<Value> = app
        .db
        .database
        .collection::<Value>("sessions")
        .find(bson::doc! {})
        .await?
        .try_collect()
        .await?;
    assert!(sessions.is_empty(), "{sessions:?}");
    println!(
        "{called} unauthenticated calls over {} routes",
        routes.len()
    );
    app.stop().await;
    Ok(())
}
