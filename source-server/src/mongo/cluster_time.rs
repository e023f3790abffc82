//! MongoDB's position in its oplog ([`ClusterTime`]) and the Zero watermark that carries it.
//!
//! Watermarks come from MongoDB itself, so the source keeps no local state. A Zero watermark is
//! the LexiVersion (`zero::lexi_version`) of a MongoDB cluster time packed as
//! `(seconds << 32) | increment`. Resuming from a watermark W means opening the change stream at
//! operation time W and skipping every event at or before W. The cluster time of a resume token
//! is read from its `_data` hex string (byte `0x82`, then 4 bytes of seconds and 4 of increment,
//! big-endian), which is how Debezium reads tokens too.

use bson::{RawDocument, Timestamp};
use thiserror::Error;

use crate::zero::lexi_version;

/// A MongoDB cluster time, ordered the way the oplog orders it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ClusterTime(u64);

#[derive(Debug, Error, PartialEq, Eq)]
pub enum WatermarkError {
    #[error(transparent)]
    Lexi(#[from] lexi_version::LexiError),
    #[error("resume token has no `_data` string")]
    NoData,
    #[error("resume token `_data` does not start with a timestamp (byte 0x82)")]
    NotTimestamp,
    #[error("resume token `_data` is not valid hex")]
    BadHex,
}

impl ClusterTime {
    pub const fn new(seconds: u32, increment: u32) -> Self {
        ClusterTime(((seconds as u64) << 32) | increment as u64)
    }

    pub const fn from_u64(v: u64) -> Self {
        ClusterTime(v)
    }

    pub const fn as_u64(self) -> u64 {
        self.0
    }

    pub const fn seconds(self) -> u32 {
        (self.0 >> 32) as u32
    }

    pub const fn increment(self) -> u32 {
        self.0 as u32
    }

    /// The cluster time just before this one. Used where MongoDB hands out a "high water mark"
    /// time T that a later event can still carry: everything strictly before T is final, so the
    /// safe watermark is T − 1.
    pub const fn prev(self) -> Self {
        ClusterTime(self.0.saturating_sub(1))
    }

    pub fn to_watermark(self) -> String {
        lexi_version::to_lexi(self.0)
    }

    pub fn from_watermark(w: &str) -> Result<Self, WatermarkError> {
        Ok(ClusterTime(lexi_version::from_lexi(w)?))
    }

    pub fn to_timestamp(self) -> Timestamp {
        Timestamp {
            time: self.seconds(),
            increment: self.increment(),
        }
    }

    pub fn from_timestamp(ts: Timestamp) -> Self {
        ClusterTime::new(ts.time, ts.increment)
    }

    /// Milliseconds since the epoch of the seconds part (for `commitTimeMs` and lag).
    pub fn epoch_ms(self) -> u64 {
        self.seconds() as u64 * 1000
    }

    /// The cluster time inside a resume token (`{_data: "82…"}`).
    pub fn from_resume_token(token: &RawDocument) -> Result<Self, WatermarkError> {
        let data = token.get_str("_data").map_err(|_| WatermarkError::NoData)?;
        if data.len() < 18 {
            return Err(WatermarkError::NotTimestamp);
        }
        // `get` rather than indexing: a token is outside input, and a multi-byte character
        // across one of these offsets must be an error, not a panic.
        let hex = |range: std::ops::Range<usize>| data.get(range).ok_or(WatermarkError::BadHex);
        if !hex(0..2)?.eq_ignore_ascii_case("82") {
            return Err(WatermarkError::NotTimestamp);
        }
        let seconds = u32::from_str_radix(hex(2..10)?, 16).map_err(|_| WatermarkError::BadHex)?;
        let increment =
            u32::from_str_radix(hex(10..18)?, 16).map_err(|_| WatermarkError::BadHex)?;
        Ok(ClusterTime::new(seconds, increment))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::rawdoc;

    #[test]
    fn packs_seconds_and_increment() {
        let t = ClusterTime::new(1_795_570_704, 5);
        assert_eq!(t.as_u64(), (1_795_570_704u64 << 32) | 5);
        assert_eq!(t.seconds(), 1_795_570_704);
        assert_eq!(t.increment(), 5);
        assert_eq!(ClusterTime::from_timestamp(t.to_timestamp()), t);
        assert_eq!(ClusterTime::from_watermark(&t.to_watermark()), Ok(t));
    }

    #[test]
    fn watermarks_order_like_cluster_times() {
        let a = ClusterTime::new(100, u32::MAX);
        let b = ClusterTime::new(101, 0);
        assert!(a < b);
        assert!(a.to_watermark() < b.to_watermark());
        assert_eq!(b.prev(), a);
    }

    #[test]
    fn a_multi_byte_character_in_a_resume_token_is_an_error_not_a_panic() {
        // "é" is two bytes: it straddles offset 2, then 10, then 18.
        for data in [
            "8é6B063C100000000522B022C0100296E5A1004B7",
            "826B063C1é0000000522B022C0100296E5A1004B7",
            "826B063C100000000é22B022C0100296E5A1004B7",
        ] {
            let token = rawdoc! { "_data": data };
            assert!(ClusterTime::from_resume_token(&token).is_err(), "{data}");
        }
    }

    #[test]
    fn reads_the_cluster_time_inside_a_resume_token() {
        // A real 6.0.5 event token: clusterTime Timestamp(1795570704, 5).
        let token = rawdoc! { "_data": "826B063C100000000522B022C0100296E5A1004B7" };
        assert_eq!(
            ClusterTime::from_resume_token(&token),
            Ok(ClusterTime::new(1_795_570_704, 5))
        );
        assert_eq!(
            ClusterTime::from_resume_token(&rawdoc! {"_data": "8a00"}),
            Err(WatermarkError::NotTimestamp)
        );
        assert_eq!(
            ClusterTime::from_resume_token(&rawdoc! {}),
            Err(WatermarkError::NoData)
        );
    }
}
