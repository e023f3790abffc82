//! The benchmark's workload: small ZRocket-like chat messages (a ~100-byte text body), the
//! same rows for MongoDB documents and PostgreSQL rows, the schema source-server is given for
//! them, and the writers that put them into each database.

use std::process::Stdio;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use bson::{Document, doc};
use tokio::io::AsyncWriteExt;
use tokio::process::{Child, ChildStdin, Command};

/// The table (and MongoDB collection) every measurement uses.
pub const TABLE: &str = "messages";

/// The column the writer stamps with its send time (epoch ms), for the latency runs.
pub const SENT_COLUMN: &str = "sent_ms";

/// The Zero schema JSON source-server gets: tables shaped like `messages`, each fed by the collection of its name.
pub fn schema_json_for(tables: &[String]) -> String {
    let col = |t: &str, optional: bool| serde_json::json!({"type": t, "optional": optional, "customType": null});
    let defs: serde_json::Map<String, serde_json::Value> = tables
        .iter()
        .map(|t| {
            let def = serde_json::json!({
                "name": t,
                "columns": {
                    "_id": col("string", false),
                    "room_id": col("string", false),
                    "author": col("string", false),
                    "text": col("string", false),
                    SENT_COLUMN: col("number", true),
                    "created_at": col("number", true),
                },
                "primaryKey": ["_id"],
            });
            (t.clone(), def)
        })
        .collect();
    serde_json::json!({"tables": defs, "relationships": {}}).to_string()
}

/// Each table from the collection of the same name, no filter.
pub fn mappings_json_for(tables: &[String]) -> String {
    let m: serde_json::Map<String, serde_json::Value> = tables
        .iter()
        .map(|t| (t.clone(), serde_json::json!({"source": t})))
        .collect();
    serde_json::json!({"version": 1, "mappings": m}).to_string()
}

/// The native Postgres path's table, with the same columns.
pub const PG_TABLE_DDL: &str = "CREATE TABLE messages (_id text PRIMARY KEY, room_id text NOT NULL, \
     author text NOT NULL, text text NOT NULL, sent_ms double precision, created_at timestamptz)";

/// Milliseconds since the epoch, with sub-millisecond precision.
pub fn now_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
        * 1000.0
}

/// Message number `i`: its id, room, author and a ~100-byte body (no quotes, so it is safe
/// in SQL text).
pub struct Message {
    pub id: String,
    pub room: String,
    pub author: String,
    pub text: String,
}

const LOREM: &str = "Lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor \
     incididunt ut labore et dolore magna aliqua Ut enim ad minim veniam quis nostrud";

/// The body length of the benchmark's default message (a ~200-byte document).
pub const BODY_LEN: usize = 90;

pub fn message(i: u64) -> Message {
    message_sized(i, BODY_LEN)
}

/// Message `i` with a body of `text_len` characters of LOREM (repeated as needed), after its
/// `#i ` prefix; `message_sized(i, BODY_LEN)` is `message(i)`.
pub fn message_sized(i: u64, text_len: usize) -> Message {
    let offset = (i % 40) as usize;
    let body: String = LOREM.chars().cycle().skip(offset).take(text_len).collect();
    Message {
        id: format!("m{i:09}"),
        room: format!("room-{}", i % 50),
        author: format!("user-{}", i % 200),
        text: format!("#{i} {body}"),
    }
}

/// The body length that makes a document about `doc_bytes` long in BSON (the other fields and
/// the keys take about 110 bytes).
pub fn body_len_for(doc_bytes: usize) -> usize {
    doc_bytes.saturating_sub(110).max(1)
}

pub fn mongo_doc(i: u64, sent_ms: Option<f64>) -> Document {
    mongo_doc_sized(i, BODY_LEN, sent_ms)
}

pub fn mongo_doc_sized(i: u64, text_len: usize, sent_ms: Option<f64>) -> Document {
    let m = message_sized(i, text_len);
    let mut d = doc! {
        "_id": m.id,
        "room_id": m.room,
        "author": m.author,
        "text": m.text,
        "created_at": bson::DateTime::now(),
    };
    if let Some(ms) = sent_ms {
        d.insert(SENT_COLUMN, ms);
    }
    d
}

fn sql_tuple(i: u64, sent_ms: Option<f64>) -> String {
    let m = message(i);
    let sent = sent_ms.map_or_else(|| "NULL".to_string(), |ms| format!("{ms:.3}"));
    format!(
        "('{}','{}','{}','{}',{sent},now())",
        m.id, m.room, m.author, m.text
    )
}

