//! Shared pieces of the source-server integration tests: the fixture schema, a source-server
//! process on a free port, and a minimal protocol client that plays zero-cache's part.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail};
use futures::{SinkExt, StreamExt};
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;
use zerostack_harness::{ManagedProcess, Postgres, ZeroCache, ZeroCacheOptions, free_port, http};

pub const TOKEN: &str = "test-token-Zq8";

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

pub struct SourceServer {
    pub process: ManagedProcess,
    pub port: u16,
    pub env: Vec<(String, String)>,
    dir: PathBuf,
}

impl SourceServer {
    pub async fn start(
        dir: &Path,
        mongo_uri: &str,
        db: &str,
        extra: &[(&str, &str)],
    ) -> anyhow::Result<Self> {
        let port = free_port();
        let f = fixtures();
        let mut env: Vec<(String, String)> = vec![
            ("MONGODB_URI".into(), mongo_uri.into()),
            ("MONGODB_DATABASE".into(), db.into()),
            ("HOST".into(), "127.0.0.1".into()),
            ("PORT".into(), port.to_string()),
            (
                "ZERO_SCHEMA_FILE".into(),
                f.join("schema.json").display().to_string(),
            ),
            (
                "ZERO_TABLE_MAPPINGS_FILE".into(),
                f.join("table-mappings.json").display().to_string(),
            ),
            (
                "ZERO_PERMISSIONS_FILE".into(),
                f.join("permissions.json").display().to_string(),
            ),
            ("SOURCE_TOKEN".into(), TOKEN.into()),
            ("LOG_LEVEL".into(), "debug".into()),
        ];
        // An empty value unsets the variable (e.g. the fixture mappings, for another schema).
        for (k, v) in extra {
            env.retain(|(ek, _)| ek != k);
            if !v.is_empty() {
                env.push((k.to_string(), v.to_string()));
            }
        }
        let mut s = SourceServer {
            process: spawn(dir, &env)?,
            port,
            env,
            dir: dir.to_path_buf(),
        };
        s.wait_healthy().await?;
        Ok(s)
    }

