//! The Zero mutate endpoint against a real MongoDB replica set: lastMutationID bookkeeping,
//! duplicates, gaps, application errors, retries, cleanup, auth and the API key.

mod common;

use bson::{Bson, doc};
use common::TestApp;
use serde_json::{Value, json};
use zerostack_harness::http::StatusCode;

async fn lmid(app: &TestApp, cg: &str, client: &str) -> Option<Bson> {
    app.db
        .clients
        .find_one(doc! {"_id": {"clientGroupID": cg, "clientID": client}})
        .await
        .unwrap()
        .and_then(|d| d.get("lastMutationID").cloned())
}

async fn message_count(app: &TestApp, room: &str) -> u64 {
    app.db
        .messages
        .count_documents(doc! {"roomId": room, "t": "USER"})
        .await
        .unwrap()
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutate_protocol() {
    let app = TestApp::start().await;
    let alice = app.token("u-alice");
    let cg = "cg-alice";

    // In order: ids 1 and 2 in one request.
    let before = message_count(&app, "r-alpha").await;
    let room_before = app
        .db
        .rooms
        .find_one(doc! {"_id": "r-alpha"})
        .await
        .unwrap()
        .unwrap();
    let body = TestApp::push(
        cg,
        &[
            ("c1", 1, "message.send", send("mm-1", "r-alpha", "first")),
            ("c1", 2, "message.send", send("mm-2", "r-alpha", "second")),
        ],
    );
    let (status, resp) = app.push_body(&alice, &body).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        resp,
        json!({"kind": "MutateResponse", "userID": "u-alice", "mutations": [
            {"id": {"clientID": "c1", "id": 1}, "result": {}},
            {"id": {"clientID": "c1", "id": 2}, "result": {}},
        ]})
    );
    assert_eq!(lmid(&app, cg, "c1").await, Some(Bson::Int64(2)));
    assert_eq!(message_count(&app, "r-alpha").await, before + 2);
    let room = app
        .db
        .rooms
        .find_one(doc! {"_id": "r-alpha"})
        .await
        .unwrap()
        .unwrap();
    assert_eq!(room.message_count, room_before.message_count + 2);
    assert_eq!(room.last_message.as_ref().unwrap().id, "mm-2");
    let m = app
        .db
        .messages
        .find_one(doc! {"_id": "mm-1"})
        .await
        .unwrap()
        .unwrap();
    assert_eq!(m.sender_id.as_deref(), Some("u-alice"));
    assert_eq!(m.sender.as_ref().unwrap().username, "alice");

    // A retried request (the same push again): alreadyProcessed, no duplicate writes.
    let (_, resp) = app.push_body(&alice, &body).await;
    let results: Vec<&Value> = resp["mutations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| &m["result"])
        .collect();
    assert_eq!(results.len(), 2);
    for r in results {
        assert_eq!(r["error"], "alreadyProcessed", "{resp}");
    }
    assert_eq!(message_count(&app, "r-alpha").await, before + 2);
    assert_eq!(lmid(&app, cg, "c1").await, Some(Bson::Int64(2)));

    // Out of order: 5 and 6 when 3 is expected.
    let (status, resp) = app
        .push_body(
            &alice,
            &TestApp::push(
                cg,
                &[
                    ("c1", 5, "message.send", send("mm-5", "r-alpha", "five")),
                    ("c1", 6, "message.send", send("mm-6", "r-alpha", "six")),
                ],
            ),
        )
        .await;
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
    assert_eq!(lmid(&app, cg, "c1").await, Some(Bson::Int64(2)));
    assert!(
        app.db
            .messages
            .find_one(doc! {"_id": "mm-5"})
            .await
            .unwrap()
            .is_none()
    );

    // An application error (alice is not in r-eng) followed by a good mutation.
    let (_, resp) = app
        .push_body(
            &alice,
            &TestApp::push(
                cg,
                &[
                    (
                        "c1",
                        3,
                        "message.send",
                        send("mm-3", "r-eng", "not allowed"),
                    ),
                    ("c1", 4, "message.send", send("mm-4", "r-alpha", "four")),
                ],
            ),
        )
        .await;
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
    assert!(
        app.db
            .messages
            .find_one(doc! {"_id": "mm-3"})
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(lmid(&app, cg, "c1").await, Some(Bson::Int64(4)));
    let row = app
        .db
        .mutations
        .find_one(
            doc! {"_id": {"clientGroupID": cg, "clientID": "c1", "mutationID": Bson::Int64(3)}},
        )
        .await
        .unwrap()
        .expect("the error is recorded in zero_mutations");
    assert_eq!(row.get("mutationID"), Some(&Bson::Int64(3)));
    assert_eq!(
        row.get_document("result")
            .unwrap()
            .get_str("error")
            .unwrap(),
        "app"
    );
    assert_eq!(row.get_str("clientGroupID").unwrap(), cg);

    // Unknown mutator and bad arguments are application errors too (recorded, lmid advances).
    let (_, resp) = app
        .push_body(
            &alice,
            &TestApp::push(
                cg,
                &[
                    ("c1", 5, "nope.nothing", json!({})),
                    ("c1", 6, "message.send", json!({"id": "mm-6"})),
                ],
            ),
        )
        .await;
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
    assert_eq!(lmid(&app, cg, "c1").await, Some(Bson::Int64(6)));
    assert_eq!(
        app.db
            .mutations
            .count_documents(doc! {"clientID": "c1"})
            .await
            .unwrap(),
        3
    );

    // A failing room.create leaves no room, membership or system message behind.
    let (_, resp) = app
        .push_body(
            &alice,
            &TestApp::push(
                cg,
                &[(
                    "c1",
                    7,
                    "room.create",
                    json!({"id": "r-bad", "type": "p", "name": "Bad", "memberIds": ["u-bob", "u-ghost"]}),
                )],
            ),
        )
        .await;
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

    // Cleanup (single): deletes rows up to the id, answers no entry, leaves lmid alone; twice.
    let cleanup = |up: i64| {
        json!({"clientGroupID": cg, "pushVersion": 1, "timestamp": 1, "requestID": "cleanup",
               "mutations": [{"type": "custom", "id": 0, "clientID": "c1", "name": "_zero_cleanupResults",
                               "timestamp": 1, "args": [{"type": "single", "clientGroupID": cg, "clientID": "c1", "upToMutationID": up}]}]})
    };
    for _ in 0..2 {
        let (status, resp) = app.push_body(&alice, &cleanup(5)).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            resp,
            json!({"kind": "MutateResponse", "userID": "u-alice", "mutations": []})
        );
    }
    let left: Vec<i64> = {
        use futures::TryStreamExt;
        let rows: Vec<bson::Document> = app
            .db
            .mutations
            .find(doc! {"clientID": "c1"})
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        rows.iter()
            .map(|r| r.get_i64("mutationID").unwrap())
            .collect()
    };
    assert_eq!(left.len(), 2, "rows 6 and 7 remain: {left:?}");
    assert!(left.iter().all(|id| *id > 5));
    assert_eq!(lmid(&app, cg, "c1").await, Some(Bson::Int64(7)));

    // Legacy form (no type) and bulk form.
    let legacy = json!({"clientGroupID": cg, "pushVersion": 1, "timestamp": 1, "requestID": "x",
        "mutations": [{"type": "custom", "id": 0, "clientID": "c1", "name": "_zero_cleanupResults", "timestamp": 1,
                        "args": [{"clientGroupID": cg, "clientID": "c1", "upToMutationID": 6}]}]});
    app.push_body(&alice, &legacy).await;
    assert_eq!(
        app.db
            .mutations
            .count_documents(doc! {"clientID": "c1"})
            .await
            .unwrap(),
        1
    );
    let bulk = json!({"clientGroupID": cg, "pushVersion": 1, "timestamp": 1, "requestID": "x",
        "mutations": [{"type": "custom", "id": 0, "clientID": "c1", "name": "_zero_cleanupResults", "timestamp": 1,
                        "args": [{"type": "bulk", "clientGroupID": cg, "clientIDs": ["c1"]}]}]});
    let (_, resp) = app.push_body(&alice, &bulk).await;
    assert_eq!(resp["mutations"], json!([]));
    assert_eq!(
        app.db
            .mutations
            .count_documents(doc! {"clientID": "c1"})
            .await
            .unwrap(),
        0
    );
    assert_eq!(lmid(&app, cg, "c1").await, Some(Bson::Int64(7)));

    // 1.9 insert semantics: an existing message id succeeds and changes nothing.
    let (_, resp) = app
        .push_body(
            &alice,
            &TestApp::push(
                cg,
                &[("c1", 8, "message.send", send("mm-1", "r-alpha", "changed?"))],
            ),
        )
        .await;
    assert_eq!(resp["mutations"][0]["result"], json!({}));
    let m = app
        .db
        .messages
        .find_one(doc! {"_id": "mm-1"})
        .await
        .unwrap()
        .unwrap();
    assert_eq!(m.text.as_deref(), Some("first"));

    // Two clients of one group in one request are counted separately.
    let (_, resp) = app
        .push_body(
            &alice,
            &TestApp::push(
                cg,
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
            ),
        )
        .await;
    assert_eq!(resp["mutations"][0]["result"], json!({}), "{resp}");
    assert_eq!(resp["mutations"][1]["result"], json!({}), "{resp}");
    assert_eq!(lmid(&app, cg, "c2").await, Some(Bson::Int64(1)));
    let m = app
        .db
        .messages
        .find_one(doc! {"_id": "mm-1"})
        .await
        .unwrap()
        .unwrap();
    assert_eq!(m.text.as_deref(), Some("edited"));
    assert!(m.edited_at.is_some());

    // Unsupported push version.
    let mut v2 = TestApp::push(
        cg,
        &[("c1", 10, "message.send", send("mm-10", "r-alpha", "x"))],
    );
    v2["pushVersion"] = json!(2);
    let (_, resp) = app.push_body(&alice, &v2).await;
    assert_eq!(resp["kind"], "PushFailed");
    assert_eq!(resp["reason"], "unsupportedPushVersion");
    assert_eq!(resp["mutationIDs"], json!([{"clientID": "c1", "id": 10}]));

    // Unparsable body.
    let (_, resp) = app.push_body(&alice, &json!({"mutations": "nope"})).await;
    assert_eq!(resp["kind"], "PushFailed");
    assert_eq!(resp["reason"], "parse");

    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutate_identity_auth_and_concurrency() {
    let app = TestApp::start().await;
    let alice = app.token("u-alice");
    let bob = app.token("u-bob");

    // No token, a bad token: 401.
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

    // Impersonation: sender fields in the args are ignored; the token decides.
    let args = json!({"id": "mx-imp", "roomId": "r-alpha", "text": "who am I", "createdAt": chrono_now(),
                      "userId": "u-bob", "senderId": "u-bob", "sender": {"_id": "u-bob", "username": "bob"}});
    let (_, resp) = app
        .push_body(
            &alice,
            &TestApp::push("cg-a", &[("ca", 1, "message.send", args)]),
        )
        .await;
    assert_eq!(resp["userID"], "u-alice");
    assert_eq!(resp["mutations"][0]["result"], json!({}));
    let m = app
        .db
        .messages
        .find_one(doc! {"_id": "mx-imp"})
        .await
        .unwrap()
        .unwrap();
    assert_eq!(m.sender_id.as_deref(), Some("u-alice"));
    assert_eq!(m.sender.unwrap().id, "u-alice");

    // Only the sender may edit or delete.
    let (_, resp) = app
        .push_body(
            &bob,
            &TestApp::push(
                "cg-b",
                &[("cb", 1, "message.delete", json!({"id": "mx-imp"}))],
            ),
        )
        .await;
    assert_eq!(resp["mutations"][0]["result"]["error"], "app");
    assert!(
        !app.db
            .messages
            .find_one(doc! {"_id": "mx-imp"})
            .await
            .unwrap()
            .unwrap()
            .hidden
    );

    // A client group belongs to its user: bob cannot advance alice's counters.
    let (status, _) = app
        .push_body(
            &bob,
            &TestApp::push(
                "cg-a",
                &[("ca", 2, "message.send", send("mx-b", "r-alpha", "x"))],
            ),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(lmid(&app, "cg-a", "ca").await, Some(Bson::Int64(1)));

    // The same mutation pushed twice at once: one success, one alreadyProcessed, one message.
    let before = message_count(&app, "r-alpha").await;
    let body = TestApp::push(
        "cg-a",
        &[("ca", 2, "message.send", send("mx-race", "r-alpha", "race"))],
    );
    let (a, b) = tokio::join!(app.push_body(&alice, &body), app.push_body(&alice, &body));
    let mut results = vec![
        a.1["mutations"][0]["result"].clone(),
        b.1["mutations"][0]["result"].clone(),
    ];
    results.sort_by_key(|r| r.to_string());
    assert_eq!(results[1], json!({}), "{results:?}");
    assert_eq!(results[0]["error"], "alreadyProcessed", "{results:?}");
    assert_eq!(message_count(&app, "r-alpha").await, before + 1);
    assert_eq!(lmid(&app, "cg-a", "ca").await, Some(Bson::Int64(2)));

    // room.create is idempotent on id and creates memberships and a ROOM_CREATED message.
    let create = json!({"id": "r-new", "type": "p", "name": "New group", "memberIds": ["u-bob"]});
    let (_, resp) = app
        .push_body(
            &alice,
            &TestApp::push("cg-a", &[("ca", 3, "room.create", create.clone())]),
        )
        .await;
    assert_eq!(resp["mutations"][0]["result"], json!({}), "{resp}");
    let mut again = create.clone();
    again["name"] = json!("Renamed?");
    let (_, resp) = app
        .push_body(
            &alice,
            &TestApp::push("cg-a", &[("ca", 4, "room.create", again)]),
        )
        .await;
    assert_eq!(resp["mutations"][0]["result"], json!({}));
    let room = app
        .db
        .rooms
        .find_one(doc! {"_id": "r-new"})
        .await
        .unwrap()
        .unwrap();
    assert_eq!(room.name.as_deref(), Some("New group"));
    assert_eq!(room.member_ids, vec!["u-alice", "u-bob"]);
    assert_eq!(room.created_by, "u-alice");
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

    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_key_is_required_when_configured() {
    let app = TestApp::start_with(Some("the-api-key")).await;
    let alice = app.token("u-alice");
    let body = TestApp::push(
        "cg-k",
        &[("ck", 1, "room.join", json!({"roomId": "r-random"}))],
    );
    for path in ["/api/zero/mutate", "/api/zero/query"] {
        let payload = if path.ends_with("query") {
            json!(["transform", []])
        } else {
            body.clone()
        };
        let resp = app
            .http
            .post(app.url(path))
            .bearer_auth(&alice)
            .json(&payload)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{path}");
        let resp = app
            .http
            .post(app.url(path))
            .bearer_auth(&alice)
            .header("X-Api-Key", "wrong")
            .json(&payload)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{path}");
        let resp = app
            .http
            .post(app.url(path))
            .bearer_auth(&alice)
            .header("X-Api-Key", "the-api-key")
            .json(&payload)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{path}");
    }
    app.stop().await;
}
