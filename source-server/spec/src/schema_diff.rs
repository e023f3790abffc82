//! What changed between the configuration a replica was built from and the loaded one: the
//! steps zero-cache can apply in place, or why it cannot.
//!
//! Pure (no MongoDB, no socket), so every kind of change is decided — and tested — here, and
//! `schema_apply` only carries the steps out. A replica table is identified by its replica name
//! (`schema.serverName`), the name zero-cache knows; a renamed client name alone changes nothing
//! in the replica. Whatever would change the identity or the type of values already replicated
//! (a primary key, a column type, how a key column is read, a pipeline) is refused: existing rows
//! could not be rewritten reliably by row changes, so that stays a full resync.
//!
//! It lives in the spec crate because two programs must classify a change the same way: the
//! source, which applies it, and the operator, which reports before a rollout whether it will
//! apply in place or make zero-cache resync. One function, one answer.

use std::collections::HashMap;
use std::fmt;

use crate::{Config, TableSpec};
use serde_json::Value;

/// One in-place change, in the order they are applied (drops, then creations, then rows).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// A replica table no table of the loaded configuration has any more.
    DropTable { schema: String, name: String },
    /// A column (server name) gone from `table` (Zero name in the loaded configuration).
    DropColumn { table: String, column: String },
    /// A table new to the replica: created with its key index, and every row inserted.
    CreateTable { table: String },
    /// A column (server name) new to an existing table; its rows are re-read afterwards.
    AddColumn { table: String, column: String },
    /// The rows of an existing table are read again: every kept row is written whole; with
    /// `filter_changed`, rows the old mapping kept and the new one does not are deleted.
    Refill {
        table: String,
        filter_changed: bool,
        /// Only columns were added (filter and projection as before): rows whose new columns
        /// are all null need no change, since `add-column` leaves them null.
        only_new_columns: bool,
        why: &'static str,
    },
    /// The permissions row is replaced.
    Permissions,
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::DropTable { schema, name } => write!(f, "drop table {schema}.{name}"),
            Step::DropColumn { table, column } => write!(f, "drop column {table}.{column}"),
            Step::CreateTable { table } => write!(f, "create table {table} with its rows"),
            Step::AddColumn { table, column } => write!(f, "add column {table}.{column}"),
            Step::Refill { table, why, .. } => write!(f, "rewrite the rows of {table} ({why})"),
            Step::Permissions => write!(f, "replace the permissions"),
        }
    }
}

/// Why a change cannot be applied in place: the replica is rebuilt instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotInPlace {
    #[error("the primary key of {table} changed from {old:?} to {new:?}")]
    PrimaryKeyChanged {
        table: String,
        old: Vec<String>,
        new: Vec<String>,
    },
    #[error("column {table}.{column} changed type from {old} to {new}")]
    ColumnTypeChanged {
        table: String,
        column: String,
        old: &'static str,
        new: &'static str,
    },
    #[error("key column {table}.{column} is read differently (its projection changed)")]
    KeyProjectionChanged { table: String, column: String },
    #[error("the pipeline of {table} changed")]
    PipelineChanged { table: String },
    #[error("{table} changed between a pipeline and a plain mapping")]
    MappingKindChanged { table: String },
    #[error("{table} now reads collection {new} instead of {old}")]
    SourceChanged {
        table: String,
        old: String,
        new: String,
    },
    #[error("the clients or mutations collection changed")]
    BookkeepingChanged,
}

