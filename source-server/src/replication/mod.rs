//! MongoDB → Zero for one zero-cache connection: the stages between the two sides.
//!
//! - `session`: one connection from its query parameters to its close; it runs one of:
//! - `initial_sync`: the snapshot transaction of a connection without `lastWatermark`;
//! - `transactions`: streaming after a resume point; change events are grouped by MongoDB
//!   transaction and coalesced into Zero transactions;
//! - `row_changes`: one change event → the data messages of every table its collection feeds;
//! - `reset`: every reason to answer `reset-required` instead;
//! - `config_history`, `schema_apply`, `schema_status`: the configuration each replica has,
//!   applying what changed since in place (the diff itself is `zerostack_spec::schema_diff`,
//!   shared with the operator), and the report of it.

pub mod config_history;
pub mod initial_sync;
pub mod reset;
pub mod row_changes;
pub mod schema_apply;
pub mod schema_status;
pub mod session;
pub mod transactions;
