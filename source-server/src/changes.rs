//! A MongoDB change stream driven by hand, read as raw BSON.
//!
//! Why not the driver's `ChangeStream`: a Zero transaction may only be committed once its MongoDB
//! transaction is complete, and the only signal for that is a `getMore` that comes back empty.
//! With one fixed await time, every commit at the end of a burst would wait for it. Here, when a
//! transaction might still have events in flight we probe with a very short wait, and when the
//! stream is idle we long-poll. Any error simply ends the stream: the WebSocket closes, zero-cache
//! reconnects with its last durable watermark, and we resume from MongoDB's own oplog position.
//!
//! Probes go through the driver's raw batch cursor (its await time is the probe time): each
//! reply stays one BSON buffer and an event costs two small copies (its `documentKey` and
//! `fullDocument`) instead of a whole owned `Document`. The driver cannot change a cursor's await
//! time per `getMore`, so the idle long-poll is a `getMore` of the same cursor sent through
//! `run_command`; its reply is decoded, but it only ever carries the first events after a pause.
//!
//! [`ChangeCursor::read_ahead`] moves the cursor into its own task, which sends the next `getMore`
//! while the streamer is still turning the previous batch into messages: MongoDB and this process
//! then work at the same time instead of taking turns.

use std::time::Duration;

use bson::{Bson, RawBsonRef, RawDocument, RawDocumentBuf, doc};
use futures::StreamExt;
use mongodb::raw_batch_cursor::{RawBatch, SessionRawBatchCursor};
use mongodb::{ClientSession, Database};
use thiserror::Error;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::rows::Fields;
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
    pub document_key: Option<RawDocumentBuf>,
    pub full_document: Option<RawDocumentBuf>,
    pub cluster_time: ClusterTime,
    pub group: GroupId,
    pub wall_time_ms: Option<i64>,
}

fn malformed(what: impl Into<String>) -> ChangeError {
    ChangeError::Malformed(what.into())
}

impl ChangeEvent {
    /// Reads the fields we use from a raw change event, copying only the two documents.
    pub fn from_raw(d: &RawDocument) -> Result<Self, ChangeError> {
        Self::from_fields(&Fields::of(d))
    }

