//! The wire format of Zero's change-source protocol v0, as zero-cache 1.9.0 speaks it.
//!
//! Every downstream message is built here and nowhere else, so that each one is valid by
//! construction: zero-cache may silently drop an invalid change (and still ack its empty
//! transaction). Messages are rendered straight to JSON text because they are written to the
//! socket as text frames and the hot path should not build intermediate trees.

use std::borrow::Cow;

use serde::Serialize;
use serde_json::{Map, Value};

/// One column of a `create-table` spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnDef {
    pub name: String,
    /// A Postgres type name; zero-cache maps it to a ZQL type (`text`, `float8`, `int8`, `bool`, `json`).
    pub data_type: &'static str,
    pub not_null: bool,
}

/// A table as zero-cache's replica sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableDef {
    pub schema: String,
    pub name: String,
    pub columns: Vec<ColumnDef>,
    pub primary_key: Vec<String>,
}

impl TableDef {
    /// The `relation` object of data changes, rendered once per table.
    pub fn relation_json(&self) -> String {
        serde_json::json!({
            "schema": self.schema,
            "name": self.name,
            "rowKey": {"columns": self.primary_key},
        })
        .to_string()
    }

    /// SQLite index names are global to the replica file, so they include the schema.
    pub fn key_index_name(&self) -> String {
        format!("{}_{}_key", self.schema, self.name).replace('.', "_")
    }

    pub fn create_table(&self) -> String {
        let mut columns = Map::new();
        for (pos, c) in self.columns.iter().enumerate() {
            columns.insert(
                c.name.clone(),
                serde_json::json!({"pos": pos, "dataType": c.data_type, "notNull": c.not_null}),
            );
        }
        let msg = serde_json::json!(["data", {
            "tag": "create-table",
            "spec": {
                "schema": self.schema,
                "name": self.name,
                "columns": columns,
                "primaryKey": self.primary_key,
            },
            "metadata": {"rowKey": {"columns": self.primary_key}},
        }]);
        msg.to_string()
    }

    pub fn create_key_index(&self) -> String {
        let columns: Map<String, Value> = self
            .primary_key
            .iter()
            .map(|c| (c.clone(), Value::String("ASC".into())))
            .collect();
        serde_json::json!(["data", {
            "tag": "create-index",
            "spec": {
                "schema": self.schema,
                "tableName": self.name,
                "name": self.key_index_name(),
                "unique": true,
                "columns": columns,
            },
        }])
        .to_string()
    }
}

impl TableDef {
    /// `add-column` of one of this table's columns (by name), with the table's row key as its
    /// metadata; `None` if the table has no such column.
    pub fn add_column(&self, column: &str) -> Option<String> {
        let (pos, c) = self
            .columns
            .iter()
            .enumerate()
            .find(|(_, c)| c.name == column)?;
        Some(
            serde_json::json!(["data", {
                "tag": "add-column",
                "table": {"schema": self.schema, "name": self.name},
                "column": {"name": c.name, "spec": {"pos": pos, "dataType": c.data_type, "notNull": c.not_null}},
                "tableMetadata": {"rowKey": {"columns": self.primary_key}},
            }])
            .to_string(),
        )
    }

    pub fn drop_column(&self, column: &str) -> String {
        serde_json::json!(["data", {
            "tag": "drop-column",
            "table": {"schema": self.schema, "name": self.name},
            "column": column,
        }])
        .to_string()
    }
}

/// `drop-table` of a replica table (it may no longer be in any catalog).
pub fn drop_table(schema: &str, name: &str) -> String {
    serde_json::json!(["data", {"tag": "drop-table", "id": {"schema": schema, "name": name}}])
        .to_string()
}

