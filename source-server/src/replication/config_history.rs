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
//!
//! Several sources share these collections, and during a rolling update they do not share a
//! configuration: zero-cache may resume on a pod with the new one, get the change applied,
//! then reconnect to a pod still running the old one. That pod must not "apply in place" the
//! reverse diff (the two would flap the replica back and forth). So every source announces the
//! configuration it runs in `<REGISTRY_COLLECTION>_config_loads`: when a configuration hash was
//! first loaded by any source (MongoDB's clock, kept forever) and when a source running it last
//! said it was alive (every [`ANNOUNCE_EVERY`]). A source whose configuration was first loaded
//! before the replica's does not change the replica backwards while a source running the
//! replica's configuration is alive ([`LIVE_FOR`]): zero-cache is sent elsewhere instead. Once
//! no source runs the newer one any more (a rollback finished), the old configuration is the
//! only one there is and the change is applied, backwards, as the user asked. Ordering by the
//! first load, not the latest, means an old pod restarted in the middle of a rollout does not
//! become "newer" than the rollout's pods.
//!
//! Both collections are read from the primary: what one source just recorded must be seen by
//! another at zero-cache's very next resume, which may land there a moment later.

use std::time::Duration;

use bson::{Document, doc};
use futures::TryStreamExt;
use mongodb::options::{CollectionOptions, ReadPreference, SelectionCriteria};
use mongodb::{Collection, Database};
use serde_json::Value;
use tracing::warn;
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
    loads: Collection<Document>,
}

/// How often a running source says its configuration is alive.
pub const ANNOUNCE_EVERY: Duration = Duration::from_secs(10);
/// How long a configuration counts as run by a live source after its last announcement: three
/// announcements, so one slow write does not make it look gone.
pub const LIVE_FOR: Duration = Duration::from_secs(30);

/// What the sources said about one configuration hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadRecord {
    pub hash: String,
    /// When a source first loaded it (MongoDB's clock, epoch ms).
    pub first_loaded_ms: i64,
    /// A source running it announced it within [`LIVE_FOR`].
    pub live: bool,
}

/// Whether this source may change a replica from its configuration to the loaded one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Direction {
    Allowed,
    /// The replica's configuration is newer and still served: why not.
    Backwards(String),
}

/// The rule (see the module comment): backwards only when the replica's configuration was
/// first loaded after ours and a source still runs it. Unknown records (a configuration from a
/// source that did not announce) never block. Ties are broken by the hash so that two sources
/// never both see the other as older.
pub fn direction(mine: &LoadRecord, replica: Option<&LoadRecord>) -> Direction {
    let Some(replica) = replica else {
        return Direction::Allowed;
    };
    let newer = (replica.first_loaded_ms, &replica.hash) > (mine.first_loaded_ms, &mine.hash);
    if newer && replica.live {
        Direction::Backwards(format!(
            "the replica has configuration {}, loaded after this source's {} and still run by a live source: not changing it backwards (zero-cache should resume on a source with the newer configuration)",
            replica.hash, mine.hash
        ))
    } else {
        Direction::Allowed
    }
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
        let primary = || {
            CollectionOptions::builder()
                .selection_criteria(SelectionCriteria::ReadPreference(ReadPreference::Primary))
                .build()
        };
        ConfigHistory {
            collection: db
                .collection_with_options(&format!("{registry_collection}_configs"), primary()),
            loads: db
                .collection_with_options(&format!("{registry_collection}_config_loads"), primary()),
        }
    }

    /// A source runs configuration `hash` now: first loaded now unless it was before.
    pub async fn announce(&self, hash: &str) -> Result<(), HistoryError> {
        self.loads
            .update_one(
                doc! {"_id": hash},
                vec![doc! {"$set": {
                    "firstLoadedAt": {"$ifNull": ["$firstLoadedAt", "$$NOW"]},
                    "seenAt": "$$NOW",
                }}],
            )
            .upsert(true)
            .await?;
        Ok(())
    }

    /// What is known of these hashes (missing: never announced).
    pub async fn loads(&self, hashes: &[&str]) -> Result<Vec<LoadRecord>, HistoryError> {
        let live_ms = LIVE_FOR.as_millis() as i64;
        let cursor = self
            .loads
            .aggregate(vec![
                doc! {"$match": {"_id": {"$in": hashes}}},
                doc! {"$project": {
                    "firstLoadedAt": 1,
                    "live": {"$gte": ["$seenAt", {"$subtract": ["$$NOW", live_ms]}]},
                }},
            ])
            .await?;
        let docs: Vec<Document> = cursor.try_collect().await?;
        Ok(docs
            .iter()
            .filter_map(|d| {
                Some(LoadRecord {
                    hash: d.get_str("_id").ok()?.to_string(),
                    first_loaded_ms: d.get_datetime("firstLoadedAt").ok()?.timestamp_millis(),
                    live: d.get_bool("live").unwrap_or(false),
                })
            })
            .collect())
    }

    /// May this source (running `mine`) change a replica whose configuration is `replica`?
    pub async fn direction(&self, mine: &str, replica: &str) -> Result<Direction, HistoryError> {
        // Announced here too: the start-up announcement may have failed (MongoDB not up yet).
        self.announce(mine).await?;
        let loads = self.loads(&[mine, replica]).await?;
        let find = |h: &str| loads.iter().find(|l| l.hash == h);
        let Some(me) = find(mine) else {
            return Ok(Direction::Allowed);
        };
        Ok(direction(me, find(replica)))
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

/// Runs for the life of the process: says every [`ANNOUNCE_EVERY`] that a source runs `hash`.
pub async fn announce_forever(db: Database, registry_collection: String, hash: String) {
    let history = ConfigHistory::new(&db, &registry_collection);
    loop {
        if let Err(e) = history.announce(&hash).await {
            warn!(error = %e, "cannot announce the loaded configuration");
        }
        tokio::time::sleep(ANNOUNCE_EVERY).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(hash: &str, first: i64, live: bool) -> LoadRecord {
        LoadRecord {
            hash: hash.into(),
            first_loaded_ms: first,
            live,
        }
    }

    /// A rollout: the old pod must not undo the new pod's change; the new pod may apply it.
    #[test]
    fn an_older_source_never_changes_a_served_newer_replica_backwards() {
        let old = rec("aaa", 100, true);
        let new = rec("bbb", 200, true);
        assert!(matches!(
            direction(&old, Some(&new)),
            Direction::Backwards(why) if why.contains("bbb") && why.contains("aaa")
        ));
        assert_eq!(direction(&new, Some(&old)), Direction::Allowed);
    }

    /// A rollback: once no source runs the newer configuration, the old one applies.
    #[test]
    fn a_rollback_applies_once_the_newer_configuration_is_gone() {
        let old = rec("aaa", 100, true);
        let gone = rec("bbb", 200, false);
        assert_eq!(direction(&old, Some(&gone)), Direction::Allowed);
    }

    /// Unknown configurations (no announcement) never block; equal times never block both ways.
    #[test]
    fn unknown_and_tied_records() {
        let mine = rec("aaa", 100, true);
        assert_eq!(direction(&mine, None), Direction::Allowed);
        let a = rec("aaa", 100, true);
        let b = rec("bbb", 100, true);
        let ab = direction(&a, Some(&b)) == Direction::Allowed;
        let ba = direction(&b, Some(&a)) == Direction::Allowed;
        assert!(
            ab != ba,
            "exactly one of two tied configurations may change the other"
        );
    }

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
