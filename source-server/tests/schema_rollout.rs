//! A schema change during a rolling update, with everything real: MongoDB, PostgreSQL, two
//! source-servers behind the harness's balancer (a stand-in for the Kubernetes Service) and
//! zero-cache 1.9.0 streaming through it.
//!
//! Source A runs the old configuration (`items` without `price`), source B the new one (with
//! it). zero-cache syncs from A, then moves to B, which adds the column in place. When it then
//! moves back to A (B killed for a moment, as a rollout or a crash would), A must not apply the
//! reverse diff: it refuses, says so on `/metadata/status`, and zero-cache resumes on B once B
//! is back. No reset, same replica version, and the replica keeps the column with the rows
//! written all along. Then A is restarted with the new configuration and B goes away: A serves
//! the replica as it is.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure};
use bson::doc;
use common::*;
use serde_json::{Value, json};
use zerostack_harness::balancer::Balancer;
use zerostack_harness::{Mongo, Postgres, ZeroCache, http, service_temp_dir};

const WITH_PRICE: &[&str] = &["_id", "name", "price"];

/// Writes the schema, mappings and permissions files for `items` (with `price` or not) in `dir`;
/// the environment a source needs to read them.
fn write_config(dir: &Path, price: bool) -> anyhow::Result<Vec<(String, String)>> {
    std::fs::create_dir_all(dir)?;
    let mut columns = json!({
        "_id": {"type": "string", "optional": false, "customType": null},
        "name": {"type": "string", "optional": true, "customType": null},
    });
    if price {
        columns["price"] = json!({"type": "number", "optional": true, "customType": null});
    }
    let schema = json!({"tables": {"items": {"name": "items", "columns": columns, "primaryKey": ["_id"]}}, "relationships": {}});
    let permissions = json!({"tables": {"items": {"row": {"select": [["allow", {"type": "and", "conditions": []}]]}}}});
    let files = [
        ("ZERO_SCHEMA_FILE", "schema.json", schema),
        ("ZERO_TABLE_MAPPINGS_FILE", "mappings.json", json!({})),
        ("ZERO_PERMISSIONS_FILE", "permissions.json", permissions),
    ];
    let mut env = Vec::new();
    for (var, name, content) in files {
        let p = dir.join(name);
        std::fs::write(&p, content.to_string())?;
        env.push((var.to_string(), p.display().to_string()));
    }
    Ok(env)
}

async fn start_source(
    dir: &Path,
    mongo: &Mongo,
    config: &[(String, String)],
) -> anyhow::Result<SourceServer> {
    let extra: Vec<(&str, &str)> = config
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    SourceServer::start(dir, &mongo.uri(), "app", &extra).await
}

