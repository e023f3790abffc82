//! The committed CRD must match the Rust types, teach `kubectl explain`, and its CEL rules must
//! accept valid specs and reject invalid ones (evaluated client-side with kube's `cel` feature).

use std::path::PathBuf;

use serde_json::{Value, json};
use zerostack_operator::crd::{ZeroStack, crd};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[test]
fn committed_crds_are_up_to_date() {
    let want = zerostack_operator::crdgen::crd_yaml();
    for path in [
        "crds/zerostack.dev_zerostacks.yaml",
        "charts/zerostack-operator/files/zerostack.dev_zerostacks.yaml",
    ] {
        let have = std::fs::read_to_string(root().join(path)).unwrap_or_default();
        assert!(
            have == want,
            "{path} is stale: run `cargo run -p zerostack-operator --bin crdgen > {path}`"
        );
    }
}

fn schema() -> Value {
    serde_json::to_value(
        crd().spec.versions[0]
            .schema
            .clone()
            .unwrap()
            .open_api_v3_schema
            .unwrap(),
    )
    .unwrap()
}

/// Every property in the spec has a description (what `kubectl explain` prints).
#[test]
fn every_spec_field_is_documented() {
    fn walk(v: &Value, path: &str, missing: &mut Vec<String>) {
        if let Some(props) = v.get("properties").and_then(Value::as_object) {
            for (k, p) in props {
                let here = format!("{path}.{k}");
                if p.get("description").is_none() {
                    missing.push(here.clone());
                }
                walk(p, &here, missing);
            }
        }
        if let Some(items) = v.get("items") {
            walk(items, &format!("{path}[]"), missing);
        }
    }
    let s = schema();
    let mut missing = vec![];
    walk(&s["properties"]["spec"], "spec", &mut missing);
    walk(&s["properties"]["status"], "status", &mut missing);
    // Fields of embedded core types (EnvVar, ResourceRequirements, ...) come documented from
    // k8s-openapi; the condition item schema is the standard one.
    missing.retain(|m| !m.starts_with("status.conditions[]"));
    assert!(missing.is_empty(), "undocumented fields: {missing:#?}");
}

#[test]
fn crd_has_short_name_printer_columns_and_status() {
    let crd = crd();
    assert_eq!(crd.spec.names.short_names, Some(vec!["zs".to_string()]));
    let v = &crd.spec.versions[0];
    assert_eq!(v.name, "v1alpha1");
    let cols: Vec<String> = v
        .additional_printer_columns
        .clone()
        .unwrap()
        .into_iter()
        .map(|c| c.name)
        .collect();
    for c in ["Ready", "Phase", "Age"] {
        assert!(cols.contains(&c.to_string()), "{c} column");
    }
    assert!(v.subresources.as_ref().unwrap().status.is_some());
    assert_eq!(crd.spec.scope, "Namespaced");
}

fn stack(spec: Value) -> ZeroStack {
    serde_json::from_value(json!({
        "apiVersion": "zerostack.dev/v1alpha1", "kind": "ZeroStack",
        "metadata": {"name": "t", "namespace": "demo"}, "spec": spec,
    }))
    .expect("deserialises")
}

fn base() -> Value {
    json!({
        "appId": "zrocket",
        "mongodb": {"uriSecretRef": {"name": "m", "key": "uri"}},
        "postgres": {"cvrSecretRef": {"name": "p", "key": "cvr"}},
        "schema": {"configMapRef": {"name": "s"}},
    })
}

fn with(mut v: Value, path: &[&str], value: Value) -> Value {
    let mut cur = &mut v;
    for p in &path[..path.len() - 1] {
        cur = cur
            .as_object_mut()
            .unwrap()
            .entry(p.to_string())
            .or_insert(json!({}));
    }
    cur[path[path.len() - 1]] = value;
    v
}

#[test]
fn cel_accepts_valid_specs() {
    stack(base()).validate_cel().expect("minimal spec");
    let full = with(
        base(),
        &["cache", "storage"],
        json!({"type": "EmptyDir", "size": "1Gi"}),
    );
    let full = with(full, &["source", "imagePullPolicy"], json!("IfNotPresent"));
    stack(full).validate_cel().expect("emptyDir spec");
    let old = stack(base());
    let mut new = stack(base());
    new.spec.source.replicas = 3;
    new.validate_cel_update(&old)
        .expect("mutable fields may change");
}

