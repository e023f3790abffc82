//! The source server against a real MongoDB replica set, with this test playing zero-cache:
//! initial sync content and what it reads, live changes, transaction grouping, coalescing,
//! resume from any watermark, reset-required, auth, and every message checked with Zero's own
//! schema.
//!
//! One MongoDB and one source server serve every case (nextest runs each test function in a
//! process of its own, so they are cases of one function). The cases run in order and share
//! what the earlier ones left: the initial sync's watermark, the transactions streamed after
//! it, the open connection, and every message received, which the schema case checks at the end.

mod common;

use std::time::Duration;

use anyhow::Context;
use bson::{doc, oid::ObjectId};
use common::*;
use serde_json::{Value, json};
use zerostack_harness::cases::Cases;
use zerostack_harness::{Mongo, http, service_temp_dir, validate_transactions};

const T: Duration = Duration::from_secs(20);

/// A transaction as the protocol client reads it: (watermark, data changes).
type Transaction = (String, Vec<Value>);

async fn seed(db: &mongodb::Database) -> anyhow::Result<ObjectId> {
    let now = bson::DateTime::from_millis(1_700_000_000_000);
    db.collection("rooms")
        .insert_many(vec![
            doc! {"_id": "d1", "t": "d", "memberIds": ["u1", "u2"], "createdAt": now, "secret": "not in schema"},
            doc! {"_id": "c1", "t": "c", "name": "general", "topic": "hi"},
            doc! {"_id": "c2", "t": "c", "name": "random"},
            doc! {"_id": "p1", "t": "p", "name": "team"},
            doc! {"_id": "x1", "t": "unknown-type", "name": "in no table"},
        ])
        .await?;
    db.collection("messages")
        .insert_many(vec![
            doc! {"_id": "m1", "roomId": "c1", "text": "one", "n": 1i32, "createdAt": now},
            doc! {"_id": "m2", "roomId": "c1", "text": "two", "n": 9_007_199_254_740_993i64},
            doc! {"_id": "m3", "roomId": "c1", "text": "hidden", "hidden": true},
        ])
        .await?;
    let alice = ObjectId::new();
    db.collection("users")
        .insert_many(vec![
            doc! {"_id": alice, "name": "alice", "age": 31.5, "active": true, "profile": {"ref": ObjectId::new(), "at": now}, "createdAt": now},
            doc! {"_id": ObjectId::new(), "name": "bob", "age": "old", "active": true},
        ])
        .await?;
    Ok(alice)
}

/// What the cases hand on to the ones after them.
#[derive(Default)]
struct Shared {
    /// The initial sync's watermark: the replica version every resume names.
    w0: Option<String>,
    /// The initial sync's data changes.
    snapshot: Vec<Value>,
    /// The connection a later case goes on reading from.
    client: Option<ProtocolClient>,
    /// The transactions streamed after the initial sync, in order.
    streamed: Vec<Transaction>,
    /// Every message received, one list per connection, for the schema case.
    connections: Vec<Vec<String>>,
}

impl Shared {
    fn w0(&self) -> anyhow::Result<String> {
        self.w0.clone().context("needs the initial sync case")
    }

    fn client(&mut self) -> anyhow::Result<&mut ProtocolClient> {
        self.client
            .as_mut()
            .context("needs the open connection of an earlier case")
    }

