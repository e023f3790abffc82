//! (F) Fan-out (`--only fanout`, issue 12): K real Zero clients subscribed to the same query
//! (the newest rows of one room), writes into MongoDB at a fixed rate, and per write the time
//! until every client saw it (write → all-clients-see, p50/p99) and how many clients saw every
//! write (served). Measured on today's single-node zero-cache (one view-syncer) and, when the
//! harness has the topology, on a replication-manager with two view-syncers, the clients split
//! evenly over them, in the same run and the same points interleaved.
//!
//! The clients are `tests/node/fanout.mjs` processes (many clients each). What bounds the
//! figure is measured in the same run, not guessed: each K is also run at a very low write rate
//! (one write fanned out to K clients, nothing queued behind it), and over the steady run the
//! CPU of every part is read from /proc (zero-cache's process tree and its busiest process,
//! each client process, source-server, mongod): the part at one full core (a Node process is
//! one JS thread) or the machine at all its cores is the bound. K grows only while memory
//! allows: a point whose estimated footprint (per-client memory of the previous point) does
//! not fit beside a reserve is skipped, and a point that eats into the reserve is stopped.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bson::doc;
use serde::Serialize;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout};
use zerostack_harness::{ZeroCache, node_dir, paths::node_bin, view_syncers};

use crate::probes::{Percentiles, cpu_secs, percentiles};
use crate::workload::{SENT_COLUMN, message};
use crate::{Ctx, paced_writes, say};

/// Memory left to the machine (and the other engineers on it) whatever K asks for.
const RESERVE_BYTES: u64 = 6 << 30;
/// How long clients get to see the last write of a run.
const DRAIN: Duration = Duration::from_secs(30);

/// The fan-out options (from `--fanout-*`).
#[derive(Clone, Debug)]
pub struct Options {
    pub clients: Vec<usize>,
    pub rate: u32,
    pub secs: u32,
    pub per_process: usize,
}

/// The low-rate run of every point: one write every half second, each alone in flight.
const LOW_RATE: u32 = 2;
const LOW_SECS: u32 = 5;

