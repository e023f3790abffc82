//! The source server with everything real: MongoDB replica set, PostgreSQL and zero-cache 1.9.0,
//! plus a real Zero client. The replica that zero-cache builds must equal MongoDB after an
//! initial sync with concurrent writes, live changes, a zero-cache restart, a kill -9 of the
//! source, and a reset-required.
//!
//! Starting these services costs seconds, so one test function starts them once and runs the
//! scenario as named cases. They run in order on one replica: each case's faults are applied to
//! the state the earlier ones left, and every case after the first needs its zero-cache.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context;
use bson::doc;
use common::*;
use serde_json::Value;
use zerostack_harness::cases::Cases;
use zerostack_harness::{
    Mongo, Postgres, ZeroCache, ZeroCacheOptions, ZeroClientWait, service_temp_dir,
    zero_client_wait,
};

/// What MongoDB says each table should hold: `_id` → (text or name) for the tables we check.
async fn expected(
    db: &mongodb::Database,
) -> anyhow::Result<BTreeMap<String, BTreeMap<String, String>>> {
    use futures::TryStreamExt;
    let mut out = BTreeMap::new();
    let rooms: Vec<bson::Document> = db
        .collection("rooms")
        .find(doc! {})
        .await?
        .try_collect()
        .await?;
    for (table, t) in [("chats", "d"), ("channels", "c"), ("groups", "p")] {
        out.insert(
            table.to_string(),
            rooms
                .iter()
                .filter(|r| r.get_str("t").ok() == Some(t))
                .map(|r| {
                    (
                        r.get_str("_id").unwrap().to_string(),
                        r.get_str("name").unwrap_or("").to_string(),
                    )
                })
                .collect(),
        );
    }
    let msgs: Vec<bson::Document> = db
        .collection("messages")
        .find(doc! {"hidden": {"$ne": true}})
        .await?
        .try_collect()
        .await?;
    out.insert(
        "messages".into(),
        msgs.iter()
            .map(|m| {
                (
                    m.get_str("_id").unwrap().to_string(),
                    m.get_str("text").unwrap_or("").to_string(),
                )
            })
            .collect(),
    );
    Ok(out)
}

fn actual(replica: &Value) -> BTreeMap<String, BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for (table, field) in [
        ("chats", "name"),
        ("channels", "name"),
        ("groups", "name"),
        ("messages", "text"),
    ] {
        let rows = replica[table].as_array().cloned().unwrap_or_default();
        out.insert(
            table.to_string(),
            rows.iter()
                .map(|r| {
                    (
                        r["_id"].as_str().unwrap_or("").to_string(),
                        r[field].as_str().unwrap_or("").to_string(),
                    )
                })
                .collect(),
        );
    }
    out
}

