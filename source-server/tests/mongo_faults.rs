//! MongoDB itself failing while writes and the stream run, through the real zero-cache: a
//! kill -9 of a single-node replica set's `mongod` and its restart on the same data, and a
//! `replSetStepDown` on a replica set of three. The source must come back by itself, resume
//! from where zero-cache is, and leave a replica equal to what MongoDB holds at the end — every
//! acknowledged write in it, nothing repeated; `/ready` must say "not ready" while MongoDB is
//! away.
//!
//! The writer retries through the failover and records which writes MongoDB acknowledged; the
//! expected rows are read back from MongoDB afterwards, never taken from the writer.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use anyhow::Context;
use bson::doc;
use common::*;
use serde_json::Value;
use zerostack_harness::mongo::MongoReplicaSet;
use zerostack_harness::{Mongo, Postgres, ZeroCache, http, service_temp_dir};

const COLUMNS: &[&str] = &["_id", "roomId", "text"];

/// A client that gives up on a missing primary after 2 s, so the writer notices and retries.
async fn impatient_client(uri: &str) -> anyhow::Result<mongodb::Client> {
    let sep = if uri.contains('?') { '&' } else { '?' };
    Ok(mongodb::Client::with_uri_str(format!(
        "{uri}{sep}serverSelectionTimeoutMS=2000&connectTimeoutMS=1000"
    ))
    .await?)
}

