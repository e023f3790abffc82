//! Sign-in with an external OpenID Connect provider: verifying its ID tokens against its JWKS,
//! and mapping (issuer, subject) to a ZRocket user created on first sign-in.
//!
//! Tokens are checked with `jsonwebtoken` (pure-Rust `rust_crypto` backend): RS256 or ES256
//! only (never `none` or HMAC, which would let a public key act as a shared secret), and
//! `iss`, `aud`, `exp` and `nbf` with a minute of leeway. The JWKS is fetched on first use,
//! cached for an hour, and fetched again when a token names an unknown `kid` (key rotation), at
//! most once per [`MIN_REFETCH`], so random `kid`s cannot make the app hammer the provider.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bson::doc;
use jsonwebtoken::jwk::{AlgorithmParameters, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use mongodb::options::IndexOptions;
use mongodb::{Collection, IndexModel};
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use crate::auth::accounts::{self, CreateError, USERNAME_MAX, USERNAME_MIN};
use crate::config::OidcSettings;
use crate::db::{Db, User, error_code};

pub const IDENTITIES: &str = "identities";
/// How long fetched keys are used before they are fetched again.
const JWKS_MAX_AGE: Duration = Duration::from_secs(3600);
/// The least time between two fetches caused by unknown `kid`s.
pub const MIN_REFETCH: Duration = Duration::from_secs(30);
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_JWKS_BYTES: usize = 1024 * 1024;
/// Tokens longer than this are refused unread.
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;
const LEEWAY_SECS: u64 = 60;

/// An `identities` document: which user an external (issuer, subject) signs in as.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Identity {
    pub issuer: String,
    pub subject: String,
    pub user_id: String,
}

/// Why an ID token is refused. Shown to the client: no key material, no token.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OidcError {
    #[error("the ID token is malformed")]
    Malformed,
    #[error("the ID token's algorithm must be RS256 or ES256")]
    Algorithm,
    #[error("the ID token is signed with a key the issuer does not publish")]
    UnknownKey,
    #[error("the ID token's signature is invalid")]
    Signature,
    #[error("the ID token has expired")]
    Expired,
    #[error("the ID token is not valid yet")]
    NotYetValid,
    #[error("the ID token was issued by another issuer")]
    Issuer,
    #[error("the ID token is meant for another audience")]
    Audience,
    #[error("the ID token is invalid: {0}")]
    Invalid(String),
    #[error("the identity provider's keys could not be fetched")]
    Jwks,
}

/// The claims used from a verified ID token.
#[derive(Debug, Deserialize)]
pub struct IdClaims {
    /// Defaulted so that a missing `sub` is reported as such by the claim validation.
    #[serde(default)]
    pub sub: String,
    #[serde(default)]
    pub preferred_username: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
}

#[derive(Default)]
struct Cache {
    keys: HashMap<String, (Algorithm, DecodingKey)>,
    /// Keys without a `kid`, usable only when the token names none either.
    anonymous: Vec<(Algorithm, DecodingKey)>,
    fetched_at: Option<Instant>,
}

/// The verifier of one provider.
pub struct Oidc {
    pub settings: OidcSettings,
    cache: Mutex<Cache>,
}

impl std::fmt::Debug for Oidc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Oidc")
            .field("issuer", &self.settings.issuer)
            .field("audience", &self.settings.audience)
            .finish_non_exhaustive()
    }
}

fn key_algorithm(params: &AlgorithmParameters) -> Option<Algorithm> {
    match params {
        AlgorithmParameters::RSA(_) => Some(Algorithm::RS256),
        AlgorithmParameters::EllipticCurve(ec)
            if ec.curve == jsonwebtoken::jwk::EllipticCurve::P256 =>
        {
            Some(Algorithm::ES256)
        }
        _ => None,
    }
}

impl Oidc {
    pub fn new(settings: OidcSettings) -> Oidc {
        Oidc {
            settings,
            cache: Mutex::new(Cache::default()),
        }
    }

    async fn fetch(&self, cache: &mut Cache) -> Result<(), OidcError> {
        cache.fetched_at = Some(Instant::now());
        let text =
            match tokio::time::timeout(FETCH_TIMEOUT, get_text(&self.settings.jwks_url)).await {
                Ok(Ok(t)) => t,
                Ok(Err(e)) => {
                    tracing::warn!(problem = %e, "oidc: fetching the JWKS failed");
                    return Err(OidcError::Jwks);
                }
                Err(_) => {
                    tracing::warn!("oidc: fetching the JWKS timed out");
                    return Err(OidcError::Jwks);
                }
            };
        let set: JwkSet = serde_json::from_str(&text).map_err(|e| {
            tracing::warn!(problem = %e, "oidc: the JWKS is not a JWK set");
            OidcError::Jwks
        })?;
        let mut keys = HashMap::new();
        let mut anonymous = Vec::new();
        for jwk in &set.keys {
            let Some(alg) = key_algorithm(&jwk.algorithm) else {
                continue;
            };
            let Ok(key) = DecodingKey::from_jwk(jwk) else {
                continue;
            };
            match &jwk.common.key_id {
                Some(kid) => {
                    keys.insert(kid.clone(), (alg, key));
                }
                None => anonymous.push((alg, key)),
            }
        }
        tracing::info!(keys = keys.len() + anonymous.len(), "oidc: JWKS fetched");
        cache.keys = keys;
        cache.anonymous = anonymous;
        Ok(())
    }

