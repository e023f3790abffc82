//! Users: the caller of a command, the users it names, and the user listings of the REST API.
//!
//! The `load_*` functions read inside a command's transaction; the others are the REST API's
//! reads and run outside any.

use bson::doc;
use futures::TryStreamExt;
use mongodb::ClientSession;

use super::commands::Caller;
use super::error::{DomainError, Result};
use crate::db::{Db, User};

/// The caller's user document; a token for a user that no longer exists is refused.
pub async fn load_caller(db: &Db, s: &mut ClientSession, caller: &Caller) -> Result<User> {
    db.users
        .find_one(doc! {"_id": &caller.user_id})
        .session(&mut *s)
        .await?
        .ok_or_else(|| DomainError::Forbidden(format!("user {} does not exist", caller.user_id)))
}

/// Loads users by id, failing with the list of unknown ids.
pub async fn load_users(db: &Db, s: &mut ClientSession, ids: &[String]) -> Result<Vec<User>> {
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

/// One user by id.
pub async fn get_user(db: &Db, user_id: &str) -> Result<User> {
    db.users
        .find_one(doc! {"_id": user_id})
        .await?
        .ok_or_else(|| DomainError::NotFound(format!("user {user_id} not found")))
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

/// Users whose username or name contains `q` (literally, ignoring case), or all users without
/// `q`; by username, at most `limit`.
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

/// The active users, by username (`GET /api/auth/users`).
pub async fn list_users(db: &Db) -> Result<Vec<User>> {
    Ok(db
        .users
        .find(doc! {"active": true})
        .sort(doc! {"username": 1})
        .await?
        .try_collect()
        .await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regex_escape_escapes_metacharacters() {
        assert_eq!(regex_escape("a.b*"), "a\\.b\\*");
    }
}
