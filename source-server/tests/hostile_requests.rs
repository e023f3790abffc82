//! Property-based tests of the source's HTTP surfaces with requests nobody should send: the
//! WebSocket handshake at `/changes/v0/stream` (random, malformed, duplicated, oversized and
//! unicode query parameters, good and bad tokens, with and without the upgrade) and `/metadata/*`
//! (good and bad tokens, as a header and in the query).
//!
//! Every answer must be a 4xx with a message, or, for a handshake that is allowed through, a
//! clean `reset-required` on the socket; never a 5xx, never a dead server, never the token in a
//! body, and nothing written to MongoDB (every collection is counted before and after).
//!
//! One real MongoDB replica set and one source-server binary serve every case (one test
//! function, so nextest starts them once); a case is a loopback request, so hundreds run in
//! seconds. The expected status of a well-formed (fully percent-encoded) request is worked out
//! here from the documented rules, independently of the server's code; requests with raw bytes
//! in the query are only held to the properties above.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::Context;
use common::{SourceServer, TOKEN};
use futures::StreamExt;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::Value;
use source_server::zero::lexi_version::to_lexi;
use tokio_tungstenite::tungstenite::{self, Message, client::IntoClientRequest};
use zerostack_harness::{Mongo, http, service_temp_dir};

const HANDSHAKE_CASES: u32 = 1000;
const METADATA_CASES: u32 = 500;
const DB: &str = "hostile";

/// One query parameter. `raw` values go into the URL unencoded (from a set of characters a URL
/// may hold, `%` and `+` included), so the server's decoding gets exercised too.
#[derive(Debug, Clone)]
struct Param {
    key: String,
    value: String,
    raw: bool,
}

/// The `Authorization` header: a scheme and a credential, joined by a space.
#[derive(Debug, Clone)]
struct Auth {
    scheme: String,
    credential: String,
}

impl Auth {
    fn presents_the_token(&self) -> bool {
        self.scheme.eq_ignore_ascii_case("bearer") && self.credential == TOKEN
    }
}

#[derive(Debug, Clone)]
struct Request {
    path: String,
    params: Vec<Param>,
    auth: Option<Auth>,
    /// Ask for the WebSocket upgrade (otherwise a plain GET).
    upgrade: bool,
}

impl Request {
    fn well_formed(&self) -> bool {
        self.params.iter().all(|p| !p.raw)
    }

    fn url(&self, base: &str) -> String {
        let query: Vec<String> = self
            .params
            .iter()
            .map(|p| {
                let value = if p.raw {
                    p.value.clone()
                } else {
                    percent(&p.value)
                };
                format!("{}={value}", percent(&p.key))
            })
            .collect();
        if query.is_empty() {
            format!("{base}{}", self.path)
        } else {
            format!("{base}{}?{}", self.path, query.join("&"))
        }
    }

    fn values_of(&self, key: &str) -> Vec<&str> {
        self.params
            .iter()
            .filter(|p| p.key == key)
            .map(|p| p.value.as_str())
            .collect()
    }

    /// The documented rule: the token as a bearer header, or as the one `token` parameter.
    fn authorized(&self) -> bool {
        let query = self.values_of("token");
        self.auth.as_ref().is_some_and(Auth::presents_the_token)
            || (query.len() == 1 && query[0] == TOKEN)
    }

    /// What a refusal must not repeat: every credential presented that is long enough not to
    /// occur in a message by chance.
    fn presented_secrets(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .values_of("token")
            .into_iter()
            .map(str::to_string)
            .collect();
        out.extend(self.auth.iter().map(|a| a.credential.clone()));
        out.retain(|s| s.chars().count() >= 8);
        out
    }
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
fn percent(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Values of every kind a parameter might wrongly hold.
fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z0-9_]{0,12}",
        "[A-Za-z0-9._~-]{1,40}",
        "\\PC{0,24}",
        any::<u64>().prop_map(|n| n.to_string()),
        any::<i64>().prop_map(|n| n.to_string()),
        any::<u64>().prop_map(to_lexi),
        prop::sample::select(vec![
            "",
            "99999999999999999999999",
            "4294967296",
            "+7",
            "-1",
            "1.5",
            "1e3",
            "true",
            "null",
            "[]",
            "{\"$gt\":1}",
            "0x10",
            " 1",
            "\u{0}",
            "é",
            "日本語",
            "🦀",
        ])
        .prop_map(str::to_string),
        // Oversized (the whole query stays under hyper's URI limit; that limit has its own case).
        (1usize..=4).prop_map(|k| "9".repeat(k * 1500)),
        "[a-z]{1000,5000}",
    ]
}

