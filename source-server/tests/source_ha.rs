//! Two source-servers behind one address, as `source.replicas: 2` runs them: kill -9 either one
//! under a steady write load and zero-cache moves to the other through the balancer (a stand-in
//! for the Kubernetes Service), resumes from its last watermark, and loses and repeats nothing.
//!
//! Real processes throughout: a MongoDB replica set, PostgreSQL, two source-servers with the
//! same configuration and token, the harness's TCP balancer in front of them, and zero-cache
//! 1.9.0 whose `ZERO_UPSTREAM_DB` points at the balancer. The writer inserts, updates and
//! deletes (some of it in multi-document transactions); the expected rows are read back from
//! MongoDB at the end, never taken from the writer. The replica must equal them exactly (rows
//! lost, extra, stale and duplicated all 0), zero-cache must keep its replica version (no
//! `reset-required`, no fresh initial sync) and stay up, and each source must have served a
//! resume.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bson::doc;
use common::*;
use serde_json::Value;
use tokio::sync::watch;
use zerostack_harness::balancer::Balancer;
use zerostack_harness::{Mongo, Postgres, ZeroCache, http, service_temp_dir};

const COLUMNS: &[&str] = &["_id", "roomId", "text", "n"];
const SEED: usize = 300;
/// The writer stops after this many operations even if nobody tells it to.
const MAX_OPS: u64 = 20_000;
/// How long the load runs between two steps of the scenario.
const STEP: Duration = Duration::from_millis(2500);

/// What the writer did (for the report only: the expectation is MongoDB's content).
#[derive(Debug, Default)]
struct Load {
    inserts: u64,
    updates: u64,
    deletes: u64,
    transactions: u64,
}

/// A small deterministic generator, so a run can be repeated from its printed seed.
struct XorShift(u64);
impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Writes until told to stop (or `MAX_OPS`): single inserts, updates and deletes, and
/// transactions of two inserts, an update and a delete. Every write must be acknowledged: the
/// MongoDB under test never fails here.
async fn write_load(
    db: mongodb::Database,
    mut stop: watch::Receiver<bool>,
    seed: u64,
) -> anyhow::Result<Load> {
    let c = db.collection::<bson::Document>("messages");
    let mut rng = XorShift(seed | 1);
    // Which ids still exist, to pick update and delete targets from.
    let mut live: Vec<String> = (0..SEED).map(|i| format!("seed{i}")).collect();
    let mut load = Load::default();
    let client = db.client().clone();
    for i in 0..MAX_OPS {
        if *stop.borrow() {
            break;
        }
        let kind = rng.below(10);
        match kind {
            0..=3 => {
                let id = format!("w{i}");
                c.insert_one(doc! {"_id": &id, "roomId": format!("r{}", i % 3), "text": format!("insert {i}"), "n": 0})
                    .await?;
                live.push(id);
                load.inserts += 1;
            }
            4..=6 if !live.is_empty() => {
                let id = &live[rng.below(live.len())];
                c.update_one(
                    doc! {"_id": id},
                    doc! {"$set": {"text": format!("update {i}")}, "$inc": {"n": 1}},
                )
                .await?;
                load.updates += 1;
            }
            7 if live.len() > 10 => {
                let id = live.swap_remove(rng.below(live.len()));
                c.delete_one(doc! {"_id": &id}).await?;
                load.deletes += 1;
            }
            _ if live.len() > 10 => {
                let mut session = client.start_session().await?;
                session.start_transaction().await?;
                let a = format!("t{i}a");
                let b = format!("t{i}b");
                c.insert_one(
                    doc! {"_id": &a, "roomId": "rt", "text": format!("txn {i} a"), "n": 0},
                )
                .session(&mut session)
                .await?;
                c.insert_one(
                    doc! {"_id": &b, "roomId": "rt", "text": format!("txn {i} b"), "n": 0},
                )
                .session(&mut session)
                .await?;
                let upd = live[rng.below(live.len())].clone();
                c.update_one(
                    doc! {"_id": &upd},
                    doc! {"$set": {"text": format!("txn {i} update")}, "$inc": {"n": 1}},
                )
                .session(&mut session)
                .await?;
                let del = live.swap_remove(rng.below(live.len()));
                c.delete_one(doc! {"_id": &del})
                    .session(&mut session)
                    .await?;
                session.commit_transaction().await?;
                live.push(a);
                live.push(b);
                load.transactions += 1;
            }
            _ => {}
        }
        // A steady rate, and a chance for the stop signal to be seen.
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(3)) => {}
            _ = stop.changed() => {}
        }
    }
    Ok(load)
}

