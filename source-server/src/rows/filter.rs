//! Filter evaluation with MongoDB's query semantics, and the same filter as a MongoDB query.
//!
//! A filter is compiled once (its JSON values become BSON) and then run against every changed
//! document. It is also compiled, once, into the query document MongoDB would run
//! ([`CompiledFilter::query`]): the initial sync pushes the filters of a collection down into its
//! `find` (`replication::initial_sync`), then checks each document here as well. The two must
//! agree, so the semantics follow MongoDB: dotted paths traverse arrays of sub-documents, an
//! array field matches when any element does, `$ne`/`$nin` hold for a missing field, `{f: null}`
//! matches a missing field, and comparisons stay within a type bracket (all numeric types
//! compare as numbers; ObjectId with ObjectId; Date with Date).

use std::cmp::Ordering;

use bson::{Bson, Document};
use zerostack_spec::filter::{Clause, Condition, Filter, Operator};

use super::fields::Fields;
use super::values::{self, json_to_bson};

/// A dotted path, split once at compile time.
#[derive(Debug, Clone)]
pub(crate) struct FieldPath {
    segments: Vec<Segment>,
}

#[derive(Debug, Clone)]
struct Segment {
    name: Box<str>,
    /// The segment read as an array index (`a.0.b`).
    index: Option<usize>,
}

