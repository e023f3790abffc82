//! The whole stack with zero-cache as one replication-manager and view-syncers
//! (`zerostack_harness::view_syncers`): MongoDB, PostgreSQL, two source-servers behind the
//! harness's TCP balancer (a stand-in for the Service, and what the replication-manager dials),
//! the replication-manager
//! backing its replica up with Litestream 0.5 to a `file://` replica, two view-syncers restored
//! from that backup, and the ZRocket app. Real Zero clients (`tests/node/view-syncer-client.mjs`)
//! watch `rooms.publicChannels`, one per view-syncer, each through its own loopback TCP
//! forwarder that prefers "its" view-syncer and falls back to the others, as a Service with
//! session affinity would.
//!
//! Under a bounded steady write load (channels inserted into MongoDB, 4 a second) it kills -9 a
//! view-syncer, restarts the replication-manager, adds a view-syncer from the backup and
//! kills -9 the source the replication-manager streams from (it must move to the other). After
//! each it pauses the writes and waits until every replica and every client holds exactly
//! MongoDB's channels, printing rows lost / duplicated / extra for each (all must be 0).
//!
//! Needs the workspace binaries (`cargo build --bins` first) and `tests/install.sh` (Node
//! packages and Litestream are installed on first use).

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use zerostack_harness::cases::Cases;
use zerostack_harness::node::ensure_node_modules;
use zerostack_harness::paths::node_bin;
use zerostack_harness::stack::{ApiLogin, DATABASE, Stack, StackOptions, sign_up_api_client};
use zerostack_harness::view_syncers::ensure_litestream;
use zerostack_harness::{ManagedProcess, node_dir, read_replica};

/// How long every replica and client may take to hold MongoDB's rows once writes pause.
const CONVERGE_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a client may take to show its first complete result.
const FIRST_RESULT_TIMEOUT: Duration = Duration::from_secs(90);
/// The write load: one channel per tick.
const WRITE_EVERY: Duration = Duration::from_millis(250);
/// Upper bound on the load's writes, whatever happens (bounded loops).
const MAX_WRITES: usize = 2_000;
/// How long writes go on around each fault before the replicas are compared.
const LOAD_AROUND_FAULT: Duration = Duration::from_secs(5);

const SCENARIO: &str = "view_syncers";

