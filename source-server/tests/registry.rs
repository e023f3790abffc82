//! The replica registry on real MongoDB, with this test playing zero-cache:
//! - two apps whose initial syncs share one idle window get the same replica version; each must
//!   still resume (an entry keyed by the replica version alone was overwritten by the other);
//! - an entry written by an older source (keyed by the replica version alone) still resumes, and
//!   is moved to the new key;
//! - entries no zero-cache used for `REGISTRY_RETENTION_HOURS` are deleted, fresh ones kept.

mod common;

use std::time::Duration;

use anyhow::{Context, bail};
use bson::doc;
use common::*;
use futures::TryStreamExt;
use source_server::mongo::replica_registry::{ReplicaRegistry, Verdict};
use source_server::zero::catalog::Shard;
use zerostack_harness::cases::Cases;
use zerostack_harness::{Mongo, service_temp_dir};

const T: Duration = Duration::from_secs(20);

/// An initial sync for `app`; its watermark (the replica version).
async fn initial_sync(source: &SourceServer, app: &str) -> anyhow::Result<String> {
    let mut c =
        ProtocolClient::connect(&format!("{}&appID={app}&shardNum=0", source.ws_url())).await?;
    let (w, _) = c.transaction(T).await?;
    Ok(w)
}

/// Resumes `app` at `rv` and expects the stream to go on: a fresh insert arrives, no reset.
async fn expect_resume(
    source: &SourceServer,
    db: &mongodb::Database,
    app: &str,
    rv: &str,
    marker: &str,
) -> anyhow::Result<()> {
    let mut c = ProtocolClient::connect(&format!(
        "{}&appID={app}&shardNum=0&lastWatermark={rv}&replicaVersion={rv}",
        source.ws_url()
    ))
    .await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    db.collection::<bson::Document>("messages")
        .insert_one(doc! {"_id": marker, "roomId": "r", "text": marker})
        .await?;
    loop {
        let m = c.next(T).await?.context("the source closed the stream")?;
        if m[0] == "control" {
            bail!("{app} at {rv} was not resumed: {m}");
        }
        if m[0] == "data" && m[1]["new"]["_id"] == marker {
            return Ok(());
        }
    }
}

async fn entries(db: &mongodb::Database) -> anyhow::Result<Vec<bson::Document>> {
    Ok(db
        .collection::<bson::Document>("zerostack_replicas")
        .find(doc! {})
        .await?
        .try_collect()
        .await?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_registry_keeps_apps_apart_migrates_and_prunes() -> anyhow::Result<()> {
    let dir = service_temp_dir("registry")?;
    let mongo = Mongo::start_in(dir.path().join("mongo")).await?;
    let db = mongo.client().await?.database("app");
    db.collection("messages")
        .insert_one(doc! {"_id": "m0", "roomId": "r", "text": "seed"})
        .await?;
    let source = SourceServer::start(
        &dir.path().join("source"),
        &mongo.uri(),
        "app",
        &[("REGISTRY_RETENTION_HOURS", "1")],
    )
    .await?;
    let mut config_hash = String::new();
    let mut cases = Cases::new("registry");

    cases
        .run(
            "two apps with the same replica version both resume",
            async {
                // Two apps whose initial syncs start in one idle window get the same replica
                // version; the second records its entry after the first.
                let rv = initial_sync(&source, "appa").await?;
                config_hash = entries(&db).await?[0].get_str("configHash")?.to_string();
                let registry = ReplicaRegistry::new(&db, "zerostack_replicas");
                let shard = |app: &str| Shard {
                    app_id: app.into(),
                    shard_num: 0,
                };
                registry.record(&rv, &config_hash, &shard("appb")).await?;
                for app in ["appa", "appb"] {
                    assert_eq!(
                        registry.check(&rv, &config_hash, &shard(app)).await?,
                        Verdict::Known,
                        "{app}"
                    );
                }
                expect_resume(&source, &db, "appa", &rv, "a").await?;
                expect_resume(&source, &db, "appb", &rv, "b").await
            },
        )
        .await;

    cases
        .run(
            "an entry of an older source resumes and moves to the new key",
            async {
                anyhow::ensure!(!config_hash.is_empty(), "needs the first case");
                let rv = initial_sync(&source, "zero").await?;
                let registry = db.collection::<bson::Document>("zerostack_replicas");
                // Rewrite this replica's entry the way older sources wrote it.
                registry
                    .delete_many(doc! {"_id.replicaVersion": &rv, "_id.appID": "zero"})
                    .await?;
                registry
                    .insert_one(doc! {"_id": &rv, "configHash": &config_hash, "appID": "zero", "shardNum": 0i64, "createdAt": bson::DateTime::now()})
                    .await?;
                expect_resume(&source, &db, "zero", &rv, "legacy").await?;
                let all = entries(&db).await?;
                assert!(
                    !all.iter().any(|e| e.get_str("_id").ok() == Some(rv.as_str())),
                    "the old-style entry is gone: {all:?}"
                );
                assert!(
                    all.iter().any(|e| e
                        .get_document("_id")
                        .is_ok_and(|id| id.get_str("replicaVersion").ok() == Some(rv.as_str())
                            && id.get_str("appID").ok() == Some("zero"))),
                    "moved to the new key: {all:?}"
                );
                Ok(())
            },
        )
        .await;

    cases
        .run("entries unused for the retention time are pruned", async {
            let registry = db.collection::<bson::Document>("zerostack_replicas");
            let two_hours_ago =
                bson::DateTime::from_millis(bson::DateTime::now().timestamp_millis() - 7_200_000);
            registry
                .insert_many(vec![
                    doc! {"_id": {"appID": "gone", "shardNum": 0i64, "replicaVersion": "1a"}, "configHash": "x", "createdAt": two_hours_ago, "lastUsedAt": two_hours_ago},
                    doc! {"_id": "1b", "configHash": "x", "appID": "gone", "shardNum": 0i64, "createdAt": two_hours_ago},
                ])
                .await?;
            let before = entries(&db).await?.len();
            // Pruning runs with every initial sync.
            initial_sync(&source, "appc").await?;
            let all = entries(&db).await?;
            assert_eq!(all.len(), before - 2 + 1, "two stale entries pruned, one added: {all:?}");
            assert!(!format!("{all:?}").contains("gone"), "{all:?}");
            Ok(())
        })
        .await;

    cases.finish()
}
