//! Our pipeline evaluator against MongoDB's own `aggregate`, on a real replica set.
//!
//! For every case, each document is inserted, read back as the raw BSON MongoDB stores, and run
//! through `CompiledPipeline::documents`; the expected output is what
//! `aggregate([{$match: {_id}}, ...pipeline])` returns for that document. The two are compared
//! as encoded BSON, so field order and number types must match too, not just values. Nothing
//! expected is written down here: MongoDB is the oracle.

use bson::{Bson, Document, RawDocumentBuf, doc};
use futures::TryStreamExt;
use serde_json::{Value, json};
use source_server::pipeline::CompiledPipeline;
use zerostack_harness::Mongo;
use zerostack_spec::{Source, load};

fn col(t: &str, optional: bool) -> Value {
    json!({"type": t, "optional": optional, "customType": null})
}

struct Case {
    name: &'static str,
    columns: Value,
    primary_key: Vec<&'static str>,
    pipeline: Value,
    docs: Vec<Document>,
}

fn compile(c: &Case) -> CompiledPipeline {
    let schema =
        json!({"tables": {"t": {"name": "t", "columns": c.columns, "primaryKey": c.primary_key}}});
    let mappings =
        json!({"version": 1, "mappings": {"t": {"source": c.name, "pipeline": c.pipeline}}});
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
    .unwrap_or_else(|e| panic!("{}: {e}", c.name));
    CompiledPipeline::compile(&cfg.tables[0], cfg.pipeline("t").unwrap()).unwrap()
}

fn oid(n: u8) -> Bson {
    Bson::ObjectId(bson::oid::ObjectId::from_bytes([n; 12]))
}

