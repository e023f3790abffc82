//! ZRocket's `roomMembers` through the whole stack: it is a pipeline mapping that unwinds
//! `rooms.members`, so what zero-cache replicates must be exactly MongoDB's `rooms.members`
//! unwound, and that in turn exactly the `subscriptions` the app decides access by.
//!
//! Real MongoDB, source-server loaded with `zrocket export`, zero-cache 1.9.0 and `zrocket
//! serve` (the harness's `Stack`); memberships change only through the app's mutate endpoint,
//! as the browser's custom mutators would change them: rooms created with members (a channel,
//! a group, a direct chat), joins, invites and leaves, including a leave and a re-join of a
//! seeded room. After each step the replica must converge to MongoDB.

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use bson::{Bson, Document, doc};
use futures::TryStreamExt;
use serde_json::{Value, json};
use zerostack_harness::cases::Cases;
use zerostack_harness::node::ensure_node_modules;
use zerostack_harness::stack::{DATABASE, Stack, StackOptions, sign_up_api_client};

/// One `roomMembers` row: (_id, roomId, userId, roomType, joinedAt in epoch ms).
type Row = (String, String, String, String, i64);

/// A signed-in API client and the counter of its Zero client's mutations.
struct User {
    id: String,
    token: String,
    next_mutation: i64,
}

async fn sign_up(app_url: &str, username: &str) -> Result<User> {
    let login = sign_up_api_client(app_url, username, username).await?;
    Ok(User {
        id: login.user_id,
        token: login.token,
        next_mutation: 1,
    })
}

/// Runs one custom mutator as zero-cache would push it; fails unless it succeeded.
async fn mutate(app_url: &str, user: &mut User, name: &str, args: Value) -> Result<()> {
    let id = user.next_mutation;
    user.next_mutation += 1;
    let push = json!({
        "clientGroupID": format!("cg-{}", user.id), "pushVersion": 1, "timestamp": 1,
        "requestID": format!("r{id}"),
        "mutations": [{"type": "custom", "id": id, "clientID": "c1", "name": name,
                       "timestamp": 1, "args": [args]}],
    });
    let resp = zerostack_harness::http::Client::new()
        .with_timeout(Duration::from_secs(30))
        .post(format!(
            "{app_url}/api/zero/mutate?schema=zero_0&appID=zero"
        ))
        .bearer_auth(&user.token)
        .json(&push)
        .send()
        .await?;
    let body = resp.json_or_null();
    if body["mutations"][0]["result"] != json!({}) {
        bail!("{name} {args} did not succeed: {body}");
    }
    Ok(())
}

/// MongoDB's `rooms.members` unwound the way the mapping says, computed here from the documents
/// (not by the source's code), and checked against `subscriptions` on the way.
async fn expected(db: &mongodb::Database) -> Result<BTreeSet<Row>> {
    let rooms: Vec<Document> = db
        .collection::<Document>("rooms")
        .find(doc! {})
        .await?
        .try_collect()
        .await?;
    let mut rows = BTreeSet::new();
    for room in &rooms {
        let room_id = room.get_str("_id")?;
        let t = room.get_str("t")?;
        let Ok(members) = room.get_array("members") else {
            continue;
        };
        for m in members {
            let m = m.as_document().context("a member is not a document")?;
            let user = m.get_str("userId")?;
            let joined = m.get_datetime("joinedAt")?.timestamp_millis();
            rows.insert((
                format!("{room_id}:{user}"),
                room_id.to_string(),
                user.to_string(),
                t.to_string(),
                joined,
            ));
        }
    }
    let subs: Vec<Document> = db
        .collection::<Document>("subscriptions")
        .find(doc! {})
        .await?
        .try_collect()
        .await?;
    let mut from_subs = BTreeSet::new();
    for s in &subs {
        from_subs.insert((
            s.get_str("_id")?.to_string(),
            s.get_str("roomId")?.to_string(),
            s.get_str("userId")?.to_string(),
            s.get_str("roomType")?.to_string(),
            s.get_datetime("joinedAt")?.timestamp_millis(),
        ));
    }
    if rows != from_subs {
        bail!(
            "rooms.members and subscriptions disagree\n members only: {:?}\n subscriptions only: {:?}",
            rows.difference(&from_subs).collect::<Vec<_>>(),
            from_subs.difference(&rows).collect::<Vec<_>>()
        );
    }
    Ok(rows)
}