fn token_value() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => Just(TOKEN.to_string()),
        2 => "[A-Za-z0-9]{8,40}",
        1 => Just(format!("{TOKEN}x")),
        1 => Just(TOKEN[..TOKEN.len() - 1].to_string()),
        1 => Just(TOKEN.to_uppercase()),
        1 => value(),
    ]
}

fn param() -> impl Strategy<Value = Param> {
    let known = prop::sample::select(vec!["appID", "shardNum", "lastWatermark", "replicaVersion"]);
    prop_oneof![
        3 => token_value().prop_map(|value| Param { key: "token".into(), value, raw: false }),
        6 => (known, value()).prop_map(|(k, value)| Param { key: k.into(), value, raw: false }),
        1 => ("[a-zA-Z]{1,10}|\\PC{0,8}", value()).prop_map(|(key, value)| Param { key, value, raw: false }),
        1 => (prop::sample::select(vec!["token", "appID", "shardNum", "lastWatermark", "x"]),
              "[A-Za-z0-9%+=;:@/?!$'()*,._~-]{0,30}")
            .prop_map(|(k, value)| Param { key: k.into(), value, raw: true }),
    ]
}

fn auth() -> impl Strategy<Value = Option<Auth>> {
    let scheme = prop_oneof![
        Just("Bearer".to_string()),
        Just("bearer".to_string()),
        Just("BEARER".to_string()),
        Just("Basic".to_string()),
        "[A-Za-z]{0,8}",
    ];
    let credential = prop_oneof![Just(TOKEN.to_string()), "[A-Za-z0-9]{8,40}", "[!-~]{0,60}",];
    prop::option::weighted(
        0.4,
        (scheme, credential).prop_map(|(scheme, credential)| Auth { scheme, credential }),
    )
}

fn handshake() -> impl Strategy<Value = Request> {
    (
        prop::collection::vec(param(), 0..7),
        auth(),
        prop::bool::weighted(0.85),
        // Half the cases also carry the right token, so that most get past the token check
        // and exercise the parsing of everything else.
        0..4u8,
    )
        .prop_map(|(mut params, mut auth, upgrade, add_token)| {
            match add_token {
                0 => params.push(Param {
                    key: "token".into(),
                    value: TOKEN.into(),
                    raw: false,
                }),
                1 => {
                    auth = Some(Auth {
                        scheme: "Bearer".into(),
                        credential: TOKEN.into(),
                    })
                }
                _ => {}
            }
            // A handshake without lastWatermark that passes is an initial sync, which rightly
            // writes the replica registry. Every case resumes instead, so that "nothing written"
            // holds for all of them (an empty or garbage lastWatermark is still a resume).
            if !params.iter().any(|p| p.key == "lastWatermark") {
                params.push(Param {
                    key: "lastWatermark".into(),
                    value: "garbage-wm".into(),
                    raw: false,
                });
            }
            Request {
                path: "/changes/v0/stream".into(),
                params,
                auth,
                upgrade,
            }
        })
}

fn metadata_request() -> impl Strategy<Value = Request> {
    let path = prop_oneof![
        3 => prop::sample::select(vec!["/metadata/status", "/metadata/tables", "/metadata/schemas"])
            .prop_map(str::to_string),
        1 => "/metadata/[a-z]{0,10}",
    ];
    let params = prop::collection::vec(
        prop_oneof![
            2 => token_value().prop_map(|value| Param { key: "token".into(), value, raw: false }),
            1 => ("[a-zA-Z]{1,10}", value()).prop_map(|(key, value)| Param { key, value, raw: false }),
            1 => (Just("token".to_string()), "[A-Za-z0-9%+=;:@/?!$'()*,._~-]{0,30}")
                .prop_map(|(key, value)| Param { key, value, raw: true }),
        ],
        0..4,
    );
    (path, params, auth()).prop_map(|(path, params, auth)| Request {
        path,
        params,
        auth,
        upgrade: false,
    })
}

/// What came back: a status, the body, and, after an upgrade, the socket's messages.
#[derive(Debug)]
struct Answer {
    status: u16,
    body: String,
    www_authenticate: Option<String>,
    /// After a 101: the text messages received before the close, and the close code.
    socket: Option<(Vec<String>, Option<u16>)>,
}

