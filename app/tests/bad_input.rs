//! Property-based tests of every HTTP surface of the app: malformed JSON, wrong types,
//! oversized bodies and random (unicode) strings thrown at the REST bodies, the Zero mutate and
//! query endpoints, and sign-up/sign-in. Each answer must be a 4xx with a JSON `{error}` (the
//! Zero endpoints may instead answer their protocol's own failure, `PushFailed` /
//! `TransformFailed` with a message, or per-query errors, as zero-cache expects), never a 5xx or
//! a panic, and nothing may be written to MongoDB.
//!
//! The router is driven in-process (`tower::ServiceExt::oneshot`) against one real MongoDB for
//! the whole binary, so hundreds of cases per surface run in seconds. The number of cases run
//! per surface is printed.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use proptest::prelude::*;
use proptest::test_runner::{Config as RunnerConfig, TestCaseError, TestRunner};
use serde_json::{Value, json};
use tower::ServiceExt;
use zerostack_harness::Mongo;
use zrocket::AppState;
use zrocket::db::Db;

const CASES: u32 = 1000;

/// A request to one surface.
#[derive(Clone, Debug)]
struct Call {
    method: &'static str,
    path: String,
    body: Vec<u8>,
}

fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        any::<String>().prop_map(Value::String),
        "[a-z\\-_:.]{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec(("[a-zA-Z]{1,10}", inner), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

/// Bytes that are not JSON: random bytes, truncated or broken JSON.
fn not_json() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..512),
        any_json().prop_map(|v| {
            let s = v.to_string();
            // Cut on a character boundary, then break the end.
            let cut: String = s
                .chars()
                .take(s.chars().count().saturating_sub(1))
                .collect();
            format!("{cut}{{").into_bytes()
        }),
        any::<String>().prop_map(|s| format!("{{\"text\": {s}").into_bytes()),
    ]
    // A random string can close the object it was put in: keep only what does not parse.
    .prop_filter("not JSON", |b| serde_json::from_slice::<Value>(b).is_err())
}

/// Any JSON value that is not a string (a wrong-typed field).
fn not_a_string() -> impl Strategy<Value = Value> {
    any_json().prop_filter("not a string", |v| !v.is_string())
}

fn bytes(v: Value) -> Vec<u8> {
    v.to_string().into_bytes()
}

/// A username the rules refuse: too short, too long, or with a character outside the set.
fn bad_username() -> impl Strategy<Value = Value> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-');
    prop_oneof![
        not_a_string(),
        "[a-z]{0,2}".prop_map(Value::String),
        "[a-z]{33,40}".prop_map(Value::String),
        any::<String>()
            .prop_filter("has a forbidden character", move |s| {
                s.trim().chars().any(|c| !allowed(c))
            })
            .prop_map(Value::String),
    ]
}