    /// The key for a token's `kid` and algorithm, fetching the JWKS when needed.
    async fn key(&self, kid: Option<&str>, alg: Algorithm) -> Result<DecodingKey, OidcError> {
        let mut cache = self.cache.lock().await;
        let stale = cache.fetched_at.is_none_or(|t| t.elapsed() >= JWKS_MAX_AGE);
        if stale {
            // A failed refresh keeps the keys already known.
            let _ = self.fetch(&mut cache).await;
        }
        let lookup = |c: &Cache| -> Option<(Algorithm, DecodingKey)> {
            match kid {
                Some(k) => c.keys.get(k).cloned(),
                None => c.anonymous.iter().find(|(a, _)| *a == alg).cloned(),
            }
        };
        let mut found = lookup(&cache);
        if found.is_none() && !stale && cache.fetched_at.is_none_or(|t| t.elapsed() >= MIN_REFETCH)
        {
            let _ = self.fetch(&mut cache).await;
            found = lookup(&cache);
        }
        match found {
            Some((key_alg, key)) if key_alg == alg => Ok(key),
            Some(_) => Err(OidcError::Algorithm),
            None if cache.keys.is_empty() && cache.anonymous.is_empty() => Err(OidcError::Jwks),
            None => Err(OidcError::UnknownKey),
        }
    }

    /// Verifies an ID token; its claims when valid.
    pub async fn verify(&self, id_token: &str) -> Result<IdClaims, OidcError> {
        if id_token.len() > MAX_TOKEN_BYTES {
            return Err(OidcError::Malformed);
        }
        let header = jsonwebtoken::decode_header(id_token).map_err(|_| OidcError::Malformed)?;
        if !matches!(header.alg, Algorithm::RS256 | Algorithm::ES256) {
            return Err(OidcError::Algorithm);
        }
        let key = self.key(header.kid.as_deref(), header.alg).await?;
        let mut v = Validation::new(header.alg);
        v.set_issuer(&[&self.settings.issuer]);
        v.set_audience(&[&self.settings.audience]);
        v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        v.validate_nbf = true;
        v.leeway = LEEWAY_SECS;
        jsonwebtoken::decode::<IdClaims>(id_token, &key, &v)
            .map(|d| d.claims)
            .map_err(|e| {
                use jsonwebtoken::errors::ErrorKind as K;
                match e.kind() {
                    K::InvalidSignature => OidcError::Signature,
                    K::ExpiredSignature => OidcError::Expired,
                    K::ImmatureSignature => OidcError::NotYetValid,
                    K::InvalidIssuer => OidcError::Issuer,
                    K::InvalidAudience => OidcError::Audience,
                    K::InvalidAlgorithm => OidcError::Algorithm,
                    K::InvalidToken | K::Base64(_) | K::Json(_) | K::Utf8(_) => {
                        OidcError::Malformed
                    }
                    K::MissingRequiredClaim(c) => OidcError::Invalid(format!("no {c} claim")),
                    other => OidcError::Invalid(format!("{other:?}")),
                }
            })
            .and_then(|c| {
                if c.sub.is_empty() || c.sub.len() > 255 {
                    Err(OidcError::Invalid("sub must be 1-255 bytes".into()))
                } else {
                    Ok(c)
                }
            })
    }
}

/// The unique (issuer, subject) index.
pub async fn ensure_indexes(identities: &Collection<Identity>) -> mongodb::error::Result<()> {
    identities
        .create_index(
            IndexModel::builder()
                .keys(doc! {"issuer": 1, "subject": 1})
                .options(IndexOptions::builder().unique(true).build())
                .build(),
        )
        .await
        .map(|_| ())
}

/// A username from the token's `preferred_username` or e-mail: the allowed characters only,
/// cut to leave room for a numeric suffix, padded to the minimum.
pub fn base_username(claims: &IdClaims) -> String {
    let source = claims
        .preferred_username
        .as_deref()
        .filter(|s| !s.trim().is_empty())
        .or_else(|| claims.email.as_deref().and_then(|e| e.split('@').next()))
        .unwrap_or("user");
    let mut base: String = source
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        .take(USERNAME_MAX - 8)
        .collect();
    if base.chars().count() < USERNAME_MIN {
        base = format!("user{base}");
    }
    base
}

