//! The measurements against zero-cache's own ceiling ([`super::ceiling`]) and the scaling
//! curves: initial sync by data size (our source, the ceiling and Postgres, each into a fresh
//! zero-cache), bursts by transaction size (ours and the ceiling), and source CPU per event by
//! the number of mapped collections and by document size (beside a bare driver loop reading
//! the same events). Each point starts its own source-server, so its peak RSS is its own.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio_tungstenite::tungstenite::Utf8Bytes;
use zerostack_harness::{ZeroCache, ZeroCacheOptions};

use super::ceiling::{CeilingSource, Snapshot, StreamConn, check_frames, insert_frame};
use super::probes::{
    CountWatch, CpuSample, SourceServer, acking_client, capture_snapshot, cpu_secs, initial_sync,
    lexi_to_timestamp, psql_path, read_raw_db_change_stream,
};
use super::sampler::{TreeSampler, TreeUsage};
use super::workload::{
    BODY_LEN, PG_TABLE_DDL, PsqlPipe, TABLE, body_len_for, mongo_doc_sized, mongo_insert_range,
    mongo_insert_sized, now_ms, sql_insert,
};
use super::{Ctx, say};

/// Captured source-server inserts compared byte for byte with the ceiling's.
const CHECKED_FRAMES: usize = 200;

/// Rows sent before each burst of the curve, on both paths, and not counted.
const WARM_UP_ROWS: u64 = 2000;

/// One initial sync into a fresh zero-cache.
#[derive(Clone, Copy, Debug, Default, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct SyncRun {
    /// zero-cache start → ready with every row.
    pub secs: f64,
    /// For the ceiling: zero-cache start → it connected, the stream itself, and its last frame
    /// → ready with every row.
    pub phases: Option<[f64; 3]>,
    /// zero-cache's process tree while it synced.
    pub zero_cache: TreeUsage,
    /// CPU seconds of the source while it served this sync (source-server's process, or the
    /// bench process for the ceiling; none for Postgres).
    pub source_cpu_secs: Option<f64>,
    /// CPU seconds mongod spent meanwhile (serving the `find`, on our path).
    pub mongod_cpu_secs: f64,
}

/// Every initial sync at one size.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct SyncPoint {
    pub docs: u64,
    pub ours: Vec<SyncRun>,
    pub ceiling: Vec<SyncRun>,
    pub pg: Vec<SyncRun>,
    /// source-server's snapshot read by a bare client (no zero-cache): seconds, and CPU.
    pub bare_client_secs: f64,
    pub bare_client_source_cpu_secs: f64,
    /// Bytes of the insert frames, source-server's and the ceiling's (equal by construction,
    /// checked on `CHECKED_FRAMES` frames; the totals differ only in `created_at` digits).
    pub ours_row_bytes: u64,
    pub ceiling_row_bytes: u64,
    /// The ceiling's send loop: time inside the socket calls (writing and waiting on
    /// zero-cache) out of its whole send, best run.
    pub ceiling_send_secs: f64,
    pub ceiling_in_socket_secs: f64,
    /// source-server's VmHWM after serving every sync at this size (a fresh process per size).
    pub source_peak_rss: u64,
}

fn best(runs: &[SyncRun]) -> Option<SyncRun> {
    runs.iter()
        .copied()
        .min_by(|a, b| a.secs.total_cmp(&b.secs))
}

impl SyncPoint {
    pub fn ours_best(&self) -> Option<SyncRun> {
        best(&self.ours)
    }
    pub fn ceiling_best(&self) -> Option<SyncRun> {
        best(&self.ceiling)
    }
    pub fn pg_best(&self) -> Option<SyncRun> {
        best(&self.pg)
    }
}

/// A burst of `rows` rows in transactions of `txn_rows`, ours and the ceiling's.
#[derive(Clone, Copy, Debug, Default, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct BurstPoint {
    pub txn_rows: u64,
    pub rows: u64,
    /// First write → the replica holds every row.
    pub ours_rows_per_s: f64,
    /// How fast MongoDB took the writes (nothing downstream can be faster).
    pub ours_written_rows_per_s: f64,
    /// Zero transactions source-server sent for the burst (from its metrics).
    pub ours_transactions: f64,
    pub ours_source_cpu_us_per_row: f64,
    pub ours_zero_cache: TreeUsage,
    pub ceiling_rows_per_s: f64,
    pub ceiling_transactions: u64,
    pub ceiling_zero_cache: TreeUsage,
    pub ceiling_in_socket_secs: f64,
    pub ceiling_send_secs: f64,
}