pub fn begin(watermark: &str) -> String {
    let mut s = String::with_capacity(64);
    s.push_str(r#"["begin",{"tag":"begin"},{"commitWatermark":"#);
    push_json_str(&mut s, watermark);
    s.push_str("}]");
    s
}

pub fn commit(watermark: &str, commit_time_ms: u64) -> String {
    let mut s = String::with_capacity(80);
    s.push_str(r#"["commit",{"tag":"commit","commitTimeMs":"#);
    s.push_str(&commit_time_ms.to_string());
    s.push_str(r#"},{"watermark":"#);
    push_json_str(&mut s, watermark);
    s.push_str("}]");
    s
}

/// An upsert: zero-cache stores `insert` as `INSERT OR REPLACE`.
pub fn insert(relation_json: &str, row: &Map<String, Value>) -> String {
    row_change("insert", relation_json, None, row)
}

/// A whole-row update whose key did not change (`key: null`).
pub fn update(relation_json: &str, row: &Map<String, Value>) -> String {
    row_change("update", relation_json, Some("null"), row)
}

pub fn delete(relation_json: &str, key: &Map<String, Value>) -> String {
    let mut s = String::with_capacity(96 + relation_json.len());
    s.push_str(r#"["data",{"tag":"delete","relation":"#);
    s.push_str(relation_json);
    s.push_str(r#","key":"#);
    push_json(&mut s, key);
    s.push_str("}]");
    s
}

fn row_change(
    tag: &str,
    relation_json: &str,
    key: Option<&str>,
    row: &Map<String, Value>,
) -> String {
    let mut s = String::with_capacity(128 + relation_json.len());
    s.push_str(r#"["data",{"tag":""#);
    s.push_str(tag);
    s.push_str(r#"","relation":"#);
    s.push_str(relation_json);
    if let Some(key) = key {
        s.push_str(r#","key":"#);
        s.push_str(key);
    }
    s.push_str(r#","new":"#);
    push_json(&mut s, row);
    s.push_str("}]");
    s
}

pub fn reset_required(message: &str) -> String {
    serde_json::json!(["control", {"tag": "reset-required", "message": message}]).to_string()
}

fn push_json<T: Serialize + ?Sized>(s: &mut String, v: &T) {
    // Serializing a serde_json map or string cannot fail.
    s.push_str(&serde_json::to_string(v).expect("JSON values always serialize"));
}

fn push_json_str(s: &mut String, v: &str) {
    push_json(s, v)
}

/// An upstream message from zero-cache. Only `status` exists in v0: the ack of a commit (or of a
/// status we sent), meaning everything up to that watermark is durable in its change DB.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Upstream {
    Ack { watermark: String },
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("unexpected upstream message: {0}")]
pub struct UpstreamError(pub String);

pub fn parse_upstream(text: &str) -> Result<Upstream, UpstreamError> {
    // Typed and borrowed: zero-cache acks every commit, so this runs once per transaction.
    #[derive(serde::Deserialize)]
    struct Status<'a>(
        #[serde(borrow)] Cow<'a, str>,
        serde::de::IgnoredAny,
        #[serde(borrow)] Position<'a>,
    );
    #[derive(serde::Deserialize)]
    struct Position<'a> {
        #[serde(borrow)]
        watermark: Cow<'a, str>,
    }
    match serde_json::from_str::<Status>(text) {
        Ok(Status(tag, _, pos)) if tag == "status" => Ok(Upstream::Ack {
            watermark: pos.watermark.into_owned(),
        }),
        _ => Err(UpstreamError(text.chars().take(200).collect())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn items() -> TableDef {
        TableDef {
            schema: "public".into(),
            name: "items".into(),
            columns: vec![
                ColumnDef {
                    name: "id".into(),
                    data_type: "text",
                    not_null: true,
                },
                ColumnDef {
                    name: "title".into(),
                    data_type: "text",
                    not_null: false,
                },
            ],
            primary_key: vec!["id".into()],
        }
    }

    fn parse(s: &str) -> Value {
        serde_json::from_str(s).unwrap()
    }

    #[test]
    fn transaction_frames_match_the_protocol() {
        assert_eq!(
            parse(&begin("9hoh3pghfdt")),
            json!(["begin", {"tag": "begin"}, {"commitWatermark": "9hoh3pghfdt"}])
        );
        assert_eq!(
            parse(&commit("9hoh3pghfdt", 1795566166899)),
            json!(["commit", {"tag": "commit", "commitTimeMs": 1795566166899u64}, {"watermark": "9hoh3pghfdt"}])
        );
    }

    #[test]
    fn data_changes_carry_relation_and_row() {
        let t = items();
        let rel = t.relation_json();
        let row: Map<String, Value> = json!({"id": "a\"b", "title": null})
            .as_object()
            .unwrap()
            .clone();
        let relation = json!({"schema": "public", "name": "items", "rowKey": {"columns": ["id"]}});
        assert_eq!(
            parse(&insert(&rel, &row)),
            json!(["data", {"tag": "insert", "relation": relation, "new": {"id": "a\"b", "title": null}}])
        );
        assert_eq!(
            parse(&update(&rel, &row)),
            json!(["data", {"tag": "update", "relation": relation, "key": null, "new": {"id": "a\"b", "title": null}}])
        );
        let key: Map<String, Value> = json!({"id": "a"}).as_object().unwrap().clone();
        assert_eq!(
            parse(&delete(&rel, &key)),
            json!(["data", {"tag": "delete", "relation": relation, "key": {"id": "a"}}])
        );
    }

    #[test]
    fn int64_values_stay_exact() {
        let row: Map<String, Value> =
            serde_json::from_str(r#"{"id":"x","n":9007199254740993}"#).unwrap();
        let msg = insert(&items().relation_json(), &row);
        assert!(msg.contains("9007199254740993"), "{msg}");
    }

    #[test]
    fn schema_messages_declare_keys_not_null_and_a_unique_index() {
        let t = items();
        assert_eq!(
            parse(&t.create_table()),
            json!(["data", {"tag": "create-table", "spec": {"schema": "public", "name": "items",
                "columns": {"id": {"pos": 0, "dataType": "text", "notNull": true}, "title": {"pos": 1, "dataType": "text", "notNull": false}},
                "primaryKey": ["id"]}, "metadata": {"rowKey": {"columns": ["id"]}}}])
        );
        assert_eq!(
            parse(&t.create_key_index()),
            json!(["data", {"tag": "create-index", "spec": {"schema": "public", "tableName": "items", "name": "public_items_key", "unique": true, "columns": {"id": "ASC"}}}])
        );
        let clients = TableDef {
            schema: "zero_0".into(),
            name: "clients".into(),
            ..items()
        };
        assert_eq!(clients.key_index_name(), "zero_0_clients_key");
    }

    #[test]
    fn column_and_table_changes_match_the_protocol() {
        let t = items();
        assert_eq!(
            parse(&t.add_column("title").unwrap()),
            json!(["data", {"tag": "add-column", "table": {"schema": "public", "name": "items"},
                "column": {"name": "title", "spec": {"pos": 1, "dataType": "text", "notNull": false}},
                "tableMetadata": {"rowKey": {"columns": ["id"]}}}])
        );
        assert_eq!(t.add_column("nope"), None);
        assert_eq!(
            parse(&t.drop_column("title")),
            json!(["data", {"tag": "drop-column", "table": {"schema": "public", "name": "items"}, "column": "title"}])
        );
        assert_eq!(
            parse(&drop_table("public", "items")),
            json!(["data", {"tag": "drop-table", "id": {"schema": "public", "name": "items"}}])
        );
    }

    #[test]
    fn parses_acks_and_refuses_anything_else() {
        assert_eq!(
            parse_upstream(
                r#"["status",{"tag":"commit","commitTimeMs":1},{"watermark":"9hoh3pghfdu"}]"#
            ),
            Ok(Upstream::Ack {
                watermark: "9hoh3pghfdu".into()
            })
        );
        assert!(parse_upstream(r#"["begin",{},{}]"#).is_err());
        assert!(parse_upstream("not json").is_err());
    }
}
