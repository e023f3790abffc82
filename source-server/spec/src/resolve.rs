//! Schema + mappings → the list of tables the source server replicates.
//!
//! This is where the inputs are checked against each other: primary keys against columns,
//! mappings against tables, projection outputs against columns, pipelines against primary keys. The result, [`TableSpec`], holds
//! everything the source server needs per table, with replica (server) names already worked out.

use std::collections::{HashMap, HashSet};

use indexmap::IndexMap;
use serde::Serialize;

use crate::error::{Cx, SpecError, SpecErrors, child, item};
use crate::filter::Filter;
use crate::mapping::{TableMapping, TableMappings};
use crate::projection::{Projection, ProjectionField};
use crate::schema::{ColumnType, Schema};

/// One replicated table.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TableSpec {
    /// Zero (client) table name.
    pub name: String,
    /// Replica schema: "public" unless serverName is "x.y".
    pub schema: String,
    /// Replica table name (serverName or name, without the schema).
    pub server_name: String,
    /// MongoDB collection (the mapping's source, or the table name).
    pub source: String,
    pub filter: Option<Filter>,
    pub projection: Option<Projection>,
    /// In schema order; a column's position is its index.
    pub columns: Vec<ColumnSpec>,
    /// Server column names.
    pub primary_key: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ColumnSpec {
    /// Client name.
    pub name: String,
    /// Replica name (serverName or name).
    pub server_name: String,
    pub kind: ColumnType,
    pub optional: bool,
}

impl TableSpec {
    /// The column with this server name.
    pub fn column(&self, server_name: &str) -> Option<&ColumnSpec> {
        self.columns.iter().find(|c| c.server_name == server_name)
    }

    /// `schema.table`, as zero-cache names the replica table.
    pub fn qualified_name(&self) -> String {
        format!("{}.{}", self.schema, self.server_name)
    }
}

/// Where each input part came from, so that messages point into the right file.
pub(crate) struct Sites<'a> {
    pub schema_origin: &'a str,
    /// Table name → JSON path of the table in the schema input.
    pub table_paths: &'a IndexMap<String, String>,
    /// Table name → (origin, JSON path) of its mapping.
    pub mapping_sites: &'a IndexMap<String, (String, String)>,
}

/// Resolves Rust-built inputs (no files): messages use the origins "schema" and "mappings".
pub fn resolve(schema: &Schema, mappings: &TableMappings) -> Result<Vec<TableSpec>, SpecErrors> {
    let table_paths = IndexMap::new();
    let base = if mappings.version.is_some() {
        "$.mappings"
    } else {
        "$"
    };
    let mapping_sites = mappings
        .mappings
        .keys()
        .map(|k| (k.clone(), ("mappings".to_string(), child(base, k))))
        .collect();
    let sites = Sites {
        schema_origin: "schema",
        table_paths: &table_paths,
        mapping_sites: &mapping_sites,
    };
    let mut errors = Vec::new();
    let tables = resolve_at(schema, &mappings.mappings, &sites, &mut errors);
    if errors.is_empty() {
        Ok(tables)
    } else {
        Err(SpecErrors(errors))
    }
}

