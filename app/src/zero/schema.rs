//! ZRocket's Zero schema, table mappings and permissions: what `zrocket export` writes and
//! `GET /api/schema/*` serves, for the source server to load.
//!
//! The tables are described once, as data, and turned into the shared `zerostack_spec` types,
//! so the exported files are exactly what the source server parses. Several tables read the
//! same collection with disjoint filters (rooms by `t`, messages by `t`), and every message type
//! appears in exactly one filter, so each message is published in exactly one table (the tests
//! below and `tests/export.rs` check it).

use serde_json::{Value, json};
use zerostack_spec::filter::Filter;
use zerostack_spec::mapping::{TableMapping, TableMappings};
use zerostack_spec::pipeline::Pipeline;
use zerostack_spec::projection::Projection;
use zerostack_spec::schema::{ColumnSchema, RelationshipHop, Schema, TableSchema};
use zerostack_spec::{ColumnType, files};

use crate::db::{MESSAGES, ROOM_TYPES, ROOMS, SYSTEM_MESSAGE_TYPES, USER_MESSAGE_TYPE, USERS};

/// A column's Zero type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    String,
    Number,
    Boolean,
    Json,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::String => "string",
            Kind::Number => "number",
            Kind::Boolean => "boolean",
            Kind::Json => "json",
        }
    }

    pub fn column_type(self) -> ColumnType {
        match self {
            Kind::String => ColumnType::String,
            Kind::Number => ColumnType::Number,
            Kind::Boolean => ColumnType::Boolean,
            Kind::Json => ColumnType::Json,
        }
    }
}

/// One column: name (client = server), type, optional.
pub type Col = (&'static str, Kind, bool);

/// One Zero table and where it comes from.
#[derive(Clone, Debug)]
pub struct TableDef {
    pub name: &'static str,
    pub source: &'static str,
    /// A MongoDB filter (only `$eq` / `$in` on `t` are used).
    pub filter: Option<Value>,
    /// A pipeline instead of filter and projection: the table's rows are what the pipeline's
    /// `$project` makes of each document.
    pub pipeline: Option<Value>,
    pub columns: Vec<Col>,
}

/// One relationship hop list: (table, name, [(sourceField, destField, destTable, cardinality)]).
pub type RelDef = (
    &'static str,
    &'static str,
    Vec<(&'static str, &'static str, &'static str, &'static str)>,
);

use Kind::{Boolean as B, Json as J, Number as N, String as S};

const PK: &str = "_id";

fn room_columns(name_optional: bool) -> Vec<Col> {
    vec![
        ("_id", S, false),
        ("t", S, false),
        ("name", S, name_optional),
        ("topic", S, true),
        ("description", S, true),
        ("readOnly", B, true),
        ("archived", B, true),
        ("memberIds", J, false),
        ("usernames", J, false),
        ("messageCount", N, false),
        ("lastMessage", J, true),
        ("lastMessageAt", N, true),
        ("createdBy", S, true),
        ("createdAt", N, false),
        ("updatedAt", N, false),
    ]
}

/// The tables, in export order.
pub fn tables() -> Vec<TableDef> {
    let mut out = vec![TableDef {
        name: "users",
        source: USERS,
        filter: None,
        pipeline: None,
        columns: vec![
            ("_id", S, false),
            ("username", S, false),
            ("name", S, false),
            ("email", S, true),
            ("avatarUrl", S, true),
            ("bio", S, true),
            ("active", B, false),
            ("createdAt", N, false),
            ("updatedAt", N, false),
        ],
    }];
    for (t, table) in ROOM_TYPES {
        out.push(TableDef {
            name: table,
            source: ROOMS,
            filter: Some(json!({"t": {"$eq": t}})),
            pipeline: None,
            // Direct chats have no name of their own.
            columns: room_columns(t == "d"),
        });
    }
    out.push(TableDef {
        name: "userMessages",
        source: MESSAGES,
        filter: Some(json!({"t": {"$eq": USER_MESSAGE_TYPE}})),
        pipeline: None,
        columns: vec![
            ("_id", S, false),
            ("roomId", S, false),
            ("text", S, false),
            ("senderId", S, false),
            ("sender", J, false),
            ("hidden", B, true),
            ("pinned", B, true),
            ("editedAt", N, true),
            ("createdAt", N, false),
            ("updatedAt", N, false),
        ],
    });
    out.push(TableDef {
        name: "systemMessages",
        source: MESSAGES,
        filter: Some(json!({"t": {"$in": SYSTEM_MESSAGE_TYPES}})),
        pipeline: None,
        columns: vec![
            ("_id", S, false),
            ("roomId", S, false),
            ("t", S, false),
            ("data", J, true),
            ("createdAt", N, false),
            ("updatedAt", N, false),
        ],
    });
    // One row per element of `rooms.members`, with the id a subscription has
    // (`<roomId>:<userId>`, `db::subscription_id`), so rows and subscriptions name each other.
    // A pipeline rather than a mapping of `subscriptions`, so the rows come from the room
    // document itself: its members and its type change in one write.
    out.push(TableDef {
        name: "roomMembers",
        source: ROOMS,
        filter: None,
        pipeline: Some(json!([
            {"$unwind": "$members"},
            {"$project": {
                "_id": {"$concat": ["$_id", ":", "$members.userId"]},
                "roomId": "$_id",
                "userId": "$members.userId",
                "roomType": "$t",
                "joinedAt": "$members.joinedAt",
            }},
        ])),
        columns: vec![
            ("_id", S, false),
            ("roomId", S, false),
            ("userId", S, false),
            ("roomType", S, false),
            ("joinedAt", N, false),
        ],
    });
    out
}

/// The relationships, in export order.
pub fn relationships() -> Vec<RelDef> {
    let mut out: Vec<RelDef> = Vec::new();
    for (_, table) in ROOM_TYPES {
        out.push((
            table,
            "messages",
            vec![("_id", "roomId", "userMessages", "many")],
        ));
        out.push((
            table,
            "systemMessages",
            vec![("_id", "roomId", "systemMessages", "many")],
        ));
        out.push((
            table,
            "members",
            vec![("_id", "roomId", "roomMembers", "many")],
        ));
    }
    out.push((
        "roomMembers",
        "user",
        vec![("userId", "_id", "users", "one")],
    ));
    out.push((
        "userMessages",
        "senderUser",
        vec![("senderId", "_id", "users", "one")],
    ));
    out
}

/// The Zero table name for a room type.
pub fn room_table(t: &str) -> Option<&'static str> {
    ROOM_TYPES.iter().find(|(k, _)| *k == t).map(|(_, v)| *v)
}

