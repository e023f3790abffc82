//! Zero's bookkeeping contract between an app's mutate endpoint and the change source.
//!
//! zero-cache confirms a custom mutation only when it sees the client's `lastMutationID` move in
//! the replicated table `<app>_<shard>.clients`, and reports a mutation's application error
//! through `<app>_<shard>.mutations`. With MongoDB upstream, the app writes those rows into two
//! collections inside its mutation transactions and the source publishes them. Both sides read
//! the collection names, field names and table shapes from here, so the app cannot write a field
//! the source does not publish.

use crate::resolve::{ColumnSpec, TableSpec};
use crate::schema::ColumnType;

/// Default collection published as `<app>_<shard>.clients`.
pub const CLIENTS_COLLECTION: &str = "zero_clients";
/// Default collection published as `<app>_<shard>.mutations`.
pub const MUTATIONS_COLLECTION: &str = "zero_mutations";

/// Field (and replica column) names of the two tables.
pub mod field {
    /// The client group a client belongs to (both tables).
    pub const CLIENT_GROUP_ID: &str = "clientGroupID";
    /// The client (both tables).
    pub const CLIENT_ID: &str = "clientID";
    /// The last mutation id processed for a client (`clients`).
    pub const LAST_MUTATION_ID: &str = "lastMutationID";
    /// The user a client group belongs to (`clients`).
    pub const USER_ID: &str = "userID";
    /// The id of a recorded mutation (`mutations`).
    pub const MUTATION_ID: &str = "mutationID";
    /// The recorded mutation's name and arguments (`mutations`).
    pub const MUTATION: &str = "mutation";
    /// The recorded mutation's result, e.g. an application error (`mutations`).
    pub const RESULT: &str = "result";
}

/// Where the app keeps Zero's bookkeeping in MongoDB.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bookkeeping {
    /// Collection published as `<app>_<shard>.clients`.
    pub clients_collection: String,
    /// Collection published as `<app>_<shard>.mutations`.
    pub mutations_collection: String,
}

impl Default for Bookkeeping {
    fn default() -> Self {
        Bookkeeping {
            clients_collection: CLIENTS_COLLECTION.into(),
            mutations_collection: MUTATIONS_COLLECTION.into(),
        }
    }
}

/// Whether a bookkeeping column holds a 64-bit counter (published as `int8`, not `float8`).
pub fn is_counter(column: &str) -> bool {
    column == field::LAST_MUTATION_ID || column == field::MUTATION_ID
}

fn column(name: &str, kind: ColumnType, optional: bool) -> ColumnSpec {
    ColumnSpec {
        name: name.into(),
        server_name: name.into(),
        kind,
        optional,
    }
}

impl Bookkeeping {
    /// `<app>_<shard>.clients` and `.mutations` as tables read from the two collections.
    pub fn tables(&self, app_id: &str, shard_num: u32) -> [TableSpec; 2] {
        use field::*;
        let schema = format!("{app_id}_{shard_num}");
        [
            TableSpec {
                name: format!("{schema}.clients"),
                schema: schema.clone(),
                server_name: "clients".into(),
                source: self.clients_collection.clone(),
                filter: None,
                projection: None,
                columns: vec![
                    column(CLIENT_GROUP_ID, ColumnType::String, false),
                    column(CLIENT_ID, ColumnType::String, false),
                    column(LAST_MUTATION_ID, ColumnType::Number, false),
                    column(USER_ID, ColumnType::String, true),
                ],
                primary_key: vec![CLIENT_GROUP_ID.into(), CLIENT_ID.into()],
            },
            TableSpec {
                name: format!("{schema}.mutations"),
                schema,
                server_name: "mutations".into(),
                source: self.mutations_collection.clone(),
                filter: None,
                projection: None,
                columns: vec![
                    column(CLIENT_GROUP_ID, ColumnType::String, false),
                    column(CLIENT_ID, ColumnType::String, false),
                    column(MUTATION_ID, ColumnType::Number, false),
                    column(MUTATION, ColumnType::Json, true),
                    column(RESULT, ColumnType::Json, true),
                ],
                primary_key: vec![CLIENT_GROUP_ID.into(), CLIENT_ID.into(), MUTATION_ID.into()],
            },
        ]
    }
}
