//! What the benchmark measures with: the bare driver loop (the ceiling), a WebSocket client
//! that plays zero-cache and acks every commit, the replica watcher (`replica-watch.mjs`),
//! the source-server process and its peak RSS, and the statistics over latencies.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bson::Document;
use futures::{SinkExt, StreamExt};
use mongodb::change_stream::event::{ChangeStreamEvent, OperationType};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout};
use tokio_tungstenite::tungstenite::Message;
use zerostack_harness::{ManagedProcess, free_port, node_dir};

pub const TOKEN: &str = "bench-token-7Yq";

/// A LexiVersion (one base-36 length digit, then base-36 digits) back to its number.
pub fn lexi_to_u64(lexi: &str) -> anyhow::Result<u64> {
    let digits = lexi
        .get(1..)
        .filter(|d| !d.is_empty())
        .with_context(|| format!("watermark {lexi:?} is not a LexiVersion"))?;
    u64::from_str_radix(digits, 36).with_context(|| format!("watermark {lexi:?}: bad digits"))
}

/// The MongoDB cluster time inside a watermark, `(seconds << 32) | increment`.
pub fn lexi_to_timestamp(lexi: &str) -> anyhow::Result<bson::Timestamp> {
    let v = lexi_to_u64(lexi)?;
    Ok(bson::Timestamp {
        time: (v >> 32) as u32,
        increment: (v & 0xffff_ffff) as u32,
    })
}

/// (1) The ceiling: a bare driver change stream from `start`, read until `n` insert events
/// arrived. Returns the elapsed time from opening the stream.
pub async fn read_raw_change_stream(
    coll: &mongodb::Collection<Document>,
    start: bson::Timestamp,
    n: u64,
) -> anyhow::Result<Duration> {
    let t0 = Instant::now();
    let stream = coll
        .watch()
        .start_at_operation_time(start)
        .await
        .context("opening the raw change stream")?;
    count_inserts(stream, n).await?;
    Ok(t0.elapsed())
}

/// [`read_raw_change_stream`] over a whole database (several mapped collections).
pub async fn read_raw_db_change_stream(
    db: &mongodb::Database,
    start: bson::Timestamp,
    n: u64,
) -> anyhow::Result<Duration> {
    let t0 = Instant::now();
    let stream = db
        .watch()
        .start_at_operation_time(start)
        .await
        .context("opening the raw database change stream")?;
    count_inserts(stream, n).await?;
    Ok(t0.elapsed())
}

/// Reads a raw change stream until `n` insert events arrived.
async fn count_inserts(
    mut stream: mongodb::change_stream::ChangeStream<ChangeStreamEvent<Document>>,
    n: u64,
) -> anyhow::Result<()> {
    let mut seen = 0u64;
    while seen < n {
        let event: ChangeStreamEvent<Document> =
            tokio::time::timeout(Duration::from_secs(60), stream.next())
                .await
                .context("raw change stream: no event for 60 s")?
                .context("raw change stream ended")??;
        if event.operation_type == OperationType::Insert {
            seen += 1;
        }
    }
    Ok(())
}

/// (5, ceiling) A bare driver change stream, opened before a latency run starts writing:
/// for each of `expected` inserts, how long after the writer's stamp (`sent_ms` in the
/// document) the driver handed the event over. What MongoDB itself adds to commit → replica.
pub struct RawLatency {
    task: tokio::task::JoinHandle<anyhow::Result<Vec<f64>>>,
}

impl RawLatency {
    /// Opens the stream (at "now") and starts reading in a task.
    pub async fn start(
        coll: &mongodb::Collection<Document>,
        expected: u64,
    ) -> anyhow::Result<Self> {
        let mut stream = coll
            .watch()
            .await
            .context("opening the raw change stream for latency")?;
        let task = tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(expected as usize);
            while (latencies.len() as u64) < expected {
                let event: ChangeStreamEvent<Document> =
                    tokio::time::timeout(Duration::from_secs(60), stream.next())
                        .await
                        .context("raw latency stream: no event for 60 s")?
                        .context("raw latency stream ended")??;
                let seen = super::workload::now_ms();
                if event.operation_type != OperationType::Insert {
                    continue;
                }
                if let Some(sent) = event
                    .full_document
                    .as_ref()
                    .and_then(|d| d.get_f64(super::workload::SENT_COLUMN).ok())
                {
                    latencies.push(seen - sent);
                }
            }
            Ok(latencies)
        });
        Ok(Self { task })
    }

    /// Latencies (ms) of every stamped insert, once all `expected` were seen.
    pub async fn finish(self, timeout: Duration) -> anyhow::Result<Vec<f64>> {
        tokio::time::timeout(timeout, self.task)
            .await
            .context("raw latency stream did not see every write in time")??
    }
}

