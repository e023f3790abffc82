//! Zero's schema JSON: what `JSON.stringify(schema)` prints for a Zero 1.x schema.
//!
//! These types mirror that JSON one to one so that a schema read here serializes back to the same
//! shape (the app builds a [`Schema`] in Rust and exports it). Only the shape is checked here;
//! cross-references (primary keys, mappings) are checked in [`crate::resolve`].

use std::fmt;

use indexmap::IndexMap;
use serde::{Serialize, Serializer, ser::SerializeMap};
use serde_json::{Map, Value};

use crate::error::{Cx, child, deserialize_via_parser, item, kind_of};

/// A Zero column type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ColumnType {
    String,
    Number,
    Boolean,
    Json,
    Null,
}

impl ColumnType {
    pub fn as_str(self) -> &'static str {
        match self {
            ColumnType::String => "string",
            ColumnType::Number => "number",
            ColumnType::Boolean => "boolean",
            ColumnType::Json => "json",
            ColumnType::Null => "null",
        }
    }

    pub fn parse(s: &str) -> Option<ColumnType> {
        Some(match s {
            "string" => ColumnType::String,
            "number" => ColumnType::Number,
            "boolean" => ColumnType::Boolean,
            "json" => ColumnType::Json,
            "null" => ColumnType::Null,
            _ => return None,
        })
    }
}

impl fmt::Display for ColumnType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `{tables, relationships, ...flags}`.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Schema {
    pub tables: IndexMap<String, TableSchema>,
    pub relationships: IndexMap<String, IndexMap<String, Vec<RelationshipHop>>>,
    /// Other top-level keys (such as `enableLegacyQueries`), kept verbatim.
    #[serde(flatten)]
    pub extra: IndexMap<String, Value>,
}

impl Schema {
    pub fn new() -> Schema {
        Schema::default()
    }

    /// Adds a table under its own name.
    pub fn table(mut self, table: TableSchema) -> Schema {
        self.tables.insert(table.name.clone(), table);
        self
    }

    /// Parses a schema from JSON, reporting every problem at once.
    pub fn from_json(value: &Value) -> Result<Schema, String> {
        crate::error::standalone(|cx| parse(value, "$", cx))
    }
}

deserialize_via_parser!(Schema, parse);

/// `{name, columns, primaryKey, serverName?}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TableSchema {
    pub name: String,
    pub columns: IndexMap<String, ColumnSchema>,
    pub primary_key: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_name: Option<String>,
}

impl TableSchema {
    pub fn new(name: impl Into<String>) -> TableSchema {
        TableSchema {
            name: name.into(),
            columns: IndexMap::new(),
            primary_key: Vec::new(),
            server_name: None,
        }
    }
    pub fn column(mut self, name: impl Into<String>, column: ColumnSchema) -> TableSchema {
        self.columns.insert(name.into(), column);
        self
    }
    pub fn primary_key<S: Into<String>>(
        mut self,
        columns: impl IntoIterator<Item = S>,
    ) -> TableSchema {
        self.primary_key = columns.into_iter().map(Into::into).collect();
        self
    }
    /// Zero's `.from("name")`.
    pub fn from(mut self, server_name: impl Into<String>) -> TableSchema {
        self.server_name = Some(server_name.into());
        self
    }
}

/// `{type, optional, customType: null, serverName?}`.
#[derive(Debug, Clone, PartialEq)]
pub struct ColumnSchema {
    pub kind: ColumnType,
    pub optional: bool,
    pub server_name: Option<String>,
}

impl ColumnSchema {
    pub fn new(kind: ColumnType) -> ColumnSchema {
        ColumnSchema {
            kind,
            optional: false,
            server_name: None,
        }
    }
    pub fn string() -> ColumnSchema {
        ColumnSchema::new(ColumnType::String)
    }
    pub fn number() -> ColumnSchema {
        ColumnSchema::new(ColumnType::Number)
    }
    pub fn boolean() -> ColumnSchema {
        ColumnSchema::new(ColumnType::Boolean)
    }
    pub fn json() -> ColumnSchema {
        ColumnSchema::new(ColumnType::Json)
    }
    /// Zero's `.optional()`.
    pub fn optional(mut self) -> ColumnSchema {
        self.optional = true;
        self
    }
    /// Zero's `.from("name")`.
    pub fn from(mut self, server_name: impl Into<String>) -> ColumnSchema {
        self.server_name = Some(server_name.into());
        self
    }
}

