//! Browser end-to-end test of ZRocket's sign-in and chat, everything real: a MongoDB replica
//! set, the source-server loaded with the app's exported schema, PostgreSQL, zero-cache 1.9.0,
//! the zrocket server serving the built UI, and headless Chromium driven by
//! `tests/node/browser-chat.mjs`.
//!
//! It exists to prove the whole path works in a real browser, which no unit or protocol test
//! can: sign-up, sign-in and sign-out through the forms with the session only in an HttpOnly
//! cookie (zero-cache forwards it to the app, so the Zero client holds no token), the UI's Zero
//! schema matching the replica, the named queries and mutators matching the server's, and
//! lastMutationID travelling MongoDB → source → zero-cache → client.
//!
//! One stack, named cases ([`Cases`]): the app as the harness starts it (dev login off) runs
//! the `auth` scenario (two users sign up in two browser contexts and chat live, sign-out kills
//! the cookie, a wrong password and the rate limit are said in words); a second zrocket process
//! on the same databases, started with `DEV_LOGIN=true`, shows the dev login banner.
//!
//! Needs the workspace binaries (`cargo build --bins` first; this test does not build other
//! packages), Chromium at `/usr/bin/chromium`, and Node with `tests/node` installed
//! (`tests/install.sh` does both and is run automatically when something is missing).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use serde_json::{Map, Value, json};
use zerostack_harness::cases::Cases;
use zerostack_harness::process::run;
use zerostack_harness::stack::{DATABASE, Stack, StackOptions, built_bin, wait_http_ok};
use zerostack_harness::{ManagedProcess, ensure_installed, free_port, node_dir, repo_root};
use zerostack_spec::env::app as env;

/// How long the browser script may take in all.
const BROWSER_TIMEOUT: Duration = Duration::from_secs(240);

/// Runs the UI's unit tests (among them: `src/schema.ts` equals `schema.contract.json`, the file
/// the Rust export is compared with below) and builds it into `app/web/dist`, installing its
/// locked npm packages first if needed, so the test never serves a stale build.
fn test_and_build_ui(web: &Path) -> anyhow::Result<PathBuf> {
    if !web.join("node_modules/.bin/vite").exists() {
        run(
            "npm ci in app/web",
            Command::new("npm")
                .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
                .current_dir(web),
            None,
        )?;
    }
    run(
        "npm test in app/web",
        Command::new("npm").arg("test").current_dir(web),
        None,
    )?;
    run(
        "npm run build in app/web",
        Command::new("npm").args(["run", "build"]).current_dir(web),
        None,
    )?;
    let dist = web.join("dist");
    if !dist.join("index.html").is_file() {
        bail!(
            "npm run build did not produce {}",
            dist.join("index.html").display()
        );
    }
    Ok(dist)
}

