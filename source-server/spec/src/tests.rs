//! Tests of `load`: the ZRocket-like discriminated union, the legacy format, and one test per
//! kind of bad input, each asserting that the message names the input, the path and the problem.

use serde_json::{Value, json};

use super::*;

fn col(t: &str, optional: bool) -> Value {
    json!({"type": t, "optional": optional, "customType": null})
}

fn zrocket_schema() -> Value {
    let room = |extra: &[(&str, Value)]| {
        let mut cols = serde_json::Map::new();
        cols.insert("_id".into(), col("string", false));
        cols.insert("t".into(), col("string", false));
        cols.insert("memberIds".into(), col("json", false));
        cols.insert("messageCount".into(), col("number", false));
        cols.insert("lastMessageAt".into(), col("string", true));
        for (k, v) in extra {
            cols.insert((*k).into(), v.clone());
        }
        Value::Object(cols)
    };
    json!({
        "tables": {
            "chats": {"name": "chats", "columns": room(&[]), "primaryKey": ["_id"]},
            "channels": {"name": "channels", "columns": room(&[("name", col("string", false)), ("featured", col("boolean", true))]), "primaryKey": ["_id"]},
            "groups": {"name": "groups", "columns": room(&[("name", col("string", false))]), "primaryKey": ["_id"]},
            "users": {"name": "users", "columns": {"_id": col("string", false), "name": col("string", false)}, "primaryKey": ["_id"]}
        },
        "relationships": {
            "chats": {"users": [{"sourceField": ["memberIds"], "destField": ["_id"], "destSchema": "users", "cardinality": "many"}]}
        }
    })
}

fn zrocket_mappings() -> Value {
    let base = json!({"_id": 1, "t": 1, "memberIds": 1, "messageCount": 1, "lastMessageAt": 1});
    let with = |extra: &[&str]| {
        let mut p = base.clone();
        for e in extra {
            p[*e] = json!(1);
        }
        p
    };
    json!({
        "chats": {"source": "rooms", "filter": {"t": {"$eq": "d"}}, "projection": with(&[])},
        "channels": {"source": "rooms", "filter": {"t": {"$eq": "c"}}, "projection": with(&["name", "featured"])},
        "groups": {"source": "rooms", "filter": {"t": "p"}, "projection": with(&["name"])}
    })
}

fn load_str(
    schema: &Value,
    mappings: Option<&Value>,
    permissions: Option<&Value>,
) -> Result<Config, SpecErrors> {
    let s = schema.to_string();
    let m = mappings.map(Value::to_string);
    let p = permissions.map(Value::to_string);
    load(
        Source {
            origin: "schema.json",
            text: &s,
        },
        m.as_deref().map(|text| Source {
            origin: "mappings.json",
            text,
        }),
        p.as_deref().map(|text| Source {
            origin: "permissions.json",
            text,
        }),
    )
}

#[test]
fn loads_zrocket_union_unwrapped_and_wrapped() {
    let plain = load_str(&zrocket_schema(), Some(&zrocket_mappings()), None).unwrap();
    let wrapped_json = json!({"version": 1, "mappings": zrocket_mappings(),
        "metadata": {"application": "zrocket", "exportedAt": "2025-01-01T00:00:00Z"}});
    let wrapped = load_str(&zrocket_schema(), Some(&wrapped_json), None).unwrap();
    for cfg in [&plain, &wrapped] {
        let names: Vec<_> = cfg.tables.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["chats", "channels", "groups", "users"]);
        let chats = cfg.table("chats").unwrap();
        assert_eq!(chats.source, "rooms");
        assert_eq!(chats.schema, "public");
        assert_eq!(chats.server_name, "chats");
        assert_eq!(chats.primary_key, ["_id"]);
        assert_eq!(
            serde_json::to_value(&chats.filter).unwrap(),
            json!({"t": {"$eq": "d"}})
        );
        assert_eq!(
            chats
                .columns
                .iter()
                .map(|c| c.name.as_str())
                .collect::<Vec<_>>(),
            ["_id", "t", "memberIds", "messageCount", "lastMessageAt"]
        );
        assert_eq!(
            cfg.table("channels").unwrap().columns[5].kind,
            ColumnType::String
        );
        assert_eq!(
            serde_json::to_value(&cfg.table("groups").unwrap().filter).unwrap(),
            json!({"t": "p"})
        );
        let users = cfg.table("users").unwrap();
        assert_eq!(
            users.source, "users",
            "a table without a mapping reads the collection of its name"
        );
        assert!(users.filter.is_none() && users.projection.is_none());
    }
    assert_eq!(plain.mappings.version, None);
    assert_eq!(wrapped.mappings.version, Some(1));
    assert_eq!(
        serde_json::to_value(&wrapped.mappings).unwrap(),
        wrapped_json
    );
    assert_eq!(
        serde_json::to_value(&plain.schema).unwrap(),
        zrocket_schema()
    );
    // The wrapper and its metadata do not change the hash; the content does.
    assert_eq!(plain.hash, wrapped.hash);
    assert_eq!(plain.hash.len(), 24);
}

