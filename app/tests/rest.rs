//! The REST API against a real MongoDB: public endpoints, identity from the session only,
//! validation errors, room and message flows, the seed, config and health. Sign-in itself is
//! `tests/auth.rs`'s; every route without credentials is `tests/routes.rs`'s.
//!
//! Each test function starts one app and runs its scenario as named cases in order, sharing the
//! app and its data. Where a case needs what an earlier one made (the group the lifecycle
//! creates, the message sent in it), it says so and fails with that reason if the earlier case
//! did not get that far.

mod common;

use anyhow::{Context, Result};
use bson::doc;
use common::TestApp;
use futures::TryStreamExt;
use serde_json::{Value, json};
use zerostack_harness::cases::Cases;
use zerostack_harness::http::{Method, StatusCode};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_endpoints_and_identity() -> Result<()> {
    let app = TestApp::start().await;
    let alice = app.token("u-alice").await;
    let mut cases = Cases::new("public_endpoints_and_identity");
    cases
        .run(
            "public endpoints answer without a token",
            public_endpoints_need_no_token(&app),
        )
        .await;
    cases
        .run(
            "protected endpoints refuse garbage, foreign and old-style tokens",
            protected_endpoints_refuse_bad_tokens(&app),
        )
        .await;
    cases
        .run("sender fields in REST bodies are ignored", async {
            impersonation_through_rest_is_ignored(&app, &alice).await
        })
        .await;
    app.stop().await;
    cases.finish()
}

