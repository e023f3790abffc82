//! Carrying out an in-place schema change ([`zerostack_spec::schema_diff`] steps) on a resumed
//! connection.
//!
//! The replica reflects every change at or before its resume point R, shaped by the old
//! configuration. The change is made at one point T, in one Zero transaction, so that it fits
//! exactly between the events before and after T:
//!
//! 1. *Catch-up*: the change stream is read from R with the **old** catalog, as ordinary
//!    streaming, until a `getMore` comes back empty. Its post-batch resume time says every event
//!    before it has been read, so T is the time just before it (as for a keepalive): every event
//!    at or before T is now committed downstream, and nothing after T is.
//! 2. *The change*: one transaction with watermark T: drops, `create-table` + unique key index,
//!    `add-column`, then the rows, read from MongoDB with `readConcern: snapshot` at
//!    `atClusterTime: T` — the data exactly as of T. A new table gets every row (`insert`); a
//!    table with new columns gets every row that has a value in one of them (`update`;
//!    zero-cache reloads its table spec on `add-column`, which leaves the column null, so the
//!    other rows are already right); a table whose filter changed gets the rows it now keeps (`insert`) and
//!    deletes of those only the old filter kept. Rows are written as they are read, in the
//!    initial sync's batch size, never held whole.
//! 3. The session then streams from T with the **new** catalog (events at or before T are
//!    skipped, as on any resume).
//!
//! The new configuration becomes the replica's (`config_history`) only once zero-cache has
//! committed the transaction; until then it is `pending`, so a crash anywhere re-applies it.

use std::time::{Duration, Instant};

use bson::{RawDocumentBuf, doc};
use serde_json::Map;
use tracing::info;

use crate::config::inputs::Loaded;
use crate::config::streaming::{FullDocument, StreamLimits};
use crate::connection_status::{ConnectionStatus, SnapshotProgress};
use crate::mongo::change_stream::{ChangeCursor, ChangeError, Images, Start, Wait};
use crate::mongo::cluster_time::ClusterTime;
use crate::mongo::images;
use crate::pipeline::changes::snapshot_rows;
use crate::replication::config_history::{ConfigHistory, StoredConfig};
use crate::replication::initial_sync::find_filter_of;
use crate::replication::reset::ResetReason;
use crate::replication::row_changes::row_of;
use crate::replication::schema_status::ChangeState;
use crate::replication::transactions::{StreamEnd, Streamer};
use crate::rows::Fields;
use crate::server_state::ServerState;
use crate::zero::catalog::{Catalog, PublishedTable, Shard};
use crate::zero::downstream::{Downstream, DownstreamClosed};
use crate::zero::messages;
use zerostack_spec::schema_diff::Step;

/// Why applying stopped short of its commit.
#[derive(Debug)]
pub enum ApplyEnd {
    Closed,
    Reset(ResetReason),
    /// zero-cache resumes on a new connection, which applies the change again.
    Failed(String),
}

impl From<DownstreamClosed> for ApplyEnd {
    fn from(_: DownstreamClosed) -> Self {
        ApplyEnd::Closed
    }
}

impl From<mongodb::error::Error> for ApplyEnd {
    fn from(e: mongodb::error::Error) -> Self {
        ApplyEnd::Failed(format!("schema change: reading MongoDB failed: {e}"))
    }
}

/// Everything one in-place change needs.
pub struct Change<'a> {
    pub state: &'a ServerState,
    pub shard: &'a Shard,
    pub replica_version: &'a str,
    pub resume_point: &'a str,
    /// The configuration the replica has, compiled.
    pub old: &'a Loaded,
    pub old_catalog: &'a Catalog,
    pub new_catalog: &'a Catalog,
    pub steps: &'a [Step],
    pub status: &'a ConnectionStatus,
    pub history: &'a ConfigHistory,
}

/// How many empty `getMore`s the catch-up waits for a resume time past its last commit.
const CATCH_UP_EMPTY_BATCHES: u32 = 120;
/// How long each of those waits.
const CATCH_UP_POLL: Duration = Duration::from_millis(250);