async fn send(base: &str, req: &Request) -> anyhow::Result<Answer> {
    let url = req.url(base);
    if !req.upgrade {
        let mut r = http::Client::new()
            .with_timeout(Duration::from_secs(10))
            .get(&url);
        if let Some(a) = &req.auth {
            r = r.header("authorization", format!("{} {}", a.scheme, a.credential));
        }
        let resp = r.send().await?;
        return Ok(Answer {
            status: resp.status().as_u16(),
            body: resp.text(),
            www_authenticate: header(resp.headers().get("www-authenticate")),
            socket: None,
        });
    }
    let ws_url = url.replacen("http://", "ws://", 1);
    let mut request = ws_url
        .as_str()
        .into_client_request()
        .with_context(|| format!("the test built a URL no client accepts: {ws_url}"))?;
    if let Some(a) = &req.auth {
        request.headers_mut().insert(
            "authorization",
            format!("{} {}", a.scheme, a.credential).parse()?,
        );
    }
    let connected = tokio::time::timeout(
        Duration::from_secs(10),
        tokio_tungstenite::connect_async(request),
    )
    .await
    .context("the handshake got no answer")?;
    match connected {
        Ok((mut ws, resp)) => {
            let mut texts = Vec::new();
            let mut code = None;
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                let left = deadline.saturating_duration_since(Instant::now());
                match tokio::time::timeout(left, ws.next()).await {
                    Err(_) => anyhow::bail!("the socket neither answered nor closed: {texts:?}"),
                    Ok(None) => break,
                    Ok(Some(Ok(Message::Text(t)))) => texts.push(t.to_string()),
                    Ok(Some(Ok(Message::Close(frame)))) => {
                        code = frame.map(|f| u16::from(f.code));
                        break;
                    }
                    Ok(Some(Ok(_))) => {}
                    Ok(Some(Err(e))) => anyhow::bail!("websocket error after the upgrade: {e}"),
                }
            }
            Ok(Answer {
                status: resp.status().as_u16(),
                body: String::new(),
                www_authenticate: None,
                socket: Some((texts, code)),
            })
        }
        Err(tungstenite::Error::Http(resp)) => Ok(Answer {
            status: resp.status().as_u16(),
            body: String::from_utf8_lossy(resp.body().as_deref().unwrap_or_default()).into_owned(),
            www_authenticate: header(resp.headers().get("www-authenticate")),
            socket: None,
        }),
        Err(e) => Err(anyhow::anyhow!("the handshake failed below HTTP: {e}")),
    }
}

fn header(v: Option<&::http::HeaderValue>) -> Option<String> {
    v.and_then(|v| v.to_str().ok()).map(str::to_string)
}

/// The properties every answer must have, whatever was asked.
fn common_properties(req: &Request, a: &Answer) -> Result<(), TestCaseError> {
    prop_assert!(
        a.status == 101 || (400..500).contains(&a.status) || a.status == 200,
        "status {} (never a 5xx)",
        a.status
    );
    prop_assert!(
        !a.body.contains(TOKEN),
        "the body shows the token: {}",
        a.body
    );
    if (400..500).contains(&a.status) {
        prop_assert!(
            !a.body.trim().is_empty(),
            "a {} must say why; the body is empty",
            a.status
        );
        if a.status == 401 {
            for s in req.presented_secrets() {
                prop_assert!(!a.body.contains(&s), "the refusal echoes {s:?}: {}", a.body);
            }
        }
    }
    Ok(())
}

