//! Initial sync: the first transaction on a connection that has no `lastWatermark`.
//!
//! The change stream's position P is recorded *before* any row is read, the snapshot is sent as
//! one transaction with watermark P, and streaming later resumes from P. Writes made while the
//! snapshot runs are therefore replayed after it; inserts are upserts and updates carry whole
//! rows, so the replica converges. (The earlier TypeScript source started its stream after the
//! snapshot and lost those writes.) Rows are written to the socket as they are read, never
//! buffered whole.
//!
//! Each collection is read with one `find`. When every table fed by the collection has a
//! filter, the `find` asks for `$or` of those filters ([`find_filter`]), so documents that no
//! table keeps (in a discriminated union, the other kinds) never leave MongoDB. Each document is
//! still checked against each table's filter here, so the rows are the same either way.

use std::time::{Duration, Instant};

use bson::{Bson, Document, RawDocumentBuf, doc};
use futures::TryStreamExt;
use mongodb::Database;
use mongodb::options::ReadConcern;
use tracing::{debug, info};

use crate::config::streaming::FullDocument;
use crate::connection_status::{ConnectionStatus, SnapshotProgress};
use crate::metrics::Metrics;
use crate::mongo::change_stream::{ChangeCursor, ChangeError, Images, Start};
use crate::mongo::cluster_time::ClusterTime;
use crate::mongo::replica_registry::ReplicaRegistry;
use crate::pipeline::changes::snapshot_rows;
use crate::replication::row_changes::row_of;
use crate::rows::{CompiledTable, Fields};
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
        Images {
            full_document: FullDocument::UpdateLookup,
            before_change: false,
        },
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
    // The collection's size, from its metadata: with a pushed-down filter it is an upper bound
    // of what is read (counting the matching documents would cost MongoDB a scan of its own).
    let estimated = coll.estimated_document_count().await.unwrap_or(0);
    let tables: Vec<_> = ctx.catalog.tables_of(collection).collect();
    let filter = find_filter_of(tables.iter().map(|t| match &t.pipeline {
        Some(p) => p.find_query(),
        None => t.rows.filter_query(),
    }));
    if !filter.is_empty() {
        debug!(collection, filter = %filter, "initial sync reads only documents some table keeps");
    }
    let mut cursor = coll.find(filter).batch_size(ctx.batch_size).await?;
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
    while let Some(raw) = cursor.try_next().await? {
        // Pipeline tables: their rows one at a time (an `$unwind` of 10,000 elements is never
        // held as 10,000 rows), each fed before the next is made.
        for t in &tables {
            let Some(p) = &t.pipeline else { continue };
            for r in snapshot_rows(p, &raw, ctx.metrics) {
                down.feed(messages::insert(&t.relation, &r.row.values))
                    .await?;
                ctx.metrics.snapshot_rows.inc();
            }
        }
        let doc = Fields::of(&raw);
        for t in tables.iter().filter(|t| t.pipeline.is_none()) {
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

/// The `find` filter of a collection whose documents feed `tables`: `$or` of their filters, or
/// `{}` (every document) when a table keeps every document, since the others' filters would
/// then only cost MongoDB time.
pub fn find_filter<'a>(tables: impl IntoIterator<Item = &'a CompiledTable>) -> Document {
    find_filter_of(tables.into_iter().map(CompiledTable::filter_query))
}

/// [`find_filter`] over each table's query (`None`: it keeps every document); a pipeline
/// table's is its leading `$match`.
pub fn find_filter_of<'a>(queries: impl IntoIterator<Item = Option<&'a Document>>) -> Document {
    let mut kept = Vec::new();
    for query in queries {
        match query {
            Some(query) => kept.push(Bson::Document(query.clone())),
            None => return Document::new(),
        }
    }
    if kept.is_empty() {
        return Document::new();
    }
    doc! {"$or": kept}
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use zerostack_spec::filter::Filter;
    use zerostack_spec::schema::ColumnType;
    use zerostack_spec::{ColumnSpec, TableSpec};

    use super::*;

    fn table(name: &str, filter: Option<serde_json::Value>) -> CompiledTable {
        let col = |n: &str| ColumnSpec {
            name: n.into(),
            server_name: n.into(),
            kind: ColumnType::String,
            optional: n != "_id",
        };
        CompiledTable::compile(&TableSpec {
            name: name.into(),
            schema: "public".into(),
            server_name: name.into(),
            source: "rooms".into(),
            filter: filter.map(|f| Filter::from_json(&f).unwrap()),
            projection: None,
            columns: vec![col("_id"), col("t")],
            primary_key: vec!["_id".into()],
        })
        .unwrap()
    }

    #[test]
    fn a_union_whose_tables_all_filter_reads_only_what_they_keep() {
        let tables = [
            table("chats", Some(json!({"t": {"$eq": "d"}}))),
            table("channels", Some(json!({"t": "c"}))),
            table(
                "groups",
                Some(json!({"t": {"$in": ["p"]}, "archived": {"$ne": true}})),
            ),
        ];
        assert_eq!(
            find_filter(&tables),
            doc! {"$or": [
                {"t": {"$eq": "d"}},
                {"t": {"$eq": "c"}},
                {"t": {"$in": ["p"]}, "archived": {"$ne": true}},
            ]}
        );
        assert_eq!(
            find_filter(&tables[1..2]),
            doc! {"$or": [{"t": {"$eq": "c"}}]},
            "one filtered table is pushed down too"
        );
    }

    #[test]
    fn a_table_that_keeps_every_document_means_no_pushdown() {
        let filtered = table("channels", Some(json!({"t": "c"})));
        assert_eq!(
            find_filter([&filtered, &table("rooms", None)]),
            doc! {},
            "a table without a filter"
        );
        assert_eq!(
            find_filter([&table("all", Some(json!({}))), &filtered]),
            doc! {},
            "a table whose filter is empty"
        );
        assert_eq!(find_filter([] as [&CompiledTable; 0]), doc! {});
    }
}
