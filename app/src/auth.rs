//! Who is calling: HS256 JWTs issued by the dev login, read from `Authorization: Bearer` or
//! the `zrocket_token` cookie.
//!
//! The same token is checked by REST, by the Zero mutate endpoint and by the query endpoint
//! (zero-cache forwards it unchanged), so identity always comes from a verified token and never
//! from a request body. The HMAC is computed with `hmac` + `sha2` so that no OpenSSL or aws-lc
//! is needed; verification compares in constant time.

use std::sync::Arc;

use axum::extract::{FromRef, FromRequestParts};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header, request::Parts};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::api_error::error_response;

/// The cookie that holds the token in the browser.
pub const COOKIE_NAME: &str = "zrocket_token";
/// Tolerated clock skew when checking `exp` / `iat`, in seconds.
const LEEWAY_SECS: u64 = 30;

type HmacSha256 = Hmac<Sha256>;

/// The token payload.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    pub sub: String,
    pub name: String,
    pub preferred_username: String,
    pub iat: u64,
    pub exp: u64,
}

/// Why a request is not authenticated. The messages never include the token.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    #[error(
        "authentication required: send Authorization: Bearer <token> or the zrocket_token cookie"
    )]
    Missing,
    #[error("the Authorization header must be \"Bearer <token>\"")]
    BadScheme,
    #[error("the token is malformed")]
    Malformed,
    #[error("the token's algorithm must be HS256")]
    Algorithm,
    #[error("the token's signature is invalid")]
    Signature,
    #[error("the token has expired")]
    Expired,
    #[error("the token was issued in the future")]
    NotYetValid,
}

impl IntoResponse for AuthError {
    fn into_response(self) -> Response {
        error_response(StatusCode::UNAUTHORIZED, &self.to_string())
    }
}

/// Signs and verifies tokens with the app's `AUTH_SECRET`.
pub struct Keys {
    secret: Vec<u8>,
    ttl_secs: u64,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keys(<redacted>)")
    }
}

pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Keys {
    pub fn new(secret: &str, ttl_secs: u64) -> Keys {
        Keys {
            secret: secret.as_bytes().to_vec(),
            ttl_secs,
        }
    }

    pub fn ttl_secs(&self) -> u64 {
        self.ttl_secs
    }

    fn mac(&self) -> HmacSha256 {
        // HMAC accepts keys of any length, so this cannot fail.
        <HmacSha256 as KeyInit>::new_from_slice(&self.secret).expect("HMAC takes any key length")
    }

    /// Issues a token for a user, valid from now for the configured lifetime.
    pub fn issue(&self, user_id: &str, name: &str, username: &str) -> String {
        let iat = now_secs();
        self.sign(&Claims {
            sub: user_id.to_string(),
            name: name.to_string(),
            preferred_username: username.to_string(),
            iat,
            exp: iat + self.ttl_secs,
        })
    }

    /// Signs arbitrary claims (tests use it to make expired tokens).
    pub fn sign(&self, claims: &Claims) -> String {
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).expect("claims serialise"));
        let signing_input = format!("{header}.{payload}");
        let mut mac = self.mac();
        mac.update(signing_input.as_bytes());
        let sig = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        format!("{signing_input}.{sig}")
    }

    /// Verifies signature, algorithm and lifetime; returns the claims.
    pub fn verify(&self, token: &str) -> Result<Claims, AuthError> {
        let mut parts = token.split('.');
        let (Some(h), Some(p), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(AuthError::Malformed);
        };
        let header: serde_json::Value = URL_SAFE_NO_PAD
            .decode(h)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or(AuthError::Malformed)?;
        if header.get("alg").and_then(|a| a.as_str()) != Some("HS256") {
            return Err(AuthError::Algorithm);
        }
        let sig = URL_SAFE_NO_PAD
            .decode(s)
            .map_err(|_| AuthError::Malformed)?;
        let mut mac = self.mac();
        mac.update(h.as_bytes());
        mac.update(b".");
        mac.update(p.as_bytes());
        mac.verify_slice(&sig).map_err(|_| AuthError::Signature)?;
        let claims: Claims = URL_SAFE_NO_PAD
            .decode(p)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or(AuthError::Malformed)?;
        if claims.sub.is_empty() {
            return Err(AuthError::Malformed);
        }
        let now = now_secs();
        if claims.exp + LEEWAY_SECS <= now {
            return Err(AuthError::Expired);
        }
        if claims.iat > now + LEEWAY_SECS {
            return Err(AuthError::NotYetValid);
        }
        Ok(claims)
    }
}