impl Serialize for ColumnSchema {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("type", &self.kind)?;
        m.serialize_entry("optional", &self.optional)?;
        // Zero always prints `customType: null`: it is a type-only placeholder.
        m.serialize_entry("customType", &Value::Null)?;
        if let Some(name) = &self.server_name {
            m.serialize_entry("serverName", name)?;
        }
        m.end()
    }
}

/// One hop of a relationship: `{sourceField, destField, destSchema, cardinality}`.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RelationshipHop {
    pub source_field: Vec<String>,
    pub dest_field: Vec<String>,
    pub dest_schema: String,
    pub cardinality: String,
}

pub(crate) fn object<'v>(
    v: &'v Value,
    path: &str,
    what: &str,
    cx: &mut Cx<'_>,
) -> Option<&'v Map<String, Value>> {
    match v {
        Value::Object(m) => Some(m),
        other => {
            cx.err(
                path,
                format!("{what} must be an object, found {}", kind_of(other)),
            );
            None
        }
    }
}

pub(crate) fn string<'v>(v: &'v Value, path: &str, what: &str, cx: &mut Cx<'_>) -> Option<&'v str> {
    match v {
        Value::String(s) if !s.is_empty() => Some(s),
        Value::String(_) => {
            cx.err(path, format!("{what} must not be empty"));
            None
        }
        other => {
            cx.err(
                path,
                format!("{what} must be a string, found {}", kind_of(other)),
            );
            None
        }
    }
}

pub(crate) fn string_list(
    v: &Value,
    path: &str,
    what: &str,
    cx: &mut Cx<'_>,
) -> Option<Vec<String>> {
    let Value::Array(items) = v else {
        cx.err(
            path,
            format!("{what} must be an array of strings, found {}", kind_of(v)),
        );
        return None;
    };
    let mut out = Vec::with_capacity(items.len());
    for (i, it) in items.iter().enumerate() {
        out.push(string(it, &item(path, i), what, cx)?.to_string());
    }
    Some(out)
}

/// Parses Zero's schema JSON (not the legacy TableSpec export: see [`crate::legacy`]).
pub(crate) fn parse(v: &Value, path: &str, cx: &mut Cx<'_>) -> Option<Schema> {
    let root = object(v, path, "the schema", cx)?;
    let before = cx.errors.len();
    let mut schema = Schema::default();
    match root.get("tables") {
        None => cx.err(path, "the schema has no \"tables\""),
        Some(tables) => {
            let tp = child(path, "tables");
            if let Some(tables) = object(tables, &tp, "\"tables\"", cx) {
                for (name, t) in tables {
                    if let Some(t) = parse_table(name, t, &child(&tp, name), cx) {
                        schema.tables.insert(name.clone(), t);
                    }
                }
            }
        }
    }
    if let Some(rel) = root.get("relationships") {
        let rp = child(path, "relationships");
        if let Some(rel) = object(rel, &rp, "\"relationships\"", cx) {
            for (table, rels) in rel {
                let p = child(&rp, table);
                let Some(rels) = object(rels, &p, "a table's relationships", cx) else {
                    continue;
                };
                let mut out = IndexMap::new();
                for (name, hops) in rels {
                    match serde_json::from_value::<Vec<RelationshipHop>>(hops.clone()) {
                        Ok(h) => {
                            out.insert(name.clone(), h);
                        }
                        Err(e) => cx.err(
                            child(&p, name),
                            format!("a relationship must be an array of {{sourceField, destField, destSchema, cardinality}}: {e}"),
                        ),
                    }
                }
                schema.relationships.insert(table.clone(), out);
            }
        }
    }
    for (k, v) in root {
        if k != "tables" && k != "relationships" {
            schema.extra.insert(k.clone(), v.clone());
        }
    }
    (cx.errors.len() == before).then_some(schema)
}