/// The parts of a Zero schema JSON that zero-cache and the client depend on: per table its
/// columns' type/optional/serverName, primary key and serverName, plus the relationships.
/// `customType` (always null) and key order are left out.
fn normalize_schema(schema: &Value) -> Value {
    let mut tables = Map::new();
    if let Some(ts) = schema.get("tables").and_then(Value::as_object) {
        for (name, t) in ts {
            let mut cols = Map::new();
            if let Some(cs) = t.get("columns").and_then(Value::as_object) {
                for (c, spec) in cs {
                    let mut col = Map::new();
                    for key in ["type", "optional", "serverName"] {
                        if let Some(v) = spec.get(key) {
                            col.insert(key.into(), v.clone());
                        }
                    }
                    cols.insert(c.clone(), Value::Object(col));
                }
            }
            let mut table = Map::new();
            table.insert("name".into(), t.get("name").cloned().unwrap_or(Value::Null));
            table.insert("columns".into(), Value::Object(cols));
            table.insert(
                "primaryKey".into(),
                t.get("primaryKey").cloned().unwrap_or(Value::Null),
            );
            if let Some(sn) = t.get("serverName") {
                table.insert("serverName".into(), sn.clone());
            }
            tables.insert(name.clone(), Value::Object(table));
        }
    }
    let mut out = Map::new();
    out.insert("tables".into(), Value::Object(tables));
    out.insert(
        "relationships".into(),
        schema.get("relationships").cloned().unwrap_or(Value::Null),
    );
    Value::Object(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_up_chat_and_sign_out_in_real_browsers() -> anyhow::Result<()> {
    let repo = repo_root();
    ensure_installed("chromium", || Path::new("/usr/bin/chromium").exists())?;
    ensure_installed("node", || {
        node_dir()
            .join("node_modules/playwright-core/package.json")
            .exists()
    })?;
    let dist = test_and_build_ui(&repo.join("app/web"))?;
    let mut opts = StackOptions::temp()?;
    opts.web_dir = Some(dist.clone());
    // The real sign-in: no password-less way in (the dev login case starts its own app).
    opts.dev_login = false;
    let stack = Stack::start(opts).await?;

    let mut cases = Cases::new("e2e_browser");
    cases
        .run(
            "the app's schema export equals the UI's contract",
            schema_matches_contract(&stack),
        )
        .await;
    cases
        .run(
            "the harness's app has dev login off",
            dev_login_is_off(&stack.app_url),
        )
        .await;
    cases
        .run(
            "two users sign up, chat live, sign out; wrong password and rate limit are said in words",
            browser(&stack, &stack.app_url, "auth", &["alice", "bob", "stranger"]),
        )
        .await;
    cases
        .run(
            "with DEV_LOGIN=true the banner is on the sign-in and chat screens",
            dev_login_banner(&stack, &dist),
        )
        .await;
    let outcome = cases.finish();
    stack.stop().await?;
    outcome
}

/// The app's exported schema, checked against the UI's contract file, which the UI's own unit
/// test checks against src/schema.ts: so the browser's schema equals what the source serves.
async fn schema_matches_contract(stack: &Stack) -> anyhow::Result<()> {
    let exported = normalize_schema(&read_json(&stack.export_dir.join("schema.json"))?);
    let contract = normalize_schema(&read_json(
        &repo_root().join("app/web/schema.contract.json"),
    )?);
    ensure!(
        exported == contract,
        "the Rust export ({exported}) differs from app/web/schema.contract.json ({contract})"
    );
    Ok(())
}

/// Without `DEV_LOGIN` the password-less login must refuse, and the config must say it is off
/// (the UI shows no banner then, which the browser scenario checks).
async fn dev_login_is_off(app_url: &str) -> anyhow::Result<()> {
    let http = zerostack_harness::http::Client::new();
    let config = http
        .get(format!("{app_url}/api/config"))
        .send()
        .await?
        .json()?;
    ensure!(
        config.get("devLogin") == Some(&Value::Bool(false)),
        "/api/config should say devLogin: false, got {config}"
    );
    let resp = http
        .post(format!("{app_url}/api/auth/dev-login"))
        .json(&json!({"username": "alice"}))
        .send()
        .await?;
    ensure!(
        resp.status().is_client_error(),
        "POST /api/auth/dev-login with dev login off should be refused with a 4xx, got {} {}",
        resp.status(),
        resp.text()
    );
    ensure!(
        resp.headers().get("set-cookie").is_none(),
        "a refused dev login must not set a cookie"
    );
    Ok(())
}

/// A second zrocket on the stack's databases and zero-cache, with dev login on: the browser
/// signs in as a seeded user through the dev form and sees the banner on both screens.
async fn dev_login_banner(stack: &Stack, dist: &Path) -> anyhow::Result<()> {
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let mut cmd = Command::new(built_bin("zrocket")?);
    cmd.arg("serve")
        .env(env::PORT, port.to_string())
        .env(env::MONGODB_URI, stack.mongo.uri_with_db(DATABASE))
        .env(env::MONGODB_DATABASE, DATABASE)
        .env(env::PUBLIC_ZERO_URL, stack.zero.url())
        .env(env::WEB_DIR, dist)
        .env(env::DEV_LOGIN, "true")
        .env(env::LOG_FORMAT, "json");
    let mut app = ManagedProcess::spawn(
        "zrocket-dev-login",
        cmd,
        &stack.state.service("zrocket-dev-login")?,
    )?;
    let outcome = async {
        wait_http_ok(&format!("{url}/health"), &mut app).await?;
        browser(stack, &url, "dev-login", &["dev"]).await
    }
    .await;
    let log = app.log_tail(40);
    app.terminate().await?;
    outcome.with_context(|| format!("the dev-login app's log:\n{log}"))
}

/// Runs one scenario of `tests/node/browser-chat.mjs` against `app_url`; every named user must
/// have left a screenshot.
async fn browser(
    stack: &Stack,
    app_url: &str,
    scenario: &str,
    users: &[&str],
) -> anyhow::Result<()> {
    let artifacts = repo_root().join("tests/artifacts").join(scenario);
    let mut cmd = Command::new(zerostack_harness::paths::node_bin());
    cmd.arg(node_dir().join("browser-chat.mjs"))
        .env("APP_URL", app_url)
        .env("E2E_SCENARIO", scenario)
        .env("ARTIFACTS_DIR", &artifacts)
        .current_dir(repo_root());
    let mut browser =
        ManagedProcess::spawn(&format!("browser-{scenario}"), cmd, stack.state.path())?;
    let outcome = browser.wait_exit(BROWSER_TIMEOUT).await;
    // Stops it (and the Chromium it started, same process group) if it timed out.
    let _ = browser.terminate().await;
    let browser_log = browser.log_tail(200);
    println!("{browser_log}");
    let failure = match outcome {
        Ok(Some(0)) => None,
        Ok(code) => Some(format!("browser-chat.mjs exited with {code:?}")),
        Err(e) => Some(format!("browser-chat.mjs did not finish: {e:#}")),
    };
    if let Some(failure) = failure {
        bail!(
            "the {scenario} scenario failed: {failure}; screenshots in {}\n{browser_log}\n{}",
            artifacts.display(),
            stack.log_tails()
        );
    }
    for name in users {
        let shot = artifacts.join(format!("e2e-{name}.png"));
        ensure!(shot.is_file(), "no screenshot at {}", shot.display());
    }
    Ok(())
}

fn read_json(path: &Path) -> anyhow::Result<Value> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

#[test]
fn normalize_schema_ignores_custom_type_and_order() {
    let a: Value = serde_json::from_str(
        r#"{"tables":{"t":{"name":"t","columns":{"a":{"type":"string","optional":false,"customType":null},
            "b":{"type":"number","optional":true,"customType":null}},"primaryKey":["a"]}},"relationships":{}}"#,
    )
    .unwrap();
    let b: Value = serde_json::from_str(
        r#"{"relationships":{},"tables":{"t":{"primaryKey":["a"],"columns":{"b":{"optional":true,"type":"number"},
            "a":{"type":"string","optional":false}},"name":"t"}}}"#,
    )
    .unwrap();
    assert_eq!(normalize_schema(&a), normalize_schema(&b));
    let c: Value = serde_json::from_str(
        r#"{"tables":{"t":{"name":"t","columns":{"a":{"type":"string","optional":false},
            "b":{"type":"number","optional":false}},"primaryKey":["a"]}},"relationships":{}}"#,
    )
    .unwrap();
    assert_ne!(normalize_schema(&a), normalize_schema(&c));
}
