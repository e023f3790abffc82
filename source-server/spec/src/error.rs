//! Errors of the spec formats.
//!
//! Bad input must be reported as "which file, where in it, what is wrong", and all problems at
//! once, so that a user fixes a config in one round instead of one error per restart. Every parser
//! in this crate therefore pushes into a shared list instead of returning on the first problem.

use std::fmt;

/// One problem in one input.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SpecError {
    /// Where the input came from: a file path, a URL or "inline".
    pub origin: String,
    /// A JSON path into that input, such as `$.tables.users.primaryKey[0]`.
    pub path: String,
    pub message: String,
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: {}", self.origin, self.path, self.message)
    }
}

impl std::error::Error for SpecError {}

/// Every problem found in a set of inputs; never empty when returned as an error.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SpecErrors(pub Vec<SpecError>);

impl SpecErrors {
    pub fn iter(&self) -> std::slice::Iter<'_, SpecError> {
        self.0.iter()
    }
    pub fn len(&self) -> usize {
        self.0.len()
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for SpecErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for SpecErrors {}

impl IntoIterator for SpecErrors {
    type Item = SpecError;
    type IntoIter = std::vec::IntoIter<SpecError>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

/// The parsing context: which input we are in, and where problems go.
pub(crate) struct Cx<'a> {
    pub origin: &'a str,
    pub errors: &'a mut Vec<SpecError>,
}

impl Cx<'_> {
    pub fn err(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.errors.push(SpecError {
            origin: self.origin.to_string(),
            path: path.into(),
            message: message.into(),
        });
    }
}

/// Runs a parser outside of `load` (for the `Deserialize` impls and `from_json` helpers) and
/// turns its problems into one message.
pub(crate) fn standalone<T>(f: impl FnOnce(&mut Cx<'_>) -> Option<T>) -> Result<T, String> {
    let mut errors = Vec::new();
    let out = f(&mut Cx {
        origin: "inline",
        errors: &mut errors,
    });
    match out {
        Some(v) if errors.is_empty() => Ok(v),
        _ => Err(errors
            .iter()
            .map(|e| format!("{}: {}", e.path, e.message))
            .collect::<Vec<_>>()
            .join("; ")),
    }
}

/// `$.a` for plain keys, `$["a.b"]` for keys that would be ambiguous in a dotted path.
pub(crate) fn child(path: &str, key: &str) -> String {
    let mut chars = key.chars();
    let ident = matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == '$')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$');
    if ident {
        format!("{path}.{key}")
    } else {
        format!("{path}[{}]", serde_json::Value::from(key))
    }
}

pub(crate) fn item(path: &str, index: usize) -> String {
    format!("{path}[{index}]")
}

/// A short name for a JSON value's kind, for messages like "expected a string, found a number".
pub(crate) fn kind_of(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// Implements `Deserialize` by way of a `serde_json::Value` and this crate's own parser, so that
/// a value read with serde and a value read by `load` are checked the same way.
macro_rules! deserialize_via_parser {
    ($ty:ty, $parse:path) => {
        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let value = <serde_json::Value as serde::Deserialize>::deserialize(d)?;
                crate::error::standalone(|cx| $parse(&value, "$", cx))
                    .map_err(<D::Error as serde::de::Error>::custom)
            }
        }
    };
}
pub(crate) use deserialize_via_parser;
