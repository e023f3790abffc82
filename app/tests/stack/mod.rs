//! The whole ZRocket stack as real processes, for the end-to-end tests: a MongoDB replica set,
//! PostgreSQL, source-server loaded with `zrocket export`, zero-cache 1.9.0 wired to the app's
//! mutate and query endpoints, and `zrocket serve`. One place, so every end-to-end test starts
//! the stack the same way.
//!
//! Needs `target/<profile>/source-server` (cargo builds it only for source-server's own tests:
//! run `cargo build --bins` first).

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::Value;
use zerostack_testkit::{
    ManagedProcess, Mongo, Postgres, ZeroCache, ZeroCacheOptions, free_port, free_port_block,
    service_temp_dir,
};

/// The database the app and the source share.
pub const DATABASE: &str = "zrocket";
/// How long a started server may take to answer its health check.
pub const READY_TIMEOUT: Duration = Duration::from_secs(90);

/// The folder holding the test executable's sibling binaries (`target/<profile>`): tests run
/// from `target/<profile>/deps/`, so this works for any `CARGO_TARGET_DIR`.
fn bin_dir() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("locating the test executable")?;
    exe.parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .context("the test executable has no target/<profile> folder above it")
}

/// A binary from `target/<profile>` that cargo does not build for this package's tests.
pub fn built_bin(name: &str) -> anyhow::Result<PathBuf> {
    let path = bin_dir()?.join(name);
    if !path.is_file() {
        bail!(
            "{} is missing: run `cargo build --bins` before this test (it runs the real {name})",
            path.display()
        );
    }
    Ok(path)
}

/// Runs a command to completion, failing with its output when it does not succeed.
pub fn run(what: &str, cmd: &mut Command) -> anyhow::Result<String> {
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

pub fn read_json(path: &Path) -> anyhow::Result<Value> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

/// Polls `url` until it answers 2xx, failing early (with its logs) if `process` exits.
pub async fn wait_http_ok(url: &str, process: &mut ManagedProcess) -> anyhow::Result<()> {
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

pub struct ZRocketStack {
    pub temp: tempfile::TempDir,
    pub logs: PathBuf,
    pub export_dir: PathBuf,
    pub mongo: Mongo,
    pub pg: Postgres,
    pub source: ManagedProcess,
    pub app: ManagedProcess,
    pub zero: ZeroCache,
    pub app_url: String,
}

impl ZRocketStack {
    /// Starts everything, seeded. `web_dir` is the built UI the app serves (None: an empty one).
    pub async fn start(name: &str, web_dir: Option<&Path>) -> anyhow::Result<Self> {
        let source_bin = built_bin("source-server")?;
        let zrocket_bin = PathBuf::from(env!("CARGO_BIN_EXE_zrocket"));
        let temp = service_temp_dir(name)?;
        let logs = temp.path().join("logs");

        let (mongo, pg) = tokio::try_join!(Mongo::start(), Postgres::start())?;
        pg.create_db("zero_cvr").await?;
        pg.create_db("zero_cdc").await?;

        let export_dir = temp.path().join("export");
        run(
            "zrocket export",
            Command::new(&zrocket_bin)
                .arg("export")
                .arg("--out")
                .arg(&export_dir),
        )?;
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

        let source_port = free_port();
        let source_token = format!("{name}-source-token-0123456789");
        let mut source_cmd = Command::new(&source_bin);
        source_cmd
            .envs(mongo_env.clone())
            .env("HOST", "127.0.0.1")
            .env("PORT", source_port.to_string())
            .env("SOURCE_TOKEN", &source_token)
            .env("ZERO_SCHEMA_FILE", export_dir.join("schema.json"))
            .env(
                "ZERO_TABLE_MAPPINGS_FILE",
                export_dir.join("table-mappings.json"),
            )
            .env("ZERO_PERMISSIONS_FILE", export_dir.join("permissions.json"))
            .env("LOG_LEVEL", "info");
        let mut source = ManagedProcess::spawn("source-server", source_cmd, &logs)?;
        wait_http_ok(
            &format!("http://127.0.0.1:{source_port}/ready"),
            &mut source,
        )
        .await?;

        // The app is told where browsers find zero-cache, whose ports are picked now.
        let app_port = free_port();
        let zero_port = free_port_block(3);
        let app_url = format!("http://127.0.0.1:{app_port}");
        let web = match web_dir {
            Some(w) => w.to_path_buf(),
            None => {
                let w = temp.path().join("web");
                std::fs::create_dir_all(&w)?;
                w
            }
        };
        let mut app_cmd = Command::new(&zrocket_bin);
        app_cmd
            .arg("serve")
            .envs(mongo_env)
            .env("PORT", app_port.to_string())
            .env(
                "AUTH_SECRET",
                format!("{name}-auth-secret-0123456789abcdef"),
            )
            .env("PUBLIC_ZERO_URL", format!("http://127.0.0.1:{zero_port}"))
            .env("WEB_DIR", &web)
            .env("LOG_LEVEL", "info");
        let mut app = ManagedProcess::spawn("zrocket", app_cmd, &logs)?;
        wait_http_ok(&format!("{app_url}/health"), &mut app).await?;

        let zero = ZeroCache::start(ZeroCacheOptions {
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

        Ok(ZRocketStack {
            temp,
            logs,
            export_dir,
            mongo,
            pg,
            source,
            app,
            zero,
            app_url,
        })
    }

    /// The last lines of every server's logs, for failure messages.
    pub fn log_tails(&self) -> String {
        format!(
            "{}\n{}\n{}",
            self.app.log_tail(40),
            self.source.log_tail(40),
            self.zero.log_tail(60)
        )
    }

    /// Stops everything by PID (dropping would too; this reports problems).
    pub async fn stop(mut self) -> anyhow::Result<()> {
        self.zero.stop().await?;
        self.app.terminate().await?;
        self.source.terminate().await?;
        Ok(())
    }
}
