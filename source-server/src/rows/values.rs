//! BSON values: conversion to Zero column values, extended JSON literals, and MongoDB's
//! comparison order.
//!
//! Conversion goes by the column's declared type, never by guessing from the value (the earlier
//! source let `toJSON` decide, which turned Decimal128 into objects and lost int64 precision).
//! A value that does not fit its column becomes null and is reported, so the caller can count it
//! and still send the row.

use std::cmp::Ordering;

use bson::spec::BinarySubtype;
use bson::{Bson, Document};
use serde_json::{Map, Number, Value};
use zerostack_spec::ColumnType;
use zerostack_spec::extjson::{self, format_iso8601_millis, parse_iso8601_millis};

/// MongoDB's name for a BSON type (as `$type` spells it), for coercion reports.
pub fn type_name(b: &Bson) -> &'static str {
    match b {
        Bson::Double(_) => "double",
        Bson::String(_) => "string",
        Bson::Array(_) => "array",
        Bson::Document(_) => "object",
        Bson::Boolean(_) => "bool",
        Bson::Null => "null",
        Bson::RegularExpression(_) => "regex",
        Bson::JavaScriptCode(_) => "javascript",
        Bson::JavaScriptCodeWithScope(_) => "javascriptWithScope",
        Bson::Int32(_) => "int",
        Bson::Int64(_) => "long",
        Bson::Timestamp(_) => "timestamp",
        Bson::Binary(_) => "binData",
        Bson::ObjectId(_) => "objectId",
        Bson::DateTime(_) => "date",
        Bson::Symbol(_) => "symbol",
        Bson::Decimal128(_) => "decimal",
        Bson::Undefined => "undefined",
        Bson::MaxKey => "maxKey",
        Bson::MinKey => "minKey",
        Bson::DbPointer(_) => "dbPointer",
    }
}

/// Converts a field's value for a column of type `kind`.
///
/// `None` (missing) and BSON null give JSON null. `Err(type name)` means the value does not fit
/// the column: the caller sends null and reports it.
pub fn to_column(value: Option<&Bson>, kind: ColumnType) -> Result<Value, &'static str> {
    let Some(b) = value else {
        return Ok(Value::Null);
    };
    if matches!(b, Bson::Null | Bson::Undefined) {
        return Ok(Value::Null);
    }
    let out = match kind {
        ColumnType::String => match b {
            Bson::String(s) | Bson::Symbol(s) => Some(Value::String(s.clone())),
            Bson::ObjectId(o) => Some(Value::String(o.to_hex())),
            Bson::DateTime(d) => Some(Value::String(format_iso8601_millis(d.timestamp_millis()))),
            Bson::Decimal128(d) => Some(Value::String(d.to_string())),
            Bson::Binary(bin) if bin.subtype == BinarySubtype::Uuid && bin.bytes.len() == 16 => {
                Some(Value::String(uuid_string(&bin.bytes)))
            }
            _ => None,
        },
        ColumnType::Number => match b {
            Bson::Int32(i) => Some(Value::Number((*i).into())),
            Bson::Int64(i) => Some(Value::Number((*i).into())),
            Bson::Double(f) => Number::from_f64(*f).map(Value::Number),
            Bson::Decimal128(d) => d
                .to_string()
                .parse::<f64>()
                .ok()
                .and_then(Number::from_f64)
                .map(Value::Number),
            Bson::DateTime(d) => Some(Value::Number(d.timestamp_millis().into())),
            Bson::Timestamp(t) => Some(Value::Number((i64::from(t.time) * 1000).into())),
            _ => None,
        },
        ColumnType::Boolean => match b {
            Bson::Boolean(v) => Some(Value::Bool(*v)),
            _ => None,
        },
        ColumnType::Json => Some(to_json(b)),
        ColumnType::Null => None,
    };
    out.ok_or(type_name(b))
}