/// Waits (bounded) until `source`'s last schema change matches `pred`; returns it.
async fn wait_change(
    source: &SourceServer,
    what: &str,
    pred: impl Fn(&Value) -> bool,
) -> anyhow::Result<Value> {
    let mut last = Value::Null;
    for _ in 0..240 {
        if let Ok(s) = source.status().await {
            last = s["lastSchemaChange"].clone();
            if pred(&last) {
                return Ok(last);
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    bail!(
        "{what}: never reported; last schema change: {last}\n{}",
        source.process.log_tail(30)
    )
}

async fn open_connections(source: &SourceServer) -> usize {
    source
        .status()
        .await
        .map_or(0, |s| s["connections"].as_array().map_or(0, Vec::len))
}

async fn wait_connected(source: &SourceServer, what: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if open_connections(source).await > 0 {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!(
        "{what}: zero-cache never connected\n{}",
        source.process.log_tail(30)
    )
}

fn log_of(dir: &Path) -> String {
    ["source-server.stdout.log", "source-server.stderr.log"]
        .iter()
        .filter_map(|f| std::fs::read_to_string(dir.join(f)).ok())
        .collect()
}

/// Inserts `n` items with a price, tagged `tag`.
async fn write_items(db: &mongodb::Database, tag: &str, n: usize) -> anyhow::Result<()> {
    let items = db.collection::<bson::Document>("items");
    for i in 0..n {
        items
            .insert_one(doc! {"_id": format!("{tag}-{i}"), "name": format!("{tag} {i}"), "price": i as f64 + 0.5})
            .await?;
    }
    Ok(())
}

/// The replica's `items` equal MongoDB's, price included.
async fn items_equal(zero: &ZeroCache, db: &mongodb::Database, what: &str) -> anyhow::Result<()> {
    let want = mongo_rows(db, "items", doc! {}, WITH_PRICE).await?;
    wait_replica_equals(zero, what, "items", WITH_PRICE, &want).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schema_change_is_never_reversed_by_an_old_source_during_a_rollout() -> anyhow::Result<()>
{
    let dir = service_temp_dir("schema-rollout")?;
    let mongo = Mongo::start_in(dir.path().join("mongo")).await?;
    let pg = Postgres::start_in(dir.path().join("pg")).await?;
    let db = mongo.client().await?.database("app");
    let seed: Vec<bson::Document> = (0..200)
        .map(|i| doc! {"_id": format!("i{i:03}"), "name": format!("item {i}"), "price": i as f64 + 0.25})
        .collect();
    db.collection("items").insert_many(seed).await?;

    let dirs: Vec<PathBuf> = ["source-a", "source-b"]
        .iter()
        .map(|n| dir.path().join(n))
        .collect();
    let old_config = write_config(&dir.path().join("config-a"), false)?;
    let new_config = write_config(&dir.path().join("config-b"), true)?;

    // A first (the old configuration is loaded first), then B, which is stopped at once so
    // that zero-cache's initial sync is on A: B's port refuses, so the balancer hands every
    // connection to A.
    let mut a = start_source(&dirs[0], &mongo, &old_config).await?;
    let mut b = start_source(&dirs[1], &mongo, &new_config).await?;
    b.process.kill9().await?;
    let balancer = Balancer::start(vec![
        ([127, 0, 0, 1], a.port).into(),
        ([127, 0, 0, 1], b.port).into(),
    ])
    .await?;
    let mut zero = start_zero_cache_on(dir.path(), balancer.port(), &pg).await?;
    let want = mongo_rows(&db, "items", doc! {}, &["_id", "name"]).await?;
    wait_replica_equals(&zero, "initial sync on A", "items", &["_id", "name"], &want).await?;
    let rv = replica_version(&zero).await?;
    wait_connected(&a, "A after the initial sync").await?;

    // The rollout's new pod starts; zero-cache moves to it (A restarted, same configuration).
    b.start_again().await?;
    a.process.kill9().await?;
    let applied = wait_change(&b, "B applies the new column in place", |c| {
        c["kind"] == "in-place" && c["state"] == "committed"
    })
    .await?;
    ensure!(applied["steps"].to_string().contains("price"), "{applied}");
    a.start_again().await?;
    write_items(&db, "on-b", 20).await?;
    items_equal(&zero, &db, "the new column, from B").await?;
    let (old_hash, new_hash) = (
        applied["fromConfigHash"].clone(),
        applied["toConfigHash"].clone(),
    );

    // zero-cache loses B and lands on A: A must refuse rather than drop the column.
    b.process.kill9().await?;
    let writer = tokio::spawn({
        let db = db.clone();
        async move { write_items(&db, "moving", 30).await }
    });
    let refused = wait_change(&a, "A refuses the backward change", |c| {
        c["kind"] == "refused"
    })
    .await?;
    ensure!(
        refused["fromConfigHash"] == new_hash && refused["toConfigHash"] == old_hash,
        "A refused the wrong change: {refused}"
    );
    ensure!(
        refused["reason"]
            .as_str()
            .is_some_and(|r| r.contains("backwards")),
        "{refused}"
    );
    // An old source stays ready: it still serves replicas that have its configuration.
    let ready = http::get(format!("{}/ready", a.http())).await?;
    ensure!(ready.status().is_success(), "A is not ready any more");
    b.start_again().await?;
    wait_connected(&b, "B after its restart").await?;
    writer.await??;
    write_items(&db, "back-on-b", 20).await?;
    items_equal(&zero, &db, "after the move to A and back").await?;
    same_replica(&mut zero, &rv).await?;
    let a_log = log_of(&dirs[0]);
    ensure!(
        !a_log.contains("applying it in place"),
        "A applied a schema change:\n{}",
        a.process.log_tail(30)
    );
    ensure!(
        a_log.contains("schema change refused"),
        "A never logged its refusal"
    );

    // The rollout ends: A runs the new configuration too, and B goes away.
    a.env
        .retain(|(k, _)| !new_config.iter().any(|(n, _)| n == k));
    a.env.extend(new_config.iter().cloned());
    a.process.kill9().await?;
    a.start_again().await?;
    b.process.kill9().await?;
    wait_connected(&a, "A with the new configuration").await?;
    write_items(&db, "on-new-a", 20).await?;
    items_equal(&zero, &db, "A with the new configuration").await?;
    same_replica(&mut zero, &rv).await?;
    let last = a.status().await?["lastSchemaChange"].clone();
    ensure!(
        last.is_null(),
        "A had nothing to change, yet reports {last}"
    );
    let resets = a.resets_counted().await;
    ensure!(resets == 0.0, "A counted {resets} resets");
    ensure!(
        !log_of(&dirs[1]).contains("sending reset-required")
            && !log_of(&dirs[0]).contains("sending reset-required"),
        "a source sent reset-required"
    );
    eprintln!(
        "rollout: connections A {} B {}, A refused {refused}",
        balancer.connections_to(0),
        balancer.connections_to(1)
    );
    zero.stop().await?;
    balancer.stop().await;
    Ok(())
}
