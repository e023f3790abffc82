//! Turns one MongoDB change event into Zero row changes, for every table its collection feeds.
//!
//! This is where a document whose discriminator changed moves between tables: on an update or a
//! replace, each table of the collection gets either an upsert (the document matches its filter)
//! or a delete by key (it does not, so it may have left). Inserts only upsert: a new document
//! cannot already be in any table. Deletes go to every table of the collection; deleting a row
//! zero-cache does not have is harmless.
//!
//! A table whose primary key is not derived from `_id` cannot find its row from a delete's
//! `documentKey`, nor the old row of an update that changed the key: both come from the
//! pre-image (`fullDocumentBeforeChange`), which `mongo::images` makes sure the collection keeps.
//! When an event lacks the image it needs, the answer is a reset, never a skipped row.
//!
//! Pipeline tables (several rows per document) send the difference between the rows of the
//! pre- and post-image instead (`crate::pipeline::changes`); the same reset answers a missing
//! pre-image.

use serde_json::{Map, Value};
use tracing::{debug, warn};

use crate::metrics::Metrics;
use crate::mongo::change_event::{ChangeEvent, Operation};
use crate::pipeline::changes::{Event as PipelineEvent, EventKind, event_messages};
use crate::replication::reset::ResetReason;
use crate::rows::Fields;
use crate::zero::catalog::{Catalog, PublishedTable};
use crate::zero::messages;

/// Appends the data messages for `event` to `out`; returns how many row changes it added, or
/// the reason the replica must be rebuilt when the event does not say enough to keep it equal
/// to MongoDB (a missing post-image under `post_images`, a missing pre-image where a key is not
/// derived from `_id`).
pub fn event_changes(
    catalog: &Catalog,
    event: &ChangeEvent,
    metrics: &Metrics,
    post_images: bool,
    out: &mut Vec<String>,
) -> Result<usize, ResetReason> {
    let Some(collection) = event.collection.as_deref() else {
        return Ok(0);
    };
    let before = out.len();
    let document_key = event.document_key.as_deref().map(Fields::of);
    let pre_image = event.full_document_before_change.as_deref().map(Fields::of);
    // The key of the row `table` had for this document before the change; `Err` when only a
    // pre-image could tell and there is none.
    let old_key = |table: &PublishedTable| -> Result<Option<Map<String, Value>>, ResetReason> {
        if table.key_from_document_key {
            return Ok(document_key
                .as_ref()
                .and_then(|k| table.rows.key_from_document_key(k)));
        }
        match &pre_image {
            Some(pre) => Ok(key_of_row(table, &table.rows.row(pre).values)),
            None => Err(ResetReason::PreImageMissing {
                table: table.def.name.clone(),
                collection: collection.to_string(),
                document: document_id(event),
            }),
        }
    };
    pipeline_changes(catalog, collection, event, metrics, out)?;
    match event.operation {
        Operation::Insert | Operation::Update | Operation::Replace => {
            let is_insert = event.operation == Operation::Insert;
            let Some(doc) = event.full_document.as_deref().map(Fields::of) else {
                if post_images {
                    // A post-image is written with the change itself; without it the document
                    // this update left is unknown.
                    return Err(ResetReason::PostImageMissing {
                        collection: collection.to_string(),
                        document: document_id(event),
                    });
                }
                // updateLookup found no document: it was deleted since, and the delete event
                // follows and removes its rows.
                debug!(
                    collection,
                    "update of a document deleted since; its delete follows"
                );
                return Ok(0);
            };
            for table in plain_tables(catalog, collection) {
                if table.rows.matches(&doc) {
                    let row = row_of(table, &doc, metrics);
                    if !is_insert && !table.key_from_document_key {
                        // The key may have changed: the row under the old key must go.
                        let old = old_key(table)?;
                        if let Some(old) = old
                            && row
                                .as_ref()
                                .is_none_or(|r| key_of_row(table, r).as_ref() != Some(&old))
                        {
                            out.push(messages::delete(&table.relation, &old));
                        }
                    }
                    if let Some(row) = row {
                        out.push(if is_insert {
                            messages::insert(&table.relation, &row)
                        } else {
                            messages::update(&table.relation, &row)
                        });
                    }
                } else if !is_insert {
                    let key = if table.key_from_document_key {
                        old_key(table)?.or_else(|| key_of_row(table, &table.rows.row(&doc).values))
                    } else {
                        old_key(table)?
                    };
                    push_delete(table, key, metrics, out);
                }
            }
        }
        Operation::Delete => {
            for table in plain_tables(catalog, collection) {
                push_delete(table, old_key(table)?, metrics, out);
            }
        }
        Operation::Invalidating(_) | Operation::Other(_) => {}
    }
    Ok(out.len() - before)
}