/// One topology's zero-cache(s): the URLs clients connect to and the processes whose trees'
/// CPU and memory are zero-cache's.
pub struct Topology {
    pub name: &'static str,
    pub urls: Vec<String>,
    pub roots: Vec<u32>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Point {
    pub topology: String,
    pub clients: usize,
    pub processes: usize,
    /// Clients whose first result was complete before the writes began.
    pub connected: usize,
    pub connect_secs: f64,
    /// Clients that saw every write of the steady run.
    pub served: usize,
    /// Per write: until the last client saw it (ms).
    pub all_seen: Option<Percentiles>,
    /// Per (write, client) delivery (ms).
    pub each_seen: Option<Percentiles>,
    /// The same clients at the low rate: per write, until the last client saw it (ms).
    pub low_all_seen: Option<Percentiles>,
    pub low_served: usize,
    /// Cores used over the steady run's writes.
    pub cpu: Option<CpuUse>,
    /// CPU per delivery (one write seen by one client), writes start → last write seen.
    pub cost: Option<DeliveryCost>,
    /// zero-cache's resident memory before the clients connected, MB.
    pub zero_cache_rss_before_mb: f64,
    /// Resident memory at the end of the steady run, MB.
    pub zero_cache_rss_mb: f64,
    pub clients_rss_mb: f64,
    /// Why the point stopped early or was skipped.
    pub stopped: Option<String>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct CpuUse {
    pub zero_cache: f64,
    pub zero_cache_busiest: f64,
    pub clients: Vec<f64>,
    pub source: f64,
    pub mongod: f64,
    /// PostgreSQL's processes (zero-cache's CVR and change databases).
    pub postgres: f64,
    /// Every process on the machine (the other engineers' builds and tests included).
    pub machine_busy: f64,
    pub machine_cores: usize,
}

/// CPU µs per delivery (one write reaching one client).
#[derive(Clone, Debug, Default, Serialize)]
pub struct DeliveryCost {
    pub deliveries: usize,
    pub zero_cache_us: f64,
    /// zero-cache's busiest process (the syncer that holds the clients).
    pub zero_cache_busiest_us: f64,
    pub clients_us: f64,
    pub postgres_us: f64,
}

impl DeliveryCost {
    /// The clients a process at one full core could keep up with at `rate` writes/s, given
    /// its CPU per delivery over all of them. For the busiest syncer of N (the clients split
    /// evenly) this is what all N hold together, each at one core.
    pub fn clients_per_core(us: f64, rate: u32) -> f64 {
        1e6 / (us * f64::from(rate)).max(1e-9)
    }
}

#[derive(Debug, Default, Serialize)]
pub struct Report {
    pub rate: u32,
    pub secs: u32,
    pub low_rate: u32,
    pub low_secs: u32,
    pub points: Vec<Point>,
    /// Why the two-view-syncer arm did not run, when it did not.
    pub pair_missing: Option<String>,
}

impl Ctx<'_> {
    /// The fan-out phase; saves `fanout-<stamp>.md`/`.json` in `out_dir` and returns the report.
    pub async fn fanout(&self, opts: &Options, out_dir: &Path) -> anyhow::Result<Report> {
        if opts.clients.iter().any(|&k| k == 0 || k > 100_000)
            || !(1..=1000).contains(&opts.rate)
            || opts.secs == 0
            || opts.per_process == 0
        {
            bail!(
                "--fanout-clients must be 1 to 100000 each, --fanout-rate 1 to 1000 writes/s, --fanout-secs and --fanout-per-process at least 1"
            );
        }
        let coll = self.collection("bench_fanout").await?;
        let perms = self
            .state
            .service("fanout-permissions")?
            .join("permissions.json");
        std::fs::write(&perms, PERMISSIONS)?;
        let mut env = self.source_env.to_vec();
        env.push(("ZERO_PERMISSIONS_FILE".into(), perms.display().to_string()));
        let source = crate::probes::SourceServer::start(
            self.source_bin,
            &self.state.service("source-fanout")?,
            &self.mongo.uri(),
            "bench_fanout",
            &env,
        )
        .await?;
        let zopts = self.zero_cache_options("f1", source.ws_url()).await?;
        let mut zc = ZeroCache::start_in(self.state.service("zero-cache-fanout")?, zopts).await?;
        let single = Topology {
            name: "1 view-syncer (single node)",
            urls: vec![zc.url()],
            roots: vec![zc.pid()],
        };
        // Both topologies are up for the whole phase and the points alternate between them,
        // so that the machine's other load falls on both alike.
        let popts = self.zero_cache_options("f2", source.ws_url()).await?;
        let (mut rm_vs, pair, pair_missing) = match view_syncers::Topology::start(
            self.state.service("fanout-vs2")?,
            popts,
            2,
        )
        .await
        {
            Ok(t) => {
                let pair = Topology {
                    name: "2 view-syncers (+ replication-manager)",
                    urls: (0..t.view_syncers.len())
                        .map(|i| t.view_syncers.url(i))
                        .collect(),
                    roots: std::iter::once(t.rm.pid())
                        .chain(t.view_syncers.iter().map(ZeroCache::pid))
                        .collect(),
                };
                (Some(t), Some(pair), None)
            }
            Err(e) => {
                say(format!("2 view-syncers: could not start: {e:#}"));
                (None, None, Some(format!("it did not start: {e:#}")))
            }
        };
        let mut report = Report {
            rate: opts.rate,
            secs: opts.secs,
            low_rate: LOW_RATE,
            low_secs: LOW_SECS,
            pair_missing,
            ..Default::default()
        };
        let mut seq = 0u64;
        // Bytes each client added (its share of the client processes and of zero-cache's growth)
        // at the last point measured, per topology: the largest K so far, where the Node
        // processes' own ~90 MB weigh least.
        let mut per_client = [0u64; 2];
        let mut stopped = [false; 2];
        for &k in &opts.clients {
            for (t, topo) in std::iter::once(&single).chain(pair.as_ref()).enumerate() {
                if stopped[t] {
                    continue;
                }
                let need = per_client[t] * k as u64;
                let avail = mem_available()?;
                let mut point = if need + RESERVE_BYTES > avail {
                    Point {
                        topology: topo.name.into(),
                        clients: k,
                        stopped: Some(format!(
                            "skipped: about {} MB needed, {} MB available beside a {} MB reserve",
                            need >> 20,
                            avail >> 20,
                            RESERVE_BYTES >> 20
                        )),
                        ..Default::default()
                    }
                } else {
                    say(format!("--- fan-out: {k} clients, {} ---", topo.name));
                    match self
                        .fanout_point(opts, topo, &coll, &source, k, &mut seq)
                        .await
                    {
                        Ok(p) => p,
                        Err(e) => Point {
                            topology: topo.name.into(),
                            clients: k,
                            stopped: Some(format!("failed: {e:#}")),
                            ..Default::default()
                        },
                    }
                };
                // What the clients added: their processes and zero-cache's growth.
                let added = (point.zero_cache_rss_mb - point.zero_cache_rss_before_mb).max(0.0)
                    + point.clients_rss_mb;
                if point.cpu.is_some() {
                    per_client[t] = (added * 1_048_576.0) as u64 / k as u64;
                }
                if point.stopped.is_some() || point.connected < k || point.served == 0 {
                    // A larger K would only fail the same way, slower.
                    stopped[t] = true;
                    point.stopped.get_or_insert_with(|| {
                        format!(
                            "{} of {k} connected, {} served: larger K not tried",
                            point.connected, point.served
                        )
                    });
                }
                say(format!("fan-out point: {point:?}"));
                report.points.push(point);
            }
        }
        zc.stop().await?;
        if let Some(t) = rm_vs.take() {
            t.stop().await?;
        }
        drop(source);
        let md = markdown(&report);
        eprintln!("\n{md}");
        std::fs::create_dir_all(out_dir)?;
        let stamp = crate::utc_stamp(false);
        let md_path = out_dir.join(format!("fanout-{stamp}.md"));
        std::fs::write(&md_path, &md)?;
        std::fs::write(
            out_dir.join(format!("fanout-{stamp}.json")),
            serde_json::to_string_pretty(&report)?,
        )?;
        say(format!("saved {}", md_path.display()));
        Ok(report)
    }

    /// One K on one topology: connect, the low-rate run, the steady run, CPU and memory.
    async fn fanout_point(
        &self,
        opts: &Options,
        topo: &Topology,
        coll: &mongodb::Collection<bson::Document>,
        source: &crate::probes::SourceServer,
        k: usize,
        seq: &mut u64,
    ) -> anyhow::Result<Point> {
        let room = format!("fan{}", *seq);
        let procs = k.div_ceil(opts.per_process.max(1));
        let log_dir = self.state.service(&format!("fanout-{room}"))?;
        let zero_cache_rss_before_mb = rss_mb(topo);
        let t0 = Instant::now();
        let mut clients = Vec::new();
        for p in 0..procs {
            let first = p * k / procs;
            let n = (p + 1) * k / procs - first;
            // Each process spreads its clients over every URL, so the split stays even.
            clients.push(Clients::spawn(
                &topo.urls,
                n,
                first,
                &room,
                &log_dir.join(format!("p{p}.stderr.log")),
            )?);
        }
        let mut connected = 0;
        for c in &mut clients {
            connected += c.ready(Duration::from_secs(600)).await?;
        }
        let connect_secs = t0.elapsed().as_secs_f64();
        say(format!(
            "{connected} of {k} clients connected in {connect_secs:.1} s over {procs} process(es)"
        ));
        let mut point = Point {
            topology: topo.name.into(),
            clients: k,
            processes: procs,
            connected,
            connect_secs,
            zero_cache_rss_before_mb,
            ..Default::default()
        };

        // Low rate: each write alone in flight.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let low_n = u64::from(LOW_RATE) * u64::from(LOW_SECS);
        let from = *seq;
        write_room(coll, &room, LOW_RATE, LOW_SECS, from).await?;
        *seq += low_n;
        let low = flush_all(&mut clients, from, *seq).await?;
        point.low_all_seen = percentiles(&low.all_seen);
        point.low_served = low.served;
        say(format!(
            "low rate {LOW_RATE}/s: all-clients-see {:?}, served {}",
            point.low_all_seen, low.served
        ));

        // Steady rate, with every part's CPU read around it.
        let n = u64::from(opts.rate) * u64::from(opts.secs);
        let from = *seq;
        let pids: Vec<u32> = clients.iter().filter_map(|c| c.child.id()).collect();
        let c0 = CpuRead::take(
            topo,
            &pids,
            source.process.pid(),
            self.mongo.pid(),
            self.pg.pid(),
        )?;
        write_room(coll, &room, opts.rate, opts.secs, from).await?;
        let c1 = CpuRead::take(
            topo,
            &pids,
            source.process.pid(),
            self.mongo.pid(),
            self.pg.pid(),
        )?;
        *seq += n;
        point.zero_cache_rss_mb = rss_mb(topo);
        point.clients_rss_mb = pids.iter().map(|&p| rss(p)).sum::<u64>() as f64 / 1_048_576.0;
        let steady = flush_all(&mut clients, from, *seq).await?;
        // Until the last client saw the last write: the CPU a backlog costs after the writes
        // stopped is part of delivering them.
        let c2 = CpuRead::take(
            topo,
            &pids,
            source.process.pid(),
            self.mongo.pid(),
            self.pg.pid(),
        )?;
        point.cost = Some(c0.cost_until(&c2, steady.each_seen.len()));
        point.all_seen = percentiles(&steady.all_seen);
        point.each_seen = percentiles(&steady.each_seen);
        point.served = steady.served;
        point.cpu = Some(c0.cores_until(&c1));
        say(format!(
            "{}/s: all-clients-see {:?}, each {:?}, served {}, cores {:?}",
            opts.rate, point.all_seen, point.each_seen, steady.served, point.cpu
        ));
        for c in clients {
            c.quit().await;
        }
        *seq += 1;
        Ok(point)
    }
}

/// Allow-all read permissions for `messages`: zero-cache authorizes legacy (ZQL) queries with
/// the published permissions, and with none it returns no rows.
const PERMISSIONS: &str =
    r#"{"tables":{"messages":{"row":{"select":[["allow",{"type":"and","conditions":[]}]]}}}}"#;

/// Writes `rate × secs` rows of `room` (ids `<room>-<seq>`), stamped with their send time.
async fn write_room(
    coll: &mongodb::Collection<bson::Document>,
    room: &str,
    rate: u32,
    secs: u32,
    first: u64,
) -> anyhow::Result<()> {
    let coll = coll.clone();
    let room = room.to_string();
    paced_writes(rate, secs, first, move |i, sent| {
        let coll = coll.clone();
        let m = message(i);
        let d = doc! {
            "_id": format!("{room}-{i:09}"),
            "room_id": &room,
            "author": m.author,
            "text": m.text,
            SENT_COLUMN: sent,
            "created_at": bson::DateTime::now(),
        };
        async move {
            coll.insert_one(d).await?;
            Ok(())
        }
    })
    .await
}

/// What the client processes saw of writes `from..to`.
#[derive(Default)]
struct Seen {
    all_seen: Vec<f64>,
    each_seen: Vec<f64>,
    served: usize,
}

async fn flush_all(clients: &mut [Clients], from: u64, to: u64) -> anyhow::Result<Seen> {
    for c in clients.iter_mut() {
        c.send(&format!("flush {from} {to} {}\n", DRAIN.as_millis()))
            .await?;
    }
    // Per write, the slowest client over every process.
    let mut slowest = vec![f64::NAN; (to - from) as usize];
    let mut seen_by = vec![0usize; (to - from) as usize];
    let mut out = Seen::default();
    for c in clients.iter_mut() {
        let (writes, served) = c.flushed(DRAIN + Duration::from_secs(30)).await?;
        out.served += served;
        for (s, lat) in writes {
            let i = (s - from) as usize;
            seen_by[i] += lat.len();
            for l in lat {
                out.each_seen.push(l);
                slowest[i] = if slowest[i].is_nan() {
                    l
                } else {
                    slowest[i].max(l)
                };
            }
        }
    }
    let total: usize = clients.iter().map(|c| c.clients).sum();
    // A write some client never saw has no all-clients-see time; `served` says so.
    out.all_seen = slowest
        .iter()
        .zip(&seen_by)
        .filter(|&(_, &n)| n == total)
        .map(|(&l, _)| l)
        .collect();
    Ok(out)
}

/// One `fanout.mjs` process.
struct Clients {
    child: Child,
    stdin: ChildStdin,
    stdout: tokio::io::Lines<BufReader<ChildStdout>>,
    clients: usize,
    stderr_log: PathBuf,
}

impl Clients {
    fn spawn(
        urls: &[String],
        n: usize,
        first: usize,
        room: &str,
        stderr_log: &Path,
    ) -> anyhow::Result<Self> {
        let log = std::fs::File::create(stderr_log)
            .with_context(|| format!("creating {}", stderr_log.display()))?;
        let mut child = tokio::process::Command::new(node_bin())
            // A client is a few MB of heap; Node's default old space would cap K well below
            // what the machine holds.
            .arg("--max-old-space-size=8192")
            .arg(node_dir().join("fanout.mjs"))
            .args(["--url", &urls.join(",")])
            .args(["--clients", &n.to_string()])
            .args(["--first", &first.to_string()])
            .args(["--room", room])
            .current_dir(node_dir())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(log)
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .context("starting node fanout.mjs")?;
        let stdin = child.stdin.take().context("fanout.mjs stdin")?;
        let stdout = BufReader::new(child.stdout.take().context("fanout.mjs stdout")?).lines();
        Ok(Self {
            child,
            stdin,
            stdout,
            clients: n,
            stderr_log: stderr_log.to_path_buf(),
        })
    }

