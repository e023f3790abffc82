//! MongoDB extended JSON literals inside filters and projections.
//!
//! Filters compare against ObjectIds, dates and 64-bit integers, which plain JSON cannot spell.
//! Users write them as extended JSON (`{"$oid": ".."}`), which collides with the `$operator`
//! syntax. This module owns the rule that tells them apart (an object whose only key is one of
//! [`LITERAL_KEYS`] is a value, never an operator), checks such literals without any BSON
//! dependency, and holds the ISO-8601 date code that both this crate and the source server use.

use serde_json::{Map, Value};

use crate::error::{Cx, child, item, kind_of};

/// The extended JSON wrappers accepted as literal values.
pub const LITERAL_KEYS: [&str; 6] = [
    "$oid",
    "$date",
    "$numberLong",
    "$numberDecimal",
    "$numberInt",
    "$numberDouble",
];

/// The wrapper key if `map` is an extended JSON literal (exactly one key, one of [`LITERAL_KEYS`]).
pub fn literal_key(map: &Map<String, Value>) -> Option<&str> {
    if map.len() != 1 {
        return None;
    }
    let key = map.keys().next()?;
    LITERAL_KEYS.contains(&key.as_str()).then_some(key.as_str())
}

/// True for `{"$oid": ..}` and the other wrappers of [`LITERAL_KEYS`].
pub fn is_literal(value: &Value) -> bool {
    matches!(value, Value::Object(m) if literal_key(m).is_some())
}

/// Checks a literal value (recursively): extended JSON wrappers must be well formed, and no
/// other `$`-key may appear, since it would be an operator where a value is expected.
pub(crate) fn check(value: &Value, path: &str, cx: &mut Cx<'_>) -> bool {
    match value {
        Value::Array(items) => {
            let mut ok = true;
            for (i, v) in items.iter().enumerate() {
                ok &= check(v, &item(path, i), cx);
            }
            ok
        }
        Value::Object(map) => {
            if let Some(key) = literal_key(map) {
                let arg = &map[key];
                return match check_wrapper(key, arg) {
                    Ok(()) => true,
                    Err(msg) => {
                        cx.err(child(path, key), msg);
                        false
                    }
                };
            }
            let mut ok = true;
            for (k, v) in map {
                if k.starts_with('$') {
                    cx.err(
                        child(path, k),
                        format!(
                            "{k} is not allowed inside a value (only the extended JSON literals {} are)",
                            LITERAL_KEYS.join(", ")
                        ),
                    );
                    ok = false;
                } else {
                    ok &= check(v, &child(path, k), cx);
                }
            }
            ok
        }
        _ => true,
    }
}

fn check_wrapper(key: &str, arg: &Value) -> Result<(), String> {
    let text = |what: &str| match arg {
        Value::String(s) => Ok(s.as_str()),
        other => Err(format!("{key} takes {what}, found {}", kind_of(other))),
    };
    match key {
        "$oid" => {
            let s = text("a 24-character hex string")?;
            if s.len() == 24 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
                Ok(())
            } else {
                Err(format!("$oid {s:?} is not a 24-character hex string"))
            }
        }
        "$numberLong" => {
            let s = text("a string holding a 64-bit integer")?;
            s.parse::<i64>()
                .map(drop)
                .map_err(|_| format!("$numberLong {s:?} is not a 64-bit integer"))
        }
        "$numberInt" => {
            let s = text("a string holding a 32-bit integer")?;
            s.parse::<i32>()
                .map(drop)
                .map_err(|_| format!("$numberInt {s:?} is not a 32-bit integer"))
        }
        "$numberDouble" | "$numberDecimal" => {
            let s = text("a string holding a number")?;
            parse_special_float(s)
                .map(drop)
                .ok_or_else(|| format!("{key} {s:?} is not a number"))
        }
        "$date" => match arg {
            Value::String(s) => parse_iso8601_millis(s).map(drop).ok_or_else(|| {
                format!("$date {s:?} is not an ISO-8601 date (like 2024-05-01T12:00:00.000Z)")
            }),
            Value::Number(n) if n.as_i64().is_some() => Ok(()),
            Value::Object(m) if m.len() == 1 && m.contains_key("$numberLong") => {
                check_wrapper("$numberLong", &m["$numberLong"])
            }
            other => Err(format!(
                "$date takes an ISO-8601 string, an integer or {{\"$numberLong\": \"..\"}}, found {}",
                kind_of(other)
            )),
        },
        _ => Err(format!("unsupported extended JSON type {key}")),
    }
}

