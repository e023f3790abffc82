//! Sign-in against a real MongoDB: sign-up rules and case-insensitive uniqueness, sessions by
//! cookie and bearer token, sign-out and password change revoking sessions, deactivation on the
//! next request, one answer for every wrong credential, the rate limits per username and per
//! address, the Secure flag, and the dev login off by default and on with its flag.

mod common;

use anyhow::{Context, Result, ensure};
use bson::doc;
use common::TestApp;
use serde_json::{Value, json};
use zerostack_harness::cases::Cases;
use zerostack_harness::http::{Method, StatusCode};

const PASSWORD: &str = "correct horse battery";

/// `Set-Cookie` of a response, whole.
async fn set_cookie_of(
    app: &TestApp,
    path: &str,
    headers: &[(&str, &str)],
    body: Value,
) -> (StatusCode, Value, String) {
    let mut req = app.http.post(app.url(path)).json(&body);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.expect("request");
    let cookie = resp
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    (resp.status(), resp.json_or_null(), cookie)
}

async fn with_cookie(app: &TestApp, method: Method, path: &str, cookie: &str) -> StatusCode {
    let mut req = app
        .http
        .request(method, app.url(path))
        .header("Cookie", cookie);
    if path.starts_with("/api/zero/query") {
        req = req.json(&json!(["transform", []]));
    }
    req.send().await.expect("request").status()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounts_and_sessions() -> Result<()> {
    let app = TestApp::start().await;
    let mut cases = Cases::new("accounts_and_sessions");
    let mut first_cookie = String::new();
    cases
        .run(
            "sign-up creates the user and starts a cookie session",
            async {
                let (status, body, set_cookie) = set_cookie_of(
                    &app,
                    "/api/auth/signup",
                    &[],
                    json!({"username": " Zed.Doe ", "name": " Zed ", "password": PASSWORD}),
                )
                .await;
                assert_eq!(status, StatusCode::CREATED, "{body}");
                assert_eq!(body["user"]["username"], "Zed.Doe");
                assert_eq!(body["user"]["name"], "Zed");
                assert!(body["user"]["_id"].as_str().unwrap().starts_with("u-"));
                assert_eq!(body.as_object().unwrap().len(), 1, "only {{user}}: {body}");
                assert!(
                    set_cookie.starts_with("zrocket_session=")
                        && set_cookie.contains("; HttpOnly; SameSite=Lax; Path=/")
                        && !set_cookie.contains("Secure"),
                    "{set_cookie}"
                );
                let token = set_cookie["zrocket_session=".len()..]
                    .split(';')
                    .next()
                    .unwrap();
                ensure!(
                    !body.to_string().contains(token),
                    "the token is in the body"
                );
                // Stored hashed, with a case-insensitive key, and the hash apart from the user.
                let user = app
                    .db
                    .users
                    .find_one(doc! {"username": "Zed.Doe"})
                    .await?
                    .context("no user")?;
                assert_eq!(user.username_lower.as_deref(), Some("zed.doe"));
                let cred = app
                    .db
                    .credentials
                    .find_one(doc! {"_id": &user.id})
                    .await?
                    .context("no credential")?;
                assert!(cred.password_hash.starts_with("$argon2id$"));
                first_cookie = set_cookie.split(';').next().unwrap().to_string();
                Ok(())
            },
        )
        .await;
    cases
        .run(
            "usernames are unique ignoring case, seeded ones too",
            async {
                for taken in ["zed.doe", "ZED.DOE", "Alice"] {
                    let (status, body, cookie) = app.signup(taken, "Someone", PASSWORD).await;
                    assert_eq!(status, StatusCode::CONFLICT, "{taken}: {body}");
                    assert_eq!(body["field"], "username");
                    assert!(body["error"].is_string() && cookie.is_empty());
                }
                Ok(())
            },
        )
        .await;
    cases
        .run("invalid fields are named", async {
            for (u, n, p, field) in [
                ("ab", "N", PASSWORD, "username"),
                ("has space", "N", PASSWORD, "username"),
                (&"x".repeat(33) as &str, "N", PASSWORD, "username"),
                ("okname", " ", PASSWORD, "name"),
                ("okname", "N", "short", "password"),
                ("okname", "N", &"p".repeat(257), "password"),
            ] {
                let (status, body, _) = app.signup(u, n, p).await;
                assert_eq!(status, StatusCode::BAD_REQUEST, "{u}/{n}: {body}");
                assert_eq!(body["field"], field, "{body}");
            }
            let (status, body) = app
                .post("/api/auth/signup", None, json!({"username": "x"}))
                .await;
            assert_eq!(status, StatusCode::BAD_REQUEST);
            assert!(
                body["error"].as_str().unwrap().contains("missing field"),
                "{body}"
            );
            assert_eq!(
                app.db
                    .users
                    .count_documents(doc! {"username": "okname"})
                    .await?,
                0
            );
            Ok(())
        })
        .await;
    cases
        .run("the session answers {user} and never the token", async {
            let (status, body) = app
                .get_with_cookie("/api/auth/session", &first_cookie)
                .await;
            assert_eq!(status, StatusCode::OK);
            assert_eq!(body["user"]["username"], "Zed.Doe");
            assert!(body.get("token").is_none(), "{body}");
            let (status, _) = app.get("/api/auth/session", None).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED);
            Ok(())
        })
        .await;
    cases
        .run("a wrong user and a wrong password answer alike", async {
            let (s1, b1, c1) = app.login("nobody-here", PASSWORD).await;
            let (s2, b2, c2) = app.login("zed.doe", "wrong password!").await;
            let (s3, b3, _) = app.login("x", "").await;
            assert_eq!(
                (s1, s2, s3),
                (
                    StatusCode::UNAUTHORIZED,
                    StatusCode::UNAUTHORIZED,
                    StatusCode::UNAUTHORIZED
                )
            );
            assert_eq!(b1, json!({"error": "wrong username or password"}));
            assert_eq!((&b1, &b1), (&b2, &b3));
            assert!(c1.is_empty() && c2.is_empty());
            Ok(())
        })
        .await;
    cases
        .run(
            "sign-out revokes the session for cookie and bearer alike",
            async {
                let (status, _, cookie) = app.login("ZED.doe", PASSWORD).await;
                assert_eq!(status, StatusCode::OK);
                let token = cookie.trim_start_matches("zrocket_session=").to_string();
                assert_eq!(
                    with_cookie(&app, Method::GET, "/api/users/me", &cookie).await,
                    StatusCode::OK
                );
                let (status, resp_cookie) = {
                    let r = app
                        .http
                        .post(app.url("/api/auth/logout"))
                        .header("Cookie", &cookie)
                        .send()
                        .await
                        .unwrap();
                    (
                        r.status(),
                        r.headers()["set-cookie"].to_str().unwrap().to_string(),
                    )
                };
                assert_eq!(status, StatusCode::NO_CONTENT);
                assert!(
                    resp_cookie.starts_with("zrocket_session=;")
                        && resp_cookie.contains("Max-Age=0")
                );
                for path in ["/api/users/me", "/api/auth/session"] {
                    assert_eq!(
                        with_cookie(&app, Method::GET, path, &cookie).await,
                        StatusCode::UNAUTHORIZED
                    );
                    let (status, _) = app.get(path, Some(&token)).await;
                    assert_eq!(status, StatusCode::UNAUTHORIZED, "bearer {path}");
                }
                assert_eq!(
                    with_cookie(&app, Method::POST, "/api/zero/query", &cookie).await,
                    StatusCode::UNAUTHORIZED
                );
                // The first session is another one: still signed in.
                assert_eq!(
                    with_cookie(&app, Method::GET, "/api/users/me", &first_cookie).await,
                    StatusCode::OK
                );
                Ok(())
            },
        )
        .await;
    cases
        .run("API clients get a bearer token, never a cookie", async {
            let (status, body, cookie) = app
                .post_for_cookie(
                    "/api/auth/token",
                    json!({"username": "zed.doe", "password": PASSWORD}),
                )
                .await;
            assert_eq!(status, StatusCode::OK, "{body}");
            assert!(cookie.is_empty(), "{cookie}");
            let token = body["token"].as_str().context("no token")?;
            assert_eq!(token.len(), 43);
            let (status, me) = app.get("/api/users/me", Some(token)).await;
            assert_eq!(
                (status, me["username"].as_str()),
                (StatusCode::OK, Some("Zed.Doe"))
            );
            let (status, q) = app.query(token, json!([])).await;
            assert_eq!(
                (status, &q["userID"]),
                (StatusCode::OK, &body["user"]["_id"])
            );
            let (status, _) = app
                .post(
                    "/api/auth/token",
                    None,
                    json!({"username": "zed.doe", "password": "nope nope"}),
                )
                .await;
            assert_eq!(status, StatusCode::UNAUTHORIZED);
            Ok(())
        })
        .await;
    cases
        .run(
            "a password change keeps this session and ends the others",
            async {
                let (_, _, this) = app.login("zed.doe", PASSWORD).await;
                let (_, other, _) = app
                    .post_for_cookie(
                        "/api/auth/token",
                        json!({"username": "zed.doe", "password": PASSWORD}),
                    )
                    .await;
                let other = other["token"].as_str().unwrap().to_string();
                let change = |current: &str, new: &str| {
                    app.http
                        .post(app.url("/api/auth/password"))
                        .header("Cookie", &this)
                        .json(&json!({"currentPassword": current, "newPassword": new}))
                        .send()
                };
                let r = change("not the password", "a brand new password")
                    .await
                    .unwrap();
                assert_eq!(r.status(), StatusCode::BAD_REQUEST);
                assert_eq!(r.json_or_null()["field"], "currentPassword");
                let r = change(PASSWORD, "short").await.unwrap();
                assert_eq!(
                    (r.status(), r.json_or_null()["field"].clone()),
                    (StatusCode::BAD_REQUEST, json!("newPassword"))
                );
                let r = change(PASSWORD, "a brand new password").await.unwrap();
                assert_eq!(r.status(), StatusCode::NO_CONTENT);
                assert_eq!(
                    with_cookie(&app, Method::GET, "/api/users/me", &this).await,
                    StatusCode::OK
                );
                assert_eq!(
                    app.get("/api/users/me", Some(&other)).await.0,
                    StatusCode::UNAUTHORIZED
                );
                assert_eq!(
                    with_cookie(&app, Method::GET, "/api/users/me", &first_cookie).await,
                    StatusCode::UNAUTHORIZED
                );
                assert_eq!(
                    app.login("zed.doe", PASSWORD).await.0,
                    StatusCode::UNAUTHORIZED
                );
                assert_eq!(
                    app.login("zed.doe", "a brand new password").await.0,
                    StatusCode::OK
                );
                Ok(())
            },
        )
        .await;
    cases
        .run(
            "deactivating a user takes effect on the next request",
            async {
                let (_, _, cookie) = app.login("zed.doe", "a brand new password").await;
                assert_eq!(
                    with_cookie(&app, Method::GET, "/api/rooms", &cookie).await,
                    StatusCode::OK
                );
                app.db
                    .users
                    .update_one(
                        doc! {"username": "Zed.Doe"},
                        doc! {"$set": {"active": false}},
                    )
                    .await?;
                let (status, body) = app.get_with_cookie("/api/rooms", &cookie).await;
                assert_eq!(status, StatusCode::UNAUTHORIZED);
                assert!(
                    body["error"].as_str().unwrap().contains("deactivated"),
                    "{body}"
                );
                assert_eq!(
                    with_cookie(&app, Method::POST, "/api/zero/query", &cookie).await,
                    StatusCode::UNAUTHORIZED
                );
                let (status, body, cookie) = app.login("zed.doe", "a brand new password").await;
                assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
                assert!(cookie.is_empty());
                Ok(())
            },
        )
        .await;
    cases
        .run("the dev login is off by default", async {
            let (status, body) = app
                .post("/api/auth/dev-login", None, json!({"username": "alice"}))
                .await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
            assert!(body["error"].as_str().unwrap().contains("DEV_LOGIN"));
            let (status, body) = app
                .post("/api/auth/login", None, json!({"username": "alice"}))
                .await;
            assert_eq!(
                status,
                StatusCode::BAD_REQUEST,
                "no password-less login: {body}"
            );
            Ok(())
        })
        .await;
    app.stop().await;
    cases.finish()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_and_the_secure_flag() -> Result<()> {
    // Behind a "proxy": X-Forwarded-For picks the client address for the per-address limit.
    let app = TestApp::start_configured(|c| c.trust_proxy = true).await;
    let mut cases = Cases::new("rate_limits_and_the_secure_flag");
    let login_from = |addr: String, username: &str, password: &str| {
        let body = json!({"username": username, "password": password});
        let req = app
            .http
            .post(app.url("/api/auth/login"))
            .header("X-Forwarded-For", addr)
            .json(&body);
        async move { req.send().await.expect("request") }
    };
    cases
        .run("Secure is set when a trusted proxy says https", async {
            let (status, _, plain) = set_cookie_of(
                &app,
                "/api/auth/signup",
                &[],
                json!({"username": "rita", "name": "Rita", "password": PASSWORD}),
            )
            .await;
            assert_eq!(status, StatusCode::CREATED);
            assert!(!plain.contains("Secure"), "{plain}");
            let (status, _, https) = set_cookie_of(
                &app,
                "/api/auth/login",
                &[("X-Forwarded-Proto", "https")],
                json!({"username": "rita", "password": PASSWORD}),
            )
            .await;
            assert_eq!(status, StatusCode::OK);
            assert!(
                https.ends_with("; Secure") || https.contains("; Secure;"),
                "{https}"
            );
            Ok(())
        })
        .await;
    cases
        .run(
            "5 failures for one username, from 5 addresses, lock that username",
            async {
                for i in 0..5 {
                    let r = login_from(format!("198.51.100.{i}"), "RITA", "wrong password").await;
                    assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "failure {i}");
                }
                // Even the right password waits now, from a fresh address.
                let r = login_from("198.51.100.99".into(), "rita", PASSWORD).await;
                assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
                let retry: u64 = r.headers()["retry-after"].to_str()?.parse()?;
                let body = r.json_or_null();
                assert_eq!(body["retryAfterSecs"], json!(retry));
                assert!((1..=300).contains(&retry), "{retry}");
                assert!(body["error"].is_string());
                // The token endpoint shares the limit.
                let r = app
                    .post(
                        "/api/auth/token",
                        None,
                        json!({"username": "rita", "password": PASSWORD}),
                    )
                    .await;
                assert_eq!(r.0, StatusCode::TOO_MANY_REQUESTS);
                // Another user from the same address is not affected.
                let r = login_from("198.51.100.99".into(), "someone-else", "wrong password").await;
                assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
                Ok(())
            },
        )
        .await;
    cases
        .run("20 failures from one address lock that address", async {
            for i in 0..20 {
                let r =
                    login_from("203.0.113.5".into(), &format!("ghost{i}"), "wrong password").await;
                assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "failure {i}");
            }
            let r = login_from("203.0.113.5".into(), "ghost-new", "wrong password").await;
            assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
            assert!(r.headers().get("retry-after").is_some());
            let r = login_from("203.0.113.6".into(), "ghost-new", "wrong password").await;
            assert_eq!(
                r.status(),
                StatusCode::UNAUTHORIZED,
                "another address is not limited"
            );
            Ok(())
        })
        .await;
    app.stop().await;
    cases.finish()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dev_login_with_its_flag() -> Result<()> {
    let app = TestApp::start_configured(|c| {
        c.dev_login = true;
        c.cookie_secure = true;
    })
    .await;
    let mut cases = Cases::new("the_dev_login_with_its_flag");
    cases
        .run("the config says so and any seeded user signs in", async {
            let (_, config) = app.get("/api/config", None).await;
            assert_eq!(config["devLogin"], true);
            let (status, body, cookie) = set_cookie_of(
                &app,
                "/api/auth/dev-login",
                &[],
                json!({"username": "Alice"}),
            )
            .await;
            assert_eq!(status, StatusCode::OK, "{body}");
            assert_eq!(
                body,
                json!({"user": {"_id": "u-alice", "username": "alice", "name": "Alice Johnson"}})
            );
            assert!(cookie.contains("; Secure"), "COOKIE_SECURE: {cookie}");
            let pair = cookie.split(';').next().unwrap();
            let (status, users) = app.get_with_cookie("/api/auth/users", pair).await;
            assert_eq!(status, StatusCode::OK);
            assert_eq!(users.as_array().map(Vec::len), Some(4), "{users}");
            let (status, _) = app
                .post("/api/auth/dev-login", None, json!({"username": "nobody"}))
                .await;
            assert_eq!(status, StatusCode::NOT_FOUND);
            Ok(())
        })
        .await;
    app.stop().await;
    cases.finish()
}
