//! Projection application with MongoDB `$project` semantics, compiled per column.
//!
//! Instead of building a projected document for every change event and then reading columns
//! out of it, each column gets a small plan at start-up that says where its value comes from
//! (a field, a renamed path, a cast, a trimmed sub-document). A plan reads the change event's
//! raw document and decodes only the top-level field it starts from.

use std::borrow::Cow;

use bson::oid::ObjectId;
use bson::{Bson, Decimal128, Document};
use zerostack_spec::extjson::{format_iso8601_millis, parse_iso8601_millis, parse_special_float};
use zerostack_spec::projection::{Cast, CastInput, CastType, Projection, ProjectionField};

use super::fields::Fields;
use super::values::{json_to_bson, type_name};

type Path = Vec<String>;

fn split(path: &str) -> Path {
    path.split('.').map(str::to_string).collect()
}

/// Where one column's value comes from.
#[derive(Debug, Clone)]
pub(crate) enum Plan {
    /// Never present (excluded, or left out of an inclusion projection).
    Missing,
    /// The top-level field of this name.
    Field(String),
    /// The field with some sub-paths removed (exclusion of `a.b`).
    Without(String, Vec<Path>),
    /// The field trimmed to some sub-paths (inclusion of `a.b`).
    Only(String, Vec<Path>),
    /// `"$a.b"`: an aggregation path (arrays of sub-documents give arrays).
    Path(Path),
    Cast(Box<CompiledCast>),
}

#[derive(Debug, Clone)]
pub(crate) struct CompiledCast {
    to: CastType,
    input: Input,
    on_error: Option<Bson>,
    on_null: Option<Bson>,
}

#[derive(Debug, Clone)]
enum Input {
    Path(Path),
    Literal(Bson),
}

/// A column's value before conversion.
#[derive(Debug)]
pub(crate) enum Eval<'a> {
    Missing,
    Value(Cow<'a, Bson>),
    /// A cast failed on a value of this BSON type (and had no `onError`).
    CastFailed(&'static str),
}

impl Plan {
    /// The plan of the column whose server name is `column`, under `projection`.
    pub(crate) fn compile(
        column: &str,
        projection: Option<&Projection>,
    ) -> Result<Plan, (String, String)> {
        let Some(p) = projection else {
            return Ok(Plan::Field(column.to_string()));
        };
        let prefix = format!("{column}.");
        let sub_paths = |want: &ProjectionField| -> Vec<Path> {
            p.fields
                .iter()
                .filter(|(k, f)| *f == want && k.starts_with(&prefix))
                .map(|(k, _)| split(&k[prefix.len()..]))
                .collect()
        };
        if p.is_exclusion() {
            if p.fields.get(column) == Some(&ProjectionField::Exclude) {
                return Ok(Plan::Missing);
            }
            let removed = sub_paths(&ProjectionField::Exclude);
            return Ok(if removed.is_empty() {
                Plan::Field(column.to_string())
            } else {
                Plan::Without(column.to_string(), removed)
            });
        }
        let at = format!("projection.{column}");
        Ok(match p.fields.get(column) {
            Some(ProjectionField::Include) => Plan::Field(column.to_string()),
            Some(ProjectionField::Exclude) => Plan::Missing,
            Some(ProjectionField::Path(path)) => Plan::Path(split(path)),
            Some(ProjectionField::Cast(c)) => Plan::Cast(Box::new(compile_cast(c, &at)?)),
            None => {
                let kept = sub_paths(&ProjectionField::Include);
                if !kept.is_empty() {
                    Plan::Only(column.to_string(), kept)
                } else if column == "_id" && p.keeps_id() {
                    Plan::Field(column.to_string())
                } else {
                    Plan::Missing
                }
            }
        })
    }

    /// Whether the value comes from `_id` alone (or is constant), so that a change event's
    /// `documentKey`, which always holds `_id`, gives it.
    pub(crate) fn reads_only_id(&self) -> bool {
        let from_id = |p: &[String]| p.first().is_some_and(|f| f == "_id");
        match self {
            Plan::Missing => true,
            Plan::Field(name) | Plan::Without(name, _) | Plan::Only(name, _) => name == "_id",
            Plan::Path(p) => from_id(p),
            Plan::Cast(c) => match &c.input {
                Input::Path(p) => from_id(p),
                Input::Literal(_) => true,
            },
        }
    }

    /// The column's value in `doc` (a full document, or a change event's `documentKey`).
    ///
    /// Only the top-level field the plan starts from is decoded; the rest of the document is
    /// never materialized.
    pub(crate) fn eval<'a>(&'a self, doc: &Fields<'_>) -> Eval<'a> {
        match self {
            Plan::Missing => Eval::Missing,
            Plan::Field(name) => doc.decoded(name).map_or(Eval::Missing, Eval::owned),
            Plan::Without(name, removed) => match doc.decoded(name) {
                None => Eval::Missing,
                Some(mut v) => {
                    for path in removed {
                        remove_in(&mut v, path);
                    }
                    Eval::owned(v)
                }
            },
            Plan::Only(name, kept) => match doc.decoded(name).and_then(|v| keep(&v, kept)) {
                None => Eval::Missing,
                Some(v) => Eval::owned(v),
            },
            Plan::Path(path) => resolve_path(doc, path).map_or(Eval::Missing, Eval::owned),
            Plan::Cast(c) => c.eval(doc),
        }
    }
}

impl Eval<'_> {
    fn owned(v: Bson) -> Self {
        Eval::Value(Cow::Owned(v))
    }
}

