//! The MongoDB `$project` subset allowed in a table mapping's `projection`.
//!
//! A projection shapes a document into a row: which fields to keep, which to rename (`"$path"`),
//! and which to cast (`$toString` and friends). Mixing inclusion and exclusion is refused as
//! MongoDB refuses it. Whether the outputs are columns of the table is checked in
//! [`crate::resolve`], which knows the schema.

use indexmap::IndexMap;
use serde::{Serialize, Serializer, ser::SerializeMap};
use serde_json::{Map, Value};

use crate::error::{Cx, child, deserialize_via_parser, kind_of};
use crate::extjson;

/// `{field: 1 | 0 | "$path" | {$toX: ..}}`, in the order written.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Projection {
    pub fields: IndexMap<String, ProjectionField>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ProjectionField {
    /// `1` or `true` (serialized as `1`).
    Include,
    /// `0` or `false` (serialized as `0`).
    Exclude,
    /// `"$a.b"`: the value at that path of the source document (stored without the `$`).
    Path(String),
    Cast(Cast),
}

/// `{$toString: input}` (when `convert` is false) or `{$convert: {input, to, onError?, onNull?}}`.
#[derive(Debug, Clone, PartialEq)]
pub struct Cast {
    pub to: CastType,
    pub input: CastInput,
    pub on_error: Option<Value>,
    pub on_null: Option<Value>,
    /// Written as `$convert` rather than as the `$toX` shorthand.
    pub convert: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CastType {
    String,
    Int,
    Long,
    Double,
    Decimal,
    Bool,
    Date,
    ObjectId,
}

impl CastType {
    /// The shorthand operator, e.g. `$toString`.
    pub fn operator(self) -> &'static str {
        match self {
            CastType::String => "$toString",
            CastType::Int => "$toInt",
            CastType::Long => "$toLong",
            CastType::Double => "$toDouble",
            CastType::Decimal => "$toDecimal",
            CastType::Bool => "$toBool",
            CastType::Date => "$toDate",
            CastType::ObjectId => "$toObjectId",
        }
    }

    /// The `$convert` `to` name, e.g. `objectId`.
    pub fn type_name(self) -> &'static str {
        match self {
            CastType::String => "string",
            CastType::Int => "int",
            CastType::Long => "long",
            CastType::Double => "double",
            CastType::Decimal => "decimal",
            CastType::Bool => "bool",
            CastType::Date => "date",
            CastType::ObjectId => "objectId",
        }
    }

    pub(crate) const ALL: [CastType; 8] = [
        CastType::String,
        CastType::Int,
        CastType::Long,
        CastType::Double,
        CastType::Decimal,
        CastType::Bool,
        CastType::Date,
        CastType::ObjectId,
    ];

    pub(crate) fn from_operator(op: &str) -> Option<CastType> {
        CastType::ALL.into_iter().find(|t| t.operator() == op)
    }

    /// A `$convert` `to`: a type name, or MongoDB's numeric type code.
    fn from_convert_to(v: &Value) -> Option<CastType> {
        match v {
            Value::String(s) => CastType::ALL.into_iter().find(|t| t.type_name() == s),
            Value::Number(n) => Some(match n.as_i64()? {
                1 => CastType::Double,
                2 => CastType::String,
                7 => CastType::ObjectId,
                8 => CastType::Bool,
                9 => CastType::Date,
                16 => CastType::Int,
                18 => CastType::Long,
                19 => CastType::Decimal,
                _ => return None,
            }),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum CastInput {
    /// `"$a.b"`, stored without the `$`.
    Path(String),
    /// A constant (possibly extended JSON).
    Literal(Value),
}

impl Projection {
    pub fn new() -> Projection {
        Projection::default()
    }

    pub fn field(mut self, name: impl Into<String>, field: ProjectionField) -> Projection {
        self.fields.insert(name.into(), field);
        self
    }

    /// Inclusion of each of `names`.
    pub fn include<S: Into<String>>(names: impl IntoIterator<Item = S>) -> Projection {
        Projection {
            fields: names
                .into_iter()
                .map(|n| (n.into(), ProjectionField::Include))
                .collect(),
        }
    }

    /// True when the projection keeps every field except the excluded ones (MongoDB's
    /// exclusion mode): it has no field other than `_id` that includes, renames or casts.
    /// An empty projection keeps everything too.
    pub fn is_exclusion(&self) -> bool {
        let others = self.fields.iter().filter(|(k, _)| k.as_str() != "_id");
        let mut any_other = false;
        for (_, f) in others {
            any_other = true;
            if *f != ProjectionField::Exclude {
                return false;
            }
        }
        any_other || !matches!(self.fields.get("_id"), Some(f) if *f != ProjectionField::Exclude)
    }

    /// Whether the output holds `_id`.
    pub fn keeps_id(&self) -> bool {
        !matches!(self.fields.get("_id"), Some(ProjectionField::Exclude))
    }

    pub fn from_json(value: &Value) -> Result<Projection, String> {
        crate::error::standalone(|cx| parse(value, "$", cx))
    }
}

deserialize_via_parser!(Projection, parse);

impl Serialize for Projection {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.fields.len()))?;
        for (k, f) in &self.fields {
            match f {
                ProjectionField::Include => m.serialize_entry(k, &1)?,
                ProjectionField::Exclude => m.serialize_entry(k, &0)?,
                ProjectionField::Path(p) => m.serialize_entry(k, &format!("${p}"))?,
                ProjectionField::Cast(c) => m.serialize_entry(k, c)?,
            }
        }
        m.end()
    }
}

