//! Zero's bookkeeping in MongoDB: each client's `lastMutationID`, the recorded results of failed
//! mutations, and their cleanup.
//!
//! zero-cache confirms a mutation only when it sees the client's counter move in the replicated
//! `clients` table, and tells a client about an application error only through a row of the
//! `mutations` table; the source server publishes the two collections as those tables. Their
//! names and fields are the contract of `zerostack_spec::bookkeeping`, and every document read or
//! written here takes its field names from there, so the app cannot write a field the source does
//! not publish. (The push body zero-cache sends uses some of the same names, `clientGroupID` and
//! `clientID`; those are Zero's wire protocol, parsed in `mutate`, not this contract.)

use bson::{Bson, Document, doc};
use mongodb::ClientSession;
use mongodb::options::ReturnDocument;
use serde::Deserialize;
use serde_json::Value;
use zerostack_spec::bookkeeping::field::{
    CLIENT_GROUP_ID, CLIENT_ID, LAST_MUTATION_ID, MUTATION, MUTATION_ID, RESULT, USER_ID,
};

use crate::db::Db;

/// The internal mutation zero-cache sends to delete acknowledged results.
pub const CLEANUP: &str = "_zero_cleanupResults";

/// Whether the client group already belongs to a user other than `user_id` (a client group's
/// counters may only be advanced by the user who created it).
pub async fn owned_by_another_user(
    db: &Db,
    client_group_id: &str,
    user_id: &str,
) -> mongodb::error::Result<bool> {
    Ok(db
        .clients
        .find_one(doc! {CLIENT_GROUP_ID: client_group_id, USER_ID: {"$ne": user_id}})
        .await?
        .is_some())
}

/// Increments and returns the client's `lastMutationID` (the first write of every mutation
/// transaction, so concurrent duplicates conflict right away).
pub async fn increment_lmid(
    db: &Db,
    s: &mut ClientSession,
    client_group_id: &str,
    client_id: &str,
    user_id: &str,
) -> mongodb::error::Result<i64> {
    let row = db
        .clients
        .find_one_and_update(
            doc! {"_id": {CLIENT_GROUP_ID: client_group_id, CLIENT_ID: client_id}},
            doc! {
                "$inc": {LAST_MUTATION_ID: Bson::Int64(1)},
                "$setOnInsert": {
                    CLIENT_GROUP_ID: client_group_id,
                    CLIENT_ID: client_id,
                    USER_ID: user_id,
                },
            },
        )
        .upsert(true)
        .return_document(ReturnDocument::After)
        .session(&mut *s)
        .await?;
    Ok(row
        .and_then(|r| match r.get(LAST_MUTATION_ID) {
            Some(Bson::Int64(n)) => Some(*n),
            Some(Bson::Int32(n)) => Some(i64::from(*n)),
            _ => None,
        })
        .unwrap_or(1))
}

/// One mutation's recorded result: which mutation, what it was called with, what came of it.
pub struct MutationResult<'a> {
    pub client_group_id: &'a str,
    pub client_id: &'a str,
    pub mutation_id: i64,
    pub name: &'a str,
    pub args: &'a [Value],
    pub result: &'a Value,
}

/// Writes (or rewrites) a mutation's result row, inside the caller's transaction.
pub async fn write_result(
    db: &Db,
    s: &mut ClientSession,
    r: &MutationResult<'_>,
) -> mongodb::error::Result<()> {
    let key = doc! {
        CLIENT_GROUP_ID: r.client_group_id,
        CLIENT_ID: r.client_id,
        MUTATION_ID: Bson::Int64(r.mutation_id),
    };
    let row = doc! {
        "_id": key.clone(),
        CLIENT_GROUP_ID: r.client_group_id,
        CLIENT_ID: r.client_id,
        MUTATION_ID: Bson::Int64(r.mutation_id),
        RESULT: json_to_bson(r.result),
        MUTATION: {"name": r.name, "args": json_to_bson(&Value::Array(r.args.to_vec()))},
    };
    db.mutations
        .replace_one(doc! {"_id": key}, row)
        .upsert(true)
        .session(&mut *s)
        .await?;
    Ok(())
}