fn check_handshake(req: &Request, a: &Answer) -> Result<(), TestCaseError> {
    common_properties(req, a)?;
    prop_assert_ne!(a.status, 200, "a handshake never answers 200");
    let presents_token_somewhere = req.auth.as_ref().is_some_and(Auth::presents_the_token)
        || req
            .params
            .iter()
            .any(|p| p.key == "token" && p.value == TOKEN);
    if a.status == 101 {
        prop_assert!(presents_token_somewhere, "upgraded without the token");
        let (texts, code) = a.socket.as_ref().expect("an upgrade has a socket");
        // A resume nobody registered: a clean reset-required, then a normal close.
        prop_assert_eq!(texts.len(), 1, "one message, then the close: {:?}", texts);
        let msg: Value = serde_json::from_str(&texts[0])
            .map_err(|e| TestCaseError::fail(format!("not JSON: {e}: {}", texts[0])))?;
        prop_assert_eq!(&msg[0], "control", "{}", msg);
        prop_assert_eq!(&msg[1]["tag"], "reset-required", "{}", msg);
        prop_assert!(
            msg[1]["message"].as_str().is_some_and(|m| !m.is_empty()),
            "the reset says why: {}",
            msg
        );
        prop_assert!(!texts[0].contains(TOKEN), "the reset shows the token");
        prop_assert_eq!(*code, Some(1000), "closed normally");
    }
    if !presents_token_somewhere {
        prop_assert_eq!(a.status, 401, "no token, no entry: {}", a.body);
    }
    if !req.well_formed() {
        return Ok(());
    }
    // The documented rules, for a fully encoded request.
    if !req.authorized() {
        prop_assert_eq!(a.status, 401, "{}", a.body);
        prop_assert!(a.body.contains("token"), "says what is missing: {}", a.body);
        return Ok(());
    }
    let known = [
        "token",
        "appID",
        "shardNum",
        "lastWatermark",
        "replicaVersion",
    ];
    let duplicated = known.iter().any(|k| req.values_of(k).len() > 1);
    let app_ok = req.values_of("appID").iter().all(|a| {
        !a.is_empty()
            && a.len() <= 52
            && a.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    });
    let shard_ok = req
        .values_of("shardNum")
        .iter()
        .all(|s| s.parse::<u32>().is_ok());
    if duplicated || !app_ok || !shard_ok {
        prop_assert_eq!(a.status, 400, "{}", a.body);
        let named = known
            .iter()
            .any(|k| a.body.contains(k) && (!req.values_of(k).is_empty()));
        prop_assert!(named, "the message names the parameter: {}", a.body);
        return Ok(());
    }
    if req.upgrade {
        prop_assert_eq!(a.status, 101, "a good handshake upgrades: {}", a.body);
    } else {
        prop_assert!(
            (400..500).contains(&a.status),
            "no upgrade asked for: {}",
            a.status
        );
    }
    Ok(())
}

fn check_metadata(req: &Request, a: &Answer) -> Result<(), TestCaseError> {
    common_properties(req, a)?;
    let known =
        ["/metadata/status", "/metadata/tables", "/metadata/schemas"].contains(&req.path.as_str());
    if !known {
        prop_assert_eq!(a.status, 404, "{}", a.body);
        return Ok(());
    }
    if a.status == 200 {
        let presents = req.auth.as_ref().is_some_and(Auth::presents_the_token)
            || req
                .params
                .iter()
                .any(|p| p.key == "token" && p.value == TOKEN);
        prop_assert!(presents, "served without the token");
        let v: Value = serde_json::from_str(&a.body)
            .map_err(|e| TestCaseError::fail(format!("not JSON: {e}")))?;
        prop_assert!(v.is_object());
    } else {
        prop_assert_eq!(a.status, 401, "{}", a.body);
        let v: Value = serde_json::from_str(&a.body)
            .map_err(|e| TestCaseError::fail(format!("a 401 in JSON: {e}: {}", a.body)))?;
        prop_assert!(
            v["message"].as_str().is_some_and(|m| m.contains("token")),
            "{}",
            v
        );
        prop_assert_eq!(a.www_authenticate.as_deref(), Some("Bearer"));
    }
    if req.well_formed() {
        prop_assert_eq!(
            a.status == 200,
            req.authorized(),
            "served exactly when the token is presented: {}",
            a.status
        );
    }
    Ok(())
}

/// Sends `GET target` over a plain TCP connection; returns the response's status line.
async fn raw_get(port: u16, target: &str) -> anyhow::Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    tcp.write_all(
        format!("GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await?;
    let mut response = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut response))
        .await
        .context("no answer to the raw request")??;
    let text = String::from_utf8_lossy(&response);
    Ok(text.lines().next().unwrap_or_default().to_string())
}

/// Documents per collection of the source's database, and the list of databases.
async fn snapshot(client: &mongodb::Client) -> anyhow::Result<BTreeMap<String, u64>> {
    let mut out = BTreeMap::new();
    for name in client.list_database_names().await? {
        out.insert(format!("database {name}"), 0);
    }
    let db = client.database(DB);
    for coll in db.list_collection_names().await? {
        let n = db
            .collection::<bson::Document>(&coll)
            .count_documents(bson::doc! {})
            .await?;
        out.insert(coll, n);
    }
    Ok(out)
}