fn replica_rows(replica: &Value) -> Result<BTreeSet<Row>> {
    let rows = replica["roomMembers"]
        .as_array()
        .context("the replica has no roomMembers table")?;
    let text = |r: &Value, c: &str| -> Result<String> {
        Ok(r[c]
            .as_str()
            .with_context(|| format!("{c} is not a string in {r}"))?
            .to_string())
    };
    rows.iter()
        .map(|r| {
            let joined = r["joinedAt"]
                .as_f64()
                .with_context(|| format!("joinedAt is not a number in {r}"))?;
            Ok((
                text(r, "_id")?,
                text(r, "roomId")?,
                text(r, "userId")?,
                text(r, "roomType")?,
                joined as i64,
            ))
        })
        .collect()
}

/// Waits (bounded) until zero-cache's replica `roomMembers` equals MongoDB's; returns the rows.
async fn converge(stack: &Stack, db: &mongodb::Database) -> Result<BTreeSet<Row>> {
    let want = expected(db).await?;
    let mut have = BTreeSet::new();
    for _ in 0..120 {
        if let Ok(replica) = stack.zero.replica().await {
            have = replica_rows(&replica)?;
            if have == want {
                return Ok(want);
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    bail!(
        "the replica's roomMembers is not rooms.members unwound\n missing: {:?}\n extra: {:?}\n{}",
        want.difference(&have).collect::<Vec<_>>(),
        have.difference(&want).collect::<Vec<_>>(),
        stack.log_tails()
    )
}

/// The members of `room` among `rows`.
fn members(rows: &BTreeSet<Row>, room: &str) -> BTreeSet<String> {
    rows.iter()
        .filter(|r| r.1 == room)
        .map(|r| r.2.clone())
        .collect()
}

fn set(ids: &[&str]) -> BTreeSet<String> {
    ids.iter().map(|s| s.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn room_members_replica_equals_rooms_members_through_the_mutate_endpoint() -> Result<()> {
    ensure_node_modules()?;
    let stack = Stack::start(StackOptions::temp()?).await?;
    let db = stack.mongo.client().await?.database(DATABASE);
    let app = stack.app_url.clone();
    let mut cases = Cases::new("members_pipeline");
    let mut users: Option<(User, User)> = None;

    cases
        .run("the seeded memberships reach the replica", async {
            let rows = converge(&stack, &db).await?;
            assert_eq!(members(&rows, "r-dm-alice-bob"), set(&["u-alice", "u-bob"]));
            Ok(())
        })
        .await;
    cases
        .run("two users sign up", async {
            users = Some((
                sign_up(&app, "pipe-carol").await?,
                sign_up(&app, "pipe-dave").await?,
            ));
            Ok(())
        })
        .await;
    let Some((mut carol, mut dave)) = users else {
        let stopped = stack.stop().await;
        cases.finish()?;
        return stopped;
    };
    let (c, d) = (carol.id.clone(), dave.id.clone());
    let (c, d) = (c.as_str(), d.as_str());

    cases
        .run("creating a channel, a group and a direct chat", async {
            mutate(&app, &mut carol, "room.create",
                json!({"id": "pm-chan", "type": "c", "name": "pipe channel", "memberIds": [d]})).await?;
            mutate(&app, &mut carol, "room.create",
                json!({"id": "pm-group", "type": "p", "name": "pipe group", "memberIds": ["u-alice"]})).await?;
            mutate(&app, &mut carol, "room.create",
                json!({"id": "pm-dm", "type": "d", "memberIds": [d]})).await?;
            let rows = converge(&stack, &db).await?;
            assert_eq!(members(&rows, "pm-chan"), set(&[c, d]));
            assert_eq!(members(&rows, "pm-group"), set(&[c, "u-alice"]));
            assert_eq!(members(&rows, "pm-dm"), set(&[c, d]));
            let dm = rows.iter().find(|r| r.0 == format!("pm-dm:{d}")).unwrap();
            assert_eq!(dm.3, "d", "roomType comes from the room's t");
            Ok(())
        })
        .await;
    cases
        .run(
            "joining a seeded channel and inviting to the group",
            async {
                mutate(&app, &mut dave, "room.join", json!({"roomId": "r-general"})).await?;
                mutate(
                    &app,
                    &mut carol,
                    "room.invite",
                    json!({"roomId": "pm-group", "userIds": ["u-bob", d, "u-alice"]}),
                )
                .await?;
                let rows = converge(&stack, &db).await?;
                assert!(members(&rows, "r-general").contains(d));
                assert_eq!(members(&rows, "pm-group"), set(&[c, "u-alice", "u-bob", d]));
                Ok(())
            },
        )
        .await;
    cases
        .run(
            "leaving removes exactly the leaver's row; a re-join comes back",
            async {
                let before = converge(&stack, &db).await?;
                mutate(&app, &mut dave, "room.leave", json!({"roomId": "pm-chan"})).await?;
                mutate(
                    &app,
                    &mut dave,
                    "room.leave",
                    json!({"roomId": "r-general"}),
                )
                .await?;
                mutate(
                    &app,
                    &mut carol,
                    "room.leave",
                    json!({"roomId": "pm-group"}),
                )
                .await?;
                let rows = converge(&stack, &db).await?;
                assert_eq!(members(&rows, "pm-chan"), set(&[c]));
                assert!(!members(&rows, "r-general").contains(d));
                assert_eq!(members(&rows, "pm-group"), set(&["u-alice", "u-bob", d]));
                let gone: BTreeSet<&str> = before.difference(&rows).map(|r| r.0.as_str()).collect();
                let general = format!("r-general:{d}");
                let chan = format!("pm-chan:{d}");
                let group = format!("pm-group:{c}");
                assert_eq!(
                    gone,
                    BTreeSet::from([general.as_str(), chan.as_str(), group.as_str()])
                );
                assert!(rows.is_subset(&before), "a leave added rows");

                mutate(&app, &mut dave, "room.join", json!({"roomId": "r-general"})).await?;
                let rows = converge(&stack, &db).await?;
                assert!(members(&rows, "r-general").contains(d));
                Ok(())
            },
        )
        .await;
    cases
        .run(
            "members and subscriptions are the only membership, with no repeats",
            async {
                let rooms = db.collection::<Document>("rooms");
                for id in ["pm-chan", "pm-group", "pm-dm", "r-general"] {
                    let room = rooms.find_one(doc! {"_id": id}).await?.context(id)?;
                    let listed: Vec<&str> = room
                        .get_array("members")?
                        .iter()
                        .filter_map(|m| m.as_document()?.get_str("userId").ok())
                        .collect();
                    let distinct: BTreeSet<&str> = listed.iter().copied().collect();
                    assert_eq!(
                        listed.len(),
                        distinct.len(),
                        "{id} lists a member twice: {listed:?}"
                    );
                    let ids: Vec<&str> = room
                        .get_array("memberIds")?
                        .iter()
                        .filter_map(Bson::as_str)
                        .collect();
                    assert_eq!(distinct, ids.iter().copied().collect(), "{id}: memberIds");
                }
                Ok(())
            },
        )
        .await;

    let stopped = stack.stop().await;
    cases.finish()?;
    stopped
}
