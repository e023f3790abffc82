//! The earlier TypeScript source's "TableSpec export" schema format.
//!
//! `{version, tables: [{name, primaryKey, schema, columns: {c: {pos, dataType, notNull}},
//! tableMapping?}], metadata}`, served by the old app at `/api/schema/export`. Users switching
//! over bring these files, so they are read and translated into a Zero [`Schema`] plus the
//! mappings embedded in them.

use indexmap::IndexMap;
use serde_json::Value;

use crate::error::{Cx, child, item, kind_of};
use crate::mapping::{self, TableMapping};
use crate::schema::{ColumnSchema, ColumnType, Schema, TableSchema, object, string, string_list};

/// True when `v` has this format's shape (`tables` is an array rather than an object).
pub(crate) fn is_legacy(v: &Value) -> bool {
    matches!(v.get("tables"), Some(Value::Array(_)))
}

/// Maps a PostgreSQL-ish `dataType` to a Zero column type.
pub fn column_type(data_type: &str) -> Option<ColumnType> {
    let t = data_type.trim().to_ascii_lowercase();
    Some(match t.as_str() {
        "text" | "varchar" | "character varying" | "char" | "character" | "uuid" | "string" => {
            ColumnType::String
        }
        "numeric" | "decimal" | "float4" | "float8" | "real" | "double" | "double precision"
        | "number" | "integer" | "bigint" | "smallint" => ColumnType::Number,
        _ if t.starts_with("int") || t.starts_with("double") || t.starts_with("varchar") => {
            if t.starts_with("varchar") {
                ColumnType::String
            } else {
                ColumnType::Number
            }
        }
        "bool" | "boolean" => ColumnType::Boolean,
        "json" | "jsonb" => ColumnType::Json,
        _ => return None,
    })
}

/// A mapping embedded in a legacy table, with its JSON path.
pub(crate) struct Embedded {
    pub table: String,
    pub mapping: TableMapping,
    pub path: String,
}

