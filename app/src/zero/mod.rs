//! Everything Zero-specific: the schema export, the AST builder, and the two HTTP endpoints
//! zero-cache calls (mutate and query), plus the checks they share.

pub mod ast;
pub mod auth;
pub mod mutate;
pub mod query;
pub mod schema;

use bson::Bson;
use serde_json::Value;

/// Converts JSON to BSON without going through serde (with `arbitrary_precision`, serde would
/// turn numbers into maps): integers become Int32/Int64, other numbers doubles.
pub fn json_to_bson(v: &Value) -> Bson {
    match v {
        Value::Null => Bson::Null,
        Value::Bool(b) => Bson::Boolean(*b),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                i32::try_from(i).map(Bson::Int32).unwrap_or(Bson::Int64(i))
            } else {
                n.as_f64().map(Bson::Double).unwrap_or(Bson::Null)
            }
        }
        Value::String(s) => Bson::String(s.clone()),
        Value::Array(a) => Bson::Array(a.iter().map(json_to_bson).collect()),
        Value::Object(o) => Bson::Document(
            o.iter()
                .map(|(k, v)| (k.clone(), json_to_bson(v)))
                .collect(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_numbers_become_bson_numbers() {
        let b = json_to_bson(
            &serde_json::json!({"a": 1, "b": 5_000_000_000i64, "c": 1.5, "d": [true, null]}),
        );
        let d = b.as_document().unwrap();
        assert_eq!(d.get("a"), Some(&Bson::Int32(1)));
        assert_eq!(d.get("b"), Some(&Bson::Int64(5_000_000_000)));
        assert_eq!(d.get("c"), Some(&Bson::Double(1.5)));
        assert_eq!(
            d.get("d"),
            Some(&Bson::Array(vec![Bson::Boolean(true), Bson::Null]))
        );
    }
}
