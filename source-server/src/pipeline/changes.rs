//! A pipeline table's side of replication: the messages one change event, or one snapshot
//! document, produces for it.
//!
//! Kept here, apart from `replication::row_changes` (plain tables), so that the two rules stay
//! readable: a plain table maps one document to at most one row found again by `documentKey`;
//! a pipeline table maps it to a set of rows, and a change sends the difference of two sets,
//! the "before" one from MongoDB's pre-image. Without the pre-image a pipeline that needs one
//! cannot be kept equal to MongoDB, and the caller is told so ([`PreImageMissing`]) instead of
//! a row being guessed.

use bson::RawDocument;
use tracing::warn;

use super::{Change, CompiledPipeline, KeyedRow, RowError, diff, diff_from_document_key};
use crate::metrics::Metrics;
use crate::zero::messages;

/// What a change event did to its document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Insert,
    /// An update or a replace.
    Update,
    Delete,
}

/// The event needs the document as it was, and does not carry it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("table {table:?} needs the pre-image of this change and the event has none")]
pub struct PreImageMissing {
    pub table: String,
}

/// The documents of one change event that a pipeline table reads.
#[derive(Debug, Clone, Copy)]
pub struct Event<'a> {
    pub kind: EventKind,
    pub document_key: Option<&'a RawDocument>,
    /// `fullDocumentBeforeChange`.
    pub before: Option<&'a RawDocument>,
    /// `fullDocument`: absent for a delete, and for an update whose document `updateLookup` no
    /// longer found (its delete event follows and removes the rows, so nothing is sent now).
    pub after: Option<&'a RawDocument>,
}

/// Appends the data messages that bring `table`'s rows from `event.before` to `event.after`;
/// returns how many. `relation` is the table's rendered relation JSON.
pub fn event_messages(
    table: &CompiledPipeline,
    relation: &str,
    event: Event<'_>,
    metrics: &Metrics,
    out: &mut Vec<String>,
) -> Result<usize, PreImageMissing> {
    let Event {
        kind,
        document_key,
        before,
        after,
    } = event;
    let start = out.len();
    if kind == EventKind::Update && after.is_none() {
        return Ok(0);
    }
    let changes = match (kind, before, document_key) {
        (EventKind::Insert, _, _) => diff(table, None, after),
        (_, Some(b), _) => diff(table, Some(b), after),
        (_, None, Some(k)) if !table.needs_pre_images() => diff_from_document_key(table, k, after),
        _ => {
            return Err(PreImageMissing {
                table: table.spec().name.clone(),
            });
        }
    };
    for c in changes {
        match c {
            Ok(Change::Insert(r)) => {
                count_coercions(table, &r, metrics);
                out.push(messages::insert(relation, &r.row.values));
            }
            Ok(Change::Update(r)) => {
                count_coercions(table, &r, metrics);
                out.push(messages::update(relation, &r.row.values));
            }
            Ok(Change::Delete(key)) => out.push(messages::delete(relation, &key)),
            Err(e) => skipped(table, &e, metrics),
        }
    }
    Ok(out.len() - start)
}

/// The rows of one snapshot document, lazily, with unkeyable rows logged, counted and left out.
pub fn snapshot_rows<'a>(
    table: &'a CompiledPipeline,
    doc: &RawDocument,
    metrics: &'a Metrics,
) -> impl Iterator<Item = KeyedRow> + Send + 'a {
    table.rows(doc).filter_map(move |r| match r {
        Ok(r) => {
            count_coercions(table, &r, metrics);
            Some(r)
        }
        Err(e) => {
            skipped(table, &e, metrics);
            None
        }
    })
}

fn count_coercions(table: &CompiledPipeline, r: &KeyedRow, metrics: &Metrics) {
    let name = &table.spec().name;
    for c in &r.row.coerced {
        if metrics.coerced(name, &c.column) {
            warn!(
                table = %name,
                column = %c.column,
                found = c.found,
                expected = c.expected.as_str(),
                "value does not fit its column; sending null (logged once per column, counted in zerostack_source_coerced_values)"
            );
        }
    }
}

fn skipped(table: &CompiledPipeline, e: &RowError, metrics: &Metrics) {
    metrics.unkeyed_changes.inc();
    warn!(table = %table.spec().name, error = %e, "pipeline row skipped");
}
