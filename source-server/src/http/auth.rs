//! The shared source token on HTTP: one check for every route that needs it.
//!
//! zero-cache can only put the token in the URL (`ZERO_UPSTREAM_DB=ws://…?token=…`, it sends no
//! headers), while people and scripts reading `/metadata/*` would rather send a header, so both
//! `?token=` and `Authorization: Bearer` are accepted everywhere. `/metadata/*` shows the
//! permissions and table mappings, so it is guarded like the stream; `/health`, `/ready` and
//! `/metrics` stay open for probes and scrapers. A refusal never echoes what was presented.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use zerostack_spec::secret::Secret;

use crate::server_state::ServerState;

/// Only `token` is read here; every other parameter is ignored (serde's default), so a stream
/// handshake's `appID`, `lastWatermark`, … do not disturb the check.
#[derive(Debug, Deserialize)]
struct TokenQuery {
    token: Option<Secret>,
}

/// What a request presents as the token: the bearer credential and the `token` query parameter.
/// A query string that cannot be read (say, `token` twice) presents nothing, so it is refused
/// rather than guessed at.
fn presented(headers: &HeaderMap, uri: &Uri) -> Vec<Secret> {
    let mut out = Vec::new();
    for value in headers.get_all(header::AUTHORIZATION) {
        let Ok(value) = value.to_str() else { continue };
        // RFC 9110: the scheme is case-insensitive and followed by one or more spaces. `get`
        // and `eq_ignore_ascii_case` keep this safe for any bytes a client sends.
        let Some((scheme, credential)) = value.split_once(' ') else {
            continue;
        };
        if scheme.eq_ignore_ascii_case("bearer") {
            out.push(Secret::new(credential.trim_matches(' ')));
        }
    }
    if let Ok(Query(q)) = Query::<TokenQuery>::try_from_uri(uri)
        && let Some(token) = q.token
    {
        out.push(token);
    }
    out
}

/// Whether the request carries the configured token (always, when none is configured).
pub fn authorized(state: &ServerState, headers: &HeaderMap, uri: &Uri) -> bool {
    if state.settings.source_token.is_none() {
        return true;
    }
    // Each candidate is compared in constant time; any one matching is enough.
    presented(headers, uri)
        .iter()
        .any(|t| state.authorized(Some(t.expose())))
}

/// The 401 of `/metadata/*`: says what to send, never what was sent.
pub fn unauthorized_json(path: &str) -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Bearer")],
        Json(json!({
            "error": "unauthorized",
            "message": format!(
                "{path} needs the source token (SOURCE_TOKEN): send `Authorization: Bearer <token>` or `?token=<token>`; the token given is missing or wrong"
            ),
        })),
    )
        .into_response()
}

/// Middleware for the routes that need the token.
pub async fn require_token(
    State(state): State<Arc<ServerState>>,
    request: Request,
    next: Next,
) -> Response {
    if authorized(&state, request.headers(), request.uri()) {
        return next.run(request).await;
    }
    unauthorized_json(request.uri().path())
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn tokens(auth: &[&str], uri: &str) -> Vec<String> {
        let mut headers = HeaderMap::new();
        for a in auth {
            headers.append(header::AUTHORIZATION, HeaderValue::from_str(a).unwrap());
        }
        presented(&headers, &uri.parse().unwrap())
            .iter()
            .map(|t| t.expose().to_string())
            .collect()
    }

    #[test]
    fn reads_a_bearer_header_and_the_query_parameter() {
        assert_eq!(tokens(&["Bearer abc"], "/metadata/status"), ["abc"]);
        assert_eq!(tokens(&["bearer  abc "], "/x"), ["abc"]);
        assert_eq!(tokens(&["Basic abc"], "/x"), Vec::<String>::new());
        assert_eq!(tokens(&["Bearer"], "/x"), Vec::<String>::new());
        assert_eq!(tokens(&[], "/x?appID=zero&token=t%C3%A9"), ["té"]);
        assert_eq!(tokens(&["Bearer h"], "/x?token=q"), ["h", "q"]);
    }

    #[test]
    fn an_unreadable_query_presents_nothing() {
        assert_eq!(tokens(&[], "/x?token=a&token=b"), Vec::<String>::new());
        assert_eq!(tokens(&[], "/x?token"), [""]);
    }
}
