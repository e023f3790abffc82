//! Input rules that need no database: ids, texts, names, room types, limits and clocks.
//!
//! Pure functions, so that every command checks its arguments the same way before it reads
//! anything, and so that the rules can be tested without MongoDB. The query endpoint uses
//! [`validate_id`] too, for the ids in named-query arguments.

use bson::DateTime;

use super::error::{DomainError, Result};

pub const MAX_ID_LEN: usize = 128;
pub const MAX_TEXT_LEN: usize = 5000;
pub const MAX_NAME_LEN: usize = 80;
pub const MAX_TOPIC_LEN: usize = 500;
pub const MAX_MEMBERS: usize = 100;
/// Client timestamps further than this from the server clock are replaced by the server's.
const MAX_CLOCK_SKEW_MS: i64 = 5 * 60 * 1000;

/// Ids are chosen by clients (Zero clients create rows optimistically), so they are kept to a
/// small alphabet: letters, digits and `-_:.`.
pub fn validate_id(field: &str, id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id.len() <= MAX_ID_LEN
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | ':' | '.'));
    if ok {
        Ok(())
    } else {
        Err(DomainError::Invalid(format!(
            "{field} must be 1-{MAX_ID_LEN} characters of A-Z, a-z, 0-9, '-', '_', ':' or '.'"
        )))
    }
}

/// Trims a message text and checks it is neither empty nor too long.
pub fn validate_text(text: &str) -> Result<String> {
    let t = text.trim();
    if t.is_empty() {
        return Err(DomainError::Invalid("text must not be empty".into()));
    }
    if t.chars().count() > MAX_TEXT_LEN {
        return Err(DomainError::Invalid(format!(
            "text must be at most {MAX_TEXT_LEN} characters"
        )));
    }
    Ok(t.to_string())
}

/// Trims an optional text field; blank means absent.
pub fn validate_optional(
    field: &str,
    value: &Option<String>,
    max: usize,
) -> Result<Option<String>> {
    match value.as_deref().map(str::trim) {
        None | Some("") => Ok(None),
        Some(v) if v.chars().count() > max => Err(DomainError::Invalid(format!(
            "{field} must be at most {max} characters"
        ))),
        Some(v) => Ok(Some(v.to_string())),
    }
}

/// `d` (direct chat), `c` (public channel) or `p` (private group).
pub fn validate_room_type(t: &str) -> Result<()> {
    if matches!(t, "d" | "c" | "p") {
        Ok(())
    } else {
        Err(DomainError::Invalid(format!(
            "type must be \"d\", \"c\" or \"p\", got {:?}",
            crate::config::clip(t, 40)
        )))
    }
}

/// Picks the message timestamp: the client's when within the allowed skew, else now.
pub fn message_time(client_ms: Option<f64>, now: DateTime) -> DateTime {
    match client_ms {
        Some(ms) if ms.is_finite() => {
            let ms = ms as i64;
            if (ms - now.timestamp_millis()).abs() <= MAX_CLOCK_SKEW_MS {
                DateTime::from_millis(ms)
            } else {
                now
            }
        }
        _ => now,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_validated() {
        assert!(validate_id("id", "m-1_a:b.c").is_ok());
        assert!(validate_id("id", "6f1c1e8e-4b5a-4d55-9a4c-1f0f0a0b0c0d").is_ok());
        assert!(validate_id("id", "").is_err());
        assert!(validate_id("id", "a b").is_err());
        assert!(validate_id("id", "{\"$gt\":1}").is_err());
        let e = validate_id("roomId", &"x".repeat(200)).unwrap_err();
        assert!(e.to_string().contains("roomId"));
    }

    #[test]
    fn text_is_trimmed_and_bounded() {
        assert_eq!(validate_text("  hi ").unwrap(), "hi");
        assert!(validate_text("   ").is_err());
        assert!(validate_text(&"x".repeat(MAX_TEXT_LEN + 1)).is_err());
    }

    #[test]
    fn message_time_uses_plausible_client_clock() {
        let now = DateTime::from_millis(1_000_000_000_000);
        assert_eq!(
            message_time(Some(1_000_000_001_000.0), now).timestamp_millis(),
            1_000_000_001_000
        );
        assert_eq!(message_time(Some(5.0), now), now);
        assert_eq!(message_time(None, now), now);
        assert_eq!(message_time(Some(f64::NAN), now), now);
    }
}
