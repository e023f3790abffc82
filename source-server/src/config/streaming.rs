//! How the change stream is read and grouped: the settings of the streaming side, in one place
//! so that the settings file, the change stream cursor and the transaction builder share them
//! without depending on each other.

/// How update events get their whole document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub enum FullDocument {
    /// Look the document up at read time (works everywhere).
    #[default]
    UpdateLookup,
    /// Use post-images (`changeStreamPreAndPostImages` on the collection, MongoDB 6.0+).
    WhenAvailable,
    /// Post-images, and fail if one is missing.
    Required,
}

impl FullDocument {
    /// The `fullDocument` option of the `$changeStream` stage.
    pub fn as_str(self) -> &'static str {
        match self {
            FullDocument::UpdateLookup => "updateLookup",
            FullDocument::WhenAvailable => "whenAvailable",
            FullDocument::Required => "required",
        }
    }
}

/// Tuning of the streaming loop.
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "camelCase", default)]
pub struct StreamLimits {
    /// Most row changes coalesced into one Zero transaction (a larger MongoDB transaction is
    /// still sent whole).
    pub max_rows_per_transaction: usize,
    /// Most bytes of messages buffered for one Zero transaction before it is committed (or, for
    /// a single large MongoDB transaction, streamed).
    pub max_bytes_per_transaction: usize,
    /// Most change events read per `getMore` (bounds memory under backlog).
    pub read_batch_size: u32,
    /// How long a `getMore` waits when a transaction may still have events in flight.
    pub probe_ms: u64,
    /// How long a `getMore` waits when the stream is idle.
    pub idle_poll_ms: u64,
    /// How often an idle stream commits an empty transaction to advance the resume point.
    pub keepalive_ms: u64,
}

impl Default for StreamLimits {
    fn default() -> Self {
        StreamLimits {
            max_rows_per_transaction: 2000,
            max_bytes_per_transaction: 4 << 20,
            read_batch_size: 1000,
            probe_ms: 1,
            idle_poll_ms: 1000,
            keepalive_ms: 10_000,
        }
    }
}
