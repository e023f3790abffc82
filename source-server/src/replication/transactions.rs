//! Streaming after a resume point: change events are grouped by MongoDB transaction and sent as
//! Zero transactions ([`Streamer`]).
//!
//! The rules it keeps:
//! - one MongoDB transaction (events sharing `lsid` + `txnNumber`, else one cluster time) is never
//!   split across Zero transactions;
//! - a group is complete when the next event belongs to another group, when its reply was
//!   drained (MongoDB ended it with nothing more to give, `Batch::drained`: a reply holds all
//!   the events of every oplog entry it reached, so no event of that cluster time or
//!   transaction is left), or when a `getMore` comes back empty; it is then sent at once,
//!   never held for the next write or for a probe. Only a full reply (by count, or large
//!   enough to have been cut by size) waits for the probe `getMore`;
//! - under backlog, complete groups already read are coalesced into one Zero transaction up to a
//!   row/byte limit ([`StreamLimits`]), committed at the last group's watermark (zero-cache pays
//!   a fixed cost per transaction, so this is what lets a burst go at its row rate);
//! - every write is awaited, so a slow zero-cache slows the change stream read instead of
//!   growing memory; a group larger than the byte limit is streamed rather than buffered;
//! - a replay (the backlog that existed when the connection opened) is never coalesced: after
//!   a crash zero-cache's replica may be at any watermark we sent before, possibly one its change
//!   DB had not stored yet, and it can only catch up if that exact watermark is a commit of the
//!   replay. Every earlier commit ended at a MongoDB group, so one commit per group reproduces
//!   them all;
//! - the socket is flushed once per `getMore` worth of events, as soon as that batch is handled
//!   (never held while waiting on MongoDB): a backlog then costs one write syscall per batch
//!   instead of one per transaction;
//! - when the stream has sent nothing for `keepalive_ms`, an empty transaction just before the
//!   post-batch resume time (everything before it is final) moves zero-cache's resume point, so
//!   that an idle collection does not fall off the oplog;
//! - a drop, rename or invalidate of a mapped collection (or of the database) ends the stream
//!   with a [`ResetReason`], after committing what came before it.
//!
//! The data messages of each event come from `row_changes`.

use std::time::{Duration, Instant};

use tracing::{info, warn};

use crate::config::streaming::StreamLimits;
use crate::connection_status::{ConnectionStatus, now_ms};
use crate::metrics::Metrics;
use crate::mongo::change_event::{ChangeEvent, GroupId, Operation};
use crate::mongo::change_stream::{Batch, ChangeCursor, ChangeError};
use crate::mongo::cluster_time::ClusterTime;
use crate::replication::reset::ResetReason;
use crate::replication::row_changes::event_changes;
use crate::zero::catalog::Catalog;
use crate::zero::downstream::{Downstream, DownstreamClosed};
use crate::zero::messages;

/// Why streaming stopped.
#[derive(Debug)]
pub enum StreamEnd {
    Closed,
    ResetRequired(ResetReason),
    Failed(ChangeError),
}

impl From<DownstreamClosed> for StreamEnd {
    fn from(_: DownstreamClosed) -> Self {
        StreamEnd::Closed
    }
}

struct OpenGroup {
    id: GroupId,
    time: ClusterTime,
    wall_ms: Option<i64>,
    messages: Vec<String>,
    bytes: usize,
    rows: usize,
    /// Too large to buffer: its `begin` and earlier messages are already sent.
    streaming: bool,
}

#[derive(Default)]
struct Pending {
    messages: Vec<String>,
    bytes: usize,
    rows: usize,
    last: Option<(ClusterTime, Option<i64>)>,
    /// Commit time (ms) of the oldest group, for the lag histogram.
    oldest_ms: Option<u64>,
}

