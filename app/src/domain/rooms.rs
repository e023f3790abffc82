//! Rooms and memberships: creating a room, joining, leaving, inviting, and "my rooms".
//!
//! A membership is a `subscriptions` row plus the room's denormalised `memberIds`/`usernames`
//! and `members` (which Zero's `roomMembers` unwinds, see `members`), written together in the
//! command's transaction, with a system message in the room's history for every change. Who may
//! join or invite is decided in `access`.

use bson::{DateTime, Document, doc};
use futures::TryStreamExt;
use mongodb::ClientSession;
use serde_json::Value;

use super::access::{check_may_join, check_member, check_takes_members};
use super::commands::{Caller, CreateRoom, InviteToRoom};
use super::error::{DomainError, Result};
use super::members::sync_members;
use super::users::{load_caller, load_users};
use super::validation::{
    MAX_MEMBERS, MAX_NAME_LEN, MAX_TOPIC_LEN, validate_id, validate_optional, validate_room_type,
};
use crate::db::{Db, Member, Message, Room, Subscription, User, subscription_id, to_api_json};

/// The room a command names; a missing room is a 404.
pub async fn load_room(db: &Db, s: &mut ClientSession, room_id: &str) -> Result<Room> {
    db.rooms
        .find_one(doc! {"_id": room_id})
        .session(&mut *s)
        .await?
        .ok_or_else(|| DomainError::NotFound(format!("room {room_id} not found")))
}

/// Whether `user_id` is a member of `room_id` (has a subscription), inside the transaction.
pub async fn is_member_in(
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

/// The ids without repeats, in their first order.
fn dedup(ids: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for id in ids {
        if !out.contains(&id) {
            out.push(id);
        }
    }
    out
}

/// Creates a room with the caller and `memberIds` as members, and a `ROOM_CREATED` notice.
pub async fn create_room(
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
        members: members
            .iter()
            .map(|u| Member {
                user_id: u.id.clone(),
                joined_at: now,
            })
            .collect(),
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
    // The array written above is what these subscriptions say, unless a subscription of this
    // id was left behind by an earlier room of the same id: then its `joinedAt` wins.
    sync_members(db, s, &room.id).await?;
    let mut data = doc! {"by": &creator.id, "byUsername": &creator.username};
    if let Some(n) = &room.name {
        data.insert("roomName", n);
    }
    let created = Message::system(&room.id, "ROOM_CREATED", data, now);
    db.messages.insert_one(&created).session(&mut *s).await?;
    Ok(to_api_json(&room))
}

/// Makes `user_id` a member of `room` (a subscription row, written only when new).
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
        let msg = Message::system(&room.id, notice, data, now);
        db.messages.insert_one(&msg).session(&mut *s).await?;
        added.push(u.id.clone());
    }
    if !added.is_empty() {
        sync_members(db, s, &room.id).await?;
    }
    Ok(added)
}

/// The room as it is now, as API JSON.
async fn room_json(db: &Db, s: &mut ClientSession, room_id: &str) -> Result<Value> {
    Ok(to_api_json(&load_room(db, s, room_id).await?))
}

/// The caller joins a public channel.
pub async fn join_room(
    db: &Db,
    s: &mut ClientSession,
    caller: &Caller,
    room_id: &str,
) -> Result<Value> {
    validate_id("roomId", room_id)?;
    let room = load_room(db, s, room_id).await?;
    check_may_join(&room)?;
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

/// The caller leaves a room (their subscription goes, a `USER_LEFT` notice stays).
pub async fn leave_room(
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
    sync_members(db, s, room_id).await?;
    let msg = Message::system(
        room_id,
        "USER_LEFT",
        doc! {"userId": &user.id, "username": &user.username},
        now,
    );
    db.messages.insert_one(&msg).session(&mut *s).await?;
    room_json(db, s, room_id).await
}

/// A member adds users to a channel or group.
pub async fn invite(
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
    check_takes_members(&room)?;
    let user = load_caller(db, s, caller).await?;
    let is_member = is_member_in(db, s, &room.id, &user.id).await?;
    check_member(&room, is_member)?;
    let invitees = load_users(db, s, &dedup(c.user_ids.iter().cloned())).await?;
    add_members(db, s, &room, &invitees, "USER_ADDED", &user).await?;
    room_json(db, s, &room.id).await
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
