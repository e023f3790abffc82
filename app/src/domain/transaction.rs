//! How a command runs: inside one MongoDB transaction, retried when MongoDB says it may be.
//!
//! Every write of the app goes through here. [`execute`] is the REST path (a transaction of its
//! own per command); the mutate endpoint opens its own transactions, because Zero's
//! `lastMutationID` bookkeeping must commit in the same one, and runs the command with
//! [`apply`]; the seed runs its inserts the same way. All of them retry by one rule, [`Retry`]:
//! a write conflict (`TransientTransactionError`) runs the whole transaction again, up to
//! [`MAX_ATTEMPTS`] attempts with a growing pause; and a commit whose outcome is unknown is
//! committed again ([`commit`]).

use std::time::Duration;

use mongodb::ClientSession;
use mongodb::error::UNKNOWN_TRANSACTION_COMMIT_RESULT;
use mongodb::options::{ReadConcern, WriteConcern};
use serde_json::Value;

use super::commands::{Caller, Command};
use super::error::{DomainError, Result};
use super::{messages, rooms};
use crate::db::Db;

/// How many times a transaction is run when MongoDB reports a transient error.
pub const MAX_ATTEMPTS: u32 = 5;

/// Starts a transaction with majority guarantees.
pub async fn begin(session: &mut ClientSession) -> mongodb::error::Result<()> {
    session
        .start_transaction()
        .read_concern(ReadConcern::snapshot())
        .write_concern(WriteConcern::majority())
        .await
}

/// Commits, retrying while the outcome is unknown (the commit itself is idempotent).
pub async fn commit(session: &mut ClientSession) -> mongodb::error::Result<()> {
    let mut tries = 0;
    loop {
        match session.commit_transaction().await {
            Err(e)
                if e.contains_label(UNKNOWN_TRANSACTION_COMMIT_RESULT) && tries < MAX_ATTEMPTS =>
            {
                tries += 1;
            }
            other => return other,
        }
    }
}

/// A short, growing pause between attempts.
async fn backoff(attempt: u32) {
    tokio::time::sleep(Duration::from_millis(10 * 2u64.pow(attempt.min(6)))).await;
}

/// The one retry rule of the app. Counts the attempts at one transaction and, after each, says
/// whether to run the whole transaction again: only after a transient error (a write conflict),
/// at most [`MAX_ATTEMPTS`] attempts in all, with a growing pause before the next.
///
/// ```text
/// let mut retry = Retry::default();
/// let outcome = loop {
///     let outcome = one_attempt(&mut session).await;
///     if !retry.again(&outcome).await { break outcome; }
/// };
/// ```
#[derive(Debug, Default)]
pub struct Retry {
    attempts: u32,
}

impl Retry {
    /// Counts the attempt that ended with `outcome`; true (after the pause) when it is to be run
    /// again.
    pub async fn again<T>(&mut self, outcome: &Result<T>) -> bool {
        self.attempts += 1;
        let again = matches!(outcome, Err(e) if e.is_transient()) && self.attempts < MAX_ATTEMPTS;
        if again {
            tracing::debug!(
                attempt = self.attempts,
                "transient transaction error, retrying"
            );
            backoff(self.attempts).await;
        }
        again
    }
}

/// Ends the transaction an attempt ran in: commits when the attempt succeeded, aborts when it
/// failed.
pub async fn end<T>(session: &mut ClientSession, outcome: Result<T>) -> Result<T> {
    match outcome {
        Ok(v) => commit(session).await.map(|_| v).map_err(DomainError::from),
        Err(e) => {
            let _ = session.abort_transaction().await;
            Err(e)
        }
    }
}

/// Runs a command in its own transaction (the REST path), retrying transient failures.
pub async fn execute(db: &Db, caller: &Caller, cmd: &Command) -> Result<Value> {
    let mut session = db.client.start_session().await?;
    let mut retry = Retry::default();
    loop {
        begin(&mut session).await?;
        let outcome = apply(db, &mut session, caller, cmd).await;
        let outcome = end(&mut session, outcome).await;
        if !retry.again(&outcome).await {
            return outcome;
        }
    }
}

/// Runs a command inside the caller's open transaction. Returns the affected document as API
/// JSON. Nothing here commits or aborts.
pub async fn apply(
    db: &Db,
    s: &mut ClientSession,
    caller: &Caller,
    cmd: &Command,
) -> Result<Value> {
    match cmd {
        Command::SendMessage(c) => messages::send_message(db, s, caller, c).await,
        Command::EditMessage(c) => messages::edit_message(db, s, caller, c).await,
        Command::DeleteMessage(c) => messages::delete_message(db, s, caller, c).await,
        Command::CreateRoom(c) => rooms::create_room(db, s, caller, c).await,
        Command::JoinRoom(c) => rooms::join_room(db, s, caller, &c.room_id).await,
        Command::LeaveRoom(c) => rooms::leave_room(db, s, caller, &c.room_id).await,
        Command::InviteToRoom(c) => rooms::invite(db, s, caller, c).await,
    }
}