#[test]
fn cel_rejects_invalid_specs() {
    let cases: Vec<(Value, &str)> = vec![
        (
            with(base(), &["appId"], json!("Bad-Id")),
            "appId must match",
        ),
        (
            with(base(), &["schema"], json!({})),
            "exactly one of schema.inline",
        ),
        (
            with(base(), &["schema", "inline"], json!({"schema": "{}"})),
            "exactly one of schema.inline",
        ),
        (
            with(base(), &["cache", "replicas"], json!(2)),
            "cache.replicas must be 0 or 1",
        ),
        (
            with(base(), &["cache", "storage", "type"], json!("HostPath")),
            "storage.type must be",
        ),
        (
            with(
                base(),
                &["cache", "storage"],
                json!({"type": "EmptyDir", "storageClassName": "fast"}),
            ),
            "storageClassName only applies",
        ),
        (
            with(base(), &["app", "imagePullPolicy"], json!("Sometimes")),
            "imagePullPolicy must be",
        ),
        (
            with(base(), &["shard"], json!(-1)),
            "shard must not be negative",
        ),
        (
            with(base(), &["cache", "viewSyncers"], json!(2)),
            "cache.viewSyncers >= 1 needs cache.backup",
        ),
        (
            with(base(), &["cache", "viewSyncers"], json!(-1)),
            "cache.viewSyncers must not be negative",
        ),
        (
            with(
                base(),
                &["cache", "autoscale"],
                json!({"minReplicas": 1, "maxReplicas": 3}),
            ),
            "cache.autoscale needs cache.viewSyncers >= 1",
        ),
        (
            with(
                with(
                    with(base(), &["cache", "viewSyncers"], json!(2)),
                    &["cache", "backup"],
                    json!({"url": "s3://b/p"}),
                ),
                &["cache", "autoscale"],
                json!({"minReplicas": 4, "maxReplicas": 3}),
            ),
            "autoscale.minReplicas must not exceed",
        ),
        (
            with(
                with(base(), &["cache", "viewSyncers"], json!(2)),
                &["cache", "backup"],
                json!({"url": "bucket/path"}),
            ),
            "backup.url must be a URL",
        ),
        (
            with(
                base(),
                &["cache", "backup"],
                json!({"url": "s3://b/p", "volumeClaimName": "shared"}),
            ),
            "backup.url must be file:///backup/",
        ),
        (
            with(base(), &["cache", "generation"], json!(-1)),
            "cache.generation must not be negative",
        ),
    ];
    for (spec, want) in cases {
        let err = stack(spec.clone())
            .validate_cel()
            .expect_err(&format!("should reject {spec}"));
        assert!(
            format!("{err:?}").contains(want),
            "{spec}: expected {want:?} in {err:?}"
        );
    }
}

#[test]
fn cel_accepts_the_view_syncer_topology() {
    let spec = with(
        with(
            with(base(), &["cache", "viewSyncers"], json!(2)),
            &["cache", "backup"],
            json!({"url": "s3://zero-backups/prod", "endpoint": "http://minio:9000",
                   "credentialsSecretRef": {"name": "s3"}}),
        ),
        &["cache", "autoscale"],
        json!({"minReplicas": 2, "maxReplicas": 6, "targetCPU": 60}),
    );
    let zs = stack(spec);
    zs.validate_cel().expect("a valid topology");
    let creds = zs.spec.cache.backup.as_ref().unwrap();
    let creds = creds.credentials_secret_ref.as_ref().unwrap();
    assert_eq!(creds.access_key_id_key, "AWS_ACCESS_KEY_ID", "default key");
    assert_eq!(zs.spec.cache.autoscale.as_ref().unwrap().target_cpu, 60);
}

#[test]
fn cel_makes_app_id_and_shard_immutable() {
    let old = stack(base());
    let mut new = stack(base());
    new.spec.app_id = "other".into();
    let err = new
        .validate_cel_update(&old)
        .expect_err("appId change rejected");
    assert!(format!("{err:?}").contains("appId is immutable"), "{err:?}");
    let mut new = stack(base());
    new.spec.shard = 1;
    let err = new
        .validate_cel_update(&old)
        .expect_err("shard change rejected");
    assert!(format!("{err:?}").contains("shard is immutable"), "{err:?}");
}
