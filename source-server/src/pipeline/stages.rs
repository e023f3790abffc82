//! The four stages on owned documents, with MongoDB's semantics (field order included, since
//! the tests compare our documents with `aggregate`'s byte for byte).
//!
//! `$unwind` is an iterator: the unwound array is taken out of the document once, and each
//! output document is the rest of the document plus one element, built when asked for. A
//! document with 10,000 elements is therefore held once, plus the one row being sent.

use std::borrow::Cow;

use bson::{Bson, Document, RawDocumentBuf};
use zerostack_spec::pipeline::{Project, ProjectField, Stage, Unwind};

use super::expr::{Compiled, split};
use crate::rows::Fields;
use crate::rows::filter::CompiledFilter;

/// An error in one stage of one document: where, and what MongoDB's `aggregate` would have
/// failed on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("pipeline[{stage}]: {message}")]
pub struct StageError {
    pub stage: usize,
    pub message: String,
}

#[derive(Debug, Clone)]
pub(crate) enum CompiledStage {
    Match(CompiledFilter),
    Unwind(CompiledUnwind),
    AddFields(Vec<(Vec<String>, Compiled)>),
    Project(CompiledProject),
}

#[derive(Debug, Clone)]
pub(crate) struct CompiledUnwind {
    path: Vec<String>,
    index: Option<String>,
    preserve: bool,
}

#[derive(Debug, Clone)]
pub(crate) struct CompiledProject {
    exclusion: bool,
    keep_id: bool,
    /// Inclusion: paths kept as they are (in the input's order).
    included: Vec<Vec<String>>,
    /// Inclusion: computed fields, in the order written.
    computed: Vec<(Vec<String>, Compiled)>,
    /// Exclusion: paths removed.
    excluded: Vec<Vec<String>>,
}

impl CompiledStage {
    pub(crate) fn compile(stage: &Stage, at: &str) -> Result<CompiledStage, (String, String)> {
        Ok(match stage {
            Stage::Match(f) => CompiledStage::Match(
                CompiledFilter::compile(f)
                    .map_err(|(p, m)| (format!("{at}.$match{}", &p["filter".len()..]), m))?,
            ),
            Stage::Unwind(Unwind {
                path,
                include_array_index,
                preserve_null_and_empty_arrays,
            }) => CompiledStage::Unwind(CompiledUnwind {
                path: split(path),
                index: include_array_index.clone(),
                preserve: *preserve_null_and_empty_arrays,
            }),
            Stage::AddFields(fields) => CompiledStage::AddFields(
                fields
                    .iter()
                    .map(|(k, e)| Ok((split(k), Compiled::compile(e, &format!("{at}.{k}"))?)))
                    .collect::<Result<_, (String, String)>>()?,
            ),
            Stage::Project(p) => CompiledStage::Project(CompiledProject::compile(p, at)?),
        })
    }
}

impl CompiledProject {
    fn compile(p: &Project, at: &str) -> Result<CompiledProject, (String, String)> {
        let mut out = CompiledProject {
            exclusion: p.is_exclusion(),
            keep_id: p.keeps_id(),
            included: Vec::new(),
            computed: Vec::new(),
            excluded: Vec::new(),
        };
        for (k, f) in &p.fields {
            match f {
                ProjectField::Include => out.included.push(split(k)),
                ProjectField::Exclude => out.excluded.push(split(k)),
                ProjectField::Computed(e) => out
                    .computed
                    .push((split(k), Compiled::compile(e, &format!("{at}.{k}"))?)),
            }
        }
        if !out.exclusion && out.keep_id && !out.included.iter().any(|p| p[0] == "_id") {
            out.included.push(vec!["_id".into()]);
        }
        Ok(out)
    }

    pub(crate) fn apply(&self, doc: Document) -> Result<Document, String> {
        if self.exclusion {
            let mut doc = doc;
            for p in &self.excluded {
                remove_path(&mut doc, p);
            }
            return Ok(doc);
        }
        let values = self
            .computed
            .iter()
            .map(|(p, e)| Ok((p, e.eval(&doc)?.map(Cow::into_owned))))
            .collect::<Result<Vec<_>, String>>()?;
        let mut out = keep(&doc, &self.included);
        for (p, v) in values {
            match v {
                Some(v) => set_path(&mut out, p, v),
                // A computed field that is missing stays out of the document.
                None => remove_path(&mut out, p),
            }
        }
        Ok(out)
    }
}