/// Catches up, then sends the change's transaction; returns its point T (the new resume point).
pub async fn apply<D: Downstream>(
    c: &Change<'_>,
    down: &mut D,
    resume_at: ClusterTime,
) -> Result<ClusterTime, ApplyEnd> {
    let at = catch_up(c, down, resume_at).await?;
    let w = at.to_watermark();
    c.history
        .set_pending(
            c.replica_version,
            c.shard,
            &StoredConfig::of(&c.state.loaded.config),
            &w,
        )
        .await
        .map_err(|e| ApplyEnd::Failed(e.to_string()))?;
    c.state.schema_changes.update(c.replica_version, |s| {
        s.watermark = Some(w.clone());
    });
    info!(watermark = %w, steps = c.steps.len(), "schema change: applying it in place");

    down.feed(messages::begin(&w)).await?;
    for step in c.steps {
        match step {
            Step::DropTable { schema, name } => {
                down.feed(messages::drop_table(schema, name)).await?
            }
            Step::DropColumn { table, column } => {
                down.feed(table_of(c.new_catalog, table)?.def.drop_column(column))
                    .await?
            }
            Step::CreateTable { table } => {
                let t = table_of(c.new_catalog, table)?;
                down.feed(t.def.create_table()).await?;
                down.feed(t.def.create_key_index()).await?;
            }
            Step::AddColumn { table, column } => {
                let t = table_of(c.new_catalog, table)?;
                let msg = t.def.add_column(column).ok_or_else(|| {
                    ApplyEnd::Failed(format!("schema change: {table} has no column {column}"))
                })?;
                down.feed(msg).await?;
            }
            Step::Permissions => {
                let p = &c.new_catalog.permissions;
                down.feed(messages::insert(
                    &p.relation_json(),
                    &c.new_catalog.permissions_row,
                ))
                .await?;
            }
            Step::Refill { .. } => {}
        }
    }
    let rows = copy_rows(c, down, at).await?;
    down.feed(messages::commit(&w, at.epoch_ms())).await?;
    down.flush().await?;
    info!(watermark = %w, rows, "schema change: transaction sent");
    c.status.update(|v| {
        v.last_watermark_sent = Some(w.clone());
        if let Some(s) = v.snapshot.as_mut() {
            s.done = true;
        }
    });
    c.state.schema_changes.update(c.replica_version, |s| {
        s.state = Some(ChangeState::Sent);
        s.rows = Some(rows);
    });
    Ok(at)
}

/// Streams from `resume_at` with the old catalog until caught up; returns the point T.
async fn catch_up<D: Downstream>(
    c: &Change<'_>,
    down: &mut D,
    resume_at: ClusterTime,
) -> Result<ClusterTime, ApplyEnd> {
    let s = c.state;
    let collections = c.old_catalog.collections();
    let needs = images::needed(&c.old.tables, &collections, s.settings.full_document);
    images::check(&s.db, &needs)
        .await
        .map_err(|e| ApplyEnd::Failed(e.to_string()))?;
    // The change's own transaction takes the place of a keepalive.
    let limits = StreamLimits {
        keepalive_ms: u64::MAX,
        ..s.settings.stream.clone()
    };
    let mut streamer = Streamer::new(
        c.old_catalog,
        &s.metrics,
        c.status,
        &limits,
        down,
        resume_at,
    )
    .post_images(s.settings.full_document != FullDocument::UpdateLookup);
    let mut cursor = ChangeCursor::open(
        &s.db,
        &collections,
        Start::At(resume_at),
        Images {
            full_document: s.settings.full_document,
            before_change: images::pre_images_needed(&c.old.tables),
        },
        s.settings.stream.read_batch_size,
        Duration::from_millis(s.settings.stream.probe_ms),
    )
    .await
    .map_err(|e| change_end(c, e))?;
    streamer.set_replay_until(cursor.opened_at());
    let mut wait = Wait::Probe;
    let mut empty_batches = 0;
    let at = loop {
        let batch = match cursor.next_batch(wait).await {
            Ok(b) => b,
            Err(e) => {
                cursor.close().await;
                return Err(change_end(c, e));
            }
        };
        let empty = batch.events.is_empty();
        let resume_time = batch.resume_time;
        if let Err(end) = streamer.on_batch(batch).await {
            cursor.close().await;
            return Err(match end {
                StreamEnd::Closed => ApplyEnd::Closed,
                StreamEnd::ResetRequired(r) => ApplyEnd::Reset(r),
                StreamEnd::Failed(e) => change_end(c, e),
            });
        }
        if !empty {
            wait = Wait::Probe;
            continue;
        }
        // Everything strictly before the post-batch resume time is final and has been read
        // (and, the batch being empty, committed).
        if let Some(t) = resume_time.map(ClusterTime::prev)
            && t > streamer.last_commit()
        {
            break t;
        }
        empty_batches += 1;
        if empty_batches > CATCH_UP_EMPTY_BATCHES {
            cursor.close().await;
            return Err(ApplyEnd::Failed(
                "schema change: the change stream's resume time did not advance".into(),
            ));
        }
        wait = Wait::Idle(CATCH_UP_POLL);
    };
    cursor.close().await;
    Ok(at)
}