    /// Keeps what the open connection received, and closes it.
    fn close_client(&mut self) {
        if let Some(mut c) = self.client.take() {
            self.connections.push(std::mem::take(&mut c.received));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn source_speaks_the_protocol_end_to_end() -> anyhow::Result<()> {
    let dir = service_temp_dir("protocol")?;
    let mongo = Mongo::start_in(dir.path().join("mongo")).await?;
    let client = mongo.client().await?;
    let db = client.database("app");
    let alice = seed(&db).await?;
    let source = SourceServer::start(dir.path(), &mongo.uri(), "app", &[]).await?;
    let rooms = db.collection::<bson::Document>("rooms");
    let messages = db.collection::<bson::Document>("messages");
    let resume_url = |w: &str, w0: &str| {
        format!(
            "{}&appID=zero&shardNum=0&lastWatermark={w}&replicaVersion={w0}",
            source.ws_url()
        )
    };
    let mut shared = Shared::default();
    let mut cases = Cases::new("protocol");

    cases
        .run(
            "a wrong or missing token is refused before the upgrade",
            async {
                let bad = format!(
                    "ws://127.0.0.1:{}/changes/v0/stream?token=nope",
                    source.port
                );
                let err = ProtocolClient::connect(&bad)
                    .await
                    .err()
                    .expect("wrong token must be refused");
                assert!(format!("{err:#}").contains("401"), "{err:#}");
                let none = format!("ws://127.0.0.1:{}/changes/v0/stream", source.port);
                assert!(ProtocolClient::connect(&none).await.is_err());
                Ok(())
            },
        )
        .await;

    // Leaves the initial-sync connection open for the next case.
    cases
        .run("the initial sync sends every table and its rows", async {
            let mut c =
                ProtocolClient::connect(&format!("{}&appID=zero&shardNum=0", source.ws_url()))
                    .await?;
            let (w0, snap) = c.transaction(T).await?;
            shared.w0 = Some(w0);
            shared.snapshot = snap.clone();
            for table in [
                "users",
                "chats",
                "channels",
                "groups",
                "messages",
                "clients",
                "mutations",
                "permissions",
            ] {
                assert_eq!(
                    changes(&snap, "create-table", table).count(),
                    1,
                    "create-table {table}"
                );
                assert_eq!(
                    changes(&snap, "create-index", table).count(),
                    1,
                    "create-index {table}"
                );
            }
            assert_eq!(
                changes(&snap, "insert", "permissions").count(),
                1,
                "exactly one permissions row"
            );
            assert_eq!(
                ids(changes(&snap, "insert", "chats")),
                ["d1".to_string()].into()
            );
            assert_eq!(
                ids(changes(&snap, "insert", "channels")),
                ["c1".to_string(), "c2".into()].into()
            );
            assert_eq!(
                ids(changes(&snap, "insert", "groups")),
                ["p1".to_string()].into()
            );
            assert_eq!(
                ids(changes(&snap, "insert", "messages")),
                ["m1".to_string(), "m2".into()].into()
            );
            let d1 = changes(&snap, "insert", "chats").next().unwrap();
            assert_eq!(
                d1["new"],
                json!({"_id": "d1", "t": "d", "memberIds": ["u1", "u2"], "createdAt": 1_700_000_000_000u64})
            );
            let m2 = changes(&snap, "insert", "messages")
                .find(|d| d["new"]["_id"] == "m2")
                .unwrap();
            assert!(
                serde_json::to_string(m2)?.contains("9007199254740993"),
                "Int64 must stay exact: {m2}"
            );
            let users: Vec<&Value> = changes(&snap, "insert", "users").collect();
            let a = users.iter().find(|u| u["new"]["name"] == "alice").unwrap();
            assert_eq!(a["new"]["_id"], alice.to_hex());
            assert_eq!(a["new"]["profile"]["at"], "2023-11-14T22:13:20.000Z");
            let b = users.iter().find(|u| u["new"]["name"] == "bob").unwrap();
            assert_eq!(
                b["new"]["age"],
                Value::Null,
                "a value that does not fit its column is sent as null"
            );
            // Nothing follows the snapshot's commit (zero-cache closes the socket after
            // validating it).
            assert!(
                c.next(Duration::from_secs(1)).await.is_err(),
                "nothing after the snapshot commit"
            );
            shared.client = Some(c);
            Ok(())
        })
        .await;

    // Reads the status of the initial-sync connection, so it runs while that is still open.
    cases
        .run(
            "the initial sync reads only documents some table keeps",
            async {
                // rooms feeds three tables, each filtered: x1 is in none of them. messages feeds
                // one, filtered: m3 is hidden. So of the 10 documents seeded, the initial sync
                // reads 8 (the pushed-down filter), which are exactly the 8 app rows it sent.
                let mut progress = Value::Null;
                for _ in 0..100 {
                    let status = http::Client::new()
                        .get(format!("{}/metadata/status", source.http()))
                        .bearer_auth(TOKEN)
                        .send()
                        .await?
                        .json()?;
                    if let Some(snapshot) = status["connections"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .find(|c| c["mode"] == "initial-sync")
                        .map(|c| c["snapshot"].clone())
                        && snapshot["done"] == true
                    {
                        progress = snapshot;
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                assert_eq!(progress["done"], true, "initial sync progress: {progress}");
                let app_rows = ["users", "chats", "channels", "groups", "messages"]
                    .iter()
                    .map(|t| changes(&shared.snapshot, "insert", t).count())
                    .sum::<usize>();
                assert_eq!(app_rows, 8, "the rows are those of every table's filter");
                assert_eq!(
                    progress["rowsDone"], 8,
                    "documents read: those some table keeps, not all 10: {progress}"
                );
                let sent = ids(shared.snapshot.iter().filter(|d| d["tag"] == "insert"));
                assert!(
                    !sent.contains("x1") && !sent.contains("m3"),
                    "no row of a document no table keeps: {sent:?}"
                );
                Ok(())
            },
        )
        .await;

    // Closes the initial-sync connection.
    cases
        .run("a value that does not fit its column is counted", async {
            shared.close_client();
            let metrics = source.get_text("/metrics").await?;
            assert!(
                metrics.lines().any(|l| l.contains("coerced_values")
                    && l.contains("column=\"age\"")
                    && l.ends_with(" 1")),
                "the coerced value is counted: {metrics}"
            );
            Ok(())
        })
        .await;

    // Leaves the streaming connection open for the ack case.
    cases
        .run("live changes stream as Zero transactions", async {
            let w0 = shared.w0()?;
            let mut c = ProtocolClient::connect(&resume_url(&w0, &w0)).await?;
            messages
                .insert_one(doc! {"_id": "m4", "roomId": "c1", "text": "live"})
                .await?;
            rooms
                .update_one(doc! {"_id": "c2"}, doc! {"$set": {"topic": "new topic"}})
                .await?;
            rooms
                .update_one(doc! {"_id": "c2"}, doc! {"$set": {"t": "p"}})
                .await?; // channel → group
            messages
                .replace_one(
                    doc! {"_id": "m1"},
                    doc! {"roomId": "c1", "text": "one, replaced"},
                )
                .await?;
            messages.delete_one(doc! {"_id": "m2"}).await?;
            // A collection no table maps: its writes must not reach zero-cache, not even as
            // empty transactions (the change stream is filtered here, not by MongoDB).
            let audit = db.collection::<bson::Document>("audit");
            audit
                .insert_one(doc! {"_id": "a1", "what": "unmapped"})
                .await?;
            db.collection::<bson::Document>("users")
                .delete_one(doc! {"_id": alice})
                .await?;
            // One MongoDB transaction touching two collections.
            let mut session = client.start_session().await?;
            session.start_transaction().await?;
            messages
                .insert_one(doc! {"_id": "m5", "roomId": "p1", "text": "in txn"})
                .session(&mut session)
                .await?;
            messages
                .insert_one(doc! {"_id": "m6", "roomId": "p1", "text": "in txn too"})
                .session(&mut session)
                .await?;
            rooms
                .update_one(doc! {"_id": "p1"}, doc! {"$set": {"topic": "txn"}})
                .session(&mut session)
                .await?;
            audit
                .insert_one(doc! {"_id": "a2", "what": "unmapped, in txn"})
                .session(&mut session)
                .await?;
            session.commit_transaction().await?;

            let txns = c
                .transactions_until(T, |t| {
                    t.iter()
                        .any(|(_, d)| d.iter().any(|x| x["new"]["_id"] == "m6"))
                })
                .await?;
            shared.client = Some(c);
            shared.streamed = txns;
            let txns = &shared.streamed;
            let data: Vec<Value> = txns.iter().flat_map(|(_, d)| d.clone()).collect();
            assert_eq!(
                ids(changes(&data, "insert", "messages")),
                ["m4".to_string(), "m5".into(), "m6".into()].into()
            );
            let moved_out = changes(&data, "delete", "channels").any(|d| d["key"]["_id"] == "c2");
            let moved_in = changes(&data, "update", "groups")
                .any(|d| d["new"]["_id"] == "c2" && d["new"]["topic"] == "new topic");
            assert!(
                moved_out && moved_in,
                "a changed discriminator moves the row: {data:?}"
            );
            assert!(
                changes(&data, "update", "messages")
                    .any(|d| d["new"]["_id"] == "m1" && d["new"]["text"] == "one, replaced")
            );
            assert!(changes(&data, "delete", "messages").any(|d| d["key"]["_id"] == "m2"));
            assert!(
                changes(&data, "delete", "users").any(|d| d["key"]["_id"] == alice.to_hex()),
                "delete by ObjectId key"
            );
            let txn = txns
                .iter()
                .find(|(_, d)| d.iter().any(|x| x["new"]["_id"] == "m5"))
                .unwrap();
            assert!(
                txn.1.iter().any(|x| x["new"]["_id"] == "m6")
                    && txn.1.iter().any(|x| x["new"]["_id"] == "p1"),
                "a MongoDB transaction arrives as one Zero transaction: {:?}",
                txn.1
            );
            let watermarks: Vec<&String> = txns.iter().map(|(w, _)| w).collect();
            assert!(
                watermarks.windows(2).all(|w| w[0] < w[1]) && watermarks[0].as_str() > w0.as_str()
            );
            assert!(
                txns.iter().all(|(_, d)| !d.is_empty())
                    && !data.iter().any(|d| d.to_string().contains("unmapped")),
                "writes to an unmapped collection are not sent: {txns:?}"
            );
            Ok(())
        })
        .await;

    // Closes the streaming connection.
    cases
        .run("acks are recorded", async {
            let last = shared
                .streamed
                .last()
                .context("needs the live changes case")?
                .0
                .clone();
            shared.client()?.ack(&last).await?;
            tokio::time::sleep(Duration::from_millis(300)).await;
            let status = http::Client::new()
                .get(format!("{}/metadata/status", source.http()))
                .bearer_auth(TOKEN)
                .send()
                .await?
                .json()?;
            assert!(
                status["connections"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|x| x["lastWatermarkAcked"] == last.as_str()),
                "{status}"
            );
            shared.close_client();
            Ok(())
        })
        .await;

    // Leaves the resumed connection open for the coalescing case.
    cases
        .run(
            "a resume from a middle watermark replays exactly the later changes",
            async {
                let w0 = shared.w0()?;
                let txns = &shared.streamed;
                let mid = &txns.get(1).context("needs the live changes case")?.0;
                let last = &txns.last().context("needs the live changes case")?.0;
                let mut c = ProtocolClient::connect(&resume_url(mid, &w0)).await?;
                let again = c
                    .transactions_until(T, |t| t.iter().any(|(w, _)| w == last))
                    .await?;
                // A replayed backlog may be coalesced, but it must hold exactly the later
                // changes, in order, and end at the same watermark.
                let expected: Vec<&Value> = txns.iter().skip(2).flat_map(|(_, d)| d).collect();
                let got: Vec<&Value> = again.iter().flat_map(|(_, d)| d).collect();
                assert_eq!(
                    got, expected,
                    "resume replays strictly after lastWatermark, nothing lost or repeated"
                );
                assert!(again.iter().all(|(w, _)| w.as_str() > mid.as_str()));
                shared.connections.push(std::mem::take(&mut c.received));
                shared.client = Some(c);
                Ok(())
            },
        )
        .await;

    // Closes the resumed connection.
    cases
        .run(
            "a burst already waiting in the cursor goes out in few transactions",
            async {
                let burst: Vec<bson::Document> = (0..3000)
                    .map(|i| doc! {"_id": format!("b{i}"), "roomId": "c1", "text": "burst"})
                    .collect();
                for chunk in burst.chunks(1000) {
                    messages.insert_many(chunk.to_vec()).await?;
                }
                let burst_txns = shared
                    .client()?
                    .transactions_until(Duration::from_secs(60), |t| {
                        t.iter()
                            .flat_map(|(_, d)| d)
                            .filter(|d| d["new"]["text"] == "burst")
                            .count()
                            >= 3000
                    })
                    .await?;
                shared.close_client();
                let with_rows: Vec<usize> = burst_txns
                    .iter()
                    .map(|(_, d)| d.len())
                    .filter(|n| *n > 0)
                    .collect();
                assert!(
                    with_rows.len() < 300,
                    "3000 inserts should coalesce into far fewer transactions, got {}",
                    with_rows.len()
                );
                assert!(
                    with_rows.iter().all(|n| *n <= 2000),
                    "row limit per transaction: {with_rows:?}"
                );
                Ok(())
            },
        )
        .await;

    cases
        .run("an unknown replica gets reset-required", async {
            let w0 = shared.w0()?;
            let mut c = ProtocolClient::connect(&resume_url(&w0, "1zz")).await?;
            let m = c.next(T).await?.expect("a control message");
            shared.connections.push(std::mem::take(&mut c.received));
            assert_eq!(m[0], "control");
            assert_eq!(m[1]["tag"], "reset-required");
            assert!(
                m[1]["message"]
                    .as_str()
                    .unwrap()
                    .contains("unknown replicaVersion"),
                "{m}"
            );
            let metrics = source.get_text("/metrics").await?;
            assert!(
                metrics
                    .lines()
                    .any(|l| l == r#"zerostack_source_resets_total{reason="unknown-replica"} 1"#),
                "the reset is counted under its reason: {metrics}"
            );
            Ok(())
        })
        .await;

    // Needs every earlier case's messages, so it runs after them.
    cases
        .run("every message passes Zero's own schema", async {
            assert!(!shared.connections.is_empty(), "no connection was recorded");
            for lines in &shared.connections {
                validate_transactions(lines).await?;
            }
            Ok(())
        })
        .await;

    cases
        .run(
            "no endpoint leaks the connection string or the token",
            async {
                for path in [
                    "/metadata/status",
                    "/metadata/tables",
                    "/metadata/schemas",
                    "/metrics",
                    "/openapi.json",
                    "/ready",
                ] {
                    let body = http::Client::new()
                        .get(format!("{}{path}", source.http()))
                        .bearer_auth(TOKEN)
                        .send()
                        .await?
                        .text();
                    assert!(
                        !body.contains(&mongo.uri()) && !body.contains(TOKEN),
                        "{path} leaks a secret"
                    );
                }
                Ok(())
            },
        )
        .await;

    cases
        .run("every path /openapi.json documents is served", async {
            let documented = source.get_json("/openapi.json").await?;
            let paths = documented["paths"]
                .as_object()
                .context("an OpenAPI document with paths")?;
            let mut listed = source_server::http::openapi::PATHS.to_vec();
            listed.sort_unstable();
            let mut served_doc: Vec<&str> = paths.keys().map(String::as_str).collect();
            served_doc.sort_unstable();
            assert_eq!(
                served_doc, listed,
                "the document describes the crate's list"
            );
            for path in paths.keys() {
                // The WebSocket answers a plain GET too (it refuses the missing upgrade).
                let url = format!("{}{path}?token={TOKEN}", source.http());
                let status = http::get(url).await?.status();
                assert_ne!(status.as_u16(), 404, "{path} is documented but not served");
            }
            Ok(())
        })
        .await;

    cases
        .run(
            "/metadata/tables shows each table's source and filter",
            async {
                let tables = http::Client::new()
                    .get(format!("{}/metadata/tables", source.http()))
                    .bearer_auth(TOKEN)
                    .send()
                    .await?
                    .json()?;
                let channels = tables["tables"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|t| t["name"] == "channels")
                    .unwrap();
                assert_eq!(channels["source"], "rooms");
                assert_eq!(channels["filter"], json!({"t": "c"}));
                Ok(())
            },
        )
        .await;

    cases.finish()
}
