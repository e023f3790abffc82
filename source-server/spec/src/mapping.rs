//! Table mappings: which MongoDB collection, filter and projection (or pipeline) feed each Zero
//! table.
//!
//! Accepts both shapes the earlier TypeScript source and its app produce: a plain object keyed by
//! Zero table name, or the export wrapper `{version: 1, mappings, metadata?}`. The shape read is
//! kept so that serializing gives the same JSON back. An entry is either simple
//! (`{source, filter?, projection?}`) or a pipeline (`{source, pipeline}`, see
//! [`crate::pipeline`]), never both, as in the TypeScript types.

use indexmap::IndexMap;
use serde::{Serialize, Serializer, ser::SerializeMap};
use serde_json::Value;

use crate::error::{Cx, child, deserialize_via_parser};
use crate::filter::{self, Filter};
use crate::pipeline::{self, Pipeline};
use crate::projection::{self, Projection};
use crate::schema::{object, string};

/// All mappings, keyed by Zero (client) table name.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TableMappings {
    pub mappings: IndexMap<String, TableMapping>,
    /// `Some(v)`: written as `{version: v, mappings, metadata?}`; `None`: written plain.
    pub version: Option<u64>,
    /// The wrapper's `metadata` (application, exportedAt, ...); not part of the config hash.
    pub metadata: Option<Value>,
}

/// `{source, filter?, projection?}` or `{source, pipeline}` (at most one of the two shapes is
/// set: the parser refuses both at once).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TableMapping {
    pub source: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filter: Option<Filter>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub projection: Option<Projection>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pipeline: Option<Pipeline>,
}

impl TableMapping {
    pub fn new(source: impl Into<String>) -> TableMapping {
        TableMapping {
            source: source.into(),
            filter: None,
            projection: None,
            pipeline: None,
        }
    }
    pub fn filter(mut self, filter: Filter) -> TableMapping {
        self.filter = Some(filter);
        self
    }
    pub fn projection(mut self, projection: Projection) -> TableMapping {
        self.projection = Some(projection);
        self
    }
    /// A pipeline mapping (callers must not also set a filter or projection; [`crate::load`]
    /// and [`crate::Config::from_parts`] refuse both).
    pub fn pipeline(mut self, pipeline: Pipeline) -> TableMapping {
        self.pipeline = Some(pipeline);
        self
    }
}

deserialize_via_parser!(TableMapping, parse_entry);

impl TableMappings {
    /// Plain form: `{<table>: {source, ..}}`.
    pub fn plain() -> TableMappings {
        TableMappings::default()
    }

    /// Wrapped form: `{version: 1, mappings: {..}}`.
    pub fn wrapped() -> TableMappings {
        TableMappings {
            version: Some(1),
            ..TableMappings::default()
        }
    }

    pub fn with(mut self, table: impl Into<String>, mapping: TableMapping) -> TableMappings {
        self.mappings.insert(table.into(), mapping);
        self
    }

    pub fn get(&self, table: &str) -> Option<&TableMapping> {
        self.mappings.get(table)
    }

    pub fn from_json(value: &Value) -> Result<TableMappings, String> {
        crate::error::standalone(|cx| parse(value, "$", cx).map(|(m, _)| m))
    }
}

deserialize_via_parser!(TableMappings, parse_only);

fn parse_only(v: &Value, path: &str, cx: &mut Cx<'_>) -> Option<TableMappings> {
    parse(v, path, cx).map(|(m, _)| m)
}

impl Serialize for TableMappings {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.version {
            None => self.mappings.serialize(s),
            Some(version) => {
                let mut m = s.serialize_map(None)?;
                m.serialize_entry("version", &version)?;
                m.serialize_entry("mappings", &self.mappings)?;
                if let Some(meta) = &self.metadata {
                    m.serialize_entry("metadata", meta)?;
                }
                m.end()
            }
        }
    }
}