/// The replica against MongoDB, row by row.
#[derive(Debug, Default, PartialEq)]
struct Diff {
    mongo_rows: usize,
    replica_rows: usize,
    /// In MongoDB, not in the replica.
    lost: usize,
    /// In the replica, not (any more) in MongoDB.
    extra: usize,
    /// In both, with other values.
    stale: usize,
    /// Replica rows whose `_id` appears more than once.
    duplicated: usize,
}

impl Diff {
    fn clean(&self) -> bool {
        self.lost == 0 && self.extra == 0 && self.stale == 0 && self.duplicated == 0
    }
}

fn by_id(rows: &[Value]) -> (BTreeMap<String, Value>, usize) {
    let mut map = BTreeMap::new();
    let mut duplicated = 0;
    for r in rows_on(rows, COLUMNS) {
        let id = r["_id"].as_str().unwrap_or_default().to_string();
        if map.insert(id, r).is_some() {
            duplicated += 1;
        }
    }
    (map, duplicated)
}

async fn diff(zero: &ZeroCache, db: &mongodb::Database) -> anyhow::Result<Diff> {
    let want = mongo_rows(db, "messages", doc! {}, COLUMNS).await?;
    let replica = zero.replica().await?;
    let have = replica["messages"]
        .as_array()
        .map_or(&[][..], |a| a.as_slice());
    let (want, _) = by_id(&want);
    let (have_map, duplicated) = by_id(have);
    Ok(Diff {
        mongo_rows: want.len(),
        replica_rows: have.len(),
        lost: want.keys().filter(|k| !have_map.contains_key(*k)).count(),
        extra: have_map.keys().filter(|k| !want.contains_key(*k)).count(),
        stale: want
            .iter()
            .filter(|(k, v)| have_map.get(*k).is_some_and(|h| h != *v))
            .count(),
        duplicated,
    })
}