impl Serialize for CastInput {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            CastInput::Path(p) => s.serialize_str(&format!("${p}")),
            CastInput::Literal(v) => v.serialize(s),
        }
    }
}

impl Serialize for Cast {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(1))?;
        if self.convert {
            let mut body = Map::new();
            body.insert(
                "input".into(),
                serde_json::to_value(&self.input).map_err(serde::ser::Error::custom)?,
            );
            body.insert("to".into(), self.to.type_name().into());
            if let Some(v) = &self.on_error {
                body.insert("onError".into(), v.clone());
            }
            if let Some(v) = &self.on_null {
                body.insert("onNull".into(), v.clone());
            }
            m.serialize_entry("$convert", &body)?;
        } else {
            m.serialize_entry(self.to.operator(), &self.input)?;
        }
        m.end()
    }
}

fn valid_path(p: &str) -> bool {
    !p.is_empty() && !p.starts_with('$') && p.split('.').all(|s| !s.is_empty())
}

pub(crate) fn parse(v: &Value, path: &str, cx: &mut Cx<'_>) -> Option<Projection> {
    let Value::Object(map) = v else {
        cx.err(
            path,
            format!("a projection must be an object, found {}", kind_of(v)),
        );
        return None;
    };
    let before = cx.errors.len();
    let mut out = Projection::default();
    for (k, val) in map {
        let p = child(path, k);
        if !valid_path(k) {
            cx.err(&p, format!("{k:?} is not a valid field name"));
            continue;
        }
        if let Some(f) = parse_field(val, &p, cx) {
            if k.contains('.') && !matches!(f, ProjectionField::Include | ProjectionField::Exclude)
            {
                cx.err(&p, format!("a renamed or cast field cannot be a dotted path ({k:?}): name the column itself"));
                continue;
            }
            out.fields.insert(k.clone(), f);
        }
    }
    // MongoDB refuses "a" together with "a.b" (a path collision), and so do we.
    let keys: Vec<&String> = out.fields.keys().collect();
    for a in &keys {
        for b in &keys {
            if b.len() > a.len() && b.starts_with(a.as_str()) && b.as_bytes()[a.len()] == b'.' {
                cx.err(
                    child(path, b),
                    format!(
                        "path collision: {b:?} is inside {a:?}, which the projection also names"
                    ),
                );
            }
        }
    }
    let mut inclusion = None;
    let mut exclusion = None;
    for (k, f) in &out.fields {
        if k == "_id" {
            continue;
        }
        match f {
            ProjectionField::Exclude => exclusion = exclusion.or(Some(k)),
            _ => inclusion = inclusion.or(Some(k)),
        }
    }
    if let (Some(i), Some(e)) = (inclusion, exclusion) {
        cx.err(
            child(path, e),
            format!("cannot exclude {e:?} in a projection that includes {i:?}: use only inclusions (1, \"$path\", casts) or only exclusions (0), apart from _id"),
        );
    }
    (cx.errors.len() == before).then_some(out)
}

