//! `schema_change`: how long a new optional column on a large table takes to reach zero-cache
//! when the source applies it in place, beside a full resync of the same database, in the same
//! run (issue 13's benchmark row). Its own binary so it runs alone:
//! `cargo run --release -p zerostack-bench --bin schema_change -- [--rows N]`
//! (after `cargo build --release -p source-server --bins`).
//!
//! 1. MongoDB holds N documents `{_id, n, extra}`; the source publishes `items(_id, n)` and
//!    zero-cache syncs it.
//! 2. *In place*: the source is restarted with `items(_id, n, extra?)`; measured from the
//!    restart until zero-cache has acknowledged the change's transaction (`lastSchemaChange`
//!    `committed` on `/metadata/status`), then the replica is checked to hold `extra` on every
//!    row (not timed).
//! 3. *Full resync*: the source is restarted with a change it cannot apply in place (`n` becomes
//!    a string); measured from the restart until zero-cache, restarted after its reset exit as
//!    a supervisor would, is ready again with every row.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use bson::doc;
use serde_json::{Value, json};
use zerostack_harness::{
    ManagedProcess, Mongo, Postgres, StateDir, ZeroCache, ZeroCacheOptions, free_port, http,
    repo_root,
};

struct Args {
    rows: u64,
    source_bin: PathBuf,
}

fn args() -> anyhow::Result<Args> {
    let mut rows = 200_000;
    let mut source_bin = repo_root().join("target/release/source-server");
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--rows" => rows = it.next().context("--rows needs a number")?.parse()?,
            "--source-bin" => source_bin = it.next().context("--source-bin needs a path")?.into(),
            other => bail!("unknown argument {other:?} (expected --rows N, --source-bin PATH)"),
        }
    }
    ensure!(rows > 0, "--rows must be at least 1");
    ensure!(
        source_bin.is_file(),
        "{} is missing: run `cargo build --release -p source-server --bins` first",
        source_bin.display()
    );
    Ok(Args { rows, source_bin })
}

fn say(msg: impl AsRef<str>) {
    eprintln!("[schema-change bench] {}", msg.as_ref());
}

/// The schema of `items` with `n` of type `n_type`, and `extra` when asked.
fn schema(n_type: &str, extra: bool) -> String {
    let mut columns = json!({
        "_id": {"type": "string", "optional": false},
        "n": {"type": n_type, "optional": true},
    });
    if extra {
        columns["extra"] = json!({"type": "string", "optional": true});
    }
    json!({"tables": {"items": {"name": "items", "columns": columns, "primaryKey": ["_id"]}}})
        .to_string()
}

struct Source {
    process: ManagedProcess,
    port: u16,
    schema_file: PathBuf,
    dir: PathBuf,
    bin: PathBuf,
    mongo_uri: String,
}

impl Source {
    async fn start(
        bin: &Path,
        dir: &Path,
        mongo_uri: &str,
        schema_json: &str,
    ) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let schema_file = dir.join("schema.json");
        std::fs::write(&schema_file, schema_json)?;
        let port = free_port();
        let mut s = Source {
            process: spawn(bin, dir, mongo_uri, &schema_file, port)?,
            port,
            schema_file,
            dir: dir.to_path_buf(),
            bin: bin.to_path_buf(),
            mongo_uri: mongo_uri.to_string(),
        };
        s.wait_ready().await?;
        Ok(s)
    }

    /// Stops it, and starts it again with `schema_json` on the same port.
    async fn restart_with(&mut self, schema_json: &str) -> anyhow::Result<()> {
        self.process.terminate().await?;
        std::fs::write(&self.schema_file, schema_json)?;
        self.process = spawn(
            &self.bin,
            &self.dir,
            &self.mongo_uri,
            &self.schema_file,
            self.port,
        )?;
        self.wait_ready().await
    }

    async fn wait_ready(&mut self) -> anyhow::Result<()> {
        for _ in 0..600 {
            if !self.process.is_running() {
                bail!("source-server exited:\n{}", self.process.log_tail(30));
            }
            if http::get(format!("http://127.0.0.1:{}/ready", self.port))
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bail!("source-server not ready:\n{}", self.process.log_tail(30))
    }

    async fn last_schema_change(&self) -> anyhow::Result<Value> {
        let status = http::get(format!("http://127.0.0.1:{}/metadata/status", self.port))
            .await?
            .json()?;
        Ok(status["lastSchemaChange"].clone())
    }
}

fn spawn(
    bin: &Path,
    dir: &Path,
    mongo_uri: &str,
    schema: &Path,
    port: u16,
) -> anyhow::Result<ManagedProcess> {
    let mut cmd = Command::new(bin);
    cmd.env_clear();
    if let Ok(path) = std::env::var("PATH") {
        cmd.env("PATH", path);
    }
    cmd.env("MONGODB_URI", mongo_uri)
        .env("MONGODB_DATABASE", "bench")
        .env("HOST", "127.0.0.1")
        .env("PORT", port.to_string())
        .env("ZERO_SCHEMA_FILE", schema)
        .env("LOG_LEVEL", "info");
    ManagedProcess::spawn("source-server", cmd, dir)
}

