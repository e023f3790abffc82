//! Browser end-to-end test of ZRocket, everything real: a MongoDB replica set, the
//! source-server loaded with the app's exported schema, PostgreSQL, zero-cache 1.9.0, the zrocket
//! server serving the built UI, and headless Chromium driven by `app/tests/e2e/chat.mjs` (two
//! users in two browser contexts: a group created by one appears for the other, messages arrive
//! live both ways, and the sender's message is confirmed by the server).
//!
//! It exists to prove the whole write and read path works in a real browser, which no unit or
//! protocol test can: the UI's Zero schema must match the replica, the named queries and
//! mutators must match the server's, and lastMutationID must travel MongoDB → source →
//! zero-cache → client.
//!
//! Needs `target/debug/source-server` (run `cargo build --bins` first; this test does not build
//! other packages), Chromium at `/usr/bin/chromium`, and Node with `tests/node` installed
//! (`tests/install.sh` does both and is run automatically when something is missing).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Map, Value};
use zerostack_testkit::{
    ManagedProcess, Mongo, Postgres, ZeroCache, ZeroCacheOptions, ensure_installed, free_port,
    free_port_block, node_dir, repo_root, service_temp_dir,
};

/// The database the app and the source share in this test.
const DATABASE: &str = "zrocket";
/// How long the browser script may take in all.
const BROWSER_TIMEOUT: Duration = Duration::from_secs(240);
/// How long a started server may take to answer its health check.
const READY_TIMEOUT: Duration = Duration::from_secs(90);

/// The folder holding this test's executable's sibling binaries (`target/debug`): the test runs
/// from `target/debug/deps/`, so this works for any `CARGO_TARGET_DIR`.
fn bin_dir() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("locating the test executable")?;
    exe.parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .context("the test executable has no target/<profile> folder above it")
}

/// The source-server binary, which cargo does not build for another package's tests.
fn source_server_bin() -> anyhow::Result<PathBuf> {
    let path = bin_dir()?.join("source-server");
    if !path.is_file() {
        bail!(
            "{} is missing: run `cargo build --bins` before this test (it runs the real source-server)",
            path.display()
        );
    }
    Ok(path)
}