async fn converge(zero: &ZeroCache, db: &mongodb::Database, what: &str) -> anyhow::Result<()> {
    let want = expected(db).await?;
    let mut last = BTreeMap::new();
    let mut shape = String::new();
    for _ in 0..120 {
        let read = zero.replica().await;
        if let Err(e) = &read {
            shape = format!("replica unreadable: {e:#}");
        }
        if let Ok(replica) = read {
            shape = replica
                .as_object()
                .map(|o| {
                    o.iter()
                        .map(|(k, v)| format!("{k}:{}", v.as_array().map_or(0, |a| a.len())))
                        .collect::<Vec<_>>()
                        .join(" ")
                })
                .unwrap_or_default();
            last = actual(&replica);
            if last == want {
                // Keyed tables cannot hold duplicates; also check the row counts line up.
                let n: usize = want.values().map(|m| m.len()).sum();
                let m: usize = ["chats", "channels", "groups", "messages"]
                    .iter()
                    .map(|t| replica[*t].as_array().map_or(0, |a| a.len()))
                    .sum();
                assert_eq!(n, m, "{what}: row counts");
                return Ok(());
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let diff: Vec<String> = want
        .iter()
        .filter(|(t, rows)| last.get(*t) != Some(rows))
        .map(|(t, rows)| {
            format!(
                "{t}: want {} rows, replica has {}",
                rows.len(),
                last.get(t).map_or(0, |r| r.len())
            )
        })
        .collect();
    anyhow::bail!(
        "{what}: replica did not converge to MongoDB: {diff:?}\nreplica tables: {shape}\nzero-cache log:\n{}",
        zero.log_tail(8)
    )
}

/// The test's state folder, left in place for post-mortems when ZEROSTACK_KEEP_STATE is set.
struct KeepOnRequest(Option<tempfile::TempDir>);

impl KeepOnRequest {
    fn path(&self) -> &std::path::Path {
        self.0.as_ref().expect("state dir").path()
    }
}

impl Drop for KeepOnRequest {
    fn drop(&mut self) {
        if std::env::var_os("ZEROSTACK_KEEP_STATE").is_some()
            && let Some(d) = self.0.take()
        {
            let _ = d.keep();
        }
    }
}

async fn insert_messages(
    db: mongodb::Database,
    prefix: &'static str,
    n: usize,
    pause: Duration,
) -> anyhow::Result<()> {
    let c = db.collection::<bson::Document>("messages");
    for i in 0..n {
        c.insert_one(
            doc! {"_id": format!("{prefix}{i}"), "roomId": "c1", "text": format!("{prefix} #{i}")},
        )
        .await?;
        if !pause.is_zero() {
            tokio::time::sleep(pause).await;
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zero_cache_replica_equals_mongodb_through_faults() -> anyhow::Result<()> {
    let dir = service_temp_dir("zero-e2e")?;
    if std::env::var_os("ZEROSTACK_KEEP_STATE").is_some() {
        eprintln!("keeping the state dir {}", dir.path().display());
    }
    let dir = KeepOnRequest(Some(dir));
    let mongo = Mongo::start_in(dir.path().join("mongo")).await?;
    let pg = Postgres::start_in(dir.path().join("pg")).await?;
    pg.create_db("zero_cvr").await?;
    pg.create_db("zero_cdc").await?;
    let client = mongo.client().await?;
    let db = client.database("app");
    db.collection("rooms")
        .insert_many(vec![
            doc! {"_id": "d1", "t": "d", "memberIds": ["u1"]},
            doc! {"_id": "c1", "t": "c", "name": "general"},
            doc! {"_id": "c2", "t": "c", "name": "random"},
            doc! {"_id": "p1", "t": "p", "name": "team"},
        ])
        .await?;
    // Enough rows that the initial sync takes a moment, so writes land while it runs.
    let bulk: Vec<bson::Document> = (0..20_000)
        .map(|i| doc! {"_id": format!("s{i}"), "roomId": "c1", "text": format!("seed {i}"), "n": i})
        .collect();
    db.collection("messages").insert_many(bulk).await?;

    let mut source =
        SourceServer::start(&dir.path().join("source"), &mongo.uri(), "app", &[]).await?;
    let opts = ZeroCacheOptions {
        upstream_url: source.ws_url(),
        cvr_db: pg.url("zero_cvr"),
        change_db: pg.url("zero_cdc"),
        ..Default::default()
    };
    let rooms = db.collection::<bson::Document>("rooms");
    // Started by the first case; every later case works on it.
    let mut zero: Option<ZeroCache> = None;
    let needs_zero = "needs the zero-cache of the initial sync case";
    let mut cases = Cases::new("zero-cache");

    cases
        .run("an initial sync with concurrent writes converges", async {
            let writer = tokio::spawn(insert_messages(
                db.clone(),
                "during-sync-",
                200,
                Duration::from_millis(5),
            ));
            let started = ZeroCache::start_in(dir.path().join("zero"), opts)
                .await
                .context("first start of zero-cache")?;
            let zero = zero.insert(started);
            writer.await??;
            converge(zero, &db, "initial sync with concurrent writes").await
        })
        .await;

    cases
        .run(
            "live changes converge: a discriminator change, a delete, an insert",
            async {
                let zero = zero.as_ref().context(needs_zero)?;
                rooms
                    .update_one(
                        doc! {"_id": "c2"},
                        doc! {"$set": {"t": "p", "name": "random, now private"}},
                    )
                    .await?;
                db.collection::<bson::Document>("messages")
                    .delete_one(doc! {"_id": "s5"})
                    .await?;
                rooms
                    .insert_one(doc! {"_id": "c3", "t": "c", "name": "fresh"})
                    .await?;
                converge(zero, &db, "live changes").await
            },
        )
        .await;

    cases
        .run("a real Zero client sees a live change", async {
            let zero = zero.as_ref().context(needs_zero)?;
            let schema = fixtures().join("schema.json");
            let wait = ZeroClientWait::new(zero.url(), schema, "channels")
                .until(serde_json::json!({"_id": "hello", "name": "hello, zero"}))
                .timeout(Duration::from_secs(60));
            let watcher = tokio::spawn(async move { zero_client_wait(&wait).await });
            tokio::time::sleep(Duration::from_secs(3)).await;
            rooms
                .insert_one(doc! {"_id": "hello", "t": "c", "name": "hello, zero"})
                .await?;
            watcher.await??;
            Ok(())
        })
        .await;

    cases
        .run("a zero-cache restart mid-stream loses nothing", async {
            let zero = zero.as_mut().context(needs_zero)?;
            let writer = tokio::spawn(insert_messages(
                db.clone(),
                "zc-restart-",
                300,
                Duration::from_millis(3),
            ));
            tokio::time::sleep(Duration::from_millis(300)).await;
            zero.restart()
                .await
                .context("restarting zero-cache mid-stream")?;
            writer.await??;
            converge(zero, &db, "zero-cache restart mid-stream").await
        })
        .await;

    cases
        .run("a kill -9 of the source mid-stream loses nothing", async {
            let zero = zero.as_ref().context(needs_zero)?;
            let writer = tokio::spawn(insert_messages(
                db.clone(),
                "src-kill-",
                300,
                Duration::from_millis(3),
            ));
            tokio::time::sleep(Duration::from_millis(300)).await;
            source.kill9_and_restart().await?;
            writer.await??;
            converge(zero, &db, "source kill -9 mid-stream").await
        })
        .await;

    // The replica registry forgets this replica: on its next resume the source answers
    // reset-required, zero-cache exits (code 14), and once restarted it syncs again.
    cases
        .run("a forgotten replica is reset and synced again", async {
            let zero = zero.as_mut().context(needs_zero)?;
            db.collection::<bson::Document>("zerostack_replicas")
                .delete_many(doc! {})
                .await?;
            zero.stop().await?;
            zero.start_again().await.ok();
            let code = zero.wait_exit(Duration::from_secs(60)).await?;
            assert_eq!(
                code,
                Some(14),
                "zero-cache exits 14 after reset-required:\n{}",
                zero.log_tail(20)
            );
            zero.start_again()
                .await
                .context("starting zero-cache after its reset exit")?;
            db.collection::<bson::Document>("messages")
                .insert_one(doc! {"_id": "after-reset", "roomId": "c1", "text": "after reset"})
                .await?;
            converge(zero, &db, "re-sync after reset-required").await?;
            let status = zerostack_harness::http::Client::new()
                .get(format!("{}/metadata/status", source.http()))
                .bearer_auth(TOKEN)
                .send()
                .await?
                .json()?;
            assert!(
                status["connections"]
                    .as_array()
                    .is_some_and(|c| !c.is_empty()),
                "{status}"
            );
            Ok(())
        })
        .await;

    cases.finish()
}