fn rest_calls() -> impl Strategy<Value = Call> {
    let post = |path: &'static str| {
        move |body: Vec<u8>| Call {
            method: "POST",
            path: path.to_string(),
            body,
        }
    };
    prop_oneof![
        not_json().prop_map(post("/api/rooms")),
        not_json().prop_map(post("/api/rooms/r-general/messages")),
        // A message whose text is missing, wrong-typed, blank or too long.
        prop_oneof![
            not_a_string().prop_map(|t| json!({"text": t})),
            "[ \t\n]{0,8}".prop_map(|t| json!({"text": t})),
            (5001usize..5100).prop_map(|n| json!({"text": "é".repeat(n)})),
            any_json().prop_filter("no text", |v| v.get("text").is_none()),
        ]
        .prop_map(|v| Call {
            method: "POST",
            path: "/api/rooms/r-general/messages".into(),
            body: bytes(v),
        }),
        not_a_string().prop_map(|t| Call {
            method: "PATCH",
            path: "/api/messages/r-general-m1".into(),
            body: bytes(json!({"text": t})),
        }),
        // A room of a type that does not exist, with random other fields.
        (
            any_json().prop_filter("not a room type", |t| {
                !matches!(t.as_str(), Some("d" | "c" | "p"))
            }),
            any_json()
        )
            .prop_map(|(t, name)| Call {
                method: "POST",
                path: "/api/rooms".into(),
                body: bytes(json!({"type": t, "name": name})),
            }),
        // Invites of ids that are wrong-typed or do not exist.
        prop_oneof![
            not_a_string().prop_map(|v| json!({"userIds": v})),
            prop::collection::vec(any::<String>(), 0..4).prop_map(|ids| json!({"userIds": ids})),
        ]
        .prop_map(|v| Call {
            method: "POST",
            path: "/api/rooms/r-general/invite".into(),
            body: bytes(v),
        }),
        // Random path segments and query strings.
        (any::<String>(), any::<String>()).prop_map(|(id, limit)| Call {
            method: "GET",
            path: format!(
                "/api/rooms/{}/messages?limit={}",
                urlencode(&id),
                urlencode(&format!("x{limit}"))
            ),
            body: vec![],
        }),
    ]
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn auth_calls() -> impl Strategy<Value = Call> {
    let post = |path: &'static str| {
        move |body: Vec<u8>| Call {
            method: "POST",
            path: path.to_string(),
            body,
        }
    };
    prop_oneof![
        not_json().prop_map(post("/api/auth/signup")),
        not_json().prop_map(post("/api/auth/login")),
        not_json().prop_map(post("/api/auth/token")),
        // Sign-ups that break a rule: the username, or a wrong-typed name or password.
        (bad_username(), any_json(), any_json())
            .prop_map(|(u, n, p)| bytes(json!({"username": u, "name": n, "password": p})))
            .prop_map(post("/api/auth/signup")),
        ("[a-z]{3,12}", not_a_string(), any::<String>())
            .prop_map(|(u, n, p)| bytes(json!({"username": u, "name": n, "password": p})))
            .prop_map(post("/api/auth/signup")),
        ("[a-z]{3,12}", "[a-z]{1,12}", "[a-z]{0,7}")
            .prop_map(|(u, n, p)| bytes(json!({"username": u, "name": n, "password": p})))
            .prop_map(post("/api/auth/signup")),
        // Sign-ins with anything at all.
        (any_json(), any_json())
            .prop_map(|(u, p)| bytes(json!({"username": u, "password": p})))
            .prop_map(post("/api/auth/login")),
        (any::<String>(), any::<String>())
            .prop_map(|(u, p)| bytes(json!({"username": u, "password": p})))
            .prop_map(post("/api/auth/token")),
        any_json()
            .prop_map(bytes)
            .prop_map(post("/api/auth/dev-login")),
        any_json().prop_map(bytes).prop_map(post("/api/auth/oidc")),
        any_json()
            .prop_map(bytes)
            .prop_map(post("/api/auth/password")),
    ]
}

fn mutate_calls() -> impl Strategy<Value = Call> {
    let call = |body: Vec<u8>| Call {
        method: "POST",
        path: "/api/zero/mutate?schema=zero_0&appID=zero".into(),
        body,
    };
    prop_oneof![
        not_json().prop_map(call),
        any_json().prop_map(bytes).prop_map(call),
        // Well-formed pushes of an unsupported version, with random mutations.
        (
            any::<i64>().prop_filter("not 1", |v| *v != 1),
            prop::collection::vec(
                (any::<i64>(), any::<String>(), any::<String>(), any_json()),
                0..4
            )
        )
            .prop_map(|(version, ms)| {
                bytes(json!({
                    "clientGroupID": "cg-fuzz", "pushVersion": version, "timestamp": 1,
                    "requestID": "r",
                    "mutations": ms.into_iter().map(|(id, c, name, args)| json!({
                        "type": "custom", "id": id, "clientID": c, "name": name,
                        "timestamp": 1, "args": [args]})).collect::<Vec<_>>(),
                }))
            })
            .prop_map(call),
    ]
}

fn query_calls() -> impl Strategy<Value = Call> {
    let call = |body: Vec<u8>| Call {
        method: "POST",
        path: "/api/zero/query?schema=zero_0&appID=zero".into(),
        body,
    };
    let name = prop_oneof![
        any::<String>(),
        prop::sample::select(zrocket::zero::query::QUERY_NAMES.to_vec()).prop_map(String::from),
    ];
    prop_oneof![
        not_json().prop_map(call),
        any_json().prop_map(bytes).prop_map(call),
        prop::collection::vec((any::<String>(), name, any_json()), 0..4)
            .prop_map(|qs| {
                bytes(json!([
                    "transform",
                    qs.into_iter()
                        .map(|(id, name, args)| json!({
                    "id": id, "name": name, "args": [args]}))
                        .collect::<Vec<_>>()
                ]))
            })
            .prop_map(call),
    ]
}

/// Every document of every collection, counted (to prove nothing was written).
async fn snapshot(db: &Db) -> Vec<(String, u64)> {
    let mut names = db.database.list_collection_names().await.unwrap();
    names.sort();
    let mut out = Vec::new();
    for name in names {
        let n = db
            .database
            .collection::<bson::Document>(&name)
            .count_documents(bson::doc! {})
            .await
            .unwrap();
        out.push((name, n));
    }
    out
}

/// Requests come from ever new peer addresses, so the per-address sign-in limit does not turn
/// every later sign-in case into a 429.
static PEER: AtomicUsize = AtomicUsize::new(0);