/// Translates the legacy format. Returns the schema, the JSON path of each table and the
/// embedded mappings.
pub(crate) fn parse(
    v: &Value,
    path: &str,
    cx: &mut Cx<'_>,
) -> Option<(Schema, IndexMap<String, String>, Vec<Embedded>)> {
    let root = object(v, path, "the schema", cx)?;
    let before = cx.errors.len();
    let tp = child(path, "tables");
    let Some(Value::Array(tables)) = root.get("tables") else {
        return None;
    };
    let mut schema = Schema::default();
    let mut paths = IndexMap::new();
    let mut embedded = Vec::new();
    for (i, t) in tables.iter().enumerate() {
        let p = item(&tp, i);
        let Some(t) = object(t, &p, "a table", cx) else {
            continue;
        };
        let name = match t.get("name") {
            Some(n) => string(n, &child(&p, "name"), "the table name", cx),
            None => {
                cx.err(&p, "the table has no \"name\"");
                None
            }
        };
        let Some(name) = name else { continue };
        let primary_key = match t.get("primaryKey") {
            Some(pk) => {
                string_list(pk, &child(&p, "primaryKey"), "primaryKey", cx).unwrap_or_default()
            }
            None => {
                cx.err(&p, "the table has no \"primaryKey\"");
                Vec::new()
            }
        };
        let server_name = match t.get("schema") {
            None | Some(Value::Null) => None,
            Some(s) => match string(s, &child(&p, "schema"), "schema", cx) {
                Some("public") | None => None,
                Some(other) => Some(format!("{other}.{name}")),
            },
        };
        let cp = child(&p, "columns");
        let mut cols: Vec<(i64, usize, String, ColumnSchema)> = Vec::new();
        match t.get("columns") {
            None => cx.err(&p, "the table has no \"columns\""),
            Some(c) => {
                if let Some(c) = object(c, &cp, "\"columns\"", cx) {
                    for (order, (col, spec)) in c.iter().enumerate() {
                        let colp = child(&cp, col);
                        let Some(spec) = object(spec, &colp, "a column", cx) else {
                            continue;
                        };
                        let pos = match spec.get("pos") {
                            None | Some(Value::Null) => i64::MAX,
                            Some(Value::Number(n)) if n.as_i64().is_some() => {
                                n.as_i64().unwrap_or(i64::MAX)
                            }
                            Some(other) => {
                                cx.err(
                                    child(&colp, "pos"),
                                    format!("pos must be an integer, found {}", kind_of(other)),
                                );
                                continue;
                            }
                        };
                        let kind = match spec.get("dataType") {
                            Some(Value::String(dt)) => match column_type(dt) {
                                Some(k) => k,
                                None => {
                                    cx.err(child(&colp, "dataType"), format!("unknown dataType {dt:?} (expected text, varchar, numeric, float8, int*, double, bool, boolean, json or jsonb)"));
                                    continue;
                                }
                            },
                            Some(other) => {
                                cx.err(
                                    child(&colp, "dataType"),
                                    format!("dataType must be a string, found {}", kind_of(other)),
                                );
                                continue;
                            }
                            None => {
                                cx.err(&colp, "the column has no \"dataType\"");
                                continue;
                            }
                        };
                        // A primary key column is NOT NULL in PostgreSQL whatever notNull says.
                        let not_null = matches!(spec.get("notNull"), Some(Value::Bool(true)))
                            || primary_key.contains(col);
                        let mut column = ColumnSchema::new(kind);
                        column.optional = !not_null;
                        cols.push((pos, order, col.clone(), column));
                    }
                }
            }
        }
        cols.sort_by_key(|(pos, order, _, _)| (*pos, *order));
        let table = TableSchema {
            name: name.to_string(),
            columns: cols.into_iter().map(|(_, _, n, c)| (n, c)).collect(),
            primary_key,
            server_name,
        };
        if let Some(m) = t.get("tableMapping").filter(|m| !m.is_null()) {
            let mp = child(&p, "tableMapping");
            if let Some(mapping) = mapping::parse_entry(m, &mp, cx) {
                embedded.push(Embedded {
                    table: name.to_string(),
                    mapping,
                    path: mp,
                });
            }
        }
        if schema.tables.contains_key(name) {
            cx.err(child(&p, "name"), format!("table {name:?} is listed twice"));
            continue;
        }
        paths.insert(name.to_string(), p);
        schema.tables.insert(name.to_string(), table);
    }
    (cx.errors.len() == before).then_some((schema, paths, embedded))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn maps_data_types() {
        for (dt, t) in [
            ("text", ColumnType::String),
            ("varchar", ColumnType::String),
            ("numeric", ColumnType::Number),
            ("float8", ColumnType::Number),
            ("int8", ColumnType::Number),
            ("integer", ColumnType::Number),
            ("double precision", ColumnType::Number),
            ("bool", ColumnType::Boolean),
            ("BOOLEAN", ColumnType::Boolean),
            ("jsonb", ColumnType::Json),
        ] {
            assert_eq!(column_type(dt), Some(t), "{dt}");
        }
        assert_eq!(column_type("bytea"), None);
    }

    #[test]
    fn translates_tables_in_pos_order() {
        let v = json!({"version": 1, "tables": [
            {"name": "users", "primaryKey": ["_id"], "schema": "public",
             "columns": {"name": {"pos": 1, "dataType": "text", "notNull": false},
                         "_id": {"pos": 0, "dataType": "text", "notNull": false},
                         "age": {"pos": 2, "dataType": "numeric", "notNull": true}}},
            {"name": "chats", "primaryKey": ["_id"], "schema": "app",
             "columns": {"_id": {"pos": 0, "dataType": "text", "notNull": true}},
             "tableMapping": {"source": "rooms", "filter": {"t": "d"}}}
        ]});
        let mut errors = Vec::new();
        let (schema, paths, embedded) = parse(
            &v,
            "$",
            &mut Cx {
                origin: "s",
                errors: &mut errors,
            },
        )
        .unwrap();
        assert!(errors.is_empty());
        let users = &schema.tables["users"];
        assert_eq!(
            users.columns.keys().collect::<Vec<_>>(),
            ["_id", "name", "age"]
        );
        assert!(!users.columns["_id"].optional, "key columns are required");
        assert!(users.columns["name"].optional);
        assert!(!users.columns["age"].optional);
        assert_eq!(
            schema.tables["chats"].server_name.as_deref(),
            Some("app.chats")
        );
        assert_eq!(paths["chats"], "$.tables[1]");
        assert_eq!(embedded.len(), 1);
        assert_eq!(embedded[0].path, "$.tables[1].tableMapping");
        assert_eq!(embedded[0].mapping.source, "rooms");
    }

    #[test]
    fn reports_unknown_data_type() {
        let v = json!({"tables": [{"name": "u", "primaryKey": ["id"], "columns": {"id": {"pos": 0, "dataType": "bytea"}}}]});
        let mut errors = Vec::new();
        assert!(
            parse(
                &v,
                "$",
                &mut Cx {
                    origin: "s",
                    errors: &mut errors
                }
            )
            .is_none()
        );
        assert_eq!(
            errors[0].to_string(),
            "s: $.tables[0].columns.id.dataType: unknown dataType \"bytea\" (expected text, varchar, numeric, float8, int*, double, bool, boolean, json or jsonb)"
        );
    }
}
