//! Turns one MongoDB change event into Zero row changes, for every table its collection feeds.
//!
//! This is where a document whose discriminator changed moves between tables: on an update or a
//! replace, each table of the collection gets either an upsert (the document matches its filter)
//! or a delete by key (it does not, so it may have left). Inserts only upsert: a new document
//! cannot already be in any table. Deletes go to every table of the collection; deleting a row
//! zero-cache does not have is harmless.

use serde_json::{Map, Value};
use tracing::{debug, warn};

use crate::metrics::Metrics;
use crate::mongo::change_event::{ChangeEvent, Operation};
use crate::rows::Fields;
use crate::zero::catalog::{Catalog, PublishedTable};
use crate::zero::messages;

/// Appends the data messages for `event` to `out`; returns how many row changes it added.
pub fn event_changes(
    catalog: &Catalog,
    event: &ChangeEvent,
    metrics: &Metrics,
    out: &mut Vec<String>,
) -> usize {
    let Some(collection) = event.collection.as_deref() else {
        return 0;
    };
    let before = out.len();
    match event.operation {
        Operation::Insert | Operation::Update | Operation::Replace => {
            let Some(doc) = event.full_document.as_deref().map(Fields::of) else {
                // The document was deleted before its update could be looked up; the delete
                // event follows and removes it.
                debug!(collection, "update without a full document skipped");
                return 0;
            };
            let is_insert = event.operation == Operation::Insert;
            let document_key = event.document_key.as_deref().map(Fields::of);
            for table in catalog.tables_of(collection) {
                if table.rows.matches(&doc) {
                    if let Some(row) = row_of(table, &doc, metrics) {
                        out.push(if is_insert {
                            messages::insert(&table.relation, &row)
                        } else {
                            messages::update(&table.relation, &row)
                        });
                    }
                } else if !is_insert {
                    let key = document_key
                        .as_ref()
                        .and_then(|k| table.rows.key_from_document_key(k))
                        .or_else(|| key_of_row(table, &table.rows.row(&doc).values));
                    push_delete(table, key, metrics, out);
                }
            }
        }
        Operation::Delete => {
            let document_key = event.document_key.as_deref().map(Fields::of);
            for table in catalog.tables_of(collection) {
                let key = document_key
                    .as_ref()
                    .and_then(|k| table.rows.key_from_document_key(k));
                push_delete(table, key, metrics, out);
            }
        }
        Operation::Invalidating(_) | Operation::Other(_) => {}
    }
    out.len() - before
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
            warn!(table = %table.def.name, "delete skipped: the row key cannot be derived from the document key");
        }
    }
}
