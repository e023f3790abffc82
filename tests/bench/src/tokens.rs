//! An experiment on real MongoDB behind issue 14's item 4: can the source tell that a change
//! stream reply ended at the end of what the server had (so the last group is complete and can
//! be committed at once), instead of waiting for a probe `getMore` to come back empty?
//!
//! Two candidate signals are checked. (1) The reply's `postBatchResumeToken`: if a reply that
//! exhausted the server carried a high-water mark different from its last event's `_id`, while a
//! reply cut inside a write carried that event's own token, the token would mark the end.
//! (2) Plain (non-transactional) writes: if each has its own cluster time, such an event is a
//! complete group by itself. This drives a raw change stream cursor by hand (as source-server
//! does) and records, for single inserts, a batched `insert_many` larger than the batch size, a
//! transaction split across replies and a transaction larger than one 16 MB reply, what each
//! reply carried.

use anyhow::Context;
use bson::{Bson, Document, doc};
use mongodb::{ClientSession, Database};

/// Events per `getMore`, as source-server's `read_batch_size` but small, so that the writes
/// below span several replies.
const BATCH: i32 = 100;

/// One `getMore` reply.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct Reply {
    pub events: usize,
    /// The post-batch token equals the last event's `_id` (the reply was cut there).
    pub token_is_last_event: bool,
    /// Distinct cluster times among the reply's events.
    pub cluster_times: usize,
    /// BSON size of the whole reply.
    pub bytes: usize,
}

/// Every reply of each case, in order.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct TokenFindings {
    /// `insert_one` × 3, a `getMore` after each.
    pub single: Vec<Reply>,
    /// `insert_many` of 250 (no transaction), then `getMore`s until it is read.
    pub batched: Vec<Reply>,
    /// One transaction of 250 inserts, then `getMore`s until it is read.
    pub transaction: Vec<Reply>,
    /// Distinct cluster times over all of that transaction's events.
    pub transaction_cluster_times: usize,
    /// One transaction of 24 documents of 1 MB (more than one 16 MB oplog entry and reply).
    pub large_transaction: Vec<Reply>,
    /// The post-batch token told the replies cut inside a write from the last one (each write's
    /// replies were cut exactly until its last): if so, the token could end a group at once.
    pub token_marks_the_end: bool,
    /// Every non-transactional insert had its own cluster time (so such an event is a complete
    /// group by itself on a replica set).
    pub own_cluster_time_per_plain_write: bool,
}

async fn get_more(
    db: &Database,
    session: &mut ClientSession,
    id: i64,
    coll: &str,
    times_seen: &mut Vec<bson::Timestamp>,
) -> anyhow::Result<Reply> {
    let reply = db
        .run_command(
            doc! {"getMore": id, "collection": coll, "batchSize": BATCH, "maxTimeMS": 1000},
        )
        .session(&mut *session)
        .await
        .context("getMore")?;
    let cursor = reply.get_document("cursor")?;
    let batch = cursor.get_array("nextBatch")?;
    let token = cursor.get_document("postBatchResumeToken")?;
    let last_id = batch
        .last()
        .and_then(Bson::as_document)
        .and_then(|e| e.get_document("_id").ok());
    let mut times: Vec<bson::Timestamp> = batch
        .iter()
        .filter_map(Bson::as_document)
        .filter_map(|e| e.get_timestamp("clusterTime").ok())
        .collect();
    times.dedup();
    let bytes = reply.to_vec().map_or(0, |v| v.len());
    times_seen.extend(times.iter().copied());
    Ok(Reply {
        events: batch.len(),
        token_is_last_event: last_id == Some(token),
        cluster_times: times.len(),
        bytes,
    })
}

