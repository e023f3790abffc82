//! The session cookie: reading it from `Cookie` headers and writing `Set-Cookie`.
//!
//! `HttpOnly` keeps the token away from scripts, `SameSite=Lax` keeps other sites' forms from
//! sending it, `Path=/` makes it reach the API and (through zero-cache's cookie forwarding) the
//! Zero endpoints. `Secure` is added when the app is told it is served over HTTPS
//! (`COOKIE_SECURE`) or a trusted proxy says the request came over HTTPS. `Domain` is added
//! only when `COOKIE_DOMAIN` is set: a host-only cookie set by `chat.example.com` never reaches
//! zero-cache at `zero.example.com`, so a stack on two host names shares their parent domain.

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

/// The attributes of the session cookie for one response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attributes {
    pub secure: bool,
    /// `Domain=`: the parent domain the app and zero-cache share (validated by the config).
    pub domain: Option<String>,
}

impl Attributes {
    /// The attributes for a response to this request.
    pub fn for_request(config: &Config, headers: &HeaderMap) -> Attributes {
        Attributes {
            secure: secure(config, headers),
            domain: config.cookie_domain.clone(),
        }
    }

    fn render(&self) -> String {
        let mut out = String::from("HttpOnly; SameSite=Lax; Path=/");
        if let Some(domain) = &self.domain {
            out.push_str("; Domain=");
            out.push_str(domain);
        }
        if self.secure {
            out.push_str("; Secure");
        }
        out
    }
}

/// Whether the cookie must be `Secure` for this request.
fn secure(config: &Config, headers: &HeaderMap) -> bool {
    config.cookie_secure
        || (config.trust_proxy
            && headers
                .get("x-forwarded-proto")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.split(',').next())
                .is_some_and(|p| p.trim().eq_ignore_ascii_case("https")))
}

/// The `Set-Cookie` value that stores a token.
pub fn set(token: &Secret, max_age_secs: u64, attributes: &Attributes) -> HeaderValue {
    HeaderValue::from_str(&format!(
        "{COOKIE_NAME}={}; {}; Max-Age={max_age_secs}",
        token.expose(),
        attributes.render()
    ))
    .expect("a session token and a validated domain are valid header values")
}

/// The `Set-Cookie` value that removes the token (same Domain, or the browser keeps it).
pub fn clear(attributes: &Attributes) -> HeaderValue {
    HeaderValue::from_str(&format!(
        "{COOKIE_NAME}=; {}; Max-Age=0",
        attributes.render()
    ))
    .expect("a validated domain is a valid header value")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_and_clear_carry_the_flags() {
        let plain = Attributes {
            secure: false,
            domain: None,
        };
        let v = set(&Secret::new("tok"), 60, &plain);
        assert_eq!(
            v.to_str().unwrap(),
            "zrocket_session=tok; HttpOnly; SameSite=Lax; Path=/; Max-Age=60"
        );
        let shared = Attributes {
            secure: true,
            domain: Some("example.com".into()),
        };
        assert_eq!(
            set(&Secret::new("tok"), 60, &shared).to_str().unwrap(),
            "zrocket_session=tok; HttpOnly; SameSite=Lax; Path=/; Domain=example.com; Secure; Max-Age=60"
        );
        let cleared = clear(&shared);
        assert!(cleared.to_str().unwrap().contains("Domain=example.com"));
        assert!(cleared.to_str().unwrap().contains("Max-Age=0"));
    }
}
