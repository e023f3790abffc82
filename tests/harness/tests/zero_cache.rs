//! End-to-end self-test of the harness before the real source exists: a tiny WebSocket change
//! source written here answers zero-cache's initial sync with a one-table snapshot (the example
//! in the protocol notes, §1.9) and one live transaction; the messages pass Zero's schema,
//! the replica holds the rows, and a real Zero client sees them.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::json;
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use zerostack_harness::{
    Postgres, ZeroCache, ZeroCacheOptions, ZeroClientWait, validate_stream_lines,
    validate_transactions, zero_client_wait,
};

const SNAPSHOT_WATERMARK: &str = "9hoh3pghfdt";
const LIVE_WATERMARK: &str = "9hoh3pghfdu";

fn snapshot() -> Vec<String> {
    let permissions =
        json!({"tables":{"items":{"row":{"select":[["allow",{"type":"and","conditions":[]}]]}}}});
    [
        json!(["begin",{"tag":"begin"},{"commitWatermark":SNAPSHOT_WATERMARK}]),
        json!(["data",{"tag":"create-table","spec":{"schema":"public","name":"items","columns":{"id":{"pos":0,"dataType":"text","notNull":true},"title":{"pos":1,"dataType":"text","notNull":false}},"primaryKey":["id"]},"metadata":{"rowKey":{"columns":["id"]}}}]),
        json!(["data",{"tag":"create-index","spec":{"schema":"public","tableName":"items","name":"public_items_key","unique":true,"columns":{"id":"ASC"}}}]),
        json!(["data",{"tag":"insert","relation":{"schema":"public","name":"items","rowKey":{"columns":["id"]}},"new":{"id":"a","title":"first"}}]),
        json!(["data",{"tag":"insert","relation":{"schema":"public","name":"items","rowKey":{"columns":["id"]}},"new":{"id":"b","title":"second"}}]),
        json!(["data",{"tag":"create-table","spec":{"schema":"zero_0","name":"clients","columns":{"clientGroupID":{"pos":0,"dataType":"text","notNull":true},"clientID":{"pos":1,"dataType":"text","notNull":true},"lastMutationID":{"pos":2,"dataType":"int8","notNull":true},"userID":{"pos":3,"dataType":"text"}},"primaryKey":["clientGroupID","clientID"]}}]),
        json!(["data",{"tag":"create-index","spec":{"schema":"zero_0","tableName":"clients","name":"zero_0_clients_key","unique":true,"columns":{"clientGroupID":"ASC","clientID":"ASC"}}}]),
        // An int8 beyond 2^53 must survive the whole path exactly.
        json!(["data",{"tag":"insert","relation":{"schema":"zero_0","name":"clients","rowKey":{"columns":["clientGroupID","clientID"]}},"new":{"clientGroupID":"g","clientID":"c","lastMutationID":9_007_199_254_740_993_u64,"userID":"u"}}]),
        json!(["data",{"tag":"create-table","spec":{"schema":"zero_0","name":"mutations","columns":{"clientGroupID":{"pos":0,"dataType":"text","notNull":true},"clientID":{"pos":1,"dataType":"text","notNull":true},"mutationID":{"pos":2,"dataType":"int8","notNull":true},"mutation":{"pos":3,"dataType":"json"},"result":{"pos":4,"dataType":"json"}},"primaryKey":["clientGroupID","clientID","mutationID"]}}]),
        json!(["data",{"tag":"create-index","spec":{"schema":"zero_0","tableName":"mutations","name":"zero_0_mutations_key","unique":true,"columns":{"clientGroupID":"ASC","clientID":"ASC","mutationID":"ASC"}}}]),
        json!(["data",{"tag":"create-table","spec":{"schema":"zero","name":"permissions","columns":{"lock":{"pos":0,"dataType":"bool","notNull":true},"permissions":{"pos":1,"dataType":"json"},"hash":{"pos":2,"dataType":"text"}},"primaryKey":["lock"]}}]),
        json!(["data",{"tag":"create-index","spec":{"schema":"zero","tableName":"permissions","name":"zero_permissions_key","unique":true,"columns":{"lock":"ASC"}}}]),
        json!(["data",{"tag":"insert","relation":{"schema":"zero","name":"permissions","rowKey":{"columns":["lock"]}},"new":{"lock":true,"permissions":permissions,"hash":"h1"}}]),
        json!(["commit",{"tag":"commit","commitTimeMs":1_795_566_166_899_u64},{"watermark":SNAPSHOT_WATERMARK}]),
    ]
    .iter()
    .map(|v| v.to_string())
    .collect()
}

fn live_transaction() -> Vec<String> {
    [
        json!(["begin",{"tag":"begin"},{"commitWatermark":LIVE_WATERMARK}]),
        json!(["data",{"tag":"insert","relation":{"schema":"public","name":"items","rowKey":{"columns":["id"]}},"new":{"id":"c","title":"live"}}]),
        json!(["commit",{"tag":"commit"},{"watermark":LIVE_WATERMARK}]),
    ]
    .iter()
    .map(|v| v.to_string())
    .collect()
}

/// What the throwaway source saw: the query string of every connection.
#[derive(Default)]
struct SourceLog {
    queries: Vec<String>,
}

