//! Schema changes without a resync, with everything real: MongoDB, PostgreSQL, zero-cache 1.9.0
//! and a Zero client. The source is restarted with a changed schema, mappings or permissions
//! while writes go on; zero-cache must keep its replica (same replica version, no exit), the
//! replica must equal MongoDB afterwards, and a Zero client must see the new table or column;
//! a client subscribed before a change keeps its subscription and receives what is written
//! during and after it, with no reload.
//! A change that cannot be applied in place must still reset cleanly, and a zero-cache
//! restarted in the middle of a large new table must end with the replica equal to MongoDB.
//!
//! The services cost seconds to start, so one test runs the changes as named cases, in order,
//! on one replica: each case starts from the configuration the previous one left.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use bson::doc;
use common::*;
use serde_json::{Value, json};
use zerostack_harness::cases::Cases;
use zerostack_harness::{
    ManagedProcess, Mongo, Postgres, ZeroCache, ZeroClientWait, service_temp_dir, zero_client_wait,
};

/// One table of the test's configuration: its columns (`name` → type, `?` suffix = optional)
/// and its mapping.
struct Table {
    name: &'static str,
    columns: Vec<(&'static str, &'static str)>,
    mapping: Option<Value>,
}

fn table(
    name: &'static str,
    columns: &[(&'static str, &'static str)],
    mapping: Option<Value>,
) -> Table {
    Table {
        name,
        columns: columns.to_vec(),
        mapping,
    }
}

/// The configuration files a source is started with; rewritten in place for each change.
struct ConfigFiles {
    schema: PathBuf,
    mappings: PathBuf,
    permissions: PathBuf,
}

impl ConfigFiles {
    fn new(dir: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)?;
        Ok(ConfigFiles {
            schema: dir.join("schema.json"),
            mappings: dir.join("mappings.json"),
            permissions: dir.join("permissions.json"),
        })
    }

    /// Writes the files for `tables`; `denied` tables get no `select` rule.
    fn write(&self, tables: &[Table], denied: &[&str]) -> anyhow::Result<()> {
        let mut schema = serde_json::Map::new();
        let mut mappings = serde_json::Map::new();
        let mut permissions = serde_json::Map::new();
        for t in tables {
            let columns: serde_json::Map<String, Value> = t
                .columns
                .iter()
                .map(|(c, ty)| {
                    let optional = ty.ends_with('?');
                    (
                        c.to_string(),
                        json!({"type": ty.trim_end_matches('?'), "optional": optional, "customType": null}),
                    )
                })
                .collect();
            schema.insert(
                t.name.into(),
                json!({"name": t.name, "columns": columns, "primaryKey": ["_id"]}),
            );
            if let Some(m) = &t.mapping {
                mappings.insert(t.name.into(), m.clone());
            }
            let select = if denied.contains(&t.name) {
                json!([])
            } else {
                json!([["allow", {"type": "and", "conditions": []}]])
            };
            permissions.insert(t.name.into(), json!({"row": {"select": select}}));
        }
        std::fs::write(
            &self.schema,
            json!({"tables": schema, "relationships": {}}).to_string(),
        )?;
        std::fs::write(&self.mappings, Value::Object(mappings).to_string())?;
        std::fs::write(
            &self.permissions,
            json!({"tables": permissions}).to_string(),
        )?;
        Ok(())
    }

    fn permissions_json(&self) -> anyhow::Result<Value> {
        Ok(serde_json::from_str(&std::fs::read_to_string(
            &self.permissions,
        )?)?)
    }
}

/// The tables of each configuration the scenario goes through.
fn items(price: bool) -> Table {
    let mut c = vec![("_id", "string"), ("name", "string?")];
    if price {
        c.push(("price", "number?"));
    }
    table("items", &c, None)
}

