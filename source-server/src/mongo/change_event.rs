//! One MongoDB change event, read from raw BSON: what happened, to which collection, and which
//! MongoDB transaction it belongs to.
//!
//! Kept apart from the cursor (`change_stream`) because this is the part that knows the shape of
//! an event. It runs once per event on the hot path, so it reads the few fields it needs from the
//! raw reply and copies only the two documents the rows are made of (`documentKey`,
//! `fullDocument`, and the pre-image when asked for); nothing else of the event is decoded.

use bson::{Bson, RawBsonRef, RawDocument, RawDocumentBuf};
use thiserror::Error;

use crate::mongo::cluster_time::ClusterTime;
use crate::rows::Fields;

#[derive(Debug, Clone, PartialEq)]
pub enum Operation {
    Insert,
    Update,
    Replace,
    Delete,
    /// Drop, rename, dropDatabase or invalidate: the collection as we knew it is gone.
    Invalidating(String),
    Other(String),
}

/// The events of one MongoDB transaction share `lsid` + `txnNumber`; anything else is grouped by
/// cluster time (a batched write can put several events at one cluster time, and they must not
/// be split, since resume skips everything at or before the last commit's cluster time).
#[derive(Debug, Clone, PartialEq)]
pub enum GroupId {
    Txn { lsid: Bson, txn_number: i64 },
    Time(ClusterTime),
}

#[derive(Debug, Clone)]
pub struct ChangeEvent {
    pub operation: Operation,
    pub collection: Option<String>,
    /// A rename's target (`to.coll`): a rename onto a mapped name replaces that collection.
    pub to_collection: Option<String>,
    pub document_key: Option<RawDocumentBuf>,
    pub full_document: Option<RawDocumentBuf>,
    /// The pre-image, when the stream asks for them and the collection keeps them.
    pub full_document_before_change: Option<RawDocumentBuf>,
    pub cluster_time: ClusterTime,
    pub group: GroupId,
    pub wall_time_ms: Option<i64>,
}

/// A change event without a field the protocol needs, or with one of the wrong type.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("{0}")]
pub struct MalformedEvent(pub String);

fn malformed(what: impl Into<String>) -> MalformedEvent {
    MalformedEvent(what.into())
}

impl ChangeEvent {
    /// Reads the fields we use from a raw change event, copying only the two documents.
    pub fn from_raw(d: &RawDocument) -> Result<Self, MalformedEvent> {
        Self::from_fields(&Fields::of(d))
    }

    /// Reads an event from its fields (split once by the caller, which also used them to decide
    /// whether the event is [`wanted`]).
    pub(super) fn from_fields(fields: &Fields<'_>) -> Result<Self, MalformedEvent> {
        let cluster_time = match fields.get("clusterTime") {
            Some(RawBsonRef::Timestamp(ts)) => ClusterTime::from_timestamp(ts),
            _ => return Err(malformed("event without clusterTime")),
        };
        let operation = match fields.get("operationType") {
            Some(RawBsonRef::String("insert")) => Operation::Insert,
            Some(RawBsonRef::String("update")) => Operation::Update,
            Some(RawBsonRef::String("replace")) => Operation::Replace,
            Some(RawBsonRef::String("delete")) => Operation::Delete,
            Some(RawBsonRef::String(op @ ("drop" | "rename" | "dropDatabase" | "invalidate"))) => {
                Operation::Invalidating(op.to_string())
            }
            Some(RawBsonRef::String(other)) => Operation::Other(other.to_string()),
            _ => return Err(malformed("event without operationType")),
        };
        let collection = match fields.get("ns") {
            Some(RawBsonRef::Document(ns)) => ns.get_str("coll").ok().map(str::to_string),
            _ => None,
        };
        let to_collection = match fields.get("to") {
            Some(RawBsonRef::Document(to)) => to.get_str("coll").ok().map(str::to_string),
            _ => None,
        };
        let group = match (fields.get("lsid"), fields.get("txnNumber")) {
            (Some(lsid), Some(n)) => GroupId::Txn {
                // The session id's `id` (a UUID) names the session; `uid` only repeats the user.
                lsid: {
                    let id = match lsid {
                        RawBsonRef::Document(l) => l.get("id").ok().flatten().unwrap_or(lsid),
                        other => other,
                    };
                    Bson::try_from(id).map_err(|e| malformed(format!("lsid: {e}")))?
                },
                txn_number: match n {
                    RawBsonRef::Int64(n) => n,
                    RawBsonRef::Int32(n) => n as i64,
                    _ => return Err(malformed("txnNumber is not an integer")),
                },
            },
            _ => GroupId::Time(cluster_time),
        };
        let wall_time_ms = match fields.get("wallTime") {
            Some(RawBsonRef::DateTime(t)) => Some(t.timestamp_millis()),
            _ => None,
        };
        let doc_of = |k: &str| fields.document(k).map(RawDocument::to_owned);
        Ok(ChangeEvent {
            document_key: doc_of("documentKey"),
            full_document: doc_of("fullDocument"),
            full_document_before_change: doc_of("fullDocumentBeforeChange"),
            operation,
            collection,
            to_collection,
            cluster_time,
            group,
            wall_time_ms,
        })
    }
}