/// Finds the token: the `Authorization` header wins; the cookie is the fallback. A present
/// but malformed header is an error rather than a silent fallback to the cookie.
pub fn token_from_headers(headers: &HeaderMap) -> Result<String, AuthError> {
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        let value = value.to_str().map_err(|_| AuthError::BadScheme)?.trim();
        let (scheme, token) = value.split_once(' ').ok_or(AuthError::BadScheme)?;
        if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
            return Err(AuthError::BadScheme);
        }
        return Ok(token.trim().to_string());
    }
    cookie_value(headers, COOKIE_NAME).ok_or(AuthError::Missing)
}

/// Reads one cookie from all `Cookie` headers.
pub fn cookie_value(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, v)| *k == name && !v.is_empty())
        .map(|(_, v)| v.to_string())
}

/// The `Set-Cookie` value that stores a token.
pub fn set_cookie(token: &str, max_age_secs: u64) -> HeaderValue {
    HeaderValue::from_str(&format!(
        "{COOKIE_NAME}={token}; HttpOnly; SameSite=Lax; Path=/; Max-Age={max_age_secs}"
    ))
    .expect("a JWT is a valid header value")
}

/// The `Set-Cookie` value that removes the token.
pub fn clear_cookie() -> HeaderValue {
    HeaderValue::from_static("zrocket_token=; HttpOnly; SameSite=Lax; Path=/; Max-Age=0")
}

/// An authenticated caller, extracted from the request.
#[derive(Clone, Debug)]
pub struct AuthUser {
    pub claims: Claims,
    pub token: String,
}

impl AuthUser {
    pub fn id(&self) -> &str {
        &self.claims.sub
    }
}

/// Authenticates a request by its headers: finds the token and verifies it.
pub fn authenticate_headers(keys: &Keys, headers: &HeaderMap) -> Result<AuthUser, AuthError> {
    let token = token_from_headers(headers)?;
    let claims = keys.verify(&token)?;
    Ok(AuthUser { claims, token })
}

/// Any state that can hand out the keys (the app's `AppState` does) can authenticate.
impl<S> FromRequestParts<S> for AuthUser
where
    S: Send + Sync,
    Arc<Keys>: FromRef<S>,
{
    type Rejection = AuthError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, AuthError> {
        authenticate_headers(&Arc::<Keys>::from_ref(state), &parts.headers)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> Keys {
        Keys::new("test-secret-test-secret", 3600)
    }

    #[test]
    fn issue_then_verify() {
        let k = keys();
        let t = k.issue("u-alice", "Alice", "alice");
        let c = k.verify(&t).unwrap();
        assert_eq!(c.sub, "u-alice");
        assert_eq!(c.preferred_username, "alice");
        assert_eq!(c.exp - c.iat, 3600);
    }

    #[test]
    fn rejects_tampering_other_keys_expiry_and_alg_none() {
        let k = keys();
        let t = k.issue("u-alice", "Alice", "alice");
        assert_eq!(
            Keys::new("another-secret-value", 60).verify(&t),
            Err(AuthError::Signature)
        );
        // Swap in a payload claiming to be bob, keep alice's signature.
        let parts: Vec<&str> = t.split('.').collect();
        let forged_payload = URL_SAFE_NO_PAD.encode(
            serde_json::to_vec(&Claims {
                sub: "u-bob".into(),
                name: "Bob".into(),
                preferred_username: "bob".into(),
                iat: now_secs(),
                exp: now_secs() + 60,
            })
            .unwrap(),
        );
        let forged = format!("{}.{}.{}", parts[0], forged_payload, parts[2]);
        assert_eq!(k.verify(&forged), Err(AuthError::Signature));
        let none_header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#);
        assert_eq!(
            k.verify(&format!("{none_header}.{}.", parts[1])),
            Err(AuthError::Algorithm)
        );
        let expired = k.sign(&Claims {
            sub: "u-alice".into(),
            name: "A".into(),
            preferred_username: "alice".into(),
            iat: now_secs() - 7200,
            exp: now_secs() - 3600,
        });
        assert_eq!(k.verify(&expired), Err(AuthError::Expired));
        assert_eq!(k.verify("abc"), Err(AuthError::Malformed));
    }

    #[test]
    fn header_wins_over_cookie_and_cookie_is_parsed() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; zrocket_token=tok; b=2"),
        );
        assert_eq!(token_from_headers(&h).unwrap(), "tok");
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer hdr"),
        );
        assert_eq!(token_from_headers(&h).unwrap(), "hdr");
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic xyz"));
        assert_eq!(token_from_headers(&h), Err(AuthError::BadScheme));
        assert_eq!(
            token_from_headers(&HeaderMap::new()),
            Err(AuthError::Missing)
        );
    }
}