pub struct Streamer<'a, D: Downstream> {
    catalog: &'a Catalog,
    metrics: &'a Metrics,
    status: &'a ConnectionStatus,
    limits: &'a StreamLimits,
    down: &'a mut D,
    /// The last watermark committed downstream (or resumed from): nothing at or before it is sent.
    last_commit: ClusterTime,
    last_send: Instant,
    open: Option<OpenGroup>,
    pending: Pending,
    /// Groups at or before this time are part of the replay and are committed one by one.
    replay_until: Option<ClusterTime>,
    /// Messages were fed since the last flush.
    unflushed: bool,
    /// Updates read their document from post-images (`FULL_DOCUMENT=whenAvailable|required`).
    post_images: bool,
}

impl<'a, D: Downstream> Streamer<'a, D> {
    pub fn new(
        catalog: &'a Catalog,
        metrics: &'a Metrics,
        status: &'a ConnectionStatus,
        limits: &'a StreamLimits,
        down: &'a mut D,
        resume_after: ClusterTime,
    ) -> Self {
        Streamer {
            catalog,
            metrics,
            status,
            limits,
            down,
            last_commit: resume_after,
            last_send: Instant::now(),
            open: None,
            pending: Pending::default(),
            replay_until: Some(ClusterTime::from_u64(u64::MAX)),
            unflushed: false,
            post_images: false,
        }
    }

    /// Updates read their document from post-images: one without it asks for a reset.
    pub fn post_images(mut self, on: bool) -> Self {
        self.post_images = on;
        self
    }

    /// Bounds the replay (see the module comment) by the stream's opening time; without it the
    /// replay lasts until the stream first catches up.
    pub fn replay_until(mut self, opened_at: Option<ClusterTime>) -> Self {
        if let Some(t) = opened_at {
            self.replay_until = Some(t);
        }
        self
    }

    /// Bounds the replay of a stream reopened on the same connection (see [`Self::replay_until`]).
    pub fn set_replay_until(&mut self, opened_at: Option<ClusterTime>) {
        self.replay_until = Some(opened_at.unwrap_or(ClusterTime::from_u64(u64::MAX)));
    }

    /// The last watermark committed downstream (or resumed from): a reopened stream starts here.
    pub fn last_commit(&self) -> ClusterTime {
        self.last_commit
    }

    /// After the change stream broke: forgets what was read but not committed downstream, so a
    /// stream reopened at [`Self::last_commit`] reads it again. `false` when a transaction is
    /// half sent (its `begin` is out): only a new connection can recover from that.
    pub fn discard_unsent(&mut self) -> bool {
        if self.open.as_ref().is_some_and(|g| g.streaming) {
            return false;
        }
        self.open = None;
        self.pending = Pending::default();
        true
    }

    /// Streams until the downstream closes, a reset is required, or MongoDB fails.
    ///
    /// The cursor reads one `getMore` ahead (probing after events, long-polling when idle), so
    /// MongoDB prepares the next batch while this one becomes messages.
    pub async fn run(&mut self, cursor: ChangeCursor) -> StreamEnd {
        let mut batches = cursor.read_ahead(Duration::from_millis(self.limits.idle_poll_ms));
        loop {
            let batch = match batches.next_batch().await {
                Ok(b) => b,
                Err(e) => return StreamEnd::Failed(e),
            };
            if let Err(end) = self.on_batch(batch).await {
                return end;
            }
        }
    }

    /// Handles one `getMore` worth of events, then flushes what it sent. Public for tests that
    /// feed batches directly.
    pub async fn on_batch(&mut self, batch: Batch) -> Result<(), StreamEnd> {
        let result = self.handle_batch(batch).await;
        if self.unflushed {
            self.unflushed = false;
            self.down.flush().await?;
        }
        result
    }

