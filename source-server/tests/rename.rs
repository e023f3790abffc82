//! The bulk-reload pattern through the real zero-cache: a temporary collection is loaded and
//! renamed over a mapped one (`renameCollection … dropTarget: true`). The rename's source is not
//! mapped, its target is; the replica must end up equal to the new collection. The source
//! answers with `reset-required` (zero-cache exits 14 and, restarted, syncs again).

mod common;

use std::time::Duration;

use bson::doc;
use common::*;
use zerostack_harness::{Mongo, Postgres, service_temp_dir};

const COLUMNS: &[&str] = &["_id", "roomId", "text"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collection_renamed_onto_a_mapped_name_replaces_its_rows() -> anyhow::Result<()> {
    let dir = service_temp_dir("rename")?;
    let mongo = Mongo::start_in(dir.path().join("mongo")).await?;
    let pg = Postgres::start_in(dir.path().join("pg")).await?;
    let client = mongo.client().await?;
    let db = client.database("app");
    let old: Vec<bson::Document> = (0..50)
        .map(|i| doc! {"_id": format!("old{i}"), "roomId": "r1", "text": format!("old {i}")})
        .collect();
    db.collection("messages").insert_many(old).await?;
    let source = SourceServer::start(&dir.path().join("source"), &mongo.uri(), "app", &[]).await?;
    let mut zero = start_zero_cache(dir.path(), &source, &pg).await?;
    let want = mongo_rows(&db, "messages", doc! {}, COLUMNS).await?;
    wait_replica_equals(&zero, "initial sync", "messages", COLUMNS, &want).await?;

    // The reload: 30 new documents (10 with ids the old collection also had), then the rename.
    let new: Vec<bson::Document> = (40..70)
        .map(|i| doc! {"_id": format!("old{i}"), "roomId": "r2", "text": format!("reloaded {i}")})
        .collect();
    db.collection("messages_reload").insert_many(new).await?;
    client
        .database("admin")
        .run_command(doc! {
            "renameCollection": "app.messages_reload",
            "to": "app.messages",
            "dropTarget": true,
        })
        .await?;
    let code = zero.wait_exit(Duration::from_secs(60)).await?;
    assert_eq!(
        code,
        Some(14),
        "zero-cache exits 14 after reset-required:\n{}",
        zero.log_tail(20)
    );
    assert!(
        source.process.log_contains("renamed from messages_reload"),
        "the reset names the rename:\n{}",
        source.process.log_tail(20)
    );
    zero.start_again().await?;
    let want = mongo_rows(&db, "messages", doc! {}, COLUMNS).await?;
    assert_eq!(want.len(), 30);
    wait_replica_equals(&zero, "after the rename", "messages", COLUMNS, &want).await
}