pub(crate) fn resolve_at(
    schema: &Schema,
    mappings: &IndexMap<String, TableMapping>,
    sites: &Sites<'_>,
    errors: &mut Vec<SpecError>,
) -> Vec<TableSpec> {
    let mut err = |origin: &str, path: String, message: String| {
        errors.push(SpecError {
            origin: origin.to_string(),
            path,
            message,
        });
    };
    let table_names = || {
        schema
            .tables
            .keys()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join(", ")
    };
    for (name, (origin, path)) in sites.mapping_sites {
        if mappings.contains_key(name) && !schema.tables.contains_key(name) {
            err(
                origin,
                path.clone(),
                format!(
                    "mapping for table {name:?}, but the schema has no such table (tables: {})",
                    table_names()
                ),
            );
        }
    }
    let mut replicas: HashMap<(String, String), &str> = HashMap::new();
    let mut out = Vec::with_capacity(schema.tables.len());
    for (name, t) in &schema.tables {
        let so = sites.schema_origin;
        let tp = sites
            .table_paths
            .get(name)
            .cloned()
            .unwrap_or_else(|| child(&child("$", "tables"), name));
        let mut ok = true;

        let full = t.server_name.as_deref().unwrap_or(name);
        let name_path = child(
            &tp,
            if t.server_name.is_some() {
                "serverName"
            } else {
                "name"
            },
        );
        let (replica_schema, replica_table) = match full.split_once('.') {
            None => ("public".to_string(), full.to_string()),
            Some((s, rest)) if !rest.contains('.') && !s.is_empty() && !rest.is_empty() => {
                (s.to_string(), rest.to_string())
            }
            Some(_) => {
                err(
                    so,
                    name_path.clone(),
                    format!(
                        "table name {full:?} has more than one '.' (expected \"table\" or \"schema.table\")"
                    ),
                );
                ok = false;
                (String::new(), String::new())
            }
        };
        if ok
            && let Some(other) =
                replicas.insert((replica_schema.clone(), replica_table.clone()), name)
        {
            err(
                so,
                name_path,
                format!(
                    "tables {other:?} and {name:?} both replicate to {replica_schema}.{replica_table}"
                ),
            );
            ok = false;
        }

        let cp = child(&tp, "columns");
        let mut seen = HashSet::new();
        let columns: Vec<ColumnSpec> = t
            .columns
            .iter()
            .map(|(c, cs)| ColumnSpec {
                name: c.clone(),
                server_name: cs.server_name.clone().unwrap_or_else(|| c.clone()),
                kind: cs.kind,
                optional: cs.optional,
            })
            .collect();
        for col in &columns {
            if !seen.insert(col.server_name.as_str()) {
                err(
                    so,
                    child(&cp, &col.name),
                    format!(
                        "two columns of table {name:?} have the server name {:?}",
                        col.server_name
                    ),
                );
                ok = false;
            }
        }

        let pkp = child(&tp, "primaryKey");
        if t.primary_key.is_empty() {
            err(
                so,
                pkp.clone(),
                "primaryKey is empty: a table needs at least one key column".into(),
            );
            ok = false;
        }
        let mut primary_key = Vec::with_capacity(t.primary_key.len());
        for (i, k) in t.primary_key.iter().enumerate() {
            match t.columns.get(k) {
                None => {
                    err(
                        so,
                        item(&pkp, i),
                        format!("primary key column {k:?} is not a column of table {name:?}"),
                    );
                    ok = false;
                }
                Some(c) if c.optional => {
                    err(
                        so,
                        item(&pkp, i),
                        format!(
                            "primary key column {k:?} is optional: key columns must be required"
                        ),
                    );
                    ok = false;
                }
                Some(c) => {
                    let server = c.server_name.clone().unwrap_or_else(|| k.clone());
                    if primary_key.contains(&server) {
                        err(
                            so,
                            item(&pkp, i),
                            format!("primary key column {k:?} is listed twice"),
                        );
                        ok = false;
                    }
                    primary_key.push(server);
                }
            }
        }

        let mapping = mappings.get(name);
        if let (Some(m), Some((mo, mp))) = (mapping, sites.mapping_sites.get(name))
            && let Some(p) = &m.projection
        {
            ok &= check_projection(name, p, &columns, mo, &child(mp, "projection"), &mut err);
        }
        if let (Some(m), Some((mo, mp))) = (mapping, sites.mapping_sites.get(name))
            && let Some(p) = &m.pipeline
        {
            let pp = child(mp, "pipeline");
            if m.filter.is_some() || m.projection.is_some() {
                err(
                    mo,
                    pp.clone(),
                    "a mapping has either a pipeline or a filter/projection, not both".into(),
                );
                ok = false;
            } else if ok {
                let mut found = Vec::new();
                p.check_keys(
                    name,
                    &primary_key,
                    &pp,
                    &mut Cx {
                        origin: mo,
                        errors: &mut found,
                    },
                );
                ok &= found.is_empty();
                for e in found {
                    err(&e.origin, e.path, e.message);
                }
            }
        }
        if ok {
            out.push(TableSpec {
                name: name.clone(),
                schema: replica_schema,
                server_name: replica_table,
                source: mapping.map_or_else(|| name.clone(), |m| m.source.clone()),
                filter: mapping.and_then(|m| m.filter.clone()),
                projection: mapping.and_then(|m| m.projection.clone()),
                columns,
                primary_key,
            });
        }
    }
    out
}

fn check_projection(
    table: &str,
    p: &Projection,
    columns: &[ColumnSpec],
    origin: &str,
    path: &str,
    err: &mut impl FnMut(&str, String, String),
) -> bool {
    let mut ok = true;
    let names = || {
        columns
            .iter()
            .map(|c| c.server_name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let is_column = |k: &str| columns.iter().any(|c| c.server_name == k);
    if p.is_exclusion() {
        for (k, f) in &p.fields {
            if *f == ProjectionField::Exclude
                && let Some(c) = columns.iter().find(|c| c.server_name == *k && !c.optional)
            {
                err(
                    origin,
                    child(path, k),
                    format!(
                        "the projection excludes {:?}, a required column of table {table:?}",
                        c.server_name
                    ),
                );
                ok = false;
            }
        }
        return ok;
    }
    let mut covered: HashSet<&str> = HashSet::new();
    if p.keeps_id() {
        covered.insert("_id");
    }
    for (k, f) in &p.fields {
        if *f == ProjectionField::Exclude {
            continue;
        }
        let top = k.split('.').next().unwrap_or(k);
        if !is_column(top) {
            err(
                origin,
                child(path, k),
                format!(
                    "projection field {top:?} is not a column of table {table:?} (columns: {})",
                    names()
                ),
            );
            ok = false;
        }
        covered.insert(top);
    }
    for c in columns {
        if !c.optional && !covered.contains(c.server_name.as_str()) {
            err(
                origin,
                path.to_string(),
                format!(
                    "required column {:?} of table {table:?} is not in the projection (add \"{}\": 1, or make the column optional)",
                    c.server_name, c.server_name
                ),
            );
            ok = false;
        }
    }
    ok
}