fn parse_field(v: &Value, path: &str, cx: &mut Cx<'_>) -> Option<ProjectionField> {
    let bad = |cx: &mut Cx<'_>, found: &str| {
        cx.err(path, format!("a projection value must be 1, 0, true, false, \"$path\" or a cast such as {{\"$toString\": \"$_id\"}}, found {found}"));
    };
    match v {
        Value::Bool(true) => Some(ProjectionField::Include),
        Value::Bool(false) => Some(ProjectionField::Exclude),
        Value::Number(n) => match n.as_f64() {
            Some(1.0) => Some(ProjectionField::Include),
            Some(0.0) => Some(ProjectionField::Exclude),
            _ => {
                bad(cx, &n.to_string());
                None
            }
        },
        Value::String(s) => match parse_path_ref(s) {
            Some(p) => Some(ProjectionField::Path(p)),
            None => {
                bad(cx, &format!("the string {s:?}"));
                None
            }
        },
        Value::Object(m) => {
            let Some((op, arg)) = m.iter().next().filter(|_| m.len() == 1) else {
                if m.keys().all(|k| !k.starts_with('$')) {
                    cx.err(
                        path,
                        "nested projections are not supported: use dotted paths such as \"a.b\": 1",
                    );
                } else {
                    cx.err(path, "a cast object must hold exactly one operator");
                }
                return None;
            };
            let op_path = child(path, op);
            if op == "$convert" {
                return parse_convert(arg, &op_path, cx).map(ProjectionField::Cast);
            }
            if let Some(to) = CastType::from_operator(op) {
                let input = parse_input(arg, &op_path, cx)?;
                return Some(ProjectionField::Cast(Cast {
                    to,
                    input,
                    on_error: None,
                    on_null: None,
                    convert: false,
                }));
            }
            if op.starts_with('$') {
                cx.err(op_path, format!("unsupported projection operator {op} (supported: $toString, $toInt, $toLong, $toDouble, $toDecimal, $toBool, $toDate, $toObjectId, $convert)"));
            } else {
                cx.err(
                    path,
                    "nested projections are not supported: use dotted paths such as \"a.b\": 1",
                );
            }
            None
        }
        other => {
            bad(cx, kind_of(other));
            None
        }
    }
}

fn parse_path_ref(s: &str) -> Option<String> {
    let p = s.strip_prefix('$')?;
    valid_path(p).then(|| p.to_string())
}

fn parse_input(v: &Value, path: &str, cx: &mut Cx<'_>) -> Option<CastInput> {
    match v {
        Value::String(s) if s.starts_with('$') => match parse_path_ref(s) {
            Some(p) => Some(CastInput::Path(p)),
            None => {
                cx.err(
                    path,
                    format!(
                        "{s:?} is not a field path (variables such as $$ROOT are not supported)"
                    ),
                );
                None
            }
        },
        Value::Object(m)
            if extjson::literal_key(m).is_none() && m.keys().any(|k| k.starts_with('$')) =>
        {
            let op = m
                .keys()
                .find(|k| k.starts_with('$'))
                .map(String::as_str)
                .unwrap_or_default();
            cx.err(
                child(path, op),
                format!("unsupported expression {op}: a cast takes a \"$path\" or a constant"),
            );
            None
        }
        _ => extjson::check(v, path, cx).then(|| CastInput::Literal(v.clone())),
    }
}

fn parse_convert(v: &Value, path: &str, cx: &mut Cx<'_>) -> Option<Cast> {
    let c = parse_convert_with(v, path, cx, parse_input)?;
    Some(Cast {
        to: c.to,
        input: c.input,
        on_error: c.on_error,
        on_null: c.on_null,
        convert: true,
    })
}

/// The parts of a `$convert` whose input is an `I` (a projection's field or literal, a
/// pipeline's expression).
pub(crate) struct Convert<I> {
    pub to: CastType,
    pub input: I,
    pub on_error: Option<Value>,
    pub on_null: Option<Value>,
}

