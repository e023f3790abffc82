//! Pre- and post-images, on real MongoDB and through the real zero-cache:
//! - a table keyed by something other than `_id` (`articles` by `slug`) needs pre-images to find
//!   the row a delete or a key change leaves behind: without them on its collection the source
//!   refuses to start (exit 2, one line); with them, deletes and key changes reach the replica;
//! - `FULL_DOCUMENT=whenAvailable` needs post-images on every mapped collection: refused the
//!   same way without them, and checked again on every connection (turned off at run time, the
//!   next connection is refused with the same message).

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use bson::doc;
use common::*;
use serde_json::json;
use zerostack_harness::cases::Cases;
use zerostack_harness::{Mongo, Postgres, ZeroCache, ZeroCacheOptions, service_temp_dir};

fn column(kind: &str) -> serde_json::Value {
    json!({"type": kind, "optional": false, "customType": null})
}

/// `articles` keyed by `slug`, `notes` keyed by `_id`; both read the collection of their name.
fn write_schema(dir: &Path) -> anyhow::Result<String> {
    let schema = json!({
        "tables": {
            "articles": {"name": "articles", "columns": {"slug": column("string"), "title": column("string")}, "primaryKey": ["slug"]},
            "notes": {"name": "notes", "columns": {"_id": column("string"), "text": column("string")}, "primaryKey": ["_id"]},
        },
        "relationships": {},
    });
    std::fs::create_dir_all(dir)?;
    let path = dir.join("schema.json");
    std::fs::write(&path, schema.to_string())?;
    Ok(path.display().to_string())
}

