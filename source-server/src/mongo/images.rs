//! Which collections need MongoDB's pre- and post-images (`changeStreamPreAndPostImages`), and
//! whether they have them.
//!
//! Two things depend on them, and both would otherwise lose changes without a word:
//! - `FULL_DOCUMENT=whenAvailable|required` reads every update's document from its post-image;
//!   on a collection without them, updates arrive without a document;
//! - a table whose primary key is not derived from `_id` can only find the row a delete or a key
//!   change leaves behind in the document as it was (`fullDocumentBeforeChange`).
//!
//! So the source checks, at start-up and on every (re)connection, that each such collection has
//! them enabled, and refuses otherwise. It never turns them on itself: that is a change to the
//! user's database (and to its storage) that an operator decides.

use std::collections::BTreeMap;
use std::sync::Arc;

use bson::{Document, doc};
use futures::TryStreamExt;
use mongodb::Database;
use thiserror::Error;

use crate::config::streaming::FullDocument;
use crate::rows::CompiledTable;

/// Collection → why it needs images.
pub type Needs = BTreeMap<String, String>;

/// What needs images: every collection of `collections` under a post-image `full_document`,
/// and the collection of every table of `tables` whose key is not derived from `_id`.
pub fn needed(
    tables: &[Arc<CompiledTable>],
    collections: &[String],
    full_document: FullDocument,
) -> Needs {
    let mut needs = Needs::new();
    if full_document != FullDocument::UpdateLookup {
        for c in collections {
            needs.insert(
                c.clone(),
                format!("FULL_DOCUMENT={}", full_document.as_str()),
            );
        }
    }
    for t in tables.iter().filter(|t| !t.key_from_id()) {
        let spec = t.spec();
        needs.entry(spec.source.clone()).or_insert_with(|| {
            format!(
                "table {:?} has primary key {:?}, not derived from _id, so a delete finds its row only in the pre-image",
                spec.name,
                t.key_names().join(", ")
            )
        });
    }
    needs
}

/// Whether any table needs the change stream's pre-images (`fullDocumentBeforeChange`).
pub fn pre_images_needed(tables: &[Arc<CompiledTable>]) -> bool {
    tables.iter().any(|t| !t.key_from_id())
}

#[derive(Debug, Error)]
pub enum ImagesError {
    /// One line naming each collection and why it needs them, and how to enable them.
    #[error(
        "changeStreamPreAndPostImages is not enabled on {}; enable it with db.runCommand({{collMod: <collection>, changeStreamPreAndPostImages: {{enabled: true}}}})",
        .0.iter().map(|(c, why)| format!("collection {c:?} (needed: {why})")).collect::<Vec<_>>().join(", ")
    )]
    Disabled(Vec<(String, String)>),
    #[error("cannot list the collections to check changeStreamPreAndPostImages: {0}")]
    Mongo(#[from] mongodb::error::Error),
}

/// Checks `needs` against the database; returns the collections that do not exist yet (they
/// cannot have images until created, which is reported, not refused: the bookkeeping
/// collections appear with the first mutation).
pub async fn check(db: &Database, needs: &Needs) -> Result<Vec<String>, ImagesError> {
    if needs.is_empty() {
        return Ok(Vec::new());
    }
    let names: Vec<&String> = needs.keys().collect();
    let specs: Vec<Document> = db
        .run_cursor_command(doc! {
            "listCollections": 1,
            "filter": {"name": {"$in": names}},
            "nameOnly": false,
        })
        .await?
        .try_collect()
        .await?;
    let enabled = |name: &str| {
        specs
            .iter()
            .find(|s| s.get_str("name").ok() == Some(name))
            .map(|s| {
                s.get_document("options")
                    .and_then(|o| o.get_document("changeStreamPreAndPostImages"))
                    .and_then(|p| p.get_bool("enabled"))
                    .unwrap_or(false)
            })
    };
    let mut disabled = Vec::new();
    let mut missing = Vec::new();
    for (c, why) in needs {
        match enabled(c) {
            Some(true) => {}
            Some(false) => disabled.push((c.clone(), why.clone())),
            None => missing.push(c.clone()),
        }
    }
    if disabled.is_empty() {
        Ok(missing)
    } else {
        Err(ImagesError::Disabled(disabled))
    }
}