/// The wrapper is recognised by having both `version` and `mappings` at the top level (a plain
/// mapping for tables named like that would be a strange coincidence).
fn is_wrapped(v: &Value) -> bool {
    matches!(v, Value::Object(m) if m.contains_key("version") && m.contains_key("mappings"))
}

/// Parses either shape. Also returns the JSON path of each entry, for later messages.
pub(crate) fn parse(
    v: &Value,
    path: &str,
    cx: &mut Cx<'_>,
) -> Option<(TableMappings, IndexMap<String, String>)> {
    let root = object(v, path, "the table mappings", cx)?;
    let before = cx.errors.len();
    let mut out = TableMappings::default();
    let mut paths = IndexMap::new();
    let (entries, entries_path) = if is_wrapped(v) {
        for k in root.keys() {
            if !matches!(k.as_str(), "version" | "mappings" | "metadata") {
                cx.err(child(path, k), format!("unknown key {k:?} in the mappings wrapper (expected version, mappings, metadata)"));
            }
        }
        match root["version"].as_u64() {
            Some(1) => out.version = Some(1),
            _ => cx.err(
                child(path, "version"),
                format!(
                    "unsupported table mappings version {} (expected 1)",
                    root["version"]
                ),
            ),
        }
        out.metadata = root.get("metadata").cloned();
        let mp = child(path, "mappings");
        (object(&root["mappings"], &mp, "\"mappings\"", cx)?, mp)
    } else {
        (root, path.to_string())
    };
    for (table, entry) in entries {
        let p = child(&entries_path, table);
        if let Some(m) = parse_entry(entry, &p, cx) {
            out.mappings.insert(table.clone(), m);
            paths.insert(table.clone(), p);
        }
    }
    (cx.errors.len() == before).then_some((out, paths))
}