    pub async fn wait_healthy(&mut self) -> anyhow::Result<()> {
        let url = format!("{}/health", self.http());
        for _ in 0..200 {
            if http::get(&url).await.is_ok_and(|r| r.status().is_success()) {
                return Ok(());
            }
            if !self.process.is_running() {
                bail!("source-server exited:\n{}", self.process.log_tail(40));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bail!(
            "source-server did not become healthy:\n{}",
            self.process.log_tail(40)
        )
    }

    pub fn http(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn ws_url(&self) -> String {
        format!(
            "ws://127.0.0.1:{}/changes/v0/stream?token={TOKEN}",
            self.port
        )
    }

    pub async fn kill9_and_restart(&mut self) -> anyhow::Result<()> {
        self.process.kill9().await?;
        self.start_again().await
    }

    /// Starts a stopped (or killed) source again on its port, with its current `env` and its log
    /// folder (the log is appended to).
    pub async fn start_again(&mut self) -> anyhow::Result<()> {
        self.process = spawn(&self.dir, &self.env)?;
        self.wait_healthy().await
    }

    pub async fn get_json(&self, path: &str) -> anyhow::Result<Value> {
        http::get(format!("{}{path}", self.http())).await?.json()
    }

    pub async fn get_text(&self, path: &str) -> anyhow::Result<String> {
        Ok(http::get(format!("{}{path}", self.http())).await?.text())
    }

    /// `/metadata/status`, which needs the token.
    pub async fn status(&self) -> anyhow::Result<Value> {
        http::Client::new()
            .get(format!("{}/metadata/status", self.http()))
            .bearer_auth(TOKEN)
            .send()
            .await?
            .json()
    }

    /// Resets the source asked for so far (`zerostack_source_resets_total`, every reason).
    pub async fn resets_counted(&self) -> f64 {
        self.get_text("/metrics")
            .await
            .unwrap_or_default()
            .lines()
            .filter(|l| l.starts_with("zerostack_source_resets_total"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }
}

/// The replica version zero-cache's replica was built at.
pub async fn replica_version(zero: &ZeroCache) -> anyhow::Result<String> {
    let replica = zero.replica().await?;
    replica["_zero.replicationConfig"][0]["replicaVersion"]
        .as_str()
        .map(str::to_string)
        .with_context(|| {
            format!(
                "no replicaVersion in the replica's _zero.replicationConfig: {}",
                replica["_zero.replicationConfig"]
            )
        })
}

/// The replica keeps its version and zero-cache is still running: no reset happened.
pub async fn same_replica(zero: &mut ZeroCache, rv: &str) -> anyhow::Result<()> {
    anyhow::ensure!(
        zero.is_running(),
        "zero-cache exited:\n{}",
        zero.log_tail(20)
    );
    let now = replica_version(zero).await?;
    anyhow::ensure!(
        now == rv,
        "the replica version changed from {rv} to {now}: a resync happened"
    );
    Ok(())
}

/// The binary under test; `SOURCE_SERVER_BIN` runs the same tests against another build (e.g.
/// an older commit's, to see a test fail before its fix).
pub fn bin() -> String {
    std::env::var("SOURCE_SERVER_BIN")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_source-server").into())
}

fn spawn(dir: &Path, env: &[(String, String)]) -> anyhow::Result<ManagedProcess> {
    let mut cmd = Command::new(bin());
    cmd.env_clear();
    if let Ok(path) = std::env::var("PATH") {
        cmd.env("PATH", path);
    }
    cmd.envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    ManagedProcess::spawn("source-server", cmd, dir)
}

/// Plays zero-cache: connects, reads protocol messages, sends acks.
pub struct ProtocolClient {
    ws: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    /// Every downstream message received, as text, in order.
    pub received: Vec<String>,
}

impl ProtocolClient {
    pub async fn connect(url: &str) -> anyhow::Result<Self> {
        let (ws, _) = tokio_tungstenite::connect_async(url)
            .await
            .context("connecting to the source")?;
        Ok(ProtocolClient {
            ws,
            received: Vec::new(),
        })
    }

    /// The next downstream message, or None when the socket closed.
    pub async fn next(&mut self, timeout: Duration) -> anyhow::Result<Option<Value>> {
        loop {
            let msg = tokio::time::timeout(timeout, self.ws.next())
                .await
                .context("timed out waiting for a message from the source")?;
            match msg {
                None | Some(Ok(Message::Close(_))) => return Ok(None),
                Some(Ok(Message::Text(t))) => {
                    self.received.push(t.to_string());
                    return Ok(Some(serde_json::from_str(&t)?));
                }
                Some(Ok(_)) => continue,
                Some(Err(e)) => bail!("websocket error: {e}"),
            }
        }
    }

    /// Reads one whole transaction (begin … commit), skipping nothing. Returns (watermark, data).
    pub async fn transaction(&mut self, timeout: Duration) -> anyhow::Result<(String, Vec<Value>)> {
        let begin = self
            .next(timeout)
            .await?
            .context("socket closed before begin")?;
        if begin[0] != "begin" {
            bail!("expected begin, got {begin}");
        }
        let w = begin[2]["commitWatermark"]
            .as_str()
            .context("begin without watermark")?
            .to_string();
        let mut data = Vec::new();
        loop {
            let m = self
                .next(timeout)
                .await?
                .context("socket closed inside a transaction")?;
            match m[0].as_str() {
                Some("data") => data.push(m[1].clone()),
                Some("commit") => {
                    if m[2]["watermark"] != w.as_str() {
                        bail!(
                            "commit watermark {} != begin watermark {w}",
                            m[2]["watermark"]
                        );
                    }
                    return Ok((w, data));
                }
                _ => bail!("unexpected message inside a transaction: {m}"),
            }
        }
    }

    /// Reads transactions until `pred` holds for the data seen so far (all transactions).
    pub async fn transactions_until(
        &mut self,
        timeout: Duration,
        mut pred: impl FnMut(&[(String, Vec<Value>)]) -> bool,
    ) -> anyhow::Result<Vec<(String, Vec<Value>)>> {
        let mut txns = Vec::new();
        let deadline = tokio::time::Instant::now() + timeout;
        while !pred(&txns) {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                bail!("condition not met; transactions so far: {txns:?}");
            }
            let t = self.transaction(left).await?;
            // Empty keepalive transactions are legal; keep them, callers filter.
            txns.push(t);
        }
        Ok(txns)
    }

    pub async fn ack(&mut self, watermark: &str) -> anyhow::Result<()> {
        let msg = serde_json::json!(["status", {"tag": "commit"}, {"watermark": watermark}]);
        self.ws.send(Message::Text(msg.to_string().into())).await?;
        Ok(())
    }
}

/// Data changes of a given tag on a given table.
pub fn changes<'a>(
    data: &'a [Value],
    tag: &'a str,
    table: &'a str,
) -> impl Iterator<Item = &'a Value> + 'a {
    data.iter().filter(move |d| {
        d["tag"] == tag
            && (d["relation"]["name"] == table
                || d["spec"]["name"] == table
                || d["spec"]["tableName"] == table)
    })
}

pub fn ids<'a>(rows: impl Iterator<Item = &'a Value>) -> std::collections::BTreeSet<String> {
    rows.map(|d| {
        d.get("new")
            .or_else(|| d.get("key"))
            .map(|r| r["_id"].as_str().unwrap_or_default().to_string())
            .unwrap_or_default()
    })
    .collect()
}

/// `rows` restricted to `columns`, sorted: two such lists are equal when the tables hold the
/// same rows, each once.
pub fn rows_on(rows: &[Value], columns: &[&str]) -> Vec<Value> {
    let mut out: Vec<Value> = rows
        .iter()
        .map(|r| {
            Value::Object(
                columns
                    .iter()
                    .map(|c| (c.to_string(), r.get(*c).cloned().unwrap_or(Value::Null)))
                    .collect(),
            )
        })
        .collect();
    out.sort_by_key(|v| v.to_string());
    out
}

/// Waits (bounded) until zero-cache's replica of `table`, on `columns`, is exactly `want`
/// (rows as JSON objects; order does not matter, a repeated row does).
pub async fn wait_replica_equals(
    zero: &zerostack_harness::ZeroCache,
    what: &str,
    table: &str,
    columns: &[&str],
    want: &[Value],
) -> anyhow::Result<()> {
    let want = rows_on(want, columns);
    let mut last = Vec::new();
    for _ in 0..120 {
        if let Ok(replica) = zero.replica().await {
            last = rows_on(
                replica[table].as_array().map_or(&[][..], |a| a.as_slice()),
                columns,
            );
            if last == want {
                return Ok(());
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let missing: Vec<&Value> = want.iter().filter(|r| !last.contains(r)).take(5).collect();
    let extra: Vec<&Value> = last.iter().filter(|r| !want.contains(r)).take(5).collect();
    bail!(
        "{what}: the replica of {table} ({} rows) never equalled MongoDB ({} rows); missing e.g. {missing:?}, extra e.g. {extra:?}\nzero-cache log:\n{}",
        last.len(),
        want.len(),
        zero.log_tail(10)
    )
}

/// Every document of `collection` as a JSON row of `columns` (string `_id`s and plain values).
pub async fn mongo_rows(
    db: &mongodb::Database,
    collection: &str,
    filter: bson::Document,
    columns: &[&str],
) -> anyhow::Result<Vec<Value>> {
    use futures::TryStreamExt;
    let docs: Vec<bson::Document> = db
        .collection::<bson::Document>(collection)
        .find(filter)
        .await?
        .try_collect()
        .await?;
    Ok(docs
        .iter()
        .map(|d| {
            Value::Object(
                columns
                    .iter()
                    .map(|c| {
                        let v = d
                            .get(*c)
                            .map(|b| b.clone().into_relaxed_extjson())
                            .unwrap_or(Value::Null);
                        (c.to_string(), v)
                    })
                    .collect(),
            )
        })
        .collect())
}

/// zero-cache (under `dir/zero`) replicating from `source`, with its CVR and change databases
/// created in `pg` first: the set-up of every test that goes through the real zero-cache.
pub async fn start_zero_cache(
    dir: &Path,
    source: &SourceServer,
    pg: &Postgres,
) -> anyhow::Result<ZeroCache> {
    start_zero_cache_on(dir, source.port, pg).await
}

/// [`start_zero_cache`] for whatever serves the change stream at `port` on loopback with the
/// test token: a source, or a balancer in front of several.
pub async fn start_zero_cache_on(
    dir: &Path,
    port: u16,
    pg: &Postgres,
) -> anyhow::Result<ZeroCache> {
    pg.create_db("zero_cvr").await?;
    pg.create_db("zero_cdc").await?;
    ZeroCache::start_in(
        dir.join("zero"),
        ZeroCacheOptions {
            upstream_url: format!("ws://127.0.0.1:{port}/changes/v0/stream?token={TOKEN}"),
            cvr_db: pg.url("zero_cvr"),
            change_db: pg.url("zero_cdc"),
            ..Default::default()
        },
    )
    .await
}
