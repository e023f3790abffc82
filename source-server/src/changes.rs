//! A MongoDB change stream driven by hand (`aggregate` + `getMore`), so the caller chooses how
//! long each `getMore` may wait.
//!
//! Why not the driver's `ChangeStream`: a Zero transaction may only be committed once its MongoDB
//! transaction is complete, and the only signal for that is a `getMore` that comes back empty.
//! With one fixed await time, every commit at the end of a burst would wait for it. Here, when a
//! transaction might still have events in flight we probe with a very short wait, and when the
//! stream is idle we long-poll. Any error simply ends the stream: the WebSocket closes, zero-cache
//! reconnects with its last durable watermark, and we resume from MongoDB's own oplog position.

use std::time::Duration;

use bson::{Bson, Document, doc};
use mongodb::{ClientSession, Database};
use thiserror::Error;

use crate::watermark::ClusterTime;

#[derive(Debug, Error)]
pub enum ChangeError {
    /// The resume point has left the oplog (`ChangeStreamHistoryLost`, code 286, or the older
    /// `CappedPositionLost`, 136): only a fresh initial sync can recover.
    #[error("the change stream cannot resume: the requested position is no longer in the oplog")]
    HistoryLost,
    #[error("MongoDB change stream failed: {0}")]
    Mongo(#[from] mongodb::error::Error),
    #[error("MongoDB returned a malformed change stream reply: {0}")]
    Malformed(String),
}

/// Where a stream starts.
#[derive(Debug, Clone, Copy)]
pub enum Start {
    /// Now; the returned cursor's first post-batch resume token tells where "now" is.
    Now,
    /// At this cluster time, inclusive.
    At(ClusterTime),
}

/// How update events get their whole document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub enum FullDocument {
    /// Look the document up at read time (works everywhere).
    #[default]
    UpdateLookup,
    /// Use post-images (`changeStreamPreAndPostImages` on the collection, MongoDB 6.0+).
    WhenAvailable,
    /// Post-images, and fail if one is missing.
    Required,
}

