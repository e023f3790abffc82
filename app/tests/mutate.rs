//! The Zero mutate endpoint against a real MongoDB replica set: lastMutationID bookkeeping,
//! duplicates, gaps, application errors, retries, cleanup, auth and the API key.
//!
//! Each test function starts one app and runs its scenario as named cases in order. The cases of
//! one scenario share the app and its data, and most depend on the ones before them: alice's
//! client `c1` in group `cg-alice` counts up from case to case, so each case's mutation ids and
//! expected `lastMutationID` continue where the previous case left them.

mod common;

use anyhow::Result;
use bson::{Bson, doc};
use common::TestApp;
use futures::TryStreamExt;
use serde_json::{Value, json};
use zerostack_harness::cases::Cases;
use zerostack_harness::http::StatusCode;
use zerostack_spec::bookkeeping::field::{
    CLIENT_GROUP_ID, CLIENT_ID, LAST_MUTATION_ID, MUTATION_ID, RESULT,
};

/// alice's client group in `mutate_protocol`.
const CG: &str = "cg-alice";

async fn lmid(app: &TestApp, cg: &str, client: &str) -> Option<Bson> {
    app.db
        .clients
        .find_one(doc! {"_id": {CLIENT_GROUP_ID: cg, CLIENT_ID: client}})
        .await
        .unwrap()
        .and_then(|d| d.get(LAST_MUTATION_ID).cloned())
}

async fn message_count(app: &TestApp, room: &str) -> u64 {
    app.db
        .messages
        .count_documents(doc! {"roomId": room, "t": "USER"})
        .await
        .unwrap()
}

async fn mutation_rows(app: &TestApp, client: &str) -> u64 {
    app.db
        .mutations
        .count_documents(doc! {CLIENT_ID: client})
        .await
        .unwrap()
}

async fn message_exists(app: &TestApp, id: &str) -> bool {
    app.db
        .messages
        .find_one(doc! {"_id": id})
        .await
        .unwrap()
        .is_some()
}

async fn message(app: &TestApp, id: &str) -> zrocket::db::Message {
    app.db
        .messages
        .find_one(doc! {"_id": id})
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("message {id} is missing"))
}

async fn room(app: &TestApp, id: &str) -> zrocket::db::Room {
    app.db
        .rooms
        .find_one(doc! {"_id": id})
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("room {id} is missing"))
}

fn send(id: &str, room: &str, text: &str) -> Value {
    json!({"id": id, "roomId": room, "text": text, "createdAt": chrono_now()})
}