/// Source CPU per change event for one shape of the workload.
#[derive(Clone, Copy, Debug, Default, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct CpuPoint {
    pub collections: usize,
    /// BSON size of one document.
    pub doc_bytes: usize,
    pub events: u64,
    pub source_us_per_event: f64,
    /// A bare driver loop (the bench) reading the same events: the floor.
    pub raw_us_per_event: f64,
    pub source_rows_per_s: f64,
    pub raw_events_per_s: f64,
}

/// A ceiling source with a zero-cache synced from it (an empty table) and its resume
/// connection, ready for bursts.
pub struct CeilingStream {
    pub ceiling: CeilingSource,
    pub zc: ZeroCache,
    pub conn: StreamConn,
    /// Rows in the replica's table so far.
    pub rows: u64,
}

impl Ctx<'_> {
    /// A snapshot for the ceiling shaped like source-server's: its tables verbatim from a
    /// capture, and `docs` rows of the bench's documents.
    fn ceiling_snapshot(
        &self,
        captured_other: &[String],
        docs: u64,
        created_ms: i64,
    ) -> anyhow::Result<Snapshot> {
        let n = captured_other.len();
        if n < 2
            || !captured_other[0].starts_with("[\"begin\"")
            || !captured_other[n - 1].starts_with("[\"commit\"")
        {
            bail!("the captured snapshot is not one begin … commit transaction");
        }
        Ok(Snapshot {
            ddl: captured_other[1..n - 1]
                .iter()
                .map(|s| Utf8Bytes::from(s.as_str()))
                .collect(),
            rows: (0..docs)
                .map(|i| Utf8Bytes::from(insert_frame(i, BODY_LEN, created_ms)))
                .collect(),
        })
    }

    /// Initial sync of `docs` documents: source-server read by a bare client, then `rounds`
    /// rounds of a fresh zero-cache from source-server, from the ceiling and (with `pg`) from
    /// Postgres, alternating so that no path always pays for cold caches.
    pub async fn sync_point(
        &self,
        docs: u64,
        rounds: usize,
        pg: bool,
    ) -> anyhow::Result<SyncPoint> {
        let db = format!("bench_sync_{docs}");
        let coll = self.collection(&db).await?;
        say(format!("writing {docs} documents"));
        mongo_insert_range(&coll, 0, docs, 1000).await?;
        let pg_db = format!("bench_pg_sync_{docs}");
        if pg {
            say(format!("writing {docs} Postgres rows"));
            self.pg.create_db(&pg_db).await?;
            self.pg.psql(&pg_db, PG_TABLE_DDL).await?;
            let mut pipe = PsqlPipe::open(&psql_path()?, &self.pg.url(&pg_db))?;
            for i in (0..docs).step_by(1000) {
                pipe.send(&sql_insert(i, (i + 1000).min(docs), None))
                    .await?;
            }
            pipe.finish().await?;
        }
        let source = self.source(&format!("source-sync-{docs}"), &db).await?;
        let src_pid = source.process.pid();

        let cpu0 = cpu_secs(Some(src_pid))?;
        let cap = capture_snapshot(&source.ws_url(), CHECKED_FRAMES).await?;
        let bare_cpu = cpu_secs(Some(src_pid))? - cpu0;
        if cap.row_count != docs {
            bail!(
                "source-server's snapshot held {} rows of {TABLE}, expected {docs}",
                cap.row_count
            );
        }
        let checked = check_frames(&cap.rows, BODY_LEN)?;
        say(format!(
            "source-server → bare client, snapshot of {docs}: {:.2} s ({:.0} rows/s), {:.0} bytes/row, source CPU {:.1} µs/row; the ceiling's frames equal the source's ({checked} compared)",
            cap.secs,
            docs as f64 / cap.secs,
            cap.row_bytes as f64 / docs as f64,
            bare_cpu * 1e6 / docs as f64
        ));
        let created = cap
            .rows
            .first()
            .and_then(|f| serde_json::from_str::<serde_json::Value>(f).ok())
            .and_then(|v| v[1]["new"]["created_at"].as_i64())
            .context("no captured row to take created_at from")?;
        let snapshot = Arc::new(self.ceiling_snapshot(&cap.other, docs, created)?);
        let ceiling_row_bytes: u64 = snapshot.rows.iter().map(|r| r.len() as u64).sum();
        let ceiling = CeilingSource::start().await?;
        ceiling.set_snapshot(snapshot);

        let mut point = SyncPoint {
            docs,
            bare_client_secs: cap.secs,
            bare_client_source_cpu_secs: bare_cpu,
            ours_row_bytes: cap.row_bytes,
            ceiling_row_bytes,
            ..Default::default()
        };
        for round in 0..rounds {
            for path in ["mongo", "ceiling", "pg"] {
                if path == "pg" && !pg {
                    continue;
                }
                let upstream = match path {
                    "mongo" => source.ws_url(),
                    "ceiling" => ceiling.ws_url(),
                    _ => self.pg.url(&pg_db),
                };
                let mut opts = self
                    .zero_cache_options(&format!("s{docs}_{path}{round}"), upstream)
                    .await?;
                if path == "pg" {
                    opts.extra_env
                        .push(("ZERO_UPSTREAM_TYPE".into(), "pg".into()));
                }
                let dir = self
                    .state
                    .service(&format!("zero-cache-sync-{docs}-{path}-{round}"))?;
                let cpu_before = match path {
                    "mongo" => Some(cpu_secs(Some(src_pid))?),
                    "ceiling" => Some(cpu_secs(None)?),
                    _ => None,
                };
                let mongod0 = cpu_secs(Some(self.mongo.pid()))?;
                let (secs, zero_cache, t0) = timed_initial_sync(dir, opts, docs).await?;
                let mongod_cpu_secs = cpu_secs(Some(self.mongo.pid()))? - mongod0;
                let source_cpu_secs = match (path, cpu_before) {
                    ("mongo", Some(c)) => Some(cpu_secs(Some(src_pid))? - c),
                    ("ceiling", Some(c)) => Some(cpu_secs(None)? - c),
                    _ => None,
                };
                let mut run = SyncRun {
                    secs,
                    zero_cache,
                    source_cpu_secs,
                    mongod_cpu_secs,
                    phases: None,
                };
                if path == "mongo" {
                    // source-server's log says when it started and committed this snapshot.
                    let log = [source.process.stdout_log(), source.process.stderr_log()]
                        .iter()
                        .filter_map(|p| std::fs::read_to_string(p).ok())
                        .collect::<Vec<_>>()
                        .join("\n");
                    let at = |what: &str| {
                        log.lines()
                            .rev()
                            .filter(|l| l.contains(what))
                            .filter_map(log_time_ms)
                            .find(|&ms| ms >= t0)
                    };
                    if let (Some(started), Some(committed)) =
                        (at("initial sync started"), at("initial sync committed"))
                    {
                        run.phases = Some([
                            (started - t0) / 1000.0,
                            (committed - started) / 1000.0,
                            (t0 + secs * 1000.0 - committed) / 1000.0,
                        ]);
                    }
                }
                if let Some([a, b, c]) = run.phases.filter(|_| path == "mongo") {
                    say(format!(
                        "zero-cache from source-server: start-up {a:.2} s, stream {b:.2} s, commit → ready {c:.2} s"
                    ));
                }
                say(format!(
                    "initial sync of {docs} from {path}, round {}: {secs:.2} s ({:.0} rows/s); zero-cache CPU {:.1} s, peak RSS {:.0} MB; mongod CPU {mongod_cpu_secs:.2} s; source CPU {}",
                    round + 1,
                    docs as f64 / secs,
                    zero_cache.cpu_secs,
                    zero_cache.peak_rss as f64 / 1_048_576.0,
                    source_cpu_secs.map_or("n/a".into(), |c| format!("{c:.2} s"))
                ));
                match path {
                    "mongo" => point.ours.push(run),
                    "ceiling" => {
                        let sent = ceiling.last_snapshot().unwrap_or_default();
                        let end = t0 + secs * 1000.0;
                        run.phases = Some([
                            (sent.connected_ms - t0) / 1000.0,
                            (sent.done_ms - sent.connected_ms) / 1000.0,
                            (end - sent.done_ms) / 1000.0,
                        ]);
                        if point.ceiling_best().is_none_or(|b| secs < b.secs) {
                            point.ceiling_send_secs = sent.secs;
                            point.ceiling_in_socket_secs = sent.in_socket_secs;
                        }
                        say(format!(
                            "the ceiling sent {} frames ({:.1} MB) in {:.2} s, {:.2} s of it inside the socket calls; zero-cache: start-up {:.2} s, stream {:.2} s, commit → ready {:.2} s",
                            sent.frames,
                            sent.bytes as f64 / 1_048_576.0,
                            sent.secs,
                            sent.in_socket_secs,
                            run.phases.map_or(0.0, |p| p[0]),
                            run.phases.map_or(0.0, |p| p[1]),
                            run.phases.map_or(0.0, |p| p[2]),
                        ));
                        point.ceiling.push(run);
                    }
                    _ => point.pg.push(run),
                }
            }
        }
        point.source_peak_rss = source.peak_rss()?;
        say(format!(
            "source-server peak RSS after the syncs of {docs}: {:.1} MB",
            point.source_peak_rss as f64 / 1_048_576.0
        ));
        // The documents are no longer needed; the next size must not pay for them.
        let _ = self.mongo.client().await?.database(&db).drop().await;
        if pg {
            let _ = self
                .pg
                .psql("postgres", &format!("DROP DATABASE {pg_db}"))
                .await;
        }
        Ok(point)
    }

    /// A ceiling source and a zero-cache initially synced from it (no rows), on its resume
    /// connection.
    pub async fn ceiling_stream(&self, tag: &str) -> anyhow::Result<CeilingStream> {
        // The tables come from source-server's own (empty) snapshot.
        let db = format!("bench_ceiling_{tag}");
        self.collection(&db).await?;
        let source = self.source(&format!("source-ceiling-{tag}"), &db).await?;
        let cap = capture_snapshot(&source.ws_url(), 0).await?;
        drop(source);
        let mut ceiling = CeilingSource::start().await?;
        ceiling.set_snapshot(Arc::new(self.ceiling_snapshot(&cap.other, 0, 0)?));
        let opts = self
            .zero_cache_options(&format!("c_{tag}"), ceiling.ws_url())
            .await?;
        let zc = ZeroCache::start_in(
            self.state.service(&format!("zero-cache-ceiling-{tag}"))?,
            opts,
        )
        .await?;
        let conn = ceiling.next_stream(Duration::from_secs(60)).await?;
        Ok(CeilingStream {
            ceiling,
            zc,
            conn,
            rows: 0,
        })
    }

    /// The ceiling's burst of `rows` rows in `txn_rows`-row transactions into its replica.
    pub async fn ceiling_burst(
        &self,
        cs: &mut CeilingStream,
        rows: u64,
        txn_rows: u64,
    ) -> anyhow::Result<(f64, TreeUsage, super::ceiling::SendStats)> {
        let from = cs.rows;
        let watch = CountWatch::start(&cs.zc.replica_file(), TABLE, from + rows)?;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let sampler = TreeSampler::start(cs.zc.pid());
        let t0 = now_ms();
        let sent = cs
            .ceiling
            .burst(&mut cs.conn, from, from + rows, txn_rows, BODY_LEN)
            .await?;
        let at = watch.wait(Duration::from_secs(600)).await?;
        let usage = sampler.finish();
        cs.rows += rows;
        say(format!(
            "ceiling: {} commit acks from zero-cache so far on its stream",
            cs.conn.acks.load(std::sync::atomic::Ordering::Relaxed)
        ));
        Ok((rows as f64 / ((at - t0) / 1000.0), usage, sent))
    }

    /// Burst throughput at one transaction size: source-server (its coalescing capped at
    /// `txn_rows` rows, the writes `insert_many` so that every document is its own MongoDB
    /// group) into a fresh zero-cache, then the ceiling sending `txn_rows`-row transactions.
    pub async fn burst_point(
        &self,
        cs: &mut CeilingStream,
        txn_rows: u64,
        rows: u64,
    ) -> anyhow::Result<BurstPoint> {
        let db = format!("bench_burst_{txn_rows}");
        let coll = self.collection(&db).await?;
        let mut env = self.source_env.to_vec();
        env.push(("MAX_ROWS_PER_TRANSACTION".into(), txn_rows.to_string()));
        let source = SourceServer::start(
            self.source_bin,
            &self.state.service(&format!("source-burst-{txn_rows}"))?,
            &self.mongo.uri(),
            &db,
            &env,
        )
        .await?;
        let opts = self
            .zero_cache_options(&format!("b{txn_rows}"), source.ws_url())
            .await?;
        let mut zc = ZeroCache::start_in(
            self.state
                .service(&format!("zero-cache-burst-{txn_rows}"))?,
            opts,
        )
        .await?;
        // Warm-up (zero-cache's JIT and caches), so that the burst meets a zero-cache in the
        // same state as the ceiling's long-running one; its rows come after the burst's ids.
        let warm = WARM_UP_ROWS.min(rows);
        let watch = CountWatch::start(&zc.replica_file(), TABLE, warm)?;
        mongo_insert_range(&coll, rows, rows + warm, 1000.min(warm)).await?;
        watch.wait(Duration::from_secs(300)).await?;
        let watch = CountWatch::start(&zc.replica_file(), TABLE, warm + rows)?;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let txns0 = source.counter("zerostack_source_transactions_sent").await?;
        let cpu0 = cpu_secs(Some(source.process.pid()))?;
        let sampler = TreeSampler::start(zc.pid());
        let t0 = now_ms();
        mongo_insert_range(&coll, 0, rows, 1000.min(rows)).await?;
        let written = rows as f64 / ((now_ms() - t0) / 1000.0);
        let at = watch.wait(Duration::from_secs(600)).await?;
        let ours_zero_cache = sampler.finish();
        let ours = rows as f64 / ((at - t0) / 1000.0);
        let cpu = cpu_secs(Some(source.process.pid()))? - cpu0;
        let txns = source.counter("zerostack_source_transactions_sent").await? - txns0;
        zc.stop().await?;
        drop(source);
        let _ = self.mongo.client().await?.database(&db).drop().await;

        self.ceiling_burst(cs, WARM_UP_ROWS.min(rows), txn_rows)
            .await?;
        let (ceiling, ceiling_zero_cache, sent) = self.ceiling_burst(cs, rows, txn_rows).await?;
        let p = BurstPoint {
            txn_rows,
            rows,
            ours_rows_per_s: ours,
            ours_written_rows_per_s: written,
            ours_transactions: txns,
            ours_source_cpu_us_per_row: cpu * 1e6 / rows as f64,
            ours_zero_cache,
            ceiling_rows_per_s: ceiling,
            ceiling_transactions: rows.div_ceil(txn_rows),
            ceiling_zero_cache,
            ceiling_in_socket_secs: sent.in_socket_secs,
            ceiling_send_secs: sent.secs,
        };
        say(format!(
            "burst of {rows} at ≤ {txn_rows} rows/txn: ours {ours:.0} rows/s ({txns:.0} txns, written at {written:.0} rows/s, source CPU {:.1} µs/row, zero-cache CPU {:.1} s), ceiling {ceiling:.0} rows/s ({} txns, zero-cache CPU {:.1} s, {:.2} of {:.2} s in socket calls): {:.2}×",
            p.ours_source_cpu_us_per_row,
            ours_zero_cache.cpu_secs,
            p.ceiling_transactions,
            ceiling_zero_cache.cpu_secs,
            sent.in_socket_secs,
            sent.secs,
            ours / ceiling
        ));
        Ok(p)
    }

    /// Source CPU per event with `collections` mapped collections and documents of about
    /// `doc_bytes`: `events` inserts written first (spread over the collections in batches),
    /// then read by a client acking every commit, then by a bare driver loop.
    pub async fn cpu_point(
        &self,
        collections: usize,
        doc_bytes: usize,
        events: u64,
    ) -> anyhow::Result<CpuPoint> {
        let db_name = format!("bench_cpu_{collections}_{doc_bytes}");
        let names: Vec<String> = (0..collections).map(|i| format!("c{i:03}")).collect();
        let client = self.mongo.client().await?;
        let db = client.database(&db_name);
        for n in &names {
            db.create_collection(n)
                .await
                .with_context(|| format!("creating {db_name}.{n}"))?;
        }
        let source = SourceServer::start_with_tables(
            self.source_bin,
            &self
                .state
                .service(&format!("source-cpu-{collections}-{doc_bytes}"))?,
            &self.mongo.uri(),
            &db_name,
            self.source_env,
            &names,
        )
        .await?;
        let w0 = initial_sync(&source.ws_url()).await?;
        let start = lexi_to_timestamp(&w0)?;
        let text_len = body_len_for(doc_bytes);
        let actual = mongo_doc_sized(0, text_len, None).to_vec()?.len();
        // Round-robin batches, so consecutive events come from different collections.
        let batch = (events / collections as u64).clamp(1, 100);
        let mut i = 0u64;
        let mut k = 0usize;
        while i < events {
            let end = (i + batch).min(events);
            mongo_insert_sized(
                &db.collection(&names[k % collections]),
                i,
                end,
                batch,
                text_len,
            )
            .await?;
            i = end;
            k += 1;
        }
        let src = source.process.pid();
        let c0 = CpuSample::take(self.mongo.pid(), src)?;
        let t = Instant::now();
        let run = acking_client(&source.ws_url(), &w0, &w0, events, None).await?;
        let source_secs = t.elapsed().as_secs_f64();
        let c1 = CpuSample::take(self.mongo.pid(), src)?;
        let raw = read_raw_db_change_stream(&db, start, events).await?;
        let c2 = CpuSample::take(self.mongo.pid(), src)?;
        if run.rows < events {
            bail!("the acking client got {} rows, expected {events}", run.rows);
        }
        let _ = db.drop().await;
        let p = CpuPoint {
            collections,
            doc_bytes: actual,
            events,
            source_us_per_event: (c1.source - c0.source) * 1e6 / events as f64,
            raw_us_per_event: (c2.bench - c1.bench) * 1e6 / events as f64,
            source_rows_per_s: events as f64 / source_secs,
            raw_events_per_s: events as f64 / raw.as_secs_f64(),
        };
        say(format!(
            "{collections} collection(s), {actual}-byte documents, {events} events: source-server {:.1} µs/event ({:.0} rows/s), bare driver loop {:.1} µs/event ({:.0} events/s)",
            p.source_us_per_event, p.source_rows_per_s, p.raw_us_per_event, p.raw_events_per_s
        ));
        Ok(p)
    }
}

