//! The Zero mutate endpoint, `POST /api/zero/mutate` (what zero-cache's `ZERO_MUTATE_URL` points
//! at): runs the custom mutators of a push, each in a MongoDB transaction together with Zero's
//! `lastMutationID` bookkeeping.
//!
//! zero-cache retries, batches and replays pushes, so every mutation runs in its own
//! transaction whose first write is the `$inc` of the client's `lastMutationID` (`bookkeeping`):
//! a duplicate becomes `alreadyProcessed`, a gap stops the request with `PushFailed
//! oooMutation`, and the data writes commit atomically with the counter. A write conflict runs
//! the transaction again (`domain::transaction::Retry`). An application error (a broken rule,
//! an unknown mutator, bad arguments) rolls back and is then recorded (counter + result row) in
//! a second transaction, because the client only learns of it through that replicated row.
//! Before the mutations: the caller is authenticated (`zero::auth`), a client group may only be
//! advanced by the user who created it (otherwise 403), and `pushVersion` must be 1;
//! `_zero_cleanupResults` entries delete acknowledged results instead of running a mutator.
//! This is the algorithm of Zero's own TypeScript server (`handleMutateRequest` in zero 1.9.0's
//! `zero-server` package), plus the retries, which MongoDB needs under concurrency.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use mongodb::ClientSession;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::api_error::error_response;
use crate::auth::AuthUser;
use crate::db::Db;
use crate::domain::commands::{Caller, Command};
use crate::domain::error::DomainError;
use crate::domain::transaction::{Retry, apply, begin, commit};
use crate::state::AppState;
use crate::zero::bookkeeping::{self, CLEANUP, MutationResult};

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PushBody {
    #[serde(rename = "clientGroupID")]
    client_group_id: String,
    mutations: Vec<MutationIn>,
    push_version: i64,
}

#[derive(Debug, Deserialize)]
struct MutationIn {
    id: i64,
    #[serde(rename = "clientID")]
    client_id: String,
    name: String,
    #[serde(default)]
    args: Vec<Value>,
}

impl MutationIn {
    fn arg(&self) -> Value {
        self.args.first().cloned().unwrap_or(Value::Null)
    }
    fn id_json(&self) -> Value {
        json!({"clientID": self.client_id, "id": self.id})
    }
}

/// Why a request stops before its last mutation.
enum Stop {
    OutOfOrder { expected: i64 },
    Database(String),
}

/// `POST /api/zero/mutate`.
///
/// The route's layer (`zero::auth::require_zero_caller`) has checked the API key and the
/// session; `user` is the caller it found.
pub async fn handler(State(state): State<AppState>, user: AuthUser, body: Bytes) -> Response {
    let raw: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return push_failed("parse", &format!("the body is not JSON: {e}"), vec![]),
    };
    let push: PushBody = match serde_json::from_value(raw.clone()) {
        Ok(p) => p,
        Err(e) => {
            return push_failed(
                "parse",
                &format!("invalid push body: {e}"),
                best_effort_ids(&raw),
            );
        }
    };
    let all_ids: Vec<Value> = push
        .mutations
        .iter()
        .filter(|m| m.name != CLEANUP)
        .map(MutationIn::id_json)
        .collect();
    if push.push_version != 1 {
        return push_failed(
            "unsupportedPushVersion",
            &format!(
                "pushVersion {} is not supported; expected 1",
                push.push_version
            ),
            all_ids,
        );
    }
    let caller = Caller {
        user_id: user.id().to_string(),
    };
    // A client group belongs to the user who created it; nobody else may advance its counters.
    match bookkeeping::owned_by_another_user(&state.db, &push.client_group_id, &caller.user_id)
        .await
    {
        Ok(false) => {}
        Ok(true) => {
            return error_response(
                StatusCode::FORBIDDEN,
                "this client group belongs to another user",
            );
        }
        Err(e) => {
            tracing::error!(error = %e, "mutate: client group lookup failed");
            return push_failed("database", "database error", all_ids);
        }
    }

    let mut responses = Vec::new();
    for (i, m) in push.mutations.iter().enumerate() {
        if m.name == CLEANUP {
            bookkeeping::cleanup(&state.db, &push.client_group_id, &m.arg()).await;
            continue;
        }
        match process_one(&state.db, &push.client_group_id, m, &caller).await {
            Ok(result) => responses.push(json!({"id": m.id_json(), "result": result})),
            Err(stop) => {
                let rest: Vec<Value> = push.mutations[i..]
                    .iter()
                    .filter(|m| m.name != CLEANUP)
                    .map(MutationIn::id_json)
                    .collect();
                return match stop {
                    Stop::OutOfOrder { expected } => push_failed(
                        "oooMutation",
                        &format!(
                            "Client {} sent mutation ID {} but expected {}",
                            m.client_id, m.id, expected
                        ),
                        rest,
                    ),
                    Stop::Database(msg) => push_failed("database", &msg, rest),
                };
            }
        }
    }
    Json(json!({"kind": "MutateResponse", "userID": caller.user_id, "mutations": responses}))
        .into_response()
}

