//! Pipeline mappings at run time: one MongoDB document → the rows its pipeline yields, and the
//! difference between the rows of a document before and after a change.
//!
//! The format, its validation and the pre-image rule live in the spec crate
//! (`zerostack_spec::pipeline`), shared with the app and the operator. Here the stages are
//! compiled once per table ([`CompiledPipeline::compile`]) and then run per document:
//!
//! - [`CompiledPipeline::rows`] yields the rows lazily, each keyed by the table's declared
//!   (possibly composite) primary key; a 10,000-element `$unwind` never holds 10,000 rows.
//! - [`diff`] compares the rows of the before-document (MongoDB's pre-image) with those of the
//!   after-document and yields only inserts, updates and deletes, holding a digest per key of the
//!   before-set rather than its rows.
//!
//! Only the top-level fields some stage or column reads are decoded from the raw document, the
//! same economy `rows` practises for plain mappings.

pub mod changes;
pub mod diff;
mod expr;
mod stages;

use std::collections::HashSet;

use bson::{Document, RawDocument};
use serde_json::{Map, Value};
use zerostack_spec::TableSpec;
use zerostack_spec::filter::{Clause, Filter};
use zerostack_spec::pipeline::{Expr, Pipeline, ProjectField, Stage};

use crate::rows::Fields;
use crate::rows::values::to_column;
use crate::rows::{Coercion, Row, RowsError};

pub use diff::{Change, diff, diff_from_document_key};
pub use stages::StageError;
use stages::{CompiledStage, UnwindIter};

/// A row key: the primary-key columns (server names) → values, in key order.
pub type Key = Map<String, Value>;

/// One row of a pipeline table.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyedRow {
    pub key: Key,
    pub row: Row,
}