    /// The next JSON line, watching memory: a process that eats into the reserve is killed.
    async fn line(&mut self, timeout: Duration) -> anyhow::Result<serde_json::Value> {
        let started = Instant::now();
        loop {
            match tokio::time::timeout(Duration::from_millis(500), self.stdout.next_line()).await {
                Ok(line) => {
                    let Some(line) = line? else {
                        bail!(
                            "fanout.mjs exited ({:?}); its stderr ends:\n{}",
                            self.child.try_wait().ok().flatten(),
                            tail(&self.stderr_log)
                        );
                    };
                    return serde_json::from_str(&line)
                        .with_context(|| format!("fanout.mjs printed non-JSON: {line}"));
                }
                Err(_) => {
                    let avail = mem_available()?;
                    if avail < RESERVE_BYTES / 2 {
                        let _ = self.child.start_kill();
                        bail!(
                            "memory bound: {} MB left on the machine, stopped the clients",
                            avail >> 20
                        );
                    }
                    if started.elapsed() > timeout {
                        bail!("fanout.mjs said nothing for {timeout:?}");
                    }
                }
            }
        }
    }

    /// Waits for `ready`; the number of clients whose first result was complete.
    async fn ready(&mut self, timeout: Duration) -> anyhow::Result<usize> {
        let v = self.line(timeout).await?;
        if v["event"] != "ready" {
            bail!("fanout.mjs: expected its ready line, got {v}");
        }
        Ok(v["complete"].as_u64().unwrap_or(0) as usize)
    }

