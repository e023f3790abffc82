//! Parsing, the key rules and the pre-image rule of pipeline mappings.

use serde_json::{Value, json};

use super::*;

fn parse_ok(v: Value) -> Pipeline {
    Pipeline::from_json(&v).unwrap_or_else(|e| panic!("{e}"))
}

fn err_of(v: Value) -> String {
    Pipeline::from_json(&v).unwrap_err()
}

/// Problems `check_keys` reports for `v` with primary key `pk`, as `path: message` lines.
fn key_errors(v: Value, pk: &[&str]) -> Vec<String> {
    let p = parse_ok(v);
    let pk: Vec<String> = pk.iter().map(|s| s.to_string()).collect();
    let mut errors = Vec::new();
    p.check_keys(
        "t",
        &pk,
        "$.t.pipeline",
        &mut Cx {
            origin: "m.json",
            errors: &mut errors,
        },
    );
    errors
        .into_iter()
        .map(|e| format!("{}: {}", e.path, e.message))
        .collect()
}

fn account_members() -> Value {
    json!([
        {"$match": {"bundle": "ENTERPRISE"}},
        {"$unwind": "$members"},
        {"$addFields": {"accountId": "$_id", "userId": "$members.id", "role": "$members.role"}}
    ])
}

#[test]
fn parses_every_stage_and_expression() {
    let v = json!([
        {"$match": {"a": {"$gt": 1}}},
        {"$unwind": {"path": "$items", "includeArrayIndex": "i", "preserveNullAndEmptyArrays": true}},
        {"$set": {"x.y": "$items.v", "lit": {"$literal": "$notapath"}, "n": 5, "s": "plain",
                  "c": {"$concat": ["$a", "-", {"$toString": "$i"}]},
                  "d": {"$ifNull": ["$m", "$n", 0]}, "o": {"k": "$a", "l": [1, "$b"]},
                  "id": {"$convert": {"input": "$_id", "to": "string", "onError": null}},
                  "oid": {"$oid": "5f0000000000000000000000"}}},
        {"$addFields": {"z": {"$toLong": ["$i"]}}},
        {"$project": {"_id": 0, "x": 1, "c": 1, "k": "$o.k", "i": 1}},
        {"$project": {"k": 0}}
    ]);
    let p = parse_ok(v.clone());
    assert_eq!(p.stages.len(), 6);
    assert!(matches!(&p.stages[1], Stage::Unwind(u) if u.path == "items"
        && u.include_array_index.as_deref() == Some("i") && u.preserve_null_and_empty_arrays));
    let Stage::AddFields(f) = &p.stages[2] else {
        panic!()
    };
    assert_eq!(f[0], ("x.y".into(), Expr::Path("items.v".into())));
    assert_eq!(f[1].1, Expr::Literal(json!("$notapath")));
    assert_eq!(f[3].1, Expr::Literal(json!("plain")));
    assert!(matches!(&f[4].1, Expr::Concat(items) if items.len() == 3));
    assert!(
        matches!(&f[7].1, Expr::Cast(c) if c.to == CastType::String && c.on_error == Some(Value::Null))
    );
    assert_eq!(
        f[8].1,
        Expr::Literal(json!({"$oid": "5f0000000000000000000000"}))
    );
    let Stage::Project(pr) = &p.stages[4] else {
        panic!()
    };
    assert!(!pr.is_exclusion() && !pr.keeps_id());
    let Stage::Project(pr) = &p.stages[5] else {
        panic!()
    };
    assert!(pr.is_exclusion());
    // It serializes as written, and deserializes through the same parser.
    assert_eq!(serde_json::to_value(&p).unwrap(), v);
    let again: Pipeline = serde_json::from_value(v).unwrap();
    assert_eq!(again, p);
    assert!(
        matches!(&parse_ok(json!([{"$unwind": "$a.b"}])).stages[0], Stage::Unwind(u) if u.path == "a.b" && !u.preserve_null_and_empty_arrays)
    );
}