/// One multi-row INSERT of messages `from..to`.
pub fn sql_insert(from: u64, to: u64, sent_ms: Option<f64>) -> String {
    let values: Vec<String> = (from..to).map(|i| sql_tuple(i, sent_ms)).collect();
    format!(
        "INSERT INTO messages (_id, room_id, author, text, sent_ms, created_at) VALUES {};",
        values.join(",")
    )
}

/// Inserts messages `from..to` into `coll` with `insert_many` of `batch` documents each.
pub async fn mongo_insert_range(
    coll: &mongodb::Collection<Document>,
    from: u64,
    to: u64,
    batch: u64,
) -> anyhow::Result<()> {
    mongo_insert_sized(coll, from, to, batch, BODY_LEN).await
}

/// [`mongo_insert_range`] with bodies of `text_len` characters.
pub async fn mongo_insert_sized(
    coll: &mongodb::Collection<Document>,
    from: u64,
    to: u64,
    batch: u64,
    text_len: usize,
) -> anyhow::Result<()> {
    let mut i = from;
    while i < to {
        let end = (i + batch).min(to);
        let docs: Vec<Document> = (i..end)
            .map(|j| mongo_doc_sized(j, text_len, None))
            .collect();
        coll.insert_many(docs)
            .await
            .with_context(|| format!("insert_many of messages {i}..{end}"))?;
        i = end;
    }
    Ok(())
}

/// The pipeline-mapping workload: orders of [`ITEMS_PER_ORDER`] items each, in the collection
/// [`ORDERS`], unwound into the table [`ITEMS_TABLE`], one row per item, keyed by
/// (`orderId`, `itemId`).
pub const ORDERS: &str = "orders";
pub const ITEMS_TABLE: &str = "items";
pub const ITEMS_PER_ORDER: u64 = 10;

/// The Zero schema of the pipeline workload: `items` with its composite primary key.
pub fn items_schema_json() -> String {
    let col = |t: &str, optional: bool| serde_json::json!({"type": t, "optional": optional, "customType": null});
    serde_json::json!({
        "tables": {ITEMS_TABLE: {
            "name": ITEMS_TABLE,
            "columns": {
                "orderId": col("string", false),
                "itemId": col("number", false),
                "qty": col("number", true),
                "name": col("string", true),
            },
            "primaryKey": ["orderId", "itemId"],
        }},
        "relationships": {},
    })
    .to_string()
}

/// `items` from `orders` by a pipeline, as a zero-sources mapping file writes it.
pub fn items_mappings_json() -> String {
    serde_json::json!({"version": 1, "mappings": {ITEMS_TABLE: {
        "source": ORDERS,
        "pipeline": [
            {"$unwind": "$items"},
            {"$addFields": {
                "orderId": "$_id",
                "itemId": "$items.id",
                "qty": "$items.qty",
                "name": "$items.name",
            }},
        ],
    }}})
    .to_string()
}

/// Order number `i`: `{_id, customer, items: [{id, qty, name}, × ITEMS_PER_ORDER]}`.
pub fn order_doc(i: u64) -> Document {
    let items: Vec<bson::Bson> = (0..ITEMS_PER_ORDER)
        .map(|k| {
            let offset = ((i + k) % 40) as usize;
            let name: String = LOREM.chars().skip(offset).take(24).collect();
            bson::Bson::Document(doc! {
                "id": k as i32,
                "qty": ((i + k) % 7 + 1) as i32,
                "name": format!("{k} {name}"),
            })
        })
        .collect();
    doc! {
        "_id": format!("o{i:09}"),
        "customer": format!("user-{}", i % 200),
        "items": items,
        "created_at": bson::DateTime::now(),
    }
}

/// Inserts orders `from..to` into `coll` with `insert_many` of `batch` orders each.
pub async fn mongo_insert_orders(
    coll: &mongodb::Collection<Document>,
    from: u64,
    to: u64,
    batch: u64,
) -> anyhow::Result<()> {
    let mut i = from;
    while i < to {
        let end = (i + batch).min(to);
        coll.insert_many((i..end).map(order_doc).collect::<Vec<_>>())
            .await
            .with_context(|| format!("insert_many of orders {i}..{end}"))?;
        i = end;
    }
    Ok(())
}

