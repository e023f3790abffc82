//! Demo data: four users, rooms of all three types with their memberships, and messages.
//!
//! Seeding is idempotent and never destructive: every document has a stable id and is written
//! with `$setOnInsert`, so existing data (including users' edits) is left alone, and a room's
//! members and messages are only added when the room itself is new. It all runs in one
//! transaction so a half-seeded database cannot happen. Every message's `t` is `USER` or a
//! listed system type, so each one lands in exactly one Zero table.

use bson::{DateTime, Document, doc};
use mongodb::{ClientSession, Collection};
use serde::Serialize;

use crate::db::{
    Db, LastMessage, Member, Message, Room, Sender, Subscription, USER_MESSAGE_TYPE, User,
    subscription_id,
};
use crate::domain::error::DomainError;
use crate::domain::transaction::{Retry, begin, end};

/// What one run inserted.
#[derive(Debug, Default, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SeedReport {
    pub users_inserted: u64,
    pub rooms_inserted: u64,
    pub subscriptions_inserted: u64,
    pub messages_inserted: u64,
}

/// A room with everything that comes with it.
pub struct SeedRoom {
    pub room: Room,
    pub subscriptions: Vec<Subscription>,
    pub messages: Vec<Message>,
}

pub struct SeedData {
    pub users: Vec<User>,
    pub rooms: Vec<SeedRoom>,
}

const USERS: [(&str, &str, &str, &str); 4] = [
    ("u-alice", "alice", "Alice Johnson", "Product lead"),
    ("u-bob", "bob", "Bob Smith", "Backend engineer"),
    ("u-charlie", "charlie", "Charlie Brown", "Designer"),
    ("u-diana", "diana", "Diana Prince", "SRE"),
];

/// (id, type, name, topic, members, [(sender, text)])
type RoomSpec = (
    &'static str,
    &'static str,
    Option<&'static str>,
    Option<&'static str>,
    &'static [&'static str],
    &'static [(&'static str, &'static str)],
);

const ROOMS: [RoomSpec; 6] = [
    (
        "r-general",
        "c",
        Some("general"),
        Some("Company-wide announcements"),
        &["u-alice", "u-bob", "u-charlie", "u-diana"],
        &[
            ("u-alice", "Welcome to ZRocket! 🚀"),
            ("u-bob", "Hi everyone 👋"),
            ("u-charlie", "Glad to be here."),
        ],
    ),
    (
        "r-random",
        "c",
        Some("random"),
        Some("Anything goes"),
        &["u-alice", "u-bob"],
        &[("u-bob", "Anyone up for lunch?")],
    ),
    (
        "r-alpha",
        "p",
        Some("Project Alpha"),
        Some("Launch planning"),
        &["u-alice", "u-bob", "u-charlie"],
        &[
            ("u-alice", "Kick-off tomorrow at 10."),
            ("u-charlie", "I'll prepare the slides."),
        ],
    ),
    (
        "r-eng",
        "p",
        Some("Engineering"),
        None,
        &["u-bob", "u-charlie", "u-diana"],
        &[("u-diana", "The deploy is green.")],
    ),
    (
        "r-dm-alice-bob",
        "d",
        None,
        None,
        &["u-alice", "u-bob"],
        &[("u-alice", "Hey Bob, got a minute?"), ("u-bob", "Sure!")],
    ),
    (
        "r-dm-charlie-diana",
        "d",
        None,
        None,
        &["u-charlie", "u-diana"],
        &[("u-charlie", "Coffee later?")],
    ),
];

