//! What the app exports, the source server accepts: `zrocket export --out DIR` writes files that
//! `zerostack_spec::load` loads, the HTTP endpoints serve the same content, and the
//! discriminated unions route every room type and message type to exactly one table.
//!
//! Each test runs `zrocket export` (or serves the router without a database) for itself: both
//! take milliseconds, so the tests share nothing.

use std::process::Command;

use serde_json::{Value, json};
use zerostack_spec::filter::{Clause, Condition, Filter, Operator};
use zerostack_spec::{Config, Source, load};
use zrocket::db::{ROOM_TYPES, SYSTEM_MESSAGE_TYPES, USER_MESSAGE_TYPE};

/// Evaluates a mapping filter on a document with one string field (enough for `{t: ...}`
/// filters; anything else fails the test rather than guessing).
fn matches(filter: &Filter, doc: &Value) -> bool {
    filter.clauses.iter().all(|c| match c {
        Clause::Field { path, condition } => {
            let v = &doc[path.as_str()];
            match condition {
                Condition::Equals(x) => v == x,
                Condition::Operators(ops) => ops.iter().all(|op| match op {
                    Operator::Eq(x) => v == x,
                    Operator::In(xs) => xs.contains(v),
                    other => panic!("unexpected operator {}", other.name()),
                }),
            }
        }
        other => panic!("unexpected clause {other:?}"),
    })
}

/// The plain (filter and projection) tables of `config` reading `collection` whose filter
/// admits `doc`: the discriminated unions. A pipeline table (`roomMembers` over `rooms`) makes
/// rows of its own from the same documents and is checked on its own.
fn tables_for(config: &Config, collection: &str, doc: &Value) -> Vec<String> {
    config
        .tables
        .iter()
        .filter(|t| t.source == collection && config.pipeline(&t.name).is_none())
        .filter(|t| t.filter.as_ref().is_none_or(|f| matches(f, doc)))
        .map(|t| t.name.clone())
        .collect()
}

fn load_dir(dir: &std::path::Path) -> Config {
    let read =
        |n: &str| std::fs::read_to_string(dir.join(n)).unwrap_or_else(|e| panic!("{n}: {e}"));
    let (schema, mappings, permissions) = (
        read("schema.json"),
        read("table-mappings.json"),
        read("permissions.json"),
    );
    // ZRocket exports `null` permissions (every read is a named query), which the loader
    // accepts as "none", exactly as the source server will read the file.
    let permissions = Some(Source {
        origin: "permissions.json",
        text: &permissions,
    });
    load(
        Source {
            origin: "schema.json",
            text: &schema,
        },
        Some(Source {
            origin: "table-mappings.json",
            text: &mappings,
        }),
        permissions,
    )
    .unwrap_or_else(|e| panic!("the exported files do not load:\n{e}"))
}

/// Runs `zrocket export --out` into a fresh directory (no database settings needed) and loads
/// the files as the source server does.
fn export() -> (tempfile::TempDir, Config) {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_zrocket"))
        .args(["export", "--out"])
        .arg(dir.path())
        .env_remove("MONGODB_URI")
        .env_remove("AUTH_SECRET")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let config = load_dir(dir.path());
    (dir, config)
}

fn read_exported(dir: &tempfile::TempDir, name: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir.path().join(name)).unwrap()).unwrap()
}

#[test]
fn exported_files_load_with_the_expected_tables() {
    let (dir, config) = export();
    let names: Vec<&str> = config.tables.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "users",
            "chats",
            "channels",
            "groups",
            "userMessages",
            "systemMessages",
            "roomMembers"
        ]
    );
    assert_eq!(read_exported(&dir, "permissions.json"), Value::Null);
    let wrapped = read_exported(&dir, "table-mappings.json");
    assert_eq!(wrapped["version"], 1);
    assert!(wrapped["mappings"].is_object());
    for t in &config.tables {
        assert_eq!(t.primary_key, ["_id"], "{}", t.name);
    }
}