/// Whether `doc` passes a `$match`. The filter code reads raw BSON (that is how change events
/// arrive), so a document built by earlier stages is encoded once for it.
pub(crate) fn matches(f: &CompiledFilter, doc: &Document) -> Result<bool, String> {
    let raw = RawDocumentBuf::try_from(doc).map_err(|e| format!("$match: {e}"))?;
    Ok(f.matches(&Fields::of(&raw)))
}

/// `$addFields` / `$set`: every expression reads the stage's input, then all are set.
pub(crate) fn add_fields(
    fields: &[(Vec<String>, Compiled)],
    mut doc: Document,
) -> Result<Document, String> {
    let values = fields
        .iter()
        .map(|(p, e)| Ok((p, e.eval(&doc)?.map(Cow::into_owned))))
        .collect::<Result<Vec<_>, String>>()?;
    for (p, v) in values {
        match (v, p.len()) {
            (Some(Bson::Document(d)), _) if is_object_expr(fields, p) => merge_path(&mut doc, p, d),
            (Some(v), _) => set_path(&mut doc, p, v),
            (None, _) => remove_path(&mut doc, p),
        }
    }
    Ok(doc)
}

/// A document *expression* (`{a: {b: "$x"}}`) merges into what is there; a document literal
/// or a path to a document replaces it.
fn is_object_expr(fields: &[(Vec<String>, Compiled)], path: &[String]) -> bool {
    fields
        .iter()
        .any(|(p, e)| p.as_slice() == path && matches!(e, Compiled::Object(_)))
}

/// Sets `path` as `$addFields` does: in place when the field exists, appended otherwise;
/// through sub-documents (created when missing, replacing scalars) and through arrays (each
/// element).
pub(crate) fn set_path(doc: &mut Document, path: &[String], value: Bson) {
    let (first, rest) = path.split_first().expect("paths are never empty");
    if rest.is_empty() {
        doc.insert(first.clone(), value);
        return;
    }
    match doc.get_mut(first) {
        Some(Bson::Document(d)) => set_path(d, rest, value),
        Some(Bson::Array(items)) => set_in_array(items, rest, value),
        _ => {
            let mut d = Document::new();
            set_path(&mut d, rest, value);
            doc.insert(first.clone(), Bson::Document(d));
        }
    }
}

fn set_in_array(items: &mut [Bson], rest: &[String], value: Bson) {
    for e in items {
        match e {
            Bson::Document(d) => set_path(d, rest, value.clone()),
            Bson::Array(inner) => set_in_array(inner, rest, value.clone()),
            other => {
                let mut d = Document::new();
                set_path(&mut d, rest, value.clone());
                *other = Bson::Document(d);
            }
        }
    }
}

/// A document expression's fields merged into the sub-document at `path` (each field set as
/// `set_path` sets it).
fn merge_path(doc: &mut Document, path: &[String], value: Document) {
    let existing = match path.split_first() {
        Some((first, [])) => doc.get_mut(first),
        Some((first, rest)) => match doc.get_mut(first) {
            Some(Bson::Document(d)) => {
                merge_path(d, rest, value);
                return;
            }
            _ => None,
        },
        None => return,
    };
    match existing {
        Some(Bson::Document(d)) => {
            for (k, v) in value {
                match (v, d.get(&k)) {
                    (Bson::Document(inner), Some(Bson::Document(_))) => {
                        merge_path(d, std::slice::from_ref(&k), inner)
                    }
                    (v, _) => {
                        d.insert(k, v);
                    }
                }
            }
        }
        Some(Bson::Array(items)) => {
            for e in items.iter_mut() {
                match e {
                    Bson::Document(d) => {
                        for (k, v) in &value {
                            d.insert(k.clone(), v.clone());
                        }
                    }
                    other => *other = Bson::Document(value.clone()),
                }
            }
        }
        _ => set_path(doc, path, Bson::Document(value)),
    }
}

/// Removes `path` (through sub-documents and arrays of them).
pub(crate) fn remove_path(doc: &mut Document, path: &[String]) {
    let (first, rest) = path.split_first().expect("paths are never empty");
    if rest.is_empty() {
        doc.remove(first);
        return;
    }
    match doc.get_mut(first) {
        Some(Bson::Document(d)) => remove_path(d, rest),
        Some(Bson::Array(items)) => remove_in_array(items, rest),
        _ => {}
    }
}

fn remove_in_array(items: &mut [Bson], rest: &[String]) {
    for e in items {
        match e {
            Bson::Document(d) => remove_path(d, rest),
            Bson::Array(inner) => remove_in_array(inner, rest),
            _ => {}
        }
    }
}