    async fn send(&mut self, cmd: &str) -> anyhow::Result<()> {
        self.stdin
            .write_all(cmd.as_bytes())
            .await
            .context("writing to fanout.mjs")
    }

    /// The `write` lines up to `flushed`: (seq, latencies) and the clients that saw them all.
    async fn flushed(
        &mut self,
        timeout: Duration,
    ) -> anyhow::Result<(Vec<(u64, Vec<f64>)>, usize)> {
        let mut writes = Vec::new();
        loop {
            let v = self.line(timeout).await?;
            match v["event"].as_str() {
                Some("write") => {
                    let seq = v["seq"].as_u64().context("write line without seq")?;
                    let lat = v["lat"]
                        .as_array()
                        .map(|a| a.iter().filter_map(|x| x.as_f64()).collect())
                        .unwrap_or_default();
                    writes.push((seq, lat));
                }
                Some("flushed") => {
                    return Ok((writes, v["served"].as_u64().unwrap_or(0) as usize));
                }
                _ => bail!("fanout.mjs: unexpected line {v}"),
            }
        }
    }

    async fn quit(mut self) {
        let _ = self.send("quit\n").await;
        if tokio::time::timeout(Duration::from_secs(15), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}

fn tail(p: &Path) -> String {
    let s = std::fs::read_to_string(p).unwrap_or_default();
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// CPU seconds of every part at one moment.
struct CpuRead {
    at: Instant,
    zero_cache: Vec<(u32, f64)>,
    clients: Vec<f64>,
    source: f64,
    mongod: f64,
    postgres: f64,
    machine: f64,
}

impl CpuRead {
    fn take(
        topo: &Topology,
        clients: &[u32],
        source: u32,
        mongod: u32,
        postgres: u32,
    ) -> anyhow::Result<Self> {
        let mut zero_cache = Vec::new();
        for &g in &topo.roots {
            for pid in tree(g) {
                if let Ok(c) = cpu_secs(Some(pid)) {
                    zero_cache.push((pid, c));
                }
            }
        }
        Ok(Self {
            at: Instant::now(),
            zero_cache,
            clients: clients
                .iter()
                .map(|&p| cpu_secs(Some(p)))
                .collect::<anyhow::Result<_>>()?,
            source: cpu_secs(Some(source))?,
            mongod: cpu_secs(Some(mongod))?,
            postgres: tree(postgres)
                .into_iter()
                .filter_map(|p| cpu_secs(Some(p)).ok())
                .sum(),
            machine: machine_busy_secs()?,
        })
    }

    fn cost_until(&self, later: &Self, deliveries: usize) -> DeliveryCost {
        let c = self.cores_until(later);
        let secs = (later.at - self.at).as_secs_f64();
        let us = |cores: f64| cores * secs * 1e6 / deliveries.max(1) as f64;
        DeliveryCost {
            deliveries,
            zero_cache_us: us(c.zero_cache),
            zero_cache_busiest_us: us(c.zero_cache_busiest),
            clients_us: us(c.clients.iter().sum()),
            postgres_us: us(c.postgres),
        }
    }

    fn cores_until(&self, later: &Self) -> CpuUse {
        let secs = (later.at - self.at).as_secs_f64().max(1e-9);
        let per_pid: Vec<f64> = later
            .zero_cache
            .iter()
            .map(|&(pid, c)| {
                let before = self
                    .zero_cache
                    .iter()
                    .find(|&&(p, _)| p == pid)
                    .map_or(0.0, |&(_, c0)| c0);
                (c - before) / secs
            })
            .collect();
        CpuUse {
            zero_cache: per_pid.iter().sum(),
            zero_cache_busiest: per_pid.iter().copied().fold(0.0, f64::max),
            clients: self
                .clients
                .iter()
                .zip(&later.clients)
                .map(|(a, b)| (b - a) / secs)
                .collect(),
            source: (later.source - self.source) / secs,
            mongod: (later.mongod - self.mongod) / secs,
            postgres: (later.postgres - self.postgres) / secs,
            machine_busy: (later.machine - self.machine) / secs,
            machine_cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
        }
    }
}

/// `root` and every process under it: zero-cache's workers (change-streamer, replicator,
/// syncer, reaper) are forked into process groups of their own, so only the parent links say
/// which are whose.
fn tree(root: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return vec![root];
    };
    let parents: Vec<(u32, u32)> = dir
        .flatten()
        .filter_map(|e| {
            let pid = e.file_name().to_str()?.parse::<u32>().ok()?;
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            // After the command name: state, ppid.
            let rest = &stat[stat.rfind(')')? + 1..];
            Some((pid, rest.split_whitespace().nth(1)?.parse::<u32>().ok()?))
        })
        .collect();
    let mut out = vec![root];
    let mut i = 0;
    while i < out.len() {
        let p = out[i];
        out.extend(parents.iter().filter(|&&(_, pp)| pp == p).map(|&(c, _)| c));
        i += 1;
    }
    out
}

/// `VmRSS` of a process, bytes (0 if it is gone).
fn rss(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("VmRSS:"))?;
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        })
        .map_or(0, |kb| kb * 1024)
}