/// A source-server process started from the release binary with the bench schema.
pub struct SourceServer {
    pub process: ManagedProcess,
    pub port: u16,
}

impl SourceServer {
    pub async fn start(
        bin: &Path,
        dir: &Path,
        mongo_uri: &str,
        db: &str,
        extra_env: &[(String, String)],
    ) -> anyhow::Result<Self> {
        let tables = [super::workload::TABLE.to_string()];
        Self::start_with_tables(bin, dir, mongo_uri, db, extra_env, &tables).await
    }

    /// A source-server publishing `tables`, each shaped like `messages` and fed by the
    /// collection of its name.
    pub async fn start_with_tables(
        bin: &Path,
        dir: &Path,
        mongo_uri: &str,
        db: &str,
        extra_env: &[(String, String)],
        tables: &[String],
    ) -> anyhow::Result<Self> {
        let schema = super::workload::schema_json_for(tables);
        let mappings = super::workload::mappings_json_for(tables);
        Self::start_with_files(bin, dir, mongo_uri, db, extra_env, &schema, &mappings).await
    }

    /// A source-server given this schema and these table mappings (JSON text).
    pub async fn start_with_files(
        bin: &Path,
        dir: &Path,
        mongo_uri: &str,
        db: &str,
        extra_env: &[(String, String)],
        schema_json: &str,
        mappings_json: &str,
    ) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let schema = dir.join("schema.json");
        let mappings = dir.join("table-mappings.json");
        std::fs::write(&schema, schema_json)?;
        std::fs::write(&mappings, mappings_json)?;
        let port = free_port();
        let mut cmd = Command::new(bin);
        cmd.env_clear();
        if let Ok(path) = std::env::var("PATH") {
            cmd.env("PATH", path);
        }
        cmd.env("MONGODB_URI", mongo_uri)
            .env("MONGODB_DATABASE", db)
            .env("HOST", "127.0.0.1")
            .env("PORT", port.to_string())
            .env("ZERO_SCHEMA_FILE", &schema)
            .env("ZERO_TABLE_MAPPINGS_FILE", &mappings)
            .env("SOURCE_TOKEN", TOKEN)
            .env("LOG_LEVEL", "info");
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        let mut process = ManagedProcess::spawn("source-server", cmd, dir)?;
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(30) {
            if !process.is_running() {
                bail!("source-server exited:\n{}", process.log_tail(40));
            }
            if matches!(
                http_get(port, "/ready", Duration::from_secs(2)).await,
                Ok((200, _))
            ) {
                // Printed so a profiler can be attached (`perf record -p PID`).
                eprintln!(
                    "[bench] source-server pid {} ({}) ready",
                    process.pid(),
                    dir.display()
                );
                return Ok(Self { process, port });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bail!(
            "source-server not ready after 30 s:\n{}",
            process.log_tail(40)
        )
    }

    pub fn ws_url(&self) -> String {
        format!(
            "ws://127.0.0.1:{}/changes/v0/stream?token={TOKEN}",
            self.port
        )
    }

    /// Peak resident set size so far (`VmHWM`), in bytes.
    pub fn peak_rss(&self) -> anyhow::Result<u64> {
        peak_rss(self.process.pid())
    }
}

/// `VmHWM` of a process, in bytes.
pub fn peak_rss(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    parse_vm_hwm(&status).with_context(|| format!("no VmHWM in /proc/{pid}/status"))
}

/// CPU time a process has used so far, in seconds; `None` for `self`. Read from each live
/// thread's `schedstat` (nanoseconds), so that a few thousand events at a few µs each are still
/// measurable, and from the clock-tick counters of `stat` (10 ms), which also hold the time of
/// threads that have exited; the larger of the two. Both only grow, so their larger does too:
/// the sum over live threads alone went down (mongod's CPU came out negative) whenever one of
/// mongod's per-connection threads ended between two readings.
pub fn cpu_secs(pid: Option<u32>) -> anyhow::Result<f64> {
    let base = pid.map_or_else(|| "/proc/self".to_string(), |p| format!("/proc/{p}"));
    let live_threads: Option<f64> = std::fs::read_dir(format!("{base}/task")).ok().map(|tasks| {
        tasks
            .flatten()
            .filter_map(|t| {
                std::fs::read_to_string(t.path().join("schedstat"))
                    .ok()
                    .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok())
            })
            .sum::<u64>() as f64
            / 1e9
    });
    let path = format!("{base}/stat");
    let stat = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    let whole = parse_cpu_ticks(&stat)
        .map(|ticks| ticks as f64 / CLOCK_TICKS_PER_S)
        .with_context(|| format!("no utime/stime in {path}"))?;
    Ok(live_threads.map_or(whole, |t| t.max(whole)))
}