/// Waits (bounded) until the replica equals MongoDB; the last comparison either way.
async fn converge(zero: &ZeroCache, db: &mongodb::Database) -> anyhow::Result<Diff> {
    let mut last = Diff::default();
    for _ in 0..180 {
        if let Ok(d) = diff(zero, db).await {
            if d.clean() && d.mongo_rows == d.replica_rows {
                return Ok(d);
            }
            last = d;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Ok(last)
}

/// The number of zero-cache connections `source` has open (`None`: it does not answer).
async fn open_connections(source: &SourceServer) -> Option<usize> {
    let response = http::Client::new()
        .get(format!("{}/metadata/status", source.http()))
        .bearer_auth(TOKEN)
        .send()
        .await
        .ok()?;
    let status: Value = response.json().ok()?;
    Some(status["connections"].as_array().map_or(0, Vec::len))
}

/// Waits (bounded) until exactly one live source holds zero-cache's connection; its index.
async fn connected_source(sources: &[SourceServer]) -> anyhow::Result<usize> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut holding = Vec::new();
        for (i, s) in sources.iter().enumerate() {
            if open_connections(s).await.unwrap_or(0) > 0 {
                holding.push(i);
            }
        }
        if let [one] = holding[..] {
            return Ok(one);
        }
        if Instant::now() > deadline {
            bail!("no single source holds zero-cache's connection (holding: {holding:?})");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits (up to `limit`) until `source` holds a connection; how long that took.
async fn wait_connected(
    source: &SourceServer,
    what: &str,
    limit: Duration,
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    while started.elapsed() < limit {
        if open_connections(source).await.unwrap_or(0) > 0 {
            return Ok(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!(
        "{what}: zero-cache never reconnected to the other source\n{}",
        source.process.log_tail(30)
    )
}

/// Lines of a source's logs (every run of it: they are appended) that contain all of `needles`.
fn log_lines(dir: &Path, needles: &[&str]) -> usize {
    ["source-server.stdout.log", "source-server.stderr.log"]
        .iter()
        .filter_map(|f| std::fs::read_to_string(dir.join(f)).ok())
        .map(|s| {
            s.lines()
                .filter(|l| needles.iter().all(|n| l.contains(n)))
                .count()
        })
        .sum()
}

/// The topology under test: MongoDB, PostgreSQL, two sources (each reaching MongoDB directly,
/// or through its own proxy so that one alone can be cut off), the balancer in front of them
/// and zero-cache streaming through it, with its initial sync done.
struct Topology {
    dir: tempfile::TempDir,
    _mongo: Mongo,
    _pg: Postgres,
    db: mongodb::Database,
    dirs: Vec<PathBuf>,
    sources: Vec<SourceServer>,
    /// Per source, the proxy it reaches MongoDB through (empty: direct).
    mongo_proxies: Vec<Option<Balancer>>,
    balancer: Balancer,
    zero: ZeroCache,
    version: String,
}

impl Topology {
    async fn start(name: &str, proxied: bool) -> anyhow::Result<Self> {
        let dir = service_temp_dir(name)?;
        let mongo = Mongo::start_in(dir.path().join("mongo")).await?;
        let pg = Postgres::start_in(dir.path().join("pg")).await?;
        let db = mongo.client().await?.database("app");
        let seed_rows: Vec<bson::Document> = (0..SEED)
            .map(|i| doc! {"_id": format!("seed{i}"), "roomId": "r0", "text": format!("seed {i}"), "n": 0})
            .collect();
        db.collection("messages").insert_many(seed_rows).await?;

        let dirs: Vec<PathBuf> = ["source-a", "source-b"]
            .iter()
            .map(|n| dir.path().join(n))
            .collect();
        let mut sources = Vec::new();
        let mut mongo_proxies = Vec::new();
        for d in &dirs {
            let uri = if proxied {
                let proxy = Balancer::start(vec![([127, 0, 0, 1], mongo.port()).into()]).await?;
                // Direct: the driver must not discover the member's own address and go around
                // the proxy. Short server selection, so a cut-off source notices in seconds.
                let uri = format!(
                    "mongodb://127.0.0.1:{}/?directConnection=true&serverSelectionTimeoutMS=2000",
                    proxy.port()
                );
                mongo_proxies.push(Some(proxy));
                uri
            } else {
                mongo_proxies.push(None);
                mongo.uri()
            };
            sources.push(SourceServer::start(d, &uri, "app", &[]).await?);
        }
        let balancer = Balancer::start(
            sources
                .iter()
                .map(|s| ([127, 0, 0, 1], s.port).into())
                .collect(),
        )
        .await?;
        let zero = start_zero_cache_on(dir.path(), balancer.port(), &pg).await?;
        let initial = converge(&zero, &db).await?;
        assert!(initial.clean(), "initial sync: {initial:?}");
        let version = replica_version(&zero).await?;
        Ok(Topology {
            dir,
            _mongo: mongo,
            _pg: pg,
            db,
            dirs,
            sources,
            mongo_proxies,
            balancer,
            zero,
            version,
        })
    }

    fn start_load(
        &self,
    ) -> (
        watch::Sender<bool>,
        tokio::task::JoinHandle<anyhow::Result<Load>>,
    ) {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64);
        eprintln!("write load seed {seed}, replica version {}", self.version);
        let (stop, stopped) = watch::channel(false);
        (
            stop,
            tokio::spawn(write_load(self.db.clone(), stopped, seed)),
        )
    }

    /// Stops the load, waits for convergence, prints the counts and checks that nothing was
    /// lost, repeated or rebuilt.
    async fn finish(
        &mut self,
        stop: watch::Sender<bool>,
        writer: tokio::task::JoinHandle<anyhow::Result<Load>>,
    ) -> anyhow::Result<()> {
        let _ = stop.send(true);
        let load = writer.await??;
        let end = converge(&self.zero, &self.db).await?;
        let resumes: Vec<usize> = self
            .dirs
            .iter()
            .map(|d| log_lines(d, &["zero-cache connected", "streaming"]))
            .collect();
        let resets_logged: usize = self
            .dirs
            .iter()
            .map(|d| log_lines(d, &["sending reset-required"]))
            .sum();
        let mut resets_metric = 0.0;
        for s in &self.sources {
            resets_metric += s.resets_counted().await;
        }
        eprintln!(
            "load {load:?}\nreplica vs MongoDB: {end:?}\nzero-cache connections through the \
             balancer: {} to source 0, {} to source 1 ({} refused attempts); resumes served per \
             source (logs): {resumes:?}; resets logged {resets_logged}, counted {resets_metric}",
            self.balancer.connections_to(0),
            self.balancer.connections_to(1),
            self.balancer.failed_to(0) + self.balancer.failed_to(1),
        );
        assert!(
            load.inserts > 0 && load.updates > 0 && load.deletes > 0 && load.transactions > 0,
            "the load did not exercise every kind of write: {load:?}"
        );
        assert!(
            end.clean() && end.mongo_rows == end.replica_rows,
            "the replica does not equal MongoDB after the faults: {end:?}\n{}",
            self.zero.log_tail(20)
        );
        assert_eq!(resets_logged, 0, "a source sent reset-required");
        assert!(
            self.zero.is_running(),
            "zero-cache exited:\n{}",
            self.zero.log_tail(30)
        );
        assert_eq!(
            replica_version(&self.zero).await?,
            self.version,
            "zero-cache's replica was rebuilt"
        );
        assert!(
            resumes.iter().all(|&n| n >= 1),
            "each source must have served a resume: {resumes:?}"
        );
        Ok(())
    }

    async fn stop(mut self) -> anyhow::Result<()> {
        self.balancer.stop().await;
        self.zero.stop().await?;
        for s in &mut self.sources {
            s.process.terminate().await?;
        }
        for p in self.mongo_proxies.into_iter().flatten() {
            p.stop().await;
        }
        // The services first, their folders last.
        drop(self._mongo);
        drop(self._pg);
        drop(self.dir);
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_either_of_two_sources_under_load_loses_and_repeats_nothing() -> anyhow::Result<()>
{
    let mut t = Topology::start("source-ha", false).await?;
    let (stop, writer) = t.start_load();
    tokio::time::sleep(STEP).await;

    // Kill the source zero-cache streams from; it must move to the other one.
    let first = connected_source(&t.sources).await?;
    let other = 1 - first;
    t.sources[first].process.kill9().await?;
    let moved_after =
        wait_connected(&t.sources[other], "first kill", Duration::from_secs(60)).await?;
    eprintln!(
        "killed source {first}; zero-cache streams from source {other} after {moved_after:?}"
    );
    tokio::time::sleep(STEP).await;
    t.sources[first].start_again().await?;
    tokio::time::sleep(STEP).await;

    // Now kill that other one: zero-cache goes back to the restarted first.
    let now = connected_source(&t.sources).await?;
    assert_eq!(now, other, "zero-cache moved without its source failing");
    t.sources[other].process.kill9().await?;
    let back_after =
        wait_connected(&t.sources[first], "second kill", Duration::from_secs(60)).await?;
    eprintln!("killed source {other}; zero-cache streams from source {first} after {back_after:?}");
    tokio::time::sleep(STEP).await;
    t.sources[other].start_again().await?;

    t.finish(stop, writer).await?;
    // And the stream is live on the source it ended on: one more write arrives.
    t.db.collection::<bson::Document>("messages")
        .insert_one(doc! {"_id": "after", "roomId": "r0", "text": "after both kills", "n": 0})
        .await?;
    let after = converge(&t.zero, &t.db).await?;
    assert!(after.clean(), "a write after the faults: {after:?}");
    t.stop().await
}

/// One source loses MongoDB (its own network, a partition) while the other still reaches it:
/// the cut-off one must give zero-cache's connection up, so that zero-cache resumes on the other
/// and stays current while the partition lasts, instead of waiting on the cut-off one forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_cut_off_from_mongodb_hands_zero_cache_to_the_other() -> anyhow::Result<()> {
    let mut t = Topology::start("source-ha-partition", true).await?;
    let (stop, writer) = t.start_load();
    tokio::time::sleep(STEP).await;

    let cut = connected_source(&t.sources).await?;
    let other = 1 - cut;
    let proxy = t.mongo_proxies[cut].take().context("a proxied source")?;
    proxy.stop().await;
    let cut_at = Instant::now();
    let mut saw_not_ready = false;
    for _ in 0..40 {
        let ready = http::get(format!("{}/ready", t.sources[cut].http())).await;
        if ready.is_ok_and(|r| r.status().as_u16() == 503) {
            saw_not_ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(
        saw_not_ready,
        "/ready of the cut-off source kept saying ready"
    );
    // The hand-off comes after 30 s without MongoDB, then zero-cache's retry.
    wait_connected(&t.sources[other], "partition", Duration::from_secs(120)).await?;
    eprintln!(
        "cut source {cut} off MongoDB; zero-cache streams from source {other} {:?} later",
        cut_at.elapsed()
    );
    // The partition goes on: zero-cache must be current through the other source.
    tokio::time::sleep(STEP).await;
    t.finish(stop, writer).await?;
    assert_eq!(
        open_connections(&t.sources[cut]).await.unwrap_or(0),
        0,
        "zero-cache went back to the cut-off source"
    );
    t.stop().await
}