/// The steps that turn a replica of `old` into one of `new`; empty when the replica is not
/// affected (e.g. only an export timestamp or a client-side name changed).
pub fn diff(old: &Config, new: &Config) -> Result<Vec<Step>, NotInPlace> {
    if old.bookkeeping != new.bookkeeping {
        return Err(NotInPlace::BookkeepingChanged);
    }
    let old_tables: HashMap<String, &TableSpec> =
        old.tables.iter().map(|t| (t.qualified_name(), t)).collect();
    let new_names: std::collections::HashSet<String> =
        new.tables.iter().map(|t| t.qualified_name()).collect();

    let mut drops = Vec::new();
    let mut creates = Vec::new();
    let mut rows = Vec::new();
    for o in &old.tables {
        if !new_names.contains(&o.qualified_name()) {
            drops.push(Step::DropTable {
                schema: o.schema.clone(),
                name: o.server_name.clone(),
            });
        }
    }
    for t in &new.tables {
        let Some(o) = old_tables.get(&t.qualified_name()) else {
            creates.push(Step::CreateTable {
                table: t.name.clone(),
            });
            continue;
        };
        let table = t.qualified_name();
        if o.primary_key != t.primary_key {
            return Err(NotInPlace::PrimaryKeyChanged {
                table,
                old: o.primary_key.clone(),
                new: t.primary_key.clone(),
            });
        }
        if o.source != t.source {
            return Err(NotInPlace::SourceChanged {
                table,
                old: o.source.clone(),
                new: t.source.clone(),
            });
        }
        let (om, nm) = (mapping_json(old, &o.name), mapping_json(new, &t.name));
        match (om.get("pipeline"), nm.get("pipeline")) {
            (None, None) => {}
            (Some(a), Some(b)) if a == b => {}
            (Some(_), Some(_)) => return Err(NotInPlace::PipelineChanged { table }),
            _ => return Err(NotInPlace::MappingKindChanged { table }),
        }
        let (op, np) = (om.get("projection"), nm.get("projection"));
        for key in &t.primary_key {
            let names = key_names(t, key);
            let entry = |p: Option<&Value>| {
                names
                    .iter()
                    .find_map(|n| p.and_then(|p| p.get(n.as_str())).cloned())
            };
            if entry(op) != entry(np) {
                return Err(NotInPlace::KeyProjectionChanged {
                    table,
                    column: key.clone(),
                });
            }
        }
        let mut added = false;
        for c in &t.columns {
            match o.column(&c.server_name) {
                Some(oc) if oc.kind != c.kind => {
                    return Err(NotInPlace::ColumnTypeChanged {
                        table,
                        column: c.server_name.clone(),
                        old: oc.kind.as_str(),
                        new: c.kind.as_str(),
                    });
                }
                Some(_) => {}
                None => {
                    added = true;
                    creates.push(Step::AddColumn {
                        table: t.name.clone(),
                        column: c.server_name.clone(),
                    });
                }
            }
        }
        for oc in &o.columns {
            if t.column(&oc.server_name).is_none() {
                drops.push(Step::DropColumn {
                    table: t.name.clone(),
                    column: oc.server_name.clone(),
                });
            }
        }
        let filter_changed = om.get("filter") != nm.get("filter");
        let why = if filter_changed {
            Some("its filter changed")
        } else if added {
            Some("new columns")
        } else if op != np {
            Some("its projection changed")
        } else {
            None
        };
        if let Some(why) = why {
            rows.push(Step::Refill {
                table: t.name.clone(),
                filter_changed,
                only_new_columns: added && !filter_changed && op == np,
                why,
            });
        }
    }
    let mut steps = drops;
    steps.extend(creates);
    steps.extend(rows);
    if old.permissions != new.permissions {
        steps.push(Step::Permissions);
    }
    Ok(steps)
}

/// The mapping of `table` as JSON (`{}` for a table read from its namesake collection).
fn mapping_json(config: &Config, table: &str) -> Value {
    config
        .mappings
        .get(table)
        .and_then(|m| serde_json::to_value(m).ok())
        .unwrap_or_else(|| Value::Object(Default::default()))
}

/// The names a projection may use for a key column: its server and its client name.
fn key_names(t: &TableSpec, key: &str) -> Vec<String> {
    let mut names = vec![key.to_string()];
    if let Some(c) = t.column(key)
        && c.name != key
    {
        names.push(c.name.clone());
    }
    names
}