fn chrono_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// The results of a `MutateResponse`, in order.
fn results(resp: &Value) -> Vec<&Value> {
    resp["mutations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| &m["result"])
        .collect()
}

/// A push of `_zero_cleanupResults` with `args`.
fn cleanup_push(args: Value) -> Value {
    json!({"clientGroupID": CG, "pushVersion": 1, "timestamp": 1, "requestID": "cleanup",
           "mutations": [{"type": "custom", "id": 0, "clientID": "c1", "name": "_zero_cleanupResults",
                          "timestamp": 1, "args": [args]}]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutate_protocol() -> Result<()> {
    let app = TestApp::start().await;
    let alice = app.token("u-alice").await;
    let mut cases = Cases::new("mutate_protocol");
    // Taken before the first case: later cases compare against it.
    let alpha_before = message_count(&app, "r-alpha").await;
    let first_push = TestApp::push(
        CG,
        &[
            ("c1", 1, "message.send", send("mm-1", "r-alpha", "first")),
            ("c1", 2, "message.send", send("mm-2", "r-alpha", "second")),
        ],
    );

    cases
        .run(
            "mutations in order commit with the counter",
            in_order_mutations_commit_with_the_counter(&app, &alice, &first_push, alpha_before),
        )
        .await;
    cases
        .run(
            "a replayed push is alreadyProcessed and writes nothing",
            a_replayed_push_is_already_processed(&app, &alice, &first_push, alpha_before),
        )
        .await;
    cases
        .run(
            "a gap in the ids stops the push with oooMutation",
            a_gap_stops_the_push(&app, &alice),
        )
        .await;
    cases
        .run(
            "an application error rolls back, is recorded, and the next mutation runs",
            an_application_error_is_recorded(&app, &alice),
        )
        .await;
    cases
        .run(
            "unknown mutators and bad arguments are application errors",
            unknown_mutators_and_bad_arguments_are_app_errors(&app, &alice),
        )
        .await;
    cases
        .run(
            "a failing room.create leaves nothing behind",
            a_failing_room_create_leaves_nothing(&app, &alice),
        )
        .await;
    cases
        .run(
            "cleanup deletes results up to the id, twice over, and leaves the counter",
            cleanup_single(&app, &alice),
        )
        .await;
    cases
        .run(
            "cleanup in the legacy and the bulk form",
            cleanup_legacy_and_bulk(&app, &alice),
        )
        .await;
    cases
        .run(
            "sending an existing message id succeeds and changes nothing",
            an_existing_message_id_changes_nothing(&app, &alice),
        )
        .await;
    cases
        .run(
            "two clients of one group are counted separately",
            two_clients_are_counted_separately(&app, &alice),
        )
        .await;
    cases
        .run(
            "an unsupported push version fails the push",
            an_unsupported_push_version_fails(&app, &alice),
        )
        .await;
    cases
        .run(
            "an unparsable body fails the push",
            an_unparsable_body_fails(&app, &alice),
        )
        .await;

    app.stop().await;
    cases.finish()
}

async fn in_order_mutations_commit_with_the_counter(
    app: &TestApp,
    alice: &str,
    push: &Value,
    alpha_before: u64,
) -> Result<()> {
    let room_before = room(app, "r-alpha").await;
    let (status, resp) = app.push_body(alice, push).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        resp,
        json!({"kind": "MutateResponse", "userID": "u-alice", "mutations": [
            {"id": {"clientID": "c1", "id": 1}, "result": {}},
            {"id": {"clientID": "c1", "id": 2}, "result": {}},
        ]})
    );
    assert_eq!(lmid(app, CG, "c1").await, Some(Bson::Int64(2)));
    assert_eq!(message_count(app, "r-alpha").await, alpha_before + 2);
    let r = room(app, "r-alpha").await;
    assert_eq!(r.message_count, room_before.message_count + 2);
    assert_eq!(r.last_message.as_ref().unwrap().id, "mm-2");
    let m = message(app, "mm-1").await;
    assert_eq!(m.sender_id.as_deref(), Some("u-alice"));
    assert_eq!(m.sender.as_ref().unwrap().username, "alice");
    Ok(())
}

async fn a_replayed_push_is_already_processed(
    app: &TestApp,
    alice: &str,
    push: &Value,
    alpha_before: u64,
) -> Result<()> {
    let (_, resp) = app.push_body(alice, push).await;
    let results = results(&resp);
    assert_eq!(results.len(), 2);
    for r in results {
        assert_eq!(r["error"], "alreadyProcessed", "{resp}");
    }
    assert_eq!(message_count(app, "r-alpha").await, alpha_before + 2);
    assert_eq!(lmid(app, CG, "c1").await, Some(Bson::Int64(2)));
    Ok(())
}

/// 5 and 6 when 3 is expected.
async fn a_gap_stops_the_push(app: &TestApp, alice: &str) -> Result<()> {
    let push = TestApp::push(
        CG,
        &[
            ("c1", 5, "message.send", send("mm-5", "r-alpha", "five")),
            ("c1", 6, "message.send", send("mm-6", "r-alpha", "six")),
        ],
    );
    let (status, resp) = app.push_body(alice, &push).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(resp["kind"], "PushFailed");
    assert_eq!(resp["origin"], "server");
    assert_eq!(resp["reason"], "oooMutation");
    assert_eq!(
        resp["mutationIDs"],
        json!([{"clientID": "c1", "id": 5}, {"clientID": "c1", "id": 6}])
    );
    assert!(
        resp["message"].as_str().unwrap().contains("expected 3"),
        "{resp}"
    );
    assert_eq!(lmid(app, CG, "c1").await, Some(Bson::Int64(2)));
    assert!(!message_exists(app, "mm-5").await);
    Ok(())
}

/// alice is not in r-eng: id 3 fails, id 4 after it succeeds.
async fn an_application_error_is_recorded(app: &TestApp, alice: &str) -> Result<()> {
    let push = TestApp::push(
        CG,
        &[
            (
                "c1",
                3,
                "message.send",
                send("mm-3", "r-eng", "not allowed"),
            ),
            ("c1", 4, "message.send", send("mm-4", "r-alpha", "four")),
        ],
    );
    let (_, resp) = app.push_body(alice, &push).await;
    let ms = resp["mutations"].as_array().unwrap();
    assert_eq!(ms[0]["id"], json!({"clientID": "c1", "id": 3}));
    assert_eq!(ms[0]["result"]["error"], "app");
    assert!(
        ms[0]["result"]["message"]
            .as_str()
            .unwrap()
            .contains("not a member"),
        "{resp}"
    );
    assert_eq!(ms[1]["result"], json!({}));
    // The failed mutation's writes were rolled back; its counter bump happened exactly once
    // (in the recording transaction), which is why id 4 was accepted.
    assert!(!message_exists(app, "mm-3").await);
    assert_eq!(lmid(app, CG, "c1").await, Some(Bson::Int64(4)));
    let row = app
        .db
        .mutations
        .find_one(doc! {"_id": {CLIENT_GROUP_ID: CG, CLIENT_ID: "c1", MUTATION_ID: Bson::Int64(3)}})
        .await
        .unwrap()
        .expect("the error is recorded in zero_mutations");
    assert_eq!(row.get(MUTATION_ID), Some(&Bson::Int64(3)));
    assert_eq!(
        row.get_document(RESULT).unwrap().get_str("error").unwrap(),
        "app"
    );
    assert_eq!(row.get_str(CLIENT_GROUP_ID).unwrap(), CG);
    Ok(())
}

/// Both are recorded like any application error, and the counter advances.
async fn unknown_mutators_and_bad_arguments_are_app_errors(
    app: &TestApp,
    alice: &str,
) -> Result<()> {
    let push = TestApp::push(
        CG,
        &[
            ("c1", 5, "nope.nothing", json!({})),
            ("c1", 6, "message.send", json!({"id": "mm-6"})),
        ],
    );
    let (_, resp) = app.push_body(alice, &push).await;
    let ms = resp["mutations"].as_array().unwrap();
    assert_eq!(ms[0]["result"]["error"], "app");
    assert!(
        ms[0]["result"]["message"]
            .as_str()
            .unwrap()
            .contains("nope.nothing")
    );
    assert_eq!(ms[1]["result"]["error"], "app");
    assert!(
        ms[1]["result"]["message"]
            .as_str()
            .unwrap()
            .contains("roomId"),
        "{resp}"
    );
    assert_eq!(ms[1]["result"]["details"]["type"], "InputValidationError");
    assert_eq!(lmid(app, CG, "c1").await, Some(Bson::Int64(6)));
    assert_eq!(mutation_rows(app, "c1").await, 3);
    Ok(())
}

/// No room, membership or system message of the failed create remains.
async fn a_failing_room_create_leaves_nothing(app: &TestApp, alice: &str) -> Result<()> {
    let push = TestApp::push(
        CG,
        &[(
            "c1",
            7,
            "room.create",
            json!({"id": "r-bad", "type": "p", "name": "Bad", "memberIds": ["u-bob", "u-ghost"]}),
        )],
    );
    let (_, resp) = app.push_body(alice, &push).await;
    assert_eq!(resp["mutations"][0]["result"]["error"], "app", "{resp}");
    assert!(
        resp["mutations"][0]["result"]["message"]
            .as_str()
            .unwrap()
            .contains("u-ghost")
    );
    assert!(
        app.db
            .rooms
            .find_one(doc! {"_id": "r-bad"})
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        app.db
            .subscriptions
            .count_documents(doc! {"roomId": "r-bad"})
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        app.db
            .messages
            .count_documents(doc! {"roomId": "r-bad"})
            .await
            .unwrap(),
        0
    );
    Ok(())
}

/// The single form answers no entry and leaves the counter alone; sent twice.
async fn cleanup_single(app: &TestApp, alice: &str) -> Result<()> {
    let single = cleanup_push(
        json!({"type": "single", "clientGroupID": CG, "clientID": "c1", "upToMutationID": 5}),
    );
    for _ in 0..2 {
        let (status, resp) = app.push_body(alice, &single).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            resp,
            json!({"kind": "MutateResponse", "userID": "u-alice", "mutations": []})
        );
    }
    let rows: Vec<bson::Document> = app
        .db
        .mutations
        .find(doc! {CLIENT_ID: "c1"})
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    let left: Vec<i64> = rows
        .iter()
        .map(|r| r.get_i64(MUTATION_ID).unwrap())
        .collect();
    assert_eq!(left.len(), 2, "rows 6 and 7 remain: {left:?}");
    assert!(left.iter().all(|id| *id > 5));
    assert_eq!(lmid(app, CG, "c1").await, Some(Bson::Int64(7)));
    Ok(())
}

/// Legacy: no `type`; bulk: by client ids.
async fn cleanup_legacy_and_bulk(app: &TestApp, alice: &str) -> Result<()> {
    let legacy = cleanup_push(json!({"clientGroupID": CG, "clientID": "c1", "upToMutationID": 6}));
    app.push_body(alice, &legacy).await;
    assert_eq!(mutation_rows(app, "c1").await, 1);
    let bulk = cleanup_push(json!({"type": "bulk", "clientGroupID": CG, "clientIDs": ["c1"]}));
    let (_, resp) = app.push_body(alice, &bulk).await;
    assert_eq!(resp["mutations"], json!([]));
    assert_eq!(mutation_rows(app, "c1").await, 0);
    assert_eq!(lmid(app, CG, "c1").await, Some(Bson::Int64(7)));
    Ok(())
}

/// Zero 1.9's insert semantics.
async fn an_existing_message_id_changes_nothing(app: &TestApp, alice: &str) -> Result<()> {
    let push = TestApp::push(
        CG,
        &[("c1", 8, "message.send", send("mm-1", "r-alpha", "changed?"))],
    );
    let (_, resp) = app.push_body(alice, &push).await;
    assert_eq!(resp["mutations"][0]["result"], json!({}));
    assert_eq!(message(app, "mm-1").await.text.as_deref(), Some("first"));
    Ok(())
}

async fn two_clients_are_counted_separately(app: &TestApp, alice: &str) -> Result<()> {
    let push = TestApp::push(
        CG,
        &[
            (
                "c2",
                1,
                "message.send",
                send("mm-c2-1", "r-alpha", "from c2"),
            ),
            (
                "c1",
                9,
                "message.edit",
                json!({"id": "mm-1", "text": "edited"}),
            ),
        ],
    );
    let (_, resp) = app.push_body(alice, &push).await;
    assert_eq!(resp["mutations"][0]["result"], json!({}), "{resp}");
    assert_eq!(resp["mutations"][1]["result"], json!({}), "{resp}");
    assert_eq!(lmid(app, CG, "c2").await, Some(Bson::Int64(1)));
    let m = message(app, "mm-1").await;
    assert_eq!(m.text.as_deref(), Some("edited"));
    assert!(m.edited_at.is_some());
    Ok(())
}

async fn an_unsupported_push_version_fails(app: &TestApp, alice: &str) -> Result<()> {
    let mut v2 = TestApp::push(
        CG,
        &[("c1", 10, "message.send", send("mm-10", "r-alpha", "x"))],
    );
    v2["pushVersion"] = json!(2);
    let (_, resp) = app.push_body(alice, &v2).await;
    assert_eq!(resp["kind"], "PushFailed");
    assert_eq!(resp["reason"], "unsupportedPushVersion");
    assert_eq!(resp["mutationIDs"], json!([{"clientID": "c1", "id": 10}]));
    Ok(())
}

async fn an_unparsable_body_fails(app: &TestApp, alice: &str) -> Result<()> {
    let (_, resp) = app.push_body(alice, &json!({"mutations": "nope"})).await;
    assert_eq!(resp["kind"], "PushFailed");
    assert_eq!(resp["reason"], "parse");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutate_identity_auth_and_concurrency() -> Result<()> {
    let app = TestApp::start().await;
    let alice = app.token("u-alice").await;
    let bob = app.token("u-bob").await;
    // The cases share alice's client `ca` in group `cg-a`, whose counter goes up case by case;
    // the delete case needs the message the impersonation case sends.
    let mut cases = Cases::new("mutate_identity_auth_and_concurrency");
    cases
        .run(
            "no token or a bad token is 401",
            no_or_bad_token_is_unauthorized(&app),
        )
        .await;
    cases
        .run(
            "sender fields in the arguments are ignored: the token decides",
            impersonation_is_ignored(&app, &alice),
        )
        .await;
    cases
        .run(
            "only the sender may delete a message",
            only_the_sender_deletes(&app, &bob),
        )
        .await;
    cases
        .run(
            "a client group belongs to its user",
            a_client_group_belongs_to_its_user(&app, &bob),
        )
        .await;
    cases
        .run(
            "the same mutation pushed twice at once commits once",
            concurrent_duplicates_commit_once(&app, &alice),
        )
        .await;
    cases
        .run(
            "room.create is idempotent on its id and writes memberships and ROOM_CREATED",
            room_create_is_idempotent(&app, &alice),
        )
        .await;
    app.stop().await;
    cases.finish()
}

async fn no_or_bad_token_is_unauthorized(app: &TestApp) -> Result<()> {
    let body = TestApp::push(
        "cg-x",
        &[("c1", 1, "message.send", send("mx-1", "r-alpha", "hi"))],
    );
    let resp = app
        .http
        .post(app.url("/api/zero/mutate"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let (status, err) = app.push_body("not.a.token", &body).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(err["error"].is_string());
    Ok(())
}

async fn impersonation_is_ignored(app: &TestApp, alice: &str) -> Result<()> {
    let args = json!({"id": "mx-imp", "roomId": "r-alpha", "text": "who am I", "createdAt": chrono_now(),
                      "userId": "u-bob", "senderId": "u-bob", "sender": {"_id": "u-bob", "username": "bob"}});
    let (_, resp) = app
        .push_body(
            alice,
            &TestApp::push("cg-a", &[("ca", 1, "message.send", args)]),
        )
        .await;
    assert_eq!(resp["userID"], "u-alice");
    assert_eq!(resp["mutations"][0]["result"], json!({}));
    let m = message(app, "mx-imp").await;
    assert_eq!(m.sender_id.as_deref(), Some("u-alice"));
    assert_eq!(m.sender.unwrap().id, "u-alice");
    Ok(())
}

async fn only_the_sender_deletes(app: &TestApp, bob: &str) -> Result<()> {
    let (_, resp) = app
        .push_body(
            bob,
            &TestApp::push(
                "cg-b",
                &[("cb", 1, "message.delete", json!({"id": "mx-imp"}))],
            ),
        )
        .await;
    assert_eq!(resp["mutations"][0]["result"]["error"], "app");
    assert!(!message(app, "mx-imp").await.hidden);
    Ok(())
}

/// bob cannot advance alice's counters.
async fn a_client_group_belongs_to_its_user(app: &TestApp, bob: &str) -> Result<()> {
    let (status, _) = app
        .push_body(
            bob,
            &TestApp::push(
                "cg-a",
                &[("ca", 2, "message.send", send("mx-b", "r-alpha", "x"))],
            ),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(lmid(app, "cg-a", "ca").await, Some(Bson::Int64(1)));
    Ok(())
}

/// One success, one alreadyProcessed, one message.
async fn concurrent_duplicates_commit_once(app: &TestApp, alice: &str) -> Result<()> {
    let before = message_count(app, "r-alpha").await;
    let body = TestApp::push(
        "cg-a",
        &[("ca", 2, "message.send", send("mx-race", "r-alpha", "race"))],
    );
    let (a, b) = tokio::join!(app.push_body(alice, &body), app.push_body(alice, &body));
    let mut results = vec![
        a.1["mutations"][0]["result"].clone(),
        b.1["mutations"][0]["result"].clone(),
    ];
    results.sort_by_key(|r| r.to_string());
    assert_eq!(results[1], json!({}), "{results:?}");
    assert_eq!(results[0]["error"], "alreadyProcessed", "{results:?}");
    assert_eq!(message_count(app, "r-alpha").await, before + 1);
    assert_eq!(lmid(app, "cg-a", "ca").await, Some(Bson::Int64(2)));
    Ok(())
}

async fn room_create_is_idempotent(app: &TestApp, alice: &str) -> Result<()> {
    let create = json!({"id": "r-new", "type": "p", "name": "New group", "memberIds": ["u-bob"]});
    let (_, resp) = app
        .push_body(
            alice,
            &TestApp::push("cg-a", &[("ca", 3, "room.create", create.clone())]),
        )
        .await;
    assert_eq!(resp["mutations"][0]["result"], json!({}), "{resp}");
    let mut again = create.clone();
    again["name"] = json!("Renamed?");
    let (_, resp) = app
        .push_body(
            alice,
            &TestApp::push("cg-a", &[("ca", 4, "room.create", again)]),
        )
        .await;
    assert_eq!(resp["mutations"][0]["result"], json!({}));
    let r = room(app, "r-new").await;
    assert_eq!(r.name.as_deref(), Some("New group"));
    assert_eq!(r.member_ids, vec!["u-alice", "u-bob"]);
    assert_eq!(r.created_by, "u-alice");
    assert_eq!(
        app.db
            .subscriptions
            .count_documents(doc! {"roomId": "r-new"})
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        app.db
            .messages
            .count_documents(doc! {"roomId": "r-new", "t": "ROOM_CREATED"})
            .await
            .unwrap(),
        1
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_key_is_required_when_configured() -> Result<()> {
    let app = TestApp::start_with(Some("the-api-key")).await;
    let alice = app.token("u-alice").await;
    let push = TestApp::push(
        "cg-k",
        &[("ck", 1, "room.join", json!({"roomId": "r-random"}))],
    );
    let mut cases = Cases::new("api_key_is_required_when_configured");
    cases
        .run(
            "the mutate endpoint needs the right X-Api-Key",
            needs_the_api_key(&app, &alice, "/api/zero/mutate", push),
        )
        .await;
    cases
        .run(
            "the query endpoint needs the right X-Api-Key",
            needs_the_api_key(&app, &alice, "/api/zero/query", json!(["transform", []])),
        )
        .await;
    app.stop().await;
    cases.finish()
}

/// Without the key and with a wrong one: 401; with the right one: 200.
async fn needs_the_api_key(app: &TestApp, token: &str, path: &str, payload: Value) -> Result<()> {
    for (key, expected) in [
        (None, StatusCode::UNAUTHORIZED),
        (Some("wrong"), StatusCode::UNAUTHORIZED),
        (Some("the-api-key"), StatusCode::OK),
    ] {
        let mut req = app.http.post(app.url(path)).bearer_auth(token);
        if let Some(key) = key {
            req = req.header("X-Api-Key", key);
        }
        let resp = req.json(&payload).send().await.unwrap();
        assert_eq!(resp.status(), expected, "{path} with {key:?}");
    }
    Ok(())
}
