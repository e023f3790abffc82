//! What can go wrong in a command or a read: a broken rule, or the database.
//!
//! The variants say which rule kind was broken, not how it is reported: REST turns them into
//! 400/403/404/500 (`api_error`), the mutate endpoint into Zero application errors, and the
//! query endpoint into per-query errors.

use mongodb::error::TRANSIENT_TRANSACTION_ERROR;

/// A rule violation or a database failure.
#[derive(Debug, thiserror::Error)]
pub enum DomainError {
    /// Bad input (HTTP 400).
    #[error("{0}")]
    Invalid(String),
    /// Not allowed for this user (HTTP 403).
    #[error("{0}")]
    Forbidden(String),
    /// The thing does not exist (HTTP 404).
    #[error("{0}")]
    NotFound(String),
    /// MongoDB failed; the message is generic so nothing internal leaks.
    #[error("database error")]
    Db(#[from] mongodb::error::Error),
}

impl DomainError {
    /// A write conflict or similar: the whole transaction may be run again.
    pub fn is_transient(&self) -> bool {
        matches!(self, DomainError::Db(e) if e.contains_label(TRANSIENT_TRANSACTION_ERROR))
    }
}

/// The result of every domain operation.
pub type Result<T, E = DomainError> = std::result::Result<T, E>;
