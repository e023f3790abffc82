//! The replica registry: which replicas this source has built, and from which configuration.
//!
//! zero-cache sends back the `replicaVersion` (the watermark of its initial sync) on every
//! resume. If we never built that replica, or the schema, mappings or permissions changed since,
//! resuming would silently serve rows shaped by another configuration — so the answer is
//! `reset-required`, and a changed ConfigMap rolls out by itself. The registry lives in MongoDB,
//! so any replica of the source can serve any zero-cache and nothing is lost with a pod.

use bson::{Document, doc};
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
    OtherShard,
}

impl ReplicaRegistry {
    pub fn new(db: &Database, collection: &str) -> Self {
        ReplicaRegistry {
            collection: db.collection(collection),
        }
    }

    pub async fn record(
        &self,
        replica_version: &str,
        config_hash: &str,
        shard: &Shard,
    ) -> mongodb::error::Result<()> {
        self.collection
            .replace_one(
                doc! {"_id": replica_version},
                doc! {
                    "_id": replica_version,
                    "configHash": config_hash,
                    "appID": &shard.app_id,
                    "shardNum": shard.shard_num as i64,
                    "createdAt": bson::DateTime::now(),
                },
            )
            .upsert(true)
            .await?;
        Ok(())
    }

    pub async fn check(
        &self,
        replica_version: &str,
        config_hash: &str,
        shard: &Shard,
    ) -> mongodb::error::Result<Verdict> {
        let Some(entry) = self
            .collection
            .find_one(doc! {"_id": replica_version})
            .await?
        else {
            return Ok(Verdict::Unknown);
        };
        if entry.get_str("appID").ok() != Some(shard.app_id.as_str())
            || entry.get_i64("shardNum").ok() != Some(shard.shard_num as i64)
        {
            return Ok(Verdict::OtherShard);
        }
        if entry.get_str("configHash").ok() != Some(config_hash) {
            return Ok(Verdict::ConfigChanged);
        }
        Ok(Verdict::Known)
    }
}