fn parse_table(key: &str, v: &Value, path: &str, cx: &mut Cx<'_>) -> Option<TableSchema> {
    let t = object(v, path, "a table", cx)?;
    let before = cx.errors.len();
    let name = match t.get("name") {
        None => key.to_string(),
        Some(n) => string(n, &child(path, "name"), "the table name", cx)
            .unwrap_or(key)
            .to_string(),
    };
    if name != key {
        cx.err(
            child(path, "name"),
            format!("the table name {name:?} differs from its key {key:?}"),
        );
    }
    let server_name = t
        .get("serverName")
        .and_then(|s| string(s, &child(path, "serverName"), "serverName", cx))
        .map(str::to_string);
    let mut columns = IndexMap::new();
    match t.get("columns") {
        None => cx.err(path, "the table has no \"columns\""),
        Some(c) => {
            let cp = child(path, "columns");
            if let Some(c) = object(c, &cp, "\"columns\"", cx) {
                if c.is_empty() {
                    cx.err(&cp, "the table has no columns");
                }
                for (col, cv) in c {
                    if let Some(cs) = parse_column(cv, &child(&cp, col), cx) {
                        columns.insert(col.clone(), cs);
                    }
                }
            }
        }
    }
    let primary_key = match t.get("primaryKey") {
        None => {
            cx.err(path, "the table has no \"primaryKey\"");
            Vec::new()
        }
        Some(pk) => {
            string_list(pk, &child(path, "primaryKey"), "primaryKey", cx).unwrap_or_default()
        }
    };
    (cx.errors.len() == before).then_some(TableSchema {
        name,
        columns,
        primary_key,
        server_name,
    })
}

fn parse_column(v: &Value, path: &str, cx: &mut Cx<'_>) -> Option<ColumnSchema> {
    let c = object(v, path, "a column", cx)?;
    let tp = child(path, "type");
    let kind = match c.get("type") {
        None => {
            cx.err(path, "the column has no \"type\"");
            None
        }
        Some(Value::String(s)) => {
            let k = ColumnType::parse(s);
            if k.is_none() {
                cx.err(
                    &tp,
                    format!(
                        "unknown column type {s:?} (expected string, number, boolean, json or null)"
                    ),
                );
            }
            k
        }
        Some(other) => {
            cx.err(
                &tp,
                format!("the column type must be a string, found {}", kind_of(other)),
            );
            None
        }
    };
    let optional = match c.get("optional") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(other) => {
            cx.err(
                child(path, "optional"),
                format!(
                    "\"optional\" must be true or false, found {}",
                    kind_of(other)
                ),
            );
            false
        }
    };
    let server_name = c
        .get("serverName")
        .and_then(|s| string(s, &child(path, "serverName"), "serverName", cx))
        .map(str::to_string);
    Some(ColumnSchema {
        kind: kind?,
        optional,
        server_name,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample() -> Value {
        json!({
            "tables": {
                "room": {"name": "room",
                    "columns": {
                        "id": {"type": "string", "optional": false, "customType": null},
                        "memberIds": {"type": "json", "optional": true, "customType": null},
                        "createdAt": {"type": "number", "optional": false, "customType": null, "serverName": "created_at"}},
                    "primaryKey": ["id"],
                    "serverName": "rooms"}
            },
            "relationships": {
                "room": {"messages": [{"sourceField": ["id"], "destField": ["roomID"], "destSchema": "message", "cardinality": "many"}]}
            },
            "enableLegacyQueries": true
        })
    }

    #[test]
    fn round_trips_zero_schema_json() {
        let v = sample();
        let s = Schema::from_json(&v).unwrap();
        assert_eq!(
            s.tables["room"].columns.get_index(2).unwrap().0,
            "createdAt"
        );
        assert_eq!(
            s.tables["room"].columns["createdAt"].server_name.as_deref(),
            Some("created_at")
        );
        assert_eq!(serde_json::to_value(&s).unwrap(), v);
        let back: Schema = serde_json::from_value(v).unwrap();
        assert_eq!(back, s);
    }

    #[test]
    fn builds_from_rust() {
        let s = Schema::new().table(
            TableSchema::new("room")
                .column("id", ColumnSchema::string())
                .column("memberIds", ColumnSchema::json().optional())
                .column("createdAt", ColumnSchema::number().from("created_at"))
                .primary_key(["id"])
                .from("rooms"),
        );
        let mut expected = sample();
        expected
            .as_object_mut()
            .unwrap()
            .remove("enableLegacyQueries");
        expected["relationships"] = json!({});
        assert_eq!(serde_json::to_value(&s).unwrap(), expected);
    }

    #[test]
    fn reports_bad_shapes_with_paths() {
        let err = Schema::from_json(
            &json!({"tables": {"t": {"columns": {"a": {"type": "strin"}, "b": {"optional": 1}}}}}),
        )
        .unwrap_err();
        assert!(
            err.contains("$.tables.t.columns.a.type: unknown column type \"strin\""),
            "{err}"
        );
        assert!(
            err.contains("$.tables.t.columns.b: the column has no \"type\""),
            "{err}"
        );
        assert!(
            err.contains("$.tables.t.columns.b.optional: \"optional\" must be true or false"),
            "{err}"
        );
        assert!(
            err.contains("$.tables.t: the table has no \"primaryKey\""),
            "{err}"
        );
    }
}
