//! The tables one zero-cache connection replicates: the app's tables, plus the three zero-cache
//! requires (`<app>_<shard>.clients`, `<app>_<shard>.mutations`, `<app>.permissions`).
//!
//! The required tables depend on the `appID` and `shardNum` of each connection, so a catalog is
//! assembled per connection from the app tables compiled once at start-up.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{Map, Value};
use zerostack_spec::ColumnSpec;
use zerostack_spec::bookkeeping::{self, Bookkeeping};
use zerostack_spec::hash::short_hash;
use zerostack_spec::schema::ColumnType;

use crate::pipeline::CompiledPipeline;
use crate::rows::{CompiledTable, RowsError};
use crate::zero::messages::{ColumnDef, TableDef};

/// A table fed from a MongoDB collection.
pub struct PublishedTable {
    pub def: TableDef,
    /// The `relation` JSON of its data changes, rendered once.
    pub relation: String,
    pub rows: Arc<CompiledTable>,
    /// A change event's `documentKey` gives the row key (see [`CompiledTable::key_from_id`]);
    /// otherwise deletes and key changes need the pre-image.
    pub key_from_document_key: bool,
    /// A pipeline mapping: its rows come from `crate::pipeline`, and `rows` only describes the
    /// table (columns, key).
    pub pipeline: Option<Arc<CompiledPipeline>>,
}

impl PublishedTable {
    pub fn new(rows: Arc<CompiledTable>, data_type: impl Fn(&ColumnSpec) -> &'static str) -> Self {
        let spec = rows.spec();
        let def = TableDef {
            schema: spec.schema.clone(),
            name: spec.server_name.clone(),
            columns: spec
                .columns
                .iter()
                .map(|c| ColumnDef {
                    name: c.server_name.clone(),
                    data_type: data_type(c),
                    // Only key columns are declared NOT NULL: a value that does not fit its
                    // column is sent as null, and that must never be rejected by the replica.
                    not_null: spec.primary_key.contains(&c.server_name),
                })
                .collect(),
            primary_key: spec.primary_key.clone(),
        };
        let relation = def.relation_json();
        PublishedTable {
            def,
            relation,
            key_from_document_key: rows.key_from_id(),
            rows,
            pipeline: None,
        }
    }
}

/// The Postgres type name zero-cache maps back to each ZQL type.
pub fn data_type_for(kind: ColumnType) -> &'static str {
    match kind {
        ColumnType::String => "text",
        ColumnType::Number => "float8",
        ColumnType::Boolean => "bool",
        ColumnType::Json | ColumnType::Null => "json",
    }
}

/// Which connection this catalog is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shard {
    pub app_id: String,
    pub shard_num: u32,
}

impl Shard {
    pub fn upstream_schema(&self) -> String {
        format!("{}_{}", self.app_id, self.shard_num)
    }
}

pub struct Catalog {
    pub tables: Vec<PublishedTable>,
    by_collection: HashMap<String, Vec<usize>>,
    pub permissions: TableDef,
    pub permissions_row: Map<String, Value>,
}

impl Catalog {
    pub fn new(
        app_tables: &[Arc<CompiledTable>],
        shard: &Shard,
        bookkeeping: &Bookkeeping,
        permissions: Option<&Value>,
    ) -> Result<Catalog, RowsError> {
        let mut tables: Vec<PublishedTable> = app_tables
            .iter()
            .map(|t| PublishedTable::new(t.clone(), |c| data_type_for(c.kind)))
            .collect();
        for spec in bookkeeping.tables(&shard.app_id, shard.shard_num) {
            let compiled = Arc::new(CompiledTable::compile(&spec)?);
            let mut table = PublishedTable::new(compiled, |c| {
                if bookkeeping::is_counter(&c.server_name) {
                    "int8"
                } else {
                    data_type_for(c.kind)
                }
            });
            // The bookkeeping collections are keyed by a composite `_id` holding the key
            // columns (the contract in `zerostack_spec::bookkeeping`), which `documentKey` has.
            table.key_from_document_key = true;
            tables.push(table);
        }
        let mut by_collection: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, t) in tables.iter().enumerate() {
            by_collection
                .entry(t.rows.spec().source.clone())
                .or_default()
                .push(i);
        }
        let permissions_table = TableDef {
            schema: shard.app_id.clone(),
            name: "permissions".into(),
            columns: vec![
                ColumnDef {
                    name: "lock".into(),
                    data_type: "bool",
                    not_null: true,
                },
                ColumnDef {
                    name: "permissions".into(),
                    data_type: "json",
                    not_null: false,
                },
                ColumnDef {
                    name: "hash".into(),
                    data_type: "text",
                    not_null: false,
                },
            ],
            primary_key: vec!["lock".into()],
        };
        let mut permissions_row = Map::new();
        permissions_row.insert("lock".into(), Value::Bool(true));
        match permissions {
            Some(p) if !p.is_null() => {
                permissions_row.insert("permissions".into(), p.clone());
                permissions_row.insert("hash".into(), Value::String(short_hash(p)));
            }
            _ => {
                permissions_row.insert("permissions".into(), Value::Null);
                permissions_row.insert("hash".into(), Value::Null);
            }
        }
        Ok(Catalog {
            tables,
            by_collection,
            permissions: permissions_table,
            permissions_row,
        })
    }

    /// Attaches the compiled pipelines (by Zero table name) to their tables.
    pub fn with_pipelines(mut self, pipelines: &HashMap<String, Arc<CompiledPipeline>>) -> Self {
        for t in &mut self.tables {
            if let Some(p) = pipelines.get(&t.rows.spec().name) {
                t.key_from_document_key = !p.needs_pre_images();
                t.pipeline = Some(p.clone());
            }
        }
        self
    }

    /// The tables fed by a collection (several for a discriminated union).
    pub fn tables_of(&self, collection: &str) -> impl Iterator<Item = &PublishedTable> {
        self.by_collection
            .get(collection)
            .into_iter()
            .flatten()
            .map(|&i| &self.tables[i])
    }

    /// Every collection the catalog reads, each once.
    pub fn collections(&self) -> Vec<String> {
        let mut c: Vec<String> = self.by_collection.keys().cloned().collect();
        c.sort();
        c
    }

    pub fn is_mapped(&self, collection: &str) -> bool {
        self.by_collection.contains_key(collection)
    }
}