fn chats(topic: bool) -> Table {
    let mut c = vec![("_id", "string"), ("t", "string"), ("name", "string?")];
    if topic {
        c.push(("topic", "string?"));
    }
    table(
        "chats",
        &c,
        Some(json!({"source": "rooms", "filter": {"t": "d"}})),
    )
}

fn channels() -> Table {
    table(
        "channels",
        &[("_id", "string"), ("t", "string"), ("name", "string?")],
        Some(json!({"source": "rooms", "filter": {"t": "c"}})),
    )
}

fn notes() -> Table {
    table("notes", &[("_id", "string"), ("body", "string?")], None)
}

fn tags() -> Table {
    table("tags", &[("_id", "string"), ("label", "string?")], None)
}

fn messages(kinds: &[&str]) -> Table {
    table(
        "messages",
        &[("_id", "string"), ("text", "string?"), ("kind", "string?")],
        Some(json!({"source": "messages", "filter": {"kind": {"$in": kinds}}})),
    )
}

fn big() -> Table {
    table(
        "big",
        &[("_id", "string"), ("n", "number?"), ("pad", "string?")],
        None,
    )
}

/// A bounded write loop over every collection of the scenario: inserts, updates and deletes,
/// so that changes land before, during and after the change point.
async fn write_loop(db: mongodb::Database, tag: &'static str, n: usize) -> anyhow::Result<()> {
    let rooms = db.collection::<bson::Document>("rooms");
    let items = db.collection::<bson::Document>("items");
    let messages = db.collection::<bson::Document>("messages");
    let tags = db.collection::<bson::Document>("tags");
    for i in 0..n {
        let t = if i % 2 == 0 { "c" } else { "d" };
        rooms
            .insert_one(doc! {"_id": format!("{tag}-r{i}"), "t": t, "name": format!("{tag} room {i}"), "topic": "x"})
            .await?;
        rooms
            .update_one(
                doc! {"_id": format!("r{}", i % 40)},
                doc! {"$set": {"name": format!("{tag} renamed {i}")}},
            )
            .await?;
        items
            .update_one(
                doc! {"_id": format!("i{}", i % 100)},
                doc! {"$set": {"price": (i as f64) + 0.5, "name": format!("{tag} item {i}")}},
            )
            .await?;
        items
            .insert_one(doc! {"_id": format!("{tag}-i{i}"), "name": format!("{tag} new item {i}"), "price": i as f64 + 0.75})
            .await?;
        let kind = ["a", "b", "c"][i % 3];
        messages
            .insert_one(
                doc! {"_id": format!("{tag}-m{i}"), "text": format!("{tag} {i}"), "kind": kind},
            )
            .await?;
        messages
            .update_one(
                doc! {"_id": format!("m{}", i % 60)},
                doc! {"$set": {"kind": (["c", "a", "b"][i % 3])}},
            )
            .await?;
        tags.insert_one(doc! {"_id": format!("{tag}-g{i}"), "label": format!("{tag} tag {i}")})
            .await?;
        if i % 10 == 0 {
            items
                .delete_one(doc! {"_id": format!("i{}", 100 + i / 10)})
                .await?;
        }
        tokio::time::sleep(Duration::from_millis(4)).await;
    }
    Ok(())
}