/// Runs a command to completion, failing with its output when it does not succeed.
fn run(what: &str, cmd: &mut Command) -> anyhow::Result<String> {
    let out = cmd
        .output()
        .with_context(|| format!("starting {what} ({:?})", cmd.get_program()))?;
    if !out.status.success() {
        bail!(
            "{what} failed ({}):\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

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
        )?;
    }
    run(
        "npm test in app/web",
        Command::new("npm").arg("test").current_dir(web),
    )?;
    run(
        "npm run build in app/web",
        Command::new("npm").args(["run", "build"]).current_dir(web),
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

fn read_json(path: &Path) -> anyhow::Result<Value> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

/// Polls `url` until it answers 2xx, failing early (with its logs) if `process` exits.
async fn wait_http_ok(url: &str, process: &mut ManagedProcess) -> anyhow::Result<()> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()?;
    let deadline = Instant::now() + READY_TIMEOUT;
    let mut last = String::from("no answer yet");
    while Instant::now() < deadline {
        if !process.is_running() {
            bail!(
                "{} exited before {url} answered\n{}",
                process.name(),
                process.log_tail(40)
            );
        }
        match client.get(url).send().await {
            Ok(resp) if resp.status().is_success() => return Ok(()),
            Ok(resp) => last = format!("HTTP {}", resp.status()),
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    bail!(
        "{url} not ready after {READY_TIMEOUT:?} (last: {last})\n{}",
        process.log_tail(40)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_users_chat_live_in_real_browsers() -> anyhow::Result<()> {
    let repo = repo_root();
    let source_bin = source_server_bin()?;
    let zrocket_bin = PathBuf::from(env!("CARGO_BIN_EXE_zrocket"));
    ensure_installed("chromium", || Path::new("/usr/bin/chromium").exists())?;
    ensure_installed("node", || {
        node_dir()
            .join("node_modules/playwright-core/package.json")
            .exists()
    })?;
    let dist = test_and_build_ui(&repo.join("app/web"))?;

    let temp = service_temp_dir("e2e-browser")?;
    let logs = temp.path().join("logs");

    // Databases.
    let (mongo, pg) = tokio::try_join!(Mongo::start(), Postgres::start())?;
    pg.create_db("zero_cvr").await?;
    pg.create_db("zero_cdc").await?;

    // The app's exported schema, checked against the UI's contract file, which the UI's own unit
    // test checks against src/schema.ts: so the browser's schema equals what the source serves.
    let export_dir = temp.path().join("export");
    run(
        "zrocket export",
        Command::new(&zrocket_bin)
            .arg("export")
            .arg("--out")
            .arg(&export_dir),
    )?;
    let exported = normalize_schema(&read_json(&export_dir.join("schema.json"))?);
    let contract = normalize_schema(&read_json(&repo.join("app/web/schema.contract.json"))?);
    assert_eq!(
        exported, contract,
        "the Rust export (left) differs from app/web/schema.contract.json (right)"
    );

    // Seed data (alice, bob, ...).
    let mongo_env = [
        ("MONGODB_URI", mongo.uri()),
        ("MONGODB_DATABASE", DATABASE.to_string()),
    ];
    run(
        "zrocket seed",
        Command::new(&zrocket_bin)
            .arg("seed")
            .envs(mongo_env.clone()),
    )?;

    // The change source.
    let source_port = free_port();
    let source_token = "e2e-source-token-0123456789";
    let mut source_cmd = Command::new(&source_bin);
    source_cmd
        .envs(mongo_env.clone())
        .env("PORT", source_port.to_string())
        .env("SOURCE_TOKEN", source_token)
        .env("ZERO_SCHEMA_FILE", export_dir.join("schema.json"))
        .env(
            "ZERO_TABLE_MAPPINGS_FILE",
            export_dir.join("table-mappings.json"),
        )
        .env("LOG_LEVEL", "info");
    // ZRocket's permissions are `null` (every query is a named query); the source only takes a
    // permissions file that holds an object, and needs none otherwise.
    let permissions = export_dir.join("permissions.json");
    if permissions.is_file() && !read_json(&permissions)?.is_null() {
        source_cmd.env("ZERO_PERMISSIONS_FILE", &permissions);
    }
    let mut source = ManagedProcess::spawn("source-server", source_cmd, &logs)?;
    wait_http_ok(
        &format!("http://127.0.0.1:{source_port}/ready"),
        &mut source,
    )
    .await?;

    // The app, told where the browser finds zero-cache (whose port we pick now).
    let app_port = free_port();
    let zero_port = free_port_block(3);
    let app_url = format!("http://127.0.0.1:{app_port}");
    let mut app_cmd = Command::new(&zrocket_bin);
    app_cmd
        .arg("serve")
        .envs(mongo_env.clone())
        .env("PORT", app_port.to_string())
        .env("AUTH_SECRET", "e2e-auth-secret-0123456789abcdef")
        .env("PUBLIC_ZERO_URL", format!("http://127.0.0.1:{zero_port}"))
        .env("WEB_DIR", &dist)
        .env("LOG_LEVEL", "info")
        .current_dir(&repo);
    let mut app = ManagedProcess::spawn("zrocket", app_cmd, &logs)?;
    wait_http_ok(&format!("{app_url}/health"), &mut app).await?;

    let mut zero = ZeroCache::start(ZeroCacheOptions {
        upstream_url: format!(
            "ws://127.0.0.1:{source_port}/changes/v0/stream?token={source_token}"
        ),
        cvr_db: pg.url("zero_cvr"),
        change_db: pg.url("zero_cdc"),
        mutate_url: Some(format!("{app_url}/api/zero/mutate")),
        query_url: Some(format!("{app_url}/api/zero/query")),
        port: Some(zero_port),
        ..Default::default()
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e:#}\n{}", source.log_tail(30)))?;

    // The browsers.
    let artifacts = repo.join("tests/artifacts");
    let mut browser_cmd = Command::new("node");
    browser_cmd
        .arg(repo.join("app/tests/e2e/chat.mjs"))
        .env("APP_URL", &app_url)
        .env("ARTIFACTS_DIR", &artifacts)
        .current_dir(&repo);
    let mut browser = ManagedProcess::spawn("chat.mjs", browser_cmd, &logs)?;
    let outcome = browser.wait_exit(BROWSER_TIMEOUT).await;
    // Stops it (and the Chromium it started, same process group) if it timed out.
    let _ = browser.terminate().await;
    let browser_log = browser.log_tail(200);
    println!("{browser_log}");
    let failure = match outcome {
        Ok(Some(0)) => None,
        Ok(code) => Some(format!("chat.mjs exited with {code:?}")),
        Err(e) => Some(format!("chat.mjs did not finish: {e:#}")),
    };
    if let Some(failure) = failure {
        bail!(
            "the browser test failed: {failure}; screenshots in {}\n{browser_log}\n{}\n{}\n{}",
            artifacts.display(),
            app.log_tail(40),
            source.log_tail(40),
            zero.log_tail(60)
        );
    }
    for name in ["alice", "bob"] {
        let shot = artifacts.join(format!("e2e-{name}.png"));
        assert!(shot.is_file(), "no screenshot at {}", shot.display());
    }

    // Stop everything by PID (drop would too; this reports problems).
    zero.stop().await?;
    app.terminate().await?;
    source.terminate().await?;
    drop(mongo);
    drop(pg);
    Ok(())
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