/// A long-lived `psql` reading statements from a pipe: each line is executed (and, outside a
/// transaction, committed) as soon as psql reads it, with no process start per write.
pub struct PsqlPipe {
    child: Child,
    stdin: Option<ChildStdin>,
}

impl PsqlPipe {
    pub fn open(psql: &std::path::Path, url: &str) -> anyhow::Result<Self> {
        let mut child = Command::new(psql)
            .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", url])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .context("starting psql")?;
        let stdin = child.stdin.take().context("psql without stdin")?;
        Ok(Self {
            child,
            stdin: Some(stdin),
        })
    }

    /// Sends one statement (it must end with `;` and hold no newline).
    pub async fn send(&mut self, sql: &str) -> anyhow::Result<()> {
        let stdin = self.stdin.as_mut().context("psql pipe already closed")?;
        stdin.write_all(sql.as_bytes()).await?;
        stdin.write_all(b"\n").await?;
        stdin.flush().await.context("writing to psql")?;
        Ok(())
    }

    /// Closes the pipe and waits until psql has run everything and exited.
    pub async fn finish(mut self) -> anyhow::Result<()> {
        drop(self.stdin.take());
        let status = tokio::time::timeout(Duration::from_secs(300), self.child.wait())
            .await
            .context("psql did not finish within 300 s")??;
        if !status.success() {
            bail!("psql failed ({status})");
        }
        Ok(())
    }
}

/// Steady writes at `rate` per second for `secs` seconds, message numbers from `first`; the
/// send time of each is stamped into the row just before it is issued. Each write runs as its
/// own task, so one slow commit (a journal or WAL flush) does not hold back the schedule: both
/// databases see concurrent writers, as they would from an app. Returns how many rows.
pub async fn paced<F, Fut>(rate: u32, secs: u32, first: u64, mut write: F) -> anyhow::Result<u64>
where
    F: FnMut(u64, f64) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let total = u64::from(rate) * u64::from(secs);
    let start = tokio::time::Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for k in 0..total {
        let due = start + Duration::from_secs_f64(k as f64 / f64::from(rate));
        tokio::time::sleep_until(due).await;
        tasks.spawn(write(first + k, now_ms()));
        // Surface a failing writer at once instead of after the whole run.
        while let Some(done) = tasks.try_join_next() {
            done??;
        }
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_small_and_sql_safe() {
        for i in [0, 1, 39, 12_345, 99_999_999] {
            let m = message(i);
            assert!((90..=110).contains(&m.text.len()), "{}", m.text.len());
            assert!(!m.text.contains('\''));
        }
        assert_ne!(message(1).id, message(2).id);
        assert_eq!(message_sized(12_345, BODY_LEN).text, message(12_345).text);
        assert_eq!(message_sized(3, 2000).text.len(), 2003);
        let doc = mongo_doc_sized(123_456, body_len_for(2048), None)
            .to_vec()
            .unwrap();
        assert!((1900..2200).contains(&doc.len()), "{}", doc.len());
        let sql = sql_insert(0, 3, Some(1.5));
        assert!(sql.starts_with("INSERT INTO messages"));
        assert_eq!(sql.matches("now()").count(), 3);
        assert!(sql.contains(",1.500,"));
    }

    #[test]
    fn orders_unwind_into_distinct_item_keys() {
        let order = order_doc(42);
        assert_eq!(order.get_str("_id").unwrap(), "o000000042");
        let items = order.get_array("items").unwrap();
        assert_eq!(items.len() as u64, ITEMS_PER_ORDER);
        let ids: std::collections::BTreeSet<i32> = items
            .iter()
            .map(|d| d.as_document().unwrap().get_i32("id").unwrap())
            .collect();
        assert_eq!(ids.len() as u64, ITEMS_PER_ORDER);
        let schema: serde_json::Value = serde_json::from_str(&items_schema_json()).unwrap();
        assert_eq!(
            schema["tables"][ITEMS_TABLE]["primaryKey"],
            serde_json::json!(["orderId", "itemId"])
        );
        let m: serde_json::Value = serde_json::from_str(&items_mappings_json()).unwrap();
        assert_eq!(m["mappings"][ITEMS_TABLE]["source"], ORDERS);
        assert_eq!(
            m["mappings"][ITEMS_TABLE]["pipeline"][0]["$unwind"],
            "$items"
        );
    }
}