/// Runs `cases` cases of `strategy`, each sent and checked; returns the statuses seen.
fn run_cases(
    rt: &tokio::runtime::Runtime,
    base: &str,
    cases: u32,
    strategy: impl Strategy<Value = Request>,
    check: fn(&Request, &Answer) -> Result<(), TestCaseError>,
) -> anyhow::Result<BTreeMap<u16, u32>> {
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    let seen = std::cell::RefCell::new(BTreeMap::new());
    runner
        .run(&strategy, |req| {
            let answer = rt
                .block_on(send(base, &req))
                .map_err(|e| TestCaseError::fail(format!("{e:#}")))?;
            *seen.borrow_mut().entry(answer.status).or_insert(0) += 1;
            check(&req, &answer)
        })
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(seen.into_inner())
}

#[test]
fn hostile_requests_get_a_4xx_and_write_nothing() -> anyhow::Result<()> {
    let rt = tokio::runtime::Runtime::new()?;
    let dir = service_temp_dir("hostile-requests")?;
    let mongo = rt.block_on(Mongo::start())?;
    let mut source = rt.block_on(SourceServer::start(
        dir.path(),
        &mongo.uri(),
        DB,
        &[("LOG_LEVEL", "info")],
    ))?;
    let client = rt.block_on(mongo.client())?;
    // Something to count (and to serve); the registry collection exists, empty.
    rt.block_on(async {
        let db = client.database(DB);
        db.collection("rooms")
            .insert_one(bson::doc! {"_id": "c1", "t": "c", "name": "general"})
            .await?;
        db.create_collection("zerostack_replicas").await?;
        anyhow::Ok(())
    })?;
    let before = rt.block_on(snapshot(&client))?;
    let base = source.http();

    // Every route the server documents: which ones answer a request without credentials.
    rt.block_on(async {
        for path in source_server::http::openapi::PATHS {
            let guarded = path.starts_with("/metadata/") || *path == "/changes/v0/stream";
            let anonymous = http::get(format!("{base}{path}")).await?;
            let with_token = http::Client::new()
                .get(format!("{base}{path}"))
                .bearer_auth(TOKEN)
                .send()
                .await?;
            if guarded {
                assert_eq!(anonymous.status().as_u16(), 401, "{path} without the token");
                assert_ne!(with_token.status().as_u16(), 401, "{path} with the token");
            } else {
                assert!(
                    anonymous.status().is_success(),
                    "{path} stays open: {}",
                    anonymous.status()
                );
            }
        }
        anyhow::Ok(())
    })?;
    let started = Instant::now();

    let handshakes = run_cases(&rt, &base, HANDSHAKE_CASES, handshake(), check_handshake)?;
    let metadata = run_cases(
        &rt,
        &base,
        METADATA_CASES,
        metadata_request(),
        check_metadata,
    )?;
    let elapsed = started.elapsed();

    // A query past hyper's URI limit (no client library builds one, so it goes raw over TCP)
    // is refused by the HTTP layer itself: still a 4xx, and the server lives on.
    let status_line = rt.block_on(raw_get(
        source.port,
        &format!(
            "/changes/v0/stream?token={TOKEN}&appID={}",
            "a".repeat(100_000)
        ),
    ))?;
    let code: u16 = status_line
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .with_context(|| format!("no status in {status_line:?}"))?;
    assert!((400..500).contains(&code), "a 100 kB query: {status_line}");

    let after = rt.block_on(snapshot(&client))?;
    assert_eq!(before, after, "hostile requests changed MongoDB");
    assert!(
        source.process.is_running(),
        "the server died:\n{}",
        source.process.log_tail(30)
    );
    assert!(
        !source.process.log_contains("panicked"),
        "the server panicked:\n{}",
        source.process.log_tail(30)
    );
    eprintln!(
        "{HANDSHAKE_CASES} handshake cases (statuses {handshakes:?}) and {METADATA_CASES} /metadata cases (statuses {metadata:?}) in {elapsed:.1?}"
    );
    // The generators reach every class of answer, so the properties above were not vacuous.
    for (what, seen, want) in [
        ("handshakes", &handshakes, &[101u16, 400, 401][..]),
        ("/metadata", &metadata, &[200, 401, 404][..]),
    ] {
        for s in want {
            assert!(
                seen.contains_key(s),
                "{what}: no case answered {s}: {seen:?}"
            );
        }
    }
    let _ = rt.block_on(source.process.terminate());
    Ok(())
}