/// Inserts `n` messages one by one, each retried (bounded) until MongoDB acknowledges it; a
/// duplicate-key answer means an earlier attempt was applied. Returns the acknowledged ids.
async fn write_through_failures(
    db: mongodb::Database,
    prefix: &'static str,
    n: usize,
) -> anyhow::Result<BTreeSet<String>> {
    let c = db.collection::<bson::Document>("messages");
    let mut acked = BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    for i in 0..n {
        let id = format!("{prefix}{i}");
        loop {
            match c
                .insert_one(doc! {"_id": &id, "roomId": "r1", "text": format!("{prefix} #{i}")})
                .await
            {
                Ok(_) => break,
                Err(e)
                    if matches!(&*e.kind, mongodb::error::ErrorKind::Write(
                        mongodb::error::WriteFailure::WriteError(w)) if w.code == 11000) =>
                {
                    break;
                }
                Err(e) if Instant::now() > deadline => {
                    anyhow::bail!("write {id} not acknowledged within the deadline: {e}")
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
        acked.insert(id);
        tokio::time::sleep(Duration::from_millis(4)).await;
    }
    Ok(acked)
}

/// Waits (bounded) until `/ready` answers `ready`; how it answered on the way.
async fn ready_status(source: &SourceServer) -> Option<u16> {
    http::get(format!("{}/ready", source.http()))
        .await
        .ok()
        .map(|r| r.status().as_u16())
}

/// The ids of the source's open zero-cache connections.
async fn connection_ids(source: &SourceServer) -> anyhow::Result<Vec<u64>> {
    let status: Value = http::Client::new()
        .get(format!("{}/metadata/status", source.http()))
        .bearer_auth(TOKEN)
        .send()
        .await?
        .json()?;
    Ok(status["connections"]
        .as_array()
        .map(|c| c.iter().filter_map(|c| c["id"].as_u64()).collect())
        .unwrap_or_default())
}

/// The source reopened the change stream itself: zero-cache's connection is the one from
/// before the failure, and the reconnect counter moved.
async fn expect_same_connection(source: &SourceServer, before: &[u64]) -> anyhow::Result<()> {
    let after = connection_ids(source).await?;
    assert_eq!(
        after, before,
        "zero-cache's connection was dropped instead of the change stream being reopened"
    );
    let metrics = source.get_text("/metrics").await?;
    let reconnects = metrics
        .lines()
        .find_map(|l| l.strip_prefix("zerostack_source_mongodb_reconnects_total "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .unwrap_or(0.0);
    assert!(reconnects >= 1.0, "no reconnect counted:\n{metrics}");
    Ok(())
}

async fn expect_replica_equals_mongodb(
    zero: &ZeroCache,
    db: &mongodb::Database,
    acked: &BTreeSet<String>,
    what: &str,
) -> anyhow::Result<()> {
    let want = mongo_rows(db, "messages", doc! {}, COLUMNS).await?;
    let present: BTreeSet<String> = want
        .iter()
        .filter_map(|r| r["_id"].as_str().map(str::to_string))
        .collect();
    let lost: Vec<&String> = acked.difference(&present).collect();
    assert!(
        lost.is_empty(),
        "{what}: MongoDB lost acknowledged writes {lost:?}"
    );
    wait_replica_equals(zero, what, "messages", COLUMNS, &want).await
}

async fn seed(db: &mongodb::Database) -> anyhow::Result<()> {
    let seed: Vec<bson::Document> = (0..200)
        .map(|i| doc! {"_id": format!("seed{i}"), "roomId": "r1", "text": format!("seed {i}")})
        .collect();
    db.collection("messages").insert_many(seed).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill9_of_mongod_under_load_loses_and_repeats_nothing() -> anyhow::Result<()> {
    let dir = service_temp_dir("mongo-kill")?;
    let mut mongo = Mongo::start_in(dir.path().join("mongo")).await?;
    let pg = Postgres::start_in(dir.path().join("pg")).await?;
    let db = mongo.client().await?.database("app");
    seed(&db).await?;
    let source = SourceServer::start(&dir.path().join("source"), &mongo.uri(), "app", &[]).await?;
    let zero = start_zero_cache(dir.path(), &source, &pg).await?;
    expect_replica_equals_mongodb(&zero, &db, &BTreeSet::new(), "initial sync").await?;

    let before = connection_ids(&source).await?;
    assert_eq!(before.len(), 1, "one streaming connection");
    let writer_db = impatient_client(&mongo.uri()).await?.database("app");
    let writer = tokio::spawn(write_through_failures(writer_db, "k", 800));
    tokio::time::sleep(Duration::from_millis(800)).await;
    mongo.kill9().await?;
    // While mongod is away, /ready must say so (its ping is bounded by 2 s).
    let mut saw_not_ready = false;
    for _ in 0..20 {
        if ready_status(&source).await == Some(503) {
            saw_not_ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(
        saw_not_ready,
        "/ready kept saying ready while mongod was down"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    mongo.start_again().await.context("restarting mongod")?;
    let mut ready_again = false;
    for _ in 0..60 {
        if ready_status(&source).await == Some(200) {
            ready_again = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(ready_again, "/ready never came back after mongod restarted");
    let acked = writer.await??;
    expect_replica_equals_mongodb(&zero, &db, &acked, "after kill -9 of mongod").await?;
    // And the stream is live again: a write after the failure arrives too.
    db.collection::<bson::Document>("messages")
        .insert_one(doc! {"_id": "after", "roomId": "r1", "text": "after the restart"})
        .await?;
    expect_replica_equals_mongodb(&zero, &db, &acked, "a write after the restart").await?;
    expect_same_connection(&source, &before).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_primary_step_down_under_load_loses_and_repeats_nothing() -> anyhow::Result<()> {
    let dir = service_temp_dir("mongo-stepdown")?;
    let rs = MongoReplicaSet::start(3).await?;
    let pg = Postgres::start_in(dir.path().join("pg")).await?;
    let db = rs.client().await?.database("app");
    seed(&db).await?;
    let source = SourceServer::start(&dir.path().join("source"), &rs.uri(), "app", &[]).await?;
    let zero = start_zero_cache(dir.path(), &source, &pg).await?;
    expect_replica_equals_mongodb(&zero, &db, &BTreeSet::new(), "initial sync").await?;

    let before = connection_ids(&source).await?;
    assert_eq!(before.len(), 1, "one streaming connection");
    let writer_db = impatient_client(&rs.uri()).await?.database("app");
    let writer = tokio::spawn(write_through_failures(writer_db, "s", 800));
    tokio::time::sleep(Duration::from_millis(800)).await;
    let old = rs.step_down(10).await.context("first step-down")?;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let old2 = rs.step_down(10).await.context("second step-down")?;
    eprintln!("stepped down member {old}, then member {old2}");
    let acked = writer.await??;
    expect_replica_equals_mongodb(&zero, &db, &acked, "after two step-downs").await?;
    db.collection::<bson::Document>("messages")
        .insert_one(doc! {"_id": "after", "roomId": "r1", "text": "after the step-downs"})
        .await?;
    expect_replica_equals_mongodb(&zero, &db, &acked, "a write after the step-downs").await?;
    expect_same_connection(&source, &before).await
}
