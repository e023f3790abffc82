//! Pipeline mappings through everything real: MongoDB (with pre-images), the source server,
//! PostgreSQL and zero-cache 1.9.0. After every step the replica zero-cache built must equal
//! what `db.collection.aggregate(pipeline)` returns, computed by MongoDB itself: element add,
//! remove, reorder and modify; `preserveNullAndEmptyArrays` with missing and empty arrays;
//! `includeArrayIndex`; a document moving out of and back into the `$match`; a delete; a
//! transaction touching several documents; a restart of zero-cache and of the source; a
//! document with 10,000 elements. A collection without
//! pre-images makes the source refuse to start, naming it.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context;
use bson::{Bson, Document, doc};
use common::*;
use futures::TryStreamExt;
use serde_json::{Value, json};
use zerostack_harness::cases::Cases;
use zerostack_harness::{Mongo, Postgres, ZeroCache, ZeroCacheOptions, service_temp_dir};

fn col(t: &str, optional: bool) -> Value {
    json!({"type": t, "optional": optional, "customType": null})
}

/// A pipeline table of the test schema.
struct Table {
    name: &'static str,
    source: &'static str,
    pipeline: Value,
    key: Vec<&'static str>,
    columns: Vec<&'static str>,
}

fn tables() -> Vec<Table> {
    vec![
        Table {
            name: "account_members",
            source: "accounts",
            pipeline: json!([
                {"$match": {"bundle": "ENTERPRISE"}},
                {"$unwind": "$members"},
                {"$addFields": {"accountId": "$_id", "userId": "$members.id", "role": "$members.role"}}
            ]),
            key: vec!["accountId", "userId"],
            columns: vec!["accountId", "userId", "role", "name"],
        },
        Table {
            name: "order_lines",
            source: "orders",
            pipeline: json!([
                {"$unwind": {"path": "$items", "includeArrayIndex": "pos", "preserveNullAndEmptyArrays": true}},
                {"$set": {"orderId": "$_id", "line": {"$ifNull": ["$pos", -1]},
                          "sku": "$items.sku", "qty": "$items.qty"}},
                {"$project": {"_id": 0, "orderId": 1, "line": 1, "sku": 1, "qty": 1}}
            ]),
            key: vec!["orderId", "line"],
            columns: vec!["orderId", "line", "sku", "qty"],
        },
    ]
}

fn schema_and_mappings() -> (Value, Value) {
    let mut schema = serde_json::Map::new();
    let mut mappings = serde_json::Map::new();
    for Table {
        name,
        source,
        pipeline,
        key,
        columns,
    } in tables()
    {
        let cols: serde_json::Map<String, Value> = columns
            .iter()
            .map(|c| {
                let kind = if matches!(*c, "line" | "qty") {
                    "number"
                } else {
                    "string"
                };
                (c.to_string(), col(kind, !key.contains(c)))
            })
            .collect();
        schema.insert(
            name.into(),
            json!({"name": name, "columns": cols, "primaryKey": key}),
        );
        mappings.insert(name.into(), json!({"source": source, "pipeline": pipeline}));
    }
    (
        json!({"tables": schema, "relationships": {}}),
        json!({"version": 1, "mappings": mappings}),
    )
}

/// A row as comparable text: the key columns joined, and the whole row.
type Rows = BTreeMap<String, String>;