#[test]
fn hash_ignores_key_order_but_not_content() {
    let a = load_str(
        &zrocket_schema(),
        Some(&zrocket_mappings()),
        Some(&json!({"tables": {}, "x": 1})),
    )
    .unwrap();
    // Same content, keys in reverse order everywhere.
    fn reverse(v: &Value) -> Value {
        match v {
            Value::Object(m) => Value::Object(
                m.iter()
                    .rev()
                    .map(|(k, v)| (k.clone(), reverse(v)))
                    .collect(),
            ),
            Value::Array(a) => Value::Array(a.iter().map(reverse).collect()),
            other => other.clone(),
        }
    }
    let b = load_str(
        &reverse(&zrocket_schema()),
        Some(&reverse(&zrocket_mappings())),
        Some(&json!({"x": 1, "tables": {}})),
    )
    .unwrap();
    assert_ne!(
        serde_json::to_string(&a.schema).unwrap(),
        serde_json::to_string(&b.schema).unwrap()
    );
    assert_eq!(a.hash, b.hash);
    let mut changed = zrocket_mappings();
    changed["chats"]["filter"]["t"]["$eq"] = json!("D");
    let c = load_str(
        &zrocket_schema(),
        Some(&changed),
        Some(&json!({"tables": {}, "x": 1})),
    )
    .unwrap();
    assert_ne!(a.hash, c.hash);
    let d = load_str(&zrocket_schema(), Some(&zrocket_mappings()), None).unwrap();
    assert_ne!(a.hash, d.hash, "permissions count");
    let moved = a.clone().with_bookkeeping(crate::Bookkeeping {
        clients_collection: "my_clients".into(),
        ..Default::default()
    });
    assert_ne!(a.hash, moved.hash, "the bookkeeping collections count");
    assert_eq!(
        moved.clone().with_bookkeeping(Default::default()).hash,
        a.hash
    );
}

#[test]
fn server_names_and_schemas() {
    let schema = json!({"tables": {
        "room": {"name": "room", "serverName": "chat.rooms", "primaryKey": ["id"],
                 "columns": {"id": {"type": "string", "optional": false, "serverName": "_id"},
                             "createdAt": {"type": "number", "optional": false, "serverName": "created_at"}}}},
        "relationships": {}});
    let cfg = load_str(&schema, None, None).unwrap();
    let t = &cfg.tables[0];
    assert_eq!(
        (t.schema.as_str(), t.server_name.as_str(), t.source.as_str()),
        ("chat", "rooms", "room")
    );
    assert_eq!(t.primary_key, ["_id"]);
    assert_eq!(t.columns[1].server_name, "created_at");
    assert_eq!(t.column("created_at").unwrap().name, "createdAt");
    assert_eq!(t.qualified_name(), "chat.rooms");
}

#[test]
fn from_parts_matches_load() {
    use crate::mapping::{TableMapping, TableMappings};
    use crate::schema::{ColumnSchema, Schema, TableSchema};
    let schema = Schema::new().table(
        TableSchema::new("chats")
            .column("_id", ColumnSchema::string())
            .column("t", ColumnSchema::string())
            .primary_key(["_id"]),
    );
    let mappings = TableMappings::wrapped().with(
        "chats",
        TableMapping::new("rooms").filter(filter::Filter::eq("t", "d")),
    );
    let built = Config::from_parts(schema.clone(), mappings.clone(), None).unwrap();
    let loaded = load_str(
        &serde_json::to_value(&schema).unwrap(),
        Some(&serde_json::to_value(&mappings).unwrap()),
        None,
    )
    .unwrap();
    assert_eq!(built, loaded);
    let bad = Config::from_parts(
        schema,
        TableMappings::plain().with("nope", TableMapping::new("x")),
        None,
    )
    .unwrap_err();
    assert_eq!(
        bad.to_string(),
        "mappings: $.nope: mapping for table \"nope\", but the schema has no such table (tables: chats)"
    );
}

