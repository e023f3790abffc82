//! The REST API against a real MongoDB: auth everywhere, login/cookie/session, identity from
//! the token only, validation errors, room and message flows, the seed, config and health.

mod common;

use bson::doc;
use common::TestApp;
use serde_json::{Value, json};
use zerostack_harness::http::{Method, StatusCode};
use zrocket::auth::Claims;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_login_and_identity() {
    let app = TestApp::start().await;

    // Public endpoints.
    let (status, body) = app.get("/health", None).await;
    assert_eq!((status, body), (StatusCode::OK, json!({"status": "ok"})));
    let (_, body) = app.get("/api/config", None).await;
    assert_eq!(body, json!({"zeroCacheUrl": "http://127.0.0.1:4848"}));
    let (_, body) = app.get("/api/auth/users", None).await;
    let names: Vec<&str> = body
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["username"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["alice", "bob", "charlie", "diana"]);
    assert_eq!(
        body[0],
        json!({"_id": "u-alice", "username": "alice", "name": "Alice Johnson"})
    );
    let (status, body) = app.get("/openapi.json", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["openapi"], "3.1.0");

    // Everything else needs a token: none, garbage, wrong secret, expired.
    let expired = app.state.keys.sign(&Claims {
        sub: "u-alice".into(),
        name: "Alice".into(),
        preferred_username: "alice".into(),
        iat: 1_000,
        exp: 2_000,
    });
    let foreign =
        zrocket::auth::Keys::new("some-other-secret-entirely", 3600).issue("u-alice", "A", "alice");
    let protected: [(Method, &str, Value); 15] = [
        (Method::GET, "/api/auth/session", Value::Null),
        (Method::GET, "/api/users/me", Value::Null),
        (Method::GET, "/api/users", Value::Null),
        (Method::GET, "/api/rooms", Value::Null),
        (
            Method::POST,
            "/api/rooms",
            json!({"type": "c", "name": "x"}),
        ),
        (Method::POST, "/api/rooms/r-general/join", Value::Null),
        (Method::POST, "/api/rooms/r-general/leave", Value::Null),
        (
            Method::POST,
            "/api/rooms/r-general/invite",
            json!({"userIds": ["u-bob"]}),
        ),
        (Method::GET, "/api/rooms/r-general/messages", Value::Null),
        (
            Method::POST,
            "/api/rooms/r-general/messages",
            json!({"text": "hi"}),
        ),
        (
            Method::PATCH,
            "/api/messages/r-general-m1",
            json!({"text": "x"}),
        ),
        (Method::DELETE, "/api/messages/r-general-m1", Value::Null),
        (Method::POST, "/api/seed", Value::Null),
        (Method::POST, "/api/zero/mutate", json!({})),
        (Method::POST, "/api/zero/query", json!(["transform", []])),
    ];
    for (method, path, body) in &protected {
        for token in [
            None,
            Some("garbage"),
            Some(expired.as_str()),
            Some(foreign.as_str()),
        ] {
            let body = if body.is_null() {
                None
            } else {
                Some(body.clone())
            };
            let (status, resp) = app.call(method.clone(), path, token, body).await;
            assert_eq!(
                status,
                StatusCode::UNAUTHORIZED,
                "{method} {path} with {token:?}"
            );
            assert!(resp["error"].is_string(), "{method} {path}: {resp}");
        }
    }
    let (_, resp) = app.get("/api/users/me", Some(&expired)).await;
    assert!(resp["error"].as_str().unwrap().contains("expired"));
    // Nothing was written by the rejected calls.
    assert_eq!(
        app.db
            .messages
            .count_documents(doc! {"text": "hi"})
            .await
            .unwrap(),
        0
    );

    // Dev login: cookie + token.
    let resp = app
        .http
        .post(app.url("/api/auth/login"))
        .json(&json!({"username": "alice"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let cookie = resp.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(cookie.starts_with("zrocket_token="), "{cookie}");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax") && cookie.contains("Path=/")
    );
    let body: Value = resp.json().unwrap();
    assert_eq!(body["user"]["_id"], "u-alice");
    let token = body["token"].as_str().unwrap().to_string();
    assert!(cookie.contains(&token));
    let claims = app.state.keys.verify(&token).unwrap();
    assert_eq!(
        (claims.sub.as_str(), claims.preferred_username.as_str()),
        ("u-alice", "alice")
    );

    // The cookie alone authenticates (session, REST, and zero endpoints as zero-cache forwards it).
    let cookie_pair = cookie.split(';').next().unwrap().to_string();
    let resp = app
        .http
        .get(app.url("/api/auth/session"))
        .header("Cookie", &cookie_pair)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let session: Value = resp.json().unwrap();
    assert_eq!(session["user"]["username"], "alice");
    assert_eq!(session["token"], token.as_str());
    let resp = app
        .http
        .post(app.url("/api/zero/query"))
        .header("Cookie", &cookie_pair)
        .json(&json!(["transform", []]))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.json().unwrap()["userID"], "u-alice");

    // Logout clears the cookie.
    let resp = app
        .http
        .post(app.url("/api/auth/logout"))
        .send()
        .await
        .unwrap();
    let cleared = resp.headers()["set-cookie"].to_str().unwrap();
    assert!(
        cleared.starts_with("zrocket_token=;") && cleared.contains("Max-Age=0"),
        "{cleared}"
    );

    // Unknown user and bad bodies.
    let (status, body) = app
        .post("/api/auth/login", None, json!({"username": "mallory"}))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(body["error"].as_str().unwrap().contains("mallory"));
    let (status, body) = app
        .post("/api/auth/login", None, json!({"user": "alice"}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["error"].as_str().unwrap().contains("username"),
        "{body}"
    );

    // Impersonation through REST bodies is ignored.
    let (status, msg) = app
        .post(
            "/api/rooms/r-general/messages",
            Some(&token),
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

    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rooms_messages_validation_and_seed() {
    let app = TestApp::start().await;
    let alice = app.token("u-alice");
    let bob = app.token("u-bob");
    let charlie = app.token("u-charlie");

    // Validation errors name the problem.
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
        let (status, resp) = app.call(method.clone(), path, Some(&alice), body).await;
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
        .bearer_auth(&alice)
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

    // Only the sender edits/deletes.
    let (status, resp) = app
        .call(
            Method::PATCH,
            "/api/messages/r-general-m2",
            Some(&alice),
            Some(json!({"text": "mine now"})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{resp}");
    let (status, edited) = app
        .call(
            Method::PATCH,
            "/api/messages/r-general-m1",
            Some(&alice),
            Some(json!({"text": "Welcome, edited"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{edited}");
    assert_eq!(edited["text"], "Welcome, edited");
    assert!(edited["editedAt"].is_i64());

    // Room lifecycle: create a group with bob, invite charlie, charlie leaves; join a channel.
    let (status, room) = app
        .post(
            "/api/rooms",
            Some(&alice),
            json!({"type": "p", "name": "Ops", "memberIds": ["u-bob"], "createdBy": "u-bob"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{room}");
    let rid = room["_id"].as_str().unwrap().to_string();
    assert_eq!(room["createdBy"], "u-alice");
    assert_eq!(room["memberIds"], json!(["u-alice", "u-bob"]));
    assert_eq!(room["messageCount"], 0);
    let (status, _) = app
        .get(&format!("/api/rooms/{rid}/messages"), Some(&charlie))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, room) = app
        .post(
            &format!("/api/rooms/{rid}/invite"),
            Some(&bob),
            json!({"userIds": ["u-charlie"]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{room}");
    assert_eq!(room["usernames"], json!(["alice", "bob", "charlie"]));
    let (status, sent) = app
        .post(
            &format!("/api/rooms/{rid}/messages"),
            Some(&charlie),
            json!({"text": "hello ops"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (_, msgs) = app
        .get(&format!("/api/rooms/{rid}/messages?limit=10"), Some(&alice))
        .await;
    assert_eq!(msgs.as_array().unwrap().len(), 1);
    assert_eq!(msgs[0]["_id"], sent["_id"]);
    let (_, mine) = app.get("/api/rooms", Some(&charlie)).await;
    assert!(
        mine.as_array()
            .unwrap()
            .iter()
            .any(|r| r["_id"] == rid.as_str())
    );
    assert_eq!(mine[0]["_id"], rid.as_str(), "newest activity first");
    assert_eq!(mine[0]["lastMessage"]["text"], "hello ops");
    assert_eq!(mine[0]["messageCount"], 1);
    let (status, room) = app
        .post(
            &format!("/api/rooms/{rid}/leave"),
            Some(&charlie),
            json!({}),
        )
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
    let types: Vec<String> = {
        use futures::TryStreamExt;
        let ms: Vec<zrocket::db::Message> = app
            .db
            .messages
            .find(doc! {"roomId": &rid, "t": {"$ne": "USER"}})
            .sort(doc! {"createdAt": 1})
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        ms.into_iter().map(|m| m.t).collect()
    };
    assert_eq!(types, ["ROOM_CREATED", "USER_ADDED", "USER_LEFT"]);
    let (status, room) = app
        .post("/api/rooms/r-random/join", Some(&charlie), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        room["memberIds"]
            .as_array()
            .unwrap()
            .contains(&json!("u-charlie"))
    );

    // Delete (soft) hides the message from listings.
    let (status, _) = app
        .call(
            Method::DELETE,
            &format!("/api/messages/{}", sent["_id"].as_str().unwrap()),
            Some(&charlie),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, msgs) = app
        .get(&format!("/api/rooms/{rid}/messages"), Some(&alice))
        .await;
    assert_eq!(msgs, json!([]));

    // Users.
    let (_, me) = app.get("/api/users/me", Some(&bob)).await;
    assert_eq!(me["username"], "bob");
    let (_, found) = app.get("/api/users?q=CHAR&limit=5", Some(&bob)).await;
    assert_eq!(found.as_array().unwrap().len(), 1);
    assert_eq!(found[0]["_id"], "u-charlie");
    let (_, found) = app.get("/api/users?q=.*", Some(&bob)).await;
    assert_eq!(found, json!([]), "q is a literal, not a regex");

    // Seed: requires auth (checked above), idempotent, never destructive.
    let counts = async || {
        (
            app.db.users.count_documents(doc! {}).await.unwrap(),
            app.db.rooms.count_documents(doc! {}).await.unwrap(),
            app.db.messages.count_documents(doc! {}).await.unwrap(),
            app.db.subscriptions.count_documents(doc! {}).await.unwrap(),
        )
    };
    let before = counts().await;
    let (status, report) = app.post("/api/seed", Some(&bob), json!({})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        report,
        json!({"usersInserted": 0, "roomsInserted": 0, "subscriptionsInserted": 0, "messagesInserted": 0})
    );
    assert_eq!(counts().await, before);
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
    // After a wipe of one room, the seed restores it (and only it).
    app.db
        .rooms
        .delete_one(doc! {"_id": "r-random"})
        .await
        .unwrap();
    let (_, report) = app.post("/api/seed", Some(&bob), json!({})).await;
    assert_eq!(report["roomsInserted"], 1);

    // Every seeded message has a t that the mappings route to exactly one table.
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

    // The UI fallback page when the UI is not built, and API 404s stay JSON.
    let resp = app
        .http
        .get(app.url("/rooms/c/r-general"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(resp.text().contains("not built"));
    let (status, body) = app.get("/api/nope", Some(&alice)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body["error"].is_string());

    app.stop().await;
}
