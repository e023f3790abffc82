//! `/changes/v0/stream`: the WebSocket zero-cache connects to. Checks the shared token before the
//! upgrade, then hands the socket to a replication session.

use std::sync::Arc;

use axum::extract::{Query, State, WebSocketUpgrade};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use tracing::warn;

use crate::replication::session::{ConnectParams, serve_connection};
use crate::server_state::ServerState;

pub async fn stream(
    State(state): State<Arc<ServerState>>,
    Query(params): Query<ConnectParams>,
    ws: WebSocketUpgrade,
) -> Response {
    if !state.authorized(params.token.as_deref()) {
        // zero-cache retries about every 25 ms, so warn at most once a minute.
        if state.refusal_warning_due() {
            warn!(
                "refused a change-stream connection: missing or wrong token (check the token in ZERO_UPSTREAM_DB)"
            );
        }
        return (StatusCode::UNAUTHORIZED, "missing or wrong token\n").into_response();
    }
    // zero-cache's `ws` client caps messages at 100 MiB; ours are far smaller.
    ws.max_message_size(64 << 20)
        .on_upgrade(move |socket| serve_connection(socket, params, state))
}
