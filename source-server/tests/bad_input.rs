//! Bad input stops the source server before it streams anything, with a message that names the
//! input, the JSON path and the problem, and a non-zero exit. Each kind of mistake is checked
//! through the real binary (`source-server check`, and `serve` for one).

mod common;

use std::process::Command;

use serde_json::{Value, json};

fn schema() -> Value {
    serde_json::from_str(&std::fs::read_to_string(common::fixtures().join("schema.json")).unwrap())
        .unwrap()
}

fn mappings() -> Value {
    serde_json::from_str(
        &std::fs::read_to_string(common::fixtures().join("table-mappings.json")).unwrap(),
    )
    .unwrap()
}

/// Runs `source-server <args>` with the given schema and mappings; returns (exit code, stderr+stdout).
fn run(args: &[&str], schema: &Value, mappings: &Value) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let s = dir.path().join("my-schema.json");
    let m = dir.path().join("my-mappings.json");
    std::fs::write(&s, schema.to_string()).unwrap();
    std::fs::write(&m, mappings.to_string()).unwrap();
    let out = Command::new(common::bin())
        .args(args)
        .env_clear()
        .env(
            "MONGODB_URI",
            "mongodb://user:hunter2@127.0.0.1:1/app?replicaSet=rs0",
        )
        .env("ZERO_SCHEMA_FILE", &s)
        .env("ZERO_TABLE_MAPPINGS_FILE", &m)
        .env("HOST", "127.0.0.1")
        .env("PORT", "0")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(!text.contains("hunter2"), "a secret leaked: {text}");
    (out.status.code().unwrap_or(-1), text)
}

fn expect_error(schema: Value, mappings: Value, needles: &[&str]) {
    let (code, text) = run(&["check"], &schema, &mappings);
    assert_eq!(code, 2, "expected exit 2, got {code}: {text}");
    for n in needles {
        assert!(text.contains(n), "message should mention {n:?}: {text}");
    }
}

#[test]
fn a_good_configuration_checks_out() {
    let (code, text) = run(&["check"], &schema(), &mappings());
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("ok: 5 tables from 3 collections"), "{text}");
    assert!(text.contains("channels <- rooms"), "{text}");
}

#[test]
fn an_unknown_column_type_is_named() {
    let mut s = schema();
    s["tables"]["users"]["columns"]["age"]["type"] = json!("integer");
    expect_error(
        s,
        mappings(),
        &["my-schema.json", "users", "age", "integer"],
    );
}

#[test]
fn an_optional_key_column_is_refused() {
    let mut s = schema();
    s["tables"]["messages"]["columns"]["_id"]["optional"] = json!(true);
    expect_error(
        s,
        mappings(),
        &["my-schema.json", "messages", "_id", "optional"],
    );
}

#[test]
fn an_unsupported_filter_operator_is_named() {
    let mut m = mappings();
    m["mappings"]["channels"]["filter"] = json!({"name": {"$regex": "^gen"}});
    expect_error(schema(), m, &["my-mappings.json", "channels", "$regex"]);
}

#[test]
fn a_mapping_for_an_unknown_table_is_refused() {
    let mut m = mappings();
    m["mappings"]["nope"] = json!({"source": "rooms"});
    expect_error(schema(), m, &["my-mappings.json", "nope"]);
}

#[test]
fn a_projection_of_an_unknown_column_is_refused() {
    let mut m = mappings();
    m["mappings"]["chats"]["projection"]["nmae"] = json!(1);
    expect_error(schema(), m, &["my-mappings.json", "chats", "nmae"]);
}

#[test]
fn a_pipeline_whose_unwound_rows_share_a_key_is_refused() {
    let mut m = mappings();
    m["mappings"]["messages"] = json!({"source": "messages", "pipeline": [{"$unwind": "$tags"}]});
    expect_error(
        schema(),
        m,
        &[
            "my-mappings.json",
            "messages.pipeline[0]",
            "same primary key",
        ],
    );
}

#[test]
fn a_pipeline_mapping_checks_out() {
    let mut m = mappings();
    m["mappings"]["messages"] = json!({"source": "messages", "pipeline": [{"$match": {"t": "x"}}]});
    let (code, text) = run(&["check"], &schema(), &m);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("messages <- messages"), "{text}");
}

#[test]
fn invalid_json_and_missing_files_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let s = dir.path().join("broken.json");
    std::fs::write(&s, "{\"tables\": {").unwrap();
    for (file, needle) in [
        (s.clone(), "broken.json"),
        (dir.path().join("absent.json"), "absent.json"),
    ] {
        let out = Command::new(common::bin())
            .arg("check")
            .env_clear()
            .env("MONGODB_URI", "mongodb://127.0.0.1:1/app")
            .env("ZERO_SCHEMA_FILE", &file)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{text}");
        assert!(text.contains(needle), "{text}");
    }
}

#[test]
fn serve_refuses_to_start_with_a_bad_schema() {
    let mut s = schema();
    s["tables"]["users"]["primaryKey"] = json!(["missing_column"]);
    let (code, text) = run(&[], &s, &mappings());
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("missing_column"), "{text}");
    assert!(
        !text.contains("listening"),
        "it must not start serving: {text}"
    );
}