/// The user an identity signs in as, created (with a unique username) on first sign-in.
pub async fn user_for(
    db: &Db,
    issuer: &str,
    claims: &IdClaims,
) -> Result<User, mongodb::error::Error> {
    let filter = doc! {"issuer": issuer, "subject": &claims.sub};
    if let Some(identity) = db.identities.find_one(filter.clone()).await? {
        if let Some(user) = db.users.find_one(doc! {"_id": &identity.user_id}).await? {
            return Ok(user);
        }
        // The user was deleted: sign in as a new one.
        db.identities.delete_one(filter.clone()).await?;
    }
    let base = base_username(claims);
    let name = claims
        .name
        .as_deref()
        .and_then(|n| accounts::validate_name(n).ok())
        .unwrap_or_else(|| base.clone());
    let email = claims.email.clone().filter(|e| e.len() <= 254);
    let mut user = None;
    for attempt in 0..20u32 {
        let username = if attempt == 0 {
            base.clone()
        } else if attempt < 10 {
            format!("{base}-{}", attempt + 1)
        } else {
            let t = crate::auth::session::new_token();
            let suffix: String = t
                .expose()
                .chars()
                .filter(char::is_ascii_alphanumeric)
                .take(6)
                .collect();
            format!("{base}-{suffix}")
        };
        let candidate = accounts::new_user(&username, &name, email.clone());
        match accounts::insert_user(db, &candidate).await {
            Ok(()) => {
                user = Some(candidate);
                break;
            }
            Err(CreateError::Taken) => continue,
            Err(CreateError::Db(e)) => return Err(e),
        }
    }
    let user = user
        .ok_or_else(|| mongodb::error::Error::custom("no free username found for an OIDC user"))?;
    let identity = Identity {
        issuer: issuer.to_string(),
        subject: claims.sub.clone(),
        user_id: user.id.clone(),
    };
    match db.identities.insert_one(&identity).await {
        Ok(_) => Ok(user),
        // A concurrent first sign-in of the same identity won: use its user.
        Err(e) if error_code(&e) == Some(11000) => {
            db.users.delete_one(doc! {"_id": &user.id}).await?;
            let identity = db
                .identities
                .find_one(filter)
                .await?
                .ok_or_else(|| mongodb::error::Error::custom("identity vanished"))?;
            db.users
                .find_one(doc! {"_id": &identity.user_id})
                .await?
                .ok_or_else(|| mongodb::error::Error::custom("identity's user vanished"))
        }
        Err(e) => Err(e),
    }
}

/// `GET url` over HTTP or HTTPS (webpki roots); the body as text, at most 1 MiB. Errors never
/// carry the URL.
async fn get_text(url: &str) -> Result<String, String> {
    use http_body_util::{BodyExt, Empty, Limited};
    use hyper::body::Bytes;
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;

    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_webpki_roots()
        .https_or_http()
        .enable_http1()
        .build();
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build(https);
    let uri: http::Uri = url.parse().map_err(|_| "not a valid URL".to_string())?;
    let req = http::Request::get(uri)
        .header(http::header::ACCEPT, "application/json")
        .body(Empty::new())
        .map_err(|e| e.to_string())?;
    let resp = client
        .request(req)
        .await
        .map_err(|e| format!("request failed: {e}"))?;
    if !resp.status().is_success() {
        return Err(format!("HTTP {}", resp.status()));
    }
    let body = Limited::new(resp.into_body(), MAX_JWKS_BYTES)
        .collect()
        .await
        .map_err(|e| format!("reading the body: {e}"))?
        .to_bytes();
    String::from_utf8(body.to_vec()).map_err(|_| "the body is not UTF-8".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(pu: Option<&str>, email: Option<&str>) -> IdClaims {
        IdClaims {
            sub: "s".into(),
            preferred_username: pu.map(str::to_string),
            email: email.map(str::to_string),
            name: None,
        }
    }

    #[test]
    fn usernames_from_claims_follow_the_rules() {
        assert_eq!(base_username(&claims(Some("Zoë.Smith"), None)), "Zo.Smith");
        assert_eq!(base_username(&claims(None, Some("bob@x.org"))), "bob");
        assert_eq!(base_username(&claims(None, None)), "user");
        assert_eq!(base_username(&claims(Some("é"), None)), "user");
        let long = base_username(&claims(Some(&"a".repeat(100)), None));
        assert!(accounts::validate_username(&format!("{long}-abcdef")).is_ok());
    }
}