fn cases() -> Vec<Case> {
    let when = Bson::DateTime(bson::DateTime::from_millis(1_714_564_800_123));
    vec![
        Case {
            name: "account_members",
            columns: json!({"accountId": col("string", false), "userId": col("string", false),
                            "role": col("string", true)}),
            primary_key: vec!["accountId", "userId"],
            pipeline: json!([
                {"$match": {"bundle": "ENTERPRISE"}},
                {"$unwind": "$members"},
                {"$addFields": {"accountId": "$_id", "userId": "$members.id", "role": "$members.role"}}
            ]),
            docs: vec![
                doc! {"_id": oid(1), "bundle": "ENTERPRISE", "name": "Acme",
                "members": [{"id": "u1", "role": "owner"}, {"id": "u2", "role": "dev"}, {"id": "u3"}]},
                doc! {"_id": oid(2), "bundle": "FREE", "members": [{"id": "u1", "role": "owner"}]},
                doc! {"_id": oid(3), "bundle": "ENTERPRISE", "members": []},
                doc! {"_id": oid(4), "bundle": "ENTERPRISE"},
                doc! {"_id": oid(5), "bundle": "ENTERPRISE", "members": Bson::Null},
                doc! {"_id": oid(6), "bundle": "ENTERPRISE", "members": {"id": "solo", "role": "x"}},
            ],
        },
        Case {
            name: "preserve_and_index",
            columns: json!({"_id": col("string", false), "i": col("number", false), "tags": col("json", true)}),
            primary_key: vec!["_id", "i"],
            pipeline: json!([
                {"$unwind": {"path": "$tags", "includeArrayIndex": "i", "preserveNullAndEmptyArrays": true}}
            ]),
            docs: vec![
                doc! {"_id": "arr", "a": 1, "tags": ["x", "y", {"k": 1}], "z": 2},
                doc! {"_id": "empty", "a": 1, "tags": [], "z": 2},
                doc! {"_id": "null", "a": 1, "tags": Bson::Null, "z": 2},
                doc! {"_id": "missing", "a": 1, "z": 2},
                doc! {"_id": "scalar", "a": 1, "tags": "one", "z": 2},
                doc! {"_id": "existing_index", "i": "old", "tags": [true, false]},
            ],
        },
        Case {
            name: "index_without_preserve",
            columns: json!({"_id": col("string", false), "pos": col("number", false)}),
            primary_key: vec!["_id", "pos"],
            pipeline: json!([{"$unwind": {"path": "$tags", "includeArrayIndex": "pos"}}]),
            docs: vec![
                doc! {"_id": "arr", "tags": [1, 2, 3]},
                doc! {"_id": "empty", "tags": []},
                doc! {"_id": "null", "tags": Bson::Null},
                doc! {"_id": "missing"},
            ],
        },
        Case {
            name: "nested_paths",
            columns: json!({"_id": col("string", false), "role": col("string", false)}),
            primary_key: vec!["_id", "role"],
            pipeline: json!([
                {"$unwind": "$profile.roles"},
                {"$addFields": {"role": "$profile.roles", "profile.first": "$profile.roles",
                                "deep.a.b": "$_id", "items.flag": true,
                                "profile.more": {"n": "$name", "when": "$when"}}},
                {"$set": {"profile": {"extra": {"$concat": ["$name", "!"]}}}}
            ]),
            docs: vec![
                doc! {"_id": "p1", "name": "Ada", "when": when.clone(),
                "profile": {"roles": ["admin", "dev"], "keep": 1, "more": {"old": true}},
                "items": [{"x": 1}, 5, {"x": 2}]},
                doc! {"_id": "p2", "name": "Bob", "profile": {"roles": "solo"}, "deep": 3},
                doc! {"_id": "p3", "name": "Cy", "profile": {"roles": []}},
                doc! {"_id": "p4", "name": "Di", "profile": [{"roles": ["a"]}]},
            ],
        },
        Case {
            name: "repeated_stages",
            columns: json!({"gid": col("string", false), "uid": col("string", false),
                            "n": col("number", true), "g": col("json", true)}),
            primary_key: vec!["gid", "uid"],
            pipeline: json!([
                {"$unwind": "$groups"},
                {"$unwind": {"path": "$groups.users", "includeArrayIndex": "n"}},
                {"$set": {"gid": {"$concat": [{"$toString": "$_id"}, "/", "$groups.name"]}}},
                {"$set": {"uid": "$groups.users.id"}},
                {"$project": {"_id": 0, "gid": 1, "uid": 1, "n": 1, "g.name": "$groups.name",
                              "groups.users.id": 1, "z": {"$literal": 1}}},
                {"$project": {"z": 0}}
            ]),
            docs: vec![
                doc! {"_id": oid(7), "groups": [
                {"name": "a", "users": [{"id": "u1", "x": 1}, {"id": "u2"}]},
                {"name": "b", "users": []},
                {"name": "c", "users": [{"id": "u1"}]}]},
                doc! {"_id": oid(8), "groups": []},
            ],
        },
        Case {
            name: "match_after_unwind",
            columns: json!({"id": col("string", false), "qty": col("number", true), "sku": col("string", true)}),
            primary_key: vec!["id"],
            pipeline: json!([
                {"$unwind": "$items"},
                {"$match": {"$or": [{"items.qty": {"$gte": 3}}, {"items.sku": {"$in": ["keep", "also"]}}],
                            "items.gone": {"$exists": false}}},
                {"$addFields": {"id": {"$concat": ["$_id", ":", "$items.sku"]}, "qty": "$items.qty",
                                "sku": "$items.sku"}},
                {"$match": {"qty": {"$ne": 7}}}
            ]),
            docs: vec![
                doc! {"_id": "o1", "items": [
                {"sku": "a", "qty": 1}, {"sku": "keep", "qty": 1}, {"sku": "b", "qty": 5i64},
                {"sku": "c", "qty": 3.5}, {"sku": "d", "qty": 9, "gone": true}, {"sku": "e", "qty": 7}]},
                doc! {"_id": "o2", "items": [{"sku": "x", "qty": 0}]},
            ],
        },
        Case {
            name: "expressions",
            columns: json!({"_id": col("string", false)}),
            primary_key: vec!["_id"],
            pipeline: json!([
                {"$set": {
                    "s_oid": {"$toString": "$ref"}, "s_int": {"$toString": "$n"},
                    "s_date": {"$toString": "$when"}, "s_long": {"$toString": "$big"},
                    "long": {"$toLong": "$n"}, "dbl": {"$toDouble": "$n"}, "int": {"$toInt": "$str_num"},
                    "bad": {"$convert": {"input": "$name", "to": "int", "onError": -1, "onNull": -2}},
                    "nul": {"$convert": {"input": "$nothing", "to": "int", "onError": -1, "onNull": -2}},
                    "cast_missing": {"$toString": "$nothing"},
                    "full": {"$concat": ["$name", " <", "$mail", ">"]},
                    "nulled": {"$concat": ["$name", "$nothing"]},
                    "fallback": {"$ifNull": ["$nothing", "$also_null", "$name"]},
                    "lit": {"$literal": "$name"}, "const": 42, "text": "plain",
                    "arr": ["$name", "$nothing", 1], "obj": {"a": "$n", "b": "$nothing"},
                    "ids": "$list.id", "name": "$nothing"
                }}
            ]),
            docs: vec![
                doc! {"_id": "e1", "ref": oid(9), "n": 12, "when": when, "big": 9_007_199_254_740_993i64,
                "str_num": "41", "name": "Ada", "mail": "a@x", "also_null": Bson::Null,
                "list": [{"id": 1}, {"id": 2}, {"x": 3}, 4]},
            ],
        },
    ]
}