/// BSON → JSON for json columns: ObjectId → hex, Date → ISO-8601, Int64 exact, Decimal128 →
/// string, binary → base64 (UUIDs as their usual text), Timestamp → epoch ms; NaN and infinities,
/// which JSON cannot hold, → null.
pub fn to_json(b: &Bson) -> Value {
    match b {
        Bson::Double(f) => Number::from_f64(*f).map_or(Value::Null, Value::Number),
        Bson::String(s) | Bson::Symbol(s) | Bson::JavaScriptCode(s) => Value::String(s.clone()),
        Bson::JavaScriptCodeWithScope(c) => Value::String(c.code.clone()),
        Bson::Array(items) => Value::Array(items.iter().map(to_json).collect()),
        Bson::Document(d) => Value::Object(doc_to_json(d)),
        Bson::Boolean(v) => Value::Bool(*v),
        Bson::Null | Bson::Undefined | Bson::MaxKey | Bson::MinKey | Bson::DbPointer(_) => {
            Value::Null
        }
        Bson::RegularExpression(r) => Value::String(format!("/{}/{}", r.pattern, r.options)),
        Bson::Int32(i) => Value::Number((*i).into()),
        Bson::Int64(i) => Value::Number((*i).into()),
        Bson::Timestamp(t) => Value::Number((i64::from(t.time) * 1000).into()),
        Bson::Binary(bin) if bin.subtype == BinarySubtype::Uuid && bin.bytes.len() == 16 => {
            Value::String(uuid_string(&bin.bytes))
        }
        Bson::Binary(bin) => Value::String(base64(&bin.bytes)),
        Bson::ObjectId(o) => Value::String(o.to_hex()),
        Bson::DateTime(d) => Value::String(format_iso8601_millis(d.timestamp_millis())),
        Bson::Decimal128(d) => Value::String(d.to_string()),
    }
}

fn doc_to_json(d: &Document) -> Map<String, Value> {
    let mut m = Map::with_capacity(d.len());
    for (k, v) in d {
        m.insert(k.clone(), to_json(v));
    }
    m
}