/// `sysconf(_SC_CLK_TCK)`, which is 100 on every Linux we run on.
const CLOCK_TICKS_PER_S: f64 = 100.0;

/// utime + stime (fields 14 and 15) from `/proc/PID/stat`; the command name (field 2) may hold
/// spaces, so fields are counted after its closing parenthesis.
pub fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// CPU seconds of several processes, read together.
#[derive(Clone, Copy, Debug)]
pub struct CpuSample {
    pub mongod: f64,
    pub source: f64,
    pub bench: f64,
}

impl CpuSample {
    pub fn take(mongod: u32, source: u32) -> anyhow::Result<Self> {
        Ok(Self {
            mongod: cpu_secs(Some(mongod))?,
            source: cpu_secs(Some(source))?,
            bench: cpu_secs(None)?,
        })
    }

    /// CPU µs per event of each process between `self` and `later`.
    pub fn per_event_us(&self, later: &Self, events: u64) -> String {
        let us = |a: f64, b: f64| (b - a) * 1e6 / events.max(1) as f64;
        format!(
            "CPU per event: mongod {:.1} µs, source-server {:.1} µs, bench client {:.1} µs",
            us(self.mongod, later.mongod),
            us(self.source, later.source),
            us(self.bench, later.bench)
        )
    }
}

pub fn parse_vm_hwm(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

impl SourceServer {
    /// The cumulative buckets of `zerostack_source_commit_lag_seconds`, from `/metrics`.
    pub async fn lag_buckets(&self) -> anyhow::Result<Vec<(f64, u64)>> {
        let (_, body) = http_get(self.port, "/metrics", Duration::from_secs(5)).await?;
        Ok(parse_lag_buckets(&body))
    }
}

impl SourceServer {
    /// The value of a counter (or the sum over its labels) from `/metrics`, e.g.
    /// `zerostack_source_bytes_sent`.
    pub async fn counter(&self, name: &str) -> anyhow::Result<f64> {
        let (_, body) = http_get(self.port, "/metrics", Duration::from_secs(5)).await?;
        Ok(parse_counter(&body, name))
    }
}

/// The sum of every sample of metric `name` (with or without labels, `_total` suffix or not).
pub fn parse_counter(metrics: &str, name: &str) -> f64 {
    metrics
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let rest = l.strip_prefix(name)?;
            let rest = rest.strip_prefix("_total").unwrap_or(rest);
            let value = if rest.starts_with('{') {
                rest.split_once("} ")?.1
            } else {
                rest.strip_prefix(' ')?
            };
            value.trim().parse::<f64>().ok()
        })
        .sum()
}

/// `(le, cumulative count)` of each `zerostack_source_commit_lag_seconds_bucket` line.
pub fn parse_lag_buckets(metrics: &str) -> Vec<(f64, u64)> {
    metrics
        .lines()
        .filter_map(|l| l.strip_prefix("zerostack_source_commit_lag_seconds_bucket{le=\""))
        .filter_map(|rest| {
            let (le, count) = rest.split_once("\"} ")?;
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            Some((le, count.trim().parse().ok()?))
        })
        .collect()
}