/// The epoch ms of a tracing log line (`2026-12-01T12:02:27.782987Z ...`, ANSI colours
/// allowed).
pub fn log_time_ms(line: &str) -> Option<f64> {
    // Drop ANSI colour sequences (ESC [ ... m) first: they hold digits too.
    let mut plain = String::with_capacity(line.len());
    let mut in_escape = false;
    for c in line.chars() {
        match (in_escape, c) {
            (false, '\u{1b}') => in_escape = true,
            (true, 'm') => in_escape = false,
            (true, _) => {}
            (false, c) => plain.push(c),
        }
    }
    let start = plain.find(|c: char| c.is_ascii_digit())?;
    let stamp = plain[start..]
        .split(|c: char| c == 'Z' || c.is_whitespace())
        .next()?;
    let (date, time) = stamp.split_once('T')?;
    let mut d = date.split('-').map(|x| x.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let mut t = time.split(':');
    let (hh, mm): (i64, i64) = (t.next()?.parse().ok()?, t.next()?.parse().ok()?);
    let ss: f64 = t.next()?.parse().ok()?;
    let days = days_from_civil(y, m, day);
    Some(((days * 86_400 + hh * 3600 + mm * 60) as f64 + ss) * 1000.0)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's method).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Seconds from zero-cache's start until it is ready and its replica holds all `n` rows, what
/// its process tree used meanwhile, and its start (epoch ms).
pub async fn timed_initial_sync(
    dir: std::path::PathBuf,
    opts: ZeroCacheOptions,
    n: u64,
) -> anyhow::Result<(f64, TreeUsage, f64)> {
    let replica = dir.join("zero.db");
    let t0 = now_ms();
    let mut zc = ZeroCache::spawn_in(&dir, opts)?;
    let sampler = TreeSampler::start(zc.pid());
    let watch = CountWatch::start(&replica, TABLE, n)?;
    zc.wait_ready().await?;
    let ready = now_ms();
    let all_rows = watch.wait(Duration::from_secs(900)).await?;
    let usage = sampler.finish();
    let secs = (ready.max(all_rows) - t0) / 1000.0;
    zc.stop().await?;
    Ok((secs, usage, t0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_lines_give_their_time() {
        let line = "\u{1b}[2m2026-12-01T12:02:27.782987Z\u{1b}[0m \u{1b}[32m INFO\u{1b}[0m initial sync started";
        let ms = log_time_ms(line).unwrap();
        assert!((ms - 1_796_126_547_782.987).abs() < 0.01, "{ms}");
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2024, 2, 29), 19_782);
        assert!(log_time_ms("no time here").is_none());
    }
}