/// `roomMembers` is the one pipeline: it unwinds `rooms.members` into rows keyed like
/// subscriptions, and the source will insist on pre-images for `rooms`.
#[test]
fn room_members_is_a_pipeline_over_rooms() {
    let (dir, config) = export();
    let pipelines: Vec<&str> = config
        .tables
        .iter()
        .filter(|t| config.pipeline(&t.name).is_some())
        .map(|t| t.name.as_str())
        .collect();
    assert_eq!(pipelines, ["roomMembers"]);
    let table = config.table("roomMembers").unwrap();
    assert_eq!(table.source, "rooms");
    assert!(config.needs_pre_images("roomMembers"));
    let wrapped = read_exported(&dir, "table-mappings.json");
    let stages = &wrapped["mappings"]["roomMembers"]["pipeline"];
    assert_eq!(stages[0], json!({"$unwind": "$members"}));
    assert_eq!(
        stages[1]["$project"]["_id"],
        json!({"$concat": ["$_id", ":", "$members.userId"]})
    );
}

/// Every message type lands in exactly one table, and no other type does.
#[test]
fn every_message_type_lands_in_exactly_one_table() {
    let (_dir, config) = export();
    let mut all = vec![USER_MESSAGE_TYPE];
    all.extend(SYSTEM_MESSAGE_TYPES);
    for t in &all {
        let hit = tables_for(&config, "messages", &json!({"t": t}));
        assert_eq!(hit.len(), 1, "{t} → {hit:?}");
        let expected = if *t == USER_MESSAGE_TYPE {
            "userMessages"
        } else {
            "systemMessages"
        };
        assert_eq!(hit[0], expected);
    }
    assert!(tables_for(&config, "messages", &json!({"t": "user_joined"})).is_empty());
    assert!(tables_for(&config, "messages", &json!({})).is_empty());
}

#[test]
fn every_room_type_lands_in_exactly_one_table() {
    let (_dir, config) = export();
    for (t, table) in ROOM_TYPES {
        assert_eq!(tables_for(&config, "rooms", &json!({"t": t})), [table]);
    }
    assert!(tables_for(&config, "rooms", &json!({"t": "x"})).is_empty());
}

#[test]
fn every_seeded_room_and_message_reaches_exactly_one_table() {
    let (_dir, config) = export();
    for room in zrocket::seed::data(bson::DateTime::now()).rooms {
        for m in room.messages {
            assert_eq!(
                tables_for(&config, "messages", &json!({"t": m.t})).len(),
                1,
                "{}",
                m.id
            );
        }
        assert_eq!(
            tables_for(&config, "rooms", &json!({"t": room.room.t})).len(),
            1
        );
    }
}

/// Serves the real router on a free port without a database (the driver connects lazily, and
/// these endpoints never use it); returns the base URL.
async fn serve_without_database() -> String {
    let db = zrocket::db::Db::connect("mongodb://127.0.0.1:9/?replicaSet=rs0", None)
        .await
        .unwrap();
    let config = zrocket::config::ServeArgs {
        mongodb: zrocket::config::MongoArgs {
            mongodb_uri: Some("mongodb://127.0.0.1:9/".into()),
            mongodb_database: None,
        },
        ..Default::default()
    }
    .validate()
    .unwrap();
    let state = zrocket::AppState::new(db, config);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, zrocket::router(state)).await });
    base
}

async fn get_json(base: &str, path: &str) -> Value {
    zerostack_harness::http::Client::new()
        .get(format!("{base}{path}"))
        .send()
        .await
        .unwrap()
        .json()
        .unwrap()
}

#[tokio::test]
async fn http_exports_match_the_files() {
    let base = serve_without_database().await;
    let schema = get_json(&base, "/api/schema/export").await;
    let mappings = get_json(&base, "/api/schema/table-mappings").await;
    let files = zrocket::zero::schema::export_files();
    assert_eq!(schema, files[0].1);
    assert_eq!(mappings, files[1].1);
    let (s, m) = (schema.to_string(), mappings.to_string());
    load(
        Source {
            origin: "http schema",
            text: &s,
        },
        Some(Source {
            origin: "http mappings",
            text: &m,
        }),
        None,
    )
    .unwrap_or_else(|e| panic!("{e}"));
}

/// The OpenAPI document describes every route of `server::table`, with its method.
#[tokio::test]
async fn openapi_describes_every_route() {
    let base = serve_without_database().await;
    let doc = get_json(&base, "/openapi.json").await;
    let routes = zrocket::server::route_list();
    assert!(routes.len() >= 28, "{} routes", routes.len());
    for (method, path, _) in routes {
        let method = method.as_str().to_ascii_lowercase();
        assert!(
            doc["paths"].get(path).is_some(),
            "{path} missing from /openapi.json"
        );
        assert!(
            doc["paths"][path].get(&method).is_some(),
            "{method} {path} missing from /openapi.json"
        );
    }
}