    fn from_fields(fields: &Fields<'_>) -> Result<Self, ChangeError> {
        let cluster_time = match fields.get("clusterTime") {
            Some(RawBsonRef::Timestamp(ts)) => ClusterTime::from_timestamp(ts),
            _ => return Err(malformed("event without clusterTime")),
        };
        let operation = match fields.get("operationType") {
            Some(RawBsonRef::String("insert")) => Operation::Insert,
            Some(RawBsonRef::String("update")) => Operation::Update,
            Some(RawBsonRef::String("replace")) => Operation::Replace,
            Some(RawBsonRef::String("delete")) => Operation::Delete,
            Some(RawBsonRef::String(op @ ("drop" | "rename" | "dropDatabase" | "invalidate"))) => {
                Operation::Invalidating(op.to_string())
            }
            Some(RawBsonRef::String(other)) => Operation::Other(other.to_string()),
            _ => return Err(malformed("event without operationType")),
        };
        let collection = match fields.get("ns") {
            Some(RawBsonRef::Document(ns)) => ns.get_str("coll").ok().map(str::to_string),
            _ => None,
        };
        let group = match (fields.get("lsid"), fields.get("txnNumber")) {
            (Some(lsid), Some(n)) => GroupId::Txn {
                // The session id's `id` (a UUID) names the session; `uid` only repeats the user.
                lsid: {
                    let id = match lsid {
                        RawBsonRef::Document(l) => l.get("id").ok().flatten().unwrap_or(lsid),
                        other => other,
                    };
                    Bson::try_from(id).map_err(|e| malformed(format!("lsid: {e}")))?
                },
                txn_number: match n {
                    RawBsonRef::Int64(n) => n,
                    RawBsonRef::Int32(n) => n as i64,
                    _ => return Err(malformed("txnNumber is not an integer")),
                },
            },
            _ => GroupId::Time(cluster_time),
        };
        let wall_time_ms = match fields.get("wallTime") {
            Some(RawBsonRef::DateTime(t)) => Some(t.timestamp_millis()),
            _ => None,
        };
        let doc_of = |k: &str| fields.document(k).map(RawDocument::to_owned);
        Ok(ChangeEvent {
            document_key: doc_of("documentKey"),
            full_document: doc_of("fullDocument"),
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

/// How long the next `getMore` may wait for events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// The cursor's short probe time: a transaction may still have events in flight.
    Probe,
    /// The stream is idle: long-poll for this long.
    Idle(Duration),
}

pub struct ChangeCursor {
    db: Database,
    session: ClientSession,
    cursor: SessionRawBatchCursor,
    cursor_id: i64,
    /// The collections whose events are kept.
    collections: Vec<String>,
    /// The aggregate's own first batch, handed out by the first `next_batch`.
    pending_first: Option<RawBatch>,
    resume_time: Option<ClusterTime>,
    opened_at: Option<ClusterTime>,
    batch_size: u32,
}

impl ChangeCursor {
    /// Opens a database-level change stream of which only `collections` (plus database drops)
    /// are kept, whose probes wait at most `probe`.
    ///
    /// `batch_size` caps the events per reply: a `getMore` may otherwise return 16 MB of BSON,
    /// so a backlog would make memory grow with it instead of staying flat.
    pub async fn open(
        db: &Database,
        collections: &[String],
        start: Start,
        full_document: FullDocument,
        batch_size: u32,
        probe: Duration,
    ) -> Result<Self, ChangeError> {
        let batch_size = batch_size.max(1);
        let mut session = db.client().start_session().await?;
        let mut stage = doc! { "fullDocument": full_document.as_str() };
        if let Start::At(t) = start {
            stage.insert("startAtOperationTime", t.to_timestamp());
        }
        // No `$match`: MongoDB evaluates one on every event it builds, which cost about 2 µs of
        // its CPU per event (18%) in the benchmark; the same test is made here on the raw event
        // (`wanted`), before anything is copied.
        let pipeline = vec![doc! { "$changeStream": stage }];
        let mut cursor = db
            .aggregate(pipeline)
            .batch_size(batch_size)
            .max_await_time(probe.max(Duration::from_millis(1)))
            .session(&mut session)
            .batch()
            .await
            .map_err(classify)?;
        // The aggregate's reply is buffered in the cursor: reading it costs no round trip.
        let first = match cursor.stream(&mut session).next().await {
            Some(first) => first.map_err(classify)?,
            None => return Err(malformed("aggregate returned no cursor")),
        };
        let reply = first.as_raw_document();
        let opened_at = match reply.get("operationTime") {
            Ok(Some(RawBsonRef::Timestamp(ts))) => Some(ClusterTime::from_timestamp(ts)),
            _ => None,
        };
        let (_, cursor_id, resume_time) = cursor_of(reply)?;
        Ok(ChangeCursor {
            db: db.clone(),
            session,
            cursor,
            cursor_id,
            collections: collections.to_vec(),
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

    /// The next batch.
    pub async fn next_batch(&mut self, wait: Wait) -> Result<Batch, ChangeError> {
        let events = match (self.pending_first.take(), wait) {
            (Some(first), _) => raw_events(
                first.as_raw_document(),
                &mut self.resume_time,
                &self.collections,
            )?,
            (None, Wait::Probe) => {
                let reply = match self.cursor.stream(&mut self.session).next().await {
                    Some(reply) => reply.map_err(classify)?,
                    None => return Err(malformed("the change stream cursor was closed")),
                };
                raw_events(
                    reply.as_raw_document(),
                    &mut self.resume_time,
                    &self.collections,
                )?
            }
            (None, Wait::Idle(max_await)) => {
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
                let reply = RawDocumentBuf::try_from(&reply)
                    .map_err(|e| malformed(format!("getMore reply: {e}")))?;
                raw_events(&reply, &mut self.resume_time, &self.collections)?
            }
        };
        Ok(Batch {
            events,
            resume_time: self.resume_time,
        })
    }

    /// Moves the cursor into a task that keeps one `getMore` ahead of the consumer: a probe
    /// after a batch with events, a long-poll of `idle` after an empty one. The task stops (and
    /// the server-side cursor is killed) when the returned reader is dropped or MongoDB fails.
    pub fn read_ahead(mut self, idle: Duration) -> ReadAhead {
        let (tx, rx) = mpsc::channel(2);
        let task = tokio::spawn(async move {
            // The first batch is the aggregate's own, already here.
            let mut wait = Wait::Probe;
            loop {
                let batch = self.next_batch(wait).await;
                wait = match &batch {
                    Ok(b) if b.events.is_empty() => Wait::Idle(idle),
                    _ => Wait::Probe,
                };
                let failed = batch.is_err();
                if tx.send(batch).await.is_err() || failed {
                    break;
                }
            }
            self.close().await;
        });
        ReadAhead { rx, task }
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

/// Batches from a [`ChangeCursor`] read one `getMore` ahead.
pub struct ReadAhead {
    rx: mpsc::Receiver<Result<Batch, ChangeError>>,
    task: JoinHandle<()>,
}

impl ReadAhead {
    pub async fn next_batch(&mut self) -> Result<Batch, ChangeError> {
        match self.rx.recv().await {
            Some(batch) => batch,
            None => Err(malformed("the change stream reader stopped")),
        }
    }
}

impl Drop for ReadAhead {
    fn drop(&mut self) {
        // Dropping the task drops the driver's cursor, which kills it on the server.
        self.task.abort();
    }
}

/// The `cursor` of an `aggregate` or `getMore` reply, its id and its post-batch resume time.
fn cursor_of(reply: &RawDocument) -> Result<(&RawDocument, i64, Option<ClusterTime>), ChangeError> {
    let cursor = reply
        .get_document("cursor")
        .map_err(|_| malformed("reply without cursor"))?;
    let id = cursor
        .get_i64("id")
        .map_err(|_| malformed("reply: cursor without id"))?;
    let resume_time = match cursor.get_document("postBatchResumeToken") {
        Ok(token) => Some(
            ClusterTime::from_resume_token(token)
                .map_err(|e| malformed(format!("post-batch resume token: {e}")))?,
        ),
        Err(_) => None,
    };
    Ok((cursor, id, resume_time))
}

/// Whether an event concerns us: a change in one of `collections`, or the end of the database or
/// of the stream.
fn wanted(event: &Fields<'_>, collections: &[String]) -> bool {
    match event.document("ns").map(|ns| ns.get_str("coll")) {
        Some(Ok(coll)) => collections.iter().any(|c| c == coll),
        _ => matches!(
            event.get("operationType"),
            Some(RawBsonRef::String("dropDatabase" | "invalidate"))
        ),
    }
}

/// The wanted events of a reply (`firstBatch` or `nextBatch`), and its resume time into
/// `resume_time`.
fn raw_events(
    reply: &RawDocument,
    resume_time: &mut Option<ClusterTime>,
    collections: &[String],
) -> Result<Vec<ChangeEvent>, ChangeError> {
    let (cursor, _, t) = cursor_of(reply)?;
    if t.is_some() {
        *resume_time = t;
    }
    let items = match cursor
        .get_array("nextBatch")
        .or_else(|_| cursor.get_array("firstBatch"))
    {
        Ok(items) => items,
        Err(_) => return Err(malformed("reply without a batch")),
    };
    let mut events = Vec::new();
    for item in items {
        match item.map_err(|e| malformed(format!("batch item: {e}")))? {
            RawBsonRef::Document(d) => {
                let fields = Fields::of(d);
                if wanted(&fields, collections) {
                    events.push(ChangeEvent::from_fields(&fields)?);
                }
            }
            _ => return Err(malformed("batch item is not a document")),
        }
    }
    Ok(events)
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
    use bson::{Document, Timestamp};

    fn event(d: Document) -> Result<ChangeEvent, ChangeError> {
        ChangeEvent::from_raw(&RawDocumentBuf::try_from(&d).unwrap())
    }

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
        let a = event(txn("a")).unwrap();
        let b = event(txn("b")).unwrap();
        assert_eq!(a.group, b.group);
        assert_eq!(a.collection.as_deref(), Some("a"));
        assert!(a.full_document.is_some() && a.document_key.is_some());
        let plain = event(doc! {
            "operationType": "delete", "clusterTime": t, "ns": {"db": "d", "coll": "a"}, "documentKey": {"_id": 1},
        })
        .unwrap();
        assert_eq!(plain.group, GroupId::Time(ClusterTime::new(10, 2)));
        assert_eq!(plain.operation, Operation::Delete);
    }

    #[test]
    fn only_mapped_collections_and_database_ends_are_wanted() {
        let mapped = ["rooms".to_string(), "messages".to_string()];
        let keep =
            |d: Document| wanted(&Fields::of(&RawDocumentBuf::try_from(&d).unwrap()), &mapped);
        assert!(keep(
            doc! {"operationType": "insert", "ns": {"db": "d", "coll": "rooms"}}
        ));
        assert!(keep(
            doc! {"operationType": "drop", "ns": {"db": "d", "coll": "messages"}}
        ));
        assert!(!keep(
            doc! {"operationType": "insert", "ns": {"db": "d", "coll": "audit"}}
        ));
        assert!(!keep(
            doc! {"operationType": "drop", "ns": {"db": "d", "coll": "audit"}}
        ));
        assert!(keep(
            doc! {"operationType": "dropDatabase", "ns": {"db": "d"}}
        ));
        assert!(keep(doc! {"operationType": "invalidate"}));
    }

    #[test]
    fn drops_renames_and_invalidates_are_flagged() {
        let t = Timestamp {
            time: 1,
            increment: 1,
        };
        for op in ["drop", "rename", "dropDatabase", "invalidate"] {
            let e = event(doc! {"operationType": op, "clusterTime": t}).unwrap();
            assert_eq!(e.operation, Operation::Invalidating(op.into()));
        }
        assert!(event(doc! {"operationType": "insert"}).is_err());
    }
}