/// A document as encoded BSON (order and types included), and readable for messages.
fn bytes(d: &Document) -> Vec<u8> {
    RawDocumentBuf::try_from(d).unwrap().into_bytes()
}

fn show(docs: &[Document]) -> String {
    docs.iter()
        .map(|d| Bson::Document(d.clone()).into_relaxed_extjson().to_string())
        .collect::<Vec<_>>()
        .join("\n  ")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_evaluator_returns_what_mongodb_aggregate_returns() -> anyhow::Result<()> {
    let mongo = Mongo::start().await?;
    let client = mongo.client().await?;
    let db = client.database("pipelines");
    let mut failures = Vec::new();
    let mut compared = 0;
    for case in cases() {
        let compiled = compile(&case);
        let coll = db.collection::<Document>(case.name);
        coll.insert_many(&case.docs).await?;
        let raw = db.collection::<RawDocumentBuf>(case.name);
        let stages: Vec<Document> = serde_json::from_value::<Vec<Value>>(case.pipeline.clone())?
            .into_iter()
            .map(|v| match v {
                Value::Object(m) => Document::try_from(m),
                _ => unreachable!("stages are objects"),
            })
            .collect::<Result<_, _>>()?;
        for d in &case.docs {
            let id = d.get("_id").unwrap().clone();
            let stored = raw
                .find_one(doc! {"_id": id.clone()})
                .await?
                .expect("the document was inserted");
            let mut pipeline = vec![doc! {"$match": {"_id": id.clone()}}];
            pipeline.extend(stages.iter().cloned());
            let expected: Vec<Document> = coll.aggregate(pipeline).await?.try_collect().await?;
            let ours: Vec<Document> = compiled
                .documents(&stored)
                .collect::<Result<_, _>>()
                .map_err(|e| anyhow::anyhow!("{} {id}: {e}", case.name))?;
            // The rows we send (read from the fields that matter only) are the rows of
            // MongoDB's documents.
            let rows: Vec<_> = compiled.rows(&stored).collect();
            let theirs: Vec<_> = expected.iter().map(|d| compiled.row_of(d)).collect();
            if rows != theirs {
                failures.push(format!(
                    "{} {id}: rows differ:\n ours {rows:?}\n from MongoDB's documents {theirs:?}",
                    case.name
                ));
            }
            compared += expected.len();
            let same = expected.len() == ours.len()
                && expected
                    .iter()
                    .zip(&ours)
                    .all(|(a, b)| bytes(a) == bytes(b));
            if !same {
                failures.push(format!(
                    "{} {id}:\n MongoDB:\n  {}\n ours:\n  {}",
                    case.name,
                    show(&expected),
                    show(&ours)
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(compared >= 25, "only {compared} documents compared");
    Ok(())
}
