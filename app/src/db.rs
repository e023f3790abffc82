//! The MongoDB side of ZRocket: the collections, their document shapes, start-up setup, and
//! the conversion of documents to the JSON the API returns.
//!
//! Collections and indexes are created here at start-up because MongoDB transactions should
//! not create collections (the mutate endpoint writes everything inside transactions). The
//! document structs are the single description of what each collection holds; the Zero
//! schema in `zero::schema` publishes the same fields.

use bson::{Bson, DateTime, Document, doc};
use mongodb::options::{ClientOptions, IndexOptions};
use mongodb::{Client, Collection, Database, IndexModel};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use zerostack_spec::bookkeeping::{self, field};

use crate::auth::accounts::{CREDENTIALS, Credential};
use crate::auth::oidc::{IDENTITIES, Identity};
use crate::auth::session::{SESSIONS, Sessions};

pub const USERS: &str = "users";
pub const ROOMS: &str = "rooms";
pub const MESSAGES: &str = "messages";
pub const SUBSCRIPTIONS: &str = "subscriptions";
/// Zero's bookkeeping collections, as the change source publishes them.
pub const CLIENTS: &str = bookkeeping::CLIENTS_COLLECTION;
pub const MUTATIONS: &str = bookkeeping::MUTATIONS_COLLECTION;

/// `users` documents.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct User {
    #[serde(rename = "_id")]
    pub id: String,
    pub username: String,
    /// The username in lower case, unique: usernames are unique ignoring case.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username_lower: Option<String>,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub avatar_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bio: Option<String>,
    #[serde(default = "yes")]
    pub active: bool,
    pub created_at: DateTime,
    pub updated_at: DateTime,
}

fn yes() -> bool {
    true
}

/// The denormalised copy of a room's newest message.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct LastMessage {
    #[serde(rename = "_id")]
    pub id: String,
    pub text: String,
    pub sender_id: String,
    pub sender_username: String,
    pub created_at: DateTime,
}

/// `rooms` documents; `t` is `d` (direct chat), `c` (public channel) or `p` (private group).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Room {
    #[serde(rename = "_id")]
    pub id: String,
    pub t: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default)]
    pub read_only: bool,
    #[serde(default)]
    pub archived: bool,
    #[serde(default)]
    pub member_ids: Vec<String>,
    #[serde(default)]
    pub usernames: Vec<String>,
    /// The members, one entry per `subscriptions` document of the room, rewritten from them in
    /// the transaction of every membership change (see `domain::members`). The Zero
    /// table `roomMembers` is a pipeline mapping that unwinds this array.
    #[serde(default)]
    pub members: Vec<Member>,
    #[serde(default)]
    pub message_count: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_message: Option<LastMessage>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_message_at: Option<DateTime>,
    pub created_by: String,
    pub created_at: DateTime,
    pub updated_at: DateTime,
}

/// One entry of a room's `members`: who, and since when.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Member {
    pub user_id: String,
    pub joined_at: DateTime,
}

impl Member {
    pub fn of(sub: &Subscription) -> Member {
        Member {
            user_id: sub.user_id.clone(),
            joined_at: sub.joined_at,
        }
    }
}

/// The sender summary stored on user messages.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Sender {
    #[serde(rename = "_id")]
    pub id: String,
    pub username: String,
    pub name: String,
}

/// `messages` documents: `t` is `USER` or one of [`SYSTEM_MESSAGE_TYPES`].
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Message {
    #[serde(rename = "_id")]
    pub id: String,
    pub room_id: String,
    pub t: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sender_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sender: Option<Sender>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Document>,
    #[serde(default)]
    pub hidden: bool,
    #[serde(default)]
    pub pinned: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edited_at: Option<DateTime>,
    pub created_at: DateTime,
    pub updated_at: DateTime,
}

impl Message {
    /// A system message (`t` is one of [`SYSTEM_MESSAGE_TYPES`]) with a fresh id: the notice a
    /// command leaves in a room's history (created, joined, left, added, deleted).
    pub fn system(room_id: &str, t: &str, data: Document, now: DateTime) -> Message {
        Message {
            id: bson::oid::ObjectId::new().to_hex(),
            room_id: room_id.to_string(),
            t: t.to_string(),
            text: None,
            sender_id: None,
            sender: None,
            data: Some(data),
            hidden: false,
            pinned: false,
            edited_at: None,
            created_at: now,
            updated_at: now,
        }
    }
}

/// `subscriptions` documents: one per (room, member), `_id` = `"<roomId>:<userId>"`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Subscription {
    #[serde(rename = "_id")]
    pub id: String,
    pub room_id: String,
    pub user_id: String,
    pub room_type: String,
    pub joined_at: DateTime,
}

/// The message type of user-written messages.
pub const USER_MESSAGE_TYPE: &str = "USER";