#[test]
fn loads_legacy_tablespec_export() {
    let legacy = json!({"version": 1, "tables": [
        {"name": "chats", "primaryKey": ["_id"], "schema": "public",
         "columns": {"_id": {"pos": 0, "dataType": "text", "notNull": true},
                     "t": {"pos": 1, "dataType": "text", "notNull": true},
                     "messageCount": {"pos": 2, "dataType": "numeric", "notNull": false},
                     "memberIds": {"pos": 3, "dataType": "jsonb", "notNull": false}},
         "tableMapping": {"source": "rooms", "filter": {"t": {"$eq": "d"}}}},
        {"name": "users", "primaryKey": ["_id"], "schema": "public",
         "columns": {"_id": {"pos": 0, "dataType": "text", "notNull": true}, "active": {"pos": 1, "dataType": "bool", "notNull": false}}}
    ], "metadata": {"application": "zrocket"}});
    let cfg = load_str(&legacy, None, None).unwrap();
    let chats = cfg.table("chats").unwrap();
    assert_eq!(chats.source, "rooms");
    assert_eq!(
        chats.columns.iter().map(|c| c.kind).collect::<Vec<_>>(),
        [
            ColumnType::String,
            ColumnType::String,
            ColumnType::Number,
            ColumnType::Json
        ]
    );
    assert!(chats.columns[2].optional);
    assert_eq!(
        cfg.table("users").unwrap().columns[1].kind,
        ColumnType::Boolean
    );
    assert_eq!(cfg.mappings.mappings.len(), 1);
    // The same mapping given in both places is refused.
    let err = load_str(&legacy, Some(&json!({"chats": {"source": "rooms"}})), None).unwrap_err();
    assert_eq!(
        err.to_string(),
        "schema.json: $.tables[0].tableMapping: table \"chats\" also has a mapping in mappings.json at $.chats: give it once"
    );
}

/// Loads with the ZRocket inputs patched by `f`, and returns the error lines.
fn errors_of(schema: Value, mappings: Value) -> Vec<String> {
    load_str(&schema, Some(&mappings), None)
        .unwrap_err()
        .iter()
        .map(ToString::to_string)
        .collect()
}

fn assert_one(errors: Vec<String>, expected: &str) {
    assert_eq!(errors, vec![expected.to_string()]);
}

#[test]
fn bad_invalid_json_has_line_and_column() {
    let err = load(
        Source {
            origin: "schema.json",
            text: "{\n  \"tables\": {,\n}",
        },
        None,
        None,
    )
    .unwrap_err();
    let line = err.to_string();
    assert!(line.starts_with("schema.json: $: invalid JSON: "), "{line}");
    assert!(line.contains("line 2 column"), "{line}");
    let err = load(
        Source {
            origin: "schema.json",
            text: "{}",
        },
        Some(Source {
            origin: "m.json",
            text: "",
        }),
        None,
    )
    .unwrap_err();
    assert_eq!(err.len(), 2);
    assert_eq!(
        err.0[1].to_string(),
        "m.json: $: the input is empty (expected a JSON object)"
    );
}

#[test]
fn bad_unknown_column_type() {
    let mut s = zrocket_schema();
    s["tables"]["users"]["columns"]["name"]["type"] = json!("text");
    assert_one(
        errors_of(s, zrocket_mappings()),
        "schema.json: $.tables.users.columns.name.type: unknown column type \"text\" (expected string, number, boolean, json or null)",
    );
}

#[test]
fn bad_empty_or_missing_primary_key() {
    let mut s = zrocket_schema();
    s["tables"]["users"]["primaryKey"] = json!([]);
    assert_one(
        errors_of(s, zrocket_mappings()),
        "schema.json: $.tables.users.primaryKey: primaryKey is empty: a table needs at least one key column",
    );
    let mut s = zrocket_schema();
    s["tables"]["users"]
        .as_object_mut()
        .unwrap()
        .remove("primaryKey");
    assert_one(
        errors_of(s, zrocket_mappings()),
        "schema.json: $.tables.users: the table has no \"primaryKey\"",
    );
}

#[test]
fn bad_primary_key_names_missing_column() {
    let mut s = zrocket_schema();
    s["tables"]["users"]["primaryKey"] = json!(["_id", "email"]);
    assert_one(
        errors_of(s, zrocket_mappings()),
        "schema.json: $.tables.users.primaryKey[1]: primary key column \"email\" is not a column of table \"users\"",
    );
}