/// A loopback TCP forwarder: each connection goes to the first backend in `order` that accepts
/// it, so a client follows "its" view-syncer while it lives and moves to another when it dies.
struct Forwarder {
    port: u16,
    /// Every connection made, by the backend port it reached (backends are tried in the order
    /// given, most preferred first).
    connections: Arc<Mutex<Vec<u16>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Forwarder {
    async fn start(order: Vec<u16>) -> Result<Forwarder> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let connections = Arc::new(Mutex::new(Vec::new()));
        let c = connections.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let backends = order.clone();
                let c = c.clone();
                tokio::spawn(async move {
                    for backend in backends {
                        let Ok(mut outbound) = TcpStream::connect(("127.0.0.1", backend)).await
                        else {
                            continue;
                        };
                        c.lock().unwrap().push(backend);
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                        return;
                    }
                });
            }
        });
        Ok(Forwarder {
            port,
            connections,
            task,
        })
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn connections(&self) -> Vec<u16> {
        self.connections.lock().unwrap().clone()
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One `view-syncer-client.mjs` process and what it printed.
struct Client {
    name: String,
    process: ManagedProcess,
}

impl Client {
    fn spawn(
        name: &str,
        url: &str,
        stack: &Stack,
        login: &ApiLogin,
        mutate: Option<Value>,
    ) -> Result<Client> {
        let dir = node_dir();
        let mut cmd = Command::new(node_bin());
        cmd.arg(dir.join("view-syncer-client.mjs"))
            .args(["--url", url, "--table", "channels"])
            .args(["--query", "rooms.publicChannels", "--args", "{}"])
            .arg("--schema")
            .arg(stack.export_dir.join("schema.json"))
            .args(["--auth", &login.token, "--user-id", &login.user_id])
            .current_dir(&dir);
        if let Some(args) = mutate {
            cmd.args([
                "--mutate",
                "room.create",
                "--mutate-args",
                &args.to_string(),
            ]);
        }
        let process = ManagedProcess::spawn(name, cmd, stack.state.path())?;
        Ok(Client {
            name: name.to_string(),
            process,
        })
    }

    fn lines(&self) -> Result<Vec<Value>> {
        let text = std::fs::read_to_string(self.process.stdout_log()).unwrap_or_default();
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                serde_json::from_str(l)
                    .with_context(|| format!("{} printed non-JSON: {l}", self.name))
            })
            .collect()
    }

    /// The keys of the latest complete result, if any.
    fn keys(&self) -> Result<Option<Vec<String>>> {
        let lines = self.lines()?;
        Ok(lines
            .iter()
            .rev()
            .find(|l| l["resultType"] == "complete")
            .map(keys_of))
    }

    /// The first complete result's keys, waiting for it.
    async fn first_complete(&mut self) -> Result<Vec<String>> {
        let deadline = Instant::now() + FIRST_RESULT_TIMEOUT;
        loop {
            let lines = self.lines()?;
            if let Some(l) = lines.iter().find(|l| l["resultType"] == "error") {
                bail!("{}: the query failed: {l}", self.name);
            }
            if let Some(first) = lines.iter().find(|l| l["resultType"] == "complete") {
                return Ok(keys_of(first));
            }
            if !self.process.is_running() || Instant::now() >= deadline {
                bail!(
                    "{}: no complete result (running: {})\n{}",
                    self.name,
                    self.process.is_running(),
                    self.process.log_tail(30)
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The `{"event": "mutation"}` line, waiting for it.
    async fn mutation(&mut self, timeout: Duration) -> Result<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(m) = self.lines()?.into_iter().find(|l| l["event"] == "mutation") {
                return Ok(m);
            }
            if !self.process.is_running() || Instant::now() >= deadline {
                bail!(
                    "{}: no mutation outcome\n{}",
                    self.name,
                    self.process.log_tail(30)
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

fn keys_of(line: &Value) -> Vec<String> {
    line["keys"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|k| k.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// The ids of MongoDB's channels (`rooms` with `t: "c"`), the truth every copy must equal.
async fn mongo_channel_ids(stack: &Stack) -> Result<Vec<String>> {
    use futures::TryStreamExt;
    let rooms = stack
        .mongo
        .client()
        .await?
        .database(DATABASE)
        .collection::<bson::Document>(zrocket::db::ROOMS);
    let docs: Vec<bson::Document> = rooms
        .find(bson::doc! {"t": "c"})
        .projection(bson::doc! {"_id": 1})
        .await?
        .try_collect()
        .await?;
    docs.iter()
        .map(|d| match d.get("_id") {
            Some(bson::Bson::String(s)) => Ok(s.clone()),
            Some(bson::Bson::ObjectId(o)) => Ok(o.to_hex()),
            other => bail!("a channel with an unexpected _id {other:?}"),
        })
        .collect()
}

/// The `_id`s of the `channels` rows in a zero-cache replica file.
async fn replica_channel_ids(file: &Path) -> Result<Vec<String>> {
    let dump = read_replica(file).await?;
    let rows = dump["channels"]
        .as_array()
        .with_context(|| format!("{}: no channels table", file.display()))?;
    Ok(rows
        .iter()
        .filter_map(|r| r["_id"].as_str().map(str::to_string))
        .collect())
}

/// Rows of a copy measured against MongoDB's.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Tally {
    rows: usize,
    /// In MongoDB, missing here.
    lost: usize,
    /// The same key more than once.
    duplicated: usize,
    /// Here, not in MongoDB.
    extra: usize,
}

impl Tally {
    fn of(copy: &[String], truth: &BTreeSet<String>) -> Tally {
        let distinct: BTreeSet<&String> = copy.iter().collect();
        Tally {
            rows: copy.len(),
            lost: truth.iter().filter(|k| !distinct.contains(k)).count(),
            duplicated: copy.len() - distinct.len(),
            extra: distinct.iter().filter(|k| !truth.contains(**k)).count(),
        }
    }

    fn clean(&self) -> bool {
        self.lost == 0 && self.duplicated == 0 && self.extra == 0
    }
}

/// Every replica file of the topology that runs now: the replication-manager's and each live
/// view-syncer's.
fn replicas(stack: &mut Stack) -> Vec<(String, std::path::PathBuf)> {
    let mut out = vec![("rm".to_string(), stack.zero.replica_file())];
    if let Some(vs) = &mut stack.view_syncers {
        for (i, zc) in vs.iter_mut().enumerate() {
            if zc.is_running() {
                out.push((format!("vs{i}"), zc.replica_file()));
            }
        }
    }
    out
}

/// The replica version of a zero-cache replica file: a fresh initial sync would change it.
async fn replica_version(file: &Path) -> Result<String> {
    let dump = read_replica(file).await?;
    dump["_zero.replicationConfig"][0]["replicaVersion"]
        .as_str()
        .map(str::to_string)
        .with_context(|| format!("{}: no replicaVersion", file.display()))
}

/// The replica version of every replica that runs now, by name.
async fn replica_versions(stack: &mut Stack) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for (name, file) in replicas(stack) {
        let version = replica_version(&file).await?;
        out.push((name, version));
    }
    Ok(out)
}

/// Streams a source has served, from its logs (every run of it: they are appended).
fn streams_served(source: &ManagedProcess) -> usize {
    [source.stdout_log(), source.stderr_log()]
        .iter()
        .filter_map(|f| std::fs::read_to_string(f).ok())
        .map(|s| {
            s.lines()
                .filter(|l| l.contains("zero-cache connected") && l.contains("streaming"))
                .count()
        })
        .sum()
}

/// Waits (bounded) until exactly one source holds a connection through the balancer (the
/// replication-manager's change stream, the only one that dials it); its index.
async fn streaming_source(stack: &Stack) -> Result<usize> {
    let bal = stack
        .source_balancer
        .as_ref()
        .context("no source balancer")?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let holding: Vec<usize> = (0..stack.source_count())
            .filter(|&i| bal.open_to(i) > 0)
            .collect();
        if let [one] = holding[..] {
            return Ok(one);
        }
        if Instant::now() >= deadline {
            bail!("no single source holds the replication-manager's stream: {holding:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits (bounded) until every replica and client holds exactly MongoDB's channels; prints and
/// returns the tallies. Writes must be paused.
async fn converge(stack: &mut Stack, clients: &[&Client], label: &str) -> Result<String> {
    let started = Instant::now();
    let deadline = started + CONVERGE_TIMEOUT;
    loop {
        let truth: BTreeSet<String> = mongo_channel_ids(stack).await?.into_iter().collect();
        let mut tallies = Vec::new();
        for (name, file) in replicas(stack) {
            let ids = replica_channel_ids(&file)
                .await
                .with_context(|| format!("reading {name}'s replica"))?;
            tallies.push((name, Tally::of(&ids, &truth)));
        }
        for c in clients {
            let ids = c.keys()?.unwrap_or_default();
            tallies.push((format!("client {}", c.name), Tally::of(&ids, &truth)));
        }
        let summary = tallies
            .iter()
            .map(|(n, t)| {
                format!(
                    "{n}: rows={} lost={} duplicated={} extra={}",
                    t.rows, t.lost, t.duplicated, t.extra
                )
            })
            .collect::<Vec<_>>()
            .join("; ");
        let line = format!("{label}: mongodb rows={} | {summary}", truth.len());
        if tallies.iter().all(|(_, t)| t.clean()) {
            let line = format!(
                "{line} (equal {:.1} s after the writes paused)",
                started.elapsed().as_secs_f64()
            );
            println!("[{SCENARIO}] {line}");
            return Ok(line);
        }
        if Instant::now() >= deadline {
            bail!(
                "not converged after {CONVERGE_TIMEOUT:?}: {line}\n{}",
                stack.log_tails()
            );
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// The steady write load: one channel inserted into MongoDB per tick while not paused.
struct Load {
    paused: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    written: Arc<AtomicUsize>,
    failed: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Load {
    async fn start(stack: &Stack, prefix: String) -> Result<Load> {
        let rooms = stack
            .mongo
            .client()
            .await?
            .database(DATABASE)
            .collection::<bson::Document>(zrocket::db::ROOMS);
        let paused = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let written = Arc::new(AtomicUsize::new(0));
        let failed = Arc::new(AtomicUsize::new(0));
        let (p, s, w, f) = (
            paused.clone(),
            stop.clone(),
            written.clone(),
            failed.clone(),
        );
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(WRITE_EVERY);
            for n in 0..MAX_WRITES {
                tick.tick().await;
                if s.load(Ordering::SeqCst) {
                    break;
                }
                if p.load(Ordering::SeqCst) {
                    continue;
                }
                let now = bson::DateTime::now();
                let id = format!("{prefix}-{n:05}");
                let doc = bson::doc! {
                    "_id": &id, "t": "c", "name": &id, "readOnly": false, "archived": false,
                    "memberIds": ["u-alice"], "usernames": ["alice"], "messageCount": 0_i64,
                    "createdBy": "u-alice", "createdAt": now, "updatedAt": now,
                };
                // MongoDB is the truth the copies are compared with, so a failed insert is
                // counted, not a loss.
                match rooms.insert_one(doc).await {
                    Ok(_) => w.fetch_add(1, Ordering::SeqCst),
                    Err(_) => f.fetch_add(1, Ordering::SeqCst),
                };
            }
        });
        Ok(Load {
            paused,
            stop,
            written,
            failed,
            task,
        })
    }

    /// Pauses the writes; waits a tick so the one in flight has landed.
    async fn pause(&self) {
        self.paused.store(true, Ordering::SeqCst);
        tokio::time::sleep(WRITE_EVERY * 4).await;
    }

    fn resume(&self) {
        self.paused.store(false, Ordering::SeqCst);
    }

    async fn finish(self) -> (usize, usize) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = self.task.await;
        (
            self.written.load(Ordering::SeqCst),
            self.failed.load(Ordering::SeqCst),
        )
    }
}

/// What zero-cache 1.9.0 does with a view-syncer that has no Litestream: `server/main.js:48`
/// restores only when `ZERO_LITESTREAM_EXECUTABLE` is set, so its replica file is empty, and the
/// serving replicator exits (255) with "This should only be called for already synced replicas"
/// (`services/change-source/common/replica-schema.js:22`). A view-syncer needs the backup.
async fn a_view_syncer_needs_the_backup(stack: &Stack) -> Result<()> {
    let mut opts = stack.zero.options().clone();
    opts.port = None;
    opts.extra_env.retain(|(k, _)| {
        !k.starts_with("ZERO_LITESTREAM_")
            && !k.starts_with("LITESTREAM_")
            && k != "ZERO_NUM_SYNC_WORKERS"
    });
    opts.extra_env.push((
        "ZERO_CHANGE_STREAMER_URI".into(),
        zerostack_harness::view_syncers::change_streamer_uri(stack.zero.port()),
    ));
    let dir = stack.state.service("vs-without-backup")?;
    let mut zc = zerostack_harness::ZeroCache::spawn_in(&dir, opts)?;
    let code = zc.wait_exit(Duration::from_secs(90)).await;
    // zero-cache logs errors to stderr.
    let log = std::fs::read_to_string(dir.join("zero-cache.stderr.log")).unwrap_or_default();
    let _ = zc.kill9().await;
    assert_eq!(code?, Some(255), "{}", zc.log_tail(20));
    assert!(
        log.contains("This should only be called for already synced replicas"),
        "{}",
        zc.log_tail(20)
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn view_syncers_serve_the_same_rows_and_survive_faults_under_load() -> Result<()> {
    ensure_node_modules()?;
    ensure_litestream()?;
    let mut opts = StackOptions::temp()?;
    opts.view_syncers = 2;
    opts.sources = 2;
    let mut stack = Stack::start(opts).await?;
    let vs_ports = stack
        .view_syncers
        .as_ref()
        .context("the stack started no view-syncers")?
        .ports();
    let (vs0, vs1) = (vs_ports[0], vs_ports[1]);
    let mark = format!("vs-mutated-{}", std::process::id());
    let mut cases = Cases::new(SCENARIO);
    let mut results: Vec<String> = Vec::new();

    let login = sign_up_api_client(&stack.app_url, "vs-client", "View Syncer Client").await?;
    // Client A prefers view-syncer 0 and creates a channel through it once it has synced;
    // client B prefers view-syncer 1.
    let fwd_a = Forwarder::start(vec![vs0, vs1]).await?;
    let fwd_b = Forwarder::start(vec![vs1, vs0]).await?;
    let mutate = json!({"id": mark, "type": "c", "name": mark, "memberIds": []});
    // B first: A creates its channel as soon as it has synced, and B's first result must not
    // race with that.
    let mut b = Client::spawn("client-b", &fwd_b.url(), &stack, &login, None)?;
    let first_b = b.first_complete().await;
    let mut a = Client::spawn("client-a", &fwd_a.url(), &stack, &login, Some(mutate))?;

    cases
        .run(
            "two clients, one on each view-syncer, first see MongoDB's channels",
            async {
                let seeded: BTreeSet<String> = mongo_channel_ids(&stack)
                    .await?
                    .into_iter()
                    .filter(|k| *k != mark)
                    .collect();
                let first_a: BTreeSet<String> = a.first_complete().await?.into_iter().collect();
                let first_b: BTreeSet<String> = first_b?.into_iter().collect();
                assert!(!seeded.is_empty(), "no seeded channels in MongoDB");
                assert_eq!(first_a, seeded, "client A's first result");
                assert_eq!(first_b, seeded, "client B's first result");
                assert_eq!(fwd_a.connections(), vec![vs0], "A must be on view-syncer 0");
                assert_eq!(fwd_b.connections(), vec![vs1], "B must be on view-syncer 1");
                Ok(())
            },
        )
        .await;

    cases
        .run(
            "a room.create through view-syncer 0 is confirmed to its client and reaches the other",
            async {
                let outcome = a.mutation(Duration::from_secs(60)).await?;
                assert_eq!(
                    outcome["server"]["type"], "success",
                    "the app's mutate endpoint, through view-syncer 0: {outcome}"
                );
                assert!(
                    mongo_channel_ids(&stack).await?.contains(&mark),
                    "the mutation is not in MongoDB"
                );
                results.push(converge(&mut stack, &[&a, &b], "after the mutation").await?);
                Ok(())
            },
        )
        .await;

    cases
        .run(
            "a view-syncer without Litestream has no replica and exits",
            async { a_view_syncer_needs_the_backup(&stack).await },
        )
        .await;

    let load = Load::start(&stack, format!("vs-load-{}", std::process::id())).await?;

    cases
        .run(
            "kill -9 of view-syncer 1 under load: its client moves to view-syncer 0 and converges",
            async {
                tokio::time::sleep(LOAD_AROUND_FAULT).await;
                let vs = stack.view_syncers.as_mut().context("no view-syncers")?;
                vs.kill9(1).await?;
                tokio::time::sleep(LOAD_AROUND_FAULT).await;
                load.pause().await;
                results
                    .push(converge(&mut stack, &[&a, &b], "after kill -9 of view-syncer 1").await?);
                assert!(
                    fwd_b.connections().contains(&vs0),
                    "client B never reconnected to view-syncer 0: {:?}",
                    fwd_b.connections()
                );
                // Back to two view-syncers, on its own replica.
                load.resume();
                let vs = stack.view_syncers.as_mut().context("no view-syncers")?;
                vs.start_again(1).await?;
                tokio::time::sleep(LOAD_AROUND_FAULT).await;
                load.pause().await;
                results
                    .push(converge(&mut stack, &[&a, &b], "after view-syncer 1 came back").await?);
                Ok(())
            },
        )
        .await;

    cases
        .run(
            "restart of the replication-manager under load: the view-syncers resume",
            async {
                load.resume();
                tokio::time::sleep(LOAD_AROUND_FAULT).await;
                let pids = |stack: &Stack| -> Vec<u32> {
                    stack
                        .view_syncers
                        .iter()
                        .flat_map(|v| v.iter())
                        .map(|z| z.pid())
                        .collect()
                };
                let before = pids(&stack);
                stack.zero.restart().await?;
                tokio::time::sleep(LOAD_AROUND_FAULT).await;
                load.pause().await;
                results.push(
                    converge(
                        &mut stack,
                        &[&a, &b],
                        "after restarting the replication-manager",
                    )
                    .await?,
                );
                // Resumed, not restarted: the same view-syncer processes, all still running.
                assert_eq!(pids(&stack), before, "a view-syncer was restarted");
                let vs = stack.view_syncers.as_mut().context("no view-syncers")?;
                assert!(
                    vs.iter_mut().all(|z| z.is_running()),
                    "a view-syncer exited"
                );
                Ok(())
            },
        )
        .await;

    let mut c: Option<Client> = None;
    cases
        .run(
            "a new view-syncer restored from the backup while writes go on",
            async {
                load.resume();
                tokio::time::sleep(LOAD_AROUND_FAULT).await;
                let vs = stack.view_syncers.as_mut().context("no view-syncers")?;
                let i = vs.add().await?;
                let added = vs.get(i);
                let log = std::fs::read_to_string(added.dir().join("zero-cache.stdout.log"))?;
                assert!(
                    log.contains("restoring backup from file://"),
                    "view-syncer {i} did not restore from the backup\n{}",
                    added.log_tail(30)
                );
                let url = added.url();
                let client = c.insert(Client::spawn("client-c", &url, &stack, &login, None)?);
                client.first_complete().await?;
                tokio::time::sleep(LOAD_AROUND_FAULT).await;
                load.pause().await;
                results.push(
                    converge(
                        &mut stack,
                        &[&a, &b, client],
                        "after adding view-syncer 2 from the backup",
                    )
                    .await?,
                );
                Ok(())
            },
        )
        .await;

    cases
        .run(
            "kill -9 of the source the replication-manager streams from, under load: it moves to the other and converges",
            async {
                let before = replica_versions(&mut stack).await?;
                load.resume();
                tokio::time::sleep(LOAD_AROUND_FAULT).await;
                let killed = streaming_source(&stack).await?;
                let other = 1 - killed;
                let bal = stack.source_balancer.as_ref().context("no source balancer")?;
                let to_other = bal.connections_to(other);
                let served_by_other = streams_served(stack.source_mut(other));
                stack.kill9_source(killed).await?;
                let t = Instant::now();
                let now = streaming_source(&stack).await?;
                let moved = t.elapsed();
                assert_eq!(now, other, "the stream is not on the other source");
                let bal = stack.source_balancer.as_ref().context("no source balancer")?;
                assert!(
                    bal.connections_to(other) > to_other,
                    "no new connection to source {other}"
                );
                println!(
                    "[{SCENARIO}] killed source {killed}; the replication-manager streams from \
                     source {other} {:.1} s later",
                    moved.as_secs_f64()
                );
                tokio::time::sleep(LOAD_AROUND_FAULT).await;
                load.pause().await;
                let clients: Vec<&Client> = [Some(&a), Some(&b), c.as_ref()]
                    .into_iter()
                    .flatten()
                    .collect();
                let label = format!("after kill -9 of source {killed}");
                results.push(converge(&mut stack, &clients, &label).await?);
                assert_eq!(
                    replica_versions(&mut stack).await?,
                    before,
                    "a replica was rebuilt (its replica version changed)"
                );
                assert!(
                    streams_served(stack.source_mut(other)) > served_by_other,
                    "source {other}'s log shows no new stream"
                );
                for i in 0..stack.source_count() {
                    assert!(
                        !stack.source_mut(i).log_contains("sending reset-required"),
                        "source {i} sent reset-required"
                    );
                }
                // Two sources again for the rest of the stack's life (its stop and logs).
                stack.start_source_again(killed).await?;
                Ok(())
            },
        )
        .await;

    let (written, failed) = load.finish().await;
    println!("[{SCENARIO}] load: {written} channels written to MongoDB, {failed} inserts failed");
    for r in &results {
        println!("[{SCENARIO}] tally {r}");
    }
    for client in [Some(a), Some(b), c].into_iter().flatten() {
        let mut p = client.process;
        let _ = p.terminate().await;
    }
    let stopped = stack.stop().await;
    cases.finish()?;
    stopped
}
