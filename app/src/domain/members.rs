//! A room's `members` array: what the Zero table `roomMembers` is unwound from.
//!
//! Membership lives in two places: one `subscriptions` document per (room, user), which the app
//! reads to decide access and "my rooms", and the room's `members` array, which the source
//! server publishes through a pipeline mapping (`$unwind` of `members`). So that the two cannot
//! drift, the array is never edited piecewise: every membership change rewrites it from the
//! room's subscriptions inside the same transaction ([`sync_members`]), and a room written
//! before the array existed is filled once at start-up ([`backfill_members`]).
//!
//! Rewriting instead of `$push`/`$pull` also makes a room that has no `members` yet (one the
//! backfill has not reached while another replica already serves) come out whole on its first
//! membership change, instead of holding only the user who just joined.

use bson::{Bson, doc};
use futures::TryStreamExt;
use mongodb::ClientSession;

use super::error::Result;
use crate::db::{Db, Member, Subscription};

/// The `members` array for a room's subscriptions, in the order given (the callers read them
/// oldest first, ties by subscription id, so the order is stable).
fn members_of(subs: &[Subscription]) -> Bson {
    let members: Vec<Member> = subs.iter().map(Member::of).collect();
    bson::serialize_to_bson(&members).expect("members serialise")
}

/// Rewrites `rooms.members` of `room_id` from its subscriptions, inside the command's
/// transaction (after the subscription writes of that command).
pub async fn sync_members(db: &Db, s: &mut ClientSession, room_id: &str) -> Result<()> {
    let mut cursor = db
        .subscriptions
        .find(doc! {"roomId": room_id})
        .sort(doc! {"joinedAt": 1, "_id": 1})
        .session(&mut *s)
        .await?;
    let subs: Vec<Subscription> = cursor.stream(&mut *s).try_collect().await?;
    db.rooms
        .update_one(
            doc! {"_id": room_id},
            doc! {"$set": {"members": members_of(&subs)}},
        )
        .session(&mut *s)
        .await?;
    Ok(())
}

/// Gives every room without a `members` field the one its subscriptions say; returns how many
/// rooms it filled. Idempotent: a room that has the field (filled before, or by a membership
/// change meanwhile, which rewrites it whole) is never touched, so a second run fills none.
///
/// No transaction is needed: the write only applies while the room still lacks `members`, and
/// every membership change sets `members` in the transaction that changes the subscriptions, so
/// a change that lands between this read and this write makes the write a no-op.
pub async fn backfill_members(db: &Db) -> mongodb::error::Result<u64> {
    let missing = doc! {"members": {"$exists": false}};
    let ids: Vec<String> = db
        .rooms
        .clone_with_type::<bson::Document>()
        .find(missing.clone())
        .projection(doc! {"_id": 1})
        .await?
        .try_collect::<Vec<_>>()
        .await?
        .into_iter()
        .filter_map(|d| d.get_str("_id").ok().map(str::to_string))
        .collect();
    let mut filled = 0;
    for id in ids {
        let subs: Vec<Subscription> = db
            .subscriptions
            .find(doc! {"roomId": &id})
            .sort(doc! {"joinedAt": 1, "_id": 1})
            .await?
            .try_collect()
            .await?;
        let mut filter = missing.clone();
        filter.insert("_id", &id);
        let r = db
            .rooms
            .update_one(filter, doc! {"$set": {"members": members_of(&subs)}})
            .await?;
        filled += r.modified_count;
    }
    if filled > 0 {
        tracing::info!(rooms = filled, "filled rooms.members from subscriptions");
    }
    Ok(filled)
}