fn uuid_string(b: &[u8]) -> String {
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// Standard base64 with padding.
pub fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = (u32::from(chunk[0]) << 16)
            | (u32::from(*chunk.get(1).unwrap_or(&0)) << 8)
            | u32::from(*chunk.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Converts a JSON value from a filter or projection (possibly extended JSON) to BSON.
/// Integers become Int32 when they fit, else Int64; other numbers Double.
pub fn json_to_bson(v: &Value) -> Result<Bson, String> {
    Ok(match v {
        Value::Null => Bson::Null,
        Value::Bool(b) => Bson::Boolean(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => i32::try_from(i).map_or(Bson::Int64(i), Bson::Int32),
            None => Bson::Double(
                n.as_f64()
                    .ok_or_else(|| format!("{n} is not a number that fits a double"))?,
            ),
        },
        Value::String(s) => Bson::String(s.clone()),
        Value::Array(items) => {
            Bson::Array(items.iter().map(json_to_bson).collect::<Result<_, _>>()?)
        }
        Value::Object(m) => match extjson::literal_key(m) {
            Some(key) => ext_literal(key, &m[key])?,
            None => {
                let mut d = Document::new();
                for (k, v) in m {
                    if k.starts_with('$') {
                        return Err(format!("{k} is not allowed inside a value"));
                    }
                    d.insert(k.clone(), json_to_bson(v)?);
                }
                Bson::Document(d)
            }
        },
    })
}

fn ext_literal(key: &str, arg: &Value) -> Result<Bson, String> {
    let text = || arg.as_str().ok_or_else(|| format!("{key} takes a string"));
    Ok(match key {
        "$oid" => Bson::ObjectId(
            bson::oid::ObjectId::parse_str(text()?).map_err(|e| format!("bad $oid: {e}"))?,
        ),
        "$numberInt" => Bson::Int32(
            text()?
                .parse()
                .map_err(|_| format!("bad $numberInt {arg}"))?,
        ),
        "$numberLong" => Bson::Int64(
            text()?
                .parse()
                .map_err(|_| format!("bad $numberLong {arg}"))?,
        ),
        "$numberDouble" => Bson::Double(
            extjson::parse_special_float(text()?)
                .ok_or_else(|| format!("bad $numberDouble {arg}"))?,
        ),
        "$numberDecimal" => Bson::Decimal128(
            text()?
                .parse()
                .map_err(|e| format!("bad $numberDecimal {arg}: {e}"))?,
        ),
        "$date" => {
            let ms = match arg {
                Value::String(s) => parse_iso8601_millis(s)
                    .ok_or_else(|| format!("$date {s:?} is not an ISO-8601 date"))?,
                Value::Number(n) => n
                    .as_i64()
                    .ok_or_else(|| format!("$date {n} is not an integer"))?,
                Value::Object(m) if m.len() == 1 => {
                    match m.get("$numberLong").and_then(Value::as_str) {
                        Some(s) => s
                            .parse()
                            .map_err(|_| format!("bad $date $numberLong {s:?}"))?,
                        None => return Err("bad $date".into()),
                    }
                }
                _ => return Err("bad $date".into()),
            };
            Bson::DateTime(bson::DateTime::from_millis(ms))
        }
        other => return Err(format!("unsupported extended JSON type {other}")),
    })
}

/// A number for comparisons: integers stay exact.
#[derive(Clone, Copy)]
enum Num {
    I(i64),
    F(f64),
}

fn num(b: &Bson) -> Option<Num> {
    Some(match b {
        Bson::Int32(i) => Num::I(i64::from(*i)),
        Bson::Int64(i) => Num::I(*i),
        Bson::Double(f) => Num::F(*f),
        Bson::Decimal128(d) => Num::F(d.to_string().parse().unwrap_or(f64::NAN)),
        _ => return None,
    })
}

/// MongoDB orders NaN below every number and equal to itself.
fn cmp_f(a: f64, b: f64) -> Ordering {
    match (a.is_nan(), b.is_nan()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Less,
        (false, true) => Ordering::Greater,
        _ => a.partial_cmp(&b).unwrap_or(Ordering::Equal),
    }
}

fn cmp_i_f(i: i64, f: f64) -> Ordering {
    if f.is_nan() {
        return Ordering::Greater;
    }
    // Beyond ±2^63 every i64 is on one side; inside, compare the integer parts exactly.
    if f >= 9_223_372_036_854_775_808.0 {
        return Ordering::Less;
    }
    if f < -9_223_372_036_854_775_808.0 {
        return Ordering::Greater;
    }
    let t = f.trunc();
    match i.cmp(&(t as i64)) {
        Ordering::Equal if f > t => Ordering::Less,
        Ordering::Equal if f < t => Ordering::Greater,
        o => o,
    }
}

fn cmp_num(a: Num, b: Num) -> Ordering {
    match (a, b) {
        (Num::I(x), Num::I(y)) => x.cmp(&y),
        (Num::F(x), Num::F(y)) => cmp_f(x, y),
        (Num::I(x), Num::F(y)) => cmp_i_f(x, y),
        (Num::F(x), Num::I(y)) => cmp_i_f(y, x).reverse(),
    }
}

/// MongoDB's canonical type order ("type brackets"): values compare only within a bracket.
pub fn bracket(b: &Bson) -> u8 {
    match b {
        Bson::MinKey => 0,
        Bson::Null | Bson::Undefined => 1,
        Bson::Int32(_) | Bson::Int64(_) | Bson::Double(_) | Bson::Decimal128(_) => 2,
        Bson::String(_) | Bson::Symbol(_) => 3,
        Bson::Document(_) => 4,
        Bson::Array(_) => 5,
        Bson::Binary(_) => 6,
        Bson::ObjectId(_) => 7,
        Bson::Boolean(_) => 8,
        Bson::DateTime(_) => 9,
        Bson::Timestamp(_) => 10,
        Bson::RegularExpression(_) => 11,
        Bson::DbPointer(_) => 12,
        Bson::JavaScriptCode(_) => 13,
        Bson::JavaScriptCodeWithScope(_) => 14,
        Bson::MaxKey => 255,
    }
}

/// MongoDB's total order over BSON values (brackets first, then within the bracket).
pub fn compare(a: &Bson, b: &Bson) -> Ordering {
    let (ba, bb) = (bracket(a), bracket(b));
    if ba != bb {
        return ba.cmp(&bb);
    }
    match (a, b) {
        _ if ba == 2 => match (num(a), num(b)) {
            (Some(x), Some(y)) => cmp_num(x, y),
            _ => Ordering::Equal,
        },
        (Bson::String(x) | Bson::Symbol(x), Bson::String(y) | Bson::Symbol(y)) => {
            x.as_bytes().cmp(y.as_bytes())
        }
        (Bson::Document(x), Bson::Document(y)) => {
            for ((ka, va), (kb, vb)) in x.iter().zip(y.iter()) {
                let o = bracket(va)
                    .cmp(&bracket(vb))
                    .then_with(|| ka.as_bytes().cmp(kb.as_bytes()))
                    .then_with(|| compare(va, vb));
                if o != Ordering::Equal {
                    return o;
                }
            }
            x.len().cmp(&y.len())
        }
        (Bson::Array(x), Bson::Array(y)) => {
            for (va, vb) in x.iter().zip(y.iter()) {
                let o = compare(va, vb);
                if o != Ordering::Equal {
                    return o;
                }
            }
            x.len().cmp(&y.len())
        }
        (Bson::Binary(x), Bson::Binary(y)) => x
            .bytes
            .len()
            .cmp(&y.bytes.len())
            .then_with(|| u8::from(x.subtype).cmp(&u8::from(y.subtype)))
            .then_with(|| x.bytes.cmp(&y.bytes)),
        (Bson::ObjectId(x), Bson::ObjectId(y)) => x.bytes().cmp(&y.bytes()),
        (Bson::Boolean(x), Bson::Boolean(y)) => x.cmp(y),
        (Bson::DateTime(x), Bson::DateTime(y)) => x.timestamp_millis().cmp(&y.timestamp_millis()),
        (Bson::Timestamp(x), Bson::Timestamp(y)) => {
            (x.time, x.increment).cmp(&(y.time, y.increment))
        }
        (Bson::RegularExpression(x), Bson::RegularExpression(y)) => x
            .pattern
            .as_str()
            .cmp(y.pattern.as_str())
            .then_with(|| x.options.as_str().cmp(y.options.as_str())),
        (Bson::JavaScriptCode(x), Bson::JavaScriptCode(y)) => x.cmp(y),
        (Bson::JavaScriptCodeWithScope(x), Bson::JavaScriptCodeWithScope(y)) => x.code.cmp(&y.code),
        _ => Ordering::Equal,
    }
}

/// Equality as a MongoDB query sees it: same bracket and equal (1 == 1.0 == Long(1)).
pub fn equal(a: &Bson, b: &Bson) -> bool {
    bracket(a) == bracket(b) && compare(a, b) == Ordering::Equal
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::oid::ObjectId;
    use bson::{Binary, Decimal128, Timestamp, doc};
    use serde_json::json;
    use std::str::FromStr;

    const OID: &str = "5f0c9a8e1c9d440000a1b2c3";

    fn col(b: Bson, kind: ColumnType) -> Result<Value, &'static str> {
        to_column(Some(&b), kind)
    }

    #[test]
    fn conversion_table() {
        use ColumnType::*;
        let oid = ObjectId::parse_str(OID).unwrap();
        let date = bson::DateTime::from_millis(1_714_564_800_123);
        assert_eq!(col(Bson::ObjectId(oid), String), Ok(json!(OID)));
        assert_eq!(
            col(Bson::DateTime(date), Number),
            Ok(json!(1_714_564_800_123i64))
        );
        assert_eq!(
            col(Bson::DateTime(date), String),
            Ok(json!("2024-05-01T12:00:00.123Z"))
        );
        assert_eq!(col(Bson::Int32(7), Number), Ok(json!(7)));
        assert_eq!(col(Bson::Double(2.5), Number), Ok(json!(2.5)));
        // Int64 beyond 2^53 stays exact.
        let big = col(Bson::Int64(9_007_199_254_740_993), Number).unwrap();
        assert_eq!(serde_json::to_string(&big).unwrap(), "9007199254740993");
        let dec = Decimal128::from_str("12.50").unwrap();
        assert_eq!(col(Bson::Decimal128(dec), Number), Ok(json!(12.5)));
        assert_eq!(col(Bson::Decimal128(dec), String), Ok(json!("12.50")));
        assert_eq!(
            col(
                Bson::Timestamp(Timestamp {
                    time: 10,
                    increment: 3
                }),
                Number
            ),
            Ok(json!(10_000))
        );
        assert_eq!(col(Bson::Boolean(true), Boolean), Ok(json!(true)));
        assert_eq!(to_column(None, Number), Ok(Value::Null));
        assert_eq!(col(Bson::Null, Boolean), Ok(Value::Null));
        assert_eq!(col(Bson::String("x".into()), String), Ok(json!("x")));
    }

    #[test]
    fn values_that_do_not_fit() {
        use ColumnType::*;
        assert_eq!(col(Bson::String("12".into()), Number), Err("string"));
        assert_eq!(col(Bson::Int32(1), Boolean), Err("int"));
        assert_eq!(col(Bson::Int32(1), String), Err("int"));
        assert_eq!(col(Bson::Double(f64::NAN), Number), Err("double"));
        assert_eq!(col(Bson::Double(f64::INFINITY), Number), Err("double"));
        assert_eq!(
            col(
                Bson::Decimal128(Decimal128::from_str("Infinity").unwrap()),
                Number
            ),
            Err("decimal")
        );
        assert_eq!(col(Bson::Document(doc! {"a": 1}), String), Err("object"));
        assert_eq!(col(Bson::Boolean(true), Null), Err("bool"));
    }

    #[test]
    fn json_columns_convert_inside() {
        let oid = ObjectId::parse_str(OID).unwrap();
        let d = doc! {
            "id": oid,
            "at": bson::DateTime::from_millis(0),
            "n": 9_007_199_254_740_993i64,
            "price": Decimal128::from_str("1.10").unwrap(),
            "bin": Binary { subtype: BinarySubtype::Generic, bytes: b"hello".to_vec() },
            "list": [1, 2.5, "x", null, {"deep": oid}],
            "nan": f64::NAN,
        };
        let v = col(Bson::Document(d), ColumnType::Json).unwrap();
        assert_eq!(
            serde_json::to_string(&v).unwrap(),
            format!(
                r#"{{"id":"{OID}","at":"1970-01-01T00:00:00.000Z","n":9007199254740993,"price":"1.10","bin":"aGVsbG8=","list":[1,2.5,"x",null,{{"deep":"{OID}"}}],"nan":null}}"#
            )
        );
        assert_eq!(
            col(Bson::String("s".into()), ColumnType::Json),
            Ok(json!("s"))
        );
    }

    #[test]
    fn base64_padding() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(&[0xfb, 0xff]), "+/8=");
    }

    #[test]
    fn extended_json_literals() {
        assert_eq!(
            json_to_bson(&json!({"$oid": OID})),
            Ok(Bson::ObjectId(ObjectId::parse_str(OID).unwrap()))
        );
        assert_eq!(
            json_to_bson(&json!({"$date": "1970-01-01T00:00:01Z"})),
            Ok(Bson::DateTime(bson::DateTime::from_millis(1000)))
        );
        assert_eq!(
            json_to_bson(&json!({"$date": {"$numberLong": "5"}})),
            Ok(Bson::DateTime(bson::DateTime::from_millis(5)))
        );
        assert_eq!(
            json_to_bson(&json!({"$numberLong": "5"})),
            Ok(Bson::Int64(5))
        );
        assert_eq!(
            json_to_bson(&json!({"$numberInt": "5"})),
            Ok(Bson::Int32(5))
        );
        assert_eq!(
            json_to_bson(&json!({"$numberDouble": "1.5"})),
            Ok(Bson::Double(1.5))
        );
        assert_eq!(
            json_to_bson(&json!({"$numberDecimal": "1.5"})),
            Ok(Bson::Decimal128("1.5".parse().unwrap()))
        );
        assert_eq!(
            json_to_bson(&json!(5_000_000_000i64)),
            Ok(Bson::Int64(5_000_000_000))
        );
        assert_eq!(
            json_to_bson(&json!([1, {"a": 1.5}])),
            Ok(Bson::Array(vec![
                Bson::Int32(1),
                Bson::Document(doc! {"a": 1.5})
            ]))
        );
        assert!(
            json_to_bson(&json!({"$oid": "xyz"}))
                .unwrap_err()
                .starts_with("bad $oid")
        );
    }

    #[test]
    fn comparison_brackets() {
        assert!(equal(&Bson::Int32(1), &Bson::Double(1.0)));
        assert!(equal(
            &Bson::Int64(1),
            &Bson::Decimal128("1.0".parse().unwrap())
        ));
        assert!(!equal(&Bson::Int32(1), &Bson::String("1".into())));
        assert_eq!(
            compare(&Bson::Int64(i64::MAX), &Bson::Double(9.3e18)),
            Ordering::Less
        );
        assert_eq!(
            compare(&Bson::Int64(3), &Bson::Double(2.5)),
            Ordering::Greater
        );
        assert_eq!(compare(&Bson::Int64(2), &Bson::Double(2.5)), Ordering::Less);
        assert_eq!(
            compare(&Bson::Int64(-3), &Bson::Double(-2.5)),
            Ordering::Less
        );
        assert!(equal(&Bson::Double(f64::NAN), &Bson::Double(f64::NAN)));
        assert_eq!(
            compare(&Bson::Double(f64::NAN), &Bson::Int32(i32::MIN)),
            Ordering::Less
        );
        assert!(equal(
            &Bson::Document(doc! {"a": 1, "b": [1]}),
            &Bson::Document(doc! {"a": 1.0, "b": [1i64]})
        ));
        assert!(!equal(
            &Bson::Document(doc! {"a": 1, "b": 2}),
            &Bson::Document(doc! {"b": 2, "a": 1})
        ));
        let (a, b) = (
            ObjectId::parse_str(OID).unwrap(),
            ObjectId::parse_str("5f0c9a8e1c9d440000a1b2c4").unwrap(),
        );
        assert_eq!(
            compare(&Bson::ObjectId(a), &Bson::ObjectId(b)),
            Ordering::Less
        );
    }
}