impl FullDocument {
    fn as_str(self) -> &'static str {
        match self {
            FullDocument::UpdateLookup => "updateLookup",
            FullDocument::WhenAvailable => "whenAvailable",
            FullDocument::Required => "required",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Operation {
    Insert,
    Update,
    Replace,
    Delete,
    /// Drop, rename, dropDatabase or invalidate: the collection as we knew it is gone.
    Invalidating(String),
    Other(String),
}

/// The events of one MongoDB transaction share `lsid` + `txnNumber`; anything else is grouped by
/// cluster time (a batched write can put several events at one cluster time, and they must not
/// be split, since resume skips everything at or before the last commit's cluster time).
#[derive(Debug, Clone, PartialEq)]
pub enum GroupId {
    Txn { lsid: Bson, txn_number: i64 },
    Time(ClusterTime),
}

#[derive(Debug, Clone)]
pub struct ChangeEvent {
    pub operation: Operation,
    pub collection: Option<String>,
    pub document_key: Option<Document>,
    pub full_document: Option<Document>,
    pub cluster_time: ClusterTime,
    pub group: GroupId,
    pub wall_time_ms: Option<i64>,
}

impl ChangeEvent {
    /// Reads the fields we use from a raw change event.
    pub fn from_document(mut d: Document) -> Result<Self, ChangeError> {
        let cluster_time = match d.get("clusterTime") {
            Some(Bson::Timestamp(ts)) => ClusterTime::from_timestamp(*ts),
            _ => return Err(ChangeError::Malformed("event without clusterTime".into())),
        };
        let operation = match d.get_str("operationType") {
            Ok("insert") => Operation::Insert,
            Ok("update") => Operation::Update,
            Ok("replace") => Operation::Replace,
            Ok("delete") => Operation::Delete,
            Ok(op @ ("drop" | "rename" | "dropDatabase" | "invalidate")) => {
                Operation::Invalidating(op.to_string())
            }
            Ok(other) => Operation::Other(other.to_string()),
            Err(_) => return Err(ChangeError::Malformed("event without operationType".into())),
        };
        let collection = d
            .get_document("ns")
            .ok()
            .and_then(|ns| ns.get_str("coll").ok())
            .map(str::to_string);
        let group = match (d.get("lsid"), d.get("txnNumber")) {
            (Some(lsid), Some(n)) => GroupId::Txn {
                lsid: match lsid {
                    Bson::Document(l) => l.get("id").cloned().unwrap_or_else(|| lsid.clone()),
                    other => other.clone(),
                },
                txn_number: match n {
                    Bson::Int64(n) => *n,
                    Bson::Int32(n) => *n as i64,
                    _ => return Err(ChangeError::Malformed("txnNumber is not an integer".into())),
                },
            },
            _ => GroupId::Time(cluster_time),
        };
        let wall_time_ms = match d.get("wallTime") {
            Some(Bson::DateTime(t)) => Some(t.timestamp_millis()),
            _ => None,
        };
        let take_doc = |d: &mut Document, k: &str| match d.remove(k) {
            Some(Bson::Document(doc)) => Some(doc),
            _ => None,
        };
        Ok(ChangeEvent {
            document_key: take_doc(&mut d, "documentKey"),
            full_document: take_doc(&mut d, "fullDocument"),
            operation,
            collection,
            cluster_time,
            group,
            wall_time_ms,
        })
    }
}

/// One `getMore` worth of events.
#[derive(Debug, Default)]
pub struct Batch {
    pub events: Vec<ChangeEvent>,
    /// The cluster time of the post-batch resume token.
    pub resume_time: Option<ClusterTime>,
}

pub struct ChangeCursor {
    db: Database,
    session: ClientSession,
    cursor_id: i64,
    pending_first: Option<Vec<Document>>,
    resume_time: Option<ClusterTime>,
    opened_at: Option<ClusterTime>,
    batch_size: u32,
}

impl ChangeCursor {
    /// Opens a database-level change stream restricted to `collections` (plus database drops).
    ///
    /// `batch_size` caps the events per reply: a `getMore` may otherwise return 16 MB of BSON,
    /// which decoded into documents is several times larger, so a backlog would make memory grow
    /// with it instead of staying flat.
    pub async fn open(
        db: &Database,
        collections: &[String],
        start: Start,
        full_document: FullDocument,
        batch_size: u32,
    ) -> Result<Self, ChangeError> {
        let batch_size = batch_size.max(1);
        let mut session = db.client().start_session().await?;
        let mut stage = doc! { "fullDocument": full_document.as_str() };
        if let Start::At(t) = start {
            stage.insert("startAtOperationTime", t.to_timestamp());
        }
        let pipeline = vec![
            doc! { "$changeStream": stage },
            doc! { "$match": { "$or": [
                { "ns.coll": { "$in": collections.iter().map(|c| Bson::String(c.clone())).collect::<Vec<_>>() } },
                { "operationType": { "$in": ["dropDatabase", "invalidate"] } },
            ] } },
        ];
        let reply = db
            .run_command(doc! {
                "aggregate": 1,
                "pipeline": pipeline,
                "cursor": { "batchSize": batch_size as i64 },
            })
            .session(&mut session)
            .await
            .map_err(classify)?;
        let opened_at = match reply.get("operationTime") {
            Some(Bson::Timestamp(ts)) => Some(ClusterTime::from_timestamp(*ts)),
            _ => None,
        };
        let cursor = take_cursor(reply, "aggregate")?;
        let cursor_id = cursor
            .get_i64("id")
            .map_err(|_| ChangeError::Malformed("cursor without id".into()))?;
        let resume_time = resume_time_of(&cursor)?;
        let first = batch_docs(cursor, "firstBatch");
        Ok(ChangeCursor {
            db: db.clone(),
            session,
            cursor_id,
            pending_first: Some(first),
            resume_time,
            opened_at,
            batch_size,
        })
    }

    /// MongoDB's operation time when the stream was opened: every write this source could
    /// have sent on an earlier connection happened at or before it.
    pub fn opened_at(&self) -> Option<ClusterTime> {
        self.opened_at
    }

    /// The cluster time of the latest post-batch resume token.
    pub fn resume_time(&self) -> Option<ClusterTime> {
        self.resume_time
    }

    /// The next batch, waiting at most `max_await` for new events when there are none.
    pub async fn next_batch(&mut self, max_await: Duration) -> Result<Batch, ChangeError> {
        let docs = if let Some(first) = self.pending_first.take() {
            first
        } else {
            let reply = self
                .db
                .run_command(doc! {
                    "getMore": self.cursor_id,
                    "collection": "$cmd.aggregate",
                    "batchSize": self.batch_size as i64,
                    "maxTimeMS": max_await.as_millis().max(1) as i64,
                })
                .session(&mut self.session)
                .await
                .map_err(classify)?;
            let cursor = take_cursor(reply, "getMore")?;
            if let Some(t) = resume_time_of(&cursor)? {
                self.resume_time = Some(t);
            }
            batch_docs(cursor, "nextBatch")
        };
        let events = docs
            .into_iter()
            .map(ChangeEvent::from_document)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Batch {
            events,
            resume_time: self.resume_time,
        })
    }

    /// Kills the server-side cursor (best effort; it would time out anyway).
    pub async fn close(mut self) {
        let _ = self
            .db
            .run_command(doc! { "killCursors": "$cmd.aggregate", "cursors": [self.cursor_id] })
            .session(&mut self.session)
            .await;
    }
}

fn resume_time_of(cursor: &Document) -> Result<Option<ClusterTime>, ChangeError> {
    match cursor.get_document("postBatchResumeToken") {
        Ok(token) => ClusterTime::from_resume_token(token)
            .map(Some)
            .map_err(|e| ChangeError::Malformed(format!("post-batch resume token: {e}"))),
        Err(_) => Ok(None),
    }
}

fn take_cursor(mut reply: Document, command: &str) -> Result<Document, ChangeError> {
    match reply.remove("cursor") {
        Some(Bson::Document(c)) => Ok(c),
        _ => Err(ChangeError::Malformed(format!(
            "{command} reply without cursor"
        ))),
    }
}

fn batch_docs(mut cursor: Document, key: &str) -> Vec<Document> {
    match cursor.remove(key) {
        Some(Bson::Array(items)) => items
            .into_iter()
            .filter_map(|b| match b {
                Bson::Document(d) => Some(d),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

fn classify(e: mongodb::error::Error) -> ChangeError {
    match e.kind.as_ref() {
        mongodb::error::ErrorKind::Command(c) if c.code == 286 || c.code == 136 => {
            ChangeError::HistoryLost
        }
        _ => ChangeError::Mongo(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::Timestamp;

    #[test]
    fn transaction_events_share_a_group_and_plain_writes_group_by_time() {
        let t = Timestamp {
            time: 10,
            increment: 2,
        };
        let txn = |coll: &str| {
            doc! {
                "operationType": "insert", "clusterTime": t, "ns": {"db": "d", "coll": coll},
                "documentKey": {"_id": 1}, "fullDocument": {"_id": 1},
                "lsid": {"id": Bson::Binary(bson::Binary{subtype: bson::spec::BinarySubtype::Uuid, bytes: vec![1; 16]}), "uid": Bson::Binary(bson::Binary{subtype: bson::spec::BinarySubtype::Generic, bytes: vec![2; 32]})},
                "txnNumber": 7i64,
            }
        };
        let a = ChangeEvent::from_document(txn("a")).unwrap();
        let b = ChangeEvent::from_document(txn("b")).unwrap();
        assert_eq!(a.group, b.group);
        assert_eq!(a.collection.as_deref(), Some("a"));
        assert!(a.full_document.is_some() && a.document_key.is_some());
        let plain = ChangeEvent::from_document(doc! {
            "operationType": "delete", "clusterTime": t, "ns": {"db": "d", "coll": "a"}, "documentKey": {"_id": 1},
        })
        .unwrap();
        assert_eq!(plain.group, GroupId::Time(ClusterTime::new(10, 2)));
        assert_eq!(plain.operation, Operation::Delete);
    }

    #[test]
    fn drops_renames_and_invalidates_are_flagged() {
        let t = Timestamp {
            time: 1,
            increment: 1,
        };
        for op in ["drop", "rename", "dropDatabase", "invalidate"] {
            let e =
                ChangeEvent::from_document(doc! {"operationType": op, "clusterTime": t}).unwrap();
            assert_eq!(e.operation, Operation::Invalidating(op.into()));
        }
        assert!(ChangeEvent::from_document(doc! {"operationType": "insert"}).is_err());
    }
}
