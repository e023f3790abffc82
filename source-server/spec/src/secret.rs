//! Secrets: a value type that never prints, and comparing without leaking through timing.
//!
//! [`Secret`] is the one type every binary keeps a MongoDB URI, a token or a password in: its
//! `Debug` is redacted and it has no `Display`, so a future `{:?}` of a config or connection
//! struct cannot put one in a log line. Reading the value takes an explicit [`Secret::expose`].
//!
//! The source checks zero-cache's token and the app checks its API key and token signatures; an
//! early-exit comparison would tell an attacker how many leading bytes of a guess are right.

use std::fmt;

use serde::{Deserialize, Deserializer};

/// A setting that must not reach a log line, an error message or a status field.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The value itself, for the one place that must use it (a connection, a comparison).
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Compares with a presented value in constant time.
    pub fn matches(&self, presented: &str) -> bool {
        constant_time_eq(self.0.as_bytes(), presented.as_bytes())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// clap builds a [`Secret`] through this.
impl From<String> for Secret {
    fn from(s: String) -> Secret {
        Secret(s)
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Secret {
        Secret(s.to_string())
    }
}

/// Config files and query strings read a [`Secret`] directly, so the plain string never sits in
/// a struct whose `Debug` would print it. There is deliberately no `Serialize`: a secret is never
/// written back out.
impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Secret, D::Error> {
        String::deserialize(deserializer).map(Secret)
    }
}

/// Compares in time that depends only on the lengths (which are not secret here).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::{Secret, constant_time_eq};

    #[test]
    fn debug_never_shows_the_value() {
        let s = Secret::new("mongodb://user:hunter2@host/db");
        assert_eq!(format!("{s:?}"), "<redacted>");
        assert_eq!(format!("{:?}", Some(s.clone())), "Some(<redacted>)");
        assert!(s.matches("mongodb://user:hunter2@host/db"));
        assert!(!s.matches("mongodb://user:hunter3@host/db"));
    }

    #[test]
    fn deserializes_from_a_string_and_stays_redacted() {
        #[derive(serde::Deserialize, Debug)]
        struct WithToken {
            token: Option<Secret>,
        }
        let w: WithToken = serde_json::from_str(r#"{"token": "t0ps3cret"}"#).unwrap();
        assert!(w.token.as_ref().unwrap().matches("t0ps3cret"));
        assert!(!format!("{w:?}").contains("t0ps3cret"), "{w:?}");
        let e = serde_json::from_str::<WithToken>(r#"{"token": 5}"#).unwrap_err();
        assert!(e.to_string().contains("expected a string"), "{e}");
    }

    #[test]
    fn equal_only_when_every_byte_and_the_length_match() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret2"));
        assert!(!constant_time_eq(b"", b"x"));
    }
}
