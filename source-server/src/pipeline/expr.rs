//! The expression subset of pipeline mappings, compiled once and evaluated on documents.
//!
//! Expressions follow MongoDB's aggregation semantics, because the replica must equal what
//! `aggregate` returns: a path through an array of sub-documents collects their values, a
//! missing path is "missing" (not null), `$concat` of a null or missing part is null. Casts
//! reuse the projection's cast code (`rows::projection`), so `$toString` means one thing in
//! every mapping.

use std::borrow::Cow;

use bson::{Bson, Document, RawDocumentBuf};
use zerostack_spec::pipeline::{CastExpr, Expr};
use zerostack_spec::projection::{Cast, CastInput, Projection, ProjectionField};

use crate::rows::Fields;
use crate::rows::projection::{Eval, Plan, resolve_in};
use crate::rows::values::{json_to_bson, type_name};

/// A compiled expression.
#[derive(Debug, Clone)]
pub(crate) enum Compiled {
    Path(Vec<String>),
    Literal(Bson),
    Object(Vec<(String, Compiled)>),
    Array(Vec<Compiled>),
    Concat(Vec<Compiled>),
    IfNull(Vec<Compiled>),
    /// The cast's input, and the projection plan that casts the field "v" of a one-field
    /// document holding the input's value.
    Cast(Box<Compiled>, Box<Plan>),
}

/// Field of the one-field document a cast reads.
const CAST_FIELD: &str = "v";

pub(crate) fn split(path: &str) -> Vec<String> {
    path.split('.').map(str::to_string).collect()
}

impl Compiled {
    /// `at` names the expression in messages (e.g. `pipeline[2].$addFields.userId`).
    pub(crate) fn compile(e: &Expr, at: &str) -> Result<Compiled, (String, String)> {
        Ok(match e {
            Expr::Path(p) => Compiled::Path(split(p)),
            Expr::Literal(v) => {
                Compiled::Literal(json_to_bson(v).map_err(|m| (at.to_string(), m))?)
            }
            Expr::Object(fields) => Compiled::Object(
                fields
                    .iter()
                    .map(|(k, e)| Ok((k.clone(), Compiled::compile(e, &format!("{at}.{k}"))?)))
                    .collect::<Result<_, (String, String)>>()?,
            ),
            Expr::Array(items) => Compiled::Array(list(items, at)?),
            Expr::Concat(items) => Compiled::Concat(list(items, &format!("{at}.$concat"))?),
            Expr::IfNull(items) => Compiled::IfNull(list(items, &format!("{at}.$ifNull"))?),
            Expr::Cast(c) => compile_cast(c, at)?,
        })
    }

    /// The value, `Ok(None)` when missing; `Err` where MongoDB's `aggregate` would fail (a
    /// `$concat` of a number, a cast that cannot convert and has no `onError`).
    pub(crate) fn eval<'d>(&self, doc: &'d Document) -> Result<Option<Cow<'d, Bson>>, String> {
        Ok(match self {
            Compiled::Path(p) => resolve(doc, p),
            Compiled::Literal(b) => Some(Cow::Owned(b.clone())),
            Compiled::Object(fields) => {
                let mut out = Document::new();
                for (k, e) in fields {
                    if let Some(v) = e.eval(doc)? {
                        out.insert(k.clone(), v.into_owned());
                    }
                }
                Some(Cow::Owned(Bson::Document(out)))
            }
            Compiled::Array(items) => {
                let mut out = Vec::with_capacity(items.len());
                for e in items {
                    out.push(e.eval(doc)?.map_or(Bson::Null, Cow::into_owned));
                }
                Some(Cow::Owned(Bson::Array(out)))
            }
            Compiled::Concat(items) => {
                let mut s = String::new();
                for e in items {
                    match e.eval(doc)?.as_deref() {
                        None | Some(Bson::Null | Bson::Undefined) => {
                            return Ok(Some(Cow::Owned(Bson::Null)));
                        }
                        Some(Bson::String(part)) => s.push_str(part),
                        Some(other) => {
                            return Err(format!(
                                "$concat only supports strings, not {}",
                                type_name(other)
                            ));
                        }
                    }
                }
                Some(Cow::Owned(Bson::String(s)))
            }
            Compiled::IfNull(items) => {
                let (last, firsts) = items.split_last().expect("the parser asks for two or more");
                for e in firsts {
                    match e.eval(doc)? {
                        None => {}
                        Some(v) if matches!(*v, Bson::Null | Bson::Undefined) => {}
                        Some(v) => return Ok(Some(v)),
                    }
                }
                last.eval(doc)?
            }
            Compiled::Cast(input, plan) => {
                let mut one = Document::new();
                if let Some(v) = input.eval(doc)? {
                    one.insert(CAST_FIELD, v.into_owned());
                }
                let one = RawDocumentBuf::try_from(&one)
                    .map_err(|e| format!("the value cannot be encoded: {e}"))?;
                match plan.eval(&Fields::of(&one)) {
                    // MongoDB's $convert gives null for a null or missing input without onNull.
                    Eval::Missing => Some(Cow::Owned(Bson::Null)),
                    Eval::Value(v) => Some(Cow::Owned(v.into_owned())),
                    Eval::CastFailed(found) => {
                        return Err(format!("cannot convert a value of type {found}"));
                    }
                }
            }
        })
    }
}

fn list(items: &[Expr], at: &str) -> Result<Vec<Compiled>, (String, String)> {
    items
        .iter()
        .enumerate()
        .map(|(i, e)| Compiled::compile(e, &format!("{at}[{i}]")))
        .collect()
}

fn compile_cast(c: &CastExpr, at: &str) -> Result<Compiled, (String, String)> {
    let cast = Cast {
        to: c.to,
        input: CastInput::Path(CAST_FIELD.into()),
        on_error: c.on_error.clone(),
        on_null: c.on_null.clone(),
        convert: true,
    };
    let projection = Projection::new().field(CAST_FIELD, ProjectionField::Cast(cast));
    let plan =
        Plan::compile(CAST_FIELD, Some(&projection)).map_err(|(_, m)| (at.to_string(), m))?;
    Ok(Compiled::Cast(
        Box::new(Compiled::compile(&c.input, at)?),
        Box::new(plan),
    ))
}

/// An aggregation path: through arrays it collects what their sub-documents (and nested
/// arrays) hold at the rest of the path; numeric segments are field names, not indexes.
pub(crate) fn resolve<'d>(doc: &'d Document, path: &[String]) -> Option<Cow<'d, Bson>> {
    let (first, rest) = path.split_first()?;
    resolve_in(doc.get(first)?, rest)
}