impl FieldPath {
    pub(crate) fn new(path: &str) -> FieldPath {
        FieldPath {
            segments: path
                .split('.')
                .map(|s| Segment {
                    name: s.into(),
                    index: s.parse().ok().filter(|_| !s.starts_with('+')),
                })
                .collect(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct CompiledFilter {
    clauses: Vec<CompiledClause>,
    /// The filter as a MongoDB query document (see [`CompiledFilter::query`]).
    query: Option<Document>,
}

#[derive(Debug, Clone)]
enum CompiledClause {
    Field { path: FieldPath, ops: Vec<Op> },
    And(Vec<CompiledFilter>),
    Or(Vec<CompiledFilter>),
}

#[derive(Debug, Clone)]
enum Op {
    Eq(Bson),
    Ne(Bson),
    Gt(Bson),
    Gte(Bson),
    Lt(Bson),
    Lte(Bson),
    In(Vec<Bson>),
    Nin(Vec<Bson>),
    Exists(bool),
    Not(Vec<Op>),
}

/// A compile error: the path inside the filter (like `filter.t.$in[1]`) and the problem.
pub type CompileError = (String, String);

impl CompiledFilter {
    pub fn compile(filter: &Filter) -> Result<CompiledFilter, CompileError> {
        compile_at(filter, "filter")
    }

    /// The filter as the query document MongoDB runs with the same meaning (implicit equality
    /// is written `$eq`, which is how it is evaluated here). `None` only when a key would repeat,
    /// which a filter read from JSON cannot do.
    pub fn query(&self) -> Option<&Document> {
        self.query.as_ref()
    }

    pub fn matches(&self, doc: &Fields<'_>) -> bool {
        self.clauses.iter().all(|c| match c {
            CompiledClause::Field { path, ops } => {
                ops.iter().all(|op| holds(op, doc, &path.segments))
            }
            CompiledClause::And(list) => list.iter().all(|f| f.matches(doc)),
            CompiledClause::Or(list) => list.iter().any(|f| f.matches(doc)),
        })
    }
}

fn compile_at(filter: &Filter, at: &str) -> Result<CompiledFilter, CompileError> {
    let mut clauses = Vec::with_capacity(filter.clauses.len());
    let mut query = Some(Document::new());
    for c in &filter.clauses {
        clauses.push(match c {
            Clause::Field { path, condition } => {
                let p = format!("{at}.{path}");
                let ops = match condition {
                    Condition::Equals(v) => vec![Op::Eq(value(v, &p)?)],
                    Condition::Operators(ops) => compile_ops(ops, &p)?,
                };
                add(&mut query, path, operators_query(&ops).map(Bson::Document));
                CompiledClause::Field {
                    path: FieldPath::new(path),
                    ops,
                }
            }
            Clause::And(list) => {
                let list = compile_list(list, &format!("{at}.$and"))?;
                add(&mut query, "$and", queries(&list));
                CompiledClause::And(list)
            }
            Clause::Or(list) => {
                let list = compile_list(list, &format!("{at}.$or"))?;
                add(&mut query, "$or", queries(&list));
                CompiledClause::Or(list)
            }
        });
    }
    Ok(CompiledFilter { clauses, query })
}

/// Adds `key: value` to a query being written. A document holds each key once, so a repeated
/// key (or a part that could not be written) leaves no query at all rather than a wrong one.
fn add(query: &mut Option<Document>, key: &str, value: Option<Bson>) {
    let added = match (query.as_mut(), value) {
        (Some(q), Some(v)) => q.insert(key, v).is_none(),
        _ => false,
    };
    if !added {
        *query = None;
    }
}

/// The queries of `$and`/`$or` members, as an array.
fn queries(list: &[CompiledFilter]) -> Option<Bson> {
    list.iter()
        .map(|f| f.query.clone().map(Bson::Document))
        .collect::<Option<Vec<_>>>()
        .map(Bson::Array)
}

/// `{$op: value, ..}` for the operators on one field.
fn operators_query(ops: &[Op]) -> Option<Document> {
    let mut query = Some(Document::new());
    for op in ops {
        let (name, arg) = match op {
            Op::Eq(v) => ("$eq", v.clone()),
            Op::Ne(v) => ("$ne", v.clone()),
            Op::Gt(v) => ("$gt", v.clone()),
            Op::Gte(v) => ("$gte", v.clone()),
            Op::Lt(v) => ("$lt", v.clone()),
            Op::Lte(v) => ("$lte", v.clone()),
            Op::In(vs) => ("$in", Bson::Array(vs.clone())),
            Op::Nin(vs) => ("$nin", Bson::Array(vs.clone())),
            Op::Exists(b) => ("$exists", Bson::Boolean(*b)),
            Op::Not(inner) => match operators_query(inner) {
                Some(q) => ("$not", Bson::Document(q)),
                None => return None,
            },
        };
        add(&mut query, name, Some(arg));
    }
    query
}

fn compile_list(list: &[Filter], at: &str) -> Result<Vec<CompiledFilter>, CompileError> {
    list.iter()
        .enumerate()
        .map(|(i, f)| compile_at(f, &format!("{at}[{i}]")))
        .collect()
}

fn value(v: &serde_json::Value, at: &str) -> Result<Bson, CompileError> {
    json_to_bson(v).map_err(|m| (at.to_string(), m))
}

fn compile_ops(ops: &[Operator], at: &str) -> Result<Vec<Op>, CompileError> {
    ops.iter()
        .map(|op| {
            let p = format!("{at}.{}", op.name());
            let list = |vs: &[serde_json::Value]| -> Result<Vec<Bson>, CompileError> {
                vs.iter()
                    .enumerate()
                    .map(|(i, v)| value(v, &format!("{p}[{i}]")))
                    .collect()
            };
            Ok(match op {
                Operator::Eq(v) => Op::Eq(value(v, &p)?),
                Operator::Ne(v) => Op::Ne(value(v, &p)?),
                Operator::Gt(v) => Op::Gt(value(v, &p)?),
                Operator::Gte(v) => Op::Gte(value(v, &p)?),
                Operator::Lt(v) => Op::Lt(value(v, &p)?),
                Operator::Lte(v) => Op::Lte(value(v, &p)?),
                Operator::In(vs) => Op::In(list(vs)?),
                Operator::Nin(vs) => Op::Nin(list(vs)?),
                Operator::Exists(b) => Op::Exists(*b),
                Operator::Not(inner) => Op::Not(compile_ops(inner, &p)?),
            })
        })
        .collect()
}

/// `any_in_doc` from a raw document's fields: only the path's top-level field is decoded.
fn any_in_raw(
    doc: &Fields<'_>,
    path: &[Segment],
    f: &mut impl FnMut(Option<&Bson>) -> bool,
) -> bool {
    let Some((first, rest)) = path.split_first() else {
        return false;
    };
    match doc.decoded(&first.name) {
        None => f(None),
        Some(v) => any_in_value(&v, rest, f),
    }
}

/// Calls `f` for every value the path reaches (`None` where it ends at a missing field) until
/// `f` returns true. A path ending at an array yields the array and then each element.
fn any_in_doc<'a>(
    doc: &'a Document,
    path: &[Segment],
    f: &mut impl FnMut(Option<&'a Bson>) -> bool,
) -> bool {
    let Some((first, rest)) = path.split_first() else {
        return false;
    };
    match doc.get(&*first.name) {
        None => f(None),
        Some(v) => any_in_value(v, rest, f),
    }
}

fn any_in_value<'a>(
    v: &'a Bson,
    rest: &[Segment],
    f: &mut impl FnMut(Option<&'a Bson>) -> bool,
) -> bool {
    if rest.is_empty() {
        if f(Some(v)) {
            return true;
        }
        if let Bson::Array(items) = v {
            return items.iter().any(|e| f(Some(e)));
        }
        return false;
    }
    match v {
        Bson::Document(d) => any_in_doc(d, rest, f),
        Bson::Array(items) => {
            if let Some(i) = rest[0].index
                && let Some(e) = items.get(i)
                && any_in_value(e, &rest[1..], f)
            {
                return true;
            }
            items
                .iter()
                .any(|e| matches!(e, Bson::Document(d) if any_in_doc(d, rest, f)))
        }
        _ => f(None),
    }
}

fn eq_match(candidate: Option<&Bson>, v: &Bson) -> bool {
    match candidate {
        None => matches!(v, Bson::Null),
        Some(c) => values::equal(c, v),
    }
}

/// `$gt`-style comparison; against null only `$gte`/`$lte` match (null or missing), as in MongoDB.
fn cmp_match(candidate: Option<&Bson>, v: &Bson, accept: fn(Ordering) -> bool) -> bool {
    if matches!(v, Bson::Null) {
        return matches!(candidate, None | Some(Bson::Null | Bson::Undefined))
            && accept(Ordering::Equal);
    }
    match candidate {
        Some(c) if values::bracket(c) == values::bracket(v) => accept(values::compare(c, v)),
        _ => false,
    }
}

fn holds(op: &Op, doc: &Fields<'_>, path: &[Segment]) -> bool {
    match op {
        Op::Eq(v) => any_in_raw(doc, path, &mut |c| eq_match(c, v)),
        Op::Ne(v) => !any_in_raw(doc, path, &mut |c| eq_match(c, v)),
        Op::Gt(v) => any_in_raw(doc, path, &mut |c| cmp_match(c, v, Ordering::is_gt)),
        Op::Gte(v) => any_in_raw(doc, path, &mut |c| cmp_match(c, v, Ordering::is_ge)),
        Op::Lt(v) => any_in_raw(doc, path, &mut |c| cmp_match(c, v, Ordering::is_lt)),
        Op::Lte(v) => any_in_raw(doc, path, &mut |c| cmp_match(c, v, Ordering::is_le)),
        Op::In(vs) => any_in_raw(doc, path, &mut |c| vs.iter().any(|v| eq_match(c, v))),
        Op::Nin(vs) => !any_in_raw(doc, path, &mut |c| vs.iter().any(|v| eq_match(c, v))),
        Op::Exists(want) => any_in_raw(doc, path, &mut |c| c.is_some()) == *want,
        Op::Not(ops) => !ops.iter().all(|op| holds(op, doc, path)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rows::raw;
    use bson::oid::ObjectId;
    use bson::{Decimal128, doc};
    use serde_json::json;

    const OID: &str = "5f0c9a8e1c9d440000a1b2c3";

    fn f(v: serde_json::Value) -> CompiledFilter {
        CompiledFilter::compile(&Filter::from_json(&v).unwrap()).unwrap()
    }

    #[test]
    fn equality_and_discriminators() {
        let chats = f(json!({"t": {"$eq": "d"}}));
        assert!(chats.matches(&Fields::of(&raw(doc! {"t": "d"}))));
        assert!(!chats.matches(&Fields::of(&raw(doc! {"t": "c"}))));
        assert!(!chats.matches(&Fields::of(&raw(doc! {}))));
        assert!(f(json!({"t": "p"})).matches(&Fields::of(&raw(doc! {"t": "p", "x": 1}))));
        assert!(
            f(json!({})).matches(&Fields::of(&raw(doc! {"a": 1}))),
            "an empty filter matches everything"
        );
    }

    #[test]
    fn object_ids_and_dates_match() {
        let oid = ObjectId::parse_str(OID).unwrap();
        let by_id = f(json!({"owner": {"$oid": OID}}));
        assert!(by_id.matches(&Fields::of(&raw(doc! {"owner": oid}))));
        assert!(
            !by_id.matches(&Fields::of(&raw(doc! {"owner": OID}))),
            "a hex string is not an ObjectId"
        );
        assert!(
            f(json!({"owner": {"$in": [{"$oid": "5f0c9a8e1c9d440000a1b2c4"}, {"$oid": OID}]}}))
                .matches(&Fields::of(&raw(doc! {"owner": oid})))
        );
        assert!(
            f(json!({"owner": {"$gt": {"$oid": "5f0c9a8e1c9d440000a1b2c2"}}}))
                .matches(&Fields::of(&raw(doc! {"owner": oid})))
        );

        let at = bson::DateTime::from_millis(1_714_564_800_000);
        let since = f(json!({"at": {"$gte": {"$date": "2024-05-01T12:00:00Z"}}}));
        assert!(since.matches(&Fields::of(&raw(doc! {"at": at}))));
        assert!(!since.matches(&Fields::of(&raw(
            doc! {"at": bson::DateTime::from_millis(1_714_564_799_999)}
        ))));
        assert!(
            !since.matches(&Fields::of(&raw(doc! {"at": "2024-05-02T00:00:00Z"}))),
            "a string is not a date"
        );
        assert!(
            !since.matches(&Fields::of(&raw(doc! {"at": 1_714_564_800_001i64}))),
            "a number is not a date"
        );
        assert!(
            f(json!({"at": {"$date": "2024-05-01T12:00:00.000Z"}}))
                .matches(&Fields::of(&raw(doc! {"at": at})))
        );
    }

    #[test]
    fn numbers_compare_across_widths() {
        assert!(f(json!({"n": 1})).matches(&Fields::of(&raw(doc! {"n": 1.0}))));
        assert!(f(json!({"n": 1.0})).matches(&Fields::of(&raw(doc! {"n": 1i64}))));
        assert!(f(json!({"n": {"$numberLong": "1"}})).matches(&Fields::of(&raw(doc! {"n": 1i32}))));
        assert!(
            f(json!({"n": {"$numberDecimal": "2.50"}})).matches(&Fields::of(&raw(doc! {"n": 2.5})))
        );
        let dec: Decimal128 = "2.5".parse().unwrap();
        assert!(f(json!({"n": {"$gt": 2}})).matches(&Fields::of(&raw(doc! {"n": dec}))));
        assert!(!f(json!({"n": {"$gt": 3}})).matches(&Fields::of(&raw(doc! {"n": dec}))));
        assert!(f(json!({"n": {"$gt": 2, "$lt": 3}})).matches(&Fields::of(&raw(doc! {"n": 2.5}))));
        assert!(
            !f(json!({"n": {"$gt": 2, "$lt": 3}})).matches(&Fields::of(&raw(doc! {"n": 3i64}))),
            "every operator on a field must hold"
        );
        assert!(
            !f(json!({"n": {"$gt": 2, "$lt": 3}})).matches(&Fields::of(&raw(doc! {"n": 1}))),
            "every operator on a field must hold"
        );
        assert!(
            !f(json!({"n": {"$gt": 1}})).matches(&Fields::of(&raw(doc! {"n": "5"}))),
            "strings are not numbers"
        );
        assert!(f(json!({"s": {"$lt": "b"}})).matches(&Fields::of(&raw(doc! {"s": "abc"}))));
    }

    #[test]
    fn arrays_and_dotted_paths() {
        let tag = f(json!({"tags": "x"}));
        assert!(tag.matches(&Fields::of(&raw(doc! {"tags": ["y", "x"]}))));
        assert!(!tag.matches(&Fields::of(&raw(doc! {"tags": ["y"]}))));
        assert!(
            f(json!({"tags": ["y", "x"]})).matches(&Fields::of(&raw(doc! {"tags": ["y", "x"]}))),
            "whole-array equality"
        );
        assert!(
            !f(json!({"tags": ["x", "y"]})).matches(&Fields::of(&raw(doc! {"tags": ["y", "x"]})))
        );
        assert!(
            f(json!({"tags": {"$in": ["z", "x"]}}))
                .matches(&Fields::of(&raw(doc! {"tags": ["x"]})))
        );
        assert!(
            f(json!({"scores": {"$gt": 8}})).matches(&Fields::of(&raw(doc! {"scores": [1, 9]})))
        );
        assert!(
            !f(json!({"scores": {"$gt": 9}})).matches(&Fields::of(&raw(doc! {"scores": [1, 9]})))
        );
        let dotted = f(json!({"members.role": "owner"}));
        assert!(dotted.matches(&Fields::of(&raw(
            doc! {"members": [{"role": "user"}, {"role": "owner"}]}
        ))));
        assert!(dotted.matches(&Fields::of(&raw(doc! {"members": {"role": "owner"}}))));
        assert!(!dotted.matches(&Fields::of(&raw(doc! {"members": [{"role": "user"}]}))));
        assert!(
            f(json!({"a.b.c": 1}))
                .matches(&Fields::of(&raw(doc! {"a": [{"b": [{"c": 2}, {"c": 1}]}]})))
        );
        assert!(
            f(json!({"a.1": "y"})).matches(&Fields::of(&raw(doc! {"a": ["x", "y"]}))),
            "numeric segments index arrays"
        );
        assert!(!f(json!({"a.0": "y"})).matches(&Fields::of(&raw(doc! {"a": ["x", "y"]}))));
        assert!(f(json!({"a.x": {"$exists": false}})).matches(&Fields::of(&raw(doc! {"a": 5}))));
    }

    #[test]
    fn missing_and_null() {
        let null = f(json!({"f": null}));
        assert!(null.matches(&Fields::of(&raw(doc! {}))));
        assert!(null.matches(&Fields::of(&raw(doc! {"f": null}))));
        assert!(!null.matches(&Fields::of(&raw(doc! {"f": 0}))));
        assert!(
            f(json!({"f": {"$ne": 5}})).matches(&Fields::of(&raw(doc! {}))),
            "$ne holds when the field is missing"
        );
        assert!(!f(json!({"f": {"$ne": 5}})).matches(&Fields::of(&raw(doc! {"f": [1, 5]}))));
        assert!(f(json!({"f": {"$nin": [1, 2]}})).matches(&Fields::of(&raw(doc! {}))));
        assert!(!f(json!({"f": {"$nin": [1, 2]}})).matches(&Fields::of(&raw(doc! {"f": 2}))));
        assert!(!f(json!({"f": {"$gt": 1}})).matches(&Fields::of(&raw(doc! {}))));
        assert!(f(json!({"f": {"$exists": true}})).matches(&Fields::of(&raw(doc! {"f": null}))));
        assert!(!f(json!({"f": {"$exists": true}})).matches(&Fields::of(&raw(doc! {}))));
        assert!(f(json!({"f": {"$exists": false}})).matches(&Fields::of(&raw(doc! {"g": 1}))));
        assert!(f(json!({"f": {"$gte": null}})).matches(&Fields::of(&raw(doc! {}))));
        assert!(!f(json!({"f": {"$gt": null}})).matches(&Fields::of(&raw(doc! {}))));
        assert!(f(json!({"f": {"$in": [null]}})).matches(&Fields::of(&raw(doc! {}))));
        assert!(f(json!({"a.b": null})).matches(&Fields::of(&raw(doc! {"a": [{"c": 1}]}))));
    }

    #[test]
    fn each_filter_is_also_the_mongodb_query_of_the_same_meaning() {
        let q = |v: serde_json::Value| f(v).query().cloned();
        let oid = ObjectId::parse_str(OID).unwrap();
        assert_eq!(
            q(json!({"t": "c"})),
            Some(doc! {"t": {"$eq": "c"}}),
            "implicit equality is written as the $eq it is evaluated as"
        );
        assert_eq!(
            q(json!({"t": {"$in": ["p"]}, "n": {"$gt": 1, "$lte": {"$numberLong": "10"}}})),
            Some(doc! {"t": {"$in": ["p"]}, "n": {"$gt": 1, "$lte": 10i64}})
        );
        assert_eq!(
            q(json!({"owner": {"$oid": OID}, "at": {"$gte": {"$date": "2024-05-01T12:00:00Z"}}})),
            Some(doc! {
                "owner": {"$eq": oid},
                "at": {"$gte": bson::DateTime::from_millis(1_714_564_800_000)},
            }),
            "extended JSON becomes the BSON type it names"
        );
        assert_eq!(
            q(
                json!({"$or": [{"t": "c"}, {"t": "p", "archived": {"$ne": true}}], "n": {"$not": {"$gt": 5}}})
            ),
            Some(doc! {
                "$or": [{"t": {"$eq": "c"}}, {"t": {"$eq": "p"}, "archived": {"$ne": true}}],
                "n": {"$not": {"$gt": 5}},
            })
        );
        assert_eq!(
            q(json!({"$and": [{"f": null}, {"g": {"$exists": false, "$nin": [1, 2]}}]})),
            Some(doc! {"$and": [{"f": {"$eq": null}}, {"g": {"$exists": false, "$nin": [1, 2]}}]})
        );
        assert_eq!(q(json!({})), Some(doc! {}));
        let repeated = Filter::eq("t", "c").and(Filter::eq("t", "p"));
        assert_eq!(
            CompiledFilter::compile(&repeated).unwrap().query(),
            None,
            "a repeated key has no single query document, so none is made"
        );
    }

    #[test]
    fn logical_operators() {
        let either = f(json!({"$or": [{"t": "c"}, {"t": "p", "archived": {"$ne": true}}]}));
        assert!(either.matches(&Fields::of(&raw(doc! {"t": "c"}))));
        assert!(either.matches(&Fields::of(&raw(doc! {"t": "p"}))));
        assert!(!either.matches(&Fields::of(&raw(doc! {"t": "p", "archived": true}))));
        assert!(!either.matches(&Fields::of(&raw(doc! {"t": "d"}))));
        let both = f(json!({"$and": [{"n": {"$gte": 1}}, {"$or": [{"n": 5}, {"m": 1}]}]}));
        assert!(both.matches(&Fields::of(&raw(doc! {"n": 5}))));
        assert!(both.matches(&Fields::of(&raw(doc! {"n": 2, "m": 1}))));
        assert!(!both.matches(&Fields::of(&raw(doc! {"n": 2}))));
        let not = f(json!({"n": {"$not": {"$gt": 5}}}));
        assert!(not.matches(&Fields::of(&raw(doc! {"n": 3}))));
        assert!(
            not.matches(&Fields::of(&raw(doc! {}))),
            "$not matches a missing field"
        );
        assert!(!not.matches(&Fields::of(&raw(doc! {"n": 6}))));
        let not_range = f(json!({"n": {"$not": {"$gt": 1, "$lt": 5}}}));
        assert!(not_range.matches(&Fields::of(&raw(doc! {"n": 7}))));
        assert!(!not_range.matches(&Fields::of(&raw(doc! {"n": 3}))));
        let systems = f(json!({"t": {"$in": ["USER_JOINED", "USER_LEFT"]}}));
        assert!(systems.matches(&Fields::of(&raw(doc! {"t": "USER_LEFT"}))));
        assert!(!systems.matches(&Fields::of(&raw(doc! {"t": "USER"}))));
    }
}
