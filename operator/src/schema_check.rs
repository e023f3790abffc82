//! The one place the operator calls the shared spec crate (`zerostack-spec`).
//!
//! The operator must reject a bad schema *before* it rolls anything, with the same rules the
//! change source applies at start-up. Keeping the call behind this thin wrapper means the rest of
//! the operator only sees "these files are valid, here is their hash" or "invalid, because ...".

use std::collections::BTreeMap;

/// ConfigMap key (and file name) of the schema.
pub const SCHEMA_FILE: &str = zerostack_spec::files::SCHEMA;
/// ConfigMap key (and file name) of the table mappings.
pub const MAPPINGS_FILE: &str = zerostack_spec::files::TABLE_MAPPINGS;
/// ConfigMap key (and file name) of the permissions.
pub const PERMISSIONS_FILE: &str = zerostack_spec::files::PERMISSIONS;

/// Schema files as found in the resource or the user's ConfigMap.
#[derive(Clone, Debug, PartialEq)]
pub struct SchemaFiles {
    /// Where the files came from, used in error messages ("inline", "ConfigMap ns/name").
    pub origin: String,
    /// The schema JSON.
    pub schema: String,
    /// Table mappings JSON, if given.
    pub table_mappings: Option<String>,
    /// Permissions JSON, if given.
    pub permissions: Option<String>,
}

/// Files that passed validation, ready to be rendered into the operator's ConfigMap.
#[derive(Clone, Debug, PartialEq)]
pub struct RenderedSchema {
    /// ConfigMap data: file name → content.
    pub data: BTreeMap<String, String>,
    /// The configuration hash (`zerostack_spec::hash`), the same value the change source
    /// reports as its `configHash`; goes into the change-source pod template.
    pub hash: String,
}

/// Validates the files with `zerostack_spec::load`. The error is a human-readable list of
/// problems, one per line, each naming the file and the JSON path.
pub fn check(files: &SchemaFiles) -> Result<RenderedSchema, String> {
    let config = load(files)?;
    let mut data = BTreeMap::new();
    data.insert(SCHEMA_FILE.to_string(), files.schema.clone());
    if let Some(m) = &files.table_mappings {
        data.insert(MAPPINGS_FILE.to_string(), m.clone());
    }
    if let Some(p) = &files.permissions {
        data.insert(PERMISSIONS_FILE.to_string(), p.clone());
    }
    Ok(RenderedSchema {
        data,
        hash: config.hash,
    })
}

/// How the change source follows a change from one rolled-out schema to another.
#[derive(Clone, Debug, PartialEq)]
pub enum Change {
    /// zero-cache keeps its replica: the source streams these steps (in order).
    InPlace(Vec<String>),
    /// The source answers `reset-required`, for this reason.
    Resync(String),
}

/// Classifies a change with the source's own rule (`zerostack_spec::schema_diff::diff`) on the
/// two parsed configurations. It predicts what a source does for a zero-cache whose replica
/// was built from `old`; one built from an even older schema is diffed from that one. An
/// error means one side no longer parses (a spec-crate upgrade between the two).
pub fn classify(old: &RenderedSchema, new: &RenderedSchema) -> Result<Change, String> {
    let parse = |r: &RenderedSchema, origin: String| {
        load(&SchemaFiles {
            origin,
            schema: r.data.get(SCHEMA_FILE).cloned().unwrap_or_default(),
            table_mappings: r.data.get(MAPPINGS_FILE).cloned(),
            permissions: r.data.get(PERMISSIONS_FILE).cloned(),
        })
    };
    let before = parse(old, format!("the schema {}", old.hash))?;
    let after = parse(new, format!("the schema {}", new.hash))?;
    Ok(match zerostack_spec::schema_diff::diff(&before, &after) {
        Ok(steps) => Change::InPlace(steps.iter().map(ToString::to_string).collect()),
        Err(why) => Change::Resync(why.to_string()),
    })
}

/// The files parsed and validated into the configuration the change source would run.
fn load(files: &SchemaFiles) -> Result<zerostack_spec::Config, String> {
    let schema_origin = format!("{} key {SCHEMA_FILE}", files.origin);
    let mappings_origin = format!("{} key {MAPPINGS_FILE}", files.origin);
    let permissions_origin = format!("{} key {PERMISSIONS_FILE}", files.origin);
    let schema = zerostack_spec::Source {
        origin: &schema_origin,
        text: &files.schema,
    };
    let mappings = files
        .table_mappings
        .as_deref()
        .map(|text| zerostack_spec::Source {
            origin: &mappings_origin,
            text,
        });
    let permissions = files
        .permissions
        .as_deref()
        .map(|text| zerostack_spec::Source {
            origin: &permissions_origin,
            text,
        });
    zerostack_spec::load(schema, mappings, permissions).map_err(|errors| errors.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{MAPPINGS, SCHEMA};

    fn files(schema: &str) -> SchemaFiles {
        SchemaFiles {
            origin: "ConfigMap demo/s".into(),
            schema: schema.into(),
            table_mappings: Some(MAPPINGS.into()),
            permissions: None,
        }
    }

    #[test]
    fn fixture_schema_is_valid_and_hash_is_stable() {
        let a = check(&files(SCHEMA)).unwrap_or_else(|e| panic!("{e}"));
        let b = check(&files(SCHEMA)).unwrap();
        assert_eq!(a.hash, b.hash);
        assert_eq!(a.data.len(), 2);
    }

    /// The source's own rule decides: a changed filter is streamed in place, a changed primary
    /// key is a resync naming the table.
    #[test]
    fn classify_follows_the_sources_schema_diff() {
        let before = check(&files(SCHEMA)).unwrap();
        let mut refiltered = files(SCHEMA);
        refiltered.table_mappings = Some(MAPPINGS.replace(r#"{"t":"d"}"#, r#"{"t":"p"}"#));
        let refiltered = check(&refiltered).unwrap();
        match classify(&before, &refiltered).unwrap() {
            Change::InPlace(steps) => {
                assert!(steps.iter().any(|s| s.contains("chats")), "{steps:?}")
            }
            other => panic!("a changed filter is in place: {other:?}"),
        }
        let rekeyed = SCHEMA.replace(
            r#""primaryKey":["id"]},"chats""#,
            r#""primaryKey":["id","name"]},"chats""#,
        );
        let rekeyed = check(&files(&rekeyed)).unwrap();
        match classify(&before, &rekeyed).unwrap() {
            Change::Resync(reason) => assert!(reason.contains("channels"), "{reason}"),
            other => panic!("a changed primary key resyncs: {other:?}"),
        }
    }

    #[test]
    fn invalid_schema_names_origin_and_path() {
        let e = check(&files(
            &SCHEMA.replace(r#""primaryKey":["id"]"#, r#""primaryKey":["nope"]"#),
        ))
        .unwrap_err();
        assert!(e.contains("ConfigMap demo/s key schema.json"), "{e}");
        assert!(e.contains("primaryKey"), "{e}");
    }
}
