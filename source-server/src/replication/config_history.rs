//! The configuration each replica currently has: what a changed configuration is diffed against.
//!
//! The replica registry only keeps a hash, and a hash cannot be diffed. This collection (the
//! registry's name plus `_configs`, so one setting names both) keeps, per app, shard and replica
//! version, the schema, mappings and permissions the replica was built from — or last changed to
//! in place — as the JSON the loader reads back, so the old configuration can be resolved and
//! compiled again.
//!
//! An in-place change is first stored as `pending` with the watermark of its transaction, and
//! becomes `current` once zero-cache has committed it: on its ack, or — should the source die
//! before the ack arrives — on the next resume from a watermark at or after it (zero-cache only
//! resumes from what it committed). A crash before that leaves `current` as it was, so the
//! change is simply applied again.

use bson::{Document, doc};
use mongodb::{Collection, Database};
use serde_json::Value;
use zerostack_spec::mapping::TableMappings;
use zerostack_spec::schema::Schema;
use zerostack_spec::{Bookkeeping, Config};

use crate::config::inputs::{self, Loaded};
use crate::zero::catalog::Shard;

/// A configuration as stored: the inputs the loader reads, plus the hash it had.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredConfig {
    pub hash: String,
    pub schema: Value,
    pub mappings: Value,
    pub permissions: Option<Value>,
    pub clients_collection: String,
    pub mutations_collection: String,
}

#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error("config history: {0}")]
    Mongo(#[from] mongodb::error::Error),
    #[error("the stored configuration {hash} no longer loads: {message}")]
    Unreadable { hash: String, message: String },
}

impl StoredConfig {
    pub fn of(config: &Config) -> StoredConfig {
        StoredConfig {
            hash: config.hash.clone(),
            schema: serde_json::to_value(&config.schema).unwrap_or(Value::Null),
            mappings: serde_json::to_value(&config.mappings).unwrap_or(Value::Null),
            permissions: config.permissions.clone(),
            clients_collection: config.bookkeeping.clients_collection.clone(),
            mutations_collection: config.bookkeeping.mutations_collection.clone(),
        }
    }

    /// Resolves and compiles it again, as at start-up.
    pub fn load(&self) -> Result<Loaded, HistoryError> {
        let unreadable = |message: String| HistoryError::Unreadable {
            hash: self.hash.clone(),
            message,
        };
        let schema = Schema::from_json(&self.schema).map_err(unreadable)?;
        let mappings = TableMappings::from_json(&self.mappings).map_err(unreadable)?;
        let mut config = Config::from_parts(schema, mappings, self.permissions.clone())
            .map_err(|e| unreadable(e.to_string()))?
            .with_bookkeeping(Bookkeeping {
                clients_collection: self.clients_collection.clone(),
                mutations_collection: self.mutations_collection.clone(),
            });
        // The identity is the hash it was recorded under.
        config.hash = self.hash.clone();
        inputs::compile(config).map_err(|e| unreadable(e.to_string()))
    }

    fn to_doc(&self) -> Document {
        // JSON text, not BSON: field names like `$eq` in filters are not valid BSON keys to
        // store, and the loader wants exactly the JSON it was given.
        doc! {
            "hash": &self.hash,
            "schema": self.schema.to_string(),
            "mappings": self.mappings.to_string(),
            "permissions": self.permissions.as_ref().map(|p| p.to_string()),
            "clientsCollection": &self.clients_collection,
            "mutationsCollection": &self.mutations_collection,
        }
    }

    fn from_doc(d: &Document) -> Option<StoredConfig> {
        let json = |k: &str| serde_json::from_str::<Value>(d.get_str(k).ok()?).ok();
        Some(StoredConfig {
            hash: d.get_str("hash").ok()?.to_string(),
            schema: json("schema")?,
            mappings: json("mappings")?,
            permissions: json("permissions"),
            clients_collection: d.get_str("clientsCollection").ok()?.to_string(),
            mutations_collection: d.get_str("mutationsCollection").ok()?.to_string(),
        })
    }
}

