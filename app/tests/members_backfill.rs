//! The start-up backfill of `rooms.members` on a real MongoDB replica set: a database written
//! before `roomMembers` became a pipeline over `rooms.members` has subscriptions but rooms
//! without `members`, and `rooms` without pre-images. `ensure_schema` must fill the array from
//! the subscriptions (oldest first), leave rooms that have one alone, turn on
//! `changeStreamPreAndPostImages` (the source refuses to start without it), and be a no-op the
//! second time. A membership change on a room the backfill has not reached (another replica
//! already serving) must still leave the room's whole membership in the array.

mod common;

use anyhow::{Context, Result};
use bson::{DateTime, Document, doc};
use common::TestApp;
use futures::TryStreamExt;
use serde_json::json;
use zerostack_harness::Mongo;
use zrocket::db::Db;
use zrocket::domain::members::backfill_members;

/// Whether `rooms` has `changeStreamPreAndPostImages` enabled.
async fn images_enabled(db: &mongodb::Database) -> Result<bool> {
    let specs: Vec<Document> = db
        .run_cursor_command(doc! {"listCollections": 1, "filter": {"name": "rooms"}})
        .await?
        .try_collect()
        .await?;
    let spec = specs.first().context("no rooms collection")?;
    Ok(spec
        .get_document("options")
        .ok()
        .and_then(|o| o.get_document("changeStreamPreAndPostImages").ok())
        .and_then(|p| p.get_bool("enabled").ok())
        .unwrap_or(false))
}

/// A room as the app wrote it before `members` existed.
fn old_room(id: &str, t: &str, member_ids: &[&str]) -> Document {
    let now = DateTime::from_millis(1_700_000_000_000);
    doc! {
        "_id": id, "t": t, "name": id, "readOnly": false, "archived": false,
        "memberIds": member_ids, "usernames": member_ids, "messageCount": 0i64,
        "createdBy": member_ids.first().copied().unwrap_or("u-x"),
        "createdAt": now, "updatedAt": now,
    }
}

fn subscription(room: &str, t: &str, user: &str, joined_ms: i64) -> Document {
    doc! {
        "_id": format!("{room}:{user}"), "roomId": room, "userId": user, "roomType": t,
        "joinedAt": DateTime::from_millis(joined_ms),
    }
}

/// `members` of a room as (userId, joinedAt ms), in stored order; `None` when absent.
async fn members(db: &Db, id: &str) -> Result<Option<Vec<(String, i64)>>> {
    let room = db
        .rooms
        .clone_with_type::<Document>()
        .find_one(doc! {"_id": id})
        .await?
        .with_context(|| format!("room {id} is missing"))?;
    let Ok(list) = room.get_array("members") else {
        return Ok(None);
    };
    list.iter()
        .map(|m| {
            let m = m.as_document().context("a member is not a document")?;
            Ok((
                m.get_str("userId")?.to_string(),
                m.get_datetime("joinedAt")?.timestamp_millis(),
            ))
        })
        .collect::<Result<Vec<_>>>()
        .map(Some)
}

async fn all_rooms(db: &Db) -> Result<Vec<Document>> {
    Ok(db
        .rooms
        .clone_with_type::<Document>()
        .find(doc! {})
        .sort(doc! {"_id": 1})
        .await?
        .try_collect()
        .await?)
}

fn pairs(v: &[(&str, i64)]) -> Option<Vec<(String, i64)>> {
    Some(v.iter().map(|(u, t)| (u.to_string(), *t)).collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backfill_fills_old_rooms_once_and_enables_images() -> Result<()> {
    let mut mongo = Mongo::start().await?;
    let client = mongo.client().await?;
    let db = Db::new(client, "zrocket_backfill");
    // The database as the app left it before: `rooms` without images, no `members`.
    db.database.create_collection("rooms").await?;
    assert!(!images_enabled(&db.database).await?);
    let rooms = db.rooms.clone_with_type::<Document>();
    let subs = db.subscriptions.clone_with_type::<Document>();
    rooms
        .insert_many([
            old_room("old-group", "p", &["u-alice", "u-bob"]),
            old_room("old-empty", "c", &[]),
        ])
        .await?;
    subs.insert_many([
        // bob joined first: the array lists members oldest first.
        subscription("old-group", "p", "u-alice", 2_000),
        subscription("old-group", "p", "u-bob", 1_000),
        // Another room's subscription must not leak into old-group.
        subscription("elsewhere", "c", "u-carol", 500),
    ])
    .await?;
    // A room that has its array already: the backfill must not rewrite it, even where its
    // subscriptions say otherwise.
    let mut kept = old_room("has-members", "c", &["u-diana"]);
    kept.insert(
        "members",
        vec![doc! {"userId": "u-diana", "joinedAt": DateTime::from_millis(42)}],
    );
    rooms.insert_one(kept).await?;
    subs.insert_one(subscription("has-members", "c", "u-eve", 7))
        .await?;

    db.ensure_schema().await?;
    assert!(
        images_enabled(&db.database).await?,
        "ensure_schema did not enable changeStreamPreAndPostImages on rooms"
    );
    assert_eq!(
        members(&db, "old-group").await?,
        pairs(&[("u-bob", 1_000), ("u-alice", 2_000)])
    );
    assert_eq!(members(&db, "old-empty").await?, pairs(&[]));
    assert_eq!(
        members(&db, "has-members").await?,
        pairs(&[("u-diana", 42)])
    );

    // Twice is a no-op: nothing to fill, every document exactly as it was.
    let before = all_rooms(&db).await?;
    db.ensure_schema().await?;
    assert_eq!(backfill_members(&db).await?, 0);
    assert_eq!(all_rooms(&db).await?, before);

    // A room written later without the array (an older replica) is filled by the next run.
    rooms
        .insert_one(old_room("late", "p", &["u-alice"]))
        .await?;
    subs.insert_one(subscription("late", "p", "u-alice", 3_000))
        .await?;
    assert_eq!(backfill_members(&db).await?, 1);
    assert_eq!(members(&db, "late").await?, pairs(&[("u-alice", 3_000)]));
    assert_eq!(backfill_members(&db).await?, 0);
    mongo.stop().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_join_on_a_room_without_members_writes_the_whole_membership() -> Result<()> {
    let app = TestApp::start().await;
    // Written after this replica's backfill ran, as another replica of the old version would.
    let rooms = app.db.rooms.clone_with_type::<Document>();
    rooms
        .insert_one(old_room("old-chan", "c", &["u-bob", "u-charlie"]))
        .await?;
    app.db
        .subscriptions
        .clone_with_type::<Document>()
        .insert_many([
            subscription("old-chan", "c", "u-bob", 1_000),
            subscription("old-chan", "c", "u-charlie", 2_000),
        ])
        .await?;
    let alice = app.token("u-alice").await;
    let push = TestApp::push(
        "cg-alice",
        &[("c1", 1, "room.join", json!({"roomId": "old-chan"}))],
    );
    let (status, resp) = app.push_body(&alice, &push).await;
    assert!(status.is_success(), "{status} {resp}");
    assert_eq!(resp["mutations"][0]["result"], json!({}), "{resp}");
    let got = members(&app.db, "old-chan").await?.context("no members")?;
    let users: Vec<&str> = got.iter().map(|(u, _)| u.as_str()).collect();
    assert_eq!(users, ["u-bob", "u-charlie", "u-alice"]);
    assert_eq!(
        &got[..2],
        &pairs(&[("u-bob", 1_000), ("u-charlie", 2_000)]).unwrap()[..]
    );
    app.stop().await;
    Ok(())
}