/// The arguments of [`CLEANUP`], as zero-cache sends them.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CleanupArgs {
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(rename = "clientGroupID")]
    client_group_id: String,
    #[serde(rename = "clientID", default)]
    client_id: Option<String>,
    #[serde(rename = "clientIDs", default)]
    client_ids: Vec<String>,
    #[serde(rename = "upToMutationID", default)]
    up_to_mutation_id: Option<i64>,
}

/// Deletes acknowledged results. Idempotent; failures are logged only (zero-cache only logs
/// them too), and it never touches the counters or the response.
pub async fn cleanup(db: &Db, push_group: &str, arg: &Value) {
    let args: CleanupArgs = match serde_json::from_value(arg.clone()) {
        Ok(a) => a,
        Err(e) => {
            tracing::warn!(error = %e, "mutate: ignoring malformed {CLEANUP}");
            return;
        }
    };
    if args.client_group_id != push_group {
        tracing::warn!("mutate: ignoring {CLEANUP} for another client group");
        return;
    }
    let filter: Document = match (
        args.kind.as_deref(),
        &args.client_id,
        args.up_to_mutation_id,
    ) {
        (Some("bulk"), _, _) if !args.client_ids.is_empty() => {
            doc! {CLIENT_GROUP_ID: push_group, CLIENT_ID: {"$in": &args.client_ids}}
        }
        (None | Some("single"), Some(c), Some(up)) => {
            doc! {CLIENT_GROUP_ID: push_group, CLIENT_ID: c, MUTATION_ID: {"$lte": Bson::Int64(up)}}
        }
        _ => {
            tracing::warn!("mutate: ignoring {CLEANUP} with unexpected arguments");
            return;
        }
    };
    match db.mutations.delete_many(filter).await {
        Ok(r) => tracing::debug!(deleted = r.deleted_count, "mutate: cleaned up results"),
        Err(e) => tracing::warn!(error = %e, "mutate: cleanup failed"),
    }
}

/// Converts client-supplied JSON (a mutation's arguments, its result) to BSON literally:
/// integers become Int32 when they fit, else Int64, other numbers doubles.
///
/// bson's own conversions are not used because they read MongoDB extended JSON:
/// `Bson::try_from(serde_json::Value)` and serde (`bson::serialize_to_bson`) both turn an object
/// such as `{"$oid": "…"}` or `{"$date": …}` into an ObjectId or a date (or fail on a malformed
/// one), so a client could store typed values it never sent as such; serde also widens every
/// integer to Int64. Here an object is always a document with exactly the client's keys.
pub fn json_to_bson(v: &Value) -> Bson {
    match v {
        Value::Null => Bson::Null,
        Value::Bool(b) => Bson::Boolean(*b),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                i32::try_from(i).map(Bson::Int32).unwrap_or(Bson::Int64(i))
            } else {
                n.as_f64().map(Bson::Double).unwrap_or(Bson::Null)
            }
        }
        Value::String(s) => Bson::String(s.clone()),
        Value::Array(a) => Bson::Array(a.iter().map(json_to_bson).collect()),
        Value::Object(o) => Bson::Document(
            o.iter()
                .map(|(k, v)| (k.clone(), json_to_bson(v)))
                .collect(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_numbers_become_bson_numbers() {
        let b = json_to_bson(&json!({"a": 1, "b": 5_000_000_000i64, "c": 1.5, "d": [true, null]}));
        let d = b.as_document().unwrap();
        assert_eq!(d.get("a"), Some(&Bson::Int32(1)));
        assert_eq!(d.get("b"), Some(&Bson::Int64(5_000_000_000)));
        assert_eq!(d.get("c"), Some(&Bson::Double(1.5)));
        assert_eq!(
            d.get("d"),
            Some(&Bson::Array(vec![Bson::Boolean(true), Bson::Null]))
        );
    }

    #[test]
    fn extended_json_stays_literal() {
        let oid = json!({"$oid": "507f1f77bcf86cd799439011"});
        // The reason this function exists: bson's conversion would make an ObjectId of it.
        assert!(matches!(Bson::try_from(oid.clone()), Ok(Bson::ObjectId(_))));
        assert_eq!(
            json_to_bson(&oid),
            Bson::Document(doc! {"$oid": "507f1f77bcf86cd799439011"})
        );
        let date = json!({"$date": {"$numberLong": "0"}});
        assert_eq!(
            json_to_bson(&date),
            Bson::Document(doc! {"$date": {"$numberLong": "0"}})
        );
    }
}
