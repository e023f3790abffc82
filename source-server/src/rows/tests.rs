//! Tests of `CompiledTable` over specs loaded the way the server loads them.

use bson::oid::ObjectId;
use bson::{Decimal128, doc};
use serde_json::{Value, json};
use zerostack_spec::filter::{Filter, Operator};
use zerostack_spec::{ColumnType, Source, load};

use super::*;

const OID: &str = "5f0c9a8e1c9d440000a1b2c3";

fn col(t: &str, optional: bool) -> Value {
    json!({"type": t, "optional": optional, "customType": null})
}

fn tables(schema: Value, mappings: Value) -> Vec<CompiledTable> {
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
    .unwrap();
    cfg.tables
        .iter()
        .map(|t| CompiledTable::compile(t).unwrap())
        .collect()
}

fn rooms() -> Vec<CompiledTable> {
    let cols = json!({
        "_id": col("string", false), "t": col("string", false), "memberIds": col("json", false),
        "messageCount": col("number", false), "lastMessageAt": col("string", true),
        "createdAt": col("number", true), "name": col("string", true), "archived": col("boolean", true)
    });
    tables(
        json!({"tables": {
            "chats": {"name": "chats", "columns": cols, "primaryKey": ["_id"]},
            "channels": {"name": "channels", "columns": cols, "primaryKey": ["_id"]},
            "users": {"name": "users", "columns": {"_id": col("string", false), "name": col("string", true)}, "primaryKey": ["_id"]}
        }, "relationships": {}}),
        json!({"version": 1, "mappings": {
            "chats": {"source": "rooms", "filter": {"t": {"$eq": "d"}},
                      "projection": {"_id": 1, "t": 1, "memberIds": 1, "messageCount": 1, "lastMessageAt": 1, "createdAt": 1}},
            "channels": {"source": "rooms", "filter": {"t": "c", "archived": {"$ne": true}}}
        }}),
    )
}

#[test]
fn discriminated_union_routes_documents() {
    let t = rooms();
    let oid = ObjectId::parse_str(OID).unwrap();
    let dm = raw(
        doc! {"_id": oid, "t": "d", "memberIds": [ObjectId::parse_str(OID).unwrap()], "messageCount": 3i64, "name": "secret"},
    );
    let channel =
        raw(doc! {"_id": oid, "t": "c", "memberIds": [], "messageCount": 0, "name": "general"});
    assert!(t[0].matches(&Fields::of(&dm)) && !t[1].matches(&Fields::of(&dm)));
    assert!(!t[0].matches(&Fields::of(&channel)) && t[1].matches(&Fields::of(&channel)));
    assert!(!t[1].matches(&Fields::of(&raw(doc! {"t": "c", "archived": true}))));
    assert!(t[2].matches(&Fields::of(&dm)), "no filter: every document");
    assert_eq!(t[0].spec().source, "rooms");
}

#[test]
fn row_has_every_column_and_nothing_else() {
    let t = rooms();
    let oid = ObjectId::parse_str(OID).unwrap();
    let created = bson::DateTime::from_millis(1_714_564_800_000);
    let dm = raw(doc! {
        "_id": oid, "t": "d", "memberIds": [oid, "bob"], "messageCount": 3i64,
        "lastMessageAt": created, "createdAt": created, "name": "not projected", "roles": ["admin"],
    });
    let row = t[0].row(&Fields::of(&dm));
    assert_eq!(
        Value::Object(row.values.clone()),
        json!({
            "_id": OID, "t": "d", "memberIds": [OID, "bob"], "messageCount": 3,
            "lastMessageAt": "2024-05-01T12:00:00.000Z", "createdAt": 1_714_564_800_000i64,
            "name": null, "archived": null
        })
    );
    assert_eq!(
        row.values.keys().collect::<Vec<_>>(),
        [
            "_id",
            "t",
            "memberIds",
            "messageCount",
            "lastMessageAt",
            "createdAt",
            "name",
            "archived"
        ]
    );
    assert!(row.coerced.is_empty());

    // A direct table: extra fields ("roles", "lastLogin") are never sent.
    let user = t[2].row(&Fields::of(&raw(
        doc! {"_id": "u1", "name": "Ann", "roles": ["x"], "lastLogin": created},
    )));
    assert_eq!(
        Value::Object(user.values),
        json!({"_id": "u1", "name": "Ann"})
    );
}

#[test]
fn values_that_do_not_fit_are_null_and_reported() {
    let t = rooms();
    let row = t[1].row(&Fields::of(&raw(doc! {"_id": "r1", "t": "c", "memberIds": [], "messageCount": "many", "archived": 1, "name": {"x": 1}})));
    assert_eq!(row.values["messageCount"], Value::Null);
    assert_eq!(row.values["archived"], Value::Null);
    assert_eq!(row.values["name"], Value::Null);
    assert_eq!(row.values["_id"], json!("r1"));
    assert_eq!(
        row.coerced,
        vec![
            Coercion {
                column: "messageCount".into(),
                found: "string",
                expected: ColumnType::Number
            },
            Coercion {
                column: "name".into(),
                found: "object",
                expected: ColumnType::String
            },
            Coercion {
                column: "archived".into(),
                found: "int",
                expected: ColumnType::Boolean
            },
        ]
    );
    // Decimal128 in a number column is a (lossy) number.
    let row = t[1].row(&Fields::of(&raw(doc! {"_id": "r2", "messageCount": Decimal128::from_bytes("1.5".parse::<Decimal128>().unwrap().bytes())})));
    assert_eq!(row.values["messageCount"], json!(1.5));
}