/// What is stored for one replica.
#[derive(Debug, Clone)]
pub struct Entry {
    pub current: StoredConfig,
    /// An in-place change sent at this watermark, not yet known to be committed.
    pub pending: Option<(StoredConfig, String)>,
}

pub struct ConfigHistory {
    collection: Collection<Document>,
}

fn key(replica_version: &str, shard: &Shard) -> Document {
    doc! {
        "appID": &shard.app_id,
        "shardNum": shard.shard_num as i64,
        "replicaVersion": replica_version,
    }
}

impl ConfigHistory {
    pub fn new(db: &Database, registry_collection: &str) -> Self {
        ConfigHistory {
            collection: db.collection(&format!("{registry_collection}_configs")),
        }
    }

    /// The replica's configuration is now `config` (an initial sync, or a committed change).
    pub async fn record(
        &self,
        replica_version: &str,
        shard: &Shard,
        config: &StoredConfig,
    ) -> Result<(), HistoryError> {
        let id = key(replica_version, shard);
        self.collection
            .replace_one(
                doc! {"_id": &id},
                doc! {"_id": &id, "current": config.to_doc(), "updatedAt": bson::DateTime::now()},
            )
            .upsert(true)
            .await?;
        Ok(())
    }

    /// An in-place change to `config` is being sent at `watermark`.
    pub async fn set_pending(
        &self,
        replica_version: &str,
        shard: &Shard,
        config: &StoredConfig,
        watermark: &str,
    ) -> Result<(), HistoryError> {
        self.collection
            .update_one(
                doc! {"_id": key(replica_version, shard)},
                doc! {"$set": {
                    "pending": {"config": config.to_doc(), "watermark": watermark},
                    "updatedAt": bson::DateTime::now(),
                }},
            )
            .await?;
        Ok(())
    }

    pub async fn get(
        &self,
        replica_version: &str,
        shard: &Shard,
    ) -> Result<Option<Entry>, HistoryError> {
        let Some(d) = self
            .collection
            .find_one(doc! {"_id": key(replica_version, shard)})
            .await?
        else {
            return Ok(None);
        };
        let Some(current) = d
            .get_document("current")
            .ok()
            .and_then(StoredConfig::from_doc)
        else {
            return Ok(None);
        };
        let pending = d.get_document("pending").ok().and_then(|p| {
            Some((
                StoredConfig::from_doc(p.get_document("config").ok()?)?,
                p.get_str("watermark").ok()?.to_string(),
            ))
        });
        Ok(Some(Entry { current, pending }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What is stored loads back to the same configuration, hash included.
    #[test]
    fn a_stored_configuration_loads_back_the_same() {
        let schema = r#"{"tables": {
            "users": {"name": "users", "columns": {"id": {"type": "string"}, "age": {"type": "number", "optional": true}}, "primaryKey": ["id"]},
            "chats": {"name": "chats", "columns": {"id": {"type": "string"}, "t": {"type": "string"}}, "primaryKey": ["id"]}
        }}"#;
        let mappings = r#"{"chats": {"source": "rooms", "filter": {"t": {"$in": ["d", "p"]}}, "projection": {"id": "$_id", "t": 1}}}"#;
        let config = zerostack_spec::load(
            zerostack_spec::Source {
                origin: "schema",
                text: schema,
            },
            Some(zerostack_spec::Source {
                origin: "mappings",
                text: mappings,
            }),
            None,
        )
        .unwrap();
        let stored = StoredConfig::of(&config);
        let back = StoredConfig::from_doc(&stored.to_doc()).unwrap();
        assert_eq!(back, stored);
        let loaded = back.load().unwrap();
        assert_eq!(loaded.config.tables, config.tables);
        assert_eq!(loaded.config.hash, config.hash);
        // Re-hashing what was stored gives the same hash: nothing was lost on the way.
        assert_eq!(
            zerostack_spec::hash::config_hash(
                &loaded.config.schema,
                &loaded.config.mappings,
                loaded.config.permissions.as_ref(),
                &loaded.config.bookkeeping
            ),
            config.hash
        );
    }
}
