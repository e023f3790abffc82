//! Tests of `CompiledPipeline` and the diff over specs loaded the way the server loads them.
//! (What MongoDB itself returns for the same pipelines is checked in
//! `tests/pipeline_aggregate.rs`, against a real server.)

use bson::{Bson, RawDocumentBuf, doc};
use serde_json::{Value, json};
use zerostack_spec::{Source, load};

use super::*;

fn col(t: &str, optional: bool) -> Value {
    json!({"type": t, "optional": optional, "customType": null})
}

/// The one pipeline table of a schema with `columns` and `primary_key`.
fn table(columns: Value, primary_key: &[&str], pipeline: Value) -> CompiledPipeline {
    let schema =
        json!({"tables": {"t": {"name": "t", "columns": columns, "primaryKey": primary_key}}});
    let mappings = json!({"t": {"source": "c", "pipeline": pipeline}});
    let (s, m) = (schema.to_string(), mappings.to_string());
    let cfg = load(
        Source {
            origin: "schema",
            text: &s,
        },
        Some(Source {
            origin: "mappings",
            text: &m,
        }),
        None,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    CompiledPipeline::compile(&cfg.tables[0], cfg.pipeline("t").unwrap()).unwrap()
}

fn members() -> CompiledPipeline {
    table(
        json!({"accountId": col("string", false), "userId": col("string", false),
               "role": col("string", true), "name": col("string", true)}),
        &["accountId", "userId"],
        json!([
            {"$match": {"bundle": "ENTERPRISE"}},
            {"$unwind": "$members"},
            {"$addFields": {"accountId": "$_id", "userId": "$members.id", "role": "$members.role"}}
        ]),
    )
}

fn raw(d: bson::Document) -> RawDocumentBuf {
    RawDocumentBuf::try_from(&d).unwrap()
}

fn rows(p: &CompiledPipeline, d: bson::Document) -> Vec<Value> {
    p.rows(&raw(d))
        .map(|r| Value::Object(r.unwrap().row.values))
        .collect()
}

fn account(members: Bson) -> bson::Document {
    doc! {"_id": "a1", "bundle": "ENTERPRISE", "name": "Acme", "members": members}
}

#[test]
fn the_account_members_example() {
    let p = members();
    assert!(p.needs_pre_images());
    assert_eq!(
        p.find_query(),
        Some(&doc! {"bundle": {"$eq": "ENTERPRISE"}})
    );
    let d = account(bson::bson!([{"id": "u1", "role": "owner"}, {"id": "u2", "role": "dev"}]));
    assert_eq!(
        rows(&p, d),
        [
            json!({"accountId": "a1", "userId": "u1", "role": "owner", "name": "Acme"}),
            json!({"accountId": "a1", "userId": "u2", "role": "dev", "name": "Acme"}),
        ]
    );
    let keys: Vec<Key> = p
        .rows(&raw(account(bson::bson!([{"id": "u1"}]))))
        .map(|r| r.unwrap().key)
        .collect();
    assert_eq!(
        Value::Array(keys.into_iter().map(Value::Object).collect()),
        json!([{"accountId": "a1", "userId": "u1"}])
    );
    // Not ENTERPRISE: no rows.
    let mut d = account(bson::bson!([{"id": "u1"}]));
    d.insert("bundle", "FREE");
    assert!(rows(&p, d).is_empty());
    // An element without an id: that row cannot be keyed; the others still come.
    let out: Vec<_> = p
        .rows(&raw(account(bson::bson!([{"role": "x"}, {"id": "u3"}]))))
        .collect();
    assert_eq!(
        out[0],
        Err(RowError::MissingKey {
            column: "userId".into()
        })
    );
    assert_eq!(out[1].as_ref().unwrap().key["userId"], json!("u3"));
}

#[test]
fn unwind_options_missing_empty_and_scalar_arrays() {
    let p = table(
        json!({"_id": col("string", false), "i": col("number", false), "tags": col("json", true)}),
        &["_id", "i"],
        json!([{"$unwind": {"path": "$tags", "includeArrayIndex": "i", "preserveNullAndEmptyArrays": true}}]),
    );
    let docs = |d: bson::Document| -> Vec<bson::Document> {
        p.documents(&raw(d)).map(Result::unwrap).collect()
    };
    assert_eq!(
        docs(doc! {"_id": "x", "tags": ["a", "b"]}),
        [
            doc! {"_id": "x", "tags": "a", "i": 0i64},
            doc! {"_id": "x", "tags": "b", "i": 1i64}
        ]
    );
    assert_eq!(
        docs(doc! {"_id": "x", "tags": []}),
        [doc! {"_id": "x", "i": Bson::Null}]
    );
    assert_eq!(
        docs(doc! {"_id": "x", "tags": Bson::Null}),
        [doc! {"_id": "x", "tags": Bson::Null, "i": Bson::Null}]
    );
    assert_eq!(
        docs(doc! {"_id": "x"}),
        [doc! {"_id": "x", "i": Bson::Null}]
    );
    assert_eq!(
        docs(doc! {"_id": "x", "tags": "solo"}),
        [doc! {"_id": "x", "tags": "solo", "i": Bson::Null}]
    );
    // Without preserveNullAndEmptyArrays, those documents yield nothing.
    let strict = table(
        json!({"_id": col("string", false), "tags": col("string", false)}),
        &["_id", "tags"],
        json!([{"$unwind": "$tags"}]),
    );
    for d in [
        doc! {"_id": "x", "tags": []},
        doc! {"_id": "x", "tags": Bson::Null},
        doc! {"_id": "x"},
    ] {
        assert_eq!(strict.documents(&raw(d)).count(), 0);
    }
}

#[test]
fn ten_thousand_elements_are_yielded_one_at_a_time() {
    let p = table(
        json!({"_id": col("string", false), "i": col("number", false), "items": col("json", true)}),
        &["_id", "i"],
        json!([{"$unwind": {"path": "$items", "includeArrayIndex": "i"}}]),
    );
    let items: Vec<Bson> = (0..10_000).map(|n| Bson::Document(doc! {"n": n})).collect();
    let d = raw(doc! {"_id": "big", "items": items});
    let mut it = p.rows(&d);
    // Lazy: the iterator hands out rows without having built the rest.
    let first = it.next().unwrap().unwrap();
    assert_eq!(first.key["i"], json!(0));
    assert_eq!(first.row.values["items"], json!({"n": 0}));
    assert_eq!(it.count(), 9_999);
}

#[test]
fn expressions_and_repeated_stages() {
    let p = table(
        json!({"_id": col("string", false), "label": col("string", true), "n": col("string", true),
               "alt": col("string", true), "o": col("json", true), "k": col("string", false)}),
        &["k"],
        json!([
            {"$set": {"label": {"$concat": ["$first", " ", "$last"]}, "n": {"$toString": "$num"},
                      "alt": {"$ifNull": ["$nick", "$first"]}, "o": {"a": "$num", "b": [1, "$missing"]},
                      "lit": {"$literal": "$x"}}},
            {"$set": {"k": {"$concat": ["$_id", ":", "$n"]}}},
            {"$project": {"_id": 1, "label": 1, "n": 1, "alt": 1, "o": 1, "k": 1}}
        ]),
    );
    let d = doc! {"_id": "d1", "first": "Ada", "last": "Lovelace", "num": 7, "other": true};
    assert_eq!(
        rows(&p, d),
        [
            json!({"_id": "d1", "label": "Ada Lovelace", "n": "7", "alt": "Ada",
                "o": {"a": 7, "b": [1, null]}, "k": "d1:7"})
        ]
    );
    // $concat of a missing part is null; $ifNull falls through null and missing.
    let d = doc! {"_id": "d2", "first": Bson::Null, "nick": Bson::Null, "num": 1};
    let r = rows(&p, d);
    assert_eq!(r[0]["label"], Value::Null);
    assert_eq!(r[0]["alt"], Value::Null);
    // $concat of a number fails where aggregate would fail, naming the stage.
    let out: Vec<_> = p
        .rows(&raw(doc! {"_id": "d3", "first": 5, "last": "x", "num": 1}))
        .collect();
    assert!(
        matches!(&out[..], [Err(RowError::Stage(StageError { stage: 0, message }))] if message.contains("$concat only supports strings")),
        "{out:?}"
    );
}

#[test]
fn match_after_unwind_and_projections() {
    let p = table(
        json!({"id": col("string", false), "qty": col("number", true)}),
        &["id"],
        json!([
            {"$unwind": "$items"},
            {"$match": {"items.qty": {"$gte": 2}}},
            {"$project": {"_id": 0, "id": {"$concat": ["$_id", "/", "$items.sku"]}, "qty": "$items.qty"}},
            {"$project": {"ignored": 0}}
        ]),
    );
    let d = doc! {"_id": "o1", "items": [{"sku": "a", "qty": 1}, {"sku": "b", "qty": 2}, {"sku": "c", "qty": 3}]};
    assert_eq!(
        rows(&p, d),
        [
            json!({"id": "o1/b", "qty": 2}),
            json!({"id": "o1/c", "qty": 3})
        ]
    );
    let docs: Vec<_> = p
        .documents(&raw(doc! {"_id": "o2", "items": [{"sku": "z", "qty": 9}]}))
        .map(Result::unwrap)
        .collect();
    assert_eq!(docs, [doc! {"id": "o2/z", "qty": 9}]);
}

fn changes(
    p: &CompiledPipeline,
    before: Option<bson::Document>,
    after: Option<bson::Document>,
) -> Vec<String> {
    let (b, a) = (before.map(raw), after.map(raw));
    let mut out: Vec<String> = diff(p, b.as_deref(), a.as_deref())
        .map(|c| match c.unwrap() {
            Change::Insert(r) => format!("insert {} {}", r.key["userId"], r.row.values["role"]),
            Change::Update(r) => format!("update {} {}", r.key["userId"], r.row.values["role"]),
            Change::Delete(k) => format!("delete {}", k["userId"]),
        })
        .collect();
    out.sort();
    out
}

#[test]
fn the_diff_sends_only_what_changed() {
    let p = members();
    let m = |list: Bson| Some(account(list));
    let two = bson::bson!([{"id": "u1", "role": "owner"}, {"id": "u2", "role": "dev"}]);
    // Insert, delete.
    assert_eq!(
        changes(&p, None, m(two.clone())),
        ["insert \"u1\" \"owner\"", "insert \"u2\" \"dev\""]
    );
    assert_eq!(
        changes(&p, m(two.clone()), None),
        ["delete \"u1\"", "delete \"u2\""]
    );
    // Nothing changed in the rows (only a field no column reads): nothing sent.
    let mut same = account(two.clone());
    same.insert("unrelated", 1);
    assert!(changes(&p, m(two.clone()), Some(same)).is_empty());
    // Reorder: same keys, same values: nothing.
    let reordered = bson::bson!([{"id": "u2", "role": "dev"}, {"id": "u1", "role": "owner"}]);
    assert!(changes(&p, m(two.clone()), m(reordered)).is_empty());
    // Add, remove, modify.
    let next = bson::bson!([{"id": "u1", "role": "admin"}, {"id": "u3", "role": "dev"}]);
    assert_eq!(
        changes(&p, m(two.clone()), m(next)),
        [
            "delete \"u2\"",
            "insert \"u3\" \"dev\"",
            "update \"u1\" \"admin\""
        ]
    );
    // Leaving the $match deletes every row; coming back inserts them.
    let mut free = account(two.clone());
    free.insert("bundle", "FREE");
    assert_eq!(
        changes(&p, m(two.clone()), Some(free.clone())),
        ["delete \"u1\"", "delete \"u2\""]
    );
    assert_eq!(changes(&p, Some(free), m(two.clone())).len(), 2);
    // A column every row shares (the account's name) changes: every row is updated.
    let mut renamed = account(two.clone());
    renamed.insert("name", "Acme 2");
    assert_eq!(changes(&p, m(two), Some(renamed)).len(), 2);
}

#[test]
fn without_pre_images_the_key_comes_from_the_document_key() {
    let p = table(
        json!({"id": col("string", false), "name": col("string", true)}),
        &["id"],
        json!([{"$match": {"t": "x"}}, {"$set": {"id": {"$toString": "$_id"}}}]),
    );
    assert!(!p.needs_pre_images());
    let oid = bson::oid::ObjectId::parse_str("5f0c9a8e1c9d440000a1b2c3").unwrap();
    let dk = raw(doc! {"_id": oid});
    assert_eq!(
        p.key_from_document_key(&dk).map(Value::Object),
        Some(json!({"id": "5f0c9a8e1c9d440000a1b2c3"}))
    );
    // A delete (no after): the one possible row is deleted.
    let out: Vec<_> = diff_from_document_key(&p, &dk, None)
        .map(Result::unwrap)
        .collect();
    assert_eq!(out, [Change::Delete(p.key_from_document_key(&dk).unwrap())]);
    // An update that stops matching: deleted; one that still matches: sent whole (an upsert,
    // since it may not have matched before).
    let gone = raw(doc! {"_id": oid, "t": "y"});
    assert!(matches!(
        &diff_from_document_key(&p, &dk, Some(&gone))
            .map(Result::unwrap)
            .collect::<Vec<_>>()[..],
        [Change::Delete(_)]
    ));
    let kept = raw(doc! {"_id": oid, "t": "x", "name": "n"});
    assert!(matches!(
        &diff_from_document_key(&p, &dk, Some(&kept))
            .map(Result::unwrap)
            .collect::<Vec<_>>()[..],
        [Change::Insert(_)]
    ));
    // A pipeline that needs pre-images never guesses a key.
    assert_eq!(
        members().key_from_document_key(&raw(doc! {"_id": "a1"})),
        None
    );
}

#[test]
fn event_messages_send_the_diff_and_refuse_to_guess() {
    use crate::metrics::Metrics;
    use changes::{Event, EventKind, PreImageMissing, event_messages};
    let p = members();
    let metrics = Metrics::new();
    let rel = r#"{"schema":"public","name":"t","keyColumns":["accountId","userId"]}"#;
    let two = raw(account(
        bson::bson!([{"id": "u1", "role": "a"}, {"id": "u2", "role": "b"}]),
    ));
    let one = raw(account(bson::bson!([{"id": "u2", "role": "c"}])));
    let dk = raw(doc! {"_id": "a1"});
    let run = |kind, before: Option<&RawDocumentBuf>, after: Option<&RawDocumentBuf>| {
        let mut out = Vec::new();
        let event = Event {
            kind,
            document_key: Some(&dk),
            before: before.map(|d| &**d),
            after: after.map(|d| &**d),
        };
        event_messages(&p, rel, event, &metrics, &mut out).map(|n| {
            assert_eq!(n, out.len());
            let mut tags: Vec<String> = out
                .iter()
                .map(|m| {
                    let v: Value = serde_json::from_str(m).unwrap();
                    let row = &v[1];
                    let id = row["new"]["userId"]
                        .as_str()
                        .or(row["key"]["userId"].as_str());
                    format!("{} {}", row["tag"].as_str().unwrap(), id.unwrap())
                })
                .collect();
            tags.sort();
            tags
        })
    };
    assert_eq!(
        run(EventKind::Insert, None, Some(&two)).unwrap(),
        ["insert u1", "insert u2"]
    );
    assert_eq!(
        run(EventKind::Update, Some(&two), Some(&one)).unwrap(),
        ["delete u1", "update u2"]
    );
    assert_eq!(
        run(EventKind::Delete, Some(&one), None).unwrap(),
        ["delete u2"]
    );
    // An update whose document is gone (updateLookup found nothing): its delete follows.
    assert_eq!(
        run(EventKind::Update, Some(&two), None).unwrap(),
        Vec::<String>::new()
    );
    // No pre-image where the rows can only be known from it: refused, never guessed.
    let missing = Err(PreImageMissing { table: "t".into() });
    assert_eq!(run(EventKind::Update, None, Some(&one)), missing);
    assert_eq!(run(EventKind::Delete, None, None), missing);
}
