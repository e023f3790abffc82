//! The MongoDB query subset allowed in a table mapping's `filter`.
//!
//! The filter decides which documents of a collection belong to a table (for example `chats`
//! are the `rooms` with `t: "d"`). Anything this AST cannot express is refused at load time with
//! the operator's name, so the source never streams with a filter it half understands. Values
//! stay JSON (possibly extended JSON); the source server compiles them to BSON once.

use serde::{Serialize, Serializer, ser::SerializeMap};
use serde_json::{Map, Value};

use crate::error::{Cx, child, deserialize_via_parser, item, kind_of};
use crate::extjson;

/// A query document: every clause must hold.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Filter {
    pub clauses: Vec<Clause>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Clause {
    /// `{"a.b": <condition>}`
    Field { path: String, condition: Condition },
    /// `{"$and": [..]}`
    And(Vec<Filter>),
    /// `{"$or": [..]}`
    Or(Vec<Filter>),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    /// Implicit equality: `{field: value}`.
    Equals(Value),
    /// `{field: {$gt: 1, $lt: 5}}`: every operator must hold.
    Operators(Vec<Operator>),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Operator {
    Eq(Value),
    Ne(Value),
    Gt(Value),
    Gte(Value),
    Lt(Value),
    Lte(Value),
    In(Vec<Value>),
    Nin(Vec<Value>),
    Exists(bool),
    /// `{$not: {..operators..}}`: true when the operators do not all hold.
    Not(Vec<Operator>),
}

impl Operator {
    pub fn name(&self) -> &'static str {
        match self {
            Operator::Eq(_) => "$eq",
            Operator::Ne(_) => "$ne",
            Operator::Gt(_) => "$gt",
            Operator::Gte(_) => "$gte",
            Operator::Lt(_) => "$lt",
            Operator::Lte(_) => "$lte",
            Operator::In(_) => "$in",
            Operator::Nin(_) => "$nin",
            Operator::Exists(_) => "$exists",
            Operator::Not(_) => "$not",
        }
    }
}

impl Filter {
    /// `{path: value}`.
    pub fn eq(path: impl Into<String>, value: impl Into<Value>) -> Filter {
        Filter {
            clauses: vec![Clause::Field {
                path: path.into(),
                condition: Condition::Equals(value.into()),
            }],
        }
    }

    /// `{path: {ops..}}`.
    pub fn field(path: impl Into<String>, operators: Vec<Operator>) -> Filter {
        Filter {
            clauses: vec![Clause::Field {
                path: path.into(),
                condition: Condition::Operators(operators),
            }],
        }
    }

    /// Adds the clauses of `other` (logical and).
    pub fn and(mut self, other: Filter) -> Filter {
        self.clauses.extend(other.clauses);
        self
    }

    /// Parses and checks a filter given as JSON.
    pub fn from_json(value: &Value) -> Result<Filter, String> {
        crate::error::standalone(|cx| parse(value, "$", cx))
    }
}

deserialize_via_parser!(Filter, parse);

impl Serialize for Filter {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.clauses.len()))?;
        for c in &self.clauses {
            match c {
                Clause::Field {
                    path,
                    condition: Condition::Equals(v),
                } => m.serialize_entry(path, v)?,
                Clause::Field {
                    path,
                    condition: Condition::Operators(ops),
                } => m.serialize_entry(path, &Ops(ops))?,
                Clause::And(list) => m.serialize_entry("$and", list)?,
                Clause::Or(list) => m.serialize_entry("$or", list)?,
            }
        }
        m.end()
    }
}

struct Ops<'a>(&'a [Operator]);

impl Serialize for Ops<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for op in self.0 {
            match op {
                Operator::Eq(v)
                | Operator::Ne(v)
                | Operator::Gt(v)
                | Operator::Gte(v)
                | Operator::Lt(v)
                | Operator::Lte(v) => m.serialize_entry(op.name(), v)?,
                Operator::In(v) | Operator::Nin(v) => m.serialize_entry(op.name(), v)?,
                Operator::Exists(b) => m.serialize_entry(op.name(), b)?,
                Operator::Not(ops) => m.serialize_entry(op.name(), &Ops(ops))?,
            }
        }
        m.end()
    }
}

