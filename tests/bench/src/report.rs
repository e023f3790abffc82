//! The benchmark's results and their rendering: one Markdown table where every figure stands
//! beside the ceiling or bar measured in the same run, and the same data as JSON. Pure
//! functions, so the layout is testable without running anything.

use serde::Serialize;

use super::probes::Percentiles;

#[derive(Clone, Debug, Default, Serialize)]
pub struct Latency {
    pub rate: u32,
    pub mongo: Option<Percentiles>,
    /// The ceiling: a bare driver change stream reading the same writes (writer stamp →
    /// event handed over), measured at the same time as `mongo`.
    pub raw: Option<Percentiles>,
    pub pg: Option<Percentiles>,
}

#[derive(Clone, Debug, Default, Serialize)]
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
    /// (4) Postgres → zero-cache replica burst.
    pub pg_burst_rows_per_s: Option<f64>,
    /// (5) commit → replica latency, per rate.
    pub latency: Vec<Latency>,
    /// (6) initial sync: seconds from zero-cache start until ready with every row.
    pub mongo_sync_secs: Option<f64>,
    pub pg_sync_secs: Option<f64>,
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
    let r3 = ratio(r.mongo_burst_rows_per_s, r.pg_burst_rows_per_s);
    rows.push([
        format!(
            "3. MongoDB → zero-cache replica, burst {} × insert_many({})",
            thousands(r.rows / r.batch.max(1)),
            thousands(r.batch)
        ),
        rate(r.mongo_burst_rows_per_s),
        format!("{} (4)", rate(r.pg_burst_rows_per_s)),
        fmt_ratio(r3),
        "≥ 1.00×".into(),
        verdict(r3.map(|x| x >= 1.0)).into(),
    ]);
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
    if !r.errors.is_empty() {
        out.push_str("\nFailed phases:\n");
        for e in &r.errors {
            out.push_str(&format!("- {}\n", e.replace('\n', " ")));
        }
    }
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
    }

    use super::super::probes::percentiles;
}
