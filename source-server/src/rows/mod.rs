//! MongoDB document → Zero row, as pure functions.
//!
//! Each table's filter and projection are compiled to BSON once, at start-up
//! ([`CompiledTable::compile`]); then every change event only walks the document. Documents
//! arrive as raw BSON, and only the top-level fields a filter or column reads are decoded: a
//! change event is never turned into a whole owned `Document` (that was most of the CPU a change
//! cost, in allocations). `row` returns every column of the table (by server name) and nothing
//! else, converted by the declared column type; values that do not fit come back as null plus a
//! [`Coercion`], for the caller to log and count without dropping the row. A table's filter is
//! also available as a MongoDB query ([`CompiledTable::filter_query`]) for the initial sync.

pub mod fields;
pub mod filter;
pub mod projection;
pub mod values;

use serde_json::{Map, Value};
use zerostack_spec::{ColumnType, TableSpec};

pub use fields::Fields;
use filter::CompiledFilter;
use projection::{Eval, Plan};

#[derive(Debug, thiserror::Error)]
pub enum RowsError {
    /// A filter or projection value that cannot become BSON (e.g. bad extended JSON).
    #[error("table {table:?}: {path}: {message}")]
    Compile {
        table: String,
        path: String,
        message: String,
    },
}

/// A table with its filter and projection compiled.
#[derive(Debug, Clone)]
pub struct CompiledTable {
    spec: TableSpec,
    filter: Option<CompiledFilter>,
    /// One plan per column, in column order.
    plans: Vec<Plan>,
    /// Indexes into `spec.columns` of the primary key columns, in key order.
    key_columns: Vec<usize>,
    /// Set for a pipeline table, whose rows `crate::pipeline` makes: whether its key can be
    /// found from `_id` is the pipeline's rule, not this table's plans.
    key_from_id_override: Option<bool>,
}

/// A converted row: every column of the table by server name.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub values: Map<String, Value>,
    pub coerced: Vec<Coercion>,
}

/// A value that did not fit its column and was sent as null.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Coercion {
    /// Server column name.
    pub column: String,
    /// The BSON type found (MongoDB's `$type` name, e.g. "string", "objectId").
    pub found: &'static str,
    pub expected: ColumnType,
}

/// Where each primary-key column is among the table's columns (plain and pipeline tables).
pub(crate) fn key_positions(spec: &TableSpec) -> Result<Vec<usize>, RowsError> {
    spec.primary_key
        .iter()
        .map(|k| {
            spec.columns
                .iter()
                .position(|c| &c.server_name == k)
                .ok_or_else(|| RowsError::Compile {
                    table: spec.name.clone(),
                    path: "primaryKey".into(),
                    message: format!("key column {k:?} is not a column"),
                })
        })
        .collect()
}

impl CompiledTable {
    pub fn compile(spec: &TableSpec) -> Result<CompiledTable, RowsError> {
        let err = |(path, message): (String, String)| RowsError::Compile {
            table: spec.name.clone(),
            path,
            message,
        };
        let filter = spec
            .filter
            .as_ref()
            .map(CompiledFilter::compile)
            .transpose()
            .map_err(err)?;
        let plans = spec
            .columns
            .iter()
            .map(|c| Plan::compile(&c.server_name, spec.projection.as_ref()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(err)?;
        let key_columns = key_positions(spec)?;
        Ok(CompiledTable {
            spec: spec.clone(),
            filter,
            plans,
            key_columns,
            key_from_id_override: None,
        })
    }

    /// This table describes a pipeline table (see `crate::pipeline`): its rows are found again
    /// from `_id` exactly when `key_from_id` (the pipeline needs no pre-images).
    pub fn for_pipeline(mut self, key_from_id: bool) -> Self {
        self.key_from_id_override = Some(key_from_id);
        self
    }

    pub fn spec(&self) -> &TableSpec {
        &self.spec
    }

    /// The documents this table keeps, as a MongoDB query; `None` when it keeps every document
    /// (no filter, or an empty one) or its filter has no query (see [`CompiledFilter::query`]).
    pub fn filter_query(&self) -> Option<&bson::Document> {
        self.filter
            .as_ref()
            .and_then(CompiledFilter::query)
            .filter(|q| !q.is_empty())
    }

    /// Whether the document belongs to this table (no filter: every document does).
    pub fn matches(&self, doc: &Fields<'_>) -> bool {
        self.filter.as_ref().is_none_or(|f| f.matches(doc))
    }

    /// The row for a document: projection, then per-column conversion.
    pub fn row(&self, doc: &Fields<'_>) -> Row {
        let mut values = Map::with_capacity(self.plans.len());
        let mut coerced = Vec::new();
        for (col, plan) in self.spec.columns.iter().zip(&self.plans) {
            let v = convert(col.kind, plan.eval(doc)).unwrap_or_else(|found| {
                coerced.push(Coercion {
                    column: col.server_name.clone(),
                    found,
                    expected: col.kind,
                });
                Value::Null
            });
            values.insert(col.server_name.clone(), v);
        }
        Row { values, coerced }
    }

    /// Whether every primary-key value comes from `_id`: then a delete's `documentKey` names
    /// the row. Otherwise the row a delete or a key change leaves behind can only be found in
    /// the document as it was (a pre-image).
    pub fn key_from_id(&self) -> bool {
        if let Some(k) = self.key_from_id_override {
            return k;
        }
        self.key_columns
            .iter()
            .all(|&i| self.plans[i].reads_only_id())
    }

    /// The primary-key columns (server names), for messages.
    pub fn key_names(&self) -> &[String] {
        &self.spec.primary_key
    }

    /// The row key (server column names → values) from a change event's `documentKey`.
    ///
    /// Each key column is read the way `row` reads it (so a rename reads its source field); if
    /// the documentKey lacks it and `documentKey._id` is a sub-document, it is read inside `_id`
    /// (documents keyed by a composite `_id`, like `zero_clients`). `None` if any key value is
    /// missing, null or does not fit its column.
    pub fn key_from_document_key(&self, document_key: &Fields<'_>) -> Option<Map<String, Value>> {
        let id_doc = document_key.document("_id").map(Fields::of);
        let mut key = Map::with_capacity(self.key_columns.len());
        for &i in &self.key_columns {
            let col = &self.spec.columns[i];
            let plan = &self.plans[i];
            let mut found = plan.eval(document_key);
            if matches!(found, Eval::Missing)
                && let Some(d) = &id_doc
            {
                found = plan.eval(d);
            }
            match convert(col.kind, found) {
                Ok(Value::Null) | Err(_) => return None,
                Ok(v) => {
                    key.insert(col.server_name.clone(), v);
                }
            }
        }
        Some(key)
    }
}

fn convert(kind: ColumnType, v: Eval<'_>) -> Result<Value, &'static str> {
    match v {
        Eval::Missing => Ok(Value::Null),
        Eval::Value(b) => values::to_column(Some(&b), kind),
        Eval::CastFailed(found) => Err(found),
    }
}

/// Tests write documents with `doc!`; the code under test reads raw BSON, as MongoDB sends it.
#[cfg(test)]
pub(crate) fn raw(d: bson::Document) -> bson::RawDocumentBuf {
    bson::RawDocumentBuf::try_from(&d).expect("a doc! literal encodes")
}

#[cfg(test)]
mod tests;
