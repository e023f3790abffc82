//! Session tokens: 256 random bits handed to the client once, stored only as their SHA-256.
//!
//! A token is opaque (no claims to forge, no key to leak) and revocable: signing out deletes
//! its document, a password change deletes the user's others, and a TTL index lets MongoDB
//! drop expired ones. A stolen copy of the `sessions` collection holds no usable token.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bson::{DateTime, doc};
use mongodb::options::IndexOptions;
use mongodb::{Collection, IndexModel};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use zerostack_spec::secret::Secret;

pub const SESSIONS: &str = "sessions";
/// Random bytes per token: 256 bits.
const TOKEN_BYTES: usize = 32;
/// The length of a token as text (unpadded base64url of 32 bytes).
const TOKEN_CHARS: usize = 43;

/// How the session was started (kept for the audit trail; both authenticate the same way).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Kind {
    /// A browser's cookie (sign-in, sign-up, dev login, OIDC).
    Browser,
    /// An API client's bearer token (`POST /api/auth/token`).
    Api,
}

/// A `sessions` document.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Session {
    /// The token's SHA-256, hex.
    #[serde(rename = "_id")]
    pub id: String,
    pub user_id: String,
    pub kind: Kind,
    pub created_at: DateTime,
    pub expires_at: DateTime,
}

/// The `sessions` collection.
#[derive(Clone, Debug)]
pub struct Sessions {
    pub collection: Collection<Session>,
    ttl_secs: u64,
}

/// A fresh token, from the operating system's generator.
pub fn new_token() -> Secret {
    let mut bytes = [0u8; TOKEN_BYTES];
    getrandom::fill(&mut bytes).expect("the operating system's random generator is available");
    Secret::new(URL_SAFE_NO_PAD.encode(bytes))
}

/// The stored id of a token.
pub fn token_id(token: &Secret) -> String {
    hex_string(&Sha256::digest(token.expose().as_bytes()))
}

fn hex_string(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Only strings shaped like our tokens reach the database.
fn well_formed(token: &Secret) -> bool {
    let t = token.expose();
    t.len() == TOKEN_CHARS
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl Sessions {
    pub fn new(collection: Collection<Session>, ttl_secs: u64) -> Sessions {
        Sessions {
            collection,
            ttl_secs,
        }
    }

    pub fn ttl_secs(&self) -> u64 {
        self.ttl_secs
    }

    /// The TTL index (MongoDB deletes expired sessions) and the per-user index.
    pub async fn ensure_indexes(&self) -> mongodb::error::Result<()> {
        self.collection
            .create_index(
                IndexModel::builder()
                    .keys(doc! {"expiresAt": 1})
                    .options(
                        IndexOptions::builder()
                            .expire_after(std::time::Duration::from_secs(0))
                            .build(),
                    )
                    .build(),
            )
            .await?;
        self.collection
            .create_index(IndexModel::builder().keys(doc! {"userId": 1}).build())
            .await?;
        Ok(())
    }

    /// Starts a session for `user_id`; returns the token (shown to the client once).
    pub async fn create(&self, user_id: &str, kind: Kind) -> mongodb::error::Result<Secret> {
        let token = new_token();
        let now = DateTime::now();
        let ttl_ms = i64::try_from(self.ttl_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
        let session = Session {
            id: token_id(&token),
            user_id: user_id.to_string(),
            kind,
            created_at: now,
            expires_at: DateTime::from_millis(now.timestamp_millis().saturating_add(ttl_ms)),
        };
        self.collection.insert_one(&session).await?;
        Ok(token)
    }

    /// The live session of a token, if any.
    pub async fn find(&self, token: &Secret) -> mongodb::error::Result<Option<Session>> {
        if !well_formed(token) {
            return Ok(None);
        }
        self.collection
            .find_one(doc! {"_id": token_id(token), "expiresAt": {"$gt": DateTime::now()}})
            .await
    }

    /// Ends one session.
    pub async fn revoke(&self, session_id: &str) -> mongodb::error::Result<()> {
        self.collection
            .delete_one(doc! {"_id": session_id})
            .await
            .map(|_| ())
    }

    /// Ends every session of a user but `keep`.
    pub async fn revoke_others(&self, user_id: &str, keep: &str) -> mongodb::error::Result<u64> {
        self.collection
            .delete_many(doc! {"userId": user_id, "_id": {"$ne": keep}})
            .await
            .map(|r| r.deleted_count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_256_bits_unique_and_stored_hashed() {
        let a = new_token();
        let b = new_token();
        assert_ne!(a, b);
        assert_eq!(a.expose().len(), TOKEN_CHARS);
        assert!(well_formed(&a));
        assert_eq!(URL_SAFE_NO_PAD.decode(a.expose()).unwrap().len(), 32);
        let id = token_id(&a);
        assert_eq!(id.len(), 64);
        assert!(!id.contains(a.expose()));
        assert!(!well_formed(&Secret::new("garbage")));
        assert!(!well_formed(&Secret::new("é".repeat(21) + "a")));
    }
}