/// Waits until the source reports `kind` for its last schema change to `hash`, committed when in
/// place; returns it.
async fn wait_last_change(source: &SourceServer, kind: &str) -> anyhow::Result<Value> {
    let mut last = Value::Null;
    for _ in 0..240 {
        if let Ok(s) = source.status().await {
            last = s["lastSchemaChange"].clone();
            if last["kind"] == kind && (kind == "reset" || last["state"] == "committed") {
                return Ok(last);
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    bail!("the source never reported a {kind} schema change; last: {last}")
}

/// The table's rows in MongoDB as the replica should hold them.
async fn want(
    db: &mongodb::Database,
    collection: &str,
    filter: bson::Document,
    columns: &[&str],
) -> anyhow::Result<Vec<Value>> {
    mongo_rows(db, collection, filter, columns).await
}

/// Everything the source process logged so far.
fn source_log(source: &SourceServer) -> anyhow::Result<String> {
    let p = &source.process;
    Ok(std::fs::read_to_string(p.stdout_log())? + &std::fs::read_to_string(p.stderr_log())?)
}

async fn client_sees(
    zero: &ZeroCache,
    schema: &Path,
    table: &str,
    row: Value,
) -> anyhow::Result<()> {
    zero_client_wait(
        &ZeroClientWait::new(zero.url(), schema, table)
            .until(row)
            .timeout(Duration::from_secs(60)),
    )
    .await
    .map(|_| ())
}

/// A real Zero client (`zero-client.mjs`) kept subscribed to one table across a change: it
/// prints every result and any reload (Zero's "start over from scratch"), and exits 0 once a
/// row containing `until` arrives.
struct Subscriber {
    process: ManagedProcess,
}

impl Subscriber {
    fn start(
        dir: &Path,
        zero: &ZeroCache,
        schema: &Path,
        table: &str,
        until: Value,
    ) -> anyhow::Result<Self> {
        zerostack_harness::node::ensure_node_modules()?;
        let node = zerostack_harness::node_dir();
        let mut cmd = std::process::Command::new(zerostack_harness::paths::node_bin());
        cmd.current_dir(&node)
            .arg(node.join("zero-client.mjs"))
            .args(["--url", &zero.url(), "--table", table])
            .arg("--schema")
            .arg(schema)
            .args(["--until-json", &until.to_string(), "--timeout-ms", "240000"]);
        Ok(Subscriber {
            process: ManagedProcess::spawn("zero-client", cmd, dir)?,
        })
    }

    /// What it printed so far, one JSON value a line.
    fn lines(&self) -> Vec<Value> {
        std::fs::read_to_string(self.process.stdout_log())
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Waits (bounded) for its first complete result; how many rows it had.
    async fn wait_complete(&self) -> anyhow::Result<usize> {
        for _ in 0..240 {
            if let Some(l) = self.lines().iter().find(|l| l["resultType"] == "complete") {
                return Ok(l["rows"].as_array().map_or(0, Vec::len));
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        bail!(
            "the subscribed client never had a complete result\n{}",
            self.process.log_tail(20)
        )
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema_changes_apply_in_place_through_zero_cache() -> anyhow::Result<()> {
    let dir = service_temp_dir("schema-change")?;
    let mongo = Mongo::start_in(dir.path().join("mongo")).await?;
    let pg = Postgres::start_in(dir.path().join("pg")).await?;
    let db = mongo.client().await?.database("app");
    let rooms: Vec<bson::Document> = (0..200)
        .map(|i| doc! {"_id": format!("r{i}"), "t": if i % 2 == 0 { "d" } else { "c" }, "name": format!("room {i}"), "topic": format!("topic {i}")})
        .collect();
    db.collection("rooms").insert_many(rooms).await?;
    let item_docs: Vec<bson::Document> = (0..500)
        .map(|i| {
            let mut d = doc! {"_id": format!("i{i}"), "name": format!("item {i}")};
            if i % 3 != 0 {
                d.insert("price", i as f64 + 0.25);
            }
            d
        })
        .collect();
    db.collection("items").insert_many(item_docs).await?;
    let note_docs: Vec<bson::Document> = (0..50)
        .map(|i| doc! {"_id": format!("n{i}"), "body": format!("note {i}")})
        .collect();
    db.collection("notes").insert_many(note_docs).await?;
    let msgs: Vec<bson::Document> = (0..300)
        .map(|i| doc! {"_id": format!("m{i}"), "text": format!("message {i}"), "kind": (["a", "b", "c"][i % 3])})
        .collect();
    db.collection("messages").insert_many(msgs).await?;
    let tags_seed: Vec<bson::Document> = (0..100)
        .map(|i| doc! {"_id": format!("g{i}"), "label": format!("tag {i}")})
        .collect();
    db.collection("tags").insert_many(tags_seed).await?;
    let big_seed: Vec<bson::Document> = (0..50_000)
        .map(|i| doc! {"_id": format!("b{i:05}"), "n": i as f64 + 0.5, "pad": "x".repeat(64)})
        .collect();
    db.collection("big").insert_many(big_seed).await?;

    let files = ConfigFiles::new(&dir.path().join("config"))?;
    files.write(
        &[items(false), chats(true), notes(), messages(&["a", "b"])],
        &[],
    )?;
    let path = |p: &PathBuf| p.display().to_string();
    let (schema, mappings, permissions) = (
        path(&files.schema),
        path(&files.mappings),
        path(&files.permissions),
    );
    let mut source = SourceServer::start(
        &dir.path().join("source"),
        &mongo.uri(),
        "app",
        &[
            ("ZERO_SCHEMA_FILE", &schema),
            ("ZERO_TABLE_MAPPINGS_FILE", &mappings),
            ("ZERO_PERMISSIONS_FILE", &permissions),
        ],
    )
    .await?;
    let mut zero = start_zero_cache(dir.path(), &source, &pg).await?;
    let mut rv = String::new();
    let mut cases = Cases::new("schema-change");

    cases
        .run("the initial sync", async {
            wait_replica_equals(
                &zero,
                "initial sync",
                "items",
                &["_id", "name"],
                &want(&db, "items", doc! {}, &["_id", "name"]).await?,
            )
            .await?;
            rv = replica_version(&zero).await?;
            Ok(())
        })
        .await;

    // Restarts the source with `tables` while the write loop runs; the change must apply in
    // place: same replica, a committed in-place change on /metadata/status.
    macro_rules! change_in_place {
        ($tag:expr, $tables:expr, $denied:expr) => {{
            ensure!(!rv.is_empty(), "needs the initial sync");
            files.write(&$tables, $denied)?;
            let writer = tokio::spawn(write_loop(db.clone(), $tag, 150));
            tokio::time::sleep(Duration::from_millis(150)).await;
            source.kill9_and_restart().await?;
            writer.await??;
            let change = wait_last_change(&source, "in-place").await?;
            same_replica(&mut zero, &rv).await?;
            change
        }};
    }

    cases
        .run(
            "a new table in a discriminated union and a new collection's table",
            async {
                let change = change_in_place!(
                    "union",
                    [
                        items(false),
                        chats(true),
                        channels(),
                        tags(),
                        notes(),
                        messages(&["a", "b"])
                    ],
                    &[]
                );
                let steps = change["steps"].to_string();
                ensure!(
                    steps.contains("create table channels") && steps.contains("create table tags"),
                    "{change}"
                );
                wait_replica_equals(
                    &zero,
                    "channels",
                    "channels",
                    &["_id", "t", "name"],
                    &want(&db, "rooms", doc! {"t": "c"}, &["_id", "t", "name"]).await?,
                )
                .await?;
                wait_replica_equals(
                    &zero,
                    "chats",
                    "chats",
                    &["_id", "t", "name", "topic"],
                    &want(
                        &db,
                        "rooms",
                        doc! {"t": "d"},
                        &["_id", "t", "name", "topic"],
                    )
                    .await?,
                )
                .await?;
                wait_replica_equals(
                    &zero,
                    "tags",
                    "tags",
                    &["_id", "label"],
                    &want(&db, "tags", doc! {}, &["_id", "label"]).await?,
                )
                .await?;
                client_sees(
                    &zero,
                    &files.schema,
                    "channels",
                    json!({"_id": "union-r148", "name": "union room 148"}),
                )
                .await?;
                same_replica(&mut zero, &rv).await
            },
        )
        .await;

    cases
        .run("a new optional column", async {
            // A client subscribed before the change, to a table the change leaves alone, must
            // stay subscribed: the rows written during and after it arrive in the same store,
            // with no reload (which is what a reset makes Zero do).
            let client_schema = dir.path().join("client-schema.json");
            std::fs::copy(&files.schema, &client_schema)?;
            let mut subscriber = Subscriber::start(
                &dir.path().join("subscriber"),
                &zero,
                &client_schema,
                "tags",
                json!({"_id": "across-after", "label": "after the change"}),
            )?;
            let before = subscriber.wait_complete().await?;
            ensure!(before >= 100, "the client had {before} tags before the change");
            let change = change_in_place!(
                "column",
                [
                    items(true),
                    chats(true),
                    channels(),
                    tags(),
                    notes(),
                    messages(&["a", "b"])
                ],
                &[]
            );
            ensure!(
                change["steps"]
                    .to_string()
                    .contains("add column items.price"),
                "{change}"
            );
            wait_replica_equals(
                &zero,
                "items with price",
                "items",
                &["_id", "name", "price"],
                &want(&db, "items", doc! {}, &["_id", "name", "price"]).await?,
            )
            .await?;
            client_sees(
                &zero,
                &files.schema,
                "items",
                json!({"_id": "column-i149", "price": 149.75}),
            )
            .await?;
            db.collection::<bson::Document>("tags")
                .insert_one(doc! {"_id": "across-after", "label": "after the change"})
                .await?;
            let exit = subscriber.process.wait_exit(Duration::from_secs(60)).await?;
            let lines = subscriber.lines();
            ensure!(
                exit == Some(0),
                "the subscribed client did not see the row written after the change (exit {exit:?})\n{}",
                subscriber.process.log_tail(20)
            );
            let reloads: Vec<&Value> = lines.iter().filter(|l| l.get("event").is_some()).collect();
            ensure!(reloads.is_empty(), "the subscribed client started over: {reloads:?}");
            // Its last result holds the seed, every tag written across the change, and the new one.
            let last = lines
                .iter()
                .rev()
                .find(|l| l["rows"].is_array())
                .context("no result")?;
            let ids: std::collections::BTreeSet<&str> = last["rows"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|r| r["_id"].as_str())
                .collect();
            let missing: Vec<String> = (0..150)
                .map(|i| format!("column-g{i}"))
                .chain((0..100).map(|i| format!("g{i}")))
                .filter(|id| !ids.contains(id.as_str()))
                .collect();
            ensure!(missing.is_empty(), "the subscribed client lacks {missing:?}");
            eprintln!(
                "subscribed client: {before} tags before, {} after, {} results, no reload",
                ids.len(),
                lines.len()
            );
            same_replica(&mut zero, &rv).await
        })
        .await;

    cases
        .run("a dropped table and a dropped column", async {
            let change = change_in_place!(
                "drop",
                [
                    items(true),
                    chats(false),
                    channels(),
                    tags(),
                    messages(&["a", "b"])
                ],
                &[]
            );
            let steps = change["steps"].to_string();
            ensure!(
                steps.contains("drop table public.notes")
                    && steps.contains("drop column chats.topic"),
                "{change}"
            );
            wait_replica_equals(
                &zero,
                "chats without topic",
                "chats",
                &["_id", "t", "name"],
                &want(&db, "rooms", doc! {"t": "d"}, &["_id", "t", "name"]).await?,
            )
            .await?;
            let replica = zero.replica().await?;
            ensure!(
                replica.get("notes").is_none(),
                "notes is still in the replica"
            );
            let row = &replica["chats"][0];
            ensure!(
                row.get("topic").is_none() && row.get("_id").is_some(),
                "chats still has topic: {row}"
            );
            same_replica(&mut zero, &rv).await
        })
        .await;

    cases
        .run("a changed filter", async {
            let change = change_in_place!(
                "filter",
                [
                    items(true),
                    chats(false),
                    channels(),
                    tags(),
                    messages(&["b", "c"])
                ],
                &[]
            );
            ensure!(
                change["steps"]
                    .to_string()
                    .contains("rewrite the rows of messages"),
                "{change}"
            );
            wait_replica_equals(
                &zero,
                "messages of kinds b and c",
                "messages",
                &["_id", "text", "kind"],
                &want(
                    &db,
                    "messages",
                    doc! {"kind": {"$in": ["b", "c"]}},
                    &["_id", "text", "kind"],
                )
                .await?,
            )
            .await?;
            same_replica(&mut zero, &rv).await
        })
        .await;

    cases
        .run("changed permissions", async {
            let change = change_in_place!(
                "perms",
                [
                    items(true),
                    chats(false),
                    channels(),
                    tags(),
                    messages(&["b", "c"])
                ],
                &["tags"]
            );
            ensure!(
                change["steps"] == json!(["replace the permissions"]),
                "{change}"
            );
            let expected = files.permissions_json()?;
            let mut last = Value::Null;
            for _ in 0..60 {
                let replica = zero.replica().await?;
                last = replica["zero.permissions"][0]["permissions"].clone();
                let stored: Option<Value> =
                    last.as_str().and_then(|s| serde_json::from_str(s).ok());
                if stored.as_ref() == Some(&expected) {
                    return same_replica(&mut zero, &rv).await;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            bail!("the replica's permissions never became the new ones: {last}")
        })
        .await;

    cases
        .run(
            "a zero-cache restart in the middle of a large new table",
            async {
                ensure!(!rv.is_empty(), "needs the initial sync");
                files.write(
                    &[
                        items(true),
                        chats(false),
                        channels(),
                        tags(),
                        messages(&["b", "c"]),
                        big(),
                    ],
                    &["tags"],
                )?;
                let writer = tokio::spawn(write_loop(db.clone(), "big", 150));
                source.kill9_and_restart().await?;
                // The change's transaction has begun (its watermark is chosen) but is not committed.
                let mut caught = Value::Null;
                for _ in 0..2400 {
                    let s = source.status().await?;
                    let c = &s["lastSchemaChange"];
                    if c["steps"].to_string().contains("create table big")
                        && c["watermark"].is_string()
                    {
                        caught = c.clone();
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(25)).await;
                }
                ensure!(
                    caught["state"] != "committed",
                    "the change committed before zero-cache could be restarted: {caught}"
                );
                ensure!(!caught.is_null(), "the large table's change never started");
                zero.restart()
                    .await
                    .context("restarting zero-cache mid-change")?;
                writer.await??;
                let change = wait_last_change(&source, "in-place").await?;
                ensure!(
                    change["rows"].as_u64().is_some_and(|r| r >= 50_000),
                    "{change}"
                );
                // The restart interrupted the change's transaction: it was started again.
                let log = source_log(&source)?;
                let attempts = log
                    .lines()
                    .filter(|l| l.contains("applying it in place") && l.contains("watermark"))
                    .count();
                ensure!(
                    attempts >= 2,
                    "the change was applied {attempts} time(s): zero-cache's restart did not interrupt it"
                );
                wait_replica_equals(
                    &zero,
                    "big",
                    "big",
                    &["_id", "n", "pad"],
                    &want(&db, "big", doc! {}, &["_id", "n", "pad"]).await?,
                )
                .await?;
                wait_replica_equals(
                    &zero,
                    "items after the restart",
                    "items",
                    &["_id", "name", "price"],
                    &want(&db, "items", doc! {}, &["_id", "name", "price"]).await?,
                )
                .await?;
                same_replica(&mut zero, &rv).await
            },
        )
        .await;

    cases
        .run(
            "a query is answered while a large change is applied",
            async {
                ensure!(!rv.is_empty(), "needs the initial sync");
                // A second table over the 50,000 documents of `big`: a long in-place change.
                let big2 = table(
                    "big2",
                    &[("_id", "string"), ("n", "number?"), ("pad", "string?")],
                    Some(json!({"source": "big"})),
                );
                // The clients keep the schema they have: one with the new table would be
                // refused until the table exists.
                let before_schema = dir.path().join("before-big2-schema.json");
                std::fs::copy(&files.schema, &before_schema)?;
                files.write(
                    &[
                        items(true),
                        chats(false),
                        channels(),
                        tags(),
                        messages(&["b", "c"]),
                        big(),
                        big2,
                    ],
                    &["tags"],
                )?;
                let now_ms = || {
                    std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| d.as_millis() as u64)
                };
                let wait = ZeroClientWait::new(zero.url(), &before_schema, "items")
                    .until(json!({"_id": "i1"}))
                    .timeout(Duration::from_secs(60));
                let query = || zero_client_wait(&wait);
                // How long a fresh client's query takes when nothing is being applied.
                let idle_from = now_ms();
                query().await?;
                let idle_ms = now_ms() - idle_from;
                source.kill9_and_restart().await?;
                let mut started = Value::Null;
                for _ in 0..2400 {
                    let c = source.status().await?["lastSchemaChange"].clone();
                    if c["steps"].to_string().contains("create table big2")
                        && c["watermark"].is_string()
                    {
                        started = c;
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(25)).await;
                }
                ensure!(!started.is_null(), "the large change never started");
                // A fresh client's query on a table the change does not touch.
                let asked_ms = now_ms();
                query().await?;
                let answered_ms = now_ms();
                let change = wait_last_change(&source, "in-place").await?;
                let committed_ms = change["committedAtMs"].as_u64().context("committedAtMs")?;
                let started_ms = started["atMs"].as_u64().unwrap_or(0);
                eprintln!(
                    "large change: {} rows, decided at +0, query asked at +{} ms, answered at +{} ms, committed at +{} ms; an idle query took {idle_ms} ms",
                    change["rows"],
                    asked_ms as i64 - started_ms as i64,
                    answered_ms as i64 - started_ms as i64,
                    committed_ms as i64 - started_ms as i64,
                );
                ensure!(
                    answered_ms < committed_ms,
                    "the query was only answered {} ms after the change committed",
                    answered_ms - committed_ms
                );
                wait_replica_equals(
                    &zero,
                    "big2",
                    "big2",
                    &["_id", "n", "pad"],
                    &want(&db, "big", doc! {}, &["_id", "n", "pad"]).await?,
                )
                .await?;
                same_replica(&mut zero, &rv).await
            },
        )
        .await;

    cases
        .run(
            "a change that cannot be applied in place resets cleanly",
            async {
                ensure!(!rv.is_empty(), "needs the initial sync");
                let mut items_text = items(true);
                items_text.columns[2] = ("price", "string?");
                files.write(
                    &[
                        items_text,
                        chats(false),
                        channels(),
                        tags(),
                        messages(&["b", "c"]),
                        big(),
                    ],
                    &["tags"],
                )?;
                source.kill9_and_restart().await?;
                let code = zero.wait_exit(Duration::from_secs(60)).await?;
                ensure!(
                    code == Some(14),
                    "zero-cache exits 14 after reset-required, got {code:?}:\n{}",
                    zero.log_tail(20)
                );
                let change = wait_last_change(&source, "reset").await?;
                ensure!(
                    change["reason"].as_str().is_some_and(
                        |r| r.contains("items.price changed type from number to string")
                    ),
                    "{change}"
                );
                zero.start_again()
                    .await
                    .context("starting zero-cache after its reset")?;
                wait_replica_equals(
                    &zero,
                    "tags after the resync",
                    "tags",
                    &["_id", "label"],
                    &want(&db, "tags", doc! {}, &["_id", "label"]).await?,
                )
                .await?;
                let now = replica_version(&zero).await?;
                ensure!(now != rv, "a resync builds a new replica version");
                Ok(())
            },
        )
        .await;

    cases.finish()
}