/// p50/p95/p99 (ms, as bucket upper bounds) of the observations between two bucket readings.
pub fn bucket_percentiles(before: &[(f64, u64)], after: &[(f64, u64)]) -> Option<[f64; 3]> {
    let counts: Vec<(f64, u64)> = after
        .iter()
        .map(|&(le, n)| {
            let was = before.iter().find(|(b, _)| *b == le).map_or(0, |&(_, c)| c);
            (le, n.saturating_sub(was))
        })
        .collect();
    let total = counts.last()?.1;
    if total == 0 {
        return None;
    }
    let at = |p: f64| {
        let want = (p * total as f64).ceil() as u64;
        counts
            .iter()
            .find(|(_, c)| *c >= want)
            .map_or(f64::INFINITY, |&(le, _)| le * 1000.0)
    };
    Some([at(0.50), at(0.95), at(0.99)])
}

/// `GET path` on 127.0.0.1:port: the status code and the body.
async fn http_get(port: u16, path: &str, timeout: Duration) -> anyhow::Result<(u16, String)> {
    let resp = zerostack_harness::http::Client::new()
        .with_timeout(timeout)
        .get(format!("http://127.0.0.1:{port}{path}"))
        .send()
        .await?;
    Ok((resp.status().as_u16(), resp.text()))
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The initial-sync connection: reads the snapshot transaction and returns its watermark
/// (the replica version).
pub async fn initial_sync(url: &str) -> anyhow::Result<String> {
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("{url}&appID=zero&shardNum=0"))
        .await
        .context("connecting to source-server")?;
    let mut watermark = None;
    loop {
        let text = next_text(&mut ws).await?;
        if text.starts_with("[\"begin\"") {
            let v: serde_json::Value = serde_json::from_str(&text)?;
            watermark = v[2]["commitWatermark"].as_str().map(str::to_string);
        } else if text.starts_with("[\"commit\"") {
            let _ = ws.close(None).await;
            return watermark.context("snapshot commit without a begin watermark");
        }
    }
}

/// The snapshot source-server sent on an initial-sync connection.
pub struct SnapshotCapture {
    /// Every message that is not an insert into the bench table (begin, tables, indexes, the
    /// permissions row, commit), in order.
    pub other: Vec<String>,
    /// The first `keep_rows` inserts into `messages`.
    pub rows: Vec<String>,
    pub row_count: u64,
    pub row_bytes: u64,
    pub frames: u64,
    pub bytes: u64,
    /// From the connection to the commit.
    pub secs: f64,
}

/// Reads a whole initial sync from source-server as fast as the socket goes, as a bare client
/// (no zero-cache): the source's own snapshot rate, its frame sizes, and the frames the ceiling
/// must match.
pub async fn capture_snapshot(url: &str, keep_rows: usize) -> anyhow::Result<SnapshotCapture> {
    let t0 = Instant::now();
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("{url}&appID=zero&shardNum=0"))
        .await
        .context("connecting to source-server")?;
    let mut cap = SnapshotCapture {
        other: Vec::new(),
        rows: Vec::new(),
        row_count: 0,
        row_bytes: 0,
        frames: 0,
        bytes: 0,
        secs: 0.0,
    };
    let row_prefix = format!(
        "[\"data\",{{\"tag\":\"insert\",\"relation\":{}",
        super::ceiling::RELATION
    );
    loop {
        let text = next_text(&mut ws).await?;
        cap.frames += 1;
        cap.bytes += text.len() as u64;
        if text.starts_with(&row_prefix) {
            cap.row_count += 1;
            cap.row_bytes += text.len() as u64;
            if cap.rows.len() < keep_rows {
                cap.rows.push(text);
            }
            continue;
        }
        let is_commit = text.starts_with("[\"commit\"");
        cap.other.push(text);
        if is_commit {
            cap.secs = t0.elapsed().as_secs_f64();
            let _ = ws.close(None).await;
            return Ok(cap);
        }
    }
}

/// What the acking client saw.
pub struct AckRun {
    pub elapsed: Duration,
    pub finished_at: Instant,
    pub rows: u64,
    pub transactions: u64,
    pub last_watermark: String,
}