#[test]
fn refuses_unknown_stages_and_operators_naming_the_place() {
    assert_eq!(
        err_of(json!([{"$match": {}}, {"$lookup": {"from": "x"}}])),
        "$[1].$lookup: unsupported pipeline stage $lookup (supported: $match, $unwind, $addFields, $set, $project)"
    );
    assert!(
        err_of(json!([{"$addFields": {"a": {"$add": [1, 2]}}}]))
            .starts_with("$[0].$addFields.a.$add: unsupported expression operator $add (supported: $literal, $concat")
    );
    assert!(
        err_of(json!([{"$project": {"a": {"$concat": ["$x", {"$sum": 1}]}}}]))
            .starts_with("$[0].$project.a.$concat[1].$sum: unsupported expression operator $sum")
    );
    assert!(
        err_of(json!([{"$match": {"a": {"$regex": "x"}}}]))
            .starts_with("$[0].$match.a.$regex: unsupported filter operator $regex")
    );
    assert!(
        err_of(json!([{"$set": {"a": "$$ROOT"}}]))
            .contains("variables such as $$ROOT are not supported")
    );
    assert!(err_of(json!({"$match": {}})).starts_with("$: a pipeline must be an array of stages"));
    assert!(
        err_of(json!([{"$match": {}, "$unwind": "$a"}]))
            .starts_with("$[0]: a stage must hold exactly one stage name")
    );
    assert!(
        err_of(json!([{"$unwind": "members"}]))
            .starts_with("$[0].$unwind: $unwind must be a field path")
    );
    assert!(
        err_of(json!([{"$unwind": {"path": "$a", "includeArrayIndex": "$i"}}]))
            .starts_with("$[0].$unwind.includeArrayIndex: includeArrayIndex must be a field name")
    );
    assert!(
        err_of(json!([{"$unwind": {"path": "$a", "preserveNull": true}}]))
            .starts_with("$[0].$unwind.preserveNull: unknown $unwind option")
    );
    assert!(
        err_of(json!([{"$unwind": {"includeArrayIndex": "i"}}]))
            .starts_with("$[0].$unwind: $unwind needs a \"path\"")
    );
    assert!(err_of(json!([{"$project": {"a": 1, "b": 0}}])).starts_with(
        "$[0].$project.b: cannot exclude \"b\" in a $project that includes or computes \"a\""
    ));
    assert!(err_of(json!([{"$project": {"a": 2}}])).contains("$literal"));
    assert!(
        err_of(json!([{"$project": {"a": {"b": 1}}}]))
            .contains("nested $project objects are not supported")
    );
    assert!(
        err_of(json!([{"$addFields": {"a": 1, "a.b": 2}}]))
            .starts_with("$[0].$addFields[\"a.b\"]: path collision")
    );
    assert!(
        err_of(json!([{"$addFields": {}}]))
            .starts_with("$[0].$addFields: $addFields needs at least one field")
    );
    assert!(
        err_of(json!([{"$set": {"a": {"$ifNull": ["$b"]}}}]))
            .starts_with("$[0].$set.a.$ifNull: $ifNull takes at least 2 expressions")
    );
    assert!(
        err_of(json!([{"$set": {"a": {"$toInt": "$b", "$toLong": "$b"}}}]))
            .contains("exactly one operator")
    );
    assert!(err_of(json!([{"$set": {"a": {"b.c": 1}}}])).contains("cannot contain '.'"));
    assert!(
        err_of(json!([{"$set": {"a": {"$convert": {"input": "$b", "to": "regex"}}}}]))
            .starts_with("$[0].$set.a.$convert.to: unsupported $convert target")
    );
}

#[test]
fn the_account_members_example_passes_the_key_rules() {
    assert!(key_errors(account_members(), &["accountId", "userId"]).is_empty());
    // A key from the unwound element's index is as good as one from the element.
    let by_index = json!([{"$unwind": {"path": "$items", "includeArrayIndex": "pos"}}]);
    assert!(key_errors(by_index, &["_id", "pos"]).is_empty());
    // So is the unwound field itself.
    assert!(key_errors(json!([{"$unwind": "$tags"}]), &["_id", "tags"]).is_empty());
    // Keys computed through several stages keep their origin.
    let chained = json!([{"$unwind": "$m"}, {"$set": {"u": "$m"}}, {"$project": {"k": {"$concat": ["$u.id", "/x"]}, "a": "$_id"}}]);
    assert!(key_errors(chained, &["a", "k"]).is_empty());
}