/// zero-cache's resident memory (every process of the topology), MB.
fn rss_mb(topo: &Topology) -> f64 {
    let bytes: u64 = topo.roots.iter().flat_map(|&r| tree(r)).map(rss).sum();
    bytes as f64 / 1_048_576.0
}

/// CPU seconds the whole machine has been busy (not idle, not waiting on I/O), from the
/// first line of /proc/stat (clock ticks of 10 ms).
fn machine_busy_secs() -> anyhow::Result<f64> {
    let s = std::fs::read_to_string("/proc/stat").context("reading /proc/stat")?;
    let ticks: Vec<u64> = s
        .lines()
        .next()
        .filter(|l| l.starts_with("cpu "))
        .context("no cpu line in /proc/stat")?
        .split_whitespace()
        .skip(1)
        .filter_map(|t| t.parse().ok())
        .collect();
    let total: u64 = ticks.iter().take(8).sum();
    let idle = ticks.get(3).copied().unwrap_or(0) + ticks.get(4).copied().unwrap_or(0);
    Ok((total - idle) as f64 / 100.0)
}

/// `MemAvailable` of the machine, bytes.
fn mem_available() -> anyhow::Result<u64> {
    let s = std::fs::read_to_string("/proc/meminfo").context("reading /proc/meminfo")?;
    s.lines()
        .find(|l| l.starts_with("MemAvailable:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .context("no MemAvailable in /proc/meminfo")
}

fn ms(p: &Option<Percentiles>, f: fn(&Percentiles) -> f64) -> String {
    p.as_ref().map_or("—".into(), |p| format!("{:.0}", f(p)))
}

/// The fan-out table.
pub fn markdown(r: &Report) -> String {
    let mut s = format!(
        "### Fan-out: write → all-clients-see, {} writes/s for {} s (low rate: {}/s for {} s)\n\n",
        r.rate, r.secs, r.low_rate, r.low_secs
    );
    s.push_str("| topology | K clients | served | p50 ms | p99 ms | each p50/p99 ms | low-rate p50/p99 ms | cores: zero-cache (busiest process) · clients · source · mongod · postgres · whole machine | CPU µs per delivery: zero-cache busiest process (all) · clients · postgres | K held at this rate by one core per syncer · by one client process at one core | RSS MB zero-cache · clients | note |\n");
    s.push_str("|---|---:|---:|---:|---:|---:|---:|---|---|---|---|---|\n");
    for p in &r.points {
        let cpu = p.cpu.as_ref().map_or("—".into(), |c| {
            format!(
                "{:.2} ({:.2}) · {} · {:.2} · {:.2} · {:.2} · {:.2} of {}",
                c.zero_cache,
                c.zero_cache_busiest,
                c.clients
                    .iter()
                    .map(|x| format!("{x:.2}"))
                    .collect::<Vec<_>>()
                    .join("+"),
                c.source,
                c.mongod,
                c.postgres,
                c.machine_busy,
                c.machine_cores
            )
        });
        let (cost, per_core) = p.cost.as_ref().map_or(("—".into(), "—".into()), |c| {
            (
                format!(
                    "{:.0} ({:.0}) · {:.0} · {:.0}",
                    c.zero_cache_busiest_us, c.zero_cache_us, c.clients_us, c.postgres_us
                ),
                format!(
                    "{:.0} · {:.0}",
                    DeliveryCost::clients_per_core(c.zero_cache_busiest_us, r.rate),
                    DeliveryCost::clients_per_core(c.clients_us, r.rate)
                ),
            )
        });
        s.push_str(&format!(
            "| {} | {} | {} | {} | {} | {}/{} | {}/{} | {} | {} | {} | {:.0} · {:.0} | {} |\n",
            p.topology,
            p.clients,
            p.served,
            ms(&p.all_seen, |p| p.p50),
            ms(&p.all_seen, |p| p.p99),
            ms(&p.each_seen, |p| p.p50),
            ms(&p.each_seen, |p| p.p99),
            ms(&p.low_all_seen, |p| p.p50),
            ms(&p.low_all_seen, |p| p.p99),
            cpu,
            cost,
            per_core,
            p.zero_cache_rss_mb,
            p.clients_rss_mb,
            p.stopped.as_deref().unwrap_or("")
        ));
    }
    if let Some(why) = &r.pair_missing {
        s.push_str(&format!("\n2 view-syncers: not measured ({why}).\n"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_child_is_in_its_parents_tree() {
        let me = std::process::id();
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        let t = tree(me);
        child.kill().unwrap();
        child.wait().unwrap();
        assert_eq!(t[0], me);
        assert!(t.contains(&child.id()), "{t:?}");
        assert!(!tree(child.id()).contains(&me));
        assert!(rss(me) > 0);
        assert!(mem_available().unwrap() > 0);
    }
}