/// Serves `/changes/v0/stream`: the snapshot on a connection without `lastWatermark`, the live
/// transaction on a resume from the snapshot, nothing on later resumes.
async fn throwaway_source() -> anyhow::Result<(u16, Arc<Mutex<SourceLog>>)> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let log = Arc::new(Mutex::new(SourceLog::default()));
    let accept_log = log.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let log = accept_log.clone();
            tokio::spawn(async move {
                let query = Arc::new(Mutex::new(String::new()));
                let q = query.clone();
                // The Result type is tungstenite's Callback signature, not ours to shrink.
                #[allow(clippy::result_large_err)]
                let callback = move |req: &Request, resp: Response| {
                    *q.lock().unwrap() = req.uri().query().unwrap_or("").to_string();
                    Ok(resp)
                };
                let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(tcp, callback).await else {
                    return;
                };
                let query = query.lock().unwrap().clone();
                log.lock().unwrap().queries.push(query.clone());
                let to_send = if !query.contains("lastWatermark=") {
                    snapshot()
                } else if query.contains(&format!("lastWatermark={SNAPSHOT_WATERMARK}")) {
                    live_transaction()
                } else {
                    Vec::new()
                };
                for line in to_send {
                    if ws.send(Message::text(line)).await.is_err() {
                        return;
                    }
                }
                // Keep reading: acks arrive here and pings get their pongs.
                while let Some(Ok(_)) = ws.next().await {}
            });
        }
    });
    Ok((port, log))
}

#[tokio::test]
async fn validator_rejects_invalid_messages() -> anyhow::Result<()> {
    validate_stream_lines(&snapshot()).await?;
    validate_transactions(&snapshot()).await?;
    let mut broken = snapshot();
    broken[3] = broken[3].replace("\"new\"", "\"neww\"");
    let err = validate_stream_lines(&broken)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("<stdin>:4:") && err.contains("missing_value at .new"),
        "{err}"
    );
    let mut mismatched = live_transaction();
    mismatched[2] = mismatched[2].replace(LIVE_WATERMARK, "9hoh3pghfdv");
    validate_stream_lines(&mismatched).await?;
    let err = validate_transactions(&mismatched)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("differs from begin's commitWatermark"),
        "{err}"
    );
    Ok(())
}

#[tokio::test]
async fn zero_cache_syncs_from_a_custom_source_to_a_zero_client() -> anyhow::Result<()> {
    validate_transactions(&snapshot()).await?;
    validate_transactions(&live_transaction()).await?;

    let (source_port, source_log) = throwaway_source().await?;
    let pg = Postgres::start().await?;
    pg.create_db("zero_cvr").await?;
    pg.create_db("zero_cdc").await?;
    let mut zc = ZeroCache::start(ZeroCacheOptions {
        upstream_url: format!("ws://127.0.0.1:{source_port}/changes/v0/stream?token=t0ken"),
        cvr_db: pg.url("zero_cvr"),
        change_db: pg.url("zero_cdc"),
        ..Default::default()
    })
    .await?;

    let queries = source_log.lock().unwrap().queries.clone();
    assert!(
        queries[0].contains("token=t0ken") && queries[0].contains("appID=zero"),
        "{queries:?}"
    );
    assert!(!queries[0].contains("lastWatermark"), "{queries:?}");

    let dir = tempfile::tempdir()?;
    let schema_file = dir.path().join("schema.json");
    std::fs::write(
        &schema_file,
        json!({"tables":{"items":{"name":"items","columns":{
            "id":{"type":"string","optional":false,"customType":null},
            "title":{"type":"string","optional":true,"customType":null}},
            "primaryKey":["id"]}},"relationships":{}})
        .to_string(),
    )?;
    // The live row arrives only through the resumed stream, after the snapshot.
    let seen = zero_client_wait(
        &ZeroClientWait::new(zc.url(), &schema_file, "items")
            .until(json!({"id":"c","title":"live"}))
            .timeout(Duration::from_secs(45)),
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}\n{}", zc.log_tail(30)))?;
    let last_rows = &seen.last().unwrap()["rows"];
    assert_eq!(last_rows.as_array().unwrap().len(), 3, "{seen:?}");

    let replica = zc.replica().await?;
    assert_eq!(
        replica["items"],
        json!([{"id":"a","title":"first"},{"id":"b","title":"second"},{"id":"c","title":"live"}])
    );
    assert_eq!(
        replica["zero_0.clients"][0]["lastMutationID"].to_string(),
        "9007199254740993",
        "int8 beyond 2^53 must stay exact"
    );
    assert_eq!(
        replica["_zero.replicationConfig"][0]["replicaVersion"],
        SNAPSHOT_WATERMARK
    );

    // A restart keeps the replica and resumes from the last commit.
    zc.restart().await?;
    let replica = zc.replica().await?;
    assert_eq!(replica["items"].as_array().unwrap().len(), 3);
    let queries = source_log.lock().unwrap().queries.clone();
    assert!(
        queries
            .iter()
            .any(|q| q.contains(&format!("lastWatermark={LIVE_WATERMARK}"))),
        "no resume from the live commit: {queries:?}"
    );
    assert_eq!(
        zc.stop().await?,
        Some(0),
        "clean shutdown\n{}",
        zc.log_tail(20)
    );
    Ok(())
}