/// (2) Plays zero-cache on a resume connection from `from` (replica version `w0`): counts
/// insert rows and acks every commit, until `n` rows arrived and their transaction committed.
/// `connected` fires once the socket is open.
pub async fn acking_client(
    url: &str,
    w0: &str,
    from: &str,
    n: u64,
    connected: Option<tokio::sync::oneshot::Sender<()>>,
) -> anyhow::Result<AckRun> {
    let t0 = Instant::now();
    let (mut ws, _) = tokio_tungstenite::connect_async(format!(
        "{url}&appID=zero&shardNum=0&lastWatermark={from}&replicaVersion={w0}"
    ))
    .await
    .context("connecting to source-server")?;
    if let Some(tx) = connected {
        let _ = tx.send(());
    }
    let (mut rows, mut transactions) = (0u64, 0u64);
    loop {
        let text = next_text(&mut ws).await?;
        // Cheap prefix checks: a real zero-cache parses every message, but the point here is
        // the source's own rate, so the client stays out of the way.
        if text.starts_with("[\"data\"") {
            if text.contains("\"tag\":\"insert\"") {
                rows += 1;
            }
        } else if text.starts_with("[\"commit\"") {
            let v: serde_json::Value = serde_json::from_str(&text)?;
            let w = v[2]["watermark"].clone();
            let ack = serde_json::json!(["status", {"tag": "commit"}, {"watermark": w}]);
            ws.send(Message::Text(ack.to_string().into())).await?;
            transactions += 1;
            if rows >= n {
                let finished_at = Instant::now();
                let _ = ws.close(None).await;
                return Ok(AckRun {
                    elapsed: finished_at - t0,
                    finished_at,
                    rows,
                    transactions,
                    last_watermark: w.as_str().unwrap_or_default().to_string(),
                });
            }
        } else if text.starts_with("[\"control\"") || text.starts_with("[\"error\"") {
            bail!("source-server answered the resume with {text}");
        }
    }
}

/// (4, source-side) Plays zero-cache like [`acking_client`], from `from`, and for each of
/// `expected` stamped inserts notes how long after the writer's stamp (`sent_ms`) the commit
/// of its transaction arrived: the source's own latency at millisecond-fraction resolution,
/// finer than its histogram's buckets. `connected` fires once the socket is open.
pub async fn latency_client(
    url: &str,
    w0: &str,
    from: &str,
    expected: u64,
    connected: tokio::sync::oneshot::Sender<()>,
) -> anyhow::Result<(Vec<f64>, String)> {
    let (mut ws, _) = tokio_tungstenite::connect_async(format!(
        "{url}&appID=zero&shardNum=0&lastWatermark={from}&replicaVersion={w0}"
    ))
    .await
    .context("connecting to source-server")?;
    let _ = connected.send(());
    let key = format!("\"{}\":", super::workload::SENT_COLUMN);
    let mut open: Vec<f64> = Vec::new();
    let mut latencies = Vec::with_capacity(expected as usize);
    let mut last = from.to_string();
    while (latencies.len() as u64) < expected {
        let text = next_text(&mut ws).await?;
        if text.starts_with("[\"data\"") {
            let sent = text
                .split_once(&key)
                .and_then(|(_, rest)| rest.split([',', '}']).next())
                .and_then(|v| v.parse::<f64>().ok());
            if let Some(sent) = sent {
                open.push(sent);
            }
        } else if text.starts_with("[\"commit\"") {
            let seen = super::workload::now_ms();
            latencies.extend(open.drain(..).map(|sent| seen - sent));
            let v: serde_json::Value = serde_json::from_str(&text)?;
            if let Some(w) = v[2]["watermark"].as_str() {
                last = w.to_string();
            }
            let ack =
                serde_json::json!(["status", {"tag": "commit"}, {"watermark": v[2]["watermark"]}]);
            ws.send(Message::Text(ack.to_string().into())).await?;
        } else if text.starts_with("[\"control\"") || text.starts_with("[\"error\"") {
            bail!("source-server answered the resume with {text}");
        }
    }
    let _ = ws.close(None).await;
    Ok((latencies, last))
}