/// Every system message type, each once: the `systemMessages` table publishes exactly these, so
/// a type written but missing here would reach no Zero table.
pub const SYSTEM_MESSAGE_TYPES: [&str; 9] = [
    "USER_JOINED",
    "USER_LEFT",
    "USER_ADDED",
    "USER_REMOVED",
    "ROOM_CREATED",
    "ROOM_RENAMED",
    "ROOM_TOPIC_CHANGED",
    "MESSAGE_PINNED",
    "MESSAGE_DELETED",
];

/// The room types, with the Zero table each one is published as.
pub const ROOM_TYPES: [(&str, &str); 3] = [("d", "chats"), ("c", "channels"), ("p", "groups")];

pub fn subscription_id(room_id: &str, user_id: &str) -> String {
    format!("{room_id}:{user_id}")
}

/// Handles to the database and its collections.
#[derive(Clone, Debug)]
pub struct Db {
    pub client: Client,
    pub database: Database,
    pub users: Collection<User>,
    pub rooms: Collection<Room>,
    pub messages: Collection<Message>,
    pub subscriptions: Collection<Subscription>,
    pub clients: Collection<Document>,
    pub mutations: Collection<Document>,
    /// Password hashes, one per user with a password (never published through Zero).
    pub credentials: Collection<Credential>,
    /// External (OIDC) identities and the user each signs in as.
    pub identities: Collection<Identity>,
}

impl Db {
    /// Connects (lazily: the driver connects on first use). The database is `database` if
    /// given, else the URI's default database, else `zrocket`.
    pub async fn connect(uri: &str, database: Option<&str>) -> anyhow::Result<Db> {
        // The driver's parse errors may quote the URI; report a generic message instead.
        let options = ClientOptions::parse(uri).await.map_err(|_| {
            anyhow::anyhow!("MONGODB_URI could not be parsed as a MongoDB connection string")
        })?;
        let name = database
            .map(str::to_string)
            .or_else(|| options.default_database.clone())
            .unwrap_or_else(|| crate::config::DEFAULT_DATABASE.to_string());
        let client = Client::with_options(options)?;
        Ok(Db::new(client, &name))
    }

    pub fn new(client: Client, name: &str) -> Db {
        let database = client.database(name);
        Db {
            users: database.collection(USERS),
            rooms: database.collection(ROOMS),
            messages: database.collection(MESSAGES),
            subscriptions: database.collection(SUBSCRIPTIONS),
            clients: database.collection(CLIENTS),
            mutations: database.collection(MUTATIONS),
            credentials: database.collection(CREDENTIALS),
            identities: database.collection(IDENTITIES),
            client,
            database,
        }
    }

    /// The session store.
    pub fn sessions(&self, ttl_secs: u64) -> Sessions {
        Sessions::new(self.database.collection(SESSIONS), ttl_secs)
    }

    /// Round-trips to the server (used by `/health`).
    pub async fn ping(&self) -> mongodb::error::Result<()> {
        self.database
            .run_command(doc! {"ping": 1})
            .await
            .map(|_| ())
    }