#[test]
fn bad_optional_key_column() {
    let mut s = zrocket_schema();
    s["tables"]["users"]["columns"]["_id"]["optional"] = json!(true);
    assert_one(
        errors_of(s, zrocket_mappings()),
        "schema.json: $.tables.users.primaryKey[0]: primary key column \"_id\" is optional: key columns must be required",
    );
}

#[test]
fn bad_mapping_for_unknown_table() {
    let mut m = zrocket_mappings();
    m["messages"] = json!({"source": "messages"});
    assert_one(
        errors_of(zrocket_schema(), m),
        "mappings.json: $.messages: mapping for table \"messages\", but the schema has no such table (tables: chats, channels, groups, users)",
    );
    let wrapped = json!({"version": 1, "mappings": {"nope": {"source": "x"}}});
    assert_one(
        errors_of(zrocket_schema(), wrapped),
        "mappings.json: $.mappings.nope: mapping for table \"nope\", but the schema has no such table (tables: chats, channels, groups, users)",
    );
}

#[test]
fn bad_projection_field_not_a_column() {
    let mut m = zrocket_mappings();
    m["chats"]["projection"]["usernames"] = json!(1);
    assert_one(
        errors_of(zrocket_schema(), m.clone()),
        "mappings.json: $.chats.projection.usernames: projection field \"usernames\" is not a column of table \"chats\" (columns: _id, t, memberIds, messageCount, lastMessageAt)",
    );
    let mut m = zrocket_mappings();
    m["chats"]["projection"]["alias"] = json!("$name");
    m["chats"]["projection"]["n"] = json!({"$toInt": "$count"});
    m["chats"]["projection"]["lastMessage.at"] = json!(1);
    let errs = errors_of(zrocket_schema(), m);
    assert_eq!(errs.len(), 3, "{errs:?}");
    assert!(
        errs[0].starts_with(
            "mappings.json: $.chats.projection.alias: projection field \"alias\" is not a column"
        ),
        "{errs:?}"
    );
    assert!(
        errs[1].starts_with("mappings.json: $.chats.projection.n: projection field \"n\""),
        "{errs:?}"
    );
    assert!(errs[2].starts_with("mappings.json: $.chats.projection[\"lastMessage.at\"]: projection field \"lastMessage\""), "{errs:?}");
    // Exclusions may name anything.
    let mut m = zrocket_mappings();
    m["chats"]["projection"] = json!({"secret": 0, "deep.er": 0});
    load_str(&zrocket_schema(), Some(&m), None).unwrap();
}

#[test]
fn bad_projection_leaves_out_required_column() {
    let mut m = zrocket_mappings();
    m["chats"]["projection"]
        .as_object_mut()
        .unwrap()
        .remove("messageCount");
    assert_one(
        errors_of(zrocket_schema(), m),
        "mappings.json: $.chats.projection: required column \"messageCount\" of table \"chats\" is not in the projection (add \"messageCount\": 1, or make the column optional)",
    );
    let mut m = zrocket_mappings();
    m["chats"]["projection"]["_id"] = json!(0);
    assert_one(
        errors_of(zrocket_schema(), m),
        "mappings.json: $.chats.projection: required column \"_id\" of table \"chats\" is not in the projection (add \"_id\": 1, or make the column optional)",
    );
    let mut m = zrocket_mappings();
    m["chats"]["projection"] = json!({"t": 0});
    assert_one(
        errors_of(zrocket_schema(), m),
        "mappings.json: $.chats.projection.t: the projection excludes \"t\", a required column of table \"chats\"",
    );
    // Leaving out an optional column is fine, and _id is kept implicitly.
    let mut m = zrocket_mappings();
    let p = m["chats"]["projection"].as_object_mut().unwrap();
    p.remove("lastMessageAt");
    p.remove("_id");
    load_str(&zrocket_schema(), Some(&m), None).unwrap();
}

#[test]
fn bad_unsupported_filter_operator() {
    let mut m = zrocket_mappings();
    m["channels"]["filter"] = json!({"name": {"$regex": "^gen"}});
    assert_one(
        errors_of(zrocket_schema(), m),
        "mappings.json: $.channels.filter.name.$regex: unsupported filter operator $regex",
    );
}

#[test]
fn bad_operator_arguments() {
    let mut m = zrocket_mappings();
    m["chats"]["filter"] = json!({"t": {"$in": "d"}, "archived": {"$exists": "yes"}});
    let errs = errors_of(zrocket_schema(), m);
    assert_eq!(errs, vec![
        "mappings.json: $.chats.filter.t.$in: $in takes an array, found a string".to_string(),
        "mappings.json: $.chats.filter.archived.$exists: $exists takes true or false, found a string".to_string(),
    ]);
}