/// Every row of zero-cache's `items` has `extra` equal to MongoDB's (`x<n>`).
async fn check_extra(zero: &ZeroCache, rows: u64) -> anyhow::Result<()> {
    let replica = zero.replica().await?;
    let items = replica["items"]
        .as_array()
        .context("no items in the replica")?;
    ensure!(
        items.len() as u64 == rows,
        "the replica has {} rows, MongoDB {rows}",
        items.len()
    );
    let wrong = items
        .iter()
        .filter(|r| {
            r["extra"].as_str()
                != r["_id"]
                    .as_str()
                    .map(|id| id.replacen('d', "x", 1))
                    .as_deref()
        })
        .count();
    ensure!(wrong == 0, "{wrong} rows lack their extra value");
    Ok(())
}

#[tokio::main]
async fn main() {
    if let Err(e) = run().await {
        eprintln!("schema_change: error: {e:#}");
        std::process::exit(1);
    }
}

async fn run() -> anyhow::Result<()> {
    let a = args()?;
    let state = StateDir::temp()?;
    let dir = state.path();
    let mongo = Mongo::start_in(dir.join("mongo")).await?;
    let pg = Postgres::start_in(dir.join("pg")).await?;
    pg.create_db("zero_cvr").await?;
    pg.create_db("zero_cdc").await?;
    let db = mongo.client().await?.database("bench");
    say(format!("seeding {} documents", a.rows));
    let items = db.collection::<bson::Document>("items");
    let mut i = 0u64;
    while i < a.rows {
        let batch: Vec<bson::Document> = (i..(i + 5000).min(a.rows))
            .map(|k| doc! {"_id": format!("d{k:07}"), "n": k as f64 + 0.5, "extra": format!("x{k:07}")})
            .collect();
        i += batch.len() as u64;
        items.insert_many(batch).await?;
    }
    let mut source = Source::start(
        &a.source_bin,
        &dir.join("source"),
        &mongo.uri(),
        &schema("number", false),
    )
    .await?;
    let opts = ZeroCacheOptions {
        upstream_url: format!("ws://127.0.0.1:{}/changes/v0/stream", source.port),
        cvr_db: pg.url("zero_cvr"),
        change_db: pg.url("zero_cdc"),
        ready_timeout: Some(Duration::from_secs(900)),
        ..Default::default()
    };
    let started = Instant::now();
    let mut zero = ZeroCache::start_in(dir.join("zero"), opts).await?;
    let first_sync = started.elapsed().as_secs_f64();
    say(format!("initial sync: {first_sync:.1} s"));

    say("in place: the source restarted with a new optional column");
    let t0 = Instant::now();
    source.restart_with(&schema("number", true)).await?;
    let mut change = Value::Null;
    while t0.elapsed() < Duration::from_secs(900) {
        change = source.last_schema_change().await.unwrap_or_default();
        if change["kind"] == "in-place" && change["state"] == "committed" {
            break;
        }
        ensure!(
            change["kind"] != "reset",
            "the change was not applied in place: {change}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let in_place = t0.elapsed().as_secs_f64();
    ensure!(
        change["state"] == "committed",
        "the change never committed: {change}"
    );
    ensure!(
        zero.is_running(),
        "zero-cache exited: {}",
        zero.log_tail(20)
    );
    check_extra(&zero, a.rows).await?;
    say(format!(
        "in place: {in_place:.2} s ({} rows rewritten)",
        change["rows"]
    ));

    say("full resync: the source restarted with a change it cannot apply in place");
    let t1 = Instant::now();
    source.restart_with(&schema("string", true)).await?;
    let code = zero.wait_exit(Duration::from_secs(120)).await?;
    ensure!(
        code == Some(14),
        "zero-cache should exit 14 after reset-required, got {code:?}"
    );
    zero.start_again().await?;
    let resync = t1.elapsed().as_secs_f64();
    let replica = zero.replica().await?;
    let n = replica["items"].as_array().map_or(0, |r| r.len()) as u64;
    ensure!(
        n == a.rows,
        "after the resync the replica has {n} rows, MongoDB {}",
        a.rows
    );
    say(format!("full resync: {resync:.2} s"));

    let table = format!(
        "| Measure | In place | Full resync | Ratio |\n| --- | --- | --- | --- |\n| new optional column on a {}-row table, source restart → zero-cache has it | {in_place:.2} s | {resync:.2} s | {:.1}× |\n",
        a.rows,
        resync / in_place.max(1e-9)
    );
    println!("{table}");
    let out = repo_root().join("tests/artifacts");
    std::fs::create_dir_all(&out)?;
    let file = out.join("bench-schema-change.json");
    std::fs::write(
        &file,
        serde_json::to_string_pretty(&json!({
            "rows": a.rows,
            "initialSyncSecs": first_sync,
            "inPlaceSecs": in_place,
            "fullResyncSecs": resync,
            "inPlaceRowsRewritten": change["rows"],
        }))?,
    )?;
    say(format!("saved {}", file.display()));
    Ok(())
}
