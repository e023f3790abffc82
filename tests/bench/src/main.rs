//! `bench`: ZeroStack's benchmarks (`tests/bench.sh`; on demand, not in CI). Starts the real
//! services through the harness (MongoDB replica set, PostgreSQL with `wal_level=logical`,
//! zero-cache 1.9.0, the release source-server), measures each figure beside its ceiling or bar
//! in the same run, and prints and saves one table (`tests/artifacts/bench-<time>.md`/`.json`).
//!
//! 1. raw change-stream read rate (a bare driver loop): the ceiling for 2;
//! 2. source-server → a client that acks every commit;
//! 3. MongoDB → zero-cache's replica, burst; 4. the same through zero-cache's native Postgres
//!    path (the bar for 3);
//! 5. commit → replica latency at steady rates, both paths measured the same way;
//! 6. initial sync into zero-cache, both paths; 7. source-server peak RSS.
//!
//! Row 3p sets a pipeline mapping (`$unwind` of a 10-element array) beside the plain mapping,
//! both bursting into zero-cache's replica in the same run (`pipeline`).
//!
//! zero-cache's own ceiling for a custom source (`ceiling`: a source with no database) stands
//! beside the burst (3) and the initial sync (6); with `--curves` the same measures are taken
//! across sizes (`scaling`) and drawn as SVG plots (`plot`) next to the report.
//!
//! Fan-out (`--only fanout`, not in the default run): K Zero clients on one query, write →
//! all-clients-see latency, on one and on two view-syncers (`fanout`).
//!
//! A phase that fails is reported as such and the others still run.

mod ceiling;
mod fanout;
mod pinning;
mod pipeline;
mod plot;
mod probes;
mod report;
mod sampler;
mod scaling;
mod tokens;
mod workload;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bson::Document;
use clap::Parser;
use probes::{
    CountWatch, CpuSample, LatencyWatch, RawLatency, SourceServer, acking_client, initial_sync,
    latency_client, lexi_to_timestamp, percentiles, psql_path, read_raw_change_stream,
};
use report::{Latency, Results, SourceLatency};
use workload::{PG_TABLE_DDL, PsqlPipe, TABLE, mongo_doc, mongo_insert_range, now_ms, sql_insert};
use zerostack_harness::{Mongo, Postgres, StateDir, ZeroCache, ZeroCacheOptions, repo_root};

#[derive(Parser, Debug)]
#[command(
    name = "bench",
    about = "ZeroStack benchmarks: each figure beside its ceiling, measured in the same run"
)]
struct Args {
    /// Rows per burst (measurements 1-4).
    #[arg(long, default_value_t = 100_000)]
    rows: u64,
    /// Rows per insert_many / multi-row INSERT in the bursts.
    #[arg(long, default_value_t = 1000)]
    batch: u64,
    /// Documents for the initial-sync measurement (6).
    #[arg(long, default_value_t = 200_000)]
    sync_rows: u64,
    /// Seconds of steady writes per rate (5).
    #[arg(long, default_value_t = 20)]
    latency_secs: u32,
    /// Steady write rates for the latency runs, writes/s.
    #[arg(long, value_delimiter = ',', default_values_t = [500u32, 100])]
    rates: Vec<u32>,
    /// A fast smoke run (about a minute or two): 10k rows, 20k sync rows, 5 s per rate.
    #[arg(long)]
    quick: bool,
    /// The source-server binary (default: target/release/source-server).
    #[arg(long)]
    source_bin: Option<PathBuf>,
    /// Extra source-server environment, e.g. `MAX_ROWS_PER_TRANSACTION=5000` (repeatable).
    #[arg(long = "source-env", value_name = "KEY=VALUE")]
    source_env: Vec<String>,
    /// Where the report goes (default: tests/artifacts).
    #[arg(long)]
    out_dir: Option<PathBuf>,
    /// Keep the state folder (data, logs) instead of removing it.
    #[arg(long)]
    keep: bool,
    /// Run only these phases (default: all, and curves with --curves): stream (1+2, and the
    /// source's own latency), zero (3+5), pipeline (3p: a pipeline mapping's burst beside the
    /// plain mapping's), pg (4+5), sync (6), curves (the scaling curves), tokens (which
    /// change-stream replies end a group, on real MongoDB), schema (a new optional column applied
    /// in place beside a full resync, --sync-rows documents; the `schema_change` binary), fanout
    /// (K Zero clients on one query; only when asked for).
    #[arg(long, value_delimiter = ',', value_enum)]
    only: Vec<Phase>,
    /// Fan-out: numbers of Zero clients, tried in order while the machine holds them.
    #[arg(long, value_delimiter = ',', default_values_t = [50usize, 200, 1000])]
    fanout_clients: Vec<usize>,
    /// Fan-out: steady write rate, writes/s.
    #[arg(long, default_value_t = 20)]
    fanout_rate: u32,
    /// Fan-out: seconds of steady writes per point.
    #[arg(long, default_value_t = 20)]
    fanout_secs: u32,
    /// Fan-out: Zero clients per Node process.
    #[arg(long, default_value_t = 500)]
    fanout_per_process: usize,
    /// Also measure the scaling curves (initial sync by size, burst by transaction size, source
    /// CPU per event by collections and by document size) and draw them as SVG plots.
    #[arg(long)]
    curves: bool,
    /// Documents per initial-sync point of the curves (--quick divides them by 50).
    #[arg(long, value_delimiter = ',', default_values_t = [10_000u64, 100_000, 1_000_000])]
    sync_sizes: Vec<u64>,
    /// Rows per transaction of the burst curve.
    #[arg(long, value_delimiter = ',', default_values_t = [1u64, 10, 100, 1000, 2000])]
    txn_sizes: Vec<u64>,
    /// Mapped collections of the CPU-per-event curve.
    #[arg(long, value_delimiter = ',', default_values_t = [1usize, 10, 100])]
    collection_counts: Vec<usize>,
    /// Document sizes (bytes) of the CPU-per-event curve.
    #[arg(long, value_delimiter = ',', default_values_t = [200usize, 2048, 20_480])]
    doc_sizes: Vec<usize>,
    /// Which parts of the curves to measure (default: all).
    #[arg(long, value_delimiter = ',', value_enum)]
    curve_parts: Vec<CurvePart>,
    /// Burst curve: a fresh zero-cache for the ceiling at every transaction size, as
    /// source-server gets (default: one long-running zero-cache for all of the ceiling's points).
    #[arg(long)]
    fresh_ceiling: bool,
    /// Measure nothing: render the Markdown report and the plots again from a saved
    /// bench-<time>.json (written next to it, and to <out-dir>/latest/ with --latest).
    #[arg(long, value_name = "JSON")]
    replot: Option<PathBuf>,
    /// Also write the report and plots under stable names to <out-dir>/latest/ (what the
    /// README shows).
    #[arg(long)]
    latest: bool,
    /// Runs per path of the burst against the ceiling (3c) and of the initial sync (6),
    /// alternating between the paths; each reports its best
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=20))]
    rounds: u32,
    /// Pin zero-cache and PostgreSQL to CPU 0 and everything upstream of zero-cache (mongod,
    /// source-server, the ceiling, this process) to CPU 1, so that every path gives zero-cache
    /// the same core (needs 2 CPUs; the schema and fanout phases start services of their own,
    /// so the default run leaves schema out and --only refuses both). The Postgres path's
    /// figures are not comparable under it: PostgreSQL is that path's upstream and shares
    /// zero-cache's core
    #[arg(long)]
    pin: bool,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum CurvePart {
    Sync,
    Burst,
    Cpu,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Stream,
    Zero,
    Pipeline,
    Pg,
    Sync,
    Curves,
    Tokens,
    Schema,
    Fanout,
}

