//! A MongoDB change stream driven by hand, read as raw BSON.
//!
//! Why not the driver's `ChangeStream`: a Zero transaction may only be committed once its MongoDB
//! transaction is complete. A reply MongoDB ended because it had nothing more (under the batch
//! size and far under 16 MiB: [`reply_was_drained`]) says so at once; after a full reply the
//! only signal is a `getMore` that comes back empty, and with one fixed await time every commit
//! at the end of a burst would wait for it. Here, after a full reply we probe with a very short
//! wait, and when the stream is idle (or the last reply was drained) we long-poll. Any error simply ends the stream: the WebSocket closes, zero-cache
//! reconnects with its last durable watermark, and we resume from MongoDB's own oplog position.
//!
//! Probes go through the driver's raw batch cursor (its await time is the probe time): each
//! reply stays one BSON buffer and an event costs two small copies (its `documentKey` and
//! `fullDocument`) instead of a whole owned `Document`. The driver cannot change a cursor's await
//! time per `getMore`, so the idle long-poll is a `getMore` of the same cursor sent through
//! `run_command`; its reply is decoded, but it only ever carries the first events after a pause.
//!
//! [`ChangeCursor::read_ahead`] moves the cursor into its own task, which sends the next `getMore`
//! while the previous batch is still being turned into messages (`replication::transactions`):
//! MongoDB and this process then work at the same time instead of taking turns. Each event of a
//! reply is parsed by `change_event`.

use std::time::Duration;

use bson::{RawBsonRef, RawDocument, RawDocumentBuf, doc};
use futures::StreamExt;
use mongodb::raw_batch_cursor::{RawBatch, SessionRawBatchCursor};
use mongodb::{ClientSession, Database};
use thiserror::Error;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::config::streaming::FullDocument;
use crate::mongo::change_event::{ChangeEvent, MalformedEvent, wanted};
use crate::mongo::cluster_time::ClusterTime;
use crate::rows::Fields;

