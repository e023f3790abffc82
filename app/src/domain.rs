//! ZRocket's business rules: rooms, messages, memberships and users.
//!
//! REST handlers and Zero custom mutators run the very same commands, so a message sent either
//! way is validated, authorised and written identically — always inside one MongoDB
//! transaction (the message and its room's `lastMessage`/`messageCount` change together; the
//! old app wrote them separately). The caller is always the token's user; commands carry no
//! user identity of their own.

use std::time::Duration;

use bson::{Bson, DateTime, Document, doc};
use futures::TryStreamExt;
use mongodb::ClientSession;
use mongodb::error::{TRANSIENT_TRANSACTION_ERROR, UNKNOWN_TRANSACTION_COMMIT_RESULT};
use mongodb::options::{ReadConcern, WriteConcern};
use serde::Deserialize;
use serde_json::Value;

use crate::db::{
    Db, LastMessage, Message, Room, Sender, Subscription, USER_MESSAGE_TYPE, User, subscription_id,
    to_api_json,
};

/// A rule violation or a database failure.
#[derive(Debug, thiserror::Error)]
pub enum DomainError {
    /// Bad input (HTTP 400).
    #[error("{0}")]
    Invalid(String),
    /// Not allowed for this user (HTTP 403).
    #[error("{0}")]
    Forbidden(String),
    /// The thing does not exist (HTTP 404).
    #[error("{0}")]
    NotFound(String),
    /// MongoDB failed; the message is generic so nothing internal leaks.
    #[error("database error")]
    Db(#[from] mongodb::error::Error),
}

impl DomainError {
    /// A write conflict or similar: the whole transaction may be run again.
    pub fn is_transient(&self) -> bool {
        matches!(self, DomainError::Db(e) if e.contains_label(TRANSIENT_TRANSACTION_ERROR))
    }
}

type Result<T, E = DomainError> = std::result::Result<T, E>;

/// The authenticated user a command runs as (from the token only).
#[derive(Clone, Debug)]
pub struct Caller {
    pub user_id: String,
}

// ---------------------------------------------------------------------------------------------
// Commands (also the argument shapes of the Zero mutators).

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SendMessage {
    pub id: String,
    pub room_id: String,
    pub text: String,
    /// The client's clock (epoch ms); used when plausible so the optimistic order holds.
    #[serde(default)]
    pub created_at: Option<f64>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct EditMessage {
    pub id: String,
    pub text: String,
}

#[derive(Clone, Debug, Deserialize)]
pub struct DeleteMessage {
    pub id: String,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateRoom {
    pub id: String,
    #[serde(rename = "type")]
    pub room_type: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub topic: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub member_ids: Vec<String>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RoomRef {
    pub room_id: String,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InviteToRoom {
    pub room_id: String,
    pub user_ids: Vec<String>,
}

/// Every write ZRocket knows.
#[derive(Clone, Debug)]
pub enum Command {
    SendMessage(SendMessage),
    EditMessage(EditMessage),
    DeleteMessage(DeleteMessage),
    CreateRoom(CreateRoom),
    JoinRoom(RoomRef),
    LeaveRoom(RoomRef),
    InviteToRoom(InviteToRoom),
}

/// The custom mutator names, in the order the OpenAPI/README list them.
pub const MUTATOR_NAMES: [&str; 7] = [
    "message.send",
    "message.edit",
    "message.delete",
    "room.create",
    "room.join",
    "room.leave",
    "room.invite",
];

fn parse_args<T: for<'de> Deserialize<'de>>(name: &str, args: Value) -> Result<T, String> {
    serde_json::from_value(args).map_err(|e| format!("invalid arguments for {name}: {e}"))
}

impl Command {
    /// Parses a mutator call. `Ok(None)` means the name is unknown.
    pub fn from_mutator(name: &str, args: Value) -> Option<Result<Command, String>> {
        let args = if args.is_null() {
            Value::Object(Default::default())
        } else {
            args
        };
        Some(match name {
            "message.send" => parse_args(name, args).map(Command::SendMessage),
            "message.edit" => parse_args(name, args).map(Command::EditMessage),
            "message.delete" => parse_args(name, args).map(Command::DeleteMessage),
            "room.create" => parse_args(name, args).map(Command::CreateRoom),
            "room.join" => parse_args(name, args).map(Command::JoinRoom),
            "room.leave" => parse_args(name, args).map(Command::LeaveRoom),
            "room.invite" => parse_args(name, args).map(Command::InviteToRoom),
            _ => return None,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Validation helpers (pure).

pub const MAX_ID_LEN: usize = 128;
pub const MAX_TEXT_LEN: usize = 5000;
pub const MAX_NAME_LEN: usize = 80;
pub const MAX_TOPIC_LEN: usize = 500;
pub const MAX_MEMBERS: usize = 100;
/// Client timestamps further than this from the server clock are replaced by the server's.
const MAX_CLOCK_SKEW_MS: i64 = 5 * 60 * 1000;

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

fn validate_optional(field: &str, value: &Option<String>, max: usize) -> Result<Option<String>> {
    match value.as_deref().map(str::trim) {
        None | Some("") => Ok(None),
        Some(v) if v.chars().count() > max => Err(DomainError::Invalid(format!(
            "{field} must be at most {max} characters"
        ))),
        Some(v) => Ok(Some(v.to_string())),
    }
}

pub fn validate_room_type(t: &str) -> Result<()> {
    if matches!(t, "d" | "c" | "p") {
        Ok(())
    } else {
        Err(DomainError::Invalid(format!(
            "type must be \"d\", \"c\" or \"p\", got {t:?}"
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

// ---------------------------------------------------------------------------------------------
// Transactions.

/// How many times a transaction is run when MongoDB reports a transient error.
pub const MAX_ATTEMPTS: u32 = 5;

/// Starts a transaction with majority guarantees.
pub async fn begin(session: &mut ClientSession) -> mongodb::error::Result<()> {
    session
        .start_transaction()
        .read_concern(ReadConcern::snapshot())
        .write_concern(WriteConcern::majority())
        .await
}

/// Commits, retrying while the outcome is unknown (the commit itself is idempotent).
pub async fn commit(session: &mut ClientSession) -> mongodb::error::Result<()> {
    let mut tries = 0;
    loop {
        match session.commit_transaction().await {
            Err(e)
                if e.contains_label(UNKNOWN_TRANSACTION_COMMIT_RESULT) && tries < MAX_ATTEMPTS =>
            {
                tries += 1;
            }
            other => return other,
        }
    }
}

/// A short, growing pause between attempts.
pub async fn backoff(attempt: u32) {
    tokio::time::sleep(Duration::from_millis(10 * 2u64.pow(attempt.min(6)))).await;
}

/// Runs a command in its own transaction (the REST path), retrying transient failures.
pub async fn execute(db: &Db, caller: &Caller, cmd: &Command) -> Result<Value> {
    let mut session = db.client.start_session().await?;
    let mut attempt = 0;
    loop {
        attempt += 1;
        begin(&mut session).await?;
        let outcome = apply(db, &mut session, caller, cmd).await;
        let outcome = match outcome {
            Ok(v) => commit(&mut session)
                .await
                .map(|_| v)
                .map_err(DomainError::from),
            Err(e) => {
                let _ = session.abort_transaction().await;
                Err(e)
            }
        };
        match outcome {
            Err(e) if e.is_transient() && attempt < MAX_ATTEMPTS => backoff(attempt).await,
            other => return other,
        }
    }
}

/// Runs a command inside the caller's open transaction. Returns the affected document as API
/// JSON. Nothing here commits or aborts.
pub async fn apply(
    db: &Db,
    s: &mut ClientSession,
    caller: &Caller,
    cmd: &Command,
) -> Result<Value> {
    match cmd {
        Command::SendMessage(c) => send_message(db, s, caller, c).await,
        Command::EditMessage(c) => edit_message(db, s, caller, c).await,
        Command::DeleteMessage(c) => delete_message(db, s, caller, c).await,
        Command::CreateRoom(c) => create_room(db, s, caller, c).await,
        Command::JoinRoom(c) => join_room(db, s, caller, &c.room_id).await,
        Command::LeaveRoom(c) => leave_room(db, s, caller, &c.room_id).await,
        Command::InviteToRoom(c) => invite(db, s, caller, c).await,
    }
}

// ---------------------------------------------------------------------------------------------
// Reads inside a transaction.

async fn load_caller(db: &Db, s: &mut ClientSession, caller: &Caller) -> Result<User> {
    db.users
        .find_one(doc! {"_id": &caller.user_id})
        .session(&mut *s)
        .await?
        .ok_or_else(|| DomainError::Forbidden(format!("user {} does not exist", caller.user_id)))
}

async fn load_room(db: &Db, s: &mut ClientSession, room_id: &str) -> Result<Room> {
    db.rooms
        .find_one(doc! {"_id": room_id})
        .session(&mut *s)
        .await?
        .ok_or_else(|| DomainError::NotFound(format!("room {room_id} not found")))
}

async fn is_member_in(
    db: &Db,
    s: &mut ClientSession,
    room_id: &str,
    user_id: &str,
) -> Result<bool> {
    Ok(db
        .subscriptions
        .find_one(doc! {"_id": subscription_id(room_id, user_id)})
        .session(&mut *s)
        .await?
        .is_some())
}

/// Loads users by id, failing with the list of unknown ids.
async fn load_users(db: &Db, s: &mut ClientSession, ids: &[String]) -> Result<Vec<User>> {
    let mut cursor = db
        .users
        .find(doc! {"_id": {"$in": ids}})
        .session(&mut *s)
        .await?;
    let found: Vec<User> = cursor.stream(&mut *s).try_collect().await?;
    let missing: Vec<&str> = ids
        .iter()
        .filter(|id| !found.iter().any(|u| &u.id == *id))
        .map(String::as_str)
        .collect();
    if !missing.is_empty() {
        return Err(DomainError::Invalid(format!(
            "unknown user ids: {}",
            missing.join(", ")
        )));
    }
    // Keep the caller's order.
    Ok(ids
        .iter()
        .filter_map(|id| found.iter().find(|u| &u.id == id).cloned())
        .collect())
}

fn dedup(ids: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for id in ids {
        if !out.contains(&id) {
            out.push(id);
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Writes.

fn system_message(room_id: &str, t: &str, data: Document, now: DateTime) -> Message {
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

async fn send_message(
    db: &Db,
    s: &mut ClientSession,
    caller: &Caller,
    c: &SendMessage,
) -> Result<Value> {
    validate_id("id", &c.id)?;
    validate_id("roomId", &c.room_id)?;
    let text = validate_text(&c.text)?;
    // 1.9 insert semantics: an existing id succeeds without changing anything.
    if let Some(existing) = db
        .messages
        .find_one(doc! {"_id": &c.id})
        .session(&mut *s)
        .await?
    {
        return Ok(to_api_json(&existing));
    }
    let user = load_caller(db, s, caller).await?;
    let room = load_room(db, s, &c.room_id).await?;
    if !is_member_in(db, s, &room.id, &user.id).await? {
        return Err(DomainError::Forbidden(format!(
            "you are not a member of room {}",
            room.id
        )));
    }
    if room.archived {
        return Err(DomainError::Forbidden(format!(
            "room {} is archived",
            room.id
        )));
    }
    if room.read_only && room.created_by != user.id {
        return Err(DomainError::Forbidden(format!(
            "room {} is read-only",
            room.id
        )));
    }
    let now = DateTime::now();
    let created_at = message_time(c.created_at, now);
    let message = Message {
        id: c.id.clone(),
        room_id: room.id.clone(),
        t: USER_MESSAGE_TYPE.to_string(),
        text: Some(text.clone()),
        sender_id: Some(user.id.clone()),
        sender: Some(Sender {
            id: user.id.clone(),
            username: user.username.clone(),
            name: user.name.clone(),
        }),
        data: None,
        hidden: false,
        pinned: false,
        edited_at: None,
        created_at,
        updated_at: now,
    };
    db.messages.insert_one(&message).session(&mut *s).await?;
    let last = LastMessage {
        id: message.id.clone(),
        text,
        sender_id: user.id.clone(),
        sender_username: user.username.clone(),
        created_at,
    };
    let last = bson::serialize_to_bson(&last).map_err(|e| DomainError::Invalid(e.to_string()))?;
    // Only a message at least as new replaces lastMessage (ties: the later write wins), so
    // out-of-order client clocks cannot move it back.
    db.rooms
        .update_one(
            doc! {"_id": &room.id},
            vec![doc! {"$set": {
                "messageCount": {"$add": [{"$ifNull": ["$messageCount", Bson::Int64(0)]}, Bson::Int64(1)]},
                "updatedAt": now,
                "lastMessage": {"$cond": [
                    {"$gte": [created_at, {"$ifNull": ["$lastMessageAt", DateTime::from_millis(0)]}]},
                    {"$literal": last},
                    "$lastMessage"]},
                "lastMessageAt": {"$max": ["$lastMessageAt", created_at]},
            }}],
        )
        .session(&mut *s)
        .await?;
    Ok(to_api_json(&message))
}

async fn load_own_message(
    db: &Db,
    s: &mut ClientSession,
    caller: &Caller,
    id: &str,
) -> Result<Message> {
    validate_id("id", id)?;
    let message = db
        .messages
        .find_one(doc! {"_id": id})
        .session(&mut *s)
        .await?
        .ok_or_else(|| DomainError::NotFound(format!("message {id} not found")))?;
    if message.t != USER_MESSAGE_TYPE {
        return Err(DomainError::Forbidden(format!(
            "message {id} is a system message"
        )));
    }
    if message.sender_id.as_deref() != Some(caller.user_id.as_str()) {
        return Err(DomainError::Forbidden(format!(
            "only the sender may change message {id}"
        )));
    }
    Ok(message)
}

async fn edit_message(
    db: &Db,
    s: &mut ClientSession,
    caller: &Caller,
    c: &EditMessage,
) -> Result<Value> {
    let text = validate_text(&c.text)?;
    let mut message = load_own_message(db, s, caller, &c.id).await?;
    if message.hidden {
        return Err(DomainError::NotFound(format!(
            "message {} was deleted",
            c.id
        )));
    }
    let now = DateTime::now();
    db.messages
        .update_one(
            doc! {"_id": &c.id},
            doc! {"$set": {"text": &text, "editedAt": now, "updatedAt": now}},
        )
        .session(&mut *s)
        .await?;
    db.rooms
        .update_one(
            doc! {"_id": &message.room_id, "lastMessage._id": &c.id},
            doc! {"$set": {"lastMessage.text": &text, "updatedAt": now}},
        )
        .session(&mut *s)
        .await?;
    message.text = Some(text);
    message.edited_at = Some(now);
    message.updated_at = now;
    Ok(to_api_json(&message))
}

async fn delete_message(
    db: &Db,
    s: &mut ClientSession,
    caller: &Caller,
    c: &DeleteMessage,
) -> Result<Value> {
    let mut message = load_own_message(db, s, caller, &c.id).await?;
    if message.hidden {
        // Deleting twice is not an error.
        return Ok(to_api_json(&message));
    }
    let now = DateTime::now();
    // Soft delete: the row leaves the message queries (they filter on hidden) and the
    // MESSAGE_DELETED notice keeps the room's history honest.
    db.messages
        .update_one(
            doc! {"_id": &c.id},
            doc! {"$set": {"hidden": true, "updatedAt": now}},
        )
        .session(&mut *s)
        .await?;
    let notice = system_message(
        &message.room_id,
        "MESSAGE_DELETED",
        doc! {"messageId": &c.id, "by": &caller.user_id},
        now,
    );
    db.messages.insert_one(&notice).session(&mut *s).await?;
    message.hidden = true;
    message.updated_at = now;
    Ok(to_api_json(&message))
}

async fn create_room(
    db: &Db,
    s: &mut ClientSession,
    caller: &Caller,
    c: &CreateRoom,
) -> Result<Value> {
    validate_id("id", &c.id)?;
    validate_room_type(&c.room_type)?;
    let name = validate_optional("name", &c.name, MAX_NAME_LEN)?;
    let topic = validate_optional("topic", &c.topic, MAX_TOPIC_LEN)?;
    let description = validate_optional("description", &c.description, MAX_TOPIC_LEN)?;
    if c.room_type != "d" && name.is_none() {
        return Err(DomainError::Invalid(
            "name is required for channels and groups".into(),
        ));
    }
    if c.member_ids.len() > MAX_MEMBERS {
        return Err(DomainError::Invalid(format!(
            "memberIds must list at most {MAX_MEMBERS} users"
        )));
    }
    for id in &c.member_ids {
        validate_id("memberIds[]", id)?;
    }
    // 1.9 insert semantics: an existing id succeeds without changing anything.
    if let Some(existing) = db
        .rooms
        .find_one(doc! {"_id": &c.id})
        .session(&mut *s)
        .await?
    {
        return Ok(to_api_json(&existing));
    }
    let creator = load_caller(db, s, caller).await?;
    let member_ids = dedup(std::iter::once(creator.id.clone()).chain(c.member_ids.iter().cloned()));
    if c.room_type == "d" && member_ids.len() != 2 {
        return Err(DomainError::Invalid(
            "a direct chat needs exactly one other member in memberIds".into(),
        ));
    }
    let members = load_users(db, s, &member_ids).await?;
    let now = DateTime::now();
    let room = Room {
        id: c.id.clone(),
        t: c.room_type.clone(),
        name,
        topic,
        description,
        read_only: false,
        archived: false,
        member_ids: members.iter().map(|u| u.id.clone()).collect(),
        usernames: members.iter().map(|u| u.username.clone()).collect(),
        message_count: 0,
        last_message: None,
        last_message_at: None,
        created_by: creator.id.clone(),
        created_at: now,
        updated_at: now,
    };
    db.rooms.insert_one(&room).session(&mut *s).await?;
    for m in &members {
        upsert_subscription(db, s, &room, &m.id, now).await?;
    }
    let mut data = doc! {"by": &creator.id, "byUsername": &creator.username};
    if let Some(n) = &room.name {
        data.insert("roomName", n);
    }
    let created = system_message(&room.id, "ROOM_CREATED", data, now);
    db.messages.insert_one(&created).session(&mut *s).await?;
    Ok(to_api_json(&room))
}

async fn upsert_subscription(
    db: &Db,
    s: &mut ClientSession,
    room: &Room,
    user_id: &str,
    now: DateTime,
) -> Result<()> {
    let sub = Subscription {
        id: subscription_id(&room.id, user_id),
        room_id: room.id.clone(),
        user_id: user_id.to_string(),
        room_type: room.t.clone(),
        joined_at: now,
    };
    let sub = bson::serialize_to_document(&sub).map_err(|e| DomainError::Invalid(e.to_string()))?;
    db.subscriptions
        .clone_with_type::<Document>()
        .update_one(doc! {"_id": sub.get("_id")}, doc! {"$setOnInsert": sub})
        .upsert(true)
        .session(&mut *s)
        .await?;
    Ok(())
}

/// Adds members who are not in yet, with one system message each; returns who was added.
async fn add_members(
    db: &Db,
    s: &mut ClientSession,
    room: &Room,
    users: &[User],
    notice: &str,
    by: &User,
) -> Result<Vec<String>> {
    let now = DateTime::now();
    let mut added = Vec::new();
    for u in users {
        if is_member_in(db, s, &room.id, &u.id).await? {
            continue;
        }
        upsert_subscription(db, s, room, &u.id, now).await?;
        db.rooms
            .update_one(
                doc! {"_id": &room.id},
                doc! {"$addToSet": {"memberIds": &u.id, "usernames": &u.username}, "$set": {"updatedAt": now}},
            )
            .session(&mut *s)
            .await?;
        let mut data = doc! {"userId": &u.id, "username": &u.username};
        if by.id != u.id {
            data.insert("by", &by.id);
            data.insert("byUsername", &by.username);
        }
        let msg = system_message(&room.id, notice, data, now);
        db.messages.insert_one(&msg).session(&mut *s).await?;
        added.push(u.id.clone());
    }
    Ok(added)
}

async fn room_json(db: &Db, s: &mut ClientSession, room_id: &str) -> Result<Value> {
    Ok(to_api_json(&load_room(db, s, room_id).await?))
}

async fn join_room(
    db: &Db,
    s: &mut ClientSession,
    caller: &Caller,
    room_id: &str,
) -> Result<Value> {
    validate_id("roomId", room_id)?;
    let room = load_room(db, s, room_id).await?;
    if room.t != "c" {
        return Err(DomainError::Forbidden(format!(
            "room {room_id} is not a public channel; ask a member to invite you"
        )));
    }
    if room.archived {
        return Err(DomainError::Forbidden(format!(
            "room {room_id} is archived"
        )));
    }
    let user = load_caller(db, s, caller).await?;
    add_members(
        db,
        s,
        &room,
        std::slice::from_ref(&user),
        "USER_JOINED",
        &user,
    )
    .await?;
    room_json(db, s, room_id).await
}

async fn leave_room(
    db: &Db,
    s: &mut ClientSession,
    caller: &Caller,
    room_id: &str,
) -> Result<Value> {
    validate_id("roomId", room_id)?;
    let room = load_room(db, s, room_id).await?;
    let user = load_caller(db, s, caller).await?;
    if !is_member_in(db, s, room_id, &user.id).await? {
        // Leaving twice is not an error.
        return Ok(to_api_json(&room));
    }
    let now = DateTime::now();
    db.subscriptions
        .delete_one(doc! {"_id": subscription_id(room_id, &user.id)})
        .session(&mut *s)
        .await?;
    db.rooms
        .update_one(
            doc! {"_id": room_id},
            doc! {"$pull": {"memberIds": &user.id, "usernames": &user.username}, "$set": {"updatedAt": now}},
        )
        .session(&mut *s)
        .await?;
    let msg = system_message(
        room_id,
        "USER_LEFT",
        doc! {"userId": &user.id, "username": &user.username},
        now,
    );
    db.messages.insert_one(&msg).session(&mut *s).await?;
    room_json(db, s, room_id).await
}

async fn invite(
    db: &Db,
    s: &mut ClientSession,
    caller: &Caller,
    c: &InviteToRoom,
) -> Result<Value> {
    validate_id("roomId", &c.room_id)?;
    if c.user_ids.is_empty() || c.user_ids.len() > MAX_MEMBERS {
        return Err(DomainError::Invalid(format!(
            "userIds must list 1-{MAX_MEMBERS} users"
        )));
    }
    for id in &c.user_ids {
        validate_id("userIds[]", id)?;
    }
    let room = load_room(db, s, &c.room_id).await?;
    if room.t == "d" {
        return Err(DomainError::Invalid(
            "members cannot be added to a direct chat".into(),
        ));
    }
    let user = load_caller(db, s, caller).await?;
    if !is_member_in(db, s, &room.id, &user.id).await? {
        return Err(DomainError::Forbidden(format!(
            "you are not a member of room {}",
            room.id
        )));
    }
    let invitees = load_users(db, s, &dedup(c.user_ids.iter().cloned())).await?;
    add_members(db, s, &room, &invitees, "USER_ADDED", &user).await?;
    room_json(db, s, &room.id).await
}

// ---------------------------------------------------------------------------------------------
// Reads outside transactions (REST listings, query-endpoint access checks).

/// What a user may see of a room.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// The user is a member.
    Member,
    /// A public channel the user is not in: readable by anyone signed in.
    Public,
    /// A room the user is not in.
    Denied,
    /// No such room (yet: a room created optimistically may not have reached the server).
    Missing,
}

pub async fn read_access(db: &Db, user_id: &str, room_id: &str) -> Result<Access> {
    let Some(room) = db.rooms.find_one(doc! {"_id": room_id}).await? else {
        return Ok(Access::Missing);
    };
    let member = db
        .subscriptions
        .find_one(doc! {"_id": subscription_id(room_id, user_id)})
        .await?
        .is_some();
    Ok(if member {
        Access::Member
    } else if room.t == "c" {
        Access::Public
    } else {
        Access::Denied
    })
}

pub async fn get_user(db: &Db, user_id: &str) -> Result<User> {
    db.users
        .find_one(doc! {"_id": user_id})
        .await?
        .ok_or_else(|| DomainError::NotFound(format!("user {user_id} not found")))
}

pub async fn find_user_by_username(db: &Db, username: &str) -> Result<Option<User>> {
    Ok(db.users.find_one(doc! {"username": username}).await?)
}

/// Escapes a string for use as a literal inside a regular expression.
pub fn regex_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if "\\^$.|?*+()[]{}-/".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

pub async fn search_users(db: &Db, q: Option<&str>, limit: i64) -> Result<Vec<User>> {
    let filter = match q.map(str::trim).filter(|q| !q.is_empty()) {
        None => doc! {},
        Some(q) => {
            let re = doc! {"$regex": regex_escape(q), "$options": "i"};
            doc! {"$or": [{"username": re.clone()}, {"name": re}]}
        }
    };
    Ok(db
        .users
        .find(filter)
        .sort(doc! {"username": 1})
        .limit(limit)
        .await?
        .try_collect()
        .await?)
}

pub async fn list_users(db: &Db) -> Result<Vec<User>> {
    Ok(db
        .users
        .find(doc! {"active": true})
        .sort(doc! {"username": 1})
        .await?
        .try_collect()
        .await?)
}

/// The rooms the user is a member of, newest activity first.
pub async fn my_rooms(db: &Db, user_id: &str) -> Result<Vec<Room>> {
    let subs: Vec<Subscription> = db
        .subscriptions
        .find(doc! {"userId": user_id})
        .await?
        .try_collect()
        .await?;
    let ids: Vec<&str> = subs.iter().map(|s| s.room_id.as_str()).collect();
    Ok(db
        .rooms
        .find(doc! {"_id": {"$in": ids}})
        .sort(doc! {"lastMessageAt": -1, "createdAt": -1})
        .await?
        .try_collect()
        .await?)
}

/// A room's visible user messages, newest first.
pub async fn room_messages(
    db: &Db,
    user_id: &str,
    room_id: &str,
    limit: i64,
) -> Result<Vec<Message>> {
    validate_id("room id", room_id)?;
    match read_access(db, user_id, room_id).await? {
        Access::Member | Access::Public => {}
        Access::Denied => {
            return Err(DomainError::Forbidden(format!(
                "you are not a member of room {room_id}"
            )));
        }
        Access::Missing => return Err(DomainError::NotFound(format!("room {room_id} not found"))),
    }
    Ok(db
        .messages
        .find(doc! {"roomId": room_id, "t": USER_MESSAGE_TYPE, "hidden": {"$ne": true}})
        .sort(doc! {"createdAt": -1})
        .limit(limit)
        .await?
        .try_collect()
        .await?)
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

    #[test]
    fn mutator_parsing_ignores_user_ids_and_reports_bad_args() {
        let cmd = Command::from_mutator(
            "message.send",
            serde_json::json!({"id": "m1", "roomId": "r1", "text": "hi", "createdAt": 1, "userId": "u-bob"}),
        )
        .unwrap()
        .unwrap();
        assert!(matches!(cmd, Command::SendMessage(SendMessage { ref id, .. }) if id == "m1"));
        let err = Command::from_mutator("message.send", serde_json::json!({"id": "m1"}))
            .unwrap()
            .unwrap_err();
        assert!(
            err.contains("message.send") && err.contains("roomId"),
            "{err}"
        );
        assert!(Command::from_mutator("nope.nope", Value::Null).is_none());
    }

    #[test]
    fn regex_escape_escapes_metacharacters() {
        assert_eq!(regex_escape("a.b*"), "a\\.b\\*");
    }
}
