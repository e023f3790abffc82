//! Change events near and over MongoDB's 16 MiB limit, through the real zero-cache. The big
//! field is outside the schema, so the rows stay small; only the events are large.
//! - an update of a 14 MiB document that sets 1.5 MiB more: with `updateLookup` its event
//!   (whole document + update description) is over 16 MiB. The source never reads the update
//!   description, so it is projected away and the stream goes on;
//! - with pre-images, an update of a 10 MiB document has an event of over 20 MiB, which cannot
//!   be sent: the stream cannot get past it, so the source asks for a reset naming the document
//!   (this case plays zero-cache itself).

mod common;

use std::time::Duration;

use anyhow::Context;
use bson::doc;
use common::*;
use zerostack_harness::cases::Cases;
use zerostack_harness::{Mongo, Postgres, service_temp_dir};

const COLUMNS: &[&str] = &["_id", "roomId", "text"];
const MIB: usize = 1 << 20;

/// A document of exactly `size` BSON bytes: `base` plus a `blob` string that fills it up.
fn sized(mut base: bson::Document, size: usize) -> anyhow::Result<bson::Document> {
    base.insert("blob", "");
    let empty = bson::RawDocumentBuf::try_from(&base)?.as_bytes().len();
    anyhow::ensure!(size >= empty, "{size} is below the document's own size");
    base.insert("blob", "x".repeat(size - empty));
    assert_eq!(
        bson::RawDocumentBuf::try_from(&base)?.as_bytes().len(),
        size
    );
    Ok(base)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_over_16_mib_never_stall_the_stream() -> anyhow::Result<()> {
    let dir = service_temp_dir("oversized")?;
    let mongo = Mongo::start_in(dir.path().join("mongo")).await?;
    let pg = Postgres::start_in(dir.path().join("pg")).await?;
    let db = mongo.client().await?.database("app");
    let messages = db.collection::<bson::Document>("messages");
    messages
        .insert_one(doc! {"_id": "m0", "roomId": "r", "text": "seed"})
        .await?;
    let source = SourceServer::start(&dir.path().join("source"), &mongo.uri(), "app", &[]).await?;
    let zero = start_zero_cache(dir.path(), &source, &pg).await?;
    let mut cases = Cases::new("oversized");

    cases
        .run(
            "an update whose event is over 16 MiB only because of its update description",
            async {
                messages
                    .insert_one(sized(
                        doc! {"_id": "big", "roomId": "r", "text": "big"},
                        14 * MIB,
                    )?)
                    .await?;
                messages
                    .update_one(
                        doc! {"_id": "big"},
                        doc! {"$set": {"pad": "y".repeat(3 * MIB / 2), "text": "big, updated"}},
                    )
                    .await?;
                messages
                    .insert_one(doc! {"_id": "after-big", "roomId": "r", "text": "after"})
                    .await?;
                let want = mongo_rows(&db, "messages", doc! {}, COLUMNS).await?;
                wait_replica_equals(&zero, "after the big update", "messages", COLUMNS, &want)
                    .await?;
                assert!(
                    !source.process.log_contains("reset-required"),
                    "no reset was needed:\n{}",
                    source.process.log_tail(10)
                );
                Ok(())
            },
        )
        .await;

    // With pre-images (a table keyed by something other than `_id`), an update carries the
    // document twice: a 10 MiB document makes an event of over 20 MiB, which MongoDB cannot
    // build. The stream cannot get past it, so the source asks for a reset naming the document.
    cases
        .run(
            "an event that cannot fit asks for a reset naming the document",
            async {
                let articles = db.collection::<bson::Document>("articles");
                db.run_command(doc! {"create": "articles", "changeStreamPreAndPostImages": {"enabled": true}})
                    .await?;
                let config = dir.path().join("articles");
                std::fs::create_dir_all(&config)?;
                let column = |t: &str| serde_json::json!({"type": t, "optional": false, "customType": null});
                let schema = serde_json::json!({"tables": {"articles": {"name": "articles", "columns": {"slug": column("string"), "title": column("string")}, "primaryKey": ["slug"]}}, "relationships": {}});
                let schema_file = config.join("schema.json");
                std::fs::write(&schema_file, schema.to_string())?;
                let schema_file = schema_file.display().to_string();
                let second = SourceServer::start(
                    &config,
                    &mongo.uri(),
                    "app",
                    &[
                        ("ZERO_SCHEMA_FILE", &schema_file),
                        ("ZERO_TABLE_MAPPINGS_FILE", ""),
                        ("ZERO_PERMISSIONS_FILE", ""),
                    ],
                )
                .await?;
                let t = Duration::from_secs(30);
                let mut c = ProtocolClient::connect(&format!("{}&appID=big&shardNum=0", second.ws_url())).await?;
                let (rv, _) = c.transaction(t).await?;
                drop(c);
                let mut c = ProtocolClient::connect(&format!(
                    "{}&appID=big&shardNum=0&lastWatermark={rv}&replicaVersion={rv}",
                    second.ws_url()
                ))
                .await?;
                articles
                    .insert_one(sized(doc! {"_id": "huge", "slug": "huge", "title": "t"}, 10 * MIB)?)
                    .await?;
                articles
                    .update_one(doc! {"_id": "huge"}, doc! {"$set": {"title": "t2", "more": "z"}})
                    .await?;
                loop {
                    let m = c.next(t).await?.context("the stream closed without a reset")?;
                    if m[0] == "control" {
                        assert_eq!(m[1]["tag"], "reset-required", "{m}");
                        let message = m[1]["message"].as_str().unwrap_or_default();
                        assert!(message.contains(r#"articles _id "huge""#), "{message}");
                        return Ok(());
                    }
                }
            },
        )
        .await;

    cases.finish()
}
