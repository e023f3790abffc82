//! The benchmark's results and their rendering: one Markdown table where every figure stands
//! beside the ceiling or bar measured in the same run, and the same data as JSON. Pure
//! functions, so the layout is testable without running anything.

use serde::{Deserialize, Serialize};

use super::plot::{Plot, Series};
use super::probes::Percentiles;
use super::scaling::{BurstPoint, CpuPoint, SyncPoint};

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Latency {
    pub rate: u32,
    pub mongo: Option<Percentiles>,
    /// The ceiling: a bare driver change stream reading the same writes (writer stamp →
    /// event handed over), measured at the same time as `mongo`.
    pub raw: Option<Percentiles>,
    pub pg: Option<Percentiles>,
    /// source-server's commit-lag histogram over the run: p50/p95/p99 bucket bounds, ms.
    pub source_lag_buckets: Option<[f64; 3]>,
}

/// The source's own latency at a steady rate, no zero-cache: writer stamp → commit received by
/// a client acking every commit (`exact`), beside a bare driver stream on the same writes.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct SourceLatency {
    pub rate: u32,
    pub exact: Option<Percentiles>,
    pub raw: Option<Percentiles>,
    /// Its own histogram over the same run: p50/p95/p99 bucket bounds, ms.
    pub buckets: Option<[f64; 3]>,
}

/// The scaling curves (`--curves`).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Curves {
    pub sync: Vec<SyncPoint>,
    pub burst: Vec<BurstPoint>,
    pub cpu_collections: Vec<CpuPoint>,
    pub cpu_doc_size: Vec<CpuPoint>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Results {
    pub command: String,
    pub started_utc: String,
    pub machine: String,
    pub rows: u64,
    pub batch: u64,
    pub sync_rows: u64,
    pub latency_secs: u32,
    /// (1) raw change-stream read, events/s (best of the reads around (2)).
    pub raw_events_per_s: Option<f64>,
    pub raw_reads_events_per_s: Vec<f64>,
    /// (2) source-server → acking client.
    pub source_rows_per_s: Option<f64>,
    pub source_transactions: Option<u64>,
    /// (2, live) the client connected first, then N inserts: how fast they were written (the
    /// ceiling here), and how fast they reached the client.
    pub live_write_rows_per_s: Option<f64>,
    pub live_rows_per_s: Option<f64>,
    pub live_transactions: Option<u64>,
    /// (3) MongoDB → zero-cache replica burst.
    pub mongo_burst_rows_per_s: Option<f64>,
    /// (3) Zero transactions source-server sent for the burst (its coalescing).
    pub mongo_burst_transactions: Option<f64>,
    /// (3, ceiling) the same rows from the ceiling source, at the same transaction size.
    pub ceiling_burst_rows_per_s: Option<f64>,
    /// (3, 3c) every burst of each path, in order (the paths alternate; the figures above are
    /// the best of each). Empty in reports from before the bursts were repeated.
    pub mongo_burst_runs: Vec<f64>,
    pub ceiling_burst_runs: Vec<f64>,
    /// (3, control) the ceiling's burst again on its warm zero-cache while MongoDB →
    /// source-server → a client carry the same rows, and then alone.
    pub ceiling_burst_with_upstream_load: Option<f64>,
    pub ceiling_burst_warm: Option<f64>,
    /// (3p) a pipeline mapping's bursts beside the plain mapping's, same run.
    pub pipeline: Option<super::pipeline::PipelineRun>,
    /// (4) Postgres → zero-cache replica burst.
    pub pg_burst_rows_per_s: Option<f64>,
    /// (5) commit → replica latency, per rate.
    pub latency: Vec<Latency>,
    /// (6) initial sync: seconds from zero-cache start until ready with every row.
    pub mongo_sync_secs: Option<f64>,
    pub ceiling_sync_secs: Option<f64>,
    pub pg_sync_secs: Option<f64>,
    /// (6) every measurement of the initial-sync phase.
    pub sync: Option<SyncPoint>,
    /// The source's own latency (no zero-cache), per rate.
    pub source_latency: Vec<SourceLatency>,
    pub curves: Option<Curves>,
    /// Which change-stream replies were cut inside a write (see `tokens`).
    pub tokens: Option<super::tokens::TokenFindings>,
    /// (6) every run, in order (the paths alternate).
    pub mongo_sync_runs: Vec<f64>,
    pub pg_sync_runs: Vec<f64>,
    /// (7) source-server VmHWM, bytes: while streaming (max over the streaming phases) and
    /// after serving the initial sync.
    pub source_peak_rss_streaming: Option<u64>,
    pub source_peak_rss_sync: Option<u64>,
    /// Phases that failed, with their error.
    pub errors: Vec<String>,
}