pub(crate) fn parse(v: &Value, path: &str, cx: &mut Cx<'_>) -> Option<Filter> {
    let Value::Object(map) = v else {
        cx.err(
            path,
            format!("a filter must be an object, found {}", kind_of(v)),
        );
        return None;
    };
    let mut ok = true;
    let mut clauses = Vec::with_capacity(map.len());
    for (k, val) in map {
        let p = child(path, k);
        match k.as_str() {
            "$and" | "$or" => match parse_list(k, val, &p, cx) {
                Some(list) if k == "$and" => clauses.push(Clause::And(list)),
                Some(list) => clauses.push(Clause::Or(list)),
                None => ok = false,
            },
            "$not" => {
                cx.err(
                    p,
                    "$not must be applied to a field: {\"field\": {\"$not\": {..}}}",
                );
                ok = false;
            }
            _ if k.starts_with('$') => {
                cx.err(p, format!("unsupported filter operator {k}"));
                ok = false;
            }
            _ => {
                if k.is_empty() || k.split('.').any(str::is_empty) {
                    cx.err(&p, format!("{k:?} is not a valid field path"));
                    ok = false;
                    continue;
                }
                match parse_condition(val, &p, cx) {
                    Some(condition) => clauses.push(Clause::Field {
                        path: k.clone(),
                        condition,
                    }),
                    None => ok = false,
                }
            }
        }
    }
    ok.then_some(Filter { clauses })
}

fn parse_list(op: &str, v: &Value, path: &str, cx: &mut Cx<'_>) -> Option<Vec<Filter>> {
    let Value::Array(items) = v else {
        cx.err(
            path,
            format!("{op} takes an array of filters, found {}", kind_of(v)),
        );
        return None;
    };
    if items.is_empty() {
        cx.err(path, format!("{op} takes a non-empty array of filters"));
        return None;
    }
    let mut ok = true;
    let mut out = Vec::with_capacity(items.len());
    for (i, f) in items.iter().enumerate() {
        match parse(f, &item(path, i), cx) {
            Some(f) => out.push(f),
            None => ok = false,
        }
    }
    ok.then_some(out)
}

fn is_operator_object(m: &Map<String, Value>) -> bool {
    extjson::literal_key(m).is_none() && m.keys().any(|k| k.starts_with('$'))
}

fn parse_condition(v: &Value, path: &str, cx: &mut Cx<'_>) -> Option<Condition> {
    match v {
        Value::Object(m) if is_operator_object(m) => {
            if let Some(plain) = m.keys().find(|k| !k.starts_with('$')) {
                cx.err(
                    path,
                    format!("an operator object cannot also hold the field {plain:?}"),
                );
                return None;
            }
            parse_operators(m, path, cx).map(Condition::Operators)
        }
        _ => extjson::check(v, path, cx).then(|| Condition::Equals(v.clone())),
    }
}