/// Parses `{input, to, onError?, onNull?}` the same way for projections and pipelines; the
/// input is parsed by the caller's `parse_input`. Every problem is reported, then `None`.
pub(crate) fn parse_convert_with<I>(
    v: &Value,
    path: &str,
    cx: &mut Cx<'_>,
    parse_input: impl FnOnce(&Value, &str, &mut Cx<'_>) -> Option<I>,
) -> Option<Convert<I>> {
    let Value::Object(m) = v else {
        cx.err(
            path,
            format!(
                "$convert takes {{input, to, onError?, onNull?}}, found {}",
                kind_of(v)
            ),
        );
        return None;
    };
    let before = cx.errors.len();
    for k in m.keys() {
        if !matches!(k.as_str(), "input" | "to" | "onError" | "onNull") {
            cx.err(
                child(path, k),
                format!("unknown $convert field {k:?} (expected input, to, onError, onNull)"),
            );
        }
    }
    let input = match m.get("input") {
        Some(i) => parse_input(i, &child(path, "input"), cx),
        None => {
            cx.err(path, "$convert needs \"input\"");
            None
        }
    };
    let to = match m.get("to") {
        Some(t) => {
            let to = CastType::from_convert_to(t);
            if to.is_none() {
                cx.err(child(path, "to"), format!("unsupported $convert target {t} (expected string, int, long, double, decimal, bool, date or objectId)"));
            }
            to
        }
        None => {
            cx.err(path, "$convert needs \"to\"");
            None
        }
    };
    let mut literal = |key: &str| {
        let v = m.get(key)?;
        extjson::check(v, &child(path, key), cx).then(|| v.clone())
    };
    let on_error = literal("onError");
    let on_null = literal("onNull");
    if cx.errors.len() != before {
        return None;
    }
    Some(Convert {
        to: to?,
        input: input?,
        on_error,
        on_null,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_and_round_trips() {
        let v = json!({
            "_id": 0,
            "id": {"$toString": "$_id"},
            "name": "$profile.name",
            "a.b": 1,
            "n": {"$convert": {"input": "$n", "to": "long", "onError": null, "onNull": {"$numberLong": "0"}}},
            "k": {"$toInt": "5"},
        });
        let p = Projection::from_json(&v).unwrap();
        assert_eq!(
            p.fields["name"],
            ProjectionField::Path("profile.name".into())
        );
        assert!(
            matches!(&p.fields["id"], ProjectionField::Cast(Cast { to: CastType::String, input: CastInput::Path(x), .. }) if x == "_id")
        );
        assert!(!p.is_exclusion());
        assert!(!p.keeps_id());
        assert_eq!(serde_json::to_value(&p).unwrap(), v);
        let again: Projection = serde_json::from_value(v).unwrap();
        assert_eq!(again, p);
        // true/false are read as 1/0.
        let t = Projection::from_json(&json!({"a": true})).unwrap();
        assert_eq!(serde_json::to_value(&t).unwrap(), json!({"a": 1}));
        assert_eq!(
            Projection::from_json(&json!({"x": {"$convert": {"input": "$x", "to": 2}}}))
                .unwrap()
                .fields["x"],
            ProjectionField::Cast(Cast {
                to: CastType::String,
                input: CastInput::Path("x".into()),
                on_error: None,
                on_null: None,
                convert: true
            })
        );
    }

    #[test]
    fn modes() {
        assert!(
            Projection::from_json(&json!({"a": 0, "_id": 0}))
                .unwrap()
                .is_exclusion()
        );
        assert!(
            Projection::from_json(&json!({"_id": 0}))
                .unwrap()
                .is_exclusion()
        );
        assert!(Projection::from_json(&json!({})).unwrap().is_exclusion());
        assert!(
            !Projection::from_json(&json!({"_id": 1}))
                .unwrap()
                .is_exclusion()
        );
        assert!(
            !Projection::from_json(&json!({"a": 1, "_id": 0}))
                .unwrap()
                .is_exclusion()
        );
        assert!(
            !Projection::from_json(&json!({"a": "$b"}))
                .unwrap()
                .is_exclusion()
        );
    }

    fn err_of(v: Value) -> String {
        Projection::from_json(&v).unwrap_err()
    }

    #[test]
    fn refuses_bad_projections() {
        assert!(
            err_of(json!({"a": 1, "b": 0}))
                .starts_with("$.b: cannot exclude \"b\" in a projection that includes \"a\"")
        );
        assert!(err_of(json!({"a": "$b", "c": 0})).starts_with("$.c: cannot exclude"));
        assert!(
            err_of(json!({"a": {"$concat": ["$b"]}}))
                .starts_with("$.a.$concat: unsupported projection operator $concat")
        );
        assert!(
            err_of(json!({"a": {"$toString": {"$concat": ["x"]}}}))
                .starts_with("$.a.$toString.$concat: unsupported expression $concat")
        );
        assert!(
            err_of(json!({"a": {"b": 1}})).starts_with("$.a: nested projections are not supported")
        );
        assert!(err_of(json!({"a": "b"})).starts_with("$.a: a projection value must be 1, 0"));
        assert!(err_of(json!({"a": 2})).starts_with("$.a: a projection value must be 1, 0"));
        assert!(err_of(json!({"a": "$$ROOT"})).contains("$.a: a projection value"));
        assert!(err_of(json!({"a": 1, "a.b": 1})).starts_with("$[\"a.b\"]: path collision"));
        assert!(
            err_of(json!({"a.b": "$c"}))
                .starts_with("$[\"a.b\"]: a renamed or cast field cannot be a dotted path")
        );
        assert!(
            err_of(json!({"a": {"$convert": {"input": "$a", "to": "regex"}}}))
                .starts_with("$.a.$convert.to: unsupported $convert target \"regex\"")
        );
        assert!(
            err_of(json!({"a": {"$convert": {"to": "int"}}}))
                .starts_with("$.a.$convert: $convert needs \"input\"")
        );
        assert!(
            err_of(json!({"a": {"$toObjectId": {"$oid": "bad"}}}))
                .starts_with("$.a.$toObjectId.$oid: $oid \"bad\"")
        );
    }
}
