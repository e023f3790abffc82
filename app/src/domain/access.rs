//! Who may do what: read a room, post in it, join it, add members, change a message.
//!
//! Every rule about who may read or change rooms and messages is here, so that REST, the mutate
//! endpoint and the query endpoint cannot disagree. Reading is decided by [`read_access`] (a member reads a room; anyone
//! signed in reads a public channel). The write rules are pure functions of documents the
//! command has already loaded in its transaction; each returns the error the caller sees.

use bson::doc;

use super::error::{DomainError, Result};
use crate::db::{Db, Message, Room, USER_MESSAGE_TYPE, subscription_id};

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

/// Who may read a room: decided from the room's type and the user's membership, read outside
/// any transaction (REST listings, the query endpoint's transforms).
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

/// A room's messages may be listed by members and, for public channels, by anyone.
pub fn check_may_read(access: Access, room_id: &str) -> Result<()> {
    match access {
        Access::Member | Access::Public => Ok(()),
        Access::Denied => Err(DomainError::Forbidden(format!(
            "you are not a member of room {room_id}"
        ))),
        Access::Missing => Err(DomainError::NotFound(format!("room {room_id} not found"))),
    }
}

/// Only members act inside a room (send, invite).
pub fn check_member(room: &Room, is_member: bool) -> Result<()> {
    if is_member {
        Ok(())
    } else {
        Err(DomainError::Forbidden(format!(
            "you are not a member of room {}",
            room.id
        )))
    }
}

/// Who may send a message: a member, in a room that is not archived, and in a read-only room
/// only its creator.
pub fn check_may_post(room: &Room, user_id: &str, is_member: bool) -> Result<()> {
    check_member(room, is_member)?;
    if room.archived {
        return Err(DomainError::Forbidden(format!(
            "room {} is archived",
            room.id
        )));
    }
    if room.read_only && room.created_by != user_id {
        return Err(DomainError::Forbidden(format!(
            "room {} is read-only",
            room.id
        )));
    }
    Ok(())
}

/// Anyone may join a public channel that is not archived; other rooms are by invitation.
pub fn check_may_join(room: &Room) -> Result<()> {
    if room.t != "c" {
        return Err(DomainError::Forbidden(format!(
            "room {} is not a public channel; ask a member to invite you",
            room.id
        )));
    }
    if room.archived {
        return Err(DomainError::Forbidden(format!(
            "room {} is archived",
            room.id
        )));
    }
    Ok(())
}

/// A direct chat keeps its two members; channels and groups take more.
pub fn check_takes_members(room: &Room) -> Result<()> {
    if room.t == "d" {
        return Err(DomainError::Invalid(
            "members cannot be added to a direct chat".into(),
        ));
    }
    Ok(())
}

/// Only the sender may edit or delete a message, and only a user's message (not a system one).
pub fn check_may_change(message: &Message, user_id: &str) -> Result<()> {
    if message.t != USER_MESSAGE_TYPE {
        return Err(DomainError::Forbidden(format!(
            "message {} is a system message",
            message.id
        )));
    }
    if message.sender_id.as_deref() != Some(user_id) {
        return Err(DomainError::Forbidden(format!(
            "only the sender may change message {}",
            message.id
        )));
    }
    Ok(())
}