async fn next_text(ws: &mut Ws) -> anyhow::Result<String> {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(60), ws.next())
            .await
            .context("no message from source-server for 60 s")?;
        match msg {
            Some(Ok(Message::Text(t))) => return Ok(t.to_string()),
            Some(Ok(Message::Close(_))) | None => bail!("source-server closed the stream"),
            Some(Ok(_)) => continue,
            Some(Err(e)) => bail!("websocket error: {e}"),
        }
    }
}

fn watcher_command(args: &[String]) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(zerostack_harness::paths::node_bin());
    cmd.arg(node_dir().join("replica-watch.mjs"))
        .args(args)
        .current_dir(node_dir())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
    cmd
}

/// `replica-watch.mjs count`: resolves to the epoch ms when the replica first held `target`
/// rows of `table`.
pub struct CountWatch {
    child: Child,
}

impl CountWatch {
    pub fn start(replica: &Path, table: &str, target: u64) -> anyhow::Result<Self> {
        let child = watcher_command(&[
            "count".into(),
            replica.display().to_string(),
            table.into(),
            target.to_string(),
            "5".into(),
        ])
        .spawn()
        .context("starting node replica-watch.mjs")?;
        Ok(Self { child })
    }

    pub async fn wait(mut self, timeout: Duration) -> anyhow::Result<f64> {
        let mut out = String::new();
        let mut stdout = self.child.stdout.take().context("watcher without stdout")?;
        tokio::time::timeout(timeout, stdout.read_to_string(&mut out))
            .await
            .with_context(|| {
                format!("the replica did not reach its row count within {timeout:?}")
            })??;
        let status = self.child.wait().await?;
        if !status.success() {
            bail!("replica-watch.mjs count failed ({status})");
        }
        let v: serde_json::Value = serde_json::from_str(out.trim())
            .with_context(|| format!("replica-watch.mjs printed {out:?}"))?;
        v["atMs"].as_f64().context("watcher result without atMs")
    }
}

/// `replica-watch.mjs latency`: every new row's stamped send time and when it appeared.
pub struct LatencyWatch {
    /// Reads the watcher's output as it comes, so its stdout pipe never fills up while the
    /// writes run (a full pipe would stall the watcher and skew what it measures).
    reader: tokio::task::JoinHandle<anyhow::Result<Vec<f64>>>,
}

impl LatencyWatch {
    /// Starts the watcher and waits until it has noted the replica's current end.
    pub async fn start(replica: &Path, table: &str, expected: u64) -> anyhow::Result<Self> {
        let mut child = watcher_command(&[
            "latency".into(),
            replica.display().to_string(),
            table.into(),
            super::workload::SENT_COLUMN.into(),
            expected.to_string(),
            "1".into(),
        ])
        .spawn()
        .context("starting node replica-watch.mjs")?;
        let stdout = child.stdout.take().context("watcher without stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let first = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
            .await
            .context("latency watcher not ready within 60 s")??;
        if first.as_deref() != Some("ready") {
            bail!("latency watcher said {first:?} instead of ready");
        }
        let reader = tokio::spawn(async move {
            let latencies = read_latencies(&mut lines).await;
            let status = child.wait().await;
            match (latencies, status) {
                (Ok(l), _) => Ok(l),
                (Err(e), Ok(status)) => {
                    Err(e.context(format!("replica-watch.mjs exited: {status}")))
                }
                (Err(e), Err(_)) => Err(e),
            }
        });
        Ok(Self { reader })
    }

    /// Latencies (ms) of every row, once all `expected` rows were seen.
    pub async fn finish(self, timeout: Duration) -> anyhow::Result<Vec<f64>> {
        tokio::time::timeout(timeout, self.reader)
            .await
            .context("latency watcher: not every row reached the replica in time")??
    }
}

async fn read_latencies(lines: &mut Lines<BufReader<ChildStdout>>) -> anyhow::Result<Vec<f64>> {
    let mut latencies = Vec::new();
    loop {
        let line = lines.next_line().await?.with_context(|| {
            format!(
                "latency watcher ended early, after {} rows",
                latencies.len()
            )
        })?;
        if line == "done" {
            return Ok(latencies);
        }
        let mut parts = line.split_whitespace();
        let parsed = parts
            .next()
            .and_then(|s| s.parse::<f64>().ok())
            .zip(parts.next().and_then(|s| s.parse::<f64>().ok()));
        let (sent, seen) = parsed.with_context(|| format!("latency watcher printed {line:?}"))?;
        latencies.push(seen - sent);
    }
}

/// p50/p95/p99/max of latencies in ms (nearest-rank).
#[derive(Clone, Copy, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct Percentiles {
    pub n: usize,
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
}