fn rate(v: Option<f64>) -> String {
    v.map_or_else(
        || "n/a".into(),
        |x| format!("{} /s", thousands(x.round() as u64)),
    )
}

fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    }
}

fn fmt_ratio(r: Option<f64>) -> String {
    r.map_or_else(|| "n/a".into(), |r| format!("{r:.2}×"))
}

fn verdict(ok: Option<bool>) -> &'static str {
    match ok {
        Some(true) => "yes",
        Some(false) => "**no**",
        None => "n/a",
    }
}

fn pct(p: &Option<Percentiles>) -> String {
    p.map_or_else(
        || "n/a".into(),
        |p| format!("{:.1} / {:.1} / {:.1} ms", p.p50, p.p95, p.p99),
    )
}

fn mb(b: Option<u64>) -> String {
    b.map_or_else(
        || "n/a".into(),
        |b| format!("{:.1} MB", b as f64 / 1_048_576.0),
    )
}

fn secs(s: Option<f64>, rows: u64) -> String {
    s.map_or_else(
        || "n/a".into(),
        |s| {
            format!(
                "{s:.1} s ({} rows/s)",
                thousands((rows as f64 / s).round() as u64)
            )
        },
    )
}

/// The Markdown report: a header naming the command and sizes, then one table.
pub fn markdown(r: &Results) -> String {
    let mut rows: Vec<[String; 6]> = Vec::new();
    rows.push([
        format!("1. raw change-stream read, {} inserts", thousands(r.rows)),
        rate(r.raw_events_per_s),
        "(ceiling)".into(),
        "".into(),
        "".into(),
        "".into(),
    ]);
    let txns_of = |t: Option<u64>| match t {
        Some(t) if t > 0 => format!(
            " ({} txns, {:.0} rows/txn)",
            thousands(t),
            r.rows as f64 / t as f64
        ),
        _ => String::new(),
    };
    let r2 = ratio(r.source_rows_per_s, r.raw_events_per_s);
    rows.push([
        "2. source-server → client acking every commit (backlog written before)".into(),
        format!(
            "{}{}",
            rate(r.source_rows_per_s),
            txns_of(r.source_transactions)
        ),
        format!("{} (1)", rate(r.raw_events_per_s)),
        fmt_ratio(r2),
        "≥ 0.90×".into(),
        verdict(r2.map(|x| x >= 0.9)).into(),
    ]);
    let r2b = ratio(r.live_rows_per_s, r.live_write_rows_per_s);
    rows.push([
        "2b. the same, live: client connected, then the inserts written".into(),
        format!(
            "{}{}",
            rate(r.live_rows_per_s),
            txns_of(r.live_transactions)
        ),
        format!("written at {}", rate(r.live_write_rows_per_s)),
        fmt_ratio(r2b),
        "(informational)".into(),
        "".into(),
    ]);
    // Postgres bursts once, so row 3 sets our first burst (not the best of 3c's) beside it.
    let first_burst = r
        .mongo_burst_runs
        .first()
        .copied()
        .or(r.mongo_burst_rows_per_s);
    let r3 = ratio(first_burst, r.pg_burst_rows_per_s);
    rows.push([
        format!(
            "3. MongoDB → zero-cache replica, burst {} × insert_many({}){}",
            thousands(r.rows / r.batch.max(1)),
            thousands(r.batch),
            if r.mongo_burst_runs.len() > 1 {
                " (the first of 3c's bursts)"
            } else {
                ""
            }
        ),
        rate(first_burst),
        format!("{} (4)", rate(r.pg_burst_rows_per_s)),
        fmt_ratio(r3),
        "≥ 1.00×".into(),
        verdict(r3.map(|x| x >= 1.0)).into(),
    ]);
    let r3c = ratio(r.mongo_burst_rows_per_s, r.ceiling_burst_rows_per_s);
    let txn_rows = r
        .mongo_burst_transactions
        .filter(|t| *t > 0.0)
        .map(|t| (r.rows as f64 / t).round().max(1.0));
    rows.push([
        format!(
            "3c. the same burst against zero-cache's custom-path ceiling (no database, prebuilt frames), transactions of {} rows{}",
            txn_rows.map_or("n/a".into(), |t| format!("{t:.0}")),
            best_of(&r.mongo_burst_runs, &r.ceiling_burst_runs)
        ),
        format!(
            "{}{}",
            rate(r.mongo_burst_rows_per_s),
            runs_of(&r.mongo_burst_runs)
        ),
        format!(
            "ceiling: {}{}",
            rate(r.ceiling_burst_rows_per_s),
            runs_of(&r.ceiling_burst_runs)
        ),
        format!(
            "{}{}",
            fmt_ratio(r3c),
            round_ratios(&r.mongo_burst_runs, &r.ceiling_burst_runs)
        ),
        "≥ 0.95×".into(),
        verdict(r3c.map(|x| x >= 0.95)).into(),
    ]);
    let r3d = ratio(r.ceiling_burst_with_upstream_load, r.ceiling_burst_warm);
    if r.ceiling_burst_warm.is_some() {
        rows.push([
        "3d. control: the ceiling's burst (warm) while MongoDB → source-server → a client carry the same rows at the same time".into(),
        rate(r.ceiling_burst_with_upstream_load),
        format!("the ceiling alone, warm: {}", rate(r.ceiling_burst_warm)),
        fmt_ratio(r3d),
            "(what sharing the cores with MongoDB costs zero-cache)".into(),
            "".into(),
        ]);
    }
    if let Some(p) = &r.pipeline {
        rows.push(pipeline_row(p));
    }
    rows.push([
        format!(
            "4. Postgres → zero-cache replica (native), burst {} × INSERT of {}",
            thousands(r.rows / r.batch.max(1)),
            thousands(r.batch)
        ),
        rate(r.pg_burst_rows_per_s),
        "(bar)".into(),
        "".into(),
        "".into(),
        "".into(),
    ]);
    for l in &r.latency {
        let delta = match (l.mongo, l.pg) {
            (Some(m), Some(p)) => Some(m.p99 - p.p99),
            _ => None,
        };
        let (target, ok) = if l.rate == 500 {
            (
                "p99 ≤ Postgres p99 + 5 ms",
                verdict(delta.map(|d| d <= 5.0)),
            )
        } else {
            ("(informational)", "")
        };
        rows.push([
            format!(
                "5. commit → replica latency at {} writes/s, p50 / p95 / p99 ({} s)",
                l.rate, r.latency_secs
            ),
            format!(
                "MongoDB: {} (raw change stream: {})",
                pct(&l.mongo),
                pct(&l.raw)
            ),
            format!("Postgres: {}", pct(&l.pg)),
            delta.map_or_else(|| "n/a".into(), |d| format!("p99 {d:+.1} ms")),
            target.into(),
            ok.into(),
        ]);
    }
    for l in &r.source_latency {
        // The bar is on the source's own histogram (MongoDB commit → sent, so MongoDB's
        // delivery of the event counts against it, the bench's writer does not); a p99 bucket
        // bound under the bar is a p99 under it. Writer → commit at a client is beside it,
        // with the same path from a bare driver stream as its floor.
        let (target, ok) = if l.rate == 500 {
            (
                "histogram p99 ≤ 5 ms",
                verdict(l.buckets.map(|[_, _, p99]| p99 <= 5.0)),
            )
        } else {
            ("(informational)", "")
        };
        rows.push([
            format!(
                "5s. source-server's own latency at {} writes/s, no zero-cache: its commit-lag histogram (MongoDB commit → sent), p50 / p95 / p99 bucket bounds; writer → commit at an acking client, p50 / p95 / p99",
                l.rate
            ),
            format!(
                "{}; writer → client {}",
                l.buckets.map_or("n/a".into(), |[a, b, c]| format!(
                    "≤ {a} / ≤ {b} / ≤ {c} ms"
                )),
                pct(&l.exact)
            ),
            format!("raw change stream, writer → bare reader: {}", pct(&l.raw)),
            match (l.exact, l.raw) {
                (Some(e), Some(w)) => format!("writer → client p99 {:+.1} ms", e.p99 - w.p99),
                _ => "n/a".into(),
            },
            target.into(),
            ok.into(),
        ]);
    }
    let r6 = ratio(r.mongo_sync_secs, r.pg_sync_secs);
    rows.push([
        format!(
            "6. initial sync of {} documents (zero-cache start → ready; best of {} alternating runs)",
            thousands(r.sync_rows),
            r.mongo_sync_runs.len().max(1)
        ),
        secs(r.mongo_sync_secs, r.sync_rows),
        format!("Postgres: {}", secs(r.pg_sync_secs, r.sync_rows)),
        fmt_ratio(r6),
        "time ≤ 1.10×".into(),
        verdict(r6.map(|x| x <= 1.1)).into(),
    ]);
    // Rows/s ratio: the ceiling's time over ours.
    let r6c = ratio(r.ceiling_sync_secs, r.mongo_sync_secs);
    rows.push([
        format!(
            "6c. the same initial sync against zero-cache's custom-path ceiling (best of {})",
            r.sync.as_ref().map_or(0, |s| s.ceiling.len())
        ),
        secs(r.mongo_sync_secs, r.sync_rows),
        format!("ceiling: {}", secs(r.ceiling_sync_secs, r.sync_rows)),
        format!(
            "{}{}",
            fmt_ratio(r6c),
            r.sync.as_ref().map_or(String::new(), |s| {
                // Rows/s per round: the ceiling's time over ours.
                let ours: Vec<f64> = s.ours.iter().map(|x| 1.0 / x.secs).collect();
                let ceiling: Vec<f64> = s.ceiling.iter().map(|x| 1.0 / x.secs).collect();
                round_ratios(&ours, &ceiling)
            })
        ),
        "rows/s ≥ 0.95×".into(),
        verdict(r6c.map(|x| x >= 0.95)).into(),
    ]);
    let rss = r.source_peak_rss_streaming;
    rows.push([
        "7. source-server peak RSS (VmHWM) while streaming".into(),
        mb(rss),
        format!(
            "after serving the initial sync: {}",
            mb(r.source_peak_rss_sync)
        ),
        "".into(),
        "< 64 MB".into(),
        verdict(rss.map(|b| b < 64 * 1_048_576)).into(),
    ]);

    let mut out = String::new();
    out.push_str(&format!("# ZeroStack benchmark, {}\n\n", r.started_utc));
    out.push_str(&format!("Command: `{}`  \n", r.command));
    out.push_str(&format!("Machine: {}  \n", r.machine));
    out.push_str(&format!(
        "Sizes: {} rows per burst (batches of {}), {} rows for initial sync, {} s per latency rate.\n\n",
        r.rows, r.batch, r.sync_rows, r.latency_secs
    ));
    out.push_str("| Measure | Result | Ceiling / bar (same run) | Ratio | Target | Met |\n");
    out.push_str("|---|---|---|---|---|---|\n");
    for row in rows {
        out.push_str(&format!("| {} |\n", row.join(" | ")));
    }
    if let Some(sp) = &r.sync {
        out.push('\n');
        out.push_str(&sync_where(sp));
    }
    if let Some(p) = &r.pipeline {
        out.push('\n');
        out.push_str(&pipeline_runs(p));
    }
    if let Some(t) = &r.tokens {
        let show = |rs: &[super::tokens::Reply]| {
            rs.iter()
                .map(|r| {
                    format!(
                        "{}{} [{} kB]",
                        r.events,
                        if r.token_is_last_event { " (cut)" } else { "" },
                        r.bytes / 1024
                    )
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        out.push_str(&format!(
            "\nChange-stream replies (events per `getMore` of at most 100; \"cut\": its post-batch token is its last event's own): single inserts {}; `insert_many` of 250: {}; a transaction of 250 ({} cluster time(s)): {}; a transaction of 24 × 1 MB: {}. Does the post-batch token mark a write's last reply? {}. Does every non-transactional insert have its own cluster time? {}.\n",
            show(&t.single),
            show(&t.batched),
            t.transaction_cluster_times,
            show(&t.transaction),
            show(&t.large_transaction),
            verdict(Some(t.token_marks_the_end)),
            verdict(Some(t.own_cluster_time_per_plain_write))
        ));
    }
    if let Some(c) = &r.curves {
        out.push_str(&curves_markdown(c));
    }
    if !r.errors.is_empty() {
        out.push_str("\nFailed phases:\n");
        for e in &r.errors {
            out.push_str(&format!("- {}\n", e.replace('\n', " ")));
        }
    }
    out
}

/// ", best of N alternating" when a row's figures are the best of repeated runs.
fn best_of(ours: &[f64], ceiling: &[f64]) -> String {
    match ours.len().max(ceiling.len()) {
        0 | 1 => String::new(),
        n => format!(" (best of {n}, alternating with the ceiling)"),
    }
}

/// " (round by round: median m×, lo–hi×)": ours over the ceiling within each round, for
/// figures that are the best of several alternating runs (higher is better for both inputs).
fn round_ratios(ours: &[f64], ceiling: &[f64]) -> String {
    let mut r: Vec<f64> = ours
        .iter()
        .zip(ceiling)
        .filter(|(_, c)| **c > 0.0)
        .map(|(o, c)| o / c)
        .collect();
    if r.len() < 2 {
        return String::new();
    }
    r.sort_by(f64::total_cmp);
    let n = r.len();
    let median = if n % 2 == 1 {
        r[n / 2]
    } else {
        (r[n / 2 - 1] + r[n / 2]) / 2.0
    };
    format!(
        " (round by round: median {median:.2}×, {:.2}–{:.2}×)",
        r[0],
        r[n - 1]
    )
}

/// " (runs: a, b)" for a figure that is the best of several runs.
fn runs_of(runs: &[f64]) -> String {
    if runs.len() < 2 {
        return String::new();
    }
    let all: Vec<String> = runs.iter().map(|r| rate(Some(*r))).collect();
    format!(" (runs: {})", all.join(", "))
}

/// Row 3p: the pipeline mapping's best burst beside the plain mapping's, per row produced.
fn pipeline_row(p: &super::pipeline::PipelineRun) -> [String; 6] {
    use super::pipeline::{Mapping, TARGET};
    let (pipe, plain) = (p.best(Mapping::Pipeline), p.best(Mapping::Plain));
    let txns = |b: Option<super::pipeline::MappingBurst>| {
        b.filter(|b| b.transactions > 0.0)
            .map_or(String::new(), |b| {
                format!(
                    " ({} txns, {:.0} rows/txn)",
                    thousands(b.transactions.round() as u64),
                    b.rows as f64 / b.transactions
                )
            })
    };
    let r = p.ratio();
    let runs = p.runs.len() / 2;
    [
        format!(
            "3p. pipeline mapping (`$unwind` of 10 items + `$addFields`, key (orderId, itemId)), burst of {} orders → {} rows, same rows per insert_many as 3 (best of {runs}, alternating with the plain mapping)",
            thousands(pipe.map_or(0, |b| b.documents)),
            thousands(pipe.map_or(0, |b| b.rows)),
        ),
        format!("{}{}", rate(pipe.map(|b| b.rows_per_s)), txns(pipe)),
        format!(
            "plain mapping, {} documents → rows: {}{}",
            thousands(plain.map_or(0, |b| b.documents)),
            rate(plain.map(|b| b.rows_per_s)),
            txns(plain)
        ),
        fmt_ratio(r),
        format!("rows/s per row ≥ {TARGET:.2}×"),
        verdict(r.map(|x| x >= TARGET)).into(),
    ]
}

/// Every burst of row 3p, with where its CPU went.
pub fn pipeline_runs(p: &super::pipeline::PipelineRun) -> String {
    let mut out = String::from("Pipeline-mapping row (3p), every burst in the order run:\n");
    for b in &p.runs {
        out.push_str(&format!(
            "- {:?}: {} documents → {} rows, {} rows/s (written at {} rows/s), {:.0} txns, source CPU {:.1} µs/row, zero-cache CPU {:.1} s\n",
            b.mapping,
            thousands(b.documents),
            thousands(b.rows),
            thousands(b.rows_per_s.round() as u64),
            thousands(b.written_rows_per_s.round() as u64),
            b.transactions,
            b.source_cpu_us_per_row,
            b.zero_cache.cpu_secs,
        ));
    }
    out
}

fn per_s(n: u64, secs: f64) -> String {
    if secs > 0.0 {
        thousands((n as f64 / secs).round() as u64)
    } else {
        "n/a".into()
    }
}

/// Where an initial sync's time goes: the source alone (bare client), zero-cache's CPU on each
/// path, and how long the ceiling's send loop sat in socket calls.
pub fn sync_where(p: &SyncPoint) -> String {
    let mut out = format!(
        "Initial sync of {} documents, where the time goes: source-server alone (snapshot read by a bare client) {:.2} s = {} rows/s, source CPU {:.1} µs/row; insert frames {:.0} bytes/row (ceiling {:.0}).\n",
        thousands(p.docs),
        p.bare_client_secs,
        per_s(p.docs, p.bare_client_secs),
        p.bare_client_source_cpu_secs * 1e6 / p.docs.max(1) as f64,
        p.ours_row_bytes as f64 / p.docs.max(1) as f64,
        p.ceiling_row_bytes as f64 / p.docs.max(1) as f64,
    );
    let line = |name: &str, run: Option<super::scaling::SyncRun>| {
        run.map_or_else(String::new, |r| {
            format!(
                "- {name}: {:.2} s ({} rows/s); zero-cache CPU {:.1} s ({:.0}% of one core over the sync), peak RSS {:.0} MB{}\n",
                r.secs,
                per_s(p.docs, r.secs),
                r.zero_cache.cpu_secs,
                100.0 * r.zero_cache.cpu_secs / r.secs,
                r.zero_cache.peak_rss as f64 / 1_048_576.0,
                r.source_cpu_secs.map_or(String::new(), |c| format!(
                    "; sender's CPU {c:.2} s ({:.0}% of one core){}",
                    100.0 * c / r.secs,
                    if r.mongod_cpu_secs > 0.0 {
                        format!("; mongod CPU {:.2} s", r.mongod_cpu_secs)
                    } else {
                        String::new()
                    }
                ))
            )
        })
    };
    out.push_str(&line("source-server", p.ours_best()));
    out.push_str(&line("ceiling", p.ceiling_best()));
    out.push_str(&line("Postgres", p.pg_best()));
    for (name, run) in [
        ("source-server", p.ours_best()),
        ("ceiling", p.ceiling_best()),
    ] {
        if let Some([start, stream, after]) = run.and_then(|r| r.phases) {
            out.push_str(&format!(
                "- zero-cache's phases from {name}: start-up until it connects {start:.2} s, the snapshot stream {stream:.2} s, last frame → ready with every row {after:.2} s\n"
            ));
        }
    }
    if p.ceiling_send_secs > 0.0 {
        out.push_str(&format!(
            "- the ceiling's send loop: {:.2} s, of which {:.2} s inside socket writes (waiting on zero-cache)\n",
            p.ceiling_send_secs, p.ceiling_in_socket_secs
        ));
    }
    out
}

pub fn curves_markdown(c: &Curves) -> String {
    let mut out = String::new();
    if !c.sync.is_empty() {
        out.push_str("\n## Initial sync by size\n\n| Documents | source-server | ceiling | Postgres | ours / ceiling (rows/s) | source peak RSS | zero-cache peak RSS (ours / ceiling) | source alone (bare client) |\n|---|---|---|---|---|---|---|---|\n");
        for p in &c.sync {
            let (o, ce, pg) = (p.ours_best(), p.ceiling_best(), p.pg_best());
            let cell = |r: Option<super::scaling::SyncRun>| {
                r.map_or("n/a".into(), |r| {
                    format!("{:.2} s ({} rows/s)", r.secs, per_s(p.docs, r.secs))
                })
            };
            out.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} | {} / {} | {} rows/s |\n",
                thousands(p.docs),
                cell(o),
                cell(ce),
                cell(pg),
                fmt_ratio(ratio(ce.map(|r| r.secs), o.map(|r| r.secs))),
                mb(Some(p.source_peak_rss)),
                mb(o.map(|r| r.zero_cache.peak_rss)),
                mb(ce.map(|r| r.zero_cache.peak_rss)),
                per_s(p.docs, p.bare_client_secs),
            ));
        }
        if let (Some(first), Some(last)) = (c.sync.first(), c.sync.last()) {
            let f = last.source_peak_rss as f64 / first.source_peak_rss.max(1) as f64;
            out.push_str(&format!(
                "\nsource-server peak RSS at {} documents is {f:.2}× that at {} (bar: ≤ 2×: {}).\n",
                thousands(last.docs),
                thousands(first.docs),
                verdict(Some(f <= 2.0))
            ));
        }
    }
    if !c.burst.is_empty() {
        out.push_str("\n## Burst by transaction size\n\n| Rows/txn | Rows | source-server | (written at) | Zero txns sent | ceiling | ours / ceiling | source CPU/row | zero-cache CPU (ours / ceiling) |\n|---|---|---|---|---|---|---|---|---|\n");
        for b in &c.burst {
            out.push_str(&format!(
                "| {} | {} | {} | {} | {:.0} | {} | {} | {:.1} µs | {:.1} s / {:.1} s |\n",
                b.txn_rows,
                thousands(b.rows),
                rate(Some(b.ours_rows_per_s)),
                rate(Some(b.ours_written_rows_per_s)),
                b.ours_transactions,
                rate(Some(b.ceiling_rows_per_s)),
                fmt_ratio(ratio(Some(b.ours_rows_per_s), Some(b.ceiling_rows_per_s))),
                b.ours_source_cpu_us_per_row,
                b.ours_zero_cache.cpu_secs,
                b.ceiling_zero_cache.cpu_secs,
            ));
        }
    }
    for (title, points) in [
        (
            "Source CPU per event by mapped collections",
            &c.cpu_collections,
        ),
        ("Source CPU per event by document size", &c.cpu_doc_size),
    ] {
        if points.is_empty() {
            continue;
        }
        out.push_str(&format!("\n## {title}\n\n| Collections | Document | Events | source-server | bare driver loop (floor) | source rows/s | raw events/s |\n|---|---|---|---|---|---|---|\n"));
        for p in points {
            out.push_str(&format!(
                "| {} | {} B | {} | {:.1} µs | {:.1} µs | {} | {} |\n",
                p.collections,
                thousands(p.doc_bytes as u64),
                thousands(p.events),
                p.source_us_per_event,
                p.raw_us_per_event,
                thousands(p.source_rows_per_s.round() as u64),
                thousands(p.raw_events_per_s.round() as u64),
            ));
        }
    }
    out
}