fn change_end(c: &Change<'_>, e: ChangeError) -> ApplyEnd {
    match e {
        ChangeError::HistoryLost => ApplyEnd::Reset(ResetReason::HistoryLost {
            resume_point: c.resume_point.to_string(),
        }),
        ChangeError::TooLarge(what) => {
            ApplyEnd::Reset(ResetReason::OversizedEvent { document: what })
        }
        e => ApplyEnd::Failed(e.to_string()),
    }
}

fn table_of<'c>(catalog: &'c Catalog, zero_name: &str) -> Result<&'c PublishedTable, ApplyEnd> {
    catalog
        .tables
        .iter()
        .find(|t| t.rows.spec().name == zero_name)
        .ok_or_else(|| ApplyEnd::Failed(format!("schema change: no table {zero_name}")))
}

/// How the rows of one table are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fill {
    /// A new table: every row.
    Insert,
    /// Existing rows, rewritten whole (a changed projection).
    Update,
    /// Only new columns: the rows with a value in one of them, rewritten whole.
    NewColumns,
    /// A changed filter: the rows now kept, and deletes of those only the old filter kept.
    Filtered,
}

struct Job<'c> {
    table: &'c PublishedTable,
    old: Option<&'c PublishedTable>,
    fill: Fill,
    /// The columns added to the table (server names).
    added: Vec<&'c str>,
}

impl Job<'_> {
    /// Whether `row` must be written: with only new columns, a row whose new columns are all
    /// null is already right (`add-column` left them null).
    fn writes(&self, row: &Map<String, serde_json::Value>) -> bool {
        self.fill != Fill::NewColumns
            || self
                .added
                .iter()
                .any(|c| row.get(*c).is_some_and(|v| !v.is_null()))
    }
}

/// The rows of every table the steps need, collection by collection; returns how many.
async fn copy_rows<D: Downstream>(
    c: &Change<'_>,
    down: &mut D,
    at: ClusterTime,
) -> Result<u64, ApplyEnd> {
    let mut jobs: Vec<Job<'_>> = Vec::new();
    for step in c.steps {
        match step {
            Step::CreateTable { table } => jobs.push(Job {
                table: table_of(c.new_catalog, table)?,
                old: None,
                fill: Fill::Insert,
                added: Vec::new(),
            }),
            Step::Refill {
                table,
                filter_changed,
                only_new_columns,
                ..
            } => {
                let t = table_of(c.new_catalog, table)?;
                let old = c
                    .old_catalog
                    .tables
                    .iter()
                    .find(|o| o.def.schema == t.def.schema && o.def.name == t.def.name);
                jobs.push(Job {
                    table: t,
                    old,
                    fill: if *filter_changed {
                        Fill::Filtered
                    } else if *only_new_columns {
                        Fill::NewColumns
                    } else {
                        Fill::Update
                    },
                    added: c
                        .steps
                        .iter()
                        .filter_map(|s| match s {
                            Step::AddColumn { table: t, column } if t == table => {
                                Some(column.as_str())
                            }
                            _ => None,
                        })
                        .collect(),
                });
            }
            _ => {}
        }
    }
    let mut collections: Vec<&str> = jobs
        .iter()
        .map(|j| j.table.rows.spec().source.as_str())
        .collect();
    collections.sort();
    collections.dedup();
    let started = Instant::now();
    let mut total = 0u64;
    for collection in collections {
        let of: Vec<&Job<'_>> = jobs
            .iter()
            .filter(|j| j.table.rows.spec().source == collection)
            .collect();
        total += copy_collection(c, down, at, collection, &of, started, total).await?;
    }
    Ok(total)
}