fn compile_cast(c: &Cast, at: &str) -> Result<CompiledCast, (String, String)> {
    let lit = |v: &serde_json::Value, what: &str| {
        json_to_bson(v).map_err(|m| (format!("{at}.{what}"), m))
    };
    Ok(CompiledCast {
        to: c.to,
        input: match &c.input {
            CastInput::Path(p) => Input::Path(split(p)),
            CastInput::Literal(v) => Input::Literal(lit(v, "input")?),
        },
        on_error: c.on_error.as_ref().map(|v| lit(v, "onError")).transpose()?,
        on_null: c.on_null.as_ref().map(|v| lit(v, "onNull")).transpose()?,
    })
}

impl CompiledCast {
    fn eval<'a>(&'a self, doc: &Fields<'_>) -> Eval<'a> {
        let input = match &self.input {
            Input::Path(p) => resolve_path(doc, p).map(Cow::Owned),
            Input::Literal(b) => Some(Cow::Borrowed(b)),
        };
        let input = match input.as_deref() {
            None | Some(Bson::Null | Bson::Undefined) => {
                return self
                    .on_null
                    .as_ref()
                    .map_or(Eval::Missing, |v| Eval::Value(Cow::Borrowed(v)));
            }
            Some(v) => v,
        };
        match cast(self.to, input) {
            Some(v) => Eval::Value(Cow::Owned(v)),
            None => match &self.on_error {
                Some(v) => Eval::Value(Cow::Borrowed(v)),
                None => Eval::CastFailed(type_name(input)),
            },
        }
    }
}

/// An aggregation path (`"$a.b"`): through arrays it collects the values found in their
/// sub-documents; numeric segments are field names, not indexes.
fn resolve_path(doc: &Fields<'_>, path: &[String]) -> Option<Bson> {
    let (first, rest) = path.split_first()?;
    let top = doc.decoded(first)?;
    resolve_in(&top, rest).map(Cow::into_owned)
}

/// The value at `rest` below `v`, MongoDB's way: through an array, the values of its documents
/// (and nested arrays) at that path. Pipelines resolve their field paths with it too.
pub(crate) fn resolve_in<'a>(v: &'a Bson, rest: &[String]) -> Option<Cow<'a, Bson>> {
    if rest.is_empty() {
        return Some(Cow::Borrowed(v));
    }
    match v {
        Bson::Document(d) => resolve_in(d.get(&rest[0])?, &rest[1..]),
        Bson::Array(items) => Some(Cow::Owned(Bson::Array(
            items
                .iter()
                .filter(|e| matches!(e, Bson::Document(_) | Bson::Array(_)))
                .filter_map(|e| resolve_in(e, rest).map(Cow::into_owned))
                .collect(),
        ))),
        _ => None,
    }
}