#[test]
fn bad_duplicate_replica_names() {
    let mut s = zrocket_schema();
    s["tables"]["groups"]["serverName"] = json!("public.chats");
    assert_one(
        errors_of(s, zrocket_mappings()),
        "schema.json: $.tables.groups.serverName: tables \"chats\" and \"groups\" both replicate to public.chats",
    );
}

#[test]
fn bad_table_name_with_two_dots() {
    let mut s = zrocket_schema();
    s["tables"]["users"]["serverName"] = json!("a.b.users");
    assert_one(
        errors_of(s, zrocket_mappings()),
        "schema.json: $.tables.users.serverName: table name \"a.b.users\" has more than one '.' (expected \"table\" or \"schema.table\")",
    );
}

#[test]
fn bad_pipeline_mapping() {
    let mut m = zrocket_mappings();
    m["groups"] =
        json!({"source": "rooms", "pipeline": [{"$match": {"t": "p"}}, {"$unwind": "$members"}]});
    assert_one(
        errors_of(zrocket_schema(), m),
        "mappings.json: $.groups.pipeline[1]: every row this $unwind yields from one document would have the same primary key (_id) of table \"groups\": derive a key column from \"$members\", e.g. {\"$addFields\": {\"<key>\": \"$members.id\"}}",
    );
}

#[test]
fn a_pipeline_mapping_loads_with_its_pre_image_rule() {
    let mut s = zrocket_schema();
    s["tables"]["members"] = json!({"name": "members", "primaryKey": ["roomId", "userId"], "columns": {
        "roomId": {"type": "string", "optional": false}, "userId": {"type": "string", "optional": false}}});
    let mut m = zrocket_mappings();
    m["members"] = json!({"source": "rooms", "pipeline": [
        {"$unwind": "$memberIds"}, {"$set": {"roomId": "$_id", "userId": "$memberIds"}}]});
    let c = load_str(&s, Some(&m), None).unwrap();
    let t = c.table("members").unwrap();
    assert_eq!((t.filter.as_ref(), t.projection.as_ref()), (None, None));
    assert_eq!(c.pipeline("members").unwrap().stages.len(), 2);
    assert!(c.needs_pre_images("members"));
    assert!(!c.needs_pre_images("chats"));
    // The pipeline is part of the configuration hash: changing it rebuilds the replica.
    m["members"]["pipeline"][1]["$set"]["extra"] = json!(1);
    assert_ne!(load_str(&s, Some(&m), None).unwrap().hash, c.hash);
    // A key column the pipeline's $project drops is refused with its JSON path.
    m["members"]["pipeline"] = json!([{"$unwind": "$memberIds"},
        {"$set": {"roomId": "$_id", "userId": "$memberIds"}}, {"$project": {"roomId": 1}}]);
    assert_one(
        errors_of(s, m),
        "mappings.json: $.members.pipeline[2]: this $project drops \"userId\", a primary-key column of table \"members\": keep it (\"userId\": 1) or set it again in a later stage",
    );
}

#[test]
fn bad_permissions_and_several_errors_at_once() {
    let mut s = zrocket_schema();
    s["tables"]["users"]["columns"]["name"]["type"] = json!("str");
    let mut m = zrocket_mappings();
    m["chats"]["filter"] = json!({"$where": "x"});
    let err = load_str(&s, Some(&m), Some(&json!([1]))).unwrap_err();
    let text = err.to_string();
    let lines: Vec<_> = text.lines().collect();
    assert_eq!(
        lines,
        [
            "schema.json: $.tables.users.columns.name.type: unknown column type \"str\" (expected string, number, boolean, json or null)",
            "mappings.json: $.chats.filter.$where: unsupported filter operator $where",
            "permissions.json: $: the permissions must be an object, found an array",
        ]
    );
}

#[test]
fn null_permissions_mean_none() {
    let schema = r#"{"tables":{"t":{"name":"t","columns":{"id":{"type":"string","optional":false}},"primaryKey":["id"]}},"relationships":{}}"#;
    let c = crate::load(
        crate::Source {
            origin: "s.json",
            text: schema,
        },
        None,
        Some(crate::Source {
            origin: "permissions.json",
            text: "null",
        }),
    )
    .unwrap();
    assert_eq!(c.permissions, None);
}