#[tokio::main]
async fn main() {
    if let Err(e) = run().await {
        eprintln!("bench: error: {e:#}");
        std::process::exit(1);
    }
}

fn say(msg: impl AsRef<str>) {
    eprintln!("[bench] {}", msg.as_ref());
}

async fn run() -> anyhow::Result<()> {
    let mut args = Args::parse();
    if let Some(json) = &args.replot {
        return replot(json, args.latest, args.out_dir.as_deref());
    }
    if args.quick {
        args.rows = args.rows.min(10_000);
        args.sync_rows = args.sync_rows.min(20_000);
        args.latency_secs = args.latency_secs.min(5);
        for s in &mut args.sync_sizes {
            *s = (*s / 50).max(1);
        }
    }
    if args.rows == 0 || args.batch == 0 || args.sync_rows == 0 {
        bail!("--rows, --batch and --sync-rows must be at least 1");
    }
    if args.sync_sizes.contains(&0)
        || args.txn_sizes.contains(&0)
        || args.collection_counts.iter().any(|&c| c == 0 || c > 1000)
        || args
            .doc_sizes
            .iter()
            .any(|&b| !(150..=1_000_000).contains(&b))
    {
        bail!(
            "--sync-sizes and --txn-sizes must be at least 1, --collection-counts 1 to 1000, --doc-sizes 150 to 1000000 bytes"
        );
    }
    if args.rates.iter().any(|&r| r == 0 || r > 5000) {
        bail!("--rates: each rate must be between 1 and 5000 writes/s");
    }
    let source_env = args
        .source_env
        .iter()
        .map(|kv| {
            kv.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .with_context(|| format!("--source-env {kv:?}: expected KEY=VALUE"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let root = repo_root();
    let source_bin = args
        .source_bin
        .clone()
        .unwrap_or_else(|| root.join("target/release/source-server"));
    if !source_bin.exists() {
        bail!(
            "source-server binary {} does not exist: build it with `cargo build --release -p source-server` (or pass --source-bin)",
            source_bin.display()
        );
    }
    let out_dir = args
        .out_dir
        .clone()
        .unwrap_or_else(|| root.join("tests/artifacts"));

    let mut results = Results {
        command: command_line(),
        started_utc: utc_stamp(true),
        machine: machine(),
        rows: args.rows,
        batch: args.batch,
        sync_rows: args.sync_rows,
        latency_secs: args.latency_secs,
        ..Default::default()
    };
    let state = StateDir::temp()?;
    say(format!("state in {}", state.path().display()));
    let started = Instant::now();

    if args.pin {
        // Those two start their own services outside this process's pins.
        if args
            .only
            .iter()
            .any(|p| matches!(p, Phase::Schema | Phase::Fanout))
        {
            bail!("--pin: the schema and fanout phases cannot be pinned; run them without --pin");
        }
        pinning::check_machine()?;
        pinning::pin_self(pinning::UPSTREAM_CPUS)?;
        say(format!(
            "--pin: zero-cache and PostgreSQL on CPU {}, the upstream (mongod, source-server, the ceiling, the bench) on CPU {}",
            pinning::ZERO_CACHE_CPUS,
            pinning::UPSTREAM_CPUS
        ));
    }
    let (mongo, pg) = tokio::join!(
        Mongo::start_in(state.service("mongo")?),
        Postgres::start_in_with_args(state.service("postgres")?, &["-c", "wal_level=logical"])
    );
    let mongo = mongo.context("starting MongoDB")?;
    let pg = pg.context("starting PostgreSQL")?;
    if args.pin {
        // Its backends fork from the postmaster, so they start on zero-cache's core too.
        pinning::pin_tree(pg.pid(), pinning::ZERO_CACHE_CPUS)?;
    }
    let ctx = Ctx {
        args: &args,
        state: &state,
        mongo: &mongo,
        pg: &pg,
        source_bin: &source_bin,
        source_env: &source_env,
    };

    let mut rss_streaming: Vec<u64> = Vec::new();
    let wanted = |p: Phase| {
        if args.only.is_empty() {
            (p != Phase::Curves || args.curves)
                && p != Phase::Fanout
                && !(args.pin && p == Phase::Schema)
        } else {
            args.only.contains(&p)
        }
    };
    macro_rules! phase {
        ($which:expr, $name:expr, $fut:expr) => {{
            if !wanted($which) {
                None
            } else {
                say(format!("--- {} ---", $name));
                let t = Instant::now();
                match $fut.await {
                    Ok(v) => {
                        say(format!(
                            "{} done in {:.1} s",
                            $name,
                            t.elapsed().as_secs_f64()
                        ));
                        Some(v)
                    }
                    Err(e) => {
                        say(format!("{} FAILED: {e:#}", $name));
                        results.errors.push(format!("{}: {e:#}", $name));
                        None
                    }
                }
            }
        }};
    }

    if let Some(s) = phase!(
        Phase::Stream,
        "1+2 change stream → source-server → acking client",
        ctx.stream_to_client()
    ) {
        results.raw_events_per_s = s.raw.iter().copied().reduce(f64::max);
        results.raw_reads_events_per_s = s.raw;
        results.source_rows_per_s = Some(s.replay);
        results.source_transactions = Some(s.replay_transactions);
        results.live_write_rows_per_s = Some(s.write_rate);
        results.live_rows_per_s = Some(s.live_rate);
        results.live_transactions = Some(s.live_transactions);
        results.source_latency = s.latency;
        rss_streaming.push(s.rss);
    }
    if let Some(z) = phase!(
        Phase::Zero,
        "3+5 MongoDB → source-server → zero-cache (and the ceiling's burst)",
        ctx.mongo_to_zero_cache()
    ) {
        results.mongo_burst_rows_per_s = Some(z.burst);
        results.mongo_burst_transactions = Some(z.transactions);
        results.ceiling_burst_rows_per_s = z.ceiling_burst;
        results.mongo_burst_runs = z.burst_runs;
        results.ceiling_burst_runs = z.ceiling_burst_runs;
        results.ceiling_burst_with_upstream_load = z.control.map(|c| c.0);
        results.ceiling_burst_warm = z.control.map(|c| c.1);
        rss_streaming.push(z.rss);
        for (rate, p, raw, lag) in z.latency {
            results.latency.push(Latency {
                rate,
                mongo: p,
                raw,
                pg: None,
                source_lag_buckets: lag,
            });
        }
    }
    if let Some(p) = phase!(
        Phase::Pipeline,
        "3p pipeline mapping ($unwind of 10) beside the plain mapping, bursts into zero-cache",
        ctx.pipeline_vs_plain()
    ) {
        results.pipeline = Some(p);
    }
    if let Some((burst, lat)) = phase!(
        Phase::Pg,
        "4+5 Postgres → zero-cache (native)",
        ctx.pg_to_zero_cache()
    ) {
        results.pg_burst_rows_per_s = Some(burst);
        for (rate, p) in lat {
            match results.latency.iter_mut().find(|l| l.rate == rate) {
                Some(l) => l.pg = p,
                None => results.latency.push(Latency {
                    rate,
                    pg: p,
                    ..Default::default()
                }),
            }
        }
    }
    if let Some(sync) = phase!(
        Phase::Sync,
        "6 initial sync: source-server, the ceiling and Postgres, alternating",
        ctx.sync_point(args.sync_rows, args.rounds as usize, true)
    ) {
        results.mongo_sync_secs = sync.ours_best().map(|r| r.secs);
        results.ceiling_sync_secs = sync.ceiling_best().map(|r| r.secs);
        results.pg_sync_secs = sync.pg_best().map(|r| r.secs);
        results.mongo_sync_runs = sync.ours.iter().map(|r| r.secs).collect();
        results.pg_sync_runs = sync.pg.iter().map(|r| r.secs).collect();
        results.source_peak_rss_sync = Some(sync.source_peak_rss);
        results.sync = Some(sync);
    }
    if let Some(t) = phase!(
        Phase::Tokens,
        "tokens: post-batch resume tokens of change-stream replies",
        async { tokens::experiment(&mongo.client().await?).await }
    ) {
        say(format!("post-batch tokens: {t:?}"));
        results.tokens = Some(t);
    }
    phase!(
        Phase::Schema,
        "schema: a new optional column in place beside a full resync",
        schema_change(args.sync_rows, &source_bin)
    );
    if let Some(curves) = phase!(Phase::Curves, "curves", ctx.curves()) {
        results.curves = Some(curves);
    }
    let fanout = fanout::Options {
        clients: args.fanout_clients.clone(),
        rate: args.fanout_rate,
        secs: args.fanout_secs,
        per_process: args.fanout_per_process,
    };
    phase!(
        Phase::Fanout,
        "fan-out: K Zero clients on one query, 1 and 2 view-syncers",
        ctx.fanout(&fanout, &out_dir)
    );
    results.source_peak_rss_streaming = rss_streaming.into_iter().max();

    drop(mongo);
    drop(pg);
    say(format!(
        "all phases done in {:.0} s",
        started.elapsed().as_secs_f64()
    ));
    let md = report::markdown(&results);
    println!("\n{md}");
    std::fs::create_dir_all(&out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    let stamp = utc_stamp(false);
    let md_path = out_dir.join(format!("bench-{stamp}.md"));
    let json_path = out_dir.join(format!("bench-{stamp}.json"));
    let json = serde_json::to_string_pretty(&results)?;
    std::fs::write(&md_path, &md)?;
    std::fs::write(&json_path, &json)?;
    say(format!(
        "saved {} and {}",
        md_path.display(),
        json_path.display()
    ));
    let plots = report::plots(&results);
    for (name, svg) in &plots {
        let path = out_dir.join(format!("bench-{stamp}-{name}.svg"));
        std::fs::write(&path, svg)?;
        say(format!("saved {}", path.display()));
    }
    if args.latest {
        let latest = out_dir.join("latest");
        std::fs::create_dir_all(&latest)?;
        std::fs::write(latest.join("bench.md"), &md)?;
        std::fs::write(latest.join("bench.json"), &json)?;
        for (name, svg) in &plots {
            std::fs::write(latest.join(format!("{name}.svg")), svg)?;
        }
        say(format!("also saved under {}", latest.display()));
    }
    if args.keep {
        say(format!("state kept in {}", state.keep().display()));
    }
    if !results.errors.is_empty() {
        bail!("{} phase(s) failed (see the report)", results.errors.len());
    }
    Ok(())
}

/// `--replot`: the report and plots of a saved run, rendered by this build.
fn replot(json: &Path, latest: bool, out_dir: Option<&Path>) -> anyhow::Result<()> {
    let text =
        std::fs::read_to_string(json).with_context(|| format!("reading {}", json.display()))?;
    let results: Results = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a bench report", json.display()))?;
    let stem = json
        .file_stem()
        .and_then(|s| s.to_str())
        .context("--replot: the JSON file has no name")?;
    let dir = json.parent().unwrap_or(Path::new("."));
    let md = report::markdown(&results);
    let plots = report::plots(&results);
    std::fs::write(dir.join(format!("{stem}.md")), &md)?;
    for (name, svg) in &plots {
        std::fs::write(dir.join(format!("{stem}-{name}.svg")), svg)?;
    }
    if latest {
        let latest = out_dir
            .map(Path::to_path_buf)
            .unwrap_or_else(|| repo_root().join("tests/artifacts"))
            .join("latest");
        std::fs::create_dir_all(&latest)?;
        std::fs::write(latest.join("bench.md"), &md)?;
        std::fs::write(latest.join("bench.json"), &text)?;
        for (name, svg) in &plots {
            std::fs::write(latest.join(format!("{name}.svg")), svg)?;
        }
    }
    say(format!(
        "rendered {} plots from {}",
        plots.len(),
        json.display()
    ));
    Ok(())
}

struct Ctx<'a> {
    args: &'a Args,
    state: &'a StateDir,
    mongo: &'a Mongo,
    pg: &'a Postgres,
    source_bin: &'a Path,
    source_env: &'a [(String, String)],
}

/// psql connections writing in the Postgres latency runs.
const PG_WRITERS: usize = 8;

/// Pause before each latency run.
const SETTLE: Duration = Duration::from_secs(3);

struct StreamRun {
    raw: Vec<f64>,
    replay: f64,
    replay_transactions: u64,
    write_rate: f64,
    live_rate: f64,
    live_transactions: u64,
    rss: u64,
    latency: Vec<SourceLatency>,
}

/// Phase 3+5 on the MongoDB path, with the ceiling's burst at the same transaction size.
struct ZeroRun {
    /// The best of `--rounds` bursts, and every one in the order run.
    burst: f64,
    burst_runs: Vec<f64>,
    /// Zero transactions source-server sent in the first round's burst (its coalescing).
    transactions: f64,
    ceiling_burst: Option<f64>,
    ceiling_burst_runs: Vec<f64>,
    /// The ceiling's burst with our upstream's load beside it, and alone (both warm).
    control: Option<(f64, f64)>,
    /// Per rate: the path's and the raw change stream's latencies, and the source's own lag
    /// (bucket bounds, ms).
    latency: MongoLatencyRuns,
    rss: u64,
}

type LatencyRuns = Vec<(u32, Option<probes::Percentiles>)>;
/// Per rate: the source path's and the raw change stream's latencies, and the source's lag
/// histogram's p50/p95/p99 bucket bounds.
type MongoLatencyRuns = Vec<(
    u32,
    Option<probes::Percentiles>,
    Option<probes::Percentiles>,
    Option<[f64; 3]>,
)>;

impl Ctx<'_> {
    async fn source(&self, name: &str, db: &str) -> anyhow::Result<SourceServer> {
        SourceServer::start(
            self.source_bin,
            &self.state.service(name)?,
            &self.mongo.uri(),
            db,
            self.source_env,
        )
        .await
    }

    async fn collection(&self, db: &str) -> anyhow::Result<mongodb::Collection<Document>> {
        let database = self.mongo.client().await?.database(db);
        database
            .create_collection(TABLE)
            .await
            .with_context(|| format!("creating {db}.{TABLE}"))?;
        Ok(database.collection(TABLE))
    }

    /// Fresh CVR and change databases named after `tag`.
    async fn zero_cache_options(
        &self,
        tag: &str,
        upstream: String,
    ) -> anyhow::Result<ZeroCacheOptions> {
        let cvr = format!("{tag}_cvr");
        let cdc = format!("{tag}_cdc");
        self.pg.create_db(&cvr).await?;
        self.pg.create_db(&cdc).await?;
        Ok(ZeroCacheOptions {
            upstream_url: upstream,
            cvr_db: self.pg.url(&cvr),
            change_db: self.pg.url(&cdc),
            ready_timeout: Some(Duration::from_secs(600)),
            cpus: self.args.pin.then(|| pinning::ZERO_CACHE_CPUS.to_string()),
            ..Default::default()
        })
    }

    /// (1) and (2): N inserts written first; the raw read before and after the source read.
    /// Then (2, live): the client connected first and N more inserts written while it reads.
    async fn stream_to_client(&self) -> anyhow::Result<StreamRun> {
        let n = self.args.rows;
        let coll = self.collection("bench_stream").await?;
        let source = self.source("source-stream", "bench_stream").await?;
        let w0 = initial_sync(&source.ws_url()).await?;
        let start = lexi_to_timestamp(&w0)?;
        say(format!("writing {n} messages"));
        mongo_insert_range(&coll, 0, n, self.args.batch).await?;
        let mut raw = Vec::new();
        let mongod = self.mongo.pid();
        let src = source.process.pid();
        let c0 = CpuSample::take(mongod, src)?;
        let t = read_raw_change_stream(&coll, start, n).await?;
        let c1 = CpuSample::take(mongod, src)?;
        raw.push(n as f64 / t.as_secs_f64());
        say(format!("raw change stream: {:.0} events/s", raw[0]));
        say(format!("raw change stream {}", c0.per_event_us(&c1, n)));
        let run = acking_client(&source.ws_url(), &w0, &w0, n, None).await?;
        let c2 = CpuSample::take(mongod, src)?;
        say(format!(
            "source-server → acking client {}",
            c1.per_event_us(&c2, n)
        ));
        if run.rows != n {
            bail!("the acking client got {} rows, expected {n}", run.rows);
        }
        let replay = n as f64 / run.elapsed.as_secs_f64();
        say(format!(
            "source-server → acking client (backlog): {replay:.0} rows/s in {} transactions",
            run.transactions
        ));
        let t = read_raw_change_stream(&coll, start, n).await?;
        raw.push(n as f64 / t.as_secs_f64());
        say(format!("raw change stream again: {:.0} events/s", raw[1]));

        // Live: connected and caught up first, then the burst.
        let (tx, rx) = tokio::sync::oneshot::channel();
        let url = source.ws_url();
        let from = run.last_watermark.clone();
        let w0c = w0.clone();
        let client =
            tokio::spawn(async move { acking_client(&url, &w0c, &from, n, Some(tx)).await });
        rx.await.context("the live client did not connect")?;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let t0 = Instant::now();
        mongo_insert_range(&coll, n, 2 * n, self.args.batch).await?;
        let write_rate = n as f64 / t0.elapsed().as_secs_f64();
        let live = client.await??;
        let live_rate = n as f64 / (live.finished_at - t0).as_secs_f64();
        say(format!(
            "live burst: written at {write_rate:.0} rows/s, through source-server at {live_rate:.0} rows/s in {} transactions",
            live.transactions
        ));
        let mut latency = Vec::new();
        let mut next = 2 * n;
        let mut from = live.last_watermark.clone();
        for &rate in &self.args.rates {
            tokio::time::sleep(SETTLE).await;
            latency.push(
                self.source_latency(&source, &coll, &w0, &mut from, rate, next)
                    .await?,
            );
            next += u64::from(rate) * u64::from(self.args.latency_secs);
        }
        let rss = source.peak_rss()?;
        say(format!(
            "source-server peak RSS (streaming to the acking client): {:.1} MB",
            rss as f64 / 1_048_576.0
        ));
        Ok(StreamRun {
            raw,
            replay,
            replay_transactions: run.transactions,
            write_rate,
            live_rate,
            live_transactions: live.transactions,
            rss,
            latency,
        })
    }

    /// (4 of issue 14) The source's own latency at a steady rate, with no zero-cache: a client
    /// acking every commit notes writer stamp → commit received for each row, a bare driver
    /// stream reads the same writes (the ceiling), and the source's histogram is read around it.
    async fn source_latency(
        &self,
        source: &SourceServer,
        coll: &mongodb::Collection<Document>,
        w0: &str,
        from: &mut String,
        rate: u32,
        first: u64,
    ) -> anyhow::Result<SourceLatency> {
        let expected = u64::from(rate) * u64::from(self.args.latency_secs);
        let (tx, rx) = tokio::sync::oneshot::channel();
        let url = source.ws_url();
        // From the last commit the previous client saw: nothing before this run is replayed.
        let (w0s, froms) = (w0.to_string(), from.clone());
        let client =
            tokio::spawn(async move { latency_client(&url, &w0s, &froms, expected, tx).await });
        rx.await.context("the latency client did not connect")?;
        let raw = RawLatency::start(coll, expected).await?;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let before = source.lag_buckets().await?;
        let writer = coll.clone();
        paced_writes(rate, self.args.latency_secs, first, move |i, sent| {
            let coll = writer.clone();
            async move {
                coll.insert_one(mongo_doc(i, Some(sent))).await?;
                Ok(())
            }
        })
        .await?;
        let (latencies, last) = tokio::time::timeout(Duration::from_secs(120), client)
            .await
            .context("the latency client did not see every write in time")???;
        *from = last;
        let exact = percentiles(&latencies);
        let raw = percentiles(&raw.finish(Duration::from_secs(120)).await?);
        let buckets = probes::bucket_percentiles(&before, &source.lag_buckets().await?);
        say(format!(
            "source-server's own latency at {rate}/s (writer stamp → commit at the client): {exact:?}; raw change stream: {raw:?}; its histogram (p50/p95/p99 bucket bounds, ms): {buckets:?}"
        ));
        Ok(SourceLatency {
            rate,
            exact,
            raw,
            buckets,
        })
    }

    /// One burst of `--rows` inserts (`insert_many` of `--batch`) through a fresh source-server
    /// into a fresh zero-cache, timed from the first write to the last row in the replica.
    /// Both are returned still running, for the latency runs that follow the first round.
    async fn our_burst(&self, round: u32) -> anyhow::Result<OurBurst> {
        let n = self.args.rows;
        // The first round keeps the names it always had; a tag is also part of PostgreSQL
        // database names (letters, digits and _ only).
        let tag = if round == 1 {
            String::new()
        } else {
            format!("_{round}")
        };
        let db = format!("bench_zero{tag}");
        let coll = self.collection(&db).await?;
        let source = self.source(&format!("source-zero{tag}"), &db).await?;
        let opts = self
            .zero_cache_options(&format!("m{tag}"), source.ws_url())
            .await?;
        let zc = ZeroCache::start_in(self.state.service(&format!("zero-cache-mongo{tag}"))?, opts)
            .await?;
        let watch = CountWatch::start(&zc.replica_file(), TABLE, n)?;
        // The watcher must have opened the replica before the clock starts.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let txns0 = source.counter("zerostack_source_transactions_sent").await?;
        let t0 = now_ms();
        mongo_insert_range(&coll, 0, n, self.args.batch).await?;
        let at = watch.wait(Duration::from_secs(600)).await?;
        let rate = n as f64 / ((at - t0) / 1000.0);
        let transactions = source.counter("zerostack_source_transactions_sent").await? - txns0;
        say(format!(
            "MongoDB burst into the replica, round {round}: {rate:.0} rows/s in {transactions:.0} transactions"
        ));
        Ok(OurBurst {
            rate,
            transactions,
            coll,
            source,
            zc,
        })
    }

    /// (3) and (5) on the MongoDB path, then the ceiling's bursts (3c) alternating with ours.
    async fn mongo_to_zero_cache(&self) -> anyhow::Result<ZeroRun> {
        let n = self.args.rows;
        let OurBurst {
            rate: burst,
            transactions,
            coll,
            source,
            mut zc,
        } = self.our_burst(1).await?;
        let replica = zc.replica_file();
        let mut next = n;
        let mut lat = Vec::new();
        for &rate in &self.args.rates {
            let expected = u64::from(rate) * u64::from(self.args.latency_secs);
            // Let zero-cache settle after the burst (or the previous rate) on both paths.
            tokio::time::sleep(SETTLE).await;
            let watch = LatencyWatch::start(&replica, TABLE, expected).await?;
            // The ceiling, in the same run: a bare driver loop reading the same writes.
            let raw = RawLatency::start(&coll, expected).await?;
            let lag_before = source.lag_buckets().await?;
            let writer = coll.clone();
            paced_writes(rate, self.args.latency_secs, next, move |i, sent| {
                let coll = writer.clone();
                async move {
                    coll.insert_one(mongo_doc(i, Some(sent))).await?;
                    Ok(())
                }
            })
            .await?;
            next += expected;
            let p = percentiles(&watch.finish(Duration::from_secs(120)).await?);
            let raw = percentiles(&raw.finish(Duration::from_secs(120)).await?);
            let lag = probes::bucket_percentiles(&lag_before, &source.lag_buckets().await?);
            if let Some([p50, p95, p99]) = lag {
                say(format!(
                    "source-server's own lag (MongoDB commit → sent, bucket bounds) at {rate}/s: p50 ≤ {p50} ms, p95 ≤ {p95} ms, p99 ≤ {p99} ms"
                ));
            }
            say(format!("MongoDB latency at {rate}/s: {p:?}"));
            say(format!("raw change stream latency at {rate}/s: {raw:?}"));
            lat.push((rate, p, raw, lag));
        }
        let rss = source.peak_rss()?;
        say(format!(
            "source-server peak RSS (streaming to zero-cache): {:.1} MB",
            rss as f64 / 1_048_576.0
        ));
        zc.stop().await?;
        drop(source);
        // The ceiling, after ours so that the two never share the CPU: the same rows in
        // transactions of the size source-server's coalescing produced.
        let txn_rows = (n as f64 / transactions.max(1.0)).round().max(1.0) as u64;
        let ceiling_burst = match self.ceiling_stream("main").await {
            Ok(mut cs) => {
                let (rate, usage, sent) = self.ceiling_burst(&mut cs, n, txn_rows).await?;
                say(format!(
                    "ceiling burst into the replica: {rate:.0} rows/s in {} transactions of {txn_rows} (zero-cache CPU {:.1} s; {:.2} of {:.2} s in socket calls)",
                    n.div_ceil(txn_rows),
                    usage.cpu_secs,
                    sent.in_socket_secs,
                    sent.secs
                ));
                let control = self.ceiling_control(&mut cs, n, txn_rows).await;
                cs.zc.stop().await?;
                (Some(rate), Some(control?))
            }
            Err(e) => {
                say(format!("ceiling burst FAILED: {e:#}"));
                (None, None)
            }
        };
        let (ceiling_burst, control) = ceiling_burst;
        // One pair is noise on a shared machine (the same burst has ranged 0.6-1.2x between
        // runs): further rounds alternate a fresh source-server + zero-cache with a fresh
        // ceiling, and each side reports its best, as the initial sync does.
        let mut ours = vec![burst];
        let mut ceilings: Vec<f64> = ceiling_burst.into_iter().collect();
        // Without a first ceiling there is nothing to pair further rounds with.
        let rounds = if ceilings.is_empty() {
            1
        } else {
            self.args.rounds
        };
        for round in 2..=rounds {
            let run = self.our_burst(round).await?;
            ours.push(run.rate);
            let OurBurst { source, mut zc, .. } = run;
            zc.stop().await?;
            drop(source);
            let mut cs = self.ceiling_stream(&format!("main_{round}")).await?;
            let (rate, usage, _) = self.ceiling_burst(&mut cs, n, txn_rows).await?;
            say(format!(
                "ceiling burst into the replica, round {round}: {rate:.0} rows/s (zero-cache CPU {:.1} s)",
                usage.cpu_secs
            ));
            ceilings.push(rate);
            cs.zc.stop().await?;
        }
        Ok(ZeroRun {
            burst: ours.iter().copied().fold(burst, f64::max),
            transactions,
            ceiling_burst: ceilings.iter().copied().reduce(f64::max),
            burst_runs: ours,
            ceiling_burst_runs: ceilings,
            control,
            latency: lat,
            rss,
        })
    }

    /// The ceiling's burst again on its (now warm) zero-cache, once while MongoDB →
    /// source-server → an acking client carry the same rows at the same moment (so zero-cache
    /// shares the CPU as it does on our path), then alone. Returns (with load, alone), rows/s.
    async fn ceiling_control(
        &self,
        cs: &mut scaling::CeilingStream,
        n: u64,
        txn_rows: u64,
    ) -> anyhow::Result<(f64, f64)> {
        let coll = self.collection("bench_control").await?;
        let source = self.source("source-control", "bench_control").await?;
        let w0 = initial_sync(&source.ws_url()).await?;
        let (tx, rx) = tokio::sync::oneshot::channel();
        let url = source.ws_url();
        let client = tokio::spawn(async move { acking_client(&url, &w0, &w0, n, Some(tx)).await });
        rx.await.context("the control's client did not connect")?;
        let batch = self.args.batch;
        let load = tokio::spawn(async move {
            // ceiling_burst waits 500 ms for its watcher before it sends.
            tokio::time::sleep(Duration::from_millis(500)).await;
            mongo_insert_range(&coll, 0, n, batch).await
        });
        let (loaded, usage, _) = self.ceiling_burst(cs, n, txn_rows).await?;
        load.await??;
        let run = client.await??;
        say(format!(
            "control: the ceiling's burst while MongoDB → source-server → a client carried the same rows ({} rows): {loaded:.0} rows/s (zero-cache CPU {:.1} s)",
            run.rows, usage.cpu_secs
        ));
        drop(source);
        let (alone, usage, _) = self.ceiling_burst(cs, n, txn_rows).await?;
        say(format!(
            "control: the ceiling's burst alone, warm: {alone:.0} rows/s (zero-cache CPU {:.1} s)",
            usage.cpu_secs
        ));
        Ok((loaded, alone))
    }

    /// The scaling curves (`--curves`).
    async fn curves(&self) -> anyhow::Result<report::Curves> {
        let mut c = report::Curves::default();
        let part =
            |p: CurvePart| self.args.curve_parts.is_empty() || self.args.curve_parts.contains(&p);
        if part(CurvePart::Sync) {
            for &docs in &self.args.sync_sizes {
                say(format!("--- curve: initial sync of {docs} ---"));
                c.sync.push(self.sync_point(docs, 1, true).await?);
            }
        }
        if part(CurvePart::Burst) {
            let mut shared = None;
            let cap = self.args.rows.min(50_000);
            for &txn in &self.args.txn_sizes {
                let rows = (txn * 500).clamp(2000.min(cap), cap);
                say(format!("--- curve: burst of {rows} at {txn} rows/txn ---"));
                if self.args.fresh_ceiling {
                    let mut cs = self.ceiling_stream(&format!("curve{txn}")).await?;
                    c.burst.push(self.burst_point(&mut cs, txn, rows).await?);
                    cs.zc.stop().await?;
                } else {
                    if shared.is_none() {
                        shared = Some(self.ceiling_stream("curve").await?);
                    }
                    let cs = shared.as_mut().expect("just set");
                    c.burst.push(self.burst_point(cs, txn, rows).await?);
                }
            }
            if let Some(mut cs) = shared {
                cs.zc.stop().await?;
            }
        }
        if !part(CurvePart::Cpu) {
            return Ok(c);
        }
        let events = |bytes: usize| {
            let base = if self.args.quick { 2_000 } else { 20_000 };
            if bytes > 10_000 { base / 4 } else { base }
        };
        for &m in &self.args.collection_counts {
            say(format!("--- curve: CPU per event, {m} collection(s) ---"));
            c.cpu_collections
                .push(self.cpu_point(m, 200, events(200)).await?);
        }
        for &b in &self.args.doc_sizes {
            say(format!("--- curve: CPU per event, {b}-byte documents ---"));
            c.cpu_doc_size.push(self.cpu_point(1, b, events(b)).await?);
        }
        Ok(c)
    }

    /// (4) and (5) on zero-cache's native Postgres path.
    async fn pg_to_zero_cache(&self) -> anyhow::Result<(f64, LatencyRuns)> {
        let n = self.args.rows;
        self.pg.create_db("bench_pg").await?;
        self.pg.psql("bench_pg", PG_TABLE_DDL).await?;
        let mut opts = self
            .zero_cache_options("p", self.pg.url("bench_pg"))
            .await?;
        opts.extra_env
            .push(("ZERO_UPSTREAM_TYPE".into(), "pg".into()));
        let mut zc = ZeroCache::start_in(self.state.service("zero-cache-pg")?, opts).await?;
        let replica = zc.replica_file();
        let psql = psql_path()?;
        let watch = CountWatch::start(&replica, TABLE, n)?;
        let statements: Vec<String> = (0..n)
            .step_by(self.args.batch as usize)
            .map(|i| sql_insert(i, (i + self.args.batch).min(n), None))
            .collect();
        let mut pipe = PsqlPipe::open(&psql, &self.pg.url("bench_pg"))?;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let t0 = now_ms();
        for s in &statements {
            pipe.send(s).await?;
        }
        let at = watch.wait(Duration::from_secs(600)).await?;
        pipe.finish().await?;
        let burst = n as f64 / ((at - t0) / 1000.0);
        say(format!(
            "Postgres burst into the replica: {burst:.0} rows/s"
        ));
        let mut next = n;
        let mut lat = Vec::new();
        for &rate in &self.args.rates {
            let expected = u64::from(rate) * u64::from(self.args.latency_secs);
            // Let zero-cache settle after the burst (or the previous rate) on both paths.
            tokio::time::sleep(SETTLE).await;
            let watch = LatencyWatch::start(&replica, TABLE, expected).await?;
            // Several connections, as the MongoDB driver's pool gives the other path: each
            // write goes to the next one, so a commit's WAL flush does not stall the schedule.
            let pipes = (0..PG_WRITERS)
                .map(|_| {
                    PsqlPipe::open(&psql, &self.pg.url("bench_pg"))
                        .map(|p| Arc::new(tokio::sync::Mutex::new(p)))
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            let shared = pipes.clone();
            paced_writes(rate, self.args.latency_secs, next, move |i, sent| {
                let pipe = shared[(i % PG_WRITERS as u64) as usize].clone();
                async move {
                    pipe.lock()
                        .await
                        .send(&sql_insert(i, i + 1, Some(sent)))
                        .await
                }
            })
            .await?;
            next += expected;
            let p = percentiles(&watch.finish(Duration::from_secs(120)).await?);
            for pipe in pipes {
                Arc::try_unwrap(pipe)
                    .map_err(|_| anyhow::anyhow!("psql pipe still shared"))?
                    .into_inner()
                    .finish()
                    .await?;
            }
            say(format!("Postgres latency at {rate}/s: {p:?}"));
            lat.push((rate, p));
        }
        zc.stop().await?;
        Ok((burst, lat))
    }
}

/// A burst through source-server (3), with what it ran on.
struct OurBurst {
    rate: f64,
    transactions: f64,
    coll: mongodb::Collection<Document>,
    source: SourceServer,
    zc: ZeroCache,
}

async fn paced_writes<F, Fut>(rate: u32, secs: u32, first: u64, write: F) -> anyhow::Result<()>
where
    F: FnMut(u64, f64) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let t = Instant::now();
    let n = workload::paced(rate, secs, first, write).await?;
    let actual = n as f64 / t.elapsed().as_secs_f64();
    if actual < f64::from(rate) * 0.9 {
        say(format!(
            "warning: wrote {n} rows at {actual:.0}/s, below the asked {rate}/s"
        ));
    }
    Ok(())
}

/// The command as run, with the repository-relative script name when run by bench.sh.
fn command_line() -> String {
    let rest: Vec<String> = std::env::args().skip(1).collect();
    let head = std::env::var("BENCH_COMMAND").unwrap_or_else(|_| "bench".into());
    std::iter::once(head)
        .chain(rest)
        .collect::<Vec<_>>()
        .join(" ")
}

fn machine() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let mem_gb = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or_else(
            || "unknown memory".into(),
            |kb| format!("{:.0} GB RAM", kb / 1_048_576.0),
        );
    format!("{cpus} CPUs, {model}, {mem_gb}")
}

/// UTC time from the system clock: `2025-01-02 03:04:05 UTC`, or `20250102T030405Z` for file
/// names.
fn utc_stamp(human: bool) -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (y, m, d) = civil_from_days((secs / 86_400) as i64);
    let (hh, mm, ss) = (secs % 86_400 / 3600, secs % 3600 / 60, secs % 60);
    if human {
        format!("{y:04}-{m:02}-{d:02} {hh:02}:{mm:02}:{ss:02} UTC")
    } else {
        format!("{y:04}{m:02}{d:02}T{hh:02}{mm:02}{ss:02}Z")
    }
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (Howard Hinnant's method).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Issue 13's row: runs the `schema_change` binary built beside this one (its own MongoDB,
/// PostgreSQL and zero-cache, so the in-place change and the resync it is compared with share
/// nothing with the other phases); it prints its table and writes
/// `tests/artifacts/bench-schema-change.json`.
async fn schema_change(rows: u64, source_bin: &std::path::Path) -> anyhow::Result<()> {
    let exe = std::env::current_exe().context("locating the bench binary")?;
    let bin = exe.with_file_name("schema_change");
    let status = tokio::process::Command::new(&bin)
        .arg("--rows")
        .arg(rows.to_string())
        .arg("--source-bin")
        .arg(source_bin)
        .status()
        .await
        .with_context(|| format!("starting {}", bin.display()))?;
    anyhow::ensure!(status.success(), "{} ended with {status}", bin.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `tests/bench.sh --help` prints `tests/bench/help.txt` without building anything, so that
    /// file must say exactly what the binary's own `--help` says. `UPDATE_HELP=1` rewrites it.
    #[test]
    fn the_scripts_help_is_the_binarys_help() {
        use clap::CommandFactory;
        let rendered = Args::command()
            .bin_name("tests/bench.sh")
            .term_width(100)
            .render_long_help()
            .to_string();
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("help.txt");
        if std::env::var_os("UPDATE_HELP").is_some() {
            std::fs::write(&path, &rendered).unwrap();
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert_eq!(
            committed, rendered,
            "tests/bench/help.txt is stale: run UPDATE_HELP=1 cargo test -p zerostack-bench"
        );
    }

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_723), (2024, 1, 1));
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
    }
}