/// Reads replies until `n` events arrived.
async fn read_all(
    db: &Database,
    session: &mut ClientSession,
    id: i64,
    coll: &str,
    n: usize,
    times: &mut Vec<bson::Timestamp>,
) -> anyhow::Result<Vec<Reply>> {
    let mut replies = Vec::new();
    let mut seen = 0;
    while seen < n && replies.len() < 50 {
        let r = get_more(db, session, id, coll, times).await?;
        seen += r.events;
        if r.events > 0 {
            replies.push(r);
        }
    }
    Ok(replies)
}

/// True when every reply but the last of a write was cut (token = last event) and the last was
/// not.
fn cut_exactly_before_the_end(replies: &[Reply]) -> bool {
    let n = replies.len();
    n > 0
        && replies[..n - 1].iter().all(|r| r.token_is_last_event)
        && !replies[n - 1].token_is_last_event
}

pub async fn experiment(client: &mongodb::Client) -> anyhow::Result<TokenFindings> {
    let db = client.database("bench_tokens");
    let coll_name = "t";
    db.create_collection(coll_name).await?;
    let coll = db.collection::<Document>(coll_name);
    let mut session = client.start_session().await?;
    let opened = db
        .run_command(doc! {
            "aggregate": coll_name,
            "pipeline": [{"$changeStream": {}}],
            "cursor": {"batchSize": BATCH},
        })
        .session(&mut session)
        .await
        .context("opening the change stream")?;
    let id = opened.get_document("cursor")?.get_i64("id")?;

    let mut f = TokenFindings::default();
    for i in 0..3 {
        coll.insert_one(doc! {"_id": format!("s{i}")}).await?;
        f.single
            .extend(read_all(&db, &mut session, id, coll_name, 1, &mut Vec::new()).await?);
    }
    let docs: Vec<Document> = (0..250).map(|i| doc! {"_id": format!("b{i}")}).collect();
    coll.insert_many(docs).await?;
    f.batched = read_all(&db, &mut session, id, coll_name, 250, &mut Vec::new()).await?;
    let mut txn = client.start_session().await?;
    txn.start_transaction().await?;
    let docs: Vec<Document> = (0..250).map(|i| doc! {"_id": format!("t{i}")}).collect();
    coll.insert_many(docs).session(&mut txn).await?;
    txn.commit_transaction().await?;
    let mut times = Vec::new();
    f.transaction = read_all(&db, &mut session, id, coll_name, 250, &mut times).await?;
    times.dedup();
    f.transaction_cluster_times = times.len();
    let mut txn = client.start_session().await?;
    txn.start_transaction().await?;
    let big = "x".repeat(1 << 20);
    for i in 0..24 {
        coll.insert_one(doc! {"_id": format!("L{i}"), "pad": &big})
            .session(&mut txn)
            .await?;
    }
    txn.commit_transaction().await?;
    f.large_transaction = read_all(&db, &mut session, id, coll_name, 24, &mut Vec::new()).await?;
    let _ = db
        .run_command(doc! {"killCursors": coll_name, "cursors": [id]})
        .session(&mut session)
        .await;
    let _ = db.drop().await;
    f.token_marks_the_end = f.single.iter().all(|r| !r.token_is_last_event)
        && cut_exactly_before_the_end(&f.batched)
        && cut_exactly_before_the_end(&f.transaction);
    f.own_cluster_time_per_plain_write = f.single.iter().all(|r| r.cluster_times == r.events)
        && f.batched.iter().map(|r| r.cluster_times).sum::<usize>() == 250;
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_last_reply_of_a_write_may_end_uncut() {
        let r = |cut| Reply {
            events: 1,
            token_is_last_event: cut,
            cluster_times: 1,
            bytes: 100,
        };
        assert!(cut_exactly_before_the_end(&[r(true), r(true), r(false)]));
        assert!(cut_exactly_before_the_end(&[r(false)]));
        assert!(!cut_exactly_before_the_end(&[r(false), r(false)]));
        assert!(!cut_exactly_before_the_end(&[r(true)]));
        assert!(!cut_exactly_before_the_end(&[]));
    }
}
