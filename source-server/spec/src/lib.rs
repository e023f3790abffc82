//! The schema, table-mapping and permissions formats shared by the source server, the app and the
//! operator.
//!
//! One small crate (no MongoDB, no Kubernetes) so that the program that writes these files (the
//! app), the one that checks them before a rollout (the operator) and the one that runs them (the
//! source server) agree on what is valid. [`load`] parses all inputs, checks them against each
//! other, reports every problem with its file and JSON path, and resolves the tables to replicate.

pub mod bookkeeping;
pub mod env;
pub mod error;
pub mod extjson;
pub mod files;
pub mod filter;
pub mod hash;
pub mod legacy;
pub mod mapping;
pub mod permissions;
pub mod pipeline;
pub mod projection;
pub mod resolve;
pub mod schema;
pub mod schema_diff;
pub mod secret;

use indexmap::IndexMap;
use serde_json::Value;

pub use bookkeeping::Bookkeeping;
pub use error::{SpecError, SpecErrors};
pub use resolve::{ColumnSpec, TableSpec, resolve};
pub use schema::ColumnType;

use error::{Cx, child};

/// One input: where it came from (file path, URL or "inline") and its text.
#[derive(Debug, Clone, Copy)]
pub struct Source<'a> {
    pub origin: &'a str,
    pub text: &'a str,
}

/// A loaded, checked configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// As parsed (a legacy TableSpec export is translated into Zero's schema shape).
    pub schema: schema::Schema,
    /// As parsed, plus mappings embedded in a legacy schema.
    pub mappings: mapping::TableMappings,
    pub permissions: Option<Value>,
    /// Resolved, in schema order.
    pub tables: Vec<TableSpec>,
    /// Where the app keeps Zero's bookkeeping (the defaults unless set with
    /// [`Config::with_bookkeeping`]).
    pub bookkeeping: Bookkeeping,
    /// The configuration hash ([`hash::config_hash`]).
    pub hash: String,
}

impl Config {
    /// The table with this Zero (client) name.
    pub fn table(&self, name: &str) -> Option<&TableSpec> {
        self.tables.iter().find(|t| t.name == name)
    }

    /// The pipeline of this table's mapping, if it has one (the table's `filter` and
    /// `projection` are then `None`).
    pub fn pipeline(&self, table: &str) -> Option<&pipeline::Pipeline> {
        self.mappings.get(table)?.pipeline.as_ref()
    }

    /// Whether this table needs MongoDB's pre-images (see
    /// [`pipeline::Pipeline::needs_pre_images`] for the rule); false for simple mappings.
    pub fn needs_pre_images(&self, table: &str) -> bool {
        match (self.pipeline(table), self.table(table)) {
            (Some(p), Some(t)) => p.needs_pre_images(&t.primary_key),
            _ => false,
        }
    }

    /// The same configuration with the app's bookkeeping in other collections (they shape the
    /// replica, so the hash changes with them).
    pub fn with_bookkeeping(mut self, bookkeeping: Bookkeeping) -> Config {
        self.hash = hash::config_hash(
            &self.schema,
            &self.mappings,
            self.permissions.as_ref(),
            &bookkeeping,
        );
        self.bookkeeping = bookkeeping;
        self
    }

    /// Checks Rust-built inputs and resolves them (what `load` does after parsing).
    pub fn from_parts(
        schema: schema::Schema,
        mappings: mapping::TableMappings,
        permissions: Option<Value>,
    ) -> Result<Config, SpecErrors> {
        if let Some(p) = &permissions {
            let mut errors = Vec::new();
            permissions::check(
                p,
                "$",
                &mut Cx {
                    origin: "permissions",
                    errors: &mut errors,
                },
            );
            if !errors.is_empty() {
                return Err(SpecErrors(errors));
            }
        }
        let tables = resolve::resolve(&schema, &mappings)?;
        let bookkeeping = Bookkeeping::default();
        let hash = hash::config_hash(&schema, &mappings, permissions.as_ref(), &bookkeeping);
        Ok(Config {
            schema,
            mappings,
            permissions,
            tables,
            bookkeeping,
            hash,
        })
    }
}

