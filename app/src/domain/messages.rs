//! Messages: sending, editing and deleting them, and listing a room's messages.
//!
//! Sending writes the message and its room's `lastMessage`/`messageCount` in the same
//! transaction, so the room never shows a message that does not exist or misses one that does.
//! Who may do each is decided in `access`; the transaction around each command is
//! `transaction`'s.

use bson::{Bson, DateTime, doc};
use futures::TryStreamExt;
use mongodb::ClientSession;
use serde_json::Value;

use super::access::{check_may_change, check_may_post, check_may_read, read_access};
use super::commands::{Caller, DeleteMessage, EditMessage, SendMessage};
use super::error::{DomainError, Result};
use super::rooms::{is_member_in, load_room};
use super::users::load_caller;
use super::validation::{message_time, validate_id, validate_text};
use crate::db::{Db, LastMessage, Message, Sender, USER_MESSAGE_TYPE, to_api_json};

/// Sends a message as the caller, and moves the room's `lastMessage`/`messageCount` with it.
pub async fn send_message(
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
    let is_member = is_member_in(db, s, &room.id, &user.id).await?;
    check_may_post(&room, &user.id, is_member)?;
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

/// The caller's own user message, for a change to it.
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
    check_may_change(&message, &caller.user_id)?;
    Ok(message)
}

/// Edits the caller's message (and the room's `lastMessage` copy when it is that one).
pub async fn edit_message(
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

/// Deletes the caller's message (softly) and leaves a `MESSAGE_DELETED` notice.
pub async fn delete_message(
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
    let notice = Message::system(
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

/// A room's visible user messages, newest first.
pub async fn room_messages(
    db: &Db,
    user_id: &str,
    room_id: &str,
    limit: i64,
) -> Result<Vec<Message>> {
    validate_id("room id", room_id)?;
    check_may_read(read_access(db, user_id, room_id).await?, room_id)?;
    Ok(db
        .messages
        .find(doc! {"roomId": room_id, "t": USER_MESSAGE_TYPE, "hidden": {"$ne": true}})
        .sort(doc! {"createdAt": -1})
        .limit(limit)
        .await?
        .try_collect()
        .await?)
}
