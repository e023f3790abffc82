//! The session cookie: reading it from `Cookie` headers and writing `Set-Cookie`.
//!
//! `HttpOnly` keeps the token away from scripts, `SameSite=Lax` keeps other sites' forms from
//! sending it, `Path=/` makes it reach the API and (through zero-cache's cookie forwarding) the
//! Zero endpoints. `Secure` is added when the app is told it is served over HTTPS
//! (`COOKIE_SECURE`) or a trusted proxy says the request came over HTTPS.

use axum::http::{HeaderMap, HeaderValue, header};

use crate::config::Config;
use zerostack_spec::secret::Secret;

/// The cookie that holds the session token in the browser.
pub const COOKIE_NAME: &str = "zrocket_session";

/// Reads one cookie from all `Cookie` headers.
pub fn read(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, v)| *k == name && !v.is_empty())
        .map(|(_, v)| v.to_string())
}

/// Whether the cookie must be `Secure` for this request.
pub fn secure(config: &Config, headers: &HeaderMap) -> bool {
    config.cookie_secure
        || (config.trust_proxy
            && headers
                .get("x-forwarded-proto")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.split(',').next())
                .is_some_and(|p| p.trim().eq_ignore_ascii_case("https")))
}

fn attributes(secure: bool) -> &'static str {
    if secure {
        "HttpOnly; SameSite=Lax; Path=/; Secure"
    } else {
        "HttpOnly; SameSite=Lax; Path=/"
    }
}

/// The `Set-Cookie` value that stores a token.
pub fn set(token: &Secret, max_age_secs: u64, secure: bool) -> HeaderValue {
    HeaderValue::from_str(&format!(
        "{COOKIE_NAME}={}; {}; Max-Age={max_age_secs}",
        token.expose(),
        attributes(secure)
    ))
    .expect("a session token is a valid header value")
}

/// The `Set-Cookie` value that removes the token.
pub fn clear(secure: bool) -> HeaderValue {
    HeaderValue::from_str(&format!(
        "{COOKIE_NAME}=; {}; Max-Age=0",
        attributes(secure)
    ))
    .expect("a static header value")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_and_clear_carry_the_flags() {
        let v = set(&Secret::new("tok"), 60, false);
        assert_eq!(
            v.to_str().unwrap(),
            "zrocket_session=tok; HttpOnly; SameSite=Lax; Path=/; Max-Age=60"
        );
        assert!(
            set(&Secret::new("tok"), 60, true)
                .to_str()
                .unwrap()
                .contains("; Secure")
        );
        assert!(clear(true).to_str().unwrap().contains("Max-Age=0"));
    }
}
