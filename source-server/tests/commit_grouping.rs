//! Which change events belong together, and which replies may end a group, on real MongoDB.
//!
//! The streaming commits a group (one cluster time, or one `lsid` + `txnNumber`) as soon as the
//! reply it ends in was drained (`Batch::drained`: fewer events than the batch size, under
//! 8 MiB) instead of waiting for an empty probe `getMore`. That is only right if MongoDB never
//! ends a drained reply inside a group. The first test makes every kind of write that could put
//! several events at one cluster time (a transaction over dozens of replies, many small ones,
//! `insert_many`, `update_many`, a `deleteMany` with MongoDB's batched multi-deletes switched
//! on where the server knows them, an `applyOps` command) while a change stream with a small
//! batch size reads them, and checks the rule at every reply boundary; the second checks what a
//! zero-cache receives from the source-server process: each transaction whole, every delete
//! once, no watermark twice.
//!
//! What MongoDB 6.0.5 (the harness's) showed: plain writes, `insert_many`, `update_many` and a
//! `deleteMany` of 5,000 each give one cluster time per document (6.0.5 has no batched
//! multi-deletes: `batchUserMultiDeletes` is unknown); a transaction shares one cluster time and
//! carries `lsid` + `txnNumber`; an `applyOps` command of 40 inserts is one oplog entry with no
//! `lsid`, and the change stream shows none of its events. So on 6.0.5 only transactions share
//! a cluster time; from 6.1 a batched delete's `applyOps` does too, and the rule covers it the
//! same way (one oplog entry is unwound whole before a reply can drain), but this machine has
//! no such server to prove it on.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use anyhow::Context;
use bson::{Document, doc};
use common::*;
use source_server::config::streaming::FullDocument;
use source_server::mongo::change_event::GroupId;
use source_server::mongo::change_stream::{ChangeCursor, Images, Start};
use source_server::mongo::cluster_time::ClusterTime;
use zerostack_harness::{Mongo, service_temp_dir};

/// Events per `getMore`: small, so every multi-event write spans several replies.
const BATCH: u32 = 7;
const APPLY_OPS: usize = 40;
const TXN: usize = 250;
const MANY: usize = 300;
const DELETES: usize = 5000;
const SMALL_TXNS: usize = 60;
/// Larger than `BATCH`, so each small transaction spans replies too.
const SMALL_TXN: usize = 10;

/// One event as the cursor delivered it.
#[derive(Debug, Clone)]
struct Seen {
    id: String,
    time: ClusterTime,
    group: GroupId,
}

/// Switches on MongoDB's batched multi-deletes (one `applyOps` per batch of deleted documents,
/// the default from 6.1 on) where the server knows the parameter; `false` when it does not.
async fn batch_multi_deletes(client: &mongodb::Client) -> bool {
    client
        .database("admin")
        .run_command(doc! {"setParameter": 1, "batchUserMultiDeletes": true})
        .await
        .is_ok()
}

/// One `applyOps` command of `n` inserts: a single oplog entry, not a transaction.
async fn apply_ops(
    client: &mongodb::Client,
    ns: &str,
    prefix: &str,
    n: usize,
) -> anyhow::Result<()> {
    let ops: Vec<Document> = (0..n)
        .map(|i| doc! {"op": "i", "ns": ns, "o": {"_id": format!("{prefix}{i}"), "roomId": "r", "text": "x"}})
        .collect();
    client
        .database("admin")
        .run_command(doc! {"applyOps": ops})
        .await
        .context("applyOps")?;
    Ok(())
}

