//! `/changes/v0/stream`: the WebSocket zero-cache connects to. Checks the shared token, then the
//! query parameters, before the upgrade, then hands the socket to a replication session.
//!
//! Everything a client can get wrong in the handshake is answered here with a 4xx and a message
//! naming the parameter, so that no malformed handshake reaches a session (or MongoDB).

use std::sync::Arc;

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::{Query, State, WebSocketUpgrade};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use tracing::warn;

use crate::http::auth;
use crate::replication::session::{ConnectParams, serve_connection};
use crate::server_state::ServerState;

/// zero-cache names a PostgreSQL schema `<appID>_<shardNum>` after the app, and PostgreSQL keeps
/// 63 bytes of a name: with `_` and a shard number of up to 10 digits, 52 is the most that fits,
/// and a longer ID would silently collide with another.
const MAX_APP_ID_LEN: usize = 52;

pub async fn stream(
    State(state): State<Arc<ServerState>>,
    headers: HeaderMap,
    uri: Uri,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    if !auth::authorized(&state, &headers, &uri) {
        // zero-cache retries about every 25 ms, so warn at most once a minute.
        if state.refusal_warning_due() {
            warn!(
                "refused a change-stream connection: missing or wrong token (check the token in ZERO_UPSTREAM_DB)"
            );
        }
        return (StatusCode::UNAUTHORIZED, "missing or wrong token\n").into_response();
    }
    let params = match parse_params(&uri) {
        Ok(p) => p,
        Err(message) => return (StatusCode::BAD_REQUEST, format!("{message}\n")).into_response(),
    };
    let ws = match ws {
        Ok(ws) => ws,
        // Axum's own 4xx (not a GET, no `Upgrade: websocket`, no key, …) with its message.
        Err(rejection) => return rejection.into_response(),
    };
    // zero-cache's `ws` client caps messages at 100 MiB; ours are far smaller.
    ws.max_message_size(64 << 20)
        .on_upgrade(move |socket| serve_connection(socket, params, state))
}

/// The handshake's parameters, or a message naming the one that is wrong. The message never
/// contains a value the client sent (one of them is the token).
pub fn parse_params(uri: &Uri) -> Result<ConnectParams, String> {
    let Query(params) = Query::<ConnectParams>::try_from_uri(uri).map_err(|e| {
        // The deserializer's text names the field and the problem ("shardNum: invalid digit
        // found in string", "duplicate field `appID`"), not the value.
        format!(
            "/changes/v0/stream: bad query string: {}",
            e.body_text()
                .trim_start_matches("Failed to deserialize query string: ")
        )
    })?;
    check_app_id(&params.app_id)?;
    Ok(params)
}

/// zero-cache's own rule for an app ID (`ALLOWED_APP_ID_CHARACTERS` in its `types/shards`).
fn check_app_id(app_id: &str) -> Result<(), String> {
    if app_id.is_empty()
        || !app_id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        return Err(
            "/changes/v0/stream: appID may only consist of lower-case letters, numbers and the underscore (ZERO_APP_ID)".into(),
        );
    }
    if app_id.len() > MAX_APP_ID_LEN {
        return Err(format!(
            "/changes/v0/stream: appID is {} characters long; at most {MAX_APP_ID_LEN} are allowed",
            app_id.len()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(query: &str) -> Result<ConnectParams, String> {
        parse_params(&format!("/changes/v0/stream?{query}").parse().unwrap())
    }

    #[test]
    fn reads_what_zero_cache_sends() {
        let p = parse("appID=zrocket&shardNum=3&lastWatermark=9hoh3pghfdt&replicaVersion=9hoh3pghfdt&token=s3cr3t-Tk").unwrap();
        assert_eq!((p.app_id.as_str(), p.shard_num), ("zrocket", 3));
        assert_eq!(p.last_watermark.as_deref(), Some("9hoh3pghfdt"));
        assert!(p.token.as_ref().unwrap().matches("s3cr3t-Tk"));
        let p = parse("").unwrap();
        assert_eq!((p.app_id.as_str(), p.shard_num), ("zero", 0));
        assert!(p.last_watermark.is_none() && p.token.is_none());
    }

    #[test]
    fn debug_of_the_parameters_hides_the_token() {
        let p = parse("appID=zero&token=s3cr3t-Tk-%C3%A9").unwrap();
        let shown = format!("{p:?}");
        assert!(!shown.contains("s3cr3t"), "{shown}");
        assert!(shown.contains("zero"), "the rest is still shown: {shown}");
    }

    #[test]
    fn bad_parameters_are_named_and_their_values_not_echoed() {
        for (query, names) in [
            ("shardNum=zz-qx", "shardNum"),
            ("shardNum=99999999999999999999", "shardNum"),
            ("shardNum=-1", "shardNum"),
            ("appID=a&appID=b", "appID"),
            ("token=a-qx&token=b-qx", "token"),
            ("appID=Upper-qx", "appID"),
            ("appID=%C3%A9t%C3%A9", "appID"),
            ("appID=", "appID"),
        ] {
            let e = parse(query).unwrap_err();
            assert!(e.contains(names), "{query}: {e}");
            assert!(!e.contains("qx") && !e.contains('é'), "{query} echoed: {e}");
        }
        let long = "a".repeat(MAX_APP_ID_LEN + 1);
        let e = parse(&format!("appID={long}")).unwrap_err();
        assert!(e.contains("at most"), "{e}");
        assert!(parse(&format!("appID={}", &long[1..])).is_ok());
    }
}
