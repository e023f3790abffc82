//! Initial sync: the first transaction on a connection that has no `lastWatermark`.
//!
//! The change stream's position P is recorded *before* any row is read, the snapshot is sent as
//! one transaction with watermark P, and streaming later resumes from P. Writes made while the
//! snapshot runs are therefore replayed after it; inserts are upserts and updates carry whole
//! rows, so the replica converges. (The earlier TypeScript source started its stream after the
//! snapshot and lost those writes.) Rows are written to the socket as they are read, never
//! buffered whole.

use std::time::{Duration, Instant};

use bson::RawDocumentBuf;
use futures::TryStreamExt;
use mongodb::Database;
use mongodb::options::ReadConcern;
use tracing::info;

use crate::config::streaming::FullDocument;
use crate::connection_status::{ConnectionStatus, SnapshotProgress};
use crate::metrics::Metrics;
use crate::mongo::change_stream::{ChangeCursor, ChangeError, Start};
use crate::mongo::cluster_time::ClusterTime;
use crate::mongo::replica_registry::ReplicaRegistry;
use crate::replication::row_changes::row_of;
use crate::rows::Fields;
use crate::zero::catalog::{Catalog, Shard};
use crate::zero::downstream::{Downstream, DownstreamClosed};
use crate::zero::messages;

#[derive(Debug, thiserror::Error)]
pub enum InitialSyncError {
    #[error(transparent)]
    Closed(#[from] DownstreamClosed),
    #[error(transparent)]
    Change(#[from] ChangeError),
    #[error("initial sync failed reading MongoDB: {0}")]
    Mongo(#[from] mongodb::error::Error),
    #[error("MongoDB did not report a change stream position")]
    NoPosition,
}

pub struct InitialSyncContext<'a> {
    pub db: &'a Database,
    pub catalog: &'a Catalog,
    pub metrics: &'a Metrics,
    pub status: &'a ConnectionStatus,
    pub registry: &'a ReplicaRegistry,
    pub config_hash: &'a str,
    pub shard: &'a Shard,
    pub batch_size: u32,
}

/// Sends the snapshot transaction; returns its watermark (the new replica version).
pub async fn initial_sync<D: Downstream>(
    ctx: &InitialSyncContext<'_>,
    down: &mut D,
) -> Result<ClusterTime, InitialSyncError> {
    let collections = ctx.catalog.collections();
    let cursor = ChangeCursor::open(
        ctx.db,
        &collections,
        Start::Now,
        FullDocument::UpdateLookup,
        1,
        Duration::from_millis(1),
    )
    .await?;
    let position = cursor.resume_time();
    cursor.close().await;
    // The first post-batch token is a high-water mark: a write right after it may carry its very
    // time, so the snapshot's watermark is the time just before.
    let at = position.ok_or(InitialSyncError::NoPosition)?.prev();
    let watermark = at.to_watermark();
    info!(watermark = %watermark, tables = ctx.catalog.tables.len(), "initial sync started");

    down.feed(messages::begin(&watermark)).await?;
    for t in &ctx.catalog.tables {
        down.feed(t.def.create_table()).await?;
        down.feed(t.def.create_key_index()).await?;
    }
    let p = &ctx.catalog.permissions;
    down.feed(p.create_table()).await?;
    down.feed(p.create_key_index()).await?;
    down.feed(messages::insert(
        &p.relation_json(),
        &ctx.catalog.permissions_row,
    ))
    .await?;

    let started = Instant::now();
    let mut total_rows = 0u64;
    for collection in &collections {
        total_rows += copy_collection(ctx, collection, down, started, total_rows).await?;
    }

    ctx.registry
        .record(&watermark, ctx.config_hash, ctx.shard)
        .await?;
    down.feed(messages::commit(&watermark, at.epoch_ms()))
        .await?;
    down.flush().await?;
    let secs = started.elapsed().as_secs_f64();
    info!(
        rows = total_rows,
        seconds = format!("{secs:.2}"),
        rows_per_second = format!("{:.0}", total_rows as f64 / secs.max(1e-9)),
        "initial sync committed"
    );
    ctx.status.update(|v| {
        if let Some(s) = v.snapshot.as_mut() {
            s.done = true;
        }
        v.last_watermark_sent = Some(watermark.clone());
    });
    Ok(at)
}

async fn copy_collection<D: Downstream>(
    ctx: &InitialSyncContext<'_>,
    collection: &str,
    down: &mut D,
    started: Instant,
    rows_before: u64,
) -> Result<u64, InitialSyncError> {
    let coll = ctx.db.collection_with_options::<RawDocumentBuf>(
        collection,
        mongodb::options::CollectionOptions::builder()
            .read_concern(ReadConcern::majority())
            .build(),
    );
    let estimated = coll.estimated_document_count().await.unwrap_or(0);
    let tables: Vec<_> = ctx.catalog.tables_of(collection).collect();
    let mut cursor = coll.find(bson::doc! {}).batch_size(ctx.batch_size).await?;
    let mut done = 0u64;
    let mut last_report = Instant::now();
    let report = |done: u64, finished: bool| {
        let rate = (rows_before + done) as f64 / started.elapsed().as_secs_f64().max(1e-9);
        ctx.status.update(|v| {
            v.snapshot = Some(SnapshotProgress {
                collection: collection.to_string(),
                rows_done: rows_before + done,
                rows_estimated: rows_before + estimated.max(done),
                rows_per_second: rate,
                done: false,
            })
        });
        info!(
            collection,
            rows_done = done,
            rows_estimated = estimated,
            rows_per_second = format!("{rate:.0}"),
            finished,
            "initial sync progress"
        );
    };
    while let Some(doc) = cursor.try_next().await? {
        let doc = Fields::of(&doc);
        for t in &tables {
            if t.rows.matches(&doc)
                && let Some(row) = row_of(t, &doc, ctx.metrics)
            {
                down.feed(messages::insert(&t.relation, &row)).await?;
                ctx.metrics.snapshot_rows.inc();
            }
        }
        done += 1;
        if last_report.elapsed() >= Duration::from_secs(2) {
            report(done, false);
            last_report = Instant::now();
        }
    }
    report(done, true);
    Ok(done)
}