#[test]
fn key_from_plain_document_key() {
    let t = rooms();
    let oid = ObjectId::parse_str(OID).unwrap();
    assert_eq!(
        t[0].key_from_document_key(&Fields::of(&raw(doc! {"_id": oid}))),
        Some(json!({"_id": OID}).as_object().unwrap().clone())
    );
    assert_eq!(
        t[0].key_from_document_key(&Fields::of(&raw(doc! {"other": 1}))),
        None
    );
    assert_eq!(
        t[0].key_from_document_key(&Fields::of(&raw(doc! {"_id": null}))),
        None
    );
}

#[test]
fn key_from_composite_id() {
    let t = tables(
        json!({"tables": {
            "clients": {"name": "clients", "serverName": "zero_0.clients", "primaryKey": ["clientGroupID", "clientID"],
                "columns": {"clientGroupID": col("string", false), "clientID": col("string", false),
                            "lastMutationID": col("number", false), "userID": col("string", true)}}
        }, "relationships": {}}),
        json!({"clients": {"source": "zero_clients", "projection": {"_id": 0}}}),
    );
    let c = &t[0];
    assert_eq!(
        (c.spec().schema.as_str(), c.spec().server_name.as_str()),
        ("zero_0", "clients")
    );
    let key = c
        .key_from_document_key(&Fields::of(&raw(
            doc! {"_id": {"clientGroupID": "g1", "clientID": "c1"}},
        )))
        .unwrap();
    assert_eq!(
        Value::Object(key),
        json!({"clientGroupID": "g1", "clientID": "c1"})
    );
    assert_eq!(
        c.key_from_document_key(&Fields::of(&raw(doc! {"_id": {"clientGroupID": "g1"}}))),
        None
    );
    let row = c.row(&Fields::of(&raw(doc! {"_id": {"clientGroupID": "g1", "clientID": "c1"}, "clientGroupID": "g1", "clientID": "c1",
        "lastMutationID": 9_007_199_254_740_993i64, "userID": "u"})));
    assert_eq!(
        serde_json::to_string(&row.values).unwrap(),
        r#"{"clientGroupID":"g1","clientID":"c1","lastMutationID":9007199254740993,"userID":"u"}"#
    );
}

#[test]
fn key_through_a_rename_and_a_cast() {
    let t = tables(
        json!({"tables": {
            "msgs": {"name": "msgs", "primaryKey": ["id"], "columns": {"id": col("string", false), "body": col("string", true)}},
            "tags": {"name": "tags", "primaryKey": ["id"], "columns": {"id": col("string", false)}}
        }, "relationships": {}}),
        json!({"msgs": {"source": "messages", "projection": {"id": "$_id", "body": "$text"}},
               "tags": {"source": "tags", "projection": {"id": {"$toString": "$_id"}}}}),
    );
    let oid = ObjectId::parse_str(OID).unwrap();
    let key = t[0]
        .key_from_document_key(&Fields::of(&raw(doc! {"_id": oid})))
        .unwrap();
    assert_eq!(Value::Object(key), json!({"id": OID}));
    assert_eq!(
        Value::Object(
            t[0].row(&Fields::of(&raw(doc! {"_id": oid, "text": "hi"})))
                .values
        ),
        json!({"id": OID, "body": "hi"})
    );
    let key = t[1]
        .key_from_document_key(&Fields::of(&raw(doc! {"_id": 42})))
        .unwrap();
    assert_eq!(Value::Object(key), json!({"id": "42"}));
}

#[test]
fn server_column_names_are_used() {
    let t = tables(
        json!({"tables": {"room": {"name": "room", "primaryKey": ["id"], "columns": {
            "id": {"type": "string", "optional": false, "customType": null, "serverName": "_id"},
            "createdAt": {"type": "number", "optional": true, "customType": null, "serverName": "created_at"}}}}, "relationships": {}}),
        json!({}),
    );
    let row = t[0].row(&Fields::of(&raw(
        doc! {"_id": "r", "created_at": bson::DateTime::from_millis(5), "createdAt": 1},
    )));
    assert_eq!(
        Value::Object(row.values),
        json!({"_id": "r", "created_at": 5})
    );
    assert_eq!(
        Value::Object(
            t[0].key_from_document_key(&Fields::of(&raw(doc! {"_id": "r"})))
                .unwrap()
        ),
        json!({"_id": "r"})
    );
}

#[test]
fn compile_errors_name_table_and_path() {
    // Bypass the spec checks to reach the compiler with bad extended JSON.
    let s = json!({"tables": {"t": {"name": "t", "primaryKey": ["_id"], "columns": {"_id": col("string", false)}}}, "relationships": {}}).to_string();
    let cfg = load(
        Source {
            origin: "s",
            text: &s,
        },
        None,
        None,
    )
    .unwrap();
    let mut spec = cfg.tables[0].clone();
    spec.filter = Some(Filter::field(
        "owner",
        vec![Operator::In(vec![json!(1), json!({"$oid": "zz"})])],
    ));
    let err = CompiledTable::compile(&spec).unwrap_err().to_string();
    assert!(
        err.starts_with("table \"t\": filter.owner.$in[1]: bad $oid"),
        "{err}"
    );
}