fn query_of(t: &PublishedTable) -> Option<&bson::Document> {
    match &t.pipeline {
        Some(p) => p.find_query(),
        None => t.rows.filter_query(),
    }
}

async fn copy_collection<D: Downstream>(
    c: &Change<'_>,
    down: &mut D,
    at: ClusterTime,
    collection: &str,
    jobs: &[&Job<'_>],
    started: Instant,
    rows_before: u64,
) -> Result<u64, ApplyEnd> {
    let s = c.state;
    let mut queries: Vec<Option<&bson::Document>> =
        jobs.iter().map(|j| query_of(j.table)).collect();
    for j in jobs.iter().filter(|j| j.fill == Fill::Filtered) {
        // The documents only the old filter kept must be read too: their rows are deleted.
        queries.push(j.old.and_then(query_of));
    }
    let filter = find_filter_of(queries);
    let mut session = s.db.client().start_session().await?;
    let mut cursor =
        s.db.run_cursor_command(doc! {
            "find": collection,
            "filter": filter,
            "batchSize": s.settings.snapshot_batch_size.max(1) as i64,
            "readConcern": {"level": "snapshot", "atClusterTime": at.to_timestamp()},
        })
        .session(&mut session)
        .await?
        .with_type::<RawDocumentBuf>();
    let mut rows = 0u64;
    let mut last_report = Instant::now();
    let metrics = &s.metrics;
    while let Some(raw) = cursor.next(&mut session).await {
        let raw = raw?;
        let doc = Fields::of(&raw);
        for j in jobs {
            let t = j.table;
            if let Some(p) = &t.pipeline {
                for r in snapshot_rows(p, &raw, metrics) {
                    if !j.writes(&r.row.values) {
                        continue;
                    }
                    down.feed(match j.fill {
                        Fill::Update | Fill::NewColumns => {
                            messages::update(&t.relation, &r.row.values)
                        }
                        _ => messages::insert(&t.relation, &r.row.values),
                    })
                    .await?;
                    rows += 1;
                    metrics.snapshot_rows.inc();
                }
                continue;
            }
            let kept = if t.rows.matches(&doc) {
                row_of(t, &doc, metrics)
            } else {
                None
            };
            match (kept, j.fill) {
                (Some(row), _) if !j.writes(&row) => continue,
                (Some(row), Fill::Update | Fill::NewColumns) => {
                    down.feed(messages::update(&t.relation, &row)).await?
                }
                (Some(row), _) => down.feed(messages::insert(&t.relation, &row)).await?,
                (None, Fill::Filtered) => {
                    let Some(old) = j.old.filter(|o| o.rows.matches(&doc)) else {
                        continue;
                    };
                    let Some(row) = row_of(old, &doc, metrics) else {
                        continue;
                    };
                    let key: Map<_, _> = row
                        .into_iter()
                        .filter(|(k, _)| old.def.primary_key.contains(k))
                        .collect();
                    down.feed(messages::delete(&t.relation, &key)).await?
                }
                (None, _) => continue,
            }
            rows += 1;
            metrics.snapshot_rows.inc();
        }
        if last_report.elapsed() >= Duration::from_secs(2) {
            report(c, collection, rows_before + rows, started, false);
            last_report = Instant::now();
        }
    }
    report(c, collection, rows_before + rows, started, true);
    Ok(rows)
}

fn report(c: &Change<'_>, collection: &str, rows: u64, started: Instant, finished: bool) {
    let rate = rows as f64 / started.elapsed().as_secs_f64().max(1e-9);
    c.status.update(|v| {
        v.snapshot = Some(SnapshotProgress {
            collection: collection.to_string(),
            rows_done: rows,
            rows_estimated: rows,
            rows_per_second: rate,
            done: false,
        })
    });
    c.state
        .schema_changes
        .update(c.replica_version, |s| s.rows = Some(rows));
    info!(
        collection,
        rows,
        rows_per_second = format!("{rate:.0}"),
        finished,
        "schema change progress"
    );
}
