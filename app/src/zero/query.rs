//! The Zero query endpoint, `POST /api/zero/query` (what zero-cache's `ZERO_QUERY_URL` points
//! at): turns named queries `(name, args)` into ASTs for the caller.
//!
//! zero-cache runs the returned AST as it is (the app publishes `null` permissions, and they
//! would not apply to it anyway), so this is the only authority over what a client syncs.
//! Identity comes from the token, never from the arguments. Rooms other than public channels
//! are scoped by a membership `EXISTS` over `roomMembers` written into the AST, which zero-cache
//! keeps live: leaving a room hides it at once, not only at the next re-transform. The message
//! queries also look up the caller's access to the room at transform time
//! (`domain::access::read_access`): a public channel the caller is not in needs no membership,
//! a room they are not in gets an AST that matches nothing, and members (or a room whose
//! creation has not arrived yet) get the membership `EXISTS`. An error is reported for its query
//! alone (`error: "app"`), except a database failure, which fails the request
//! (`TransformFailed`).

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::auth::AuthUser;
use crate::db::Db;
use crate::domain::access::{Access, read_access};
use crate::domain::error::DomainError;
use crate::domain::validation::validate_id;
use crate::state::AppState;
use crate::zero::ast::{Ast, Condition, CorrelatedSubquery, Dir, Op};
use crate::zero::schema::room_table;

/// Every named query this server answers.
pub const QUERY_NAMES: [&str; 7] = [
    "rooms.mine",
    "rooms.publicChannels",
    "rooms.byId",
    "messages.byRoom",
    "messages.systemByRoom",
    "users.all",
    "users.byId",
];

pub const DEFAULT_MESSAGE_LIMIT: u64 = 50;
pub const MAX_MESSAGE_LIMIT: u64 = 200;

/// Why one query could not be transformed.
#[derive(Debug)]
pub enum QueryError {
    /// Reported to that query only (`error: "app"`).
    App {
        message: String,
        details: Option<Value>,
    },
    /// Fails the whole request (`TransformFailed`).
    Database(mongodb::error::Error),
}

impl From<DomainError> for QueryError {
    fn from(e: DomainError) -> QueryError {
        match e {
            DomainError::Db(e) => QueryError::Database(e),
            other => QueryError::App {
                message: other.to_string(),
                details: None,
            },
        }
    }
}

fn invalid(name: &str, problem: impl std::fmt::Display) -> QueryError {
    let message = format!("invalid arguments for {name}: {problem}");
    QueryError::App {
        details: Some(json!({"type": "InputValidationError", "message": message})),
        message,
    }
}

fn parse_args<T: for<'de> Deserialize<'de>>(name: &str, args: &Value) -> Result<T, QueryError> {
    let args = if args.is_null() {
        json!({})
    } else {
        args.clone()
    };
    serde_json::from_value(args).map_err(|e| invalid(name, e))
}