/// The schema, built with the shared spec types.
pub fn schema() -> Schema {
    let mut schema = Schema::new();
    for t in tables() {
        let mut table = TableSchema::new(t.name);
        for (name, kind, optional) in &t.columns {
            let col = ColumnSchema::new(kind.column_type());
            table = table.column(*name, if *optional { col.optional() } else { col });
        }
        schema = schema.table(table.primary_key([PK]));
    }
    for (table, name, hops) in relationships() {
        let hops = hops
            .iter()
            .map(|(sf, df, dest, card)| RelationshipHop {
                source_field: vec![sf.to_string()],
                dest_field: vec![df.to_string()],
                dest_schema: dest.to_string(),
                cardinality: card.to_string(),
            })
            .collect();
        schema
            .relationships
            .entry(table.to_string())
            .or_default()
            .insert(name.to_string(), hops);
    }
    schema
}

/// A filter of the form `{t: {$eq: v}}` or `{t: {$in: [..]}}`, as the spec type.
fn to_filter(json: &Value) -> Filter {
    Filter::from_json(json).expect("the built-in filters are valid")
}

/// The table mappings (wrapped form `{version: 1, mappings, metadata}`), as the spec type.
pub fn mappings() -> TableMappings {
    let mut out = TableMappings::wrapped();
    for t in tables() {
        let m = match &t.pipeline {
            Some(p) => TableMapping::new(t.source)
                .pipeline(Pipeline::from_json(p).expect("the built-in pipelines are valid")),
            None => {
                let mut m = TableMapping::new(t.source)
                    .projection(Projection::include(t.columns.iter().map(|(c, _, _)| *c)));
                if let Some(f) = &t.filter {
                    m = m.filter(to_filter(f));
                }
                m
            }
        };
        out = out.with(t.name, m);
    }
    out.metadata =
        Some(json!({"application": "zrocket", "sourceVersion": env!("CARGO_PKG_VERSION")}));
    out
}

/// The schema as `JSON.stringify(schema)` would print it.
pub fn schema_json() -> Value {
    serde_json::to_value(schema()).expect("the schema serialises")
}

/// The wrapped mappings served over HTTP and written by `zrocket export`.
pub fn wrapped_mappings_json() -> Value {
    serde_json::to_value(mappings()).expect("the mappings serialise")
}

/// The unwrapped mappings, keyed by Zero table.
pub fn mappings_json() -> Value {
    serde_json::to_value(&mappings().mappings).expect("the mappings serialise")
}

/// Permissions: none; every read goes through named queries.
pub fn permissions_json() -> Value {
    Value::Null
}

/// The files `zrocket export` writes: (file name, content).
pub fn export_files() -> Vec<(&'static str, Value)> {
    vec![
        (files::SCHEMA, schema_json()),
        (files::TABLE_MAPPINGS, wrapped_mappings_json()),
        (files::PERMISSIONS, permissions_json()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_message_type_is_in_exactly_one_table() {
        let mappings = mappings_json();
        let mut all = vec![USER_MESSAGE_TYPE];
        all.extend(SYSTEM_MESSAGE_TYPES);
        for t in all {
            let hits: Vec<&String> = mappings
                .as_object()
                .unwrap()
                .iter()
                .filter(|(_, m)| m["source"] == MESSAGES)
                .filter(|(_, m)| {
                    let f = &m["filter"]["t"];
                    f["$eq"] == t
                        || f["$in"]
                            .as_array()
                            .is_some_and(|a| a.iter().any(|v| v == t))
                })
                .map(|(k, _)| k)
                .collect();
            assert_eq!(hits.len(), 1, "{t} is in {hits:?}");
        }
    }

    /// A plain table's projection, or a pipeline's last stage (a `$project`), names exactly
    /// the table's columns: nothing unpublished leaks, nothing published is missing.
    #[test]
    fn projections_list_exactly_the_columns() {
        let schema = schema_json();
        let mappings = mappings_json();
        for (name, table) in schema["tables"].as_object().unwrap() {
            let cols: Vec<&String> = table["columns"].as_object().unwrap().keys().collect();
            let m = &mappings[name];
            let proj = match m["pipeline"].as_array() {
                Some(stages) => &stages.last().unwrap()["$project"],
                None => &m["projection"],
            };
            let proj: Vec<&String> = proj.as_object().unwrap().keys().collect();
            assert_eq!(cols, proj, "{name}");
        }
    }

    #[test]
    fn room_members_is_a_pipeline_over_rooms_that_needs_pre_images() {
        let m = mappings();
        let members = m.get("roomMembers").unwrap();
        assert_eq!(members.source, ROOMS);
        assert!(members.filter.is_none() && members.projection.is_none());
        let pipeline = members.pipeline.as_ref().unwrap();
        assert!(pipeline.needs_pre_images(&["_id".to_string()]));
    }
}