#[derive(Debug, Error)]
pub enum ChangeError {
    /// The resume point has left the oplog (`ChangeStreamHistoryLost`, code 286, or the older
    /// `CappedPositionLost`, 136): only a fresh initial sync can recover.
    #[error("the change stream cannot resume: the requested position is no longer in the oplog")]
    HistoryLost,
    /// An event over MongoDB's 16 MiB document limit (`BSONObjectTooLarge`): the stream cannot
    /// get past it, so only a fresh initial sync can.
    #[error("a change event is larger than MongoDB's 16 MiB limit: {0}")]
    TooLarge(String),
    #[error("MongoDB change stream failed: {0}")]
    Mongo(#[from] mongodb::error::Error),
    #[error("MongoDB returned a malformed change stream reply: {0}")]
    Malformed(String),
}

impl From<MalformedEvent> for ChangeError {
    fn from(e: MalformedEvent) -> Self {
        ChangeError::Malformed(e.0)
    }
}

fn malformed(what: impl Into<String>) -> ChangeError {
    ChangeError::Malformed(what.into())
}

/// Where a stream starts.
#[derive(Debug, Clone, Copy)]
pub enum Start {
    /// Now; the returned cursor's first post-batch resume token tells where "now" is.
    Now,
    /// At this cluster time, inclusive.
    At(ClusterTime),
}

/// Which documents the events carry besides `documentKey`.
#[derive(Debug, Clone, Copy)]
pub struct Images {
    /// How updates get their whole document.
    pub full_document: FullDocument,
    /// Ask for the document as it was before each update, replace and delete.
    pub before_change: bool,
}

/// One `getMore` worth of events.
#[derive(Debug, Default)]
pub struct Batch {
    pub events: Vec<ChangeEvent>,
    /// The cluster time of the post-batch resume token.
    pub resume_time: Option<ClusterTime>,
    /// MongoDB ended this reply because it had nothing more to give, not because the reply
    /// was full (see [`reply_was_drained`]): every event of each oplog entry it read is in
    /// it, so the last event's cluster time has no more events to come.
    pub drained: bool,
}

/// A reply of at least this many bytes may have been cut by MongoDB's 16 MiB reply limit
/// (the next event did not fit) rather than drained; see [`reply_was_drained`].
pub const MAY_BE_CUT_BY_SIZE: usize = 8 << 20;

/// Whether a reply of `items` raw events and `bytes` bytes of events, asked for with
/// `batch_size`, ended because the server's change stream ran dry.
///
/// MongoDB fills a `getMore` until `batchSize` events, until the next event would not fit
/// in 16 MiB, or until the oplog it can see is exhausted; a tailable cursor with events in
/// hand returns at once at that end instead of waiting. One oplog entry (a plain write, a
/// batched delete's or a transaction's `applyOps`) is unwound into its events before the
/// stream reads the next, so a reply that ran dry holds all of its last entry's events.
/// A reply under the batch size and under [`MAY_BE_CUT_BY_SIZE`] was not cut by count, and
/// could only have been cut by size if the next event were over 8 MiB. The events that can
/// share a cluster time without a transaction (one `applyOps`: a batched `deleteMany`, an
/// `applyOps` command) are checked on real MongoDB in `tests/commit_grouping.rs`.
pub fn reply_was_drained(items: usize, bytes: usize, batch_size: u32) -> bool {
    items < batch_size as usize && bytes < MAY_BE_CUT_BY_SIZE
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
    /// are kept, with the documents `images` asks for, whose probes wait at most `probe`.
    ///
    /// `batch_size` caps the events per reply: a `getMore` may otherwise return 16 MB of BSON,
    /// so a backlog would make memory grow with it instead of staying flat.
    pub async fn open(
        db: &Database,
        collections: &[String],
        start: Start,
        images: Images,
        batch_size: u32,
        probe: Duration,
    ) -> Result<Self, ChangeError> {
        let batch_size = batch_size.max(1);
        let mut session = db.client().start_session().await?;
        let mut stage = doc! { "fullDocument": images.full_document.as_str() };
        if images.before_change {
            // `whenAvailable`, not `required`: a missing pre-image must not stall the stream;
            // the event that needed it asks for a reset instead (`row_changes`).
            stage.insert("fullDocumentBeforeChange", "whenAvailable");
        }
        if let Start::At(t) = start {
            stage.insert("startAtOperationTime", t.to_timestamp());
        }
        // No `$match`: MongoDB evaluates one on every event it builds, which cost about 2 µs of
        // its CPU per event (18%) in the benchmark; the same test is made here on the raw event
        // (`wanted`), before anything is copied.
        //
        // `updateDescription` is never read (the rows come from whole documents), and it can
        // make the event of an update to a large document cross MongoDB's 16 MiB limit, which
        // fails the stream at that event on every resume. Events are built in memory with a
        // little headroom over the limit, so removing it here keeps them sendable. (MongoDB
        // 6.0.9+/7.0 also have `$changeStreamSplitLargeEvent`; 6.0.5 does not, and an event
        // whose own documents exceed the limit asks for a reset instead: `locate_oversized`.)
        let pipeline = vec![
            doc! { "$changeStream": stage },
            doc! { "$project": { "updateDescription": 0 } },
        ];
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
        let batch_size = self.batch_size;
        let (events, drained) = match (self.pending_first.take(), wait) {
            (Some(first), _) => raw_events(
                first.as_raw_document(),
                &mut self.resume_time,
                &self.collections,
                batch_size,
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
                    batch_size,
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
                raw_events(&reply, &mut self.resume_time, &self.collections, batch_size)?
            }
        };
        Ok(Batch {
            events,
            resume_time: self.resume_time,
            drained,
        })
    }

    /// Moves the cursor into a task that keeps one `getMore` ahead of the consumer: a probe
    /// after a full batch, a long-poll of `idle` after an empty or drained one. The task stops (and
    /// the server-side cursor is killed) when the returned reader is dropped or MongoDB fails.
    pub fn read_ahead(mut self, idle: Duration) -> ReadAhead {
        let (tx, rx) = mpsc::channel(2);
        let task = tokio::spawn(async move {
            // The first batch is the aggregate's own, already here.
            let mut wait = Wait::Probe;
            loop {
                let batch = self.next_batch(wait).await;
                // A drained reply has told all there was: the next events can only be new
                // writes, so there is nothing to probe for.
                wait = match &batch {
                    Ok(b) if b.events.is_empty() || b.drained => Wait::Idle(idle),
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

/// The wanted events of a reply (`firstBatch` or `nextBatch`) and whether the reply was
/// drained (counted over all of its events, wanted or not: [`reply_was_drained`]); its resume
/// time goes into `resume_time`.
fn raw_events(
    reply: &RawDocument,
    resume_time: &mut Option<ClusterTime>,
    collections: &[String],
    batch_size: u32,
) -> Result<(Vec<ChangeEvent>, bool), ChangeError> {
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
    let (mut raw, mut bytes) = (0usize, 0usize);
    for item in items {
        match item.map_err(|e| malformed(format!("batch item: {e}")))? {
            RawBsonRef::Document(d) => {
                raw += 1;
                bytes += d.as_bytes().len();
                let fields = Fields::of(d);
                if wanted(&fields, collections) {
                    events.push(ChangeEvent::from_fields(&fields)?);
                }
            }
            _ => return Err(malformed("batch item is not a document")),
        }
    }
    Ok((events, reply_was_drained(raw, bytes, batch_size)))
}

/// MongoDB's `BSONObjectTooLarge`.
const BSON_OBJECT_TOO_LARGE: i32 = 10334;

fn classify(e: mongodb::error::Error) -> ChangeError {
    match e.kind.as_ref() {
        mongodb::error::ErrorKind::Command(c) if c.code == 286 || c.code == 136 => {
            ChangeError::HistoryLost
        }
        mongodb::error::ErrorKind::Command(c) if c.code == BSON_OBJECT_TOO_LARGE => {
            ChangeError::TooLarge(c.message.clone())
        }
        _ => ChangeError::Mongo(e),
    }
}

/// Names the first event after `after` in `collections`, reading only its namespace and key, so
/// that a reset for an oversized event can say which document it was (`collection _id …`).
/// `None` when it cannot be found within a few seconds.
pub async fn locate_oversized(
    db: &Database,
    after: ClusterTime,
    collections: &[String],
) -> Option<String> {
    use futures::TryStreamExt;
    let pipeline = vec![
        doc! { "$changeStream": { "startAtOperationTime": after.to_timestamp() } },
        doc! { "$match": { "clusterTime": { "$gt": after.to_timestamp() }, "ns.coll": { "$in": collections } } },
        doc! { "$project": { "ns": 1, "documentKey": 1 } },
    ];
    let find = async {
        let mut cursor = db
            .aggregate(pipeline)
            .max_await_time(Duration::from_millis(500))
            .await
            .ok()?;
        let event = cursor.try_next().await.ok().flatten()?;
        let coll = event
            .get_document("ns")
            .ok()?
            .get_str("coll")
            .ok()?
            .to_string();
        let id = event.get_document("documentKey").ok()?.get("_id")?.clone();
        Some(format!("{coll} _id {}", id.into_relaxed_extjson()))
    };
    tokio::time::timeout(Duration::from_secs(5), find)
        .await
        .ok()
        .flatten()
}