/// What one document can yield besides rows: a row without a usable key, or a stage that
/// failed where MongoDB's `aggregate` would fail. The caller logs and counts them; the other
/// rows of the document are still sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RowError {
    #[error("a row has no value for primary-key column {column:?} (null or missing)")]
    MissingKey { column: String },
    #[error("a row's primary-key column {column:?} holds a {found}, which does not fit its type")]
    BadKey { column: String, found: &'static str },
    #[error(transparent)]
    Stage(#[from] StageError),
}

/// A table's pipeline, compiled.
#[derive(Debug, Clone)]
pub struct CompiledPipeline {
    spec: TableSpec,
    stages: Vec<CompiledStage>,
    /// Indexes into `spec.columns` of the key columns, in key order.
    key_columns: Vec<usize>,
    /// The top-level fields of a source document that can matter (None: all of them).
    inputs: Option<HashSet<String>>,
    /// Whether rows can only be found again from the before-document (the spec's rule).
    needs_pre_images: bool,
}

type Docs<'a> = Box<dyn Iterator<Item = Result<Document, StageError>> + Send + 'a>;

impl CompiledPipeline {
    pub fn compile(spec: &TableSpec, pipeline: &Pipeline) -> Result<CompiledPipeline, RowsError> {
        let err = |(path, message): (String, String)| RowsError::Compile {
            table: spec.name.clone(),
            path,
            message,
        };
        let stages = pipeline
            .stages
            .iter()
            .enumerate()
            .map(|(i, s)| CompiledStage::compile(s, &format!("pipeline[{i}]")).map_err(err))
            .collect::<Result<Vec<_>, _>>()?;
        let key_columns = crate::rows::key_positions(spec)?;
        Ok(CompiledPipeline {
            inputs: inputs(spec, pipeline),
            needs_pre_images: pipeline.needs_pre_images(&spec.primary_key),
            spec: spec.clone(),
            stages,
            key_columns,
        })
    }

    pub fn spec(&self) -> &TableSpec {
        &self.spec
    }

    /// See `zerostack_spec::pipeline::Pipeline::needs_pre_images`.
    pub fn needs_pre_images(&self) -> bool {
        self.needs_pre_images
    }

    /// The documents that can yield rows, as a MongoDB query for the initial sync's `find`:
    /// the pipeline's leading `$match` (it reads the source document as stored). `None` when
    /// the pipeline does not start with one, and every document must be read.
    pub fn find_query(&self) -> Option<&Document> {
        match self.stages.first()? {
            CompiledStage::Match(f) => f.query().filter(|q| !q.is_empty()),
            _ => None,
        }
    }

    /// The documents the pipeline makes of `doc`, exactly what `aggregate` returns for it,
    /// lazily.
    pub fn documents<'a>(&'a self, doc: &RawDocument) -> Docs<'a> {
        self.start(doc, false)
    }

    /// The document as a `Document`; with `pruned`, only the fields that can reach a row.
    fn decode(&self, raw: &RawDocument, pruned: bool) -> Result<Document, StageError> {
        let fail = |message| StageError { stage: 0, message };
        let mut doc = Document::new();
        for field in raw {
            let (k, v) = field.map_err(|e| fail(format!("the document cannot be read: {e}")))?;
            if !pruned || self.inputs.as_ref().is_none_or(|i| i.contains(k.as_str())) {
                let v = bson::Bson::try_from(v)
                    .map_err(|e| fail(format!("field {:?} cannot be read: {e}", k.as_str())))?;
                doc.insert(k.as_str(), v);
            }
        }
        Ok(doc)
    }

    /// Runs the pipeline on `raw`. A leading `$match` reads the raw document as it is, so a
    /// document it drops is never decoded.
    fn start<'a>(&'a self, raw: &RawDocument, pruned: bool) -> Docs<'a> {
        if let Some(CompiledStage::Match(f)) = self.stages.first() {
            if !f.matches(&Fields::of(raw)) {
                return Box::new(std::iter::empty());
            }
            return self.run(self.decode(raw, pruned), 1);
        }
        self.run(self.decode(raw, pruned), 0)
    }

    fn run<'a>(&'a self, start: Result<Document, StageError>, from: usize) -> Docs<'a> {
        let mut docs: Docs<'a> = Box::new(std::iter::once(start));
        for (i, stage) in self.stages.iter().enumerate().skip(from) {
            let fail = move |message: String| StageError { stage: i, message };
            docs = match stage {
                CompiledStage::Match(f) => Box::new(docs.filter_map(move |d| match d {
                    Ok(d) => match stages::matches(f, &d) {
                        Ok(true) => Some(Ok(d)),
                        Ok(false) => None,
                        Err(m) => Some(Err(fail(m))),
                    },
                    Err(e) => Some(Err(e)),
                })),
                CompiledStage::Unwind(u) => Box::new(docs.flat_map(move |d| match d {
                    Ok(d) => Unwound::Docs(u.apply(d)),
                    Err(e) => Unwound::Failed(Some(e)),
                })),
                CompiledStage::AddFields(fields) => Box::new(
                    docs.map(move |d| d.and_then(|d| stages::add_fields(fields, d).map_err(fail))),
                ),
                CompiledStage::Project(p) => {
                    Box::new(docs.map(move |d| d.and_then(|d| p.apply(d).map_err(fail))))
                }
            };
        }
        docs
    }

    /// The rows of `doc`, lazily, each keyed by the table's primary key.
    pub fn rows<'a>(
        &'a self,
        doc: &RawDocument,
    ) -> impl Iterator<Item = Result<KeyedRow, RowError>> + Send + 'a {
        self.start(doc, true)
            .map(move |d| self.row_of(&d.map_err(RowError::Stage)?))
    }

    /// A pipeline output document → the table's row: every column by server name, converted
    /// by its declared type (a value that does not fit is null plus a [`Coercion`], as for
    /// plain mappings); the key must be present and fit.
    pub fn row_of(&self, doc: &Document) -> Result<KeyedRow, RowError> {
        let mut values = Map::with_capacity(self.spec.columns.len());
        let mut coerced = Vec::new();
        for col in &self.spec.columns {
            let v = to_column(doc.get(&col.server_name), col.kind).unwrap_or_else(|found| {
                coerced.push(Coercion {
                    column: col.server_name.clone(),
                    found,
                    expected: col.kind,
                });
                Value::Null
            });
            values.insert(col.server_name.clone(), v);
        }
        let mut key = Map::with_capacity(self.key_columns.len());
        for &i in &self.key_columns {
            let col = &self.spec.columns[i];
            if let Some(c) = coerced.iter().find(|c| c.column == col.server_name) {
                return Err(RowError::BadKey {
                    column: col.server_name.clone(),
                    found: c.found,
                });
            }
            match &values[&col.server_name] {
                Value::Null => {
                    return Err(RowError::MissingKey {
                        column: col.server_name.clone(),
                    });
                }
                v => {
                    key.insert(col.server_name.clone(), v.clone());
                }
            }
        }
        Ok(KeyedRow {
            key,
            row: Row { values, coerced },
        })
    }

    /// For a pipeline that does not need pre-images: the key of the one row a document with
    /// this `documentKey` can have yielded, computed from `_id` alone (the `$match` stages are
    /// skipped: the row may or may not have matched, and deleting a row that is not there is
    /// harmless). `None` when the pipeline needs pre-images or the key cannot be computed.
    pub fn key_from_document_key(&self, document_key: &RawDocument) -> Option<Key> {
        if self.needs_pre_images {
            return None;
        }
        let doc = self.decode(document_key, true).ok()?;
        let mut doc = Ok(doc);
        for stage in &self.stages {
            doc = match (stage, doc) {
                (CompiledStage::Match(_), d) => d,
                (CompiledStage::AddFields(f), Ok(d)) => stages::add_fields(f, d),
                (CompiledStage::Project(p), Ok(d)) => p.apply(d),
                (CompiledStage::Unwind(_), _) | (_, Err(_)) => return None,
            };
        }
        self.row_of(&doc.ok()?).ok().map(|r| r.key)
    }
}