/// Inclusion: the fields of `doc` that `paths` name, in `doc`'s order; a dotted path keeps
/// that part of a sub-document (and of each sub-document of an array; scalars in such an array
/// are dropped, as MongoDB drops them).
fn keep(doc: &Document, paths: &[Vec<String>]) -> Document {
    let mut out = Document::new();
    for (k, v) in doc {
        let mut whole = false;
        let mut deeper = Vec::new();
        for p in paths.iter().filter(|p| p[0] == *k) {
            if p.len() == 1 {
                whole = true;
            } else {
                deeper.push(p[1..].to_vec());
            }
        }
        if whole {
            out.insert(k.clone(), v.clone());
        } else if !deeper.is_empty()
            && let Some(sub) = keep_in(v, &deeper)
        {
            out.insert(k.clone(), sub);
        }
    }
    out
}

fn keep_in(v: &Bson, paths: &[Vec<String>]) -> Option<Bson> {
    match v {
        Bson::Document(d) => Some(Bson::Document(keep(d, paths))),
        Bson::Array(items) => Some(Bson::Array(
            items.iter().filter_map(|e| keep_in(e, paths)).collect(),
        )),
        _ => None,
    }
}

impl CompiledUnwind {
    /// The documents `$unwind` makes of `doc`, lazily.
    pub(crate) fn apply(&self, mut doc: Document) -> UnwindIter {
        let Some(slot) = slot_mut(&mut doc, &self.path) else {
            // Missing.
            return UnwindIter::single(self.preserve.then(|| self.with_index(doc, None)));
        };
        match slot {
            Bson::Array(items) if !items.is_empty() => {
                let items = std::mem::take(items);
                UnwindIter {
                    base: Some(doc),
                    items: items.into_iter(),
                    next_index: 0,
                    unwind: self.clone(),
                }
            }
            Bson::Array(_) => {
                // An empty array: with preserveNullAndEmptyArrays the document comes out
                // without the field.
                if !self.preserve {
                    return UnwindIter::single(None);
                }
                remove_path(&mut doc, &self.path);
                UnwindIter::single(Some(self.with_index(doc, None)))
            }
            Bson::Null | Bson::Undefined => {
                UnwindIter::single(self.preserve.then(|| self.with_index(doc, None)))
            }
            // Any other value counts as a one-element array (with a null index).
            _ => UnwindIter::single(Some(self.with_index(doc, None))),
        }
    }

    fn with_index(&self, mut doc: Document, index: Option<i64>) -> Document {
        if let Some(name) = &self.index {
            doc.insert(name.clone(), index.map_or(Bson::Null, Bson::Int64));
        }
        doc
    }
}

/// The value at a path through sub-documents only (an array on the way means "missing", as
/// `$unwind` has it).
fn slot_mut<'d>(doc: &'d mut Document, path: &[String]) -> Option<&'d mut Bson> {
    let (first, rest) = path.split_first()?;
    let v = doc.get_mut(first)?;
    if rest.is_empty() {
        return Some(v);
    }
    match v {
        Bson::Document(d) => slot_mut(d, rest),
        _ => None,
    }
}

/// The output of one `$unwind` on one document.
pub(crate) struct UnwindIter {
    /// The document with the unwound array taken out (its slot holds an empty array), or the
    /// one document to yield when `items` is empty.
    base: Option<Document>,
    items: std::vec::IntoIter<Bson>,
    next_index: i64,
    unwind: CompiledUnwind,
}

impl UnwindIter {
    fn single(doc: Option<Document>) -> UnwindIter {
        UnwindIter {
            base: doc,
            items: Vec::new().into_iter(),
            next_index: -1,
            unwind: CompiledUnwind {
                path: Vec::new(),
                index: None,
                preserve: false,
            },
        }
    }
}

impl Iterator for UnwindIter {
    type Item = Document;

    fn next(&mut self) -> Option<Document> {
        if self.next_index < 0 {
            return self.base.take();
        }
        let element = self.items.next()?;
        let mut doc = if self.items.len() == 0 {
            self.base.take()?
        } else {
            self.base.clone()?
        };
        if let Some(slot) = slot_mut(&mut doc, &self.unwind.path) {
            *slot = element;
        }
        let i = self.next_index;
        self.next_index += 1;
        Some(self.unwind.with_index(doc, Some(i)))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = if self.next_index < 0 {
            usize::from(self.base.is_some())
        } else {
            self.items.len()
        };
        (n, Some(n))
    }
}