fn push_failed(reason: &str, message: &str, mutation_ids: Vec<Value>) -> Response {
    tracing::warn!(reason, message, "mutate: push failed");
    Json(json!({
        "kind": "PushFailed",
        "origin": "server",
        "reason": reason,
        "message": message,
        "mutationIDs": mutation_ids,
    }))
    .into_response()
}

/// The mutation ids of a body that failed to parse as a whole, where readable.
fn best_effort_ids(raw: &Value) -> Vec<Value> {
    raw.get("mutations")
        .and_then(Value::as_array)
        .map(|ms| {
            ms.iter()
                .filter_map(|m| Some(json!({"clientID": m.get("clientID")?.as_str()?, "id": m.get("id")?.as_i64()?})))
                .collect()
        })
        .unwrap_or_default()
}

/// What the lmid check decided.
enum Check {
    Proceed,
    Done(Value),
}

async fn check(
    db: &Db,
    s: &mut ClientSession,
    cg: &str,
    m: &MutationIn,
    caller: &Caller,
) -> Result<Result<Check, Stop>, DomainError> {
    let next = bookkeeping::increment_lmid(db, s, cg, &m.client_id, &caller.user_id).await?;
    Ok(if m.id < next {
        Ok(Check::Done(json!({
            "error": "alreadyProcessed",
            "details": format!(
                "Ignoring mutation from {} with ID {} as it was already processed. Expected: {}",
                m.client_id, m.id, next
            ),
        })))
    } else if m.id > next {
        Err(Stop::OutOfOrder { expected: next })
    } else {
        Ok(Check::Proceed)
    })
}

/// An application error: message plus optional details.
struct AppError {
    message: String,
    details: Option<Value>,
}

impl From<DomainError> for AppError {
    fn from(e: DomainError) -> AppError {
        let kind = match &e {
            DomainError::Invalid(_) => "invalid",
            DomainError::Forbidden(_) => "forbidden",
            DomainError::NotFound(_) => "notFound",
            DomainError::Db(_) => "database",
        };
        AppError {
            message: e.to_string(),
            details: Some(json!({"kind": kind})),
        }
    }
}

/// Runs one mutation: Ok(result) to report, or Err to stop the request.
async fn process_one(db: &Db, cg: &str, m: &MutationIn, caller: &Caller) -> Result<Value, Stop> {
    let command = match Command::from_mutator(&m.name, m.arg()) {
        None => Err(AppError {
            message: format!("Mutator not found: {}", m.name),
            details: None,
        }),
        Some(Err(message)) => Err(AppError {
            message,
            details: Some(json!({"type": "InputValidationError"})),
        }),
        Some(Ok(c)) => Ok(c),
    };
    let app_error = match command {
        Err(e) => e,
        Ok(command) => match run_mutator(db, cg, m, caller, &command).await {
            Ok(outcome) => return outcome,
            Err(e) => e,
        },
    };
    tracing::info!(mutation = %m.name, client_id = %m.client_id, id = m.id, error = %app_error.message, "mutate: application error");
    record_app_error(db, cg, m, caller, app_error).await
}