/// Whether an event concerns us: a change in one of `collections`, a rename onto one of them
/// (the bulk-reload pattern: load a temporary collection, rename it over the mapped one), or the
/// end of the database or of the stream.
pub(super) fn wanted(event: &Fields<'_>, collections: &[String]) -> bool {
    let mapped = |coll: &str| collections.iter().any(|c| c == coll);
    if let Some(Ok(to)) = event.document("to").map(|to| to.get_str("coll"))
        && mapped(to)
    {
        return true;
    }
    match event.document("ns").map(|ns| ns.get_str("coll")) {
        Some(Ok(coll)) => mapped(coll),
        _ => matches!(
            event.get("operationType"),
            Some(RawBsonRef::String("dropDatabase" | "invalidate"))
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::{Document, RawDocumentBuf, Timestamp, doc};

    fn event(d: Document) -> Result<ChangeEvent, MalformedEvent> {
        ChangeEvent::from_raw(&RawDocumentBuf::try_from(&d).unwrap())
    }

    #[test]
    fn transaction_events_share_a_group_and_plain_writes_group_by_time() {
        let t = Timestamp {
            time: 10,
            increment: 2,
        };
        let txn = |coll: &str| {
            doc! {
                "operationType": "insert", "clusterTime": t, "ns": {"db": "d", "coll": coll},
                "documentKey": {"_id": 1}, "fullDocument": {"_id": 1},
                "lsid": {"id": Bson::Binary(bson::Binary{subtype: bson::spec::BinarySubtype::Uuid, bytes: vec![1; 16]}), "uid": Bson::Binary(bson::Binary{subtype: bson::spec::BinarySubtype::Generic, bytes: vec![2; 32]})},
                "txnNumber": 7i64,
            }
        };
        let a = event(txn("a")).unwrap();
        let b = event(txn("b")).unwrap();
        assert_eq!(a.group, b.group);
        assert_eq!(a.collection.as_deref(), Some("a"));
        assert!(a.full_document.is_some() && a.document_key.is_some());
        let plain = event(doc! {
            "operationType": "delete", "clusterTime": t, "ns": {"db": "d", "coll": "a"}, "documentKey": {"_id": 1},
        })
        .unwrap();
        assert_eq!(plain.group, GroupId::Time(ClusterTime::new(10, 2)));
        assert_eq!(plain.operation, Operation::Delete);
    }

    #[test]
    fn only_mapped_collections_and_database_ends_are_wanted() {
        let mapped = ["rooms".to_string(), "messages".to_string()];
        let keep =
            |d: Document| wanted(&Fields::of(&RawDocumentBuf::try_from(&d).unwrap()), &mapped);
        assert!(keep(
            doc! {"operationType": "insert", "ns": {"db": "d", "coll": "rooms"}}
        ));
        assert!(keep(
            doc! {"operationType": "drop", "ns": {"db": "d", "coll": "messages"}}
        ));
        assert!(!keep(
            doc! {"operationType": "insert", "ns": {"db": "d", "coll": "audit"}}
        ));
        assert!(!keep(
            doc! {"operationType": "drop", "ns": {"db": "d", "coll": "audit"}}
        ));
        assert!(keep(
            doc! {"operationType": "rename", "ns": {"db": "d", "coll": "rooms_tmp"}, "to": {"db": "d", "coll": "rooms"}}
        ));
        assert!(!keep(
            doc! {"operationType": "rename", "ns": {"db": "d", "coll": "a_tmp"}, "to": {"db": "d", "coll": "a"}}
        ));
        assert!(keep(
            doc! {"operationType": "dropDatabase", "ns": {"db": "d"}}
        ));
        assert!(keep(doc! {"operationType": "invalidate"}));
    }

    #[test]
    fn drops_renames_and_invalidates_are_flagged() {
        let t = Timestamp {
            time: 1,
            increment: 1,
        };
        for op in ["drop", "rename", "dropDatabase", "invalidate"] {
            let e = event(doc! {"operationType": op, "clusterTime": t}).unwrap();
            assert_eq!(e.operation, Operation::Invalidating(op.into()));
        }
        assert!(event(doc! {"operationType": "insert"}).is_err());
    }
}