pub(crate) fn parse_entry(v: &Value, path: &str, cx: &mut Cx<'_>) -> Option<TableMapping> {
    let m = object(v, path, "a table mapping", cx)?;
    let before = cx.errors.len();
    for k in m.keys() {
        if !matches!(k.as_str(), "source" | "filter" | "projection" | "pipeline") {
            cx.err(
                child(path, k),
                format!(
                    "unknown key {k:?} in a table mapping (expected source, filter, projection, or source, pipeline)"
                ),
            );
        }
    }
    let has = |k: &str| !matches!(m.get(k), None | Some(Value::Null));
    if has("pipeline") {
        for k in ["filter", "projection"] {
            if has(k) {
                cx.err(
                    child(path, k),
                    format!("a mapping has either a pipeline or a filter/projection, not both: move the {k} into the pipeline as a {} stage", if k == "filter" { "$match" } else { "$project" }),
                );
            }
        }
    }
    let source = match m.get("source") {
        Some(s) => {
            string(s, &child(path, "source"), "source (a collection name)", cx).map(str::to_string)
        }
        None => {
            cx.err(path, "the mapping has no \"source\" collection");
            None
        }
    };
    if let Some(s) = &source
        && (s.starts_with("system.") || s.contains('$') || s.contains('\0'))
    {
        cx.err(
            child(path, "source"),
            format!("{s:?} is not a valid collection name"),
        );
    }
    let filter = match m.get("filter") {
        None | Some(Value::Null) => None,
        Some(f) => filter::parse(f, &child(path, "filter"), cx),
    };
    let projection = match m.get("projection") {
        None | Some(Value::Null) => None,
        Some(p) => projection::parse(p, &child(path, "projection"), cx),
    };
    let pipeline = match m.get("pipeline") {
        None | Some(Value::Null) => None,
        Some(p) => pipeline::parse(p, &child(path, "pipeline"), cx),
    };
    if cx.errors.len() != before {
        return None;
    }
    Some(TableMapping {
        source: source?,
        filter,
        projection,
        pipeline,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn plain_and_wrapped_round_trip() {
        let plain = json!({"chats": {"source": "rooms", "filter": {"t": {"$eq": "d"}}, "projection": {"_id": 1, "t": 1}}});
        let m = TableMappings::from_json(&plain).unwrap();
        assert_eq!(m.version, None);
        assert_eq!(m.mappings["chats"].source, "rooms");
        assert_eq!(serde_json::to_value(&m).unwrap(), plain);

        let wrapped =
            json!({"version": 1, "mappings": plain, "metadata": {"application": "zrocket"}});
        let w = TableMappings::from_json(&wrapped).unwrap();
        assert_eq!(w.version, Some(1));
        assert_eq!(w.mappings, m.mappings);
        assert_eq!(serde_json::to_value(&w).unwrap(), wrapped);
        let again: TableMappings = serde_json::from_value(wrapped).unwrap();
        assert_eq!(again, w);
    }

    #[test]
    fn builds_from_rust() {
        let m = TableMappings::wrapped().with("users", TableMapping::new("users"));
        assert_eq!(
            serde_json::to_value(&m).unwrap(),
            json!({"version": 1, "mappings": {"users": {"source": "users"}}})
        );
    }

    #[test]
    fn pipelines_load_in_both_shapes_and_round_trip() {
        // prior-art §1: the account_members example, as zero-sources writes it.
        let plain = json!({"account_members": {"source": "accounts", "pipeline": [
            {"$match": {"bundle": "ENTERPRISE"}},
            {"$unwind": "$members"},
            {"$addFields": {"accountId": "$_id", "userId": "$members.id", "role": "$members.role"}}
        ]}});
        let m = TableMappings::from_json(&plain).unwrap();
        let p = m.mappings["account_members"].pipeline.as_ref().unwrap();
        assert_eq!(p.stages.len(), 3);
        assert_eq!(m.mappings["account_members"].filter, None);
        assert_eq!(serde_json::to_value(&m).unwrap(), plain);
        let wrapped = json!({"version": 1, "mappings": plain, "metadata": {"application": "x"}});
        let w = TableMappings::from_json(&wrapped).unwrap();
        assert_eq!(w.mappings, m.mappings);
        assert_eq!(serde_json::to_value(&w).unwrap(), wrapped);
    }

    #[test]
    fn refuses_bad_pipelines_and_unknown_keys() {
        let e = TableMappings::from_json(&json!({"members": {"source": "accounts",
            "filter": {"a": 1}, "pipeline": [{"$unwind": "$members"}]}}))
        .unwrap_err();
        assert!(
            e.starts_with(
                "$.members.filter: a mapping has either a pipeline or a filter/projection, not both"
            ),
            "{e}"
        );
        let e = TableMappings::from_json(
            &json!({"version": 1, "mappings": {"m": {"source": "a", "pipeline": [{"$group": {}}]}}}),
        )
        .unwrap_err();
        assert!(
            e.starts_with("$.mappings.m.pipeline[0].$group: unsupported pipeline stage $group"),
            "{e}"
        );
        let e = TableMappings::from_json(&json!({"version": 2, "mappings": {}})).unwrap_err();
        assert!(
            e.starts_with("$.version: unsupported table mappings version 2"),
            "{e}"
        );
        let e =
            TableMappings::from_json(&json!({"t": {"source": "c", "filters": {}}})).unwrap_err();
        assert!(e.starts_with("$.t.filters: unknown key \"filters\""), "{e}");
        let e = TableMappings::from_json(&json!({"t": {"filter": {}}})).unwrap_err();
        assert!(e.starts_with("$.t: the mapping has no \"source\""), "{e}");
        let e = TableMappings::from_json(&json!({"version": 1, "mappings": {"t": {"source": ""}}}))
            .unwrap_err();
        assert!(
            e.starts_with("$.mappings.t.source: source (a collection name) must not be empty"),
            "{e}"
        );
    }
}