/// The demo data, timestamped relative to `now` (pure; tests inspect it).
pub fn data(now: DateTime) -> SeedData {
    let at =
        |minutes_ago: i64| DateTime::from_millis(now.timestamp_millis() - minutes_ago * 60_000);
    let users: Vec<User> = USERS
        .iter()
        .map(|(id, username, name, bio)| User {
            id: id.to_string(),
            username: username.to_string(),
            username_lower: Some(username.to_ascii_lowercase()),
            name: name.to_string(),
            email: Some(format!("{username}@zrocket.dev")),
            avatar_url: None,
            bio: Some(bio.to_string()),
            active: true,
            created_at: at(24 * 60),
            updated_at: at(24 * 60),
        })
        .collect();
    let user = |id: &str| {
        users
            .iter()
            .find(|u| u.id == id)
            .expect("seed user")
            .clone()
    };
    let mut rooms = Vec::new();
    for (ri, (id, t, name, topic, members, texts)) in ROOMS.iter().enumerate() {
        let created = at(600 - ri as i64 * 10);
        let creator = user(members[0]);
        let mut messages = vec![Message {
            id: format!("{id}-sys-created"),
            room_id: id.to_string(),
            t: "ROOM_CREATED".into(),
            text: None,
            sender_id: None,
            sender: None,
            data: Some({
                let mut d = doc! {"by": &creator.id, "byUsername": &creator.username};
                if let Some(n) = name {
                    d.insert("roomName", *n);
                }
                d
            }),
            hidden: false,
            pinned: false,
            edited_at: None,
            created_at: created,
            updated_at: created,
        }];
        for m in members.iter().skip(1) {
            let u = user(m);
            messages.push(Message {
                id: format!("{id}-sys-added-{}", u.username),
                room_id: id.to_string(),
                t: "USER_ADDED".into(),
                text: None,
                sender_id: None,
                sender: None,
                data: Some(doc! {"userId": &u.id, "username": &u.username, "by": &creator.id, "byUsername": &creator.username}),
                hidden: false,
                pinned: false,
                edited_at: None,
                created_at: created,
                updated_at: created,
            });
        }
        for (mi, (sender, text)) in texts.iter().enumerate() {
            let u = user(sender);
            let when = at(300 - ri as i64 * 20 + mi as i64 * 3);
            messages.push(Message {
                id: format!("{id}-m{}", mi + 1),
                room_id: id.to_string(),
                t: USER_MESSAGE_TYPE.into(),
                text: Some(text.to_string()),
                sender_id: Some(u.id.clone()),
                sender: Some(Sender {
                    id: u.id.clone(),
                    username: u.username.clone(),
                    name: u.name.clone(),
                }),
                data: None,
                hidden: false,
                pinned: false,
                edited_at: None,
                created_at: when,
                updated_at: when,
            });
        }
        let user_messages: Vec<&Message> = messages
            .iter()
            .filter(|m| m.t == USER_MESSAGE_TYPE)
            .collect();
        let last = user_messages
            .iter()
            .max_by_key(|m| m.created_at)
            .map(|m| LastMessage {
                id: m.id.clone(),
                text: m.text.clone().unwrap_or_default(),
                sender_id: m.sender_id.clone().unwrap_or_default(),
                sender_username: m
                    .sender
                    .as_ref()
                    .map(|s| s.username.clone())
                    .unwrap_or_default(),
                created_at: m.created_at,
            });
        let subscriptions = members
            .iter()
            .map(|m| Subscription {
                id: subscription_id(id, m),
                room_id: id.to_string(),
                user_id: m.to_string(),
                room_type: t.to_string(),
                joined_at: created,
            })
            .collect::<Vec<_>>();
        let room = Room {
            id: id.to_string(),
            t: t.to_string(),
            name: name.map(str::to_string),
            topic: topic.map(str::to_string),
            description: None,
            read_only: false,
            archived: false,
            member_ids: members.iter().map(|m| m.to_string()).collect(),
            usernames: members.iter().map(|m| user(m).username).collect(),
            members: subscriptions.iter().map(Member::of).collect(),
            message_count: user_messages.len() as i64,
            last_message_at: last.as_ref().map(|l| l.created_at),
            last_message: last,
            created_by: creator.id.clone(),
            created_at: created,
            updated_at: created,
        };
        rooms.push(SeedRoom {
            room,
            subscriptions,
            messages,
        });
    }
    SeedData { users, rooms }
}

/// Inserts `value` unless a document with its `_id` exists; true when inserted.
async fn insert_if_absent<T: Serialize + Send + Sync>(
    coll: &Collection<T>,
    s: &mut ClientSession,
    value: &T,
) -> Result<bool, DomainError> {
    let d: Document =
        bson::serialize_to_document(value).map_err(|e| DomainError::Invalid(e.to_string()))?;
    let id = d.get("_id").cloned().unwrap_or(bson::Bson::Null);
    let r = coll
        .clone_with_type::<Document>()
        .update_one(doc! {"_id": id}, doc! {"$setOnInsert": d})
        .upsert(true)
        .session(&mut *s)
        .await?;
    Ok(r.upserted_id.is_some())
}

async fn seed_once(
    db: &Db,
    s: &mut ClientSession,
    data: &SeedData,
) -> Result<SeedReport, DomainError> {
    let mut report = SeedReport::default();
    for u in &data.users {
        report.users_inserted += insert_if_absent(&db.users, s, u).await? as u64;
    }
    for r in &data.rooms {
        if !insert_if_absent(&db.rooms, s, &r.room).await? {
            // The room exists: leave it, its members and messages as they are now.
            continue;
        }
        report.rooms_inserted += 1;
        for sub in &r.subscriptions {
            report.subscriptions_inserted +=
                insert_if_absent(&db.subscriptions, s, sub).await? as u64;
        }
        for m in &r.messages {
            report.messages_inserted += insert_if_absent(&db.messages, s, m).await? as u64;
        }
    }
    Ok(report)
}

/// Seeds the database in one transaction, retrying transient conflicts.
pub async fn run(db: &Db) -> Result<SeedReport, DomainError> {
    let data = data(DateTime::now());
    let mut session = db.client.start_session().await?;
    let mut retry = Retry::default();
    loop {
        begin(&mut session).await?;
        let outcome = seed_once(db, &mut session, &data).await;
        let outcome = end(&mut session, outcome).await;
        if !retry.again(&outcome).await {
            return outcome;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::SYSTEM_MESSAGE_TYPES;

    #[test]
    fn seed_covers_all_room_types_and_stable_user_ids() {
        let d = data(DateTime::now());
        let ids: Vec<&str> = d.users.iter().map(|u| u.id.as_str()).collect();
        assert_eq!(ids, ["u-alice", "u-bob", "u-charlie", "u-diana"]);
        for t in ["c", "p", "d"] {
            assert!(d.rooms.iter().any(|r| r.room.t == t), "no room of type {t}");
        }
        for r in &d.rooms {
            // memberIds are user ids, not usernames.
            for m in &r.room.member_ids {
                assert!(ids.contains(&m.as_str()), "{m}");
            }
            assert_eq!(r.subscriptions.len(), r.room.member_ids.len());
            let n = r
                .messages
                .iter()
                .filter(|m| m.t == USER_MESSAGE_TYPE)
                .count() as i64;
            assert_eq!(r.room.message_count, n);
        }
    }

    #[test]
    fn every_seeded_message_has_a_mapped_type() {
        for r in data(DateTime::now()).rooms {
            for m in r.messages {
                assert!(
                    m.t == USER_MESSAGE_TYPE || SYSTEM_MESSAGE_TYPES.contains(&m.t.as_str()),
                    "{} has t={}",
                    m.id,
                    m.t
                );
            }
        }
    }
}
