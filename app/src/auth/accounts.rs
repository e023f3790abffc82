//! Accounts: the sign-up rules, the `credentials` collection (password hashes, apart from the
//! `users` documents that Zero publishes) and creating users.
//!
//! Usernames are unique ignoring case: every user document carries `usernameLower` under a
//! unique index, so two sign-ups racing for "Alice" and "alice" cannot both win.

use bson::{DateTime, doc};
use serde::{Deserialize, Serialize};

use crate::db::{Db, User, error_code};
use crate::domain::validation::MAX_NAME_LEN;

pub const CREDENTIALS: &str = "credentials";
pub const USERNAME_MIN: usize = 3;
pub const USERNAME_MAX: usize = 32;
pub const PASSWORD_MIN: usize = 8;
pub const PASSWORD_MAX: usize = 256;
/// MongoDB's duplicate key error.
const DUPLICATE_KEY: i32 = 11000;

/// A `credentials` document: one per user with a password, `_id` = the user's id.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Credential {
    #[serde(rename = "_id")]
    pub user_id: String,
    pub password_hash: String,
    pub updated_at: DateTime,
}

/// A sign-up field that breaks a rule: the field's name and the problem, for the form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct FieldError {
    pub field: &'static str,
    pub message: String,
}

fn field(field: &'static str, message: impl Into<String>) -> FieldError {
    FieldError {
        field,
        message: message.into(),
    }
}

/// A username: 3–32 of `A-Z a-z 0-9 _ . -`, surrounding blanks ignored.
pub fn validate_username(raw: &str) -> Result<String, FieldError> {
    let u = raw.trim();
    let n = u.chars().count();
    if !(USERNAME_MIN..=USERNAME_MAX).contains(&n) {
        return Err(field(
            "username",
            format!("username must be {USERNAME_MIN} to {USERNAME_MAX} characters long"),
        ));
    }
    if !u
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
    {
        return Err(field(
            "username",
            "username may only contain letters A-Z, digits, '_', '.' and '-'",
        ));
    }
    Ok(u.to_string())
}

/// A display name: 1–80 characters, no control characters.
pub fn validate_name(raw: &str) -> Result<String, FieldError> {
    let n = raw.trim();
    if n.is_empty() {
        return Err(field("name", "name must not be empty"));
    }
    if n.chars().count() > MAX_NAME_LEN {
        return Err(field(
            "name",
            format!("name must be at most {MAX_NAME_LEN} characters long"),
        ));
    }
    if n.chars().any(char::is_control) {
        return Err(field("name", "name must not contain control characters"));
    }
    Ok(n.to_string())
}

/// A password: 8–256 characters, taken as typed (no trimming).
pub fn validate_password(field_name: &'static str, raw: &str) -> Result<(), FieldError> {
    let n = raw.chars().count();
    if n < PASSWORD_MIN {
        return Err(field(
            field_name,
            format!("password must be at least {PASSWORD_MIN} characters long"),
        ));
    }
    if n > PASSWORD_MAX {
        return Err(field(
            field_name,
            format!("password must be at most {PASSWORD_MAX} characters long"),
        ));
    }
    Ok(())
}

/// The case-insensitive key of a username (usernames are ASCII).
pub fn username_key(username: &str) -> String {
    username.trim().to_ascii_lowercase()
}

/// The user with this username, ignoring case.
pub async fn find_by_username(db: &Db, username: &str) -> mongodb::error::Result<Option<User>> {
    db.users
        .find_one(doc! {"usernameLower": username_key(username)})
        .await
}

/// A user's stored password hash, if they have a password.
pub async fn password_hash(db: &Db, user_id: &str) -> mongodb::error::Result<Option<String>> {
    Ok(db
        .credentials
        .find_one(doc! {"_id": user_id})
        .await?
        .map(|c| c.password_hash))
}

/// Stores (or replaces) a user's password hash.
pub async fn set_password_hash(db: &Db, user_id: &str, hash: &str) -> mongodb::error::Result<()> {
    db.credentials
        .replace_one(
            doc! {"_id": user_id},
            Credential {
                user_id: user_id.to_string(),
                password_hash: hash.to_string(),
                updated_at: DateTime::now(),
            },
        )
        .upsert(true)
        .await
        .map(|_| ())
}

/// Why a new user could not be inserted.
#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    #[error("username is already taken")]
    Taken,
    #[error(transparent)]
    Db(#[from] mongodb::error::Error),
}

/// A new active user document with a fresh id.
pub fn new_user(username: &str, name: &str, email: Option<String>) -> User {
    let now = DateTime::now();
    User {
        id: format!("u-{}", bson::oid::ObjectId::new().to_hex()),
        username: username.to_string(),
        username_lower: Some(username_key(username)),
        name: name.to_string(),
        email,
        avatar_url: None,
        bio: None,
        active: true,
        created_at: now,
        updated_at: now,
    }
}

/// Inserts a user; a username taken (in any case) is [`CreateError::Taken`].
pub async fn insert_user(db: &Db, user: &User) -> Result<(), CreateError> {
    match db.users.insert_one(user).await {
        Ok(_) => Ok(()),
        Err(e) if error_code(&e) == Some(DUPLICATE_KEY) => Err(CreateError::Taken),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn username_rules() {
        assert_eq!(validate_username(" Alice_1.x-y ").unwrap(), "Alice_1.x-y");
        for bad in [
            "ab",
            "",
            &"a".repeat(33),
            "al ice",
            "ålice",
            "a@b",
            "😀😀😀",
        ] {
            let e = validate_username(bad).unwrap_err();
            assert_eq!(e.field, "username", "{bad}");
        }
        assert!(validate_username(&"a".repeat(32)).is_ok());
        assert_eq!(username_key("AlIcE"), "alice");
    }

    #[test]
    fn name_and_password_rules() {
        assert_eq!(validate_name("  Zoë ").unwrap(), "Zoë");
        assert_eq!(validate_name(" ").unwrap_err().field, "name");
        assert!(validate_name(&"é".repeat(80)).is_ok());
        assert!(validate_name(&"é".repeat(81)).is_err());
        assert!(validate_name("a\u{0}b").is_err());
        assert!(validate_password("password", "1234567").is_err());
        assert!(validate_password("password", "12345678").is_ok());
        // Characters, not bytes: 8 two-byte characters are a valid password.
        assert!(validate_password("password", &"é".repeat(8)).is_ok());
        assert!(validate_password("password", &"é".repeat(256)).is_ok());
        assert_eq!(
            validate_password("newPassword", &"x".repeat(257))
                .unwrap_err()
                .field,
            "newPassword"
        );
    }
}