/// `$unwind`'s output for one input: its documents, or the error that reached it.
enum Unwound {
    Docs(UnwindIter),
    Failed(Option<StageError>),
}

impl Iterator for Unwound {
    type Item = Result<Document, StageError>;
    fn next(&mut self) -> Option<Self::Item> {
        match self {
            Unwound::Docs(it) => it.next().map(Ok),
            Unwound::Failed(e) => e.take().map(Err),
        }
    }
}

/// The top-level source fields that can reach a row: `_id`, every column's name (fields pass
/// through untouched), and the first segment of every path a stage reads. Any other field can
/// neither be read nor come out, so it is never decoded.
fn inputs(spec: &TableSpec, pipeline: &Pipeline) -> Option<HashSet<String>> {
    let mut out: HashSet<String> = spec.columns.iter().map(|c| c.server_name.clone()).collect();
    out.insert("_id".into());
    let mut add = |p: &str| {
        out.insert(p.split('.').next().unwrap_or(p).to_string());
    };
    for stage in &pipeline.stages {
        match stage {
            Stage::Match(f) => filter_paths(f, &mut add),
            Stage::Unwind(u) => add(&u.path),
            Stage::AddFields(fields) => {
                for (k, e) in fields {
                    add(k);
                    expr_paths(e, &mut add);
                }
            }
            Stage::Project(p) => {
                for (k, f) in &p.fields {
                    add(k);
                    if let ProjectField::Computed(e) = f {
                        expr_paths(e, &mut add);
                    }
                }
            }
        }
    }
    Some(out)
}

fn expr_paths(e: &Expr, add: &mut impl FnMut(&str)) {
    let mut paths = Vec::new();
    e.paths(&mut paths);
    for p in paths {
        add(p);
    }
}

fn filter_paths(f: &Filter, add: &mut impl FnMut(&str)) {
    for c in &f.clauses {
        match c {
            Clause::Field { path, .. } => add(path),
            Clause::And(list) | Clause::Or(list) => list.iter().for_each(|f| filter_paths(f, add)),
        }
    }
}

#[cfg(test)]
mod tests;
