//! Browser end-to-end test of ZRocket, everything real: a MongoDB replica set, the
//! source-server loaded with the app's exported schema, PostgreSQL, zero-cache 1.9.0, the zrocket
//! server serving the built UI, and headless Chromium driven by `tests/node/browser-chat.mjs` (two
//! users in two browser contexts: a group created by one appears for the other, messages arrive
//! live both ways, and the sender's message is confirmed by the server).
//!
//! It exists to prove the whole write and read path works in a real browser, which no unit or
//! protocol test can: the UI's Zero schema must match the replica, the named queries and
//! mutators must match the server's, and lastMutationID must travel MongoDB → source →
//! zero-cache → client.
//!
//! Needs the workspace binaries (`cargo build --bins` first; this test does not build other
//! packages), Chromium at `/usr/bin/chromium`, and Node with `tests/node` installed
//! (`tests/install.sh` does both and is run automatically when something is missing).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::{Map, Value};
use zerostack_harness::process::run;
use zerostack_harness::stack::{Stack, StackOptions};
use zerostack_harness::{ManagedProcess, ensure_installed, node_dir, repo_root};

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
async fn two_users_chat_live_in_real_browsers() -> anyhow::Result<()> {
    let repo = repo_root();
    ensure_installed("chromium", || Path::new("/usr/bin/chromium").exists())?;
    ensure_installed("node", || {
        node_dir()
            .join("node_modules/playwright-core/package.json")
            .exists()
    })?;
    let dist = test_and_build_ui(&repo.join("app/web"))?;
    let mut opts = StackOptions::temp()?;
    opts.web_dir = Some(dist);
    let stack = Stack::start(opts).await?;
    let (app_url, logs) = (&stack.app_url, stack.state.path());

    // The app's exported schema, checked against the UI's contract file, which the UI's own unit
    // test checks against src/schema.ts: so the browser's schema equals what the source serves.
    let exported = normalize_schema(&read_json(&stack.export_dir.join("schema.json"))?);
    let contract = normalize_schema(&read_json(&repo.join("app/web/schema.contract.json"))?);
    assert_eq!(
        exported, contract,
        "the Rust export (left) differs from app/web/schema.contract.json (right)"
    );

    // The browsers.
    let artifacts = repo.join("tests/artifacts");
    let mut browser_cmd = Command::new(zerostack_harness::paths::node_bin());
    browser_cmd
        .arg(node_dir().join("browser-chat.mjs"))
        .env("APP_URL", app_url)
        .env("ARTIFACTS_DIR", &artifacts)
        .current_dir(&repo);
    let mut browser = ManagedProcess::spawn("browser-chat", browser_cmd, logs)?;
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
            "the browser test failed: {failure}; screenshots in {}\n{browser_log}\n{}",
            artifacts.display(),
            stack.log_tails()
        );
    }
    for name in ["alice", "bob"] {
        let shot = artifacts.join(format!("e2e-{name}.png"));
        assert!(shot.is_file(), "no screenshot at {}", shot.display());
    }

    stack.stop().await
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