async fn public_endpoints_need_no_token(app: &TestApp) -> Result<()> {
    let (status, body) = app.get("/health", None).await;
    assert_eq!((status, body), (StatusCode::OK, json!({"status": "ok"})));
    let (_, body) = app.get("/api/config", None).await;
    assert_eq!(
        body,
        json!({"zeroCacheUrl": "http://127.0.0.1:4848", "devLogin": false, "oidc": null})
    );
    let (status, body) = app.get("/openapi.json", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["openapi"], "3.1.0");
    // The user list is no longer public.
    let (status, body) = app.get("/api/auth/users", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    Ok(())
}

async fn protected_endpoints_refuse_bad_tokens(app: &TestApp) -> Result<()> {
    // A token of the right shape that was never issued, and an HS256 JWT of the old scheme.
    let unknown = "A".repeat(43);
    let old_jwt = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJ1LWFsaWNlIn0.c2ln";
    let protected: [(Method, &str, Value); 4] = [
        (Method::GET, "/api/users/me", Value::Null),
        (Method::GET, "/api/auth/session", Value::Null),
        (
            Method::POST,
            "/api/rooms/r-general/messages",
            json!({"text": "hi"}),
        ),
        (Method::POST, "/api/zero/query", json!(["transform", []])),
    ];
    for (method, path, body) in &protected {
        for token in ["garbage", unknown.as_str(), old_jwt] {
            let body = (!body.is_null()).then(|| body.clone());
            let (status, resp) = app.call(method.clone(), path, Some(token), body).await;
            assert_eq!(
                status,
                StatusCode::UNAUTHORIZED,
                "{method} {path} with {token}"
            );
            assert!(resp["error"].is_string(), "{method} {path}: {resp}");
        }
    }
    let (_, resp) = app
        .call(Method::GET, "/api/users/me", Some("x y"), None)
        .await;
    assert!(
        resp["error"].as_str().unwrap().contains("sign in"),
        "{resp}"
    );
    // Nothing was written by the rejected calls.
    assert_eq!(
        app.db
            .messages
            .count_documents(doc! {"text": "hi"})
            .await
            .unwrap(),
        0
    );
    Ok(())
}

async fn impersonation_through_rest_is_ignored(app: &TestApp, token: &str) -> Result<()> {
    let (status, msg) = app
        .post(
            "/api/rooms/r-general/messages",
            Some(token),
            json!({"text": "from alice", "userId": "u-bob", "senderId": "u-bob", "username": "bob"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{msg}");
    assert_eq!(msg["senderId"], "u-alice");
    assert_eq!(msg["sender"]["username"], "alice");
    assert!(msg["createdAt"].is_i64(), "dates are epoch ms: {msg}");
    let stored = app
        .db
        .messages
        .find_one(doc! {"_id": msg["_id"].as_str().unwrap()})
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.sender_id.as_deref(), Some("u-alice"));
    Ok(())
}

/// What the room lifecycle cases pass on.
#[derive(Default)]
struct Lifecycle {
    /// The group alice creates.
    room_id: Option<String>,
    /// The message charlie sends in it.
    sent_id: Option<String>,
}

impl Lifecycle {
    fn room_id(&self) -> Result<&str> {
        self.room_id
            .as_deref()
            .context("the case that creates the group failed")
    }

    fn sent_id(&self) -> Result<&str> {
        self.sent_id
            .as_deref()
            .context("the case that sends the message failed")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rooms_messages_validation_and_seed() -> Result<()> {
    let app = TestApp::start().await;
    let alice = app.token("u-alice").await;
    let bob = app.token("u-bob").await;
    let charlie = app.token("u-charlie").await;
    let mut cases = Cases::new("rooms_messages_validation_and_seed");
    let mut lc = Lifecycle::default();

    cases
        .run(
            "validation errors name the problem",
            validation_errors_name_the_problem(&app, &alice),
        )
        .await;
    // The seed cases below check that this edit survives.
    cases
        .run(
            "only the sender edits a message",
            only_the_sender_edits(&app, &alice),
        )
        .await;
    // Room lifecycle, in order: alice creates a group with bob, bob invites charlie, charlie
    // posts and leaves, charlie joins a public channel.
    cases
        .run(
            "a created group has the caller and memberIds as members",
            async {
                lc.room_id = Some(creating_a_group(&app, &alice).await?);
                Ok(())
            },
        )
        .await;
    cases
        .run("a non-member cannot read the group", async {
            let (status, _) = app
                .get(
                    &format!("/api/rooms/{}/messages", lc.room_id()?),
                    Some(&charlie),
                )
                .await;
            assert_eq!(status, StatusCode::FORBIDDEN);
            Ok(())
        })
        .await;
    cases
        .run("a member invites, and the invitee posts", async {
            let sent = inviting_and_posting(&app, lc.room_id()?, &bob, &charlie).await?;
            lc.sent_id = Some(sent);
            Ok(())
        })
        .await;
    cases
        .run(
            "listings: the room's messages, and my rooms by newest activity",
            async { listings_show_the_post(&app, &lc, &alice, &charlie).await },
        )
        .await;
    cases
        .run(
            "leaving removes the membership and leaves system messages",
            async { leaving_a_group(&app, lc.room_id()?, &charlie).await },
        )
        .await;
    cases
        .run(
            "anyone joins a public channel",
            anyone_joins_a_public_channel(&app, &charlie),
        )
        .await;
    cases
        .run("a deleted message leaves the listings", async {
            deleting_hides_the_message(&app, &lc, &alice, &charlie).await
        })
        .await;
    cases
        .run(
            "users: me, and search with q taken literally",
            user_lookups(&app, &bob),
        )
        .await;
    cases
        .run(
            "the seed is idempotent and never overwrites edits",
            the_seed_changes_nothing_that_exists(&app, &bob),
        )
        .await;
    cases
        .run(
            "the seed restores a wiped room, and only it",
            the_seed_restores_a_wiped_room(&app, &bob),
        )
        .await;
    cases
        .run(
            "every stored message type is routed to a table",
            every_stored_message_type_is_mapped(&app),
        )
        .await;
    cases
        .run(
            "the UI fallback page when the UI is not built, and JSON 404s for the API",
            fallbacks(&app, &alice),
        )
        .await;
    app.stop().await;
    cases.finish()
}

async fn validation_errors_name_the_problem(app: &TestApp, alice: &str) -> Result<()> {
    let cases: [(Method, &str, Option<Value>, StatusCode, &str); 12] = [
        (
            Method::POST,
            "/api/rooms",
            Some(json!({"type": "x", "name": "n"})),
            StatusCode::BAD_REQUEST,
            "type",
        ),
        (
            Method::POST,
            "/api/rooms",
            Some(json!({"type": "c"})),
            StatusCode::BAD_REQUEST,
            "name",
        ),
        (
            Method::POST,
            "/api/rooms",
            Some(json!({"type": "d", "memberIds": []})),
            StatusCode::BAD_REQUEST,
            "direct chat",
        ),
        (
            Method::POST,
            "/api/rooms",
            Some(json!({"type": "p", "name": "g", "memberIds": ["u-ghost"]})),
            StatusCode::BAD_REQUEST,
            "u-ghost",
        ),
        (
            Method::POST,
            "/api/rooms",
            Some(json!({"type": "c", "name": "x".repeat(81)})),
            StatusCode::BAD_REQUEST,
            "name",
        ),
        (
            Method::POST,
            "/api/rooms/r-general/messages",
            Some(json!({"text": "   "})),
            StatusCode::BAD_REQUEST,
            "text",
        ),
        (
            Method::POST,
            "/api/rooms/r-general/messages",
            Some(json!({"txt": "hi"})),
            StatusCode::BAD_REQUEST,
            "text",
        ),
        (
            Method::POST,
            "/api/rooms/r-eng/messages",
            Some(json!({"text": "hi"})),
            StatusCode::FORBIDDEN,
            "not a member",
        ),
        (
            Method::POST,
            "/api/rooms/r-nowhere/messages",
            Some(json!({"text": "hi"})),
            StatusCode::NOT_FOUND,
            "r-nowhere",
        ),
        (
            Method::GET,
            "/api/rooms/r-general/messages?limit=0",
            None,
            StatusCode::BAD_REQUEST,
            "limit",
        ),
        (
            Method::GET,
            "/api/rooms/r-eng/messages",
            None,
            StatusCode::FORBIDDEN,
            "not a member",
        ),
        (
            Method::POST,
            "/api/rooms/r-alpha/join",
            None,
            StatusCode::FORBIDDEN,
            "public channel",
        ),
    ];
    for (method, path, body, expected, needle) in cases {
        let (status, resp) = app.call(method.clone(), path, Some(alice), body).await;
        assert_eq!(status, expected, "{method} {path}: {resp}");
        let msg = resp["error"].as_str().unwrap_or_default();
        assert!(
            msg.contains(needle),
            "{method} {path}: {msg:?} should mention {needle:?}"
        );
    }
    let resp = app
        .http
        .post(app.url("/api/rooms"))
        .bearer_auth(alice)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert!(
        resp.json().unwrap()["error"]
            .as_str()
            .unwrap()
            .contains("invalid request body")
    );
    Ok(())
}

async fn only_the_sender_edits(app: &TestApp, alice: &str) -> Result<()> {
    let (status, resp) = app
        .call(
            Method::PATCH,
            "/api/messages/r-general-m2",
            Some(alice),
            Some(json!({"text": "mine now"})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{resp}");
    let (status, edited) = app
        .call(
            Method::PATCH,
            "/api/messages/r-general-m1",
            Some(alice),
            Some(json!({"text": "Welcome, edited"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{edited}");
    assert_eq!(edited["text"], "Welcome, edited");
    assert!(edited["editedAt"].is_i64());
    Ok(())
}

/// alice creates "Ops" with bob; a `createdBy` in the body is ignored. Returns the room id.
async fn creating_a_group(app: &TestApp, alice: &str) -> Result<String> {
    let (status, room) = app
        .post(
            "/api/rooms",
            Some(alice),
            json!({"type": "p", "name": "Ops", "memberIds": ["u-bob"], "createdBy": "u-bob"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{room}");
    assert_eq!(room["createdBy"], "u-alice");
    assert_eq!(room["memberIds"], json!(["u-alice", "u-bob"]));
    assert_eq!(room["messageCount"], 0);
    Ok(room["_id"].as_str().unwrap().to_string())
}

/// bob invites charlie, who then posts. Returns the id of charlie's message.
async fn inviting_and_posting(
    app: &TestApp,
    rid: &str,
    bob: &str,
    charlie: &str,
) -> Result<String> {
    let (status, room) = app
        .post(
            &format!("/api/rooms/{rid}/invite"),
            Some(bob),
            json!({"userIds": ["u-charlie"]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{room}");
    assert_eq!(room["usernames"], json!(["alice", "bob", "charlie"]));
    let (status, sent) = app
        .post(
            &format!("/api/rooms/{rid}/messages"),
            Some(charlie),
            json!({"text": "hello ops"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    Ok(sent["_id"].as_str().unwrap().to_string())
}

async fn listings_show_the_post(
    app: &TestApp,
    lc: &Lifecycle,
    alice: &str,
    charlie: &str,
) -> Result<()> {
    let (rid, sent) = (lc.room_id()?, lc.sent_id()?);
    let (_, msgs) = app
        .get(&format!("/api/rooms/{rid}/messages?limit=10"), Some(alice))
        .await;
    assert_eq!(msgs.as_array().unwrap().len(), 1);
    assert_eq!(msgs[0]["_id"], sent);
    let (_, mine) = app.get("/api/rooms", Some(charlie)).await;
    assert!(mine.as_array().unwrap().iter().any(|r| r["_id"] == rid));
    assert_eq!(mine[0]["_id"], rid, "newest activity first");
    assert_eq!(mine[0]["lastMessage"]["text"], "hello ops");
    assert_eq!(mine[0]["messageCount"], 1);
    Ok(())
}

async fn leaving_a_group(app: &TestApp, rid: &str, charlie: &str) -> Result<()> {
    let (status, room) = app
        .post(&format!("/api/rooms/{rid}/leave"), Some(charlie), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(room["memberIds"], json!(["u-alice", "u-bob"]));
    assert!(
        app.db
            .subscriptions
            .find_one(doc! {"_id": format!("{rid}:u-charlie")})
            .await
            .unwrap()
            .is_none()
    );
    let ms: Vec<zrocket::db::Message> = app
        .db
        .messages
        .find(doc! {"roomId": rid, "t": {"$ne": "USER"}})
        .sort(doc! {"createdAt": 1})
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    let types: Vec<String> = ms.into_iter().map(|m| m.t).collect();
    assert_eq!(types, ["ROOM_CREATED", "USER_ADDED", "USER_LEFT"]);
    Ok(())
}

async fn anyone_joins_a_public_channel(app: &TestApp, charlie: &str) -> Result<()> {
    let (status, room) = app
        .post("/api/rooms/r-random/join", Some(charlie), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        room["memberIds"]
            .as_array()
            .unwrap()
            .contains(&json!("u-charlie"))
    );
    Ok(())
}

/// Soft delete: charlie's message disappears from the group's listing.
async fn deleting_hides_the_message(
    app: &TestApp,
    lc: &Lifecycle,
    alice: &str,
    charlie: &str,
) -> Result<()> {
    let (rid, sent) = (lc.room_id()?, lc.sent_id()?);
    let (status, _) = app
        .call(
            Method::DELETE,
            &format!("/api/messages/{sent}"),
            Some(charlie),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, msgs) = app
        .get(&format!("/api/rooms/{rid}/messages"), Some(alice))
        .await;
    assert_eq!(msgs, json!([]));
    Ok(())
}

async fn user_lookups(app: &TestApp, bob: &str) -> Result<()> {
    let (_, me) = app.get("/api/users/me", Some(bob)).await;
    assert_eq!(me["username"], "bob");
    let (_, found) = app.get("/api/users?q=CHAR&limit=5", Some(bob)).await;
    assert_eq!(found.as_array().unwrap().len(), 1);
    assert_eq!(found[0]["_id"], "u-charlie");
    let (_, found) = app.get("/api/users?q=.*", Some(bob)).await;
    assert_eq!(found, json!([]), "q is a literal, not a regex");
    Ok(())
}

/// (users, rooms, messages, subscriptions)
async fn counts(app: &TestApp) -> (u64, u64, u64, u64) {
    (
        app.db.users.count_documents(doc! {}).await.unwrap(),
        app.db.rooms.count_documents(doc! {}).await.unwrap(),
        app.db.messages.count_documents(doc! {}).await.unwrap(),
        app.db.subscriptions.count_documents(doc! {}).await.unwrap(),
    )
}

/// Needs auth (`tests/routes.rs` checks that); the edit made by
/// "only the sender edits a message" must survive.
async fn the_seed_changes_nothing_that_exists(app: &TestApp, bob: &str) -> Result<()> {
    let before = counts(app).await;
    let (status, report) = app.post("/api/seed", Some(bob), json!({})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        report,
        json!({"usersInserted": 0, "roomsInserted": 0, "subscriptionsInserted": 0, "messagesInserted": 0})
    );
    assert_eq!(counts(app).await, before);
    let m = app
        .db
        .messages
        .find_one(doc! {"_id": "r-general-m1"})
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        m.text.as_deref(),
        Some("Welcome, edited"),
        "the seed must not overwrite edits"
    );
    Ok(())
}

async fn the_seed_restores_a_wiped_room(app: &TestApp, bob: &str) -> Result<()> {
    app.db
        .rooms
        .delete_one(doc! {"_id": "r-random"})
        .await
        .unwrap();
    let (_, report) = app.post("/api/seed", Some(bob), json!({})).await;
    assert_eq!(report["roomsInserted"], 1);
    Ok(())
}

/// Every stored message has a `t` that the mappings route to exactly one table.
async fn every_stored_message_type_is_mapped(app: &TestApp) -> Result<()> {
    let system: Vec<&str> = zrocket::db::SYSTEM_MESSAGE_TYPES.to_vec();
    let ts: Vec<String> = app
        .db
        .messages
        .distinct("t", doc! {})
        .await
        .unwrap()
        .into_iter()
        .map(|b| b.as_str().unwrap().to_string())
        .collect();
    for t in ts {
        assert!(
            t == "USER" || system.contains(&t.as_str()),
            "unmapped t {t}"
        );
    }
    Ok(())
}

async fn fallbacks(app: &TestApp, alice: &str) -> Result<()> {
    let resp = app
        .http
        .get(app.url("/rooms/c/r-general"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(resp.text().contains("not built"));
    let (status, body) = app.get("/api/nope", Some(alice)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body["error"].is_string());
    Ok(())
}