/// The tables of `collection` with a simple mapping (pipeline tables are `pipeline_changes`').
fn plain_tables<'a>(
    catalog: &'a Catalog,
    collection: &str,
) -> impl Iterator<Item = &'a PublishedTable> {
    catalog
        .tables_of(collection)
        .filter(|t| t.pipeline.is_none())
}

/// The changes of the pipeline tables of `collection`: the difference between the rows of the
/// pre-image and of the post-image (`crate::pipeline::changes`).
fn pipeline_changes(
    catalog: &Catalog,
    collection: &str,
    event: &ChangeEvent,
    metrics: &Metrics,
    out: &mut Vec<String>,
) -> Result<(), ResetReason> {
    let kind = match event.operation {
        Operation::Insert => EventKind::Insert,
        Operation::Update | Operation::Replace => EventKind::Update,
        Operation::Delete => EventKind::Delete,
        Operation::Invalidating(_) | Operation::Other(_) => return Ok(()),
    };
    for table in catalog.tables_of(collection) {
        let Some(p) = &table.pipeline else {
            continue;
        };
        let documents = PipelineEvent {
            kind,
            document_key: event.document_key.as_deref(),
            before: event.full_document_before_change.as_deref(),
            after: event.full_document.as_deref(),
        };
        event_messages(p, &table.relation, documents, metrics, out).map_err(|_| {
            ResetReason::PreImageMissing {
                table: table.def.name.clone(),
                collection: collection.to_string(),
                document: document_id(event),
            }
        })?;
    }
    Ok(())
}

/// The document's `_id` as it appears in messages (extended JSON).
fn document_id(event: &ChangeEvent) -> String {
    event
        .document_key
        .as_deref()
        .and_then(|k| k.get("_id").ok().flatten())
        .and_then(|id| bson::Bson::try_from(id).ok())
        .map_or_else(
            || "(no _id)".into(),
            |id| format!("_id {}", id.into_relaxed_extjson()),
        )
}

/// The projected row of `doc` for `table`, or None when its key does not convert (a row
/// without a key cannot be addressed, so it is the one thing that is skipped — and counted).
pub fn row_of(
    table: &PublishedTable,
    doc: &Fields<'_>,
    metrics: &Metrics,
) -> Option<Map<String, Value>> {
    let row = table.rows.row(doc);
    for c in &row.coerced {
        if metrics.coerced(&table.def.name, &c.column) {
            warn!(
                table = %table.def.name,
                column = %c.column,
                found = c.found,
                expected = c.expected.as_str(),
                "value does not fit its column; sending null (logged once per column, counted in zerostack_source_coerced_values)"
            );
        }
    }
    if table
        .def
        .primary_key
        .iter()
        .any(|k| row.values.get(k).is_none_or(Value::is_null))
    {
        metrics.unkeyed_changes.inc();
        warn!(table = %table.def.name, "document skipped: a primary-key value is missing or does not fit its column");
        return None;
    }
    Some(row.values)
}

fn key_of_row(table: &PublishedTable, row: &Map<String, Value>) -> Option<Map<String, Value>> {
    table
        .def
        .primary_key
        .iter()
        .map(|k| match row.get(k) {
            Some(v) if !v.is_null() => Some((k.clone(), v.clone())),
            _ => None,
        })
        .collect()
}