fn series(name: &str, dashed: bool, points: Vec<(f64, f64)>) -> Series {
    Series {
        name: name.into(),
        points,
        dashed,
    }
}

/// The SVG plots of a run, by file name stem: each with the run's date and machine, and the
/// ceiling (dashed) in the same axes.
pub fn plots(r: &Results) -> Vec<(String, String)> {
    let subtitle = format!("{} · {}", r.started_utc, r.machine);
    let mut out = Vec::new();
    let mut add = |name: &str, title: &str, x: &str, y: &str, s: Vec<Series>| {
        if s.iter().any(|s| !s.points.is_empty()) {
            let plot = Plot {
                title: title.into(),
                subtitle: subtitle.clone(),
                x_label: x.into(),
                y_label: y.into(),
                log_x: true,
                series: s,
            };
            out.push((name.to_string(), plot.to_svg()));
        }
    };
    let Some(c) = &r.curves else {
        return out;
    };
    let sync_rate = |f: fn(&SyncPoint) -> Option<super::scaling::SyncRun>| {
        c.sync
            .iter()
            .filter_map(|p| f(p).map(|r| (p.docs as f64, p.docs as f64 / r.secs)))
            .collect::<Vec<_>>()
    };
    add(
        "initial-sync-rate",
        "Initial sync into zero-cache: rows/s by data size",
        "documents",
        "rows/s (start → ready with every row)",
        vec![
            series("source-server", false, sync_rate(SyncPoint::ours_best)),
            series(
                "ceiling (no database)",
                true,
                sync_rate(SyncPoint::ceiling_best),
            ),
            series("Postgres (native)", false, sync_rate(SyncPoint::pg_best)),
        ],
    );
    let mb_of = |b: u64| b as f64 / 1_048_576.0;
    let first_rss = c.sync.first().map(|p| mb_of(p.source_peak_rss));
    add(
        "initial-sync-rss",
        "Initial sync: peak RSS by data size",
        "documents",
        "MB",
        vec![
            series(
                "source-server",
                false,
                c.sync
                    .iter()
                    .map(|p| (p.docs as f64, mb_of(p.source_peak_rss)))
                    .collect(),
            ),
            series(
                "bar: 2× source at the smallest",
                true,
                c.sync
                    .iter()
                    .filter_map(|p| first_rss.map(|f| (p.docs as f64, 2.0 * f)))
                    .collect(),
            ),
            series(
                "zero-cache (from source-server)",
                false,
                c.sync
                    .iter()
                    .filter_map(|p| {
                        p.ours_best()
                            .map(|r| (p.docs as f64, mb_of(r.zero_cache.peak_rss)))
                    })
                    .collect(),
            ),
            series(
                "zero-cache (from the ceiling)",
                true,
                c.sync
                    .iter()
                    .filter_map(|p| {
                        p.ceiling_best()
                            .map(|r| (p.docs as f64, mb_of(r.zero_cache.peak_rss)))
                    })
                    .collect(),
            ),
        ],
    );
    add(
        "burst-by-transaction-size",
        "Burst into zero-cache's replica: rows/s by rows per transaction",
        "rows per transaction",
        "rows/s",
        vec![
            series(
                "source-server",
                false,
                c.burst
                    .iter()
                    .map(|b| (b.txn_rows as f64, b.ours_rows_per_s))
                    .collect(),
            ),
            series(
                "ceiling (no database)",
                true,
                c.burst
                    .iter()
                    .map(|b| (b.txn_rows as f64, b.ceiling_rows_per_s))
                    .collect(),
            ),
        ],
    );
    let cpu = |pts: &[CpuPoint], x: fn(&CpuPoint) -> f64| {
        (
            pts.iter()
                .map(|p| (x(p), p.source_us_per_event))
                .collect::<Vec<_>>(),
            pts.iter()
                .map(|p| (x(p), p.raw_us_per_event))
                .collect::<Vec<_>>(),
        )
    };
    let (ours, raw) = cpu(&c.cpu_collections, |p| p.collections as f64);
    add(
        "cpu-by-collections",
        "Source CPU per change event by mapped collections",
        "mapped collections",
        "CPU µs per event",
        vec![
            series("source-server", false, ours),
            series("bare driver loop (floor)", true, raw),
        ],
    );
    let (ours, raw) = cpu(&c.cpu_doc_size, |p| p.doc_bytes as f64);
    add(
        "cpu-by-document-size",
        "Source CPU per change event by document size",
        "document bytes (BSON)",
        "CPU µs per event",
        vec![
            series("source-server", false, ours),
            series("bare driver loop (floor)", true, raw),
        ],
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_puts_each_figure_beside_its_ceiling() {
        let r = Results {
            command: "tests/bench.sh --quick".into(),
            rows: 100_000,
            batch: 1000,
            sync_rows: 200_000,
            latency_secs: 20,
            raw_events_per_s: Some(40_000.0),
            source_rows_per_s: Some(38_000.0),
            source_transactions: Some(100),
            mongo_burst_rows_per_s: Some(7_000.0),
            pg_burst_rows_per_s: Some(8_000.0),
            latency: vec![Latency {
                rate: 500,
                mongo: percentiles(&[1.0, 2.0, 9.0]),
                raw: percentiles(&[0.5, 0.5, 1.0]),
                pg: percentiles(&[1.0, 2.0, 3.0]),
                source_lag_buckets: Some([2.0, 4.0, 5.0]),
            }],
            mongo_sync_secs: Some(10.0),
            pg_sync_secs: Some(10.0),
            source_peak_rss_streaming: Some(30 * 1_048_576),
            ..Default::default()
        };
        let md = markdown(&r);
        assert!(
            md.contains(
                "| 38,000 /s (100 txns, 1000 rows/txn) | 40,000 /s (1) | 0.95× | ≥ 0.90× | yes |"
            ),
            "{md}"
        );
        assert!(
            md.contains("| 7,000 /s | 8,000 /s (4) | 0.88× | ≥ 1.00× | **no** |"),
            "{md}"
        );
        assert!(
            md.contains("p99 +6.0 ms | p99 ≤ Postgres p99 + 5 ms | **no** |"),
            "{md}"
        );
        assert!(
            md.contains("MongoDB: 2.0 / 9.0 / 9.0 ms (raw change stream: 0.5 / 1.0 / 1.0 ms)"),
            "{md}"
        );
        assert!(md.contains("10.0 s (20,000 rows/s)"), "{md}");
        assert!(md.contains("| 30.0 MB |"), "{md}");
        assert!(md.contains("`tests/bench.sh --quick`"));
        assert!(
            !md.contains("3p."),
            "no pipeline row when it was not measured"
        );
    }

    #[test]
    fn the_source_latency_bar_is_judged_on_its_histogram() {
        let at = |rate, p99_bound| SourceLatency {
            rate,
            exact: percentiles(&[1.0, 2.0, 9.0]),
            raw: percentiles(&[1.0, 2.0, 8.0]),
            buckets: Some([1.0, 2.0, p99_bound]),
        };
        let md = markdown(&Results {
            source_latency: vec![at(500, 4.0), at(100, 30.0)],
            ..Default::default()
        });
        assert!(
            md.contains("| ≤ 1 / ≤ 2 / ≤ 4 ms; writer → client 2.0 / 9.0 / 9.0 ms | raw change stream, writer → bare reader: 2.0 / 8.0 / 8.0 ms | writer → client p99 +1.0 ms | histogram p99 ≤ 5 ms | yes |"),
            "{md}"
        );
        assert!(md.contains("| (informational) |  |"), "{md}");
        let md = markdown(&Results {
            source_latency: vec![at(500, 7.5)],
            ..Default::default()
        });
        assert!(md.contains("histogram p99 ≤ 5 ms | **no** |"), "{md}");
    }

    #[test]
    fn repeated_bursts_show_each_run_and_row_3_uses_the_first() {
        let r = Results {
            rows: 100_000,
            batch: 1000,
            mongo_burst_rows_per_s: Some(5_000.0),
            mongo_burst_runs: vec![4_000.0, 5_000.0],
            mongo_burst_transactions: Some(50.0),
            ceiling_burst_rows_per_s: Some(5_100.0),
            ceiling_burst_runs: vec![5_100.0, 4_500.0],
            pg_burst_rows_per_s: Some(5_000.0),
            ..Default::default()
        };
        let md = markdown(&r);
        assert!(
            md.contains("(the first of 3c's bursts) | 4,000 /s | 5,000 /s (4) | 0.80×"),
            "{md}"
        );
        assert!(
            md.contains(
                "transactions of 2000 rows (best of 2, alternating with the ceiling) | 5,000 /s (runs: 4,000 /s, 5,000 /s) | ceiling: 5,100 /s (runs: 5,100 /s, 4,500 /s) | 0.98× (round by round: median 0.95×, 0.78–1.11×) | ≥ 0.95× | yes |"
            ),
            "{md}"
        );
    }

    #[test]
    fn the_pipeline_row_stands_beside_the_plain_mapping() {
        use super::super::pipeline::{Mapping, MappingBurst, PipelineRun};
        let b = |mapping, documents, rows_per_s| MappingBurst {
            mapping,
            documents,
            rows: 50_000,
            rows_per_s,
            written_rows_per_s: 20_000.0,
            transactions: 100.0,
            source_cpu_us_per_row: 3.0,
            zero_cache: Default::default(),
        };
        let r = Results {
            pipeline: Some(PipelineRun {
                runs: vec![
                    b(Mapping::Plain, 50_000, 5_000.0),
                    b(Mapping::Pipeline, 5_000, 3_500.0),
                    b(Mapping::Pipeline, 5_000, 3_800.0),
                    b(Mapping::Plain, 50_000, 4_000.0),
                ],
            }),
            ..Default::default()
        };
        let md = markdown(&r);
        assert!(md.contains("burst of 5,000 orders → 50,000 rows"), "{md}");
        assert!(
            md.contains(
                "| 3,800 /s (100 txns, 500 rows/txn) | plain mapping, 50,000 documents → rows: 5,000 /s (100 txns, 500 rows/txn) | 0.76× | rows/s per row ≥ 0.80× | **no** |"
            ),
            "{md}"
        );
        assert!(
            md.contains("- Pipeline: 5,000 documents → 50,000 rows, 3,500 rows/s"),
            "{md}"
        );
    }

    use super::super::probes::percentiles;
}