    async fn handle_batch(&mut self, batch: Batch) -> Result<(), StreamEnd> {
        if batch.events.is_empty() {
            self.caught_up().await?;
            self.maybe_keepalive(batch.resume_time).await?;
            return Ok(());
        }
        let drained = batch.drained;
        for event in batch.events {
            if event.cluster_time <= self.last_commit {
                continue;
            }
            if let Operation::Invalidating(op) = &event.operation {
                // A rename counts for its target too: renamed onto a mapped name, it replaces
                // that collection's documents wholesale.
                let mapped = event
                    .collection
                    .as_deref()
                    .is_none_or(|c| self.catalog.is_mapped(c))
                    || event
                        .to_collection
                        .as_deref()
                        .is_some_and(|c| self.catalog.is_mapped(c));
                if mapped {
                    self.close_open().await?;
                    self.flush_pending().await?;
                    let collection = match (&event.collection, &event.to_collection) {
                        (Some(from), Some(to)) if self.catalog.is_mapped(to) => {
                            Some(format!("{to} (renamed from {from})"))
                        }
                        (c, _) => c.clone(),
                    };
                    return Err(StreamEnd::ResetRequired(
                        ResetReason::CollectionInvalidated {
                            operation: op.clone(),
                            collection,
                        },
                    ));
                }
                continue;
            }
            self.metrics.event(op_name(&event.operation));
            if self.open.as_ref().is_some_and(|g| g.id != event.group) {
                self.close_open().await?;
            }
            self.add_to_open(event).await?;
        }
        if drained {
            // MongoDB had nothing more: the last group is as complete as after an empty probe.
            self.caught_up().await?;
        }
        Ok(())
    }

    /// The stream has read everything MongoDB had: whatever is open is complete, and the
    /// replay is over.
    async fn caught_up(&mut self) -> Result<(), StreamEnd> {
        self.replay_until = None;
        self.close_open().await?;
        self.flush_pending().await
    }

    async fn add_to_open(&mut self, event: ChangeEvent) -> Result<(), StreamEnd> {
        let group = self.open.get_or_insert_with(|| OpenGroup {
            id: event.group.clone(),
            time: event.cluster_time,
            wall_ms: event.wall_time_ms,
            messages: Vec::new(),
            bytes: 0,
            rows: 0,
            streaming: false,
        });
        let start = group.messages.len();
        match event_changes(
            self.catalog,
            &event,
            self.metrics,
            self.post_images,
            &mut group.messages,
        ) {
            Ok(rows) => group.rows += rows,
            Err(reason) => {
                // Complete transactions before this one still go out; this one cannot.
                self.open = None;
                self.flush_pending().await?;
                return Err(StreamEnd::ResetRequired(reason));
            }
        }
        group.bytes += group.messages[start..]
            .iter()
            .map(String::len)
            .sum::<usize>();
        if group.streaming {
            let messages: Vec<String> = group.messages.drain(..).collect();
            for m in messages {
                self.send(m).await?;
            }
        } else if group.bytes > self.limits.max_bytes_per_transaction {
            // One MongoDB transaction bigger than the buffer: commit what is pending, then
            // stream this one as it is read. Its watermark is known from its first event.
            self.flush_pending().await?;
            let group = self.open.as_mut().expect("open group");
            group.streaming = true;
            let begin = messages::begin(&group.time.to_watermark());
            let messages: Vec<String> = group.messages.drain(..).collect();
            self.send(begin).await?;
            for m in messages {
                self.send(m).await?;
            }
        }
        Ok(())
    }

    async fn close_open(&mut self) -> Result<(), StreamEnd> {
        let Some(group) = self.open.take() else {
            return Ok(());
        };
        if group.streaming {
            let w = group.time.to_watermark();
            self.send(messages::commit(&w, commit_ms(group.time, group.wall_ms)))
                .await?;
            self.committed(group.time, group.wall_ms, group.rows, None);
            return Ok(());
        }
        self.pending.bytes += group.bytes;
        self.pending.rows += group.rows;
        self.pending
            .oldest_ms
            .get_or_insert(commit_ms(group.time, group.wall_ms));
        self.pending.messages.extend(group.messages);
        self.pending.last = Some((group.time, group.wall_ms));
        if self.replay_until.is_some_and(|t| group.time <= t)
            || self.pending.rows >= self.limits.max_rows_per_transaction
            || self.pending.bytes >= self.limits.max_bytes_per_transaction
        {
            self.flush_pending().await?;
        }
        Ok(())
    }