#[cfg(test)]
mod tests {
    use crate::filter::Filter;
    use crate::mapping::{TableMapping, TableMappings};
    use crate::projection::Projection;
    use crate::schema::{ColumnSchema, Schema, TableSchema};
    use serde_json::json;

    use super::*;

    fn users(extra: Option<(&str, ColumnSchema)>) -> TableSchema {
        let t = TableSchema::new("users")
            .column("id", ColumnSchema::string())
            .column("name", ColumnSchema::string().optional());
        let t = match extra {
            Some((n, c)) => t.column(n, c),
            None => t,
        };
        t.primary_key(["id"])
    }

    fn rooms(name: &str) -> TableSchema {
        TableSchema::new(name)
            .column("id", ColumnSchema::string())
            .column("t", ColumnSchema::string())
            .primary_key(["id"])
    }

    fn room_mapping(kind: &str) -> TableMapping {
        TableMapping::new("rooms").filter(Filter::from_json(&json!({"t": kind})).unwrap())
    }

    fn config(schema: Schema, mappings: TableMappings, permissions: Option<Value>) -> Config {
        Config::from_parts(schema, mappings, permissions).unwrap()
    }

    fn base() -> Config {
        config(
            Schema::new().table(users(None)).table(rooms("chats")),
            TableMappings::plain().with("chats", room_mapping("d")),
            None,
        )
    }

    #[test]
    fn nothing_changed_means_no_steps() {
        assert_eq!(diff(&base(), &base()), Ok(vec![]));
    }

    #[test]
    fn a_new_table_is_created() {
        let new = config(
            Schema::new()
                .table(users(None))
                .table(rooms("chats"))
                .table(
                    TableSchema::new("items")
                        .column("id", ColumnSchema::string())
                        .primary_key(["id"]),
                ),
            TableMappings::plain().with("chats", room_mapping("d")),
            None,
        );
        assert_eq!(
            diff(&base(), &new),
            Ok(vec![Step::CreateTable {
                table: "items".into()
            }])
        );
    }

    #[test]
    fn a_new_table_in_a_discriminated_union_is_created() {
        let new = config(
            Schema::new()
                .table(users(None))
                .table(rooms("chats"))
                .table(rooms("channels")),
            TableMappings::plain()
                .with("chats", room_mapping("d"))
                .with("channels", room_mapping("c")),
            None,
        );
        assert_eq!(
            diff(&base(), &new),
            Ok(vec![Step::CreateTable {
                table: "channels".into()
            }])
        );
    }

    #[test]
    fn a_new_optional_column_is_added_and_its_rows_rewritten() {
        let new = config(
            Schema::new()
                .table(users(Some(("age", ColumnSchema::number().optional()))))
                .table(rooms("chats")),
            TableMappings::plain().with("chats", room_mapping("d")),
            None,
        );
        assert_eq!(
            diff(&base(), &new),
            Ok(vec![
                Step::AddColumn {
                    table: "users".into(),
                    column: "age".into()
                },
                Step::Refill {
                    table: "users".into(),
                    filter_changed: false,
                    only_new_columns: true,
                    why: "new columns"
                },
            ])
        );
    }

    #[test]
    fn a_dropped_table_and_a_dropped_column_are_dropped() {
        let old = config(
            Schema::new()
                .table(users(Some(("age", ColumnSchema::number().optional()))))
                .table(rooms("chats")),
            TableMappings::plain().with("chats", room_mapping("d")),
            None,
        );
        let new = config(
            Schema::new().table(users(None)),
            TableMappings::plain(),
            None,
        );
        assert_eq!(
            diff(&old, &new),
            Ok(vec![
                Step::DropTable {
                    schema: "public".into(),
                    name: "chats".into()
                },
                Step::DropColumn {
                    table: "users".into(),
                    column: "age".into()
                },
            ])
        );
    }