/// Parses a number as extended JSON spells it, including `Infinity`, `-Infinity` and `NaN`.
pub fn parse_special_float(s: &str) -> Option<f64> {
    match s {
        "Infinity" | "+Infinity" => Some(f64::INFINITY),
        "-Infinity" => Some(f64::NEG_INFINITY),
        "NaN" | "-NaN" => Some(f64::NAN),
        _ if s
            .bytes()
            .any(|b| b.is_ascii_alphabetic() && !matches!(b, b'e' | b'E')) =>
        {
            None
        }
        _ => s.parse().ok(),
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// Formats epoch milliseconds the way JavaScript's `Date.prototype.toISOString` does:
/// `2024-05-01T12:00:00.000Z`, with a signed six-digit year outside 0..=9999.
pub fn format_iso8601_millis(ms: i64) -> String {
    let days = ms.div_euclid(86_400_000);
    let rem = ms.rem_euclid(86_400_000);
    let (y, m, d) = civil_from_days(days);
    let (h, min, s, milli) = (
        rem / 3_600_000,
        rem / 60_000 % 60,
        rem / 1000 % 60,
        rem % 1000,
    );
    let year = if (0..=9999).contains(&y) {
        format!("{y:04}")
    } else if y < 0 {
        format!("-{:06}", -y)
    } else {
        format!("+{y:06}")
    };
    format!("{year}-{m:02}-{d:02}T{h:02}:{min:02}:{s:02}.{milli:03}Z")
}

/// Parses `YYYY-MM-DD` or `YYYY-MM-DDTHH:MM[:SS[.fff]][Z|±HH:MM|±HHMM]` into epoch
/// milliseconds. A time without an offset is UTC, as in MongoDB. Digits beyond milliseconds are
/// truncated.
pub fn parse_iso8601_millis(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let num = |from: usize, len: usize| -> Option<i64> {
        let part = b.get(from..from + len)?;
        part.iter().all(u8::is_ascii_digit).then(|| {
            part.iter()
                .fold(0i64, |acc, d| acc * 10 + i64::from(d - b'0'))
        })
    };
    let (sign, start) = match b.first()? {
        b'+' => (1, 1),
        b'-' => (-1, 1),
        _ => (1, 0),
    };
    let year_len = b[start..].iter().take_while(|c| c.is_ascii_digit()).count();
    if year_len < 4 || (start == 0 && year_len != 4) {
        return None;
    }
    let year = sign * num(start, year_len)?;
    let mut i = start + year_len;
    if b.get(i) != Some(&b'-') || b.get(i + 3) != Some(&b'-') {
        return None;
    }
    let (month, day) = (num(i + 1, 2)?, num(i + 4, 2)?);
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    i += 6;
    let mut ms = days_from_civil(year, month, day) * 86_400_000;
    if i == b.len() {
        return Some(ms);
    }
    if !matches!(b[i], b'T' | b't' | b' ') {
        return None;
    }
    let (h, min) = (num(i + 1, 2)?, num(i + 4, 2)?);
    if b.get(i + 3) != Some(&b':') || h > 23 || min > 59 {
        return None;
    }
    i += 6;
    let mut sec = 0;
    let mut frac = 0;
    if b.get(i) == Some(&b':') {
        sec = num(i + 1, 2)?;
        if sec > 59 {
            return None;
        }
        i += 3;
        if b.get(i) == Some(&b'.') {
            i += 1;
            let digits = b[i..].iter().take_while(|c| c.is_ascii_digit()).count();
            if digits == 0 {
                return None;
            }
            for k in 0..3 {
                frac = frac * 10
                    + if k < digits {
                        i64::from(b[i + k] - b'0')
                    } else {
                        0
                    };
            }
            i += digits;
        }
    }
    ms += ((h * 60 + min) * 60 + sec) * 1000 + frac;
    match b.get(i) {
        None => Some(ms),
        Some(b'Z' | b'z') if i + 1 == b.len() => Some(ms),
        Some(&c @ (b'+' | b'-')) => {
            let oh = num(i + 1, 2)?;
            let (om, end) = if b.get(i + 3) == Some(&b':') {
                (num(i + 4, 2)?, i + 6)
            } else {
                (num(i + 3, 2)?, i + 5)
            };
            if end != b.len() || oh > 23 || om > 59 {
                return None;
            }
            let offset = (oh * 60 + om) * 60_000;
            Some(if c == b'+' { ms - offset } else { ms + offset })
        }
        _ => None,
    }
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn iso_dates_round_trip() {
        for (text, ms) in [
            ("1970-01-01T00:00:00.000Z", 0),
            ("2024-02-29T23:59:59.999Z", 1_709_251_199_999),
            ("1969-12-31T23:59:59.999Z", -1),
            ("0001-01-01T00:00:00.000Z", -62_135_596_800_000),
        ] {
            assert_eq!(format_iso8601_millis(ms), text);
            assert_eq!(parse_iso8601_millis(text), Some(ms), "{text}");
        }
        assert_eq!(
            format_iso8601_millis(8_640_000_000_000_000),
            "+275760-09-13T00:00:00.000Z"
        );
        assert_eq!(
            parse_iso8601_millis("+275760-09-13T00:00:00.000Z"),
            Some(8_640_000_000_000_000)
        );
    }

    #[test]
    fn iso_parse_variants() {
        let base = parse_iso8601_millis("2024-05-01T12:00:00Z").unwrap();
        assert_eq!(parse_iso8601_millis("2024-05-01T12:00:00"), Some(base));
        assert_eq!(parse_iso8601_millis("2024-05-01T12:00Z"), Some(base));
        assert_eq!(
            parse_iso8601_millis("2024-05-01T14:00:00+02:00"),
            Some(base)
        );
        assert_eq!(parse_iso8601_millis("2024-05-01T07:30:00-0430"), Some(base));
        assert_eq!(
            parse_iso8601_millis("2024-05-01T12:00:00.1239Z"),
            Some(base + 123)
        );
        assert_eq!(
            parse_iso8601_millis("2024-05-01"),
            Some(base - 12 * 3_600_000)
        );
        for bad in [
            "",
            "2024-13-01",
            "2024-02-30",
            "24-05-01",
            "2024-05-01T25:00",
            "2024-05-01Tx",
            "2024-05-01T12:00:00Zjunk",
        ] {
            assert_eq!(parse_iso8601_millis(bad), None, "{bad}");
        }
    }

    #[test]
    fn literals_are_told_apart_from_operators() {
        assert!(is_literal(&json!({"$oid": "5f0000000000000000000000"})));
        assert!(is_literal(&json!({"$numberLong": "1"})));
        assert!(!is_literal(&json!({"$gt": 1})));
        assert!(!is_literal(&json!({"$oid": "x", "a": 1})));
    }

    #[test]
    fn literal_checks() {
        let check_one = |v: Value| {
            let mut errors = Vec::new();
            let ok = check(
                &v,
                "$.f",
                &mut Cx {
                    origin: "t",
                    errors: &mut errors,
                },
            );
            (
                ok,
                errors
                    .into_iter()
                    .map(|e| format!("{}: {}", e.path, e.message))
                    .collect::<Vec<_>>(),
            )
        };
        assert!(check_one(json!({"$oid": "5f0000000000000000000000"})).0);
        assert!(check_one(json!({"$date": "2024-05-01T00:00:00Z"})).0);
        assert!(check_one(json!({"$date": {"$numberLong": "-5"}})).0);
        assert!(check_one(json!({"$numberDouble": "-Infinity"})).0);
        assert!(check_one(json!([{"a": {"$numberLong": "9007199254740993"}}])).0);
        let (ok, errs) = check_one(json!({"$oid": "nothex"}));
        assert!(!ok);
        assert_eq!(
            errs,
            vec!["$.f.$oid: $oid \"nothex\" is not a 24-character hex string"]
        );
        let (_, errs) = check_one(json!({"$numberLong": 5}));
        assert!(errs[0].contains("$numberLong takes a string"), "{errs:?}");
        let (_, errs) = check_one(json!({"$date": "yesterday"}));
        assert!(errs[0].contains("not an ISO-8601 date"), "{errs:?}");
        let (_, errs) = check_one(json!([1, {"x": {"$gt": 1}}]));
        assert!(
            errs[0].starts_with("$.f[1].x.$gt: $gt is not allowed inside a value"),
            "{errs:?}"
        );
    }
}
