//! The Zero query endpoint: the ASTs it produces for members and non-members, argument
//! errors, unknown names, the empty validation call and auth.
//!
//! One app serves all the cases, which only read (the seeded data), so none depends on another.

mod common;

use anyhow::Result;
use common::TestApp;
use serde_json::{Value, json};
use zerostack_harness::cases::Cases;
use zerostack_harness::http::StatusCode;

/// Every subquery carries an alias and no field anywhere is `null` (zero-cache rejects both).
fn check_wire_rules(ast: &Value, root: bool) {
    let obj = ast.as_object().expect("an AST is an object");
    assert!(obj.get("table").and_then(Value::as_str).is_some(), "{ast}");
    if !root {
        assert!(
            obj.get("alias").and_then(Value::as_str).is_some(),
            "subquery without alias: {ast}"
        );
    }
    for (k, v) in obj {
        assert!(!v.is_null(), "{k} is null in {ast}");
    }
    for r in obj
        .get("related")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        check_wire_rules(&r["subquery"], false);
    }
    if let Some(w) = obj.get("where") {
        check_condition(w);
    }
}

fn check_condition(c: &Value) {
    match c["type"].as_str().unwrap() {
        "and" | "or" => c["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .for_each(check_condition),
        "correlatedSubquery" => check_wire_rules(&c["related"]["subquery"], false),
        "simple" => assert_eq!(c["left"]["type"], "column"),
        other => panic!("unknown condition type {other}"),
    }
}

fn simple(col: &str, op: &str, value: Value) -> Value {
    json!({"type": "simple", "left": {"type": "column", "name": col}, "op": op, "right": {"type": "literal", "value": value}})
}

fn member_exists(parent: &str, user: &str) -> Value {
    json!({"type": "correlatedSubquery", "op": "EXISTS", "related": {
        "correlation": {"parentField": [parent], "childField": ["roomId"]},
        "subquery": {"table": "roomMembers", "alias": "zsubq_members", "where": simple("userId", "=", json!(user))},
        "system": "client"}})
}

async fn one(app: &TestApp, token: &str, name: &str, args: Value) -> Value {
    let (status, resp) = app
        .query(token, json!([{"id": "q1", "name": name, "args": [args]}]))
        .await;
    assert_eq!(status, StatusCode::OK, "{resp}");
    assert_eq!(resp["kind"], "QueryResponse", "{resp}");
    let q = resp["queries"][0].clone();
    assert_eq!(q["id"], "q1");
    assert_eq!(q["name"], name);
    if let Some(ast) = q.get("ast") {
        check_wire_rules(ast, true);
    }
    q
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_endpoint() -> Result<()> {
    let app = TestApp::start().await;
    let alice = app.token("u-alice").await;
    let charlie = app.token("u-charlie").await;
    let mut cases = Cases::new("query_endpoint");
    cases
        .run(
            "the empty validation call answers, and needs a token",
            the_validation_call(&app, &alice),
        )
        .await;
    cases
        .run(
            "messages.byRoom for a member of a private group",
            messages_for_a_member(&app, &alice),
        )
        .await;
    cases
        .run(
            "messages.byRoom for a non-member matches nothing, whatever the args claim",
            messages_for_a_non_member(&app, &alice),
        )
        .await;
    cases
        .run(
            "messages.byRoom for a member of that room, with the default limit",
            messages_for_another_member(&app, &charlie),
        )
        .await;
    cases
        .run(
            "a public channel is readable by a non-member without a membership condition",
            messages_of_a_public_channel(&app, &charlie),
        )
        .await;
    cases
        .run(
            "system messages: the same access rules, no hidden column",
            system_messages(&app, &alice),
        )
        .await;
    cases
        .run(
            "rooms.mine uses the token's user, never an argument",
            rooms_mine(&app, &alice),
        )
        .await;
    cases
        .run(
            "rooms.publicChannels, rooms.byId, users.all and users.byId",
            rooms_and_users(&app, &alice),
        )
        .await;
    cases
        .run(
            "errors are per query: unknown names and bad arguments",
            errors_are_per_query(&app, &alice),
        )
        .await;
    cases
        .run(
            "a body that is not [\"transform\", [...]] fails the request as a parse error",
            a_malformed_body_fails(&app, &alice),
        )
        .await;
    app.stop().await;
    cases.finish()
}

async fn the_validation_call(app: &TestApp, alice: &str) -> Result<()> {
    let (status, resp) = app.query(alice, json!([])).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        resp,
        json!({"kind": "QueryResponse", "userID": "u-alice", "queries": []})
    );
    let resp = app
        .http
        .post(app.url("/api/zero/query"))
        .json(&json!(["transform", []]))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    Ok(())
}

async fn messages_for_a_member(app: &TestApp, alice: &str) -> Result<()> {
    let q = one(
        app,
        alice,
        "messages.byRoom",
        json!({"roomId": "r-alpha", "limit": 30}),
    )
    .await;
    assert_eq!(
        q["ast"],
        json!({"table": "userMessages",
               "where": {"type": "and", "conditions": [
                   simple("roomId", "=", json!("r-alpha")),
                   simple("hidden", "IS NOT", json!(true)),
                   member_exists("roomId", "u-alice")]},
               "related": [{"correlation": {"parentField": ["senderId"], "childField": ["_id"]},
                            "subquery": {"table": "users", "alias": "senderUser"}, "system": "client"}],
               "orderBy": [["createdAt", "desc"]],
               "limit": 30})
    );
    Ok(())
}

/// alice is not in r-eng: an empty `or`, whatever the args claim.
async fn messages_for_a_non_member(app: &TestApp, alice: &str) -> Result<()> {
    let q = one(
        app,
        alice,
        "messages.byRoom",
        json!({"roomId": "r-eng", "userId": "u-bob"}),
    )
    .await;
    assert_eq!(q["ast"]["table"], "userMessages");
    assert_eq!(q["ast"]["where"], json!({"type": "or", "conditions": []}));
    assert!(q["ast"].get("related").is_none());
    Ok(())
}

/// charlie is in r-eng.
async fn messages_for_another_member(app: &TestApp, charlie: &str) -> Result<()> {
    let q = one(app, charlie, "messages.byRoom", json!({"roomId": "r-eng"})).await;
    assert_eq!(q["ast"]["limit"], 50);
    assert_eq!(
        q["ast"]["where"]["conditions"][2],
        member_exists("roomId", "u-charlie")
    );
    Ok(())
}

async fn messages_of_a_public_channel(app: &TestApp, charlie: &str) -> Result<()> {
    let q = one(
        app,
        charlie,
        "messages.byRoom",
        json!({"roomId": "r-random"}),
    )
    .await;
    assert_eq!(
        q["ast"]["where"],
        json!({"type": "and", "conditions": [simple("roomId", "=", json!("r-random")), simple("hidden", "IS NOT", json!(true))]})
    );
    Ok(())
}

async fn system_messages(app: &TestApp, alice: &str) -> Result<()> {
    let q = one(
        app,
        alice,
        "messages.systemByRoom",
        json!({"roomId": "r-alpha", "limit": 10}),
    )
    .await;
    assert_eq!(q["ast"]["table"], "systemMessages");
    assert_eq!(
        q["ast"]["where"],
        json!({"type": "and", "conditions": [simple("roomId", "=", json!("r-alpha")), member_exists("roomId", "u-alice")]})
    );
    let q = one(
        app,
        alice,
        "messages.systemByRoom",
        json!({"roomId": "r-eng"}),
    )
    .await;
    assert_eq!(q["ast"]["where"], json!({"type": "or", "conditions": []}));
    Ok(())
}

async fn rooms_mine(app: &TestApp, alice: &str) -> Result<()> {
    for (t, table) in [("d", "chats"), ("c", "channels"), ("p", "groups")] {
        let q = one(
            app,
            alice,
            "rooms.mine",
            json!({"type": t, "userId": "u-diana"}),
        )
        .await;
        assert_eq!(
            q["ast"],
            json!({"table": table, "where": member_exists("_id", "u-alice"), "orderBy": [["lastMessageAt", "desc"]]})
        );
    }
    Ok(())
}

async fn rooms_and_users(app: &TestApp, alice: &str) -> Result<()> {
    let q = one(app, alice, "rooms.publicChannels", json!({})).await;
    assert_eq!(
        q["ast"],
        json!({"table": "channels", "orderBy": [["name", "asc"]]})
    );
    let q = one(
        app,
        alice,
        "rooms.byId",
        json!({"type": "p", "roomId": "r-eng"}),
    )
    .await;
    assert_eq!(
        q["ast"]["where"],
        json!({"type": "and", "conditions": [simple("_id", "=", json!("r-eng")), member_exists("_id", "u-alice")]})
    );
    assert_eq!(q["ast"]["limit"], 1);
    let q = one(app, alice, "users.all", Value::Null).await;
    assert_eq!(
        q["ast"],
        json!({"table": "users", "orderBy": [["username", "asc"]]})
    );
    let q = one(app, alice, "users.byId", json!({"userId": "u-bob"})).await;
    assert_eq!(q["ast"]["where"], simple("_id", "=", json!("u-bob")));
    Ok(())
}

async fn errors_are_per_query(app: &TestApp, alice: &str) -> Result<()> {
    let (_, resp) = app
        .query(
            alice,
            json!([
                {"id": "a", "name": "nope.nothing", "args": []},
                {"id": "b", "name": "messages.byRoom", "args": [{"roomId": "r-alpha", "limit": 500}]},
                {"id": "c", "name": "rooms.mine", "args": [{"type": "x"}]},
                {"id": "d", "name": "messages.byRoom", "args": [{}]},
                {"id": "e", "name": "users.all", "args": []}
            ]),
        )
        .await;
    let qs = resp["queries"].as_array().unwrap();
    assert_eq!(qs.len(), 5);
    assert_eq!(qs[0]["error"], "app");
    assert_eq!(qs[0]["id"], "a");
    assert!(qs[0]["message"].as_str().unwrap().contains("nope.nothing"));
    for (q, needle) in [(&qs[1], "limit"), (&qs[2], "type"), (&qs[3], "roomId")] {
        assert_eq!(q["error"], "app", "{q}");
        assert!(q["message"].as_str().unwrap().contains(needle), "{q}");
        assert_eq!(q["details"]["type"], "InputValidationError");
    }
    assert!(qs[4].get("ast").is_some());
    Ok(())
}

async fn a_malformed_body_fails(app: &TestApp, alice: &str) -> Result<()> {
    let (status, resp) = app
        .post(
            "/api/zero/query",
            Some(alice),
            json!([{"id": "a", "name": "users.all", "args": []}]),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(resp["kind"], "TransformFailed");
    assert_eq!(resp["reason"], "parse");
    Ok(())
}