/// Every kind of write, in order, into `coll` (ids say which write an event came from).
async fn write_everything(client: mongodb::Client, db: &str, coll: &str) -> anyhow::Result<()> {
    let c = client.database(db).collection::<Document>(coll);
    for i in 0..20 {
        c.insert_one(doc! {"_id": format!("single{i}"), "roomId": "r", "text": "x"})
            .await?;
    }
    apply_ops(&client, &format!("{db}.{coll}"), "applyops", APPLY_OPS).await?;
    let docs: Vec<Document> = (0..MANY)
        .map(|i| doc! {"_id": format!("many{i}"), "roomId": "r", "text": "x"})
        .collect();
    c.insert_many(docs).await?;
    let mut s = client.start_session().await?;
    s.start_transaction().await?;
    let docs: Vec<Document> = (0..TXN)
        .map(|i| doc! {"_id": format!("txn{i}"), "roomId": "r", "text": "x"})
        .collect();
    c.insert_many(docs).session(&mut s).await?;
    s.commit_transaction().await?;
    // Small transactions and single writes with pauses between them, so that the reader
    // catches up (its replies drain) right at many group boundaries.
    for t in 0..SMALL_TXNS {
        let mut s = client.start_session().await?;
        s.start_transaction().await?;
        let docs: Vec<Document> = (0..SMALL_TXN)
            .map(|i| doc! {"_id": format!("stx{}", t * SMALL_TXN + i), "roomId": "r", "text": "x"})
            .collect();
        c.insert_many(docs).session(&mut s).await?;
        s.commit_transaction().await?;
        c.insert_one(doc! {"_id": format!("paced{t}"), "roomId": "r", "text": "x"})
            .await?;
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    c.update_many(
        doc! {"_id": {"$regex": "^many"}},
        doc! {"$set": {"text": "y"}},
    )
    .await?;
    for chunk in 0..(DELETES / 1000) {
        let docs: Vec<Document> = (0..1000)
            .map(|i| doc! {"_id": format!("del{}", chunk * 1000 + i), "roomId": "d", "text": "x"})
            .collect();
        c.insert_many(docs).await?;
    }
    c.delete_many(doc! {"roomId": "d"}).await?;
    Ok(())
}

/// Events per write: the 20 singles, insert_many, the transaction, the updates, the
/// documents to delete and their deletes (the applyOps's are counted apart: whether MongoDB
/// shows a non-transaction `applyOps` to change streams is one of the things observed).
const EXPECTED: usize =
    20 + MANY + TXN + SMALL_TXNS * SMALL_TXN + SMALL_TXNS + MANY + DELETES + DELETES;

/// The oplog's `applyOps` entries after `from`: (ops in it, has an `lsid`, first op's kind).
async fn apply_ops_entries(
    client: &mongodb::Client,
    from: bson::Timestamp,
) -> anyhow::Result<Vec<(usize, bool, String)>> {
    use futures::TryStreamExt;
    let oplog = client.database("local").collection::<Document>("oplog.rs");
    let entries: Vec<Document> = oplog
        .find(doc! {"ts": {"$gt": from}, "o.applyOps": {"$exists": true}})
        .await?
        .try_collect()
        .await?;
    Ok(entries
        .iter()
        .map(|e| {
            let ops = e
                .get_document("o")
                .and_then(|o| o.get_array("applyOps"))
                .map(|a| a.to_vec())
                .unwrap_or_default();
            let first = ops
                .first()
                .and_then(|o| o.as_document())
                .and_then(|o| o.get_str("op").ok())
                .unwrap_or("?")
                .to_string();
            (ops.len(), e.contains_key("lsid"), first)
        })
        .collect())
}

fn kind(id: &str) -> &str {
    id.trim_end_matches(|c: char| c.is_ascii_digit())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drained_reply_never_ends_inside_a_group() -> anyhow::Result<()> {
    let mongo = Mongo::start().await?;
    let client = mongo.client().await?;
    let db = client.database("grouping");
    db.create_collection("messages").await?;
    let batched_deletes = batch_multi_deletes(&client).await;
    let from = client
        .database("admin")
        .run_command(doc! {"ping": 1})
        .await?
        .get_timestamp("operationTime")?;
    let cursor = ChangeCursor::open(
        &db,
        &["messages".to_string()],
        Start::Now,
        Images {
            full_document: FullDocument::UpdateLookup,
            before_change: false,
        },
        BATCH,
        Duration::from_millis(1),
    )
    .await?;
    let writer = tokio::spawn(write_everything(client.clone(), "grouping", "messages"));
    let mut batches = cursor.read_ahead(Duration::from_millis(200));
    // (events, drained) of every reply with events, in order.
    let mut replies: Vec<(Vec<Seen>, bool)> = Vec::new();
    let mut total = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(180);
    let mut idle_after_writes = 0;
    while total < EXPECTED && tokio::time::Instant::now() < deadline {
        let b = tokio::time::timeout(Duration::from_secs(60), batches.next_batch())
            .await
            .context("no reply in 60 s")??;
        if b.events.is_empty() {
            if writer.is_finished() {
                idle_after_writes += 1;
                if idle_after_writes > 10 {
                    break;
                }
            }
            continue;
        }
        assert!(b.events.len() <= BATCH as usize);
        let seen: Vec<Seen> = b
            .events
            .iter()
            .map(|e| Seen {
                id: e
                    .document_key
                    .as_ref()
                    .and_then(|k| k.get_str("_id").ok())
                    .unwrap_or_default()
                    .to_string(),
                time: e.cluster_time,
                group: e.group.clone(),
            })
            .collect();
        total += seen.len();
        replies.push((seen, b.drained));
    }
    writer.await??;
    let mut by_kind: BTreeMap<&str, usize> = BTreeMap::new();
    for e in replies.iter().flat_map(|(e, _)| e) {
        *by_kind.entry(kind(&e.id)).or_default() += 1;
    }
    let entries = apply_ops_entries(&client, from).await?;
    eprintln!(
        "MongoDB {}: batched multi-deletes {}; events by write: {by_kind:?}; the oplog's applyOps entries (ops, lsid, first op): {entries:?}",
        mongo_version(&client).await?,
        if batched_deletes {
            "on"
        } else {
            "unknown to this server"
        },
    );
    let apply_ops_events = by_kind.get("applyops").copied().unwrap_or(0);
    assert!(
        apply_ops_events == 0 || apply_ops_events == APPLY_OPS,
        "the applyOps is all or nothing: {by_kind:?}"
    );
    assert_eq!(
        total - apply_ops_events,
        EXPECTED,
        "every event read: {by_kind:?}"
    );

    // The rule: no group continues past a drained reply.
    for pair in replies.windows(2) {
        let ((a, drained), (b, _)) = (&pair[0], &pair[1]);
        if *drained {
            let (last, next) = (a.last().unwrap(), b.first().unwrap());
            assert_ne!(
                last.group, next.group,
                "a drained reply ended inside a group: {last:?} then {next:?}"
            );
        }
    }
    let drained_with_events = replies.iter().filter(|(_, d)| *d).count();
    let drained_after_a_transaction = replies
        .iter()
        .filter(|(e, d)| *d && matches!(e.last().unwrap().group, GroupId::Txn { .. }))
        .count();
    assert!(
        drained_after_a_transaction > 0,
        "no reply drained right after a transaction's event: the rule was never exercised there"
    );

    // What shares a cluster time, per write.
    let mut times: BTreeMap<&str, BTreeSet<ClusterTime>> = BTreeMap::new();
    let mut replies_of: BTreeMap<&str, BTreeSet<usize>> = BTreeMap::new();
    let mut events_of: BTreeMap<&str, usize> = BTreeMap::new();
    for (n, (events, _)) in replies.iter().enumerate() {
        for e in events {
            times.entry(kind(&e.id)).or_default().insert(e.time);
            replies_of.entry(kind(&e.id)).or_default().insert(n);
            *events_of.entry(kind(&e.id)).or_default() += 1;
        }
    }
    let report: Vec<String> = times
        .iter()
        .map(|(k, t)| {
            format!(
                "{k}: {} events, {} cluster time(s), {} replies",
                events_of[k],
                t.len(),
                replies_of[k].len()
            )
        })
        .collect();
    eprintln!(
        "{}; {drained_with_events} of {} replies drained, {drained_after_a_transaction} of them ending in a transaction",
        report.join("; "),
        replies.len()
    );
    if apply_ops_events > 0 {
        // One applyOps: one cluster time, no session, yet split across replies.
        assert_eq!(times["applyops"].len(), 1);
        assert!(replies_of["applyops"].len() >= 2, "{report:?}");
    }
    let txn = replies
        .iter()
        .flat_map(|(e, _)| e)
        .find(|e| e.id == "txn0")
        .unwrap();
    assert!(matches!(txn.group, GroupId::Txn { .. }));
    assert_eq!(times["txn"].len(), 1);
    assert!(replies_of["txn"].len() >= 2);
    assert_eq!(
        times["stx"].len(),
        SMALL_TXNS,
        "one cluster time per transaction"
    );
    assert_eq!(times["paced"].len(), SMALL_TXNS);
    // Plain writes each have their own cluster time.
    assert_eq!(times["single"].len(), 20);
    assert_eq!(times["many"].len(), MANY * 2, "insert_many and update_many");
    if batched_deletes {
        // Deletes now share cluster times (one per batch of the deleteMany)…
        let deletes = replies
            .iter()
            .flat_map(|(e, _)| e)
            .filter(|e| e.id.starts_with("del"));
        let delete_times: BTreeSet<ClusterTime> = deletes.map(|e| e.time).collect();
        assert!(
            delete_times.len() < DELETES,
            "batched deletes share cluster times: {} for {DELETES}",
            delete_times.len()
        );
    }
    Ok(())
}

async fn mongo_version(client: &mongodb::Client) -> anyhow::Result<String> {
    let info = client
        .database("admin")
        .run_command(doc! {"buildInfo": 1})
        .await?;
    Ok(info.get_str("version")?.to_string())
}

/// Through the source-server process, with the same small batch size: a transaction split
/// across replies is one Zero transaction, every delete of a `deleteMany` arrives once, and
/// watermarks only grow (two commits at one cluster time would repeat one).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactions_split_across_replies_stay_whole_through_the_source() -> anyhow::Result<()> {
    let dir = service_temp_dir("grouping")?;
    let mongo = Mongo::start_in(dir.path().join("mongo")).await?;
    let client = mongo.client().await?;
    let batched_deletes = batch_multi_deletes(&client).await;
    let db = client.database("app");
    let messages = db.collection::<Document>("messages");
    messages
        .insert_one(doc! {"_id": "seed", "roomId": "r", "text": "seed"})
        .await?;
    let config = dir.path().join("source-config.json");
    std::fs::write(
        &config,
        format!(r#"{{"stream": {{"readBatchSize": {BATCH}}}}}"#),
    )?;
    let config = config.display().to_string();
    let mut source =
        SourceServer::start(dir.path(), &mongo.uri(), "app", &[("CONFIG_FILE", &config)]).await?;
    source.wait_healthy().await?;
    let base = format!("{}&appID=zero&shardNum=0", source.ws_url());
    let w0 = {
        let mut sync = ProtocolClient::connect(&base).await?;
        let (w0, _) = sync.transaction(Duration::from_secs(30)).await?;
        w0
    };
    let mut c =
        ProtocolClient::connect(&format!("{base}&lastWatermark={w0}&replicaVersion={w0}")).await?;

    for chunk in 0..(DELETES / 1000) {
        let docs: Vec<Document> = (0..1000)
            .map(|i| doc! {"_id": format!("del{}", chunk * 1000 + i), "roomId": "d", "text": "x"})
            .collect();
        messages.insert_many(docs).await?;
    }
    for t in 0..SMALL_TXNS {
        let mut s = client.start_session().await?;
        s.start_transaction().await?;
        let docs: Vec<Document> = (0..SMALL_TXN)
            .map(|i| doc! {"_id": format!("stx{t}_{i}"), "roomId": "r", "text": "x"})
            .collect();
        messages.insert_many(docs).session(&mut s).await?;
        s.commit_transaction().await?;
        if t % 2 == 0 {
            // Now and then the reader catches up, so that replies drain at a transaction's end.
            tokio::time::sleep(Duration::from_millis(3)).await;
        }
    }
    messages.delete_many(doc! {"roomId": "d"}).await?;
    messages
        .insert_one(doc! {"_id": "end", "roomId": "r", "text": "x"})
        .await?;

    let ended = |txns: &[(String, Vec<serde_json::Value>)]| {
        txns.iter()
            .any(|(_, d)| changes(d, "insert", "messages").any(|r| r["new"]["_id"] == "end"))
    };
    let txns = c
        .transactions_until(Duration::from_secs(120), ended)
        .await?;
    let txns: Vec<_> = txns.into_iter().filter(|(_, d)| !d.is_empty()).collect();
    drop(source);

    let watermarks: Vec<&String> = txns.iter().map(|(w, _)| w).collect();
    assert!(
        watermarks.windows(2).all(|w| w[0] < w[1]),
        "watermarks strictly increase: {watermarks:?}"
    );
    let deletes: Vec<String> = txns
        .iter()
        .flat_map(|(_, d)| changes(d, "delete", "messages"))
        .map(|r| r["key"]["_id"].as_str().unwrap_or_default().to_string())
        .collect();
    let distinct: BTreeSet<&String> = deletes.iter().collect();
    assert_eq!(
        (deletes.len(), distinct.len()),
        (DELETES, DELETES),
        "every delete once"
    );
    // Zero transactions holding rows of each MongoDB transaction.
    for t in 0..SMALL_TXNS {
        let prefix = format!("stx{t}_");
        let holding: Vec<usize> = txns
            .iter()
            .map(|(_, d)| {
                changes(d, "insert", "messages")
                    .filter(|r| {
                        r["new"]["_id"]
                            .as_str()
                            .is_some_and(|i| i.starts_with(&prefix))
                    })
                    .count()
            })
            .filter(|&n| n > 0)
            .collect();
        assert_eq!(
            holding,
            vec![SMALL_TXN],
            "transaction {t} ({SMALL_TXN} inserts, {BATCH} per reply) in one Zero transaction"
        );
    }
    eprintln!(
        "{} Zero transactions for {DELETES} inserts, {SMALL_TXNS} transactions of {SMALL_TXN}, a deleteMany of {DELETES} (batched multi-deletes {}) and an insert",
        txns.len(),
        if batched_deletes { "on" } else { "unknown" }
    );
    Ok(())
}