    async fn flush_pending(&mut self) -> Result<(), StreamEnd> {
        let Some((time, wall_ms)) = self.pending.last.take() else {
            return Ok(());
        };
        let pending = std::mem::take(&mut self.pending);
        let w = time.to_watermark();
        self.send(messages::begin(&w)).await?;
        for m in pending.messages {
            self.send(m).await?;
        }
        self.send(messages::commit(&w, commit_ms(time, wall_ms)))
            .await?;
        self.committed(time, wall_ms, pending.rows, pending.oldest_ms);
        Ok(())
    }

    async fn maybe_keepalive(&mut self, resume_time: Option<ClusterTime>) -> Result<(), StreamEnd> {
        let Some(resume_time) = resume_time else {
            return Ok(());
        };
        if self.last_send.elapsed() < Duration::from_millis(self.limits.keepalive_ms) {
            return Ok(());
        }
        // A post-batch token can be a "high water mark" whose time a later event may still
        // carry; everything strictly before it is final.
        let safe = resume_time.prev();
        if safe <= self.last_commit {
            self.last_send = Instant::now();
            return Ok(());
        }
        let w = safe.to_watermark();
        self.send(messages::begin(&w)).await?;
        self.send(messages::commit(&w, safe.epoch_ms())).await?;
        self.metrics.keepalives.inc();
        self.committed(safe, None, 0, None);
        Ok(())
    }

    async fn send(&mut self, message: String) -> Result<(), DownstreamClosed> {
        self.metrics.bytes_sent.inc_by(message.len() as u64);
        self.unflushed = true;
        self.down.feed(message).await
    }

    /// Bookkeeping after a commit; `oldest_ms` is the commit time of its oldest change (default:
    /// the commit's own).
    fn committed(
        &mut self,
        time: ClusterTime,
        wall_ms: Option<i64>,
        rows: usize,
        oldest_ms: Option<u64>,
    ) {
        self.last_commit = time;
        self.last_send = Instant::now();
        self.metrics.transactions.inc();
        self.metrics.rows_sent.inc_by(rows as u64);
        let commit_time = commit_ms(time, wall_ms);
        let now = now_ms();
        let lag = now.saturating_sub(commit_time);
        if rows > 0 {
            self.metrics.lag_ms.set(lag as i64);
            let oldest = oldest_ms.unwrap_or(commit_time);
            self.metrics
                .commit_lag
                .observe(now.saturating_sub(oldest) as f64 / 1000.0);
        }
        self.status.update(|v| {
            v.last_watermark_sent = Some(time.to_watermark());
            v.last_commit_time_ms = Some(commit_time);
            v.transactions_sent += 1;
            if rows > 0 {
                v.lag_ms = Some(lag);
            }
        });
    }
}

fn commit_ms(time: ClusterTime, wall_ms: Option<i64>) -> u64 {
    wall_ms
        .and_then(|w| u64::try_from(w).ok())
        .unwrap_or_else(|| time.epoch_ms())
}

fn op_name(op: &Operation) -> &str {
    match op {
        Operation::Insert => "insert",
        Operation::Update => "update",
        Operation::Replace => "replace",
        Operation::Delete => "delete",
        Operation::Invalidating(o) | Operation::Other(o) => o,
    }
}