/// Inclusion of sub-paths: sub-documents keep only those paths (in their own field order);
/// arrays keep their sub-documents, trimmed, and drop scalars; a scalar is dropped.
fn keep(v: &Bson, paths: &[Path]) -> Option<Bson> {
    match v {
        Bson::Document(d) => {
            let mut out = Document::new();
            for (k, val) in d {
                let mut whole = false;
                let mut deeper: Vec<Path> = Vec::new();
                for p in paths.iter().filter(|p| p.first() == Some(k)) {
                    if p.len() == 1 {
                        whole = true;
                    } else {
                        deeper.push(p[1..].to_vec());
                    }
                }
                if whole {
                    out.insert(k.clone(), val.clone());
                } else if !deeper.is_empty()
                    && let Some(sub) = keep(val, &deeper)
                {
                    out.insert(k.clone(), sub);
                }
            }
            Some(Bson::Document(out))
        }
        Bson::Array(items) => Some(Bson::Array(
            items
                .iter()
                .filter_map(|e| match e {
                    Bson::Document(_) | Bson::Array(_) => keep(e, paths),
                    _ => None,
                })
                .collect(),
        )),
        _ => None,
    }
}

/// Exclusion of a sub-path, in place (through arrays of sub-documents).
fn remove_in(v: &mut Bson, path: &[String]) {
    let Some((first, rest)) = path.split_first() else {
        return;
    };
    match v {
        Bson::Document(d) if rest.is_empty() => {
            d.remove(first);
        }
        Bson::Document(d) => {
            if let Some(inner) = d.get_mut(first) {
                remove_in(inner, rest);
            }
        }
        Bson::Array(items) => items.iter_mut().for_each(|e| remove_in(e, path)),
        _ => {}
    }
}

fn to_f64(v: &Bson) -> Option<f64> {
    match v {
        Bson::Int32(i) => Some(f64::from(*i)),
        Bson::Int64(i) => Some(*i as f64),
        Bson::Double(f) => Some(*f),
        Bson::Decimal128(d) => d.to_string().parse().ok(),
        _ => None,
    }
}

/// A finite number truncated towards zero, as `$toInt`/`$toLong` do.
fn to_i64(v: &Bson) -> Option<i64> {
    match v {
        Bson::Int32(i) => Some(i64::from(*i)),
        Bson::Int64(i) => Some(*i),
        Bson::Boolean(b) => Some(i64::from(*b)),
        Bson::String(s) => s.trim().parse().ok(),
        _ => {
            let f = to_f64(v)?.trunc();
            (-9.223_372_036_854_776e18..9.223_372_036_854_776e18)
                .contains(&f)
                .then_some(f as i64)
        }
    }
}

/// `$toString` of a double: integers without a fraction, like MongoDB.
fn double_string(f: f64) -> String {
    if f.is_nan() {
        "NaN".into()
    } else if f.is_infinite() {
        if f > 0.0 {
            "Infinity".into()
        } else {
            "-Infinity".into()
        }
    } else {
        format!("{f}")
    }
}

