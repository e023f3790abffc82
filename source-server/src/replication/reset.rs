//! Why a replica must be rebuilt: every cause of a `reset-required`, as one type.
//!
//! zero-cache answers `reset-required` by exiting (code 14); restarted, it runs a fresh initial
//! sync. Each cause is a variant, so its message (the `reset-required` text and the log line,
//! through `Display`) and its metric label ([`ResetReason::metric_label`], the `reason` of
//! `zerostack_source_resets`) are decided where the reason is built, never read back from text.

use thiserror::Error;

use crate::mongo::cluster_time::WatermarkError;
use crate::mongo::replica_registry::Verdict;

#[derive(Debug, PartialEq, Eq, Error)]
pub enum ResetReason {
    /// The resume watermark is not a LexiVersion this source could have sent.
    #[error("lastWatermark is not one of ours ({0})")]
    ForeignWatermark(WatermarkError),
    /// A resume must name the replica it continues.
    #[error("resume without a replicaVersion")]
    NoReplicaVersion,
    /// The replica registry has no such replica: this source never built it.
    #[error("unknown replicaVersion {replica_version}")]
    UnknownReplica { replica_version: String },
    /// The replica was built from another schema, mappings or permissions.
    #[error(
        "the schema, table mappings or permissions changed since replica {replica_version} was built"
    )]
    ConfigChanged { replica_version: String },
    /// The configuration changed in a way that cannot be applied to the replica in place.
    #[error(
        "the schema, table mappings or permissions changed since replica {replica_version} was built, and the change cannot be applied in place: {why}"
    )]
    ConfigChangedNotInPlace {
        replica_version: String,
        why: String,
    },
    /// The replica was built for another `appID` or `shardNum`.
    #[error("replica {replica_version} was built for another app or shard")]
    OtherShard { replica_version: String },
    /// The resume point has left the oplog.
    #[error("resume point {resume_point} is no longer in the MongoDB oplog")]
    HistoryLost { resume_point: String },
    /// A mapped collection (or the database) was dropped, renamed or invalidated.
    #[error(
        "MongoDB reported `{operation}` for {}; the replica must be rebuilt",
        .collection.as_deref().unwrap_or("the database")
    )]
    CollectionInvalidated {
        operation: String,
        collection: Option<String>,
    },
    /// An update came without its post-image (`FULL_DOCUMENT=whenAvailable`), so the document
    /// it left is unknown.
    #[error(
        "an update of {collection} {document} came without its post-image; the replica must be rebuilt"
    )]
    PostImageMissing {
        collection: String,
        document: String,
    },
    /// A delete or update came without its pre-image, and `table`'s key is not derived from
    /// `_id`: the row it removes or re-keys cannot be found any other way.
    #[error(
        "a change of {collection} {document} came without its pre-image, so the row of table {table} it replaces cannot be found; the replica must be rebuilt"
    )]
    PreImageMissing {
        table: String,
        collection: String,
        document: String,
    },
    /// A change event over MongoDB's 16 MiB limit: the stream cannot get past it.
    #[error(
        "a change event of {document} is larger than MongoDB's 16 MiB limit, so the stream cannot get past it; the replica must be rebuilt"
    )]
    OversizedEvent { document: String },
}

impl ResetReason {
    /// The reason for a registry verdict on `replica_version`; `None` when the replica is known.
    pub fn from_verdict(verdict: Verdict, replica_version: &str) -> Option<ResetReason> {
        let replica_version = replica_version.to_string();
        match verdict {
            Verdict::Known => None,
            Verdict::Unknown => Some(ResetReason::UnknownReplica { replica_version }),
            Verdict::ConfigChanged => Some(ResetReason::ConfigChanged { replica_version }),
            Verdict::OtherShard => Some(ResetReason::OtherShard { replica_version }),
        }
    }

    /// The `reason` label of `zerostack_source_resets`.
    pub fn metric_label(&self) -> &'static str {
        match self {
            ResetReason::UnknownReplica { .. } => "unknown-replica",
            ResetReason::ConfigChanged { .. } | ResetReason::ConfigChangedNotInPlace { .. } => {
                "config-changed"
            }
            ResetReason::HistoryLost { .. } => "history-lost",
            ResetReason::CollectionInvalidated { .. } => "collection-invalidated",
            ResetReason::PostImageMissing { .. } | ResetReason::PreImageMissing { .. } => {
                "image-missing"
            }
            ResetReason::OversizedEvent { .. } => "oversized-event",
            ResetReason::ForeignWatermark(_)
            | ResetReason::NoReplicaVersion
            | ResetReason::OtherShard { .. } => "other",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mongo::cluster_time::ClusterTime;

    /// Message and label of every reason, as zero-cache and the metric have always seen them.
    #[test]
    fn each_reason_keeps_its_message_and_label() {
        let foreign = ClusterTime::from_watermark("2ab").unwrap_err();
        let rv = || "1abc".to_string();
        let cases = [
            (
                ResetReason::ForeignWatermark(foreign),
                r#"lastWatermark is not one of ours (watermark "2ab" is not a LexiVersion: its length prefix does not match)"#,
                "other",
            ),
            (
                ResetReason::NoReplicaVersion,
                "resume without a replicaVersion",
                "other",
            ),
            (
                ResetReason::UnknownReplica {
                    replica_version: rv(),
                },
                "unknown replicaVersion 1abc",
                "unknown-replica",
            ),
            (
                ResetReason::ConfigChanged {
                    replica_version: rv(),
                },
                "the schema, table mappings or permissions changed since replica 1abc was built",
                "config-changed",
            ),
            (
                ResetReason::ConfigChangedNotInPlace {
                    replica_version: rv(),
                    why: "the pipeline of public.members changed".into(),
                },
                "the schema, table mappings or permissions changed since replica 1abc was built, and the change cannot be applied in place: the pipeline of public.members changed",
                "config-changed",
            ),
            (
                ResetReason::OtherShard {
                    replica_version: rv(),
                },
                "replica 1abc was built for another app or shard",
                "other",
            ),
            (
                ResetReason::HistoryLost {
                    resume_point: "9hoh3pghfdt".into(),
                },
                "resume point 9hoh3pghfdt is no longer in the MongoDB oplog",
                "history-lost",
            ),
            (
                ResetReason::CollectionInvalidated {
                    operation: "drop".into(),
                    collection: Some("rooms".into()),
                },
                "MongoDB reported `drop` for rooms; the replica must be rebuilt",
                "collection-invalidated",
            ),
            (
                ResetReason::CollectionInvalidated {
                    operation: "dropDatabase".into(),
                    collection: None,
                },
                "MongoDB reported `dropDatabase` for the database; the replica must be rebuilt",
                "collection-invalidated",
            ),
        ];
        for (reason, message, label) in cases {
            assert_eq!(reason.to_string(), message);
            assert_eq!(reason.metric_label(), label, "{message}");
        }
    }

    #[test]
    fn registry_verdicts_map_to_reasons() {
        assert_eq!(ResetReason::from_verdict(Verdict::Known, "1a"), None);
        let label = |v| ResetReason::from_verdict(v, "1a").unwrap().metric_label();
        assert_eq!(label(Verdict::Unknown), "unknown-replica");
        assert_eq!(label(Verdict::ConfigChanged), "config-changed");
        assert_eq!(label(Verdict::OtherShard), "other");
    }
}