#[test]
fn unwound_rows_that_share_a_key_are_refused() {
    assert_eq!(
        key_errors(
            json!([{"$match": {"a": 1}}, {"$unwind": "$tags"}]),
            &["_id"]
        ),
        [
            "$.t.pipeline[1]: every row this $unwind yields from one document would have the same primary key (_id) of table \"t\": derive a key column from \"$tags\", e.g. {\"$addFields\": {\"<key>\": \"$tags.id\"}}"
        ]
    );
    // Two unwinds: each needs its own key part.
    let two = json!([{"$unwind": "$a"}, {"$unwind": {"path": "$a.b", "includeArrayIndex": "j"}},
                     {"$set": {"k": "$a.id"}}]);
    assert!(key_errors(two.clone(), &["_id", "k", "j"]).is_empty());
    let e = key_errors(
        json!([{"$unwind": "$a"}, {"$unwind": "$b"}, {"$set": {"k": "$a.id"}}]),
        &["_id", "k"],
    );
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].starts_with("$.t.pipeline[1]: every row this $unwind yields"),
        "{e:?}"
    );
    assert!(key_errors(json!([{"$set": {"k": "x"}}]), &["k"])[0].contains("constants only"));
}

#[test]
fn a_project_that_drops_a_key_column_is_refused() {
    let mut p = account_members();
    p.as_array_mut()
        .unwrap()
        .push(json!({"$project": {"accountId": 1, "role": 1}}));
    assert_eq!(
        key_errors(p, &["accountId", "userId"]),
        [
            "$.t.pipeline[3]: this $project drops \"userId\", a primary-key column of table \"t\": keep it (\"userId\": 1) or set it again in a later stage"
        ]
    );
    let mut p = account_members();
    p.as_array_mut()
        .unwrap()
        .push(json!({"$project": {"userId": 0}}));
    assert!(
        key_errors(p, &["accountId", "userId"])[0]
            .starts_with("$.t.pipeline[3]: this $project drops \"userId\"")
    );
    // A source field the key reads, dropped by an inclusion $project before anyone kept it.
    let e = key_errors(json!([{"$project": {"a": 1}}]), &["code"]);
    assert!(
        e[0].starts_with(
            "$.t.pipeline[0]: this $project keeps only the fields it names, and \"code\""
        ),
        "{e:?}"
    );
    // Dropped, then set again: fine.
    assert!(
        key_errors(
            json!([{"$project": {"a": 1}}, {"$set": {"code": "$a"}}]),
            &["code"]
        )
        .is_empty()
    );
    // _id survives an inclusion $project unless excluded.
    assert!(key_errors(json!([{"$project": {"a": 1}}]), &["_id"]).is_empty());
    assert!(
        key_errors(json!([{"$project": {"a": 1, "_id": 0}}]), &["_id"])[0]
            .contains("drops \"_id\"")
    );
}

#[test]
fn the_pre_image_rule() {
    let pk = |k: &[&str]| k.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    // Any $unwind: the rows of the old document are only known from the old document.
    assert!(parse_ok(account_members()).needs_pre_images(&pk(&["accountId", "userId"])));
    // One row per document keyed by _id (or by something computed from _id only): no.
    let by_id =
        json!([{"$match": {"t": "x"}}, {"$set": {"id": {"$toString": "$_id"}, "n": "$name"}}]);
    assert!(!parse_ok(by_id.clone()).needs_pre_images(&pk(&["id"])));
    assert!(!parse_ok(by_id.clone()).needs_pre_images(&pk(&["_id"])));
    assert!(!parse_ok(json!([{"$set": {"k": "$_id.org"}}])).needs_pre_images(&pk(&["k"])));
    // A key read from another field, which an update can change: yes.
    assert!(parse_ok(by_id.clone()).needs_pre_images(&pk(&["n"])));
    assert!(parse_ok(json!([{"$match": {"a": 1}}])).needs_pre_images(&pk(&["code"])));
    // `_id` itself rewritten from another field: the documentKey no longer names the row.
    assert!(parse_ok(json!([{"$set": {"_id": "$code"}}])).needs_pre_images(&pk(&["_id"])));
}