fn cell(v: &Value) -> String {
    match v {
        Value::Number(n) => n.as_f64().map_or_else(|| n.to_string(), |f| f.to_string()),
        Value::Null => "null".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn bson_cell(v: Option<&Bson>) -> String {
    match v {
        None | Some(Bson::Null) => "null".into(),
        Some(Bson::String(s)) => s.clone(),
        Some(Bson::Int32(i)) => f64::from(*i).to_string(),
        Some(Bson::Int64(i)) => (*i as f64).to_string(),
        Some(Bson::Double(f)) => f.to_string(),
        Some(other) => other.to_string(),
    }
}

fn row_text(key: &[&str], columns: &[&str], get: impl Fn(&str) -> String) -> (String, String) {
    let k = key.iter().map(|c| get(c)).collect::<Vec<_>>().join("|");
    let r = columns
        .iter()
        .map(|c| format!("{c}={}", get(c)))
        .collect::<Vec<_>>()
        .join(" ");
    (k, r)
}

/// What MongoDB's own aggregate says each table holds.
async fn expected(db: &mongodb::Database) -> anyhow::Result<BTreeMap<String, Rows>> {
    let mut out = BTreeMap::new();
    for Table {
        name,
        source,
        pipeline,
        key,
        columns,
    } in tables()
    {
        let stages: Vec<Document> = pipeline
            .as_array()
            .unwrap()
            .iter()
            .map(|s| Document::try_from(s.as_object().unwrap().clone()))
            .collect::<Result<_, _>>()?;
        let docs: Vec<Document> = db
            .collection::<Document>(source)
            .aggregate(stages)
            .await?
            .try_collect()
            .await?;
        let rows: Rows = docs
            .iter()
            .map(|d| row_text(&key, &columns, |c| bson_cell(d.get(c))))
            .collect();
        out.insert(name.to_string(), rows);
    }
    Ok(out)
}

fn actual(replica: &Value) -> BTreeMap<String, Rows> {
    tables()
        .into_iter()
        .map(
            |Table {
                 name, key, columns, ..
             }| {
                let rows = replica[name].as_array().cloned().unwrap_or_default();
                let rows: Rows = rows
                    .iter()
                    .map(|r| row_text(&key, &columns, |c| cell(&r[c])))
                    .collect();
                (name.to_string(), rows)
            },
        )
        .collect()
}

async fn converge(zero: &ZeroCache, db: &mongodb::Database, what: &str) -> anyhow::Result<()> {
    let want = expected(db).await?;
    let mut last = BTreeMap::new();
    for _ in 0..120 {
        if let Ok(replica) = zero.replica().await {
            last = actual(&replica);
            if last == want {
                return Ok(());
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    anyhow::bail!(
        "{what}: the replica is not what aggregate returns\n want: {want:#?}\n have: {last:#?}\nzero-cache log:\n{}",
        zero.log_tail(8)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipeline_tables_equal_mongodb_aggregate_through_zero_cache() -> anyhow::Result<()> {
    let dir = service_temp_dir("pipeline-e2e")?;
    let mongo = Mongo::start_in(dir.path().join("mongo")).await?;
    let pg = Postgres::start_in(dir.path().join("pg")).await?;
    pg.create_db("zero_cvr").await?;
    pg.create_db("zero_cdc").await?;
    let client = mongo.client().await?;
    let db = client.database("app");
    let (schema, mappings) = schema_and_mappings();
    let files = dir.path().join("inputs");
    std::fs::create_dir_all(&files)?;
    let schema_file = files.join("schema.json");
    let mappings_file = files.join("mappings.json");
    let permissions_file = files.join("permissions.json");
    std::fs::write(&schema_file, schema.to_string())?;
    std::fs::write(&mappings_file, mappings.to_string())?;
    std::fs::write(&permissions_file, "null")?;
    let (s, m, p) = (
        schema_file.display().to_string(),
        mappings_file.display().to_string(),
        permissions_file.display().to_string(),
    );
    let env = [
        ("ZERO_SCHEMA_FILE", s.as_str()),
        ("ZERO_TABLE_MAPPINGS_FILE", m.as_str()),
        ("ZERO_PERMISSIONS_FILE", p.as_str()),
    ];

    let accounts = db.collection::<Document>("accounts");
    let orders = db.collection::<Document>("orders");
    // `accounts` first without pre-images: the source must refuse to start.
    db.create_collection("accounts").await?;
    db.create_collection("orders")
        .change_stream_pre_and_post_images(
            mongodb::options::ChangeStreamPreAndPostImages::builder()
                .enabled(true)
                .build(),
        )
        .await?;
    accounts
        .insert_many(vec![
            doc! {"_id": "a1", "bundle": "ENTERPRISE", "name": "Acme",
                  "members": [{"id": "u1", "role": "owner"}, {"id": "u2", "role": "dev"}]},
            doc! {"_id": "a2", "bundle": "FREE", "name": "Tiny", "members": [{"id": "u9", "role": "owner"}]},
            doc! {"_id": "a3", "bundle": "ENTERPRISE", "name": "Empty", "members": []},
        ])
        .await?;
    orders
        .insert_many(vec![
            doc! {"_id": "o1", "items": [{"sku": "x", "qty": 1}, {"sku": "y", "qty": 2}]},
            doc! {"_id": "o2", "items": []},
            doc! {"_id": "o3"},
        ])
        .await?;

    let mut cases = Cases::new("pipeline-replica");
    let mut source: Option<SourceServer> = None;
    let mut zero: Option<ZeroCache> = None;

    cases
        .run(
            "a collection without pre-images is refused at start-up",
            async {
                let refused =
                    SourceServer::start(&dir.path().join("refused"), &mongo.uri(), "app", &env)
                        .await;
                let text = match refused {
                    Ok(mut s) => {
                        s.process.terminate().await.ok();
                        anyhow::bail!("the source started without pre-images on accounts");
                    }
                    Err(e) => format!("{e:#}"),
                };
                anyhow::ensure!(
                    text.contains("accounts") && text.contains("changeStreamPreAndPostImages"),
                    "the refusal names the collection and the setting: {text}"
                );
                db.run_command(
                    doc! {"collMod": "accounts", "changeStreamPreAndPostImages": {"enabled": true}},
                )
                .await?;
                Ok(())
            },
        )
        .await;

    cases
        .run("the initial sync equals aggregate", async {
            let s =
                SourceServer::start(&dir.path().join("source"), &mongo.uri(), "app", &env).await?;
            let opts = ZeroCacheOptions {
                upstream_url: s.ws_url(),
                cvr_db: pg.url("zero_cvr"),
                change_db: pg.url("zero_cdc"),
                ..Default::default()
            };
            source = Some(s);
            let z = zero.insert(ZeroCache::start_in(dir.path().join("zero"), opts).await?);
            converge(z, &db, "initial sync").await
        })
        .await;

    let step = |name: &'static str| name;
    for (name, update) in [
        (
            step("an element is added"),
            doc! {"$push": {"members": {"id": "u3", "role": "dev"}}},
        ),
        (
            step("an element is removed"),
            doc! {"$pull": {"members": {"id": "u1"}}},
        ),
        (
            step("the elements are reordered"),
            doc! {"$set": {"members": [{"id": "u3", "role": "dev"}, {"id": "u2", "role": "dev"}]}},
        ),
        (
            step("an element is modified"),
            doc! {"$set": {"members.0.role": "lead"}},
        ),
        (
            step("a field every row carries changes"),
            doc! {"$set": {"name": "Acme Inc"}},
        ),
        (
            step("the document leaves the $match"),
            doc! {"$set": {"bundle": "FREE"}},
        ),
        (
            step("the document comes back into the $match"),
            doc! {"$set": {"bundle": "ENTERPRISE"}},
        ),
    ] {
        cases
            .run(name, async {
                let z = zero.as_ref().context("needs the initial sync")?;
                accounts.update_one(doc! {"_id": "a1"}, update).await?;
                converge(z, &db, name).await
            })
            .await;
    }

    cases
        .run(
            "missing and empty arrays with preserveNullAndEmptyArrays, and the index",
            async {
                let z = zero.as_ref().context("needs the initial sync")?;
                orders
                    .update_one(
                        doc! {"_id": "o2"},
                        doc! {"$set": {"items": [{"sku": "n", "qty": 5}]}},
                    )
                    .await?;
                orders
                    .update_one(doc! {"_id": "o1"}, doc! {"$set": {"items": []}})
                    .await?;
                orders
                    .update_one(
                        doc! {"_id": "o3"},
                        doc! {"$set": {"items": [{"sku": "a"}, {"sku": "b"}, {"sku": "c"}]}},
                    )
                    .await?;
                orders
                    .update_one(doc! {"_id": "o3"}, doc! {"$pop": {"items": -1}})
                    .await?;
                orders
                    .update_one(doc! {"_id": "o2"}, doc! {"$unset": {"items": ""}})
                    .await?;
                converge(z, &db, "arrays").await
            },
        )
        .await;

    cases
        .run("a delete", async {
            let z = zero.as_ref().context("needs the initial sync")?;
            accounts.delete_one(doc! {"_id": "a1"}).await?;
            orders.delete_one(doc! {"_id": "o3"}).await?;
            converge(z, &db, "delete").await
        })
        .await;

    cases
        .run("a transaction touching several documents", async {
            let z = zero.as_ref().context("needs the initial sync")?;
            let mut session = client.start_session().await?;
            session.start_transaction().await?;
            accounts
                .insert_one(doc! {"_id": "a4", "bundle": "ENTERPRISE", "name": "New",
                "members": [{"id": "u5", "role": "x"}, {"id": "u6", "role": "y"}]})
                .session(&mut session)
                .await?;
            accounts
                .update_one(doc! {"_id": "a2"}, doc! {"$set": {"bundle": "ENTERPRISE"}})
                .session(&mut session)
                .await?;
            accounts
                .update_one(
                    doc! {"_id": "a3"},
                    doc! {"$push": {"members": {"id": "u7"}}},
                )
                .session(&mut session)
                .await?;
            orders
                .update_one(
                    doc! {"_id": "o2"},
                    doc! {"$set": {"items": [{"sku": "t", "qty": 1}, {"sku": "u", "qty": 2}]}},
                )
                .session(&mut session)
                .await?;
            session.commit_transaction().await?;
            converge(z, &db, "transaction").await
        })
        .await;

    cases
        .run("a zero-cache restart loses nothing", async {
            let z = zero.as_mut().context("needs the initial sync")?;
            z.restart().await.context("restarting zero-cache")?;
            accounts
                .update_one(
                    doc! {"_id": "a4"},
                    doc! {"$push": {"members": {"id": "u8", "role": "z"}}},
                )
                .await?;
            converge(z, &db, "zero-cache restart").await
        })
        .await;

    cases
        .run("a document with 10,000 elements, then one removed", async {
            let z = zero.as_ref().context("needs the initial sync")?;
            let members: Vec<Bson> = (0..10_000)
                .map(|i| Bson::Document(doc! {"id": format!("m{i}"), "role": "r"}))
                .collect();
            accounts
                .insert_one(
                    doc! {"_id": "big", "bundle": "ENTERPRISE", "name": "Big", "members": members},
                )
                .await?;
            converge(z, &db, "10,000 elements").await?;
            accounts
                .update_one(
                    doc! {"_id": "big"},
                    doc! {"$pull": {"members": {"id": "m5000"}}},
                )
                .await?;
            converge(z, &db, "10,000 elements, one removed").await
        })
        .await;

    cases
        .run("a source restart loses nothing", async {
            let z = zero.as_ref().context("needs the initial sync")?;
            let s = source.as_mut().context("needs the source")?;
            s.kill9_and_restart().await?;
            accounts
                .update_one(
                    doc! {"_id": "a4"},
                    doc! {"$pull": {"members": {"id": "u5"}}},
                )
                .await?;
            converge(z, &db, "source restart").await
        })
        .await;

    if let Some(mut z) = zero {
        z.stop().await.ok();
    }
    if let Some(mut s) = source {
        s.process.terminate().await.ok();
    }
    cases.finish()
}