/// Logs how a stream ended, at the right level.
pub fn log_end(end: &StreamEnd) {
    match end {
        StreamEnd::Closed => info!("zero-cache closed the stream"),
        StreamEnd::ResetRequired(why) => warn!(reason = %why, "sent reset-required"),
        StreamEnd::Failed(e) => {
            warn!(error = %e, "change stream ended; zero-cache will resume from its last watermark")
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use bson::{Bson, Document, Timestamp, doc};
    use serde_json::Value;
    use zerostack_spec::schema::ColumnType;
    use zerostack_spec::{ColumnSpec, TableSpec};

    use super::*;
    use crate::connection_status::Connections;
    use crate::rows::CompiledTable;
    use crate::zero::catalog::Shard;
    use crate::zero::downstream::Recorder;
    use zerostack_spec::Bookkeeping;

    fn catalog() -> Catalog {
        let col = |n: &str| ColumnSpec {
            name: n.into(),
            server_name: n.into(),
            kind: ColumnType::String,
            optional: n != "_id",
        };
        let spec = TableSpec {
            name: "items".into(),
            schema: "public".into(),
            server_name: "items".into(),
            source: "items".into(),
            filter: None,
            projection: None,
            columns: vec![col("_id"), col("v")],
            primary_key: vec!["_id".into()],
        };
        let t = Arc::new(CompiledTable::compile(&spec).unwrap());
        let shard = Shard {
            app_id: "zero".into(),
            shard_num: 0,
        };
        let bk = Bookkeeping::default();
        Catalog::new(&[t], &shard, &bk, None).unwrap()
    }

    fn insert(secs: u32, inc: u32, id: &str, txn: Option<i64>) -> ChangeEvent {
        let mut d: Document = doc! {
            "operationType": "insert",
            "clusterTime": Timestamp { time: secs, increment: inc },
            "ns": {"db": "app", "coll": "items"},
            "documentKey": {"_id": id},
            "fullDocument": {"_id": id, "v": "x"},
        };
        if let Some(n) = txn {
            d.insert("lsid", doc! {"id": Bson::String("session".into())});
            d.insert("txnNumber", n);
        }
        ChangeEvent::from_raw(&bson::RawDocumentBuf::try_from(&d).unwrap()).unwrap()
    }

    /// A full reply: MongoDB may have more events of its last group.
    fn batch(events: Vec<ChangeEvent>) -> Batch {
        Batch {
            events,
            resume_time: None,
            drained: false,
        }
    }

    /// A reply MongoDB ended because it had nothing more.
    fn drained(events: Vec<ChangeEvent>) -> Batch {
        Batch {
            drained: true,
            ..batch(events)
        }
    }

    /// (watermark, ids inserted) per committed transaction.
    fn transactions(rec: &Recorder) -> Vec<(String, Vec<String>)> {
        let mut out = Vec::new();
        for m in &rec.messages {
            let v: Value = serde_json::from_str(m).unwrap();
            match v[0].as_str().unwrap() {
                "begin" => out.push((
                    v[2]["commitWatermark"].as_str().unwrap().to_string(),
                    Vec::new(),
                )),
                "data" => out
                    .last_mut()
                    .unwrap()
                    .1
                    .push(v[1]["new"]["_id"].as_str().unwrap().to_string()),
                "commit" => assert_eq!(
                    v[2]["watermark"].as_str(),
                    Some(out.last().unwrap().0.as_str())
                ),
                other => panic!("unexpected {other}"),
            }
        }
        out
    }

    async fn run(
        limits: StreamLimits,
        after: ClusterTime,
        replay: bool,
        batches: Vec<Batch>,
    ) -> (Recorder, Result<(), StreamEnd>) {
        let cat = catalog();
        let metrics = Metrics::new();
        let conns = Connections::default();
        let reg = conns.register("zero", 0, "streaming");
        let mut rec = Recorder::default();
        let mut result = Ok(());
        {
            let mut s = Streamer::new(&cat, &metrics, &reg.status, &limits, &mut rec, after);
            if !replay {
                s = s.replay_until(Some(ClusterTime::new(0, 0)));
            }
            for b in batches {
                result = s.on_batch(b).await;
                if result.is_err() {
                    break;
                }
            }
        }
        (rec, result)
    }

    #[tokio::test]
    async fn a_transaction_split_across_batches_is_one_zero_transaction() {
        let (rec, _) = run(
            StreamLimits::default(),
            ClusterTime::new(1, 0),
            false,
            vec![
                batch(vec![insert(5, 1, "a", Some(7)), insert(5, 1, "b", Some(7))]),
                batch(vec![insert(5, 1, "c", Some(7))]),
                batch(vec![]),
            ],
        )
        .await;
        let t = transactions(&rec);
        assert_eq!(
            t,
            vec![(
                ClusterTime::new(5, 1).to_watermark(),
                vec!["a".into(), "b".into(), "c".into()]
            )]
        );
    }

    #[tokio::test]
    async fn an_open_group_is_committed_as_soon_as_the_stream_is_caught_up() {
        let (rec, _) = run(
            StreamLimits::default(),
            ClusterTime::new(1, 0),
            false,
            vec![batch(vec![insert(5, 1, "a", None)])],
        )
        .await;
        assert!(rec.messages.is_empty(), "not yet known to be complete");
        let (rec, _) = run(
            StreamLimits::default(),
            ClusterTime::new(1, 0),
            false,
            vec![batch(vec![insert(5, 1, "a", None)]), batch(vec![])],
        )
        .await;
        assert_eq!(transactions(&rec).len(), 1);
    }

    #[tokio::test]
    async fn a_drained_reply_commits_its_last_group_at_once_and_a_full_one_does_not() {
        let limits = StreamLimits::default();
        let after = ClusterTime::new(1, 0);
        let (rec, _) = run(
            limits.clone(),
            after,
            false,
            vec![drained(vec![
                insert(5, 1, "a", None),
                insert(5, 2, "b", None),
            ])],
        )
        .await;
        let ids: Vec<Vec<String>> = transactions(&rec).into_iter().map(|t| t.1).collect();
        assert_eq!(ids, vec![vec!["a", "b"]], "both, without an empty probe");
        let (rec, _) = run(
            limits.clone(),
            after,
            false,
            vec![drained(vec![insert(5, 1, "a", Some(3))])],
        )
        .await;
        assert_eq!(transactions(&rec).len(), 1, "a transaction too");
        let (rec, _) = run(
            limits,
            after,
            false,
            vec![
                batch(vec![insert(5, 1, "a", None), insert(6, 1, "b", None)]),
                drained(vec![insert(6, 1, "c", None)]),
            ],
        )
        .await;
        let t = transactions(&rec);
        let ids: Vec<Vec<String>> = t.iter().map(|t| t.1.clone()).collect();
        assert_eq!(
            ids,
            vec![vec!["a", "b", "c"]],
            "one commit: the full reply's last cluster time was held until the drained one"
        );
        assert_eq!(t[0].0, ClusterTime::new(6, 1).to_watermark());
    }

    #[tokio::test]
    async fn a_backlog_is_coalesced_up_to_the_row_limit_and_events_at_or_before_the_resume_point_are_skipped()
     {
        let limits = StreamLimits {
            max_rows_per_transaction: 3,
            ..StreamLimits::default()
        };
        let events = (1..=8)
            .map(|i| insert(10, i, &format!("r{i}"), None))
            .collect();
        let (rec, _) = run(
            limits,
            ClusterTime::new(10, 1),
            false,
            vec![batch(events), batch(vec![])],
        )
        .await;
        let t = transactions(&rec);
        let ids: Vec<Vec<String>> = t.iter().map(|(_, ids)| ids.clone()).collect();
        assert_eq!(
            ids,
            vec![vec!["r2", "r3", "r4"], vec!["r5", "r6", "r7"], vec!["r8"]]
        );
        assert_eq!(
            t[0].0,
            ClusterTime::new(10, 4).to_watermark(),
            "the last group's watermark"
        );
    }

    #[tokio::test]
    async fn a_replay_commits_every_group_so_earlier_watermarks_reappear() {
        let events = (1..=4)
            .map(|i| insert(10, i, &format!("r{i}"), None))
            .collect();
        let (rec, _) = run(
            StreamLimits::default(),
            ClusterTime::new(1, 0),
            true,
            vec![batch(events), batch(vec![])],
        )
        .await;
        assert_eq!(transactions(&rec).len(), 4);
        assert_eq!(rec.flushes, 2, "once per batch, not once per transaction");
    }

    #[tokio::test]
    async fn an_idle_stream_commits_an_empty_transaction_just_before_the_resume_time() {
        let limits = StreamLimits {
            keepalive_ms: 0,
            ..StreamLimits::default()
        };
        let idle = |secs| Batch {
            events: vec![],
            resume_time: Some(ClusterTime::new(secs, 0)),
            drained: true,
        };
        let (rec, _) = run(
            limits,
            ClusterTime::new(10, 0),
            false,
            vec![idle(10), idle(20)],
        )
        .await;
        let t = transactions(&rec);
        assert_eq!(
            t,
            vec![(ClusterTime::new(20, 0).prev().to_watermark(), vec![])],
            "none at or before the last commit"
        );
    }

    #[tokio::test]
    async fn dropping_a_mapped_collection_requires_a_reset() {
        let drop = ChangeEvent::from_raw(
            &bson::RawDocumentBuf::try_from(&doc! {
                "operationType": "drop", "clusterTime": Timestamp { time: 9, increment: 1 }, "ns": {"db": "app", "coll": "items"},
            })
            .unwrap(),
        )
        .unwrap();
        let (rec, end) = run(
            StreamLimits::default(),
            ClusterTime::new(1, 0),
            false,
            vec![batch(vec![insert(8, 1, "a", None), drop])],
        )
        .await;
        assert!(matches!(end, Err(StreamEnd::ResetRequired(_))));
        let Err(StreamEnd::ResetRequired(reason)) = end else {
            unreachable!()
        };
        assert_eq!(
            reason,
            ResetReason::CollectionInvalidated {
                operation: "drop".into(),
                collection: Some("items".into()),
            }
        );
        assert_eq!(reason.metric_label(), "collection-invalidated");
        assert_eq!(
            transactions(&rec).len(),
            1,
            "what came before the drop is committed first"
        );
    }

    #[tokio::test]
    async fn renaming_a_collection_onto_a_mapped_name_requires_a_reset() {
        let rename = ChangeEvent::from_raw(
            &bson::RawDocumentBuf::try_from(&doc! {
                "operationType": "rename", "clusterTime": Timestamp { time: 9, increment: 1 },
                "ns": {"db": "app", "coll": "items_tmp"}, "to": {"db": "app", "coll": "items"},
            })
            .unwrap(),
        )
        .unwrap();
        let (_, end) = run(
            StreamLimits::default(),
            ClusterTime::new(1, 0),
            false,
            vec![batch(vec![rename])],
        )
        .await;
        let Err(StreamEnd::ResetRequired(reason)) = end else {
            panic!("expected a reset, got {end:?}")
        };
        assert_eq!(
            reason.to_string(),
            "MongoDB reported `rename` for items (renamed from items_tmp); the replica must be rebuilt"
        );
    }

    #[tokio::test]
    async fn a_transaction_larger_than_the_buffer_is_streamed_whole() {
        let limits = StreamLimits {
            max_bytes_per_transaction: 300,
            ..StreamLimits::default()
        };
        let first = vec![insert(3, 1, "before", None)];
        let big: Vec<ChangeEvent> = (0..10)
            .map(|i| insert(4, 1, &format!("t{i}"), Some(1)))
            .collect();
        let (rec, _) = run(
            limits,
            ClusterTime::new(1, 0),
            false,
            vec![batch(first), batch(big), batch(vec![])],
        )
        .await;
        let t = transactions(&rec);
        assert_eq!(t.len(), 2);
        assert_eq!(t[1].1.len(), 10, "never split");
        assert_eq!(t[1].0, ClusterTime::new(4, 1).to_watermark());
    }
}
