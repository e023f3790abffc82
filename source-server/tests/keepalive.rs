//! The idle keepalive commits an empty transaction at `resume_time − 1`, a watermark no replay
//! of the oplog reproduces. This proves, through the real zero-cache, that such a watermark is a
//! safe resume point: zero-cache is stopped right after it acked a keepalive, writes go on while
//! it is down, and once restarted it resumes from that watermark (no reset) to a replica equal
//! to MongoDB, nothing lost or repeated.

mod common;

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bson::doc;
use common::*;
use zerostack_harness::{Mongo, Postgres, service_temp_dir};

const COLUMNS: &[&str] = &["_id", "roomId", "text"];

fn keepalives(metrics: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix("zerostack_source_keepalives_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zero_cache_resumes_from_an_acked_keepalive_watermark() -> anyhow::Result<()> {
    let dir = service_temp_dir("keepalive")?;
    let mongo = Mongo::start_in(dir.path().join("mongo")).await?;
    let pg = Postgres::start_in(dir.path().join("pg")).await?;
    let db = mongo.client().await?.database("app");
    let messages = db.collection::<bson::Document>("messages");
    let seed: Vec<bson::Document> = (0..100)
        .map(|i| doc! {"_id": format!("seed{i}"), "roomId": "r", "text": format!("seed {i}")})
        .collect();
    messages.insert_many(seed).await?;
    // Keepalives every 300 ms of idleness instead of 10 s.
    let config = dir.path().join("source-config.json");
    std::fs::create_dir_all(dir.path())?;
    std::fs::write(
        &config,
        r#"{"stream": {"keepaliveMs": 300, "idlePollMs": 200}}"#,
    )?;
    let config = config.display().to_string();
    let source = SourceServer::start(
        &dir.path().join("source"),
        &mongo.uri(),
        "app",
        &[("CONFIG_FILE", &config)],
    )
    .await?;
    let mut zero = start_zero_cache(dir.path(), &source, &pg).await?;
    let want = mongo_rows(&db, "messages", doc! {}, COLUMNS).await?;
    wait_replica_equals(&zero, "initial sync", "messages", COLUMNS, &want).await?;
    messages
        .insert_one(doc! {"_id": "live", "roomId": "r", "text": "live"})
        .await?;
    let want = mongo_rows(&db, "messages", doc! {}, COLUMNS).await?;
    wait_replica_equals(&zero, "a live write", "messages", COLUMNS, &want).await?;

    // Idle now: wait until zero-cache acked a keepalive, i.e. the watermark it acked is the one
    // sent last, and it was sent after the last data transaction.
    let before = keepalives(&source.get_text("/metrics").await?);
    let started = Instant::now();
    let acked = loop {
        let s = source.status().await?;
        let conn = s["connections"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["mode"] == "streaming"))
            .cloned()
            .unwrap_or_default();
        let sent_keepalives = keepalives(&source.get_text("/metrics").await?);
        if sent_keepalives > before
            && conn["lastWatermarkAcked"].is_string()
            && conn["lastWatermarkAcked"] == conn["lastWatermarkSent"]
        {
            break conn["lastWatermarkAcked"]
                .as_str()
                .context("acked watermark")?
                .to_string();
        }
        if started.elapsed() > Duration::from_secs(30) {
            bail!("no keepalive was acked: {s}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // Right after the ack: zero-cache stops, writes go on while it is down. (A SIGTERM: after a
    // kill -9, zero-cache 1.9.0's change-streamer port stays taken for a while on this machine.)
    zero.stop().await?;
    let later: Vec<bson::Document> = (0..50)
        .map(|i| doc! {"_id": format!("down{i}"), "roomId": "r", "text": format!("down {i}")})
        .collect();
    messages.insert_many(later).await?;
    messages
        .update_one(
            doc! {"_id": "live"},
            doc! {"$set": {"text": "live, edited"}},
        )
        .await?;
    messages.delete_one(doc! {"_id": "seed3"}).await?;
    zero.start_again().await?;
    let want = mongo_rows(&db, "messages", doc! {}, COLUMNS).await?;
    wait_replica_equals(&zero, "after the restart", "messages", COLUMNS, &want).await?;
    // It resumed from the keepalive's watermark (or a later one it had stored), without a reset.
    assert!(
        !source.process.log_contains("reset-required"),
        "zero-cache was reset instead of resuming:\n{}",
        source.process.log_tail(20)
    );
    // zero-cache may ack one more keepalive (every 300 ms here) between the one seen above and
    // its stop, and then resumes from that one: nothing but keepalives was sent after `acked`
    // until it was down, so any watermark at or after `acked` is a keepalive's.
    let resumed = resumed_from(&std::fs::read_to_string(source.process.stderr_log())?);
    assert!(
        resumed.as_deref().is_some_and(|w| w >= acked.as_str()),
        "zero-cache resumed from {resumed:?}, not from the acked keepalive watermark {acked} or a later one:\n{}",
        source.process.log_tail(20)
    );
    Ok(())
}

/// The `lastWatermark` of the last connection the source logged (`None` for an initial sync).
/// The text log colours field names, so `last_watermark` and its `=Some("…")` may have escape
/// codes between them.
fn resumed_from(log: &str) -> Option<String> {
    let line = log
        .lines()
        .rev()
        .find(|l| l.contains("zero-cache connected"))?;
    let field = &line[line.find("last_watermark")?..];
    let value = &field[field.find("Some(\"")? + "Some(\"".len()..];
    Some(value[..value.find('"')?].to_string())
}
