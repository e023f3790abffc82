//! The JSON REST API: users, rooms, messages, seed, exports and health (sign-in is
//! `auth_api`'s).
//!
//! Handlers only translate HTTP to domain commands and back; the rules live in `domain`, so a
//! REST write and the equivalent Zero mutator behave the same. Errors are `api_error`'s
//! `{error: message}` with a 4xx status; database failures are a generic 500 (details go to the
//! log only).

use std::collections::HashMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::api_error::{ApiError, ApiResult};
use crate::auth::AuthUser;
use crate::db::to_api_json;
use crate::domain::commands::{
    Caller, Command, CreateRoom, DeleteMessage, EditMessage, InviteToRoom, RoomRef, SendMessage,
};
use crate::domain::transaction::execute;
use crate::domain::users::{get_user, search_users};
use crate::domain::{messages, rooms};
use crate::state::AppState;

fn body<T: DeserializeOwned>(bytes: &Bytes) -> ApiResult<T> {
    crate::api_error::json_body(bytes)
}

fn caller(user: &AuthUser) -> Caller {
    Caller {
        user_id: user.id().to_string(),
    }
}

fn created(v: Value) -> Response {
    (StatusCode::CREATED, Json(v)).into_response()
}

fn parse_limit(params: &HashMap<String, String>, default: i64, max: i64) -> ApiResult<i64> {
    match params
        .get("limit")
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
    {
        None => Ok(default),
        Some(s) => match s.parse::<i64>() {
            Ok(n) if (1..=max).contains(&n) => Ok(n),
            _ => Err(ApiError::bad_request(format!(
                "limit must be an integer from 1 to {max}, got {:?}",
                crate::config::clip(s, 40)
            ))),
        },
    }
}

// ---- users ---------------------------------------------------------------------------------

pub async fn me(State(state): State<AppState>, user: AuthUser) -> ApiResult {
    Ok(Json(to_api_json(&get_user(&state.db, user.id()).await?)).into_response())
}

pub async fn users(
    State(state): State<AppState>,
    _user: AuthUser,
    Query(params): Query<HashMap<String, String>>,
) -> ApiResult {
    let limit = parse_limit(&params, 20, 100)?;
    let q = params.get("q").map(String::as_str);
    if q.is_some_and(|q| q.chars().count() > 100) {
        return Err(ApiError::bad_request("q must be at most 100 characters"));
    }
    let users = search_users(&state.db, q, limit).await?;
    Ok(Json(users.iter().map(to_api_json).collect::<Vec<_>>()).into_response())
}

// ---- rooms ---------------------------------------------------------------------------------

pub async fn my_rooms(State(state): State<AppState>, user: AuthUser) -> ApiResult {
    let rooms = rooms::my_rooms(&state.db, user.id()).await?;
    Ok(Json(rooms.iter().map(to_api_json).collect::<Vec<_>>()).into_response())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreateRoomBody {
    #[serde(rename = "type")]
    room_type: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    topic: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    member_ids: Vec<String>,
}

fn new_id() -> String {
    bson::oid::ObjectId::new().to_hex()
}

pub async fn create_room(State(state): State<AppState>, user: AuthUser, bytes: Bytes) -> ApiResult {
    let b: CreateRoomBody = body(&bytes)?;
    let cmd = Command::CreateRoom(CreateRoom {
        id: new_id(),
        room_type: b.room_type,
        name: b.name,
        topic: b.topic,
        description: b.description,
        member_ids: b.member_ids,
    });
    Ok(created(execute(&state.db, &caller(&user), &cmd).await?))
}

pub async fn join_room(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
) -> ApiResult {
    let cmd = Command::JoinRoom(RoomRef { room_id: id });
    Ok(Json(execute(&state.db, &caller(&user), &cmd).await?).into_response())
}

pub async fn leave_room(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
) -> ApiResult {
    let cmd = Command::LeaveRoom(RoomRef { room_id: id });
    Ok(Json(execute(&state.db, &caller(&user), &cmd).await?).into_response())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct InviteBody {
    user_ids: Vec<String>,
}

pub async fn invite(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
    bytes: Bytes,
) -> ApiResult {
    let b: InviteBody = body(&bytes)?;
    let cmd = Command::InviteToRoom(InviteToRoom {
        room_id: id,
        user_ids: b.user_ids,
    });
    Ok(Json(execute(&state.db, &caller(&user), &cmd).await?).into_response())
}

// ---- messages ------------------------------------------------------------------------------

pub async fn room_messages(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> ApiResult {
    let limit = parse_limit(&params, 50, 200)?;
    let messages = messages::room_messages(&state.db, user.id(), &id, limit).await?;
    Ok(Json(messages.iter().map(to_api_json).collect::<Vec<_>>()).into_response())
}

#[derive(Deserialize)]
struct TextBody {
    text: String,
}

pub async fn send_message(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
    bytes: Bytes,
) -> ApiResult {
    // Any sender fields in the body are ignored: the sender is the token's user.
    let b: TextBody = body(&bytes)?;
    let cmd = Command::SendMessage(SendMessage {
        id: new_id(),
        room_id: id,
        text: b.text,
        created_at: None,
    });
    Ok(created(execute(&state.db, &caller(&user), &cmd).await?))
}

pub async fn edit_message(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
    bytes: Bytes,
) -> ApiResult {
    let b: TextBody = body(&bytes)?;
    let cmd = Command::EditMessage(EditMessage { id, text: b.text });
    Ok(Json(execute(&state.db, &caller(&user), &cmd).await?).into_response())
}

pub async fn delete_message(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
) -> ApiResult {
    let cmd = Command::DeleteMessage(DeleteMessage { id });
    Ok(Json(execute(&state.db, &caller(&user), &cmd).await?).into_response())
}

// ---- seed, exports, health -----------------------------------------------------------------

pub async fn seed(State(state): State<AppState>, user: AuthUser) -> ApiResult {
    tracing::info!(user_id = %user.id(), "seed requested");
    let report = crate::seed::run(&state.db).await?;
    Ok(Json(serde_json::to_value(report).unwrap_or(Value::Null)).into_response())
}

pub async fn schema_export() -> Response {
    Json(crate::zero::schema::schema_json()).into_response()
}

pub async fn table_mappings() -> Response {
    Json(crate::zero::schema::wrapped_mappings_json()).into_response()
}

pub async fn health(State(state): State<AppState>) -> Response {
    match state.db.ping().await {
        Ok(()) => Json(json!({"status": "ok"})).into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "health: MongoDB ping failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({"status": "unavailable", "error": "MongoDB is unreachable"})),
            )
                .into_response()
        }
    }
}
