//! OIDC sign-in against a provider the test plays itself: the JWKS of committed test-only keys
//! (`tests/oidc/`) served on 127.0.0.1, ID tokens signed here. Valid RS256 and ES256 tokens
//! sign in (creating the user once, with a unique username); a wrong audience or issuer, an
//! expired or not-yet-valid token, an unknown key, a foreign signature, a tampered payload and
//! the `none`/HMAC algorithms are refused; unknown `kid`s do not make the app refetch the JWKS
//! more than its rate limit allows.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::Result;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::TestApp;
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::{Value, json};
use zerostack_harness::cases::Cases;
use zerostack_harness::http::StatusCode;
use zrocket::config::OidcSettings;

const ISSUER: &str = "https://id.zrocket.test";
const AUDIENCE: &str = "zrocket-web";

fn key_file(name: &str) -> Vec<u8> {
    std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/oidc")
            .join(name),
    )
    .expect("test key")
}

/// Serves `tests/oidc/jwks.json` on a free 127.0.0.1 port, counting fetches.
async fn serve_jwks() -> (String, Arc<AtomicUsize>) {
    let jwks: Value = serde_json::from_slice(&key_file("jwks.json")).unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let app = axum::Router::new().route(
        "/jwks",
        axum::routing::get(move || {
            counter.fetch_add(1, Ordering::SeqCst);
            let jwks = jwks.clone();
            async move { axum::Json(jwks) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/jwks", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, hits)
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn claims(sub: &str, username: &str) -> Value {
    json!({
        "iss": ISSUER, "aud": AUDIENCE, "sub": sub, "iat": now(), "exp": now() + 600,
        "preferred_username": username, "name": "Olive Idp", "email": format!("{username}@idp.test"),
    })
}

fn sign(alg: Algorithm, kid: &str, pem: &str, claims: &Value) -> String {
    let key = match alg {
        Algorithm::ES256 => EncodingKey::from_ec_pem(&key_file(pem)).unwrap(),
        _ => EncodingKey::from_rsa_pem(&key_file(pem)).unwrap(),
    };
    let mut header = Header::new(alg);
    header.kid = Some(kid.to_string());
    encode(&header, claims, &key).unwrap()
}

fn rs(claims: &Value) -> String {
    sign(Algorithm::RS256, "test-rsa-1", "rsa.pem", claims)
}

async fn oidc(app: &TestApp, token: &str) -> (StatusCode, Value, String) {
    app.post_for_cookie("/api/auth/oidc", json!({"idToken": token}))
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oidc_sign_in_with_a_local_jwks() -> Result<()> {
    let (jwks_url, fetches) = serve_jwks().await;
    let app = TestApp::start_configured(|c| {
        c.oidc = Some(OidcSettings {
            issuer: ISSUER.into(),
            jwks_url,
            audience: AUDIENCE.into(),
        })
    })
    .await;
    let mut cases = Cases::new("oidc_sign_in_with_a_local_jwks");
    let mut first_id = String::new();
    cases
        .run("the config names the provider", async {
            let (_, config) = app.get("/api/config", None).await;
            assert_eq!(
                config["oidc"],
                json!({"issuer": ISSUER, "audience": AUDIENCE})
            );
            Ok(())
        })
        .await;
    cases
        .run(
            "a valid RS256 token signs in and creates the user once",
            async {
                let (status, body, cookie) = oidc(&app, &rs(&claims("sub-1", "olive"))).await;
                assert_eq!(status, StatusCode::OK, "{body}");
                assert_eq!(body["user"]["username"], "olive");
                assert_eq!(body["user"]["name"], "Olive Idp");
                assert!(cookie.starts_with("zrocket_session="), "{cookie}");
                first_id = body["user"]["_id"].as_str().unwrap().to_string();
                let (status, me) = app.get_with_cookie("/api/users/me", &cookie).await;
                assert_eq!(
                    (status, me["_id"].as_str()),
                    (StatusCode::OK, Some(first_id.as_str()))
                );
                let (_, again, _) = oidc(&app, &rs(&claims("sub-1", "renamed"))).await;
                assert_eq!(again["user"]["_id"].as_str(), Some(first_id.as_str()));
                let n = app
                    .db
                    .identities
                    .count_documents(bson::doc! {"issuer": ISSUER, "subject": "sub-1"})
                    .await?;
                assert_eq!(n, 1);
                Ok(())
            },
        )
        .await;
    cases
        .run(
            "another subject with the same name gets a unique username",
            async {
                let (status, body, _) = oidc(&app, &rs(&claims("sub-2", "Olive"))).await;
                assert_eq!(status, StatusCode::OK, "{body}");
                assert_eq!(body["user"]["username"], "Olive-2");
                assert_ne!(body["user"]["_id"].as_str(), Some(first_id.as_str()));
                Ok(())
            },
        )
        .await;
    cases
        .run("a valid ES256 token signs in", async {
            let t = sign(
                Algorithm::ES256,
                "test-ec-1",
                "ec.pem",
                &claims("sub-ec", "eve"),
            );
            let (status, body, _) = oidc(&app, &t).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            assert_eq!(body["user"]["username"], "eve");
            Ok(())
        })
        .await;
    cases
        .run("bad tokens are refused, each with its reason", async {
            let users_before = app.db.users.count_documents(bson::doc! {}).await?;
            let mut wrong_aud = claims("sub-x", "x1");
            wrong_aud["aud"] = json!("someone-else");
            let mut wrong_iss = claims("sub-x", "x2");
            wrong_iss["iss"] = json!("https://evil.test");
            let mut expired = claims("sub-x", "x3");
            expired["exp"] = json!(now() - 3600);
            expired["iat"] = json!(now() - 7200);
            let mut early = claims("sub-x", "x4");
            early["nbf"] = json!(now() + 3600);
            let mut no_sub = claims("sub-x", "x5");
            no_sub.as_object_mut().unwrap().remove("sub");
            let good = rs(&claims("sub-x", "x6"));
            let parts: Vec<&str> = good.split('.').collect();
            let forged_payload = URL_SAFE_NO_PAD.encode(claims("sub-1", "olive").to_string());
            let tampered = format!("{}.{}.{}", parts[0], forged_payload, parts[2]);
            let none_header = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","kid":"test-rsa-1"}"#);
            let alg_none = format!("{none_header}.{}.", parts[1]);
            let hs = encode(
                &{
                    let mut h = Header::new(Algorithm::HS256);
                    h.kid = Some("test-rsa-1".into());
                    h
                },
                &claims("sub-x", "x7"),
                &EncodingKey::from_secret(b"the public key as a secret").unwrap(),
            )
            .unwrap();
            for (what, token, expected) in [
                ("wrong audience", rs(&wrong_aud), "audience"),
                ("wrong issuer", rs(&wrong_iss), "issuer"),
                ("expired", rs(&expired), "expired"),
                ("not yet valid", rs(&early), "not valid yet"),
                ("no subject", rs(&no_sub), "sub"),
                (
                    "unknown kid",
                    sign(
                        Algorithm::RS256,
                        "rotated-away",
                        "rogue-rsa.pem",
                        &claims("s", "y"),
                    ),
                    "does not publish",
                ),
                (
                    "a foreign key under a known kid",
                    sign(
                        Algorithm::RS256,
                        "test-rsa-1",
                        "rogue-rsa.pem",
                        &claims("s", "y"),
                    ),
                    "signature",
                ),
                ("tampered payload", tampered, "signature"),
                ("alg none", alg_none, "malformed"),
                ("HS256", hs, "RS256 or ES256"),
                ("garbage", "not-a-jwt".into(), "malformed"),
            ] {
                let (status, body, cookie) = oidc(&app, &token).await;
                assert_eq!(status, StatusCode::UNAUTHORIZED, "{what}: {body}");
                let msg = body["error"].as_str().unwrap_or_default();
                assert!(
                    msg.contains(expected),
                    "{what}: {msg:?} should say {expected:?}"
                );
                assert!(cookie.is_empty(), "{what}");
            }
            assert_eq!(
                app.db.users.count_documents(bson::doc! {}).await?,
                users_before
            );
            Ok(())
        })
        .await;
    cases
        .run("unknown kids do not hammer the provider", async {
            let before = fetches.load(Ordering::SeqCst);
            for i in 0..10 {
                let t = sign(
                    Algorithm::RS256,
                    &format!("kid-{i}"),
                    "rogue-rsa.pem",
                    &claims("s", "y"),
                );
                assert_eq!(oidc(&app, &t).await.0, StatusCode::UNAUTHORIZED);
            }
            let after = fetches.load(Ordering::SeqCst);
            assert!(
                after - before <= 1,
                "{} fetches for 10 unknown kids",
                after - before
            );
            assert!(after >= 1, "the JWKS was fetched");
            Ok(())
        })
        .await;
    app.stop().await;
    cases.finish()
}
