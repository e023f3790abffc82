//! LexiVersion: the watermark encoding zero-cache requires.
//!
//! zero-cache compares watermarks as strings (in TypeScript and in Postgres `ORDER BY`), and its
//! view-syncer parses them back with `versionFromLexi`. A LexiVersion is an unsigned integer in
//! lowercase base 36, prefixed by one base-36 digit holding (number of digits − 1), so string
//! order equals numeric order. Anything else replicates but breaks every client connection.

use thiserror::Error;

const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";

#[derive(Debug, Error, PartialEq, Eq)]
pub enum LexiError {
    #[error("watermark {0:?} is empty")]
    Empty(String),
    #[error("watermark {0:?} is not a LexiVersion: its length prefix does not match")]
    BadLength(String),
    #[error("watermark {0:?} is not a LexiVersion: it has a character outside [0-9a-z]")]
    BadDigit(String),
    #[error("watermark {0:?} does not fit in 64 bits")]
    Overflow(String),
}

/// Encodes `v` as a LexiVersion (`versionToLexi` in zero-cache).
pub fn to_lexi(v: u64) -> String {
    let mut digits = [0u8; 13];
    let mut n = v;
    let mut len = 0;
    loop {
        digits[len] = DIGITS[(n % 36) as usize];
        n /= 36;
        len += 1;
        if n == 0 {
            break;
        }
    }
    let mut out = String::with_capacity(len + 1);
    out.push(DIGITS[len - 1] as char);
    out.extend(digits[..len].iter().rev().map(|&d| d as char));
    out
}

/// Decodes a LexiVersion (`versionFromLexi` in zero-cache).
pub fn from_lexi(s: &str) -> Result<u64, LexiError> {
    let bytes = s.as_bytes();
    let (&prefix, rest) = bytes
        .split_first()
        .ok_or_else(|| LexiError::Empty(s.into()))?;
    let expected_len = digit(prefix).ok_or_else(|| LexiError::BadDigit(s.into()))? as usize + 1;
    if rest.len() != expected_len {
        return Err(LexiError::BadLength(s.into()));
    }
    let mut v: u64 = 0;
    for &b in rest {
        let d = digit(b).ok_or_else(|| LexiError::BadDigit(s.into()))?;
        v = v
            .checked_mul(36)
            .and_then(|v| v.checked_add(d))
            .ok_or_else(|| LexiError::Overflow(s.into()))?;
    }
    Ok(v)
}

fn digit(b: u8) -> Option<u64> {
    match b {
        b'0'..=b'9' => Some((b - b'0') as u64),
        b'a'..=b'z' => Some((b - b'a' + 10) as u64),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values_from_zero_cache() {
        assert_eq!(to_lexi(0), "00");
        assert_eq!(to_lexi(35), "0z");
        assert_eq!(to_lexi(36), "110");
        assert_eq!(to_lexi(1000), "1rs");
        assert_eq!(to_lexi(u64::MAX), "c3w5e11264sgsf");
    }

    #[test]
    fn round_trips_and_sorts_like_numbers() {
        let samples = [
            0u64,
            1,
            35,
            36,
            1295,
            1296,
            1 << 32,
            (1 << 40) + 7,
            u64::MAX - 1,
            u64::MAX,
        ];
        for w in samples.windows(2) {
            let (a, b) = (to_lexi(w[0]), to_lexi(w[1]));
            assert!(a < b, "{a} !< {b}");
            assert_eq!(from_lexi(&a), Ok(w[0]));
        }
        assert_eq!(from_lexi(&to_lexi(u64::MAX)), Ok(u64::MAX));
    }

    #[test]
    fn rejects_what_is_not_a_lexiversion() {
        assert!(matches!(from_lexi(""), Err(LexiError::Empty(_))));
        assert!(matches!(from_lexi("2ab"), Err(LexiError::BadLength(_))));
        assert!(matches!(from_lexi("1A0"), Err(LexiError::BadDigit(_))));
        assert!(matches!(
            from_lexi("czzzzzzzzzzzzz"),
            Err(LexiError::Overflow(_))
        ));
        assert!(matches!(
            from_lexi("00001795566695749004"),
            Err(LexiError::BadLength(_))
        ));
    }
}
