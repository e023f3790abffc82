//! The identity diff: the rows a document yielded before a change against those it yields
//! after, as inserts (new keys), updates (same key, other values) and deletes (keys gone).
//!
//! The before-set is held as one SHA-256 digest of the row's values per key, never as rows, and
//! the after-rows are compared as they are produced: memory grows with the number of keys, not
//! with the size of the rows. Deletes come last, once every after-row has been seen. Two rows
//! with one key in the same document (MongoDB would return both; a table keeps one) come out
//! as one insert or update per occurrence, so the last one wins, as in an initial sync.

use std::collections::{HashMap, HashSet};

use bson::RawDocument;
use sha2::{Digest, Sha256};

use super::{CompiledPipeline, Key, KeyedRow, RowError};

/// One change to the replica.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    Insert(KeyedRow),
    Update(KeyedRow),
    Delete(Key),
}

/// Keys are compared by their JSON text (the columns are always in key order).
fn key_text(key: &Key) -> String {
    serde_json::to_string(key).expect("JSON values serialize")
}

fn digest(row: &KeyedRow) -> [u8; 32] {
    let bytes = serde_json::to_vec(&row.row.values).expect("JSON values serialize");
    Sha256::digest(bytes).into()
}

/// The changes that turn the rows of `before` into the rows of `after` (either may be absent:
/// an insert has no before, a delete no after). Rows that cannot be keyed come out as errors,
/// in place, for the caller to log; a before-row that cannot be keyed was never in the replica.
pub fn diff<'a>(
    pipeline: &'a CompiledPipeline,
    before: Option<&RawDocument>,
    after: Option<&'a RawDocument>,
) -> Diff<'a> {
    let mut old = HashMap::new();
    if let Some(b) = before {
        for r in pipeline.rows(b).flatten() {
            old.insert(key_text(&r.key), Some(digest(&r)));
        }
    }
    Diff::new(pipeline, old, after)
}

/// The diff when there is no before-document, for a pipeline that does not need one: the
/// document had at most the one row whose key `documentKey` gives, with unknown values (so a
/// row with that key after the change is sent whole, as an insert: zero-cache upserts it).
pub fn diff_from_document_key<'a>(
    pipeline: &'a CompiledPipeline,
    document_key: &RawDocument,
    after: Option<&'a RawDocument>,
) -> Diff<'a> {
    let mut old = HashMap::new();
    if let Some(k) = pipeline.key_from_document_key(document_key) {
        old.insert(key_text(&k), None);
    }
    Diff::new(pipeline, old, after)
}

/// The changes, lazily.
pub struct Diff<'a> {
    /// Before-keys not seen in the after-rows yet → digest (None: unknown values).
    old: HashMap<String, Option<[u8; 32]>>,
    /// After-keys seen so far.
    seen: HashSet<String>,
    after: Option<Box<dyn Iterator<Item = Result<KeyedRow, RowError>> + Send + 'a>>,
    deletes: Option<std::collections::hash_map::IntoIter<String, Option<[u8; 32]>>>,
}

impl<'a> Diff<'a> {
    fn new(
        pipeline: &'a CompiledPipeline,
        old: HashMap<String, Option<[u8; 32]>>,
        after: Option<&'a RawDocument>,
    ) -> Diff<'a> {
        Diff {
            old,
            seen: HashSet::new(),
            after: after.map(|a| {
                Box::new(pipeline.rows(a))
                    as Box<dyn Iterator<Item = Result<KeyedRow, RowError>> + Send + 'a>
            }),
            deletes: None,
        }
    }
}

impl Iterator for Diff<'_> {
    type Item = Result<Change, RowError>;

    fn next(&mut self) -> Option<Self::Item> {
        while let Some(after) = self.after.as_mut() {
            let Some(r) = after.next() else {
                self.after = None;
                break;
            };
            let r = match r {
                Ok(r) => r,
                Err(e) => return Some(Err(e)),
            };
            let k = key_text(&r.key);
            if !self.seen.insert(k.clone()) {
                // The same key again in this document: the last row wins.
                return Some(Ok(Change::Update(r)));
            }
            match self.old.remove(&k) {
                // New, or its old values are unknown (then maybe not in the replica either):
                // an insert, which zero-cache applies as an upsert.
                None | Some(None) => return Some(Ok(Change::Insert(r))),
                Some(Some(d)) if d == digest(&r) => continue,
                Some(Some(_)) => return Some(Ok(Change::Update(r))),
            }
        }
        let deletes = self
            .deletes
            .get_or_insert_with(|| std::mem::take(&mut self.old).into_iter());
        let (k, _) = deletes.next()?;
        let key: Key = serde_json::from_str(&k).expect("written by key_text");
        Some(Ok(Change::Delete(key)))
    }
}