fn parse_json(src: &Source<'_>, errors: &mut Vec<error::SpecError>) -> Option<Value> {
    let mut cx = Cx {
        origin: src.origin,
        errors,
    };
    if src.text.trim().is_empty() {
        cx.err("$", "the input is empty (expected a JSON object)");
        return None;
    }
    match serde_json::from_str(src.text) {
        Ok(v) => Some(v),
        Err(e) => {
            cx.err("$", format!("invalid JSON: {e}"));
            None
        }
    }
}

/// Parses and checks the schema, the optional table mappings and the optional permissions.
///
/// The schema may be Zero's schema JSON or the earlier source's TableSpec export (told apart by
/// shape). Every problem in every input is reported, each with its origin and JSON path.
pub fn load(
    schema: Source<'_>,
    mappings: Option<Source<'_>>,
    permissions: Option<Source<'_>>,
) -> Result<Config, SpecErrors> {
    let mut errors = Vec::new();

    let schema_json = parse_json(&schema, &mut errors);
    let mut table_paths = IndexMap::new();
    let mut embedded = Vec::new();
    let parsed_schema = schema_json.as_ref().and_then(|v| {
        let mut cx = Cx {
            origin: schema.origin,
            errors: &mut errors,
        };
        if legacy::is_legacy(v) {
            legacy::parse(v, "$", &mut cx).map(|(s, paths, emb)| {
                table_paths = paths;
                embedded = emb;
                s
            })
        } else {
            let s = schema::parse(v, "$", &mut cx)?;
            table_paths = s
                .tables
                .keys()
                .map(|k| (k.clone(), child(&child("$", "tables"), k)))
                .collect();
            Some(s)
        }
    });

    let mut mapping_sites: IndexMap<String, (String, String)> = IndexMap::new();
    let mut parsed_mappings = mapping::TableMappings::default();
    let mut mappings_ok = true;
    if let Some(src) = &mappings {
        mappings_ok = false;
        if let Some(v) = parse_json(src, &mut errors) {
            let mut cx = Cx {
                origin: src.origin,
                errors: &mut errors,
            };
            if let Some((m, paths)) = mapping::parse(&v, "$", &mut cx) {
                for (table, path) in paths {
                    mapping_sites.insert(table, (src.origin.to_string(), path));
                }
                parsed_mappings = m;
                mappings_ok = true;
            }
        }
    }
    for e in embedded {
        if let Some((origin, path)) = mapping_sites.get(&e.table) {
            errors.push(SpecError {
                origin: schema.origin.to_string(),
                path: e.path,
                message: format!(
                    "table {:?} also has a mapping in {origin} at {path}: give it once",
                    e.table
                ),
            });
            continue;
        }
        mapping_sites.insert(e.table.clone(), (schema.origin.to_string(), e.path));
        parsed_mappings.mappings.insert(e.table, e.mapping);
    }

    let mut parsed_permissions = None;
    let mut permissions_ok = true;
    if let Some(src) = &permissions {
        permissions_ok = false;
        if let Some(v) = parse_json(src, &mut errors) {
            let mut cx = Cx {
                origin: src.origin,
                errors: &mut errors,
            };
            // `null` is how Zero spells "no permissions" (the required row then holds null).
            if v.is_null() {
                permissions_ok = true;
            } else if permissions::check(&v, "$", &mut cx) {
                parsed_permissions = Some(v);
                permissions_ok = true;
            }
        }
    }

    let Some(parsed_schema) = parsed_schema else {
        return Err(SpecErrors(errors));
    };
    let sites = resolve::Sites {
        schema_origin: schema.origin,
        table_paths: &table_paths,
        mapping_sites: &mapping_sites,
    };
    let tables = resolve::resolve_at(
        &parsed_schema,
        &parsed_mappings.mappings,
        &sites,
        &mut errors,
    );
    if !errors.is_empty() || !mappings_ok || !permissions_ok {
        return Err(SpecErrors(errors));
    }
    let bookkeeping = Bookkeeping::default();
    let hash = hash::config_hash(
        &parsed_schema,
        &parsed_mappings,
        parsed_permissions.as_ref(),
        &bookkeeping,
    );
    Ok(Config {
        schema: parsed_schema,
        mappings: parsed_mappings,
        permissions: parsed_permissions,
        tables,
        bookkeeping,
        hash,
    })
}

#[cfg(test)]
mod tests;