/// Runs `source-server serve` and expects it to stop by itself with exit code 2 and a message
/// containing every `needle`.
fn expect_refusal(env: &[(&str, &str)], needles: &[&str]) -> anyhow::Result<()> {
    let mut cmd = Command::new(bin());
    cmd.env_clear()
        .envs(env.iter().copied())
        .env("HOST", "127.0.0.1")
        .env("PORT", zerostack_harness::free_port().to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn()?;
    let started = Instant::now();
    while child.try_wait()?.is_none() {
        if started.elapsed() > Duration::from_secs(20) {
            child.kill()?;
            let out = child.wait_with_output()?;
            anyhow::bail!(
                "source-server started instead of refusing:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = child.wait_with_output()?;
    let text = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "exit code; stderr:\n{text}");
    let line = text
        .lines()
        .find(|l| l.contains("changeStreamPreAndPostImages"))
        .unwrap_or_default();
    for n in needles {
        assert!(line.contains(n), "the refusal should name {n:?}: {text}");
    }
    Ok(())
}

async fn set_images(db: &mongodb::Database, collection: &str, on: bool) -> anyhow::Result<()> {
    db.run_command(doc! {"collMod": collection, "changeStreamPreAndPostImages": {"enabled": on}})
        .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn images_are_required_where_rows_depend_on_them() -> anyhow::Result<()> {
    let dir = service_temp_dir("images")?;
    let mongo = Mongo::start_in(dir.path().join("mongo")).await?;
    let db = mongo.client().await?.database("app");
    db.create_collection("articles").await?;
    db.create_collection("notes").await?;
    let articles = db.collection::<bson::Document>("articles");
    let notes = db.collection::<bson::Document>("notes");
    articles
        .insert_many(vec![
            doc! {"slug": "a", "title": "A"},
            doc! {"slug": "b", "title": "B"},
            doc! {"slug": "c", "title": "C"},
        ])
        .await?;
    notes
        .insert_many(vec![
            doc! {"_id": "n1", "text": "one"},
            doc! {"_id": "n2", "text": "two"},
        ])
        .await?;
    let schema = write_schema(&dir.path().join("config"))?;
    let uri = mongo.uri();
    let base = [
        ("MONGODB_URI", uri.as_str()),
        ("MONGODB_DATABASE", "app"),
        ("ZERO_SCHEMA_FILE", schema.as_str()),
    ];
    let with = |extra: &[(&'static str, &'static str)]| {
        let mut env: Vec<(&str, &str)> = base.to_vec();
        env.extend_from_slice(extra);
        env
    };
    let mut source: Option<SourceServer> = None;
    let mut zero: Option<ZeroCache> = None;
    let pg = Postgres::start_in(dir.path().join("pg")).await?;
    pg.create_db("zero_cvr").await?;
    pg.create_db("zero_cdc").await?;
    let mut cases = Cases::new("images");

    cases
        .run(
            "a key not derived from _id without pre-images is refused at start-up",
            async { expect_refusal(&with(&[]), &["articles", "slug", "pre-image"]) },
        )
        .await;

    cases
        .run(
            "FULL_DOCUMENT=whenAvailable without post-images is refused at start-up",
            async {
                set_images(&db, "articles", true).await?;
                expect_refusal(
                    &with(&[("FULL_DOCUMENT", "whenAvailable")]),
                    &["\"notes\"", "FULL_DOCUMENT=whenAvailable"],
                )
            },
        )
        .await;

    cases
        .run(
            "with images, deletes and key changes of a slug-keyed table reach the replica",
            async {
                set_images(&db, "notes", true).await?;
                let s = source.insert(
                    SourceServer::start(
                        &dir.path().join("source"),
                        &uri,
                        "app",
                        &[
                            ("ZERO_SCHEMA_FILE", &schema),
                            ("ZERO_TABLE_MAPPINGS_FILE", ""),
                            ("ZERO_PERMISSIONS_FILE", ""),
                            ("FULL_DOCUMENT", "whenAvailable"),
                        ],
                    )
                    .await?,
                );
                let z = zero.insert(
                    ZeroCache::start_in(
                        dir.path().join("zero"),
                        ZeroCacheOptions {
                            upstream_url: s.ws_url(),
                            cvr_db: pg.url("zero_cvr"),
                            change_db: pg.url("zero_cdc"),
                            ..Default::default()
                        },
                    )
                    .await?,
                );
                articles.delete_one(doc! {"slug": "a"}).await?;
                articles
                    .update_one(
                        doc! {"slug": "b"},
                        doc! {"$set": {"slug": "b2", "title": "B, renamed"}},
                    )
                    .await?;
                articles
                    .update_one(doc! {"slug": "c"}, doc! {"$set": {"title": "C2"}})
                    .await?;
                notes
                    .update_one(doc! {"_id": "n1"}, doc! {"$set": {"text": "one, edited"}})
                    .await?;
                notes.delete_one(doc! {"_id": "n2"}).await?;
                let cols = ["slug", "title"];
                let want = mongo_rows(&db, "articles", doc! {}, &cols).await?;
                wait_replica_equals(z, "articles after changes", "articles", &cols, &want).await?;
                let cols = ["_id", "text"];
                let want = mongo_rows(&db, "notes", doc! {}, &cols).await?;
                wait_replica_equals(z, "notes after changes", "notes", &cols, &want).await
            },
        )
        .await;

    cases
        .run(
            "images turned off at run time: the next connection is refused, loudly",
            async {
                let s = source.as_ref().context("needs the running source")?;
                let z = zero.as_mut().context("needs the running zero-cache")?;
                set_images(&db, "notes", false).await?;
                z.restart().await.ok();
                let started = Instant::now();
                while !s.process.log_contains(
                    "changeStreamPreAndPostImages is not enabled on collection \"notes\"",
                ) {
                    anyhow::ensure!(
                        started.elapsed() < Duration::from_secs(60),
                        "no refusal logged:\n{}",
                        s.process.log_tail(20)
                    );
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
                set_images(&db, "notes", true).await?;
                notes
                    .insert_one(doc! {"_id": "n3", "text": "three"})
                    .await?;
                let cols = ["_id", "text"];
                let want = mongo_rows(&db, "notes", doc! {}, &cols).await?;
                wait_replica_equals(z, "notes after images are back", "notes", &cols, &want).await
            },
        )
        .await;

    cases.finish()
}
