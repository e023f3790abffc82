//! Everything Zero-specific: the two HTTP endpoints zero-cache calls (`mutate`, `query`), how
//! they authenticate (`auth`), the `lastMutationID` bookkeeping (`bookkeeping`), the AST builder
//! the query endpoint answers with (`ast`), and the schema the app exports for the source
//! server (`schema`).

pub mod ast;
pub mod auth;
pub mod bookkeeping;
pub mod mutate;
pub mod query;
pub mod schema;