/// The transaction of a mutation, retried on transient errors. `Err` = application error.
async fn run_mutator(
    db: &Db,
    cg: &str,
    m: &MutationIn,
    caller: &Caller,
    command: &Command,
) -> Result<Result<Value, Stop>, AppError> {
    let mut session = match db.client.start_session().await {
        Ok(s) => s,
        Err(e) => return Ok(Err(database_stop(e))),
    };
    let mut retry = Retry::default();
    let outcome = loop {
        let outcome = attempt_once(db, &mut session, cg, m, caller, command).await;
        if !retry.again(&outcome).await {
            break outcome;
        }
    };
    match outcome {
        Ok(decided) => Ok(decided),
        Err(e @ DomainError::Db(_)) => {
            tracing::error!(error = %e_source(&e), mutation = %m.name, "mutate: database error");
            Err(AppError {
                message: "the database could not apply this mutation".into(),
                details: Some(json!({"kind": "database"})),
            })
        }
        Err(e) => Err(e.into()),
    }
}

fn e_source(e: &DomainError) -> String {
    match e {
        DomainError::Db(e) => e.to_string(),
        other => other.to_string(),
    }
}

/// One attempt: begin, check the counter, apply, commit. Always ends the transaction.
async fn attempt_once(
    db: &Db,
    s: &mut ClientSession,
    cg: &str,
    m: &MutationIn,
    caller: &Caller,
    command: &Command,
) -> Result<Result<Value, Stop>, DomainError> {
    begin(s).await?;
    let result = async {
        match check(db, s, cg, m, caller).await? {
            Err(stop) => Ok(Err(stop)),
            Ok(Check::Done(v)) => Ok(Ok(Some(v))),
            Ok(Check::Proceed) => {
                apply(db, s, caller, command).await?;
                Ok(Ok(None))
            }
        }
    }
    .await;
    match result {
        // The counter matched and the writes succeeded: commit them together.
        Ok(Ok(None)) => {
            commit(s).await?;
            Ok(Ok(json!({})))
        }
        // alreadyProcessed / out of order: nothing to keep.
        Ok(other) => {
            let _ = s.abort_transaction().await;
            Ok(other.map(|v| v.expect("decided")))
        }
        Err(e) => {
            let _ = s.abort_transaction().await;
            Err(e)
        }
    }
}

fn database_stop(e: mongodb::error::Error) -> Stop {
    tracing::error!(error = %e, "mutate: database failure");
    Stop::Database("database error".into())
}

/// The second transaction after an application error: bump the counter and store the result.
async fn record_app_error(
    db: &Db,
    cg: &str,
    m: &MutationIn,
    caller: &Caller,
    error: AppError,
) -> Result<Value, Stop> {
    let mut result = json!({"error": "app", "message": error.message});
    if let Some(d) = error.details {
        result["details"] = d;
    }
    let mut session = db.client.start_session().await.map_err(database_stop)?;
    let mut retry = Retry::default();
    let outcome = loop {
        let outcome = record_attempt(db, &mut session, cg, m, caller, &result).await;
        if !retry.again(&outcome).await {
            break outcome;
        }
    };
    match outcome {
        Ok(decided) => decided,
        Err(e) => {
            let _ = session.abort_transaction().await;
            tracing::error!(error = %e_source(&e), "mutate: could not record an application error");
            Err(Stop::Database(
                "database error while recording a mutation error".into(),
            ))
        }
    }
}

/// One attempt at the recording transaction: bump and check the counter, write the result row,
/// commit. Aborts when there is nothing to record or the row write fails; a failed counter write
/// or commit is returned as it is.
async fn record_attempt(
    db: &Db,
    session: &mut ClientSession,
    cg: &str,
    m: &MutationIn,
    caller: &Caller,
    result: &Value,
) -> Result<Result<Value, Stop>, DomainError> {
    begin(session).await?;
    match check(db, session, cg, m, caller).await? {
        Err(stop) => {
            let _ = session.abort_transaction().await;
            return Ok(Err(stop));
        }
        Ok(Check::Done(v)) => {
            let _ = session.abort_transaction().await;
            return Ok(Ok(v));
        }
        Ok(Check::Proceed) => {}
    }
    let row = MutationResult {
        client_group_id: cg,
        client_id: &m.client_id,
        mutation_id: m.id,
        name: &m.name,
        args: &m.args,
        result,
    };
    if let Err(e) = bookkeeping::write_result(db, session, &row).await {
        let _ = session.abort_transaction().await;
        return Err(e.into());
    }
    commit(session).await?;
    Ok(Ok(result.clone()))
}