/// MongoDB's `$convert` rules for the supported targets. `None`: the value cannot be converted.
fn cast(to: CastType, v: &Bson) -> Option<Bson> {
    Some(match to {
        CastType::String => Bson::String(match v {
            Bson::String(s) | Bson::Symbol(s) => s.clone(),
            Bson::ObjectId(o) => o.to_hex(),
            Bson::DateTime(d) => format_iso8601_millis(d.timestamp_millis()),
            Bson::Int32(i) => i.to_string(),
            Bson::Int64(i) => i.to_string(),
            Bson::Double(f) => double_string(*f),
            Bson::Decimal128(d) => d.to_string(),
            Bson::Boolean(b) => b.to_string(),
            _ => return None,
        }),
        CastType::Int => {
            Bson::Int32(i32::try_from(to_i64(v).filter(|_| !matches!(v, Bson::DateTime(_)))?).ok()?)
        }
        CastType::Long => Bson::Int64(match v {
            Bson::DateTime(d) => d.timestamp_millis(),
            _ => to_i64(v)?,
        }),
        CastType::Double => Bson::Double(match v {
            Bson::DateTime(d) => d.timestamp_millis() as f64,
            Bson::Boolean(b) => f64::from(u8::from(*b)),
            Bson::String(s) => parse_special_float(s.trim())?,
            _ => to_f64(v)?,
        }),
        CastType::Decimal => Bson::Decimal128(match v {
            Bson::Decimal128(d) => *d,
            Bson::Int32(i) => i.to_string().parse().ok()?,
            Bson::Int64(i) => i.to_string().parse().ok()?,
            Bson::Double(f) => double_string(*f).parse().ok()?,
            Bson::Boolean(b) => u8::from(*b).to_string().parse().ok()?,
            Bson::DateTime(d) => d.timestamp_millis().to_string().parse().ok()?,
            Bson::String(s) => s.trim().parse::<Decimal128>().ok()?,
            _ => return None,
        }),
        CastType::Bool => Bson::Boolean(match v {
            Bson::Boolean(b) => *b,
            Bson::Int32(_) | Bson::Int64(_) | Bson::Double(_) | Bson::Decimal128(_) => {
                to_f64(v)? != 0.0
            }
            _ => true,
        }),
        CastType::Date => Bson::DateTime(bson::DateTime::from_millis(match v {
            Bson::DateTime(d) => d.timestamp_millis(),
            Bson::Int32(i) => i64::from(*i),
            Bson::Int64(i) => *i,
            Bson::Double(_) | Bson::Decimal128(_) => to_i64(v)?,
            Bson::String(s) => parse_iso8601_millis(s.trim())?,
            Bson::ObjectId(o) => {
                let b = o.bytes();
                i64::from(u32::from_be_bytes([b[0], b[1], b[2], b[3]])) * 1000
            }
            Bson::Timestamp(t) => i64::from(t.time) * 1000,
            _ => return None,
        })),
        CastType::ObjectId => Bson::ObjectId(match v {
            Bson::ObjectId(o) => *o,
            Bson::String(s) => ObjectId::parse_str(s).ok()?,
            _ => return None,
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::doc;
    use serde_json::json;

    fn plan(column: &str, p: serde_json::Value) -> Plan {
        Plan::compile(column, Some(&Projection::from_json(&p).unwrap())).unwrap()
    }

    fn value(column: &str, p: serde_json::Value, d: &Document) -> Option<Bson> {
        match plan(column, p).eval(&Fields::of(&crate::rows::raw(d.clone()))) {
            Eval::Missing => None,
            Eval::Value(v) => Some(v.into_owned()),
            Eval::CastFailed(t) => panic!("cast failed on {t}"),
        }
    }

    #[test]
    fn casts_follow_mongodb() {
        let oid = ObjectId::parse_str("5f0c9a8e1c9d440000a1b2c3").unwrap();
        let date = bson::DateTime::from_millis(1_000);
        assert_eq!(
            cast(CastType::String, &Bson::ObjectId(oid)),
            Some(Bson::String(oid.to_hex()))
        );
        assert_eq!(
            cast(CastType::String, &Bson::DateTime(date)),
            Some(Bson::String("1970-01-01T00:00:01.000Z".into()))
        );
        assert_eq!(
            cast(CastType::String, &Bson::Double(2.0)),
            Some(Bson::String("2".into()))
        );
        assert_eq!(
            cast(CastType::String, &Bson::Int64(-3)),
            Some(Bson::String("-3".into()))
        );
        assert_eq!(cast(CastType::String, &Bson::Document(doc! {})), None);
        assert_eq!(
            cast(CastType::Int, &Bson::String("42".into())),
            Some(Bson::Int32(42))
        );
        assert_eq!(
            cast(CastType::Int, &Bson::Double(-2.9)),
            Some(Bson::Int32(-2))
        );
        assert_eq!(cast(CastType::Int, &Bson::Int64(1 << 40)), None);
        assert_eq!(cast(CastType::Int, &Bson::String("4x".into())), None);
        assert_eq!(
            cast(CastType::Long, &Bson::DateTime(date)),
            Some(Bson::Int64(1000))
        );
        assert_eq!(
            cast(CastType::Double, &Bson::String("1.5".into())),
            Some(Bson::Double(1.5))
        );
        assert_eq!(
            cast(CastType::Double, &Bson::Boolean(true)),
            Some(Bson::Double(1.0))
        );
        assert_eq!(
            cast(CastType::Decimal, &Bson::Int32(7)),
            Some(Bson::Decimal128("7".parse().unwrap()))
        );
        assert_eq!(
            cast(CastType::Bool, &Bson::Int32(0)),
            Some(Bson::Boolean(false))
        );
        assert_eq!(
            cast(CastType::Bool, &Bson::String(String::new())),
            Some(Bson::Boolean(true))
        );
        assert_eq!(
            cast(CastType::Date, &Bson::String("1970-01-01T00:00:02Z".into())),
            Some(Bson::DateTime(bson::DateTime::from_millis(2000)))
        );
        assert_eq!(
            cast(CastType::Date, &Bson::ObjectId(oid)),
            Some(Bson::DateTime(bson::DateTime::from_millis(
                0x5f0c_9a8e_i64 * 1000
            )))
        );
        assert_eq!(
            cast(CastType::ObjectId, &Bson::String(oid.to_hex())),
            Some(Bson::ObjectId(oid))
        );
        assert_eq!(cast(CastType::ObjectId, &Bson::String("nope".into())), None);
    }

    #[test]
    fn plans() {
        let d = doc! {"_id": 1, "a": {"b": 1, "c": 2}, "list": [{"x": 1, "y": 2}, {"x": 3}, 7], "s": "5"};
        assert_eq!(
            value("_id", json!({"a": 1}), &d),
            Some(Bson::Int32(1)),
            "inclusion keeps _id"
        );
        assert_eq!(value("_id", json!({"a": 1, "_id": 0}), &d), None);
        assert_eq!(
            value("s", json!({"a": 1}), &d),
            None,
            "left out of an inclusion"
        );
        assert_eq!(
            value("a", json!({"a.b": 1}), &d),
            Some(Bson::Document(doc! {"b": 1}))
        );
        assert_eq!(
            value("list", json!({"list.x": 1}), &d),
            Some(Bson::Array(vec![
                Bson::Document(doc! {"x": 1}),
                Bson::Document(doc! {"x": 3})
            ]))
        );
        assert_eq!(value("s", json!({"list.x": 1}), &d), None);
        assert_eq!(
            value("a", json!({"a.c": 0}), &d),
            Some(Bson::Document(doc! {"b": 1}))
        );
        assert_eq!(
            value("list", json!({"list.y": 0}), &d),
            Some(bson::bson!([{"x": 1}, {"x": 3}, 7]))
        );
        assert_eq!(
            value("a", json!({"s": 0}), &d),
            Some(Bson::Document(doc! {"b": 1, "c": 2}))
        );
        assert_eq!(value("s", json!({"s": 0}), &d), None);
        assert_eq!(
            value("name", json!({"name": "$a.c"}), &d),
            Some(Bson::Int32(2))
        );
        assert_eq!(
            value("xs", json!({"xs": "$list.x"}), &d),
            Some(bson::bson!([1, 3]))
        );
        assert_eq!(value("name", json!({"name": "$nope"}), &d), None);
        assert_eq!(
            value("n", json!({"n": {"$toInt": "$s"}}), &d),
            Some(Bson::Int32(5))
        );
        assert_eq!(value("n", json!({"n": {"$toInt": "$missing"}}), &d), None);
        assert_eq!(
            value(
                "n",
                json!({"n": {"$convert": {"input": "$missing", "to": "int", "onNull": -1}}}),
                &d
            ),
            Some(Bson::Int32(-1))
        );
        assert_eq!(
            value(
                "n",
                json!({"n": {"$convert": {"input": "$a", "to": "int", "onError": 0}}}),
                &d
            ),
            Some(Bson::Int32(0))
        );
        assert_eq!(
            value("n", json!({"n": {"$toLong": {"$numberLong": "9"}}}), &d),
            Some(Bson::Int64(9))
        );
        assert!(matches!(
            plan("n", json!({"n": {"$toInt": "$a"}}))
                .eval(&Fields::of(&crate::rows::raw(d.clone()))),
            Eval::CastFailed("object")
        ));
        assert!(matches!(
            Plan::compile("a", None).unwrap().eval(&Fields::of(&crate::rows::raw(d.clone()))),
            Eval::Value(v) if *v == Bson::Document(doc! {"b": 1, "c": 2})
        ));
    }
}