#[derive(Deserialize)]
struct TypeArgs {
    #[serde(rename = "type")]
    room_type: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ByIdArgs {
    #[serde(rename = "type")]
    room_type: String,
    room_id: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RoomMessagesArgs {
    room_id: String,
    #[serde(default)]
    limit: Option<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UserArgs {
    user_id: String,
}

#[derive(Deserialize)]
struct NoArgs {}

fn table_for(name: &str, room_type: &str) -> Result<&'static str, QueryError> {
    room_table(room_type).ok_or_else(|| {
        invalid(
            name,
            format!(
                "type must be \"d\", \"c\" or \"p\", got {:?}",
                crate::config::clip(room_type, 40)
            ),
        )
    })
}

fn check_id(name: &str, field: &str, id: &str) -> Result<(), QueryError> {
    validate_id(field, id).map_err(|e| invalid(name, e))
}

fn parse_limit(name: &str, limit: Option<Value>) -> Result<u64, QueryError> {
    match limit {
        None | Some(Value::Null) => Ok(DEFAULT_MESSAGE_LIMIT),
        Some(v) => match v.as_u64() {
            Some(n) if (1..=MAX_MESSAGE_LIMIT).contains(&n) => Ok(n),
            _ => Err(invalid(
                name,
                format!("limit must be an integer from 1 to {MAX_MESSAGE_LIMIT}, got {v}"),
            )),
        },
    }
}

/// `EXISTS roomMembers WHERE roomId = <parent field> AND userId = <user>`.
fn member_exists(parent_field: &str, user_id: &str) -> Condition {
    Condition::exists(CorrelatedSubquery::new(
        parent_field,
        "roomId",
        "zsubq_members",
        Ast::table("roomMembers").filter(Condition::eq("userId", user_id)),
    ))
}

/// Builds the AST of one named query for `user_id`.
pub async fn transform(
    db: &Db,
    user_id: &str,
    name: &str,
    args: &Value,
) -> Result<Ast, QueryError> {
    match name {
        "rooms.mine" => {
            let a: TypeArgs = parse_args(name, args)?;
            let table = table_for(name, &a.room_type)?;
            Ok(Ast::table(table)
                .filter(member_exists("_id", user_id))
                .order_by("lastMessageAt", Dir::Desc))
        }
        "rooms.publicChannels" => {
            let _: NoArgs = parse_args(name, args)?;
            Ok(Ast::table("channels").order_by("name", Dir::Asc))
        }
        "rooms.byId" => {
            let a: ByIdArgs = parse_args(name, args)?;
            let table = table_for(name, &a.room_type)?;
            check_id(name, "roomId", &a.room_id)?;
            let ast = Ast::table(table)
                .filter(Condition::eq("_id", a.room_id.as_str()))
                .limit(1);
            // Channels are public; the `channels` table only ever holds t = "c" rows.
            Ok(if a.room_type == "c" {
                ast
            } else {
                ast.filter(member_exists("_id", user_id))
            })
        }
        "messages.byRoom" | "messages.systemByRoom" => {
            let a: RoomMessagesArgs = parse_args(name, args)?;
            check_id(name, "roomId", &a.room_id)?;
            let limit = parse_limit(name, a.limit)?;
            let system = name == "messages.systemByRoom";
            let mut ast = Ast::table(if system {
                "systemMessages"
            } else {
                "userMessages"
            })
            .filter(Condition::eq("roomId", a.room_id.as_str()));
            if !system {
                ast = ast.filter(Condition::cmp("hidden", Op::IsNot, true));
            }
            ast = ast.order_by("createdAt", Dir::Desc).limit(limit);
            if !system {
                ast = ast.related(CorrelatedSubquery::new(
                    "senderId",
                    "_id",
                    "senderUser",
                    Ast::table("users"),
                ));
            }
            match read_access(db, user_id, &a.room_id).await? {
                Access::Public => Ok(ast),
                // Members, and a room that does not exist yet (created optimistically, its
                // mutation still on its way): readable while a membership row exists.
                Access::Member | Access::Missing => {
                    Ok(ast.filter(member_exists("roomId", user_id)))
                }
                Access::Denied => Ok(Ast {
                    where_: Some(Condition::none()),
                    related: vec![],
                    ..ast
                }),
            }
        }
        "users.all" => {
            let _: NoArgs = parse_args(name, args)?;
            Ok(Ast::table("users").order_by("username", Dir::Asc))
        }
        "users.byId" => {
            let a: UserArgs = parse_args(name, args)?;
            check_id(name, "userId", &a.user_id)?;
            Ok(Ast::table("users")
                .filter(Condition::eq("_id", a.user_id.as_str()))
                .limit(1))
        }
        other => Err(QueryError::App {
            message: format!("Query not found: {other}"),
            details: None,
        }),
    }
}

#[derive(Deserialize)]
struct QueryIn {
    id: String,
    name: String,
    #[serde(default)]
    args: Vec<Value>,
}

fn transform_failed(reason: &str, message: &str, ids: Vec<String>) -> Response {
    tracing::warn!(reason, message, "query: transform failed");
    Json(json!({
        "kind": "TransformFailed",
        "origin": "server",
        "reason": reason,
        "message": message,
        "queryIDs": ids,
    }))
    .into_response()
}

/// Reads `["transform", [{id, name, args}, ...]]`.
fn parse_body(body: &[u8]) -> Result<Vec<QueryIn>, String> {
    let v: Value =
        serde_json::from_slice(body).map_err(|e| format!("the body is not JSON: {e}"))?;
    let arr = v
        .as_array()
        .ok_or("the body must be [\"transform\", [...]]")?;
    match arr.as_slice() {
        [tag, queries] if tag == "transform" => {
            serde_json::from_value(queries.clone()).map_err(|e| format!("invalid query list: {e}"))
        }
        _ => Err("the body must be [\"transform\", [...]]".into()),
    }
}

/// `POST /api/zero/query`.
///
/// The route's layer (`zero::auth::require_zero_caller`) has checked the API key and the
/// session; `user` is the caller it found.
pub async fn handler(State(state): State<AppState>, user: AuthUser, body: Bytes) -> Response {
    let queries = match parse_body(&body) {
        Ok(q) => q,
        Err(message) => return transform_failed("parse", &message, vec![]),
    };
    let mut out = Vec::with_capacity(queries.len());
    for q in &queries {
        let args = q.args.first().cloned().unwrap_or(Value::Null);
        match transform(&state.db, user.id(), &q.name, &args).await {
            Ok(ast) => out.push(json!({"id": q.id, "name": q.name, "ast": ast.to_json()})),
            Err(QueryError::App { message, details }) => {
                let mut e = json!({"error": "app", "id": q.id, "name": q.name, "message": message});
                if let Some(d) = details {
                    e["details"] = d;
                }
                out.push(e);
            }
            Err(QueryError::Database(e)) => {
                tracing::error!(error = %e, query = %q.name, "query: database error");
                return transform_failed(
                    "database",
                    "database error",
                    queries.iter().map(|q| q.id.clone()).collect(),
                );
            }
        }
    }
    Json(json!({"kind": "QueryResponse", "userID": user.id(), "queries": out})).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_parsing() {
        assert_eq!(parse_body(br#"["transform", []]"#).unwrap().len(), 0);
        let q =
            parse_body(br#"["transform", [{"id":"q1","name":"users.all","args":[]}]]"#).unwrap();
        assert_eq!(q[0].name, "users.all");
        assert!(parse_body(br#"[{"id":"q1"}]"#).is_err());
        assert!(parse_body(b"nope").is_err());
    }

    #[test]
    fn limits() {
        assert_eq!(parse_limit("m", None).unwrap(), 50);
        assert_eq!(parse_limit("m", Some(json!(200))).unwrap(), 200);
        assert!(parse_limit("m", Some(json!(201))).is_err());
        assert!(parse_limit("m", Some(json!(0))).is_err());
        assert!(parse_limit("m", Some(json!("x"))).is_err());
    }
}
