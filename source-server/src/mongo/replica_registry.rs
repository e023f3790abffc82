//! The replica registry: which replicas this source has built, and from which configuration.
//!
//! zero-cache sends back the `replicaVersion` (the watermark of its initial sync) on every
//! resume. If we never built that replica, or the schema, mappings or permissions changed since,
//! resuming would silently serve rows shaped by another configuration — so the answer is
//! `reset-required`, and a changed ConfigMap rolls out by itself. The registry lives in MongoDB,
//! so any replica of the source can serve any zero-cache and nothing is lost with a pod.
//!
//! An entry is keyed by app, shard *and* replica version: a replica version is only a cluster
//! time, and two apps or shards that start an initial sync in the same idle window get the same
//! one. Entries written by older versions (keyed by the replica version alone, with the app and
//! shard as fields) are still read, and moved to the new key when their replica resumes. Every
//! resume, and every hour of an open stream, marks the entry used; entries no zero-cache has
//! used for the retention time (`REGISTRY_RETENTION_HOURS`) are deleted, so the collection
//! does not grow with every replica ever built.
//!
//! Several sources share it (`source.replicas: 2`): an initial sync recorded by one must be
//! seen by the other on the very next resume, which zero-cache may send there a moment later.
//! So the registry is always read from the primary, whatever read preference the connection
//! string gives the rest of the source (a lagging secondary would answer "unknown replica" and
//! force a needless rebuild).

use std::time::Duration;

use bson::{Bson, Document, doc};
use mongodb::options::{CollectionOptions, ReadPreference, SelectionCriteria};
use mongodb::{Collection, Database};

use crate::zero::catalog::Shard;

pub struct ReplicaRegistry {
    collection: Collection<Document>,
}

/// What a resume request is checked against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Known,
    Unknown,
    ConfigChanged,
    /// Only an old-style entry exists for this replica version, and it is another app's or
    /// shard's.
    OtherShard,
}

/// The default retention of unused entries: far beyond any oplog window, so an entry is only
/// pruned once its replica could not resume anyway.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(30 * 24 * 3600);

/// How often an open stream marks its entry used.
pub const TOUCH_EVERY: Duration = Duration::from_secs(3600);

fn key(replica_version: &str, shard: &Shard) -> Document {
    // Field order is part of a document `_id`'s identity: always built here.
    doc! {
        "appID": &shard.app_id,
        "shardNum": shard.shard_num as i64,
        "replicaVersion": replica_version,
    }
}

impl ReplicaRegistry {
    pub fn new(db: &Database, collection: &str) -> Self {
        let primary = CollectionOptions::builder()
            .selection_criteria(SelectionCriteria::ReadPreference(ReadPreference::Primary))
            .build();
        ReplicaRegistry {
            collection: db.collection_with_options(collection, primary),
        }
    }

    pub async fn record(
        &self,
        replica_version: &str,
        config_hash: &str,
        shard: &Shard,
    ) -> mongodb::error::Result<()> {
        let id = key(replica_version, shard);
        let now = bson::DateTime::now();
        self.collection
            .replace_one(
                doc! {"_id": &id},
                doc! {
                    "_id": &id,
                    "configHash": config_hash,
                    "createdAt": now,
                    "lastUsedAt": now,
                },
            )
            .upsert(true)
            .await?;
        Ok(())
    }

    /// The verdict on a resume of `replica_version` for `shard`; a known replica is marked used
    /// (and an old-style entry moved to its new key).
    pub async fn check(
        &self,
        replica_version: &str,
        config_hash: &str,
        shard: &Shard,
    ) -> mongodb::error::Result<Verdict> {
        let id = key(replica_version, shard);
        let hash_verdict = |entry: &Document| {
            if entry.get_str("configHash").ok() == Some(config_hash) {
                Verdict::Known
            } else {
                Verdict::ConfigChanged
            }
        };
        if let Some(entry) = self.collection.find_one(doc! {"_id": &id}).await? {
            let verdict = hash_verdict(&entry);
            if verdict == Verdict::Known {
                self.touch(replica_version, shard).await?;
            }
            return Ok(verdict);
        }
        let Some(legacy) = self
            .collection
            .find_one(doc! {"_id": replica_version})
            .await?
        else {
            // Another source may have moved the old-style entry between our two reads (both
            // serve the same zero-cache during a fail-over): look for the new key once more.
            return Ok(match self.collection.find_one(doc! {"_id": &id}).await? {
                Some(entry) => hash_verdict(&entry),
                None => Verdict::Unknown,
            });
        };
        if legacy.get_str("appID").ok() != Some(shard.app_id.as_str())
            || legacy.get_i64("shardNum").ok() != Some(shard.shard_num as i64)
        {
            return Ok(Verdict::OtherShard);
        }
        let verdict = hash_verdict(&legacy);
        if verdict == Verdict::Known {
            // Move it to the new key: insert first, so a crash in between loses nothing.
            let now = bson::DateTime::now();
            self.collection
                .replace_one(
                    doc! {"_id": &id},
                    doc! {
                        "_id": &id,
                        "configHash": config_hash,
                        "createdAt": legacy.get("createdAt").cloned().unwrap_or(Bson::DateTime(now)),
                        "lastUsedAt": now,
                    },
                )
                .upsert(true)
                .await?;
            self.collection
                .delete_one(doc! {"_id": replica_version})
                .await?;
        }
        Ok(verdict)
    }

    /// Marks the entry used now.
    pub async fn touch(&self, replica_version: &str, shard: &Shard) -> mongodb::error::Result<()> {
        self.collection
            .update_one(
                doc! {"_id": key(replica_version, shard)},
                doc! {"$set": {"lastUsedAt": bson::DateTime::now()}},
            )
            .await?;
        Ok(())
    }

    /// Deletes the entries nobody used for `retention` (old-style ones by their creation
    /// time); returns how many.
    pub async fn prune_unused(&self, retention: Duration) -> mongodb::error::Result<u64> {
        let cutoff = bson::DateTime::from_millis(
            bson::DateTime::now()
                .timestamp_millis()
                .saturating_sub(retention.as_millis().min(i64::MAX as u128) as i64),
        );
        let deleted = self
            .collection
            .delete_many(doc! {"$or": [
                {"lastUsedAt": {"$lt": cutoff}},
                {"lastUsedAt": {"$exists": false}, "createdAt": {"$lt": cutoff}},
            ]})
            .await?;
        Ok(deleted.deleted_count)
    }
}