fn push_delete(
    table: &PublishedTable,
    key: Option<Map<String, Value>>,
    metrics: &Metrics,
    out: &mut Vec<String>,
) {
    match key {
        Some(key) => out.push(messages::delete(&table.relation, &key)),
        None => {
            metrics.unkeyed_changes.inc();
            // Only a document whose key never fitted its columns (so it never had a row) gets
            // here: a key that only a pre-image could give asks for a reset instead.
            warn!(table = %table.def.name, "delete skipped: the document has no key value for this table, so it has no row");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use bson::{Document, Timestamp, doc};
    use zerostack_spec::schema::ColumnType;
    use zerostack_spec::{Bookkeeping, ColumnSpec, TableSpec};

    use super::*;
    use crate::rows::CompiledTable;
    use crate::zero::catalog::Shard;

    /// `articles`, keyed by `slug` (not derived from `_id`).
    fn catalog() -> Catalog {
        let col = |n: &str| ColumnSpec {
            name: n.into(),
            server_name: n.into(),
            kind: ColumnType::String,
            optional: n == "title",
        };
        let spec = TableSpec {
            name: "articles".into(),
            schema: "public".into(),
            server_name: "articles".into(),
            source: "articles".into(),
            filter: None,
            projection: None,
            columns: vec![col("slug"), col("title")],
            primary_key: vec!["slug".into()],
        };
        let t = Arc::new(CompiledTable::compile(&spec).unwrap());
        assert!(!t.key_from_id());
        let shard = Shard {
            app_id: "zero".into(),
            shard_num: 0,
        };
        Catalog::new(&[t], &shard, &Bookkeeping::default(), None).unwrap()
    }

    fn event(op: &str, full: Option<Document>, pre: Option<Document>) -> ChangeEvent {
        let mut d = doc! {
            "operationType": op, "clusterTime": Timestamp { time: 5, increment: 1 },
            "ns": {"db": "app", "coll": "articles"}, "documentKey": {"_id": 7},
        };
        if let Some(f) = full {
            d.insert("fullDocument", f);
        }
        if let Some(p) = pre {
            d.insert("fullDocumentBeforeChange", p);
        }
        ChangeEvent::from_raw(&bson::RawDocumentBuf::try_from(&d).unwrap()).unwrap()
    }

    fn changes(e: &ChangeEvent, post_images: bool) -> Result<Vec<Value>, ResetReason> {
        let mut out = Vec::new();
        event_changes(&catalog(), e, &Metrics::new(), post_images, &mut out)?;
        Ok(out
            .iter()
            .map(|m| serde_json::from_str::<Value>(m).unwrap()[1].clone())
            .collect())
    }

    #[test]
    fn a_delete_finds_a_non_id_key_in_the_pre_image_or_asks_for_a_reset() {
        let with = event("delete", None, Some(doc! {"_id": 7, "slug": "a"}));
        let out = changes(&with, false).unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0]["tag"], "delete");
        assert_eq!(out[0]["key"], serde_json::json!({"slug": "a"}));
        let without = event("delete", None, None);
        assert!(matches!(
            changes(&without, false),
            Err(ResetReason::PreImageMissing { .. })
        ));
    }

    #[test]
    fn a_key_change_deletes_the_old_row() {
        let e = event(
            "update",
            Some(doc! {"_id": 7, "slug": "b2", "title": "B"}),
            Some(doc! {"_id": 7, "slug": "b", "title": "B"}),
        );
        let out = changes(&e, false).unwrap();
        let tags: Vec<&str> = out.iter().map(|d| d["tag"].as_str().unwrap()).collect();
        assert_eq!(tags, ["delete", "update"]);
        assert_eq!(out[0]["key"], serde_json::json!({"slug": "b"}));
        let same = event(
            "update",
            Some(doc! {"_id": 7, "slug": "b", "title": "B2"}),
            Some(doc! {"_id": 7, "slug": "b", "title": "B"}),
        );
        assert_eq!(
            changes(&same, false).unwrap().len(),
            1,
            "no delete when the key stays"
        );
    }

    #[test]
    fn an_update_without_its_post_image_asks_for_a_reset() {
        let e = event("update", None, Some(doc! {"_id": 7, "slug": "b"}));
        assert!(matches!(
            changes(&e, true),
            Err(ResetReason::PostImageMissing { .. })
        ));
        // With updateLookup, no document means it was deleted since: its delete follows.
        assert_eq!(changes(&e, false).unwrap().len(), 0);
    }
}