async fn send(router: &axum::Router, call: &Call, token: &str) -> (StatusCode, Vec<u8>) {
    let n = PEER.fetch_add(1, Ordering::Relaxed);
    let peer = std::net::SocketAddr::from(([127, (n >> 16) as u8, (n >> 8) as u8, n as u8], 4000));
    let mut req = Request::builder()
        .method(call.method)
        .uri(&call.path)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Body::from(call.body.clone()))
        .unwrap();
    req.extensions_mut()
        .insert(axum::extract::ConnectInfo(peer));
    let resp = router.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let body = resp
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .to_vec();
    (status, body)
}

/// A 4xx with `{error}`, or (for the Zero endpoints) the protocol's answer with a message.
fn check(call: &Call, status: StatusCode, body: &[u8], zero: bool) -> Result<(), TestCaseError> {
    let text = String::from_utf8_lossy(body);
    prop_assert!(
        !status.is_server_error(),
        "{} {}: {status} {text}",
        call.method,
        call.path
    );
    let v: Value = serde_json::from_slice(body).map_err(|_| {
        TestCaseError::fail(format!("{} {}: not JSON: {text}", call.method, call.path))
    })?;
    if status.is_client_error() {
        prop_assert!(
            v["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{} {}: {status} without an error message: {text}",
            call.method,
            call.path
        );
        return Ok(());
    }
    prop_assert!(
        zero && status == StatusCode::OK,
        "{} {}: {status} {text}",
        call.method,
        call.path
    );
    match v["kind"].as_str() {
        Some("PushFailed" | "TransformFailed") => {
            prop_assert!(
                v["message"].as_str().is_some_and(|m| !m.is_empty()),
                "{text}"
            );
        }
        Some("QueryResponse") => {
            for q in v["queries"].as_array().into_iter().flatten() {
                prop_assert!(q.get("ast").is_some() || q["error"] == "app", "{text}");
            }
        }
        _ => prop_assert!(false, "unexpected answer {text}"),
    }
    Ok(())
}

#[test]
fn malformed_input_never_breaks_a_surface() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (mut mongo, state, token) = rt.block_on(async {
        let mongo = Mongo::start().await.expect("start MongoDB");
        let db = Db::connect(&mongo.uri(), Some("zrocket_props"))
            .await
            .unwrap();
        let web = std::env::temp_dir();
        let config = common::TestApp::base_config(&mongo, &web);
        let state = AppState::new(db.clone(), config);
        db.ensure_schema().await.unwrap();
        zrocket::seed::run(&db).await.unwrap();
        let token = state
            .sessions
            .create("u-alice", zrocket::auth::session::Kind::Api)
            .await
            .unwrap()
            .expose()
            .to_string();
        (mongo, state, token)
    });
    let router = zrocket::router(state.clone());
    let surfaces: Vec<(&str, BoxedStrategy<Call>, bool)> = vec![
        ("REST bodies", rest_calls().boxed(), false),
        ("sign-up / sign-in", auth_calls().boxed(), false),
        ("Zero mutate", mutate_calls().boxed(), true),
        ("Zero query", query_calls().boxed(), true),
    ];
    let oversized = vec![b'['; zrocket::server::MAX_BODY_BYTES + 1];
    let mut report = Vec::new();
    for (name, strategy, zero) in surfaces {
        let before = rt.block_on(snapshot(&state.db));
        let ran = AtomicUsize::new(0);
        let mut runner = TestRunner::new(RunnerConfig {
            cases: CASES,
            failure_persistence: None,
            ..RunnerConfig::default()
        });
        let result = runner.run(&strategy, |call| {
            ran.fetch_add(1, Ordering::Relaxed);
            let (status, body) = rt.block_on(send(&router, &call, &token));
            check(&call, status, &body, zero)
        });
        if let Err(e) = result {
            panic!("{name}: {e}");
        }
        // One oversized body per path of the surface's kind.
        let path = match name {
            "REST bodies" => "/api/rooms",
            "sign-up / sign-in" => "/api/auth/signup",
            "Zero mutate" => "/api/zero/mutate",
            _ => "/api/zero/query",
        };
        let big = Call {
            method: "POST",
            path: path.into(),
            body: oversized.clone(),
        };
        let (status, body) = rt.block_on(send(&router, &big, &token));
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{name} oversized");
        check(&big, status, &body, zero).unwrap();
        let after = rt.block_on(snapshot(&state.db));
        // Sign-in failures are counted in memory, never in MongoDB; no session, no user.
        assert_eq!(before, after, "{name} wrote to MongoDB");
        report.push(format!(
            "{name}: {} cases + 1 oversized",
            ran.load(Ordering::Relaxed)
        ));
    }
    println!("bad input, per surface: {}", report.join("; "));
    rt.block_on(async {
        let _ = mongo.stop().await;
    });
}