    /// Creates the collections and indexes. Idempotent; must run before serving because
    /// transactions cannot be relied on to create collections.
    pub async fn ensure_schema(&self) -> mongodb::error::Result<()> {
        let existing = self.database.list_collection_names().await?;
        for name in [
            USERS,
            ROOMS,
            MESSAGES,
            SUBSCRIPTIONS,
            CLIENTS,
            MUTATIONS,
            CREDENTIALS,
            IDENTITIES,
            SESSIONS,
        ] {
            if !existing.iter().any(|n| n == name) {
                let mut create = self.database.create_collection(name);
                if name == ROOMS {
                    // Created with images on, so no change can precede them.
                    create = create.change_stream_pre_and_post_images(images_on());
                }
                match create.await {
                    Ok(()) => {}
                    // Another replica created it at the same moment (NamespaceExists).
                    Err(e) if error_code(&e) == Some(48) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        // `roomMembers` unwinds `rooms.members`: after an update or a delete the source needs
        // the room as it was to know which rows are gone, so it refuses to start without
        // pre-images on `rooms`. Idempotent, and needed for databases created before.
        self.database
            .run_command(doc! {"collMod": ROOMS, "changeStreamPreAndPostImages": {"enabled": true}})
            .await?;
        let unique = || IndexOptions::builder().unique(true).build();
        self.users
            .create_index(
                IndexModel::builder()
                    .keys(doc! {"username": 1})
                    .options(unique())
                    .build(),
            )
            .await?;
        // Users written before usernames were unique ignoring case get their key first.
        self.users
            .update_many(
                doc! {"usernameLower": {"$exists": false}},
                vec![doc! {"$set": {"usernameLower": {"$toLower": "$username"}}}],
            )
            .await?;
        self.users
            .create_index(
                IndexModel::builder()
                    .keys(doc! {"usernameLower": 1})
                    .options(
                        IndexOptions::builder()
                            .unique(true)
                            .partial_filter_expression(doc! {"usernameLower": {"$type": "string"}})
                            .build(),
                    )
                    .build(),
            )
            .await?;
        crate::auth::oidc::ensure_indexes(&self.identities).await?;
        self.sessions(crate::config::SESSION_TTL_SECS)
            .ensure_indexes()
            .await?;
        self.rooms
            .create_index(
                IndexModel::builder()
                    .keys(doc! {"t": 1, "lastMessageAt": -1})
                    .build(),
            )
            .await?;
        self.messages
            .create_index(
                IndexModel::builder()
                    .keys(doc! {"roomId": 1, "createdAt": -1})
                    .build(),
            )
            .await?;
        self.subscriptions
            .create_index(IndexModel::builder().keys(doc! {"userId": 1}).build())
            .await?;
        self.subscriptions
            .create_index(IndexModel::builder().keys(doc! {"roomId": 1}).build())
            .await?;
        // The mutate endpoint checks a client group's owner by `clientGroupID`.
        self.clients
            .create_index(
                IndexModel::builder()
                    .keys(doc! {field::CLIENT_GROUP_ID: 1, field::USER_ID: 1})
                    .build(),
            )
            .await?;
        // Cleanup deletes by (group, client, mutationID); `_id` already holds the unique key.
        self.mutations
            .create_index(
                IndexModel::builder()
                    .keys(doc! {
                        field::CLIENT_GROUP_ID: 1,
                        field::CLIENT_ID: 1,
                        field::MUTATION_ID: 1,
                    })
                    .build(),
            )
            .await?;
        // Rooms written before `members` existed get it from their subscriptions (after the
        // `roomId` index above, which the backfill reads by).
        crate::domain::members::backfill_members(self).await?;
        Ok(())
    }
}

fn images_on() -> mongodb::options::ChangeStreamPreAndPostImages {
    mongodb::options::ChangeStreamPreAndPostImages::builder()
        .enabled(true)
        .build()
}

/// The server error code of a MongoDB error, if it carries one.
pub fn error_code(e: &mongodb::error::Error) -> Option<i32> {
    use mongodb::error::{ErrorKind, WriteFailure};
    match e.kind.as_ref() {
        ErrorKind::Command(c) => Some(c.code),
        ErrorKind::Write(WriteFailure::WriteError(w)) => Some(w.code),
        ErrorKind::Write(WriteFailure::WriteConcernError(w)) => Some(w.code),
        _ => None,
    }
}

/// Converts a BSON value to the JSON the API returns: dates become epoch milliseconds (as in
/// the Zero tables), integers stay exact, ObjectIds become hex strings.
pub fn bson_to_json(value: Bson) -> Value {
    match value {
        Bson::Null | Bson::Undefined => Value::Null,
        Bson::Boolean(b) => Value::Bool(b),
        Bson::String(s) => Value::String(s),
        Bson::Int32(i) => Value::from(i),
        Bson::Int64(i) => Value::from(i),
        Bson::Double(f) => serde_json::Number::from_f64(f)
            .map(Value::Number)
            .unwrap_or(Value::Null),
        Bson::DateTime(d) => Value::from(d.timestamp_millis()),
        Bson::ObjectId(o) => Value::String(o.to_hex()),
        Bson::Array(a) => Value::Array(a.into_iter().map(bson_to_json).collect()),
        Bson::Document(d) => doc_to_json(d),
        other => other.into_relaxed_extjson(),
    }
}

pub fn doc_to_json(doc: Document) -> Value {
    Value::Object(doc.into_iter().map(|(k, v)| (k, bson_to_json(v))).collect())
}

/// Serialises a document struct to API JSON (see [`bson_to_json`]).
pub fn to_api_json<T: Serialize>(value: &T) -> Value {
    match bson::serialize_to_bson(value) {
        Ok(b) => bson_to_json(b),
        Err(e) => {
            tracing::error!(error = %e, "could not serialise a document");
            Value::Null
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_become_millis_and_int64_stays_exact() {
        let d = doc! {"a": DateTime::from_millis(1_700_000_000_123), "n": Bson::Int64(9_007_199_254_740_993), "x": [1, "s"]};
        let j = doc_to_json(d);
        assert_eq!(j["a"], serde_json::json!(1_700_000_000_123i64));
        assert_eq!(j["n"].to_string(), "9007199254740993");
        assert_eq!(j["x"], serde_json::json!([1, "s"]));
    }

    #[test]
    fn system_types_are_unique() {
        let mut v = SYSTEM_MESSAGE_TYPES.to_vec();
        v.sort();
        v.dedup();
        assert_eq!(v.len(), SYSTEM_MESSAGE_TYPES.len());
        assert!(!v.contains(&USER_MESSAGE_TYPE));
    }
}