pub fn percentiles(values: &[f64]) -> Option<Percentiles> {
    if values.is_empty() {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let rank = |p: f64| v[((p * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1];
    Some(Percentiles {
        n: v.len(),
        p50: rank(0.50),
        p95: rank(0.95),
        p99: rank(0.99),
        max: v[v.len() - 1],
    })
}

/// `psql` next to the PostgreSQL server the harness runs.
pub fn psql_path() -> anyhow::Result<PathBuf> {
    zerostack_harness::paths::postgres_bin_dir()
        .map(|b| b.join("psql"))
        .context("no PostgreSQL under /usr/lib/postgresql")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_time_of_a_thread_that_has_exited_still_counts() {
        let before = cpu_secs(None).unwrap();
        std::thread::spawn(|| {
            let t = std::time::Instant::now();
            let mut x = 0u64;
            while t.elapsed() < Duration::from_millis(200) {
                x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(1));
            }
        })
        .join()
        .unwrap();
        let after = cpu_secs(None).unwrap();
        // The thread spun for 200 ms of wall time; on a loaded machine it may have had less
        // CPU than that, but far more than nothing.
        assert!(
            after - before >= 0.05,
            "the exited thread's CPU was lost: {before} s → {after} s"
        );
    }

    #[test]
    fn lexi_round_trip() {
        assert_eq!(lexi_to_u64("00").unwrap(), 0);
        assert_eq!(lexi_to_u64("0z").unwrap(), 35);
        assert_eq!(lexi_to_u64("110").unwrap(), 36);
        assert_eq!(lexi_to_u64("1rs").unwrap(), 1000);
        assert!(lexi_to_u64("1").is_err());
        let ts = lexi_to_timestamp("c3w5e11264sgsf").unwrap();
        assert_eq!((ts.time, ts.increment), (u32::MAX, u32::MAX));
    }

    #[test]
    fn percentiles_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        let p = percentiles(&v).unwrap();
        assert_eq!((p.p50, p.p95, p.p99, p.max), (50.0, 95.0, 99.0, 100.0));
        assert!(percentiles(&[]).is_none());
    }

    #[test]
    fn lag_buckets_give_upper_bound_percentiles() {
        let text = "# HELP x\nzerostack_source_commit_lag_seconds_bucket{le=\"0.001\"} 10\n\
                    zerostack_source_commit_lag_seconds_bucket{le=\"0.005\"} 60\n\
                    zerostack_source_commit_lag_seconds_bucket{le=\"+Inf\"} 110\n";
        let before = [(0.001, 10), (0.005, 10), (f64::INFINITY, 10)];
        let after = parse_lag_buckets(text);
        assert_eq!(after.len(), 3);
        let [p50, p95, p99] = bucket_percentiles(&before, &after).unwrap();
        assert_eq!((p50, p95), (5.0, f64::INFINITY));
        assert!(p99.is_infinite());
        assert!(bucket_percentiles(&after, &after).is_none());
    }

    #[test]
    fn cpu_ticks_skip_the_command_name() {
        let stat = "42 (a b) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 1 0";
        assert_eq!(parse_cpu_ticks(stat), Some(300));
        assert_eq!(parse_cpu_ticks("42 (x) S 1"), None);
    }

    #[test]
    fn vm_hwm_is_read_in_bytes() {
        let status = "Name:\tx\nVmPeak:\t  100 kB\nVmHWM:\t   2048 kB\nVmRSS:\t 1 kB\n";
        assert_eq!(parse_vm_hwm(status), Some(2048 * 1024));
        assert_eq!(parse_vm_hwm("Name: x\n"), None);
    }
}