    #[test]
    fn a_changed_filter_rewrites_the_rows_and_deletes_the_others() {
        let new = config(
            Schema::new().table(users(None)).table(rooms("chats")),
            TableMappings::plain().with("chats", room_mapping("p")),
            None,
        );
        assert_eq!(
            diff(&base(), &new),
            Ok(vec![Step::Refill {
                table: "chats".into(),
                filter_changed: true,
                only_new_columns: false,
                why: "its filter changed"
            }])
        );
    }

    #[test]
    fn changed_permissions_replace_the_permissions_row() {
        let new = config(
            Schema::new().table(users(None)).table(rooms("chats")),
            TableMappings::plain().with("chats", room_mapping("d")),
            Some(json!({"tables": {}})),
        );
        assert_eq!(diff(&base(), &new), Ok(vec![Step::Permissions]));
    }

    #[test]
    fn a_changed_primary_key_resets() {
        let new = config(
            Schema::new()
                .table(users(Some(("email", ColumnSchema::string()))).primary_key(["id", "email"]))
                .table(rooms("chats")),
            TableMappings::plain().with("chats", room_mapping("d")),
            None,
        );
        let err = diff(&base(), &new).unwrap_err();
        assert!(matches!(err, NotInPlace::PrimaryKeyChanged { .. }), "{err}");
        assert_eq!(
            err.to_string(),
            r#"the primary key of public.users changed from ["id"] to ["id", "email"]"#
        );
    }

    #[test]
    fn a_changed_column_type_resets() {
        let old = config(
            Schema::new()
                .table(users(Some(("age", ColumnSchema::number().optional()))))
                .table(rooms("chats")),
            TableMappings::plain().with("chats", room_mapping("d")),
            None,
        );
        let new = config(
            Schema::new()
                .table(users(Some(("age", ColumnSchema::string().optional()))))
                .table(rooms("chats")),
            TableMappings::plain().with("chats", room_mapping("d")),
            None,
        );
        assert_eq!(
            diff(&old, &new).unwrap_err().to_string(),
            "column public.users.age changed type from number to string"
        );
    }

    #[test]
    fn a_changed_key_projection_resets_but_another_column_s_does_not() {
        let with = |p: Value| {
            config(
                Schema::new().table(users(None)).table(rooms("chats")),
                TableMappings::plain()
                    .with("chats", room_mapping("d"))
                    .with(
                        "users",
                        TableMapping::new("users").projection(Projection::from_json(&p).unwrap()),
                    ),
                None,
            )
        };
        let old = with(json!({"id": "$_id", "name": 1}));
        let err = diff(
            &old,
            &with(json!({"id": {"$toString": "$code"}, "name": 1})),
        )
        .unwrap_err();
        assert_eq!(
            err,
            NotInPlace::KeyProjectionChanged {
                table: "public.users".into(),
                column: "id".into()
            }
        );
        assert_eq!(
            diff(&old, &with(json!({"id": "$_id", "name": "$fullName"}))),
            Ok(vec![Step::Refill {
                table: "users".into(),
                filter_changed: false,
                only_new_columns: false,
                why: "its projection changed"
            }])
        );
    }

    #[test]
    fn a_changed_collection_or_bookkeeping_resets() {
        let new = config(
            Schema::new().table(users(None)).table(rooms("chats")),
            TableMappings::plain().with(
                "chats",
                TableMapping::new("rooms2").filter(Filter::from_json(&json!({"t": "d"})).unwrap()),
            ),
            None,
        );
        assert!(matches!(
            diff(&base(), &new),
            Err(NotInPlace::SourceChanged { .. })
        ));
        let other = base().with_bookkeeping(crate::Bookkeeping {
            clients_collection: "c2".into(),
            mutations_collection: "m2".into(),
        });
        assert_eq!(diff(&base(), &other), Err(NotInPlace::BookkeepingChanged));
    }
}