fn parse_operators(m: &Map<String, Value>, path: &str, cx: &mut Cx<'_>) -> Option<Vec<Operator>> {
    let mut ok = true;
    let mut ops = Vec::with_capacity(m.len());
    for (k, arg) in m {
        let p = child(path, k);
        let op = match k.as_str() {
            "$eq" | "$ne" | "$gt" | "$gte" | "$lt" | "$lte" => {
                if !extjson::check(arg, &p, cx) {
                    ok = false;
                    continue;
                }
                let v = arg.clone();
                match k.as_str() {
                    "$eq" => Operator::Eq(v),
                    "$ne" => Operator::Ne(v),
                    "$gt" => Operator::Gt(v),
                    "$gte" => Operator::Gte(v),
                    "$lt" => Operator::Lt(v),
                    _ => Operator::Lte(v),
                }
            }
            "$in" | "$nin" => {
                let Value::Array(items) = arg else {
                    cx.err(p, format!("{k} takes an array, found {}", kind_of(arg)));
                    ok = false;
                    continue;
                };
                if !extjson::check(arg, &p, cx) {
                    ok = false;
                    continue;
                }
                if k == "$in" {
                    Operator::In(items.clone())
                } else {
                    Operator::Nin(items.clone())
                }
            }
            "$exists" => match arg {
                Value::Bool(b) => Operator::Exists(*b),
                other => {
                    cx.err(
                        p,
                        format!("$exists takes true or false, found {}", kind_of(other)),
                    );
                    ok = false;
                    continue;
                }
            },
            "$not" => {
                match arg {
                    Value::Object(inner)
                        if !inner.is_empty()
                            && inner.keys().all(|k| k.starts_with('$'))
                            && is_operator_object(inner) =>
                    {
                        match parse_operators(inner, &p, cx) {
                            Some(inner) => Operator::Not(inner),
                            None => {
                                ok = false;
                                continue;
                            }
                        }
                    }
                    other => {
                        cx.err(p, format!("$not takes an object of operators such as {{\"$eq\": 1}}, found {}", kind_of(other)));
                        ok = false;
                        continue;
                    }
                }
            }
            _ => {
                cx.err(p, format!("unsupported filter operator {k}"));
                ok = false;
                continue;
            }
        };
        ops.push(op);
    }
    ok.then_some(ops)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_and_round_trips() {
        let v = json!({
            "t": {"$eq": "d"},
            "a.b": 3,
            "n": {"$gt": 1, "$lte": {"$numberLong": "10"}},
            "tags": {"$in": ["x", {"$oid": "5f0000000000000000000000"}], "$nin": []},
            "f": {"$exists": false, "$not": {"$gt": 5, "$ne": null}},
            "_id": {"$oid": "5f0000000000000000000001"},
            "doc": {"k": 1},
            "$and": [{"x": 1}, {"$or": [{"y": 2}, {"z": {"$ne": 3}}]}]
        });
        let f = Filter::from_json(&v).unwrap();
        assert_eq!(f.clauses.len(), 8);
        match &f.clauses[2] {
            Clause::Field {
                path,
                condition: Condition::Operators(ops),
            } => {
                assert_eq!(path, "n");
                assert_eq!(ops.len(), 2, "every operator on a field is kept");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            &f.clauses[5],
            Clause::Field {
                condition: Condition::Equals(_),
                ..
            }
        ));
        assert_eq!(serde_json::to_value(&f).unwrap(), v);
        let again: Filter = serde_json::from_value(v).unwrap();
        assert_eq!(again, f);
    }

    #[test]
    fn builds_from_rust() {
        let f = Filter::eq("t", "d").and(Filter::field(
            "n",
            vec![Operator::Gt(json!(1)), Operator::Exists(true)],
        ));
        assert_eq!(
            serde_json::to_value(&f).unwrap(),
            json!({"t": "d", "n": {"$gt": 1, "$exists": true}})
        );
    }

    fn err_of(v: Value) -> String {
        Filter::from_json(&v).unwrap_err()
    }

    #[test]
    fn refuses_unsupported_operators() {
        assert_eq!(
            err_of(json!({"name": {"$regex": "^a"}})),
            "$.name.$regex: unsupported filter operator $regex"
        );
        assert_eq!(
            err_of(json!({"$where": "1"})),
            "$.$where: unsupported filter operator $where"
        );
        assert_eq!(
            err_of(json!({"a": {"$elemMatch": {"b": 1}}})),
            "$.a.$elemMatch: unsupported filter operator $elemMatch"
        );
        assert_eq!(
            err_of(json!({"$or": [{"a": {"$not": {"$size": 1}}}]})),
            "$.$or[0].a.$not.$size: unsupported filter operator $size"
        );
    }

    #[test]
    fn refuses_malformed_arguments() {
        assert_eq!(
            err_of(json!({"t": {"$in": "d"}})),
            "$.t.$in: $in takes an array, found a string"
        );
        assert_eq!(
            err_of(json!({"t": {"$exists": 1}})),
            "$.t.$exists: $exists takes true or false, found a number"
        );
        assert_eq!(
            err_of(json!({"$and": {}})),
            "$.$and: $and takes an array of filters, found an object"
        );
        assert_eq!(
            err_of(json!({"$or": []})),
            "$.$or: $or takes a non-empty array of filters"
        );
        assert!(
            err_of(json!({"t": {"$not": 5}}))
                .starts_with("$.t.$not: $not takes an object of operators")
        );
        assert!(
            err_of(json!({"t": {"$gt": 1, "x": 2}}))
                .starts_with("$.t: an operator object cannot also hold the field \"x\"")
        );
        assert!(
            err_of(json!({"$not": {"a": 1}}))
                .starts_with("$.$not: $not must be applied to a field")
        );
        assert_eq!(
            err_of(json!({"a..b": 1})),
            "$[\"a..b\"]: \"a..b\" is not a valid field path"
        );
        assert_eq!(
            err_of(json!({"_id": {"$oid": "zz"}})),
            "$._id.$oid: $oid \"zz\" is not a 24-character hex string"
        );
        assert_eq!(
            err_of(json!([1])),
            "$: a filter must be an object, found an array"
        );
    }
}
