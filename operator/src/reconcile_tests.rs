//! Reconcile tests against the mocked API server (`fixtures::ApiServerVerifier`).

use std::sync::Arc;
use std::time::Duration;

use http::Method;
use kube::runtime::controller::Action;
use kube::runtime::events::{Recorder, Reporter};
use serde_json::Value;

use super::*;
use crate::fixtures::{ApiServerVerifier, SCHEMA, zerostack};

const NS: &str = "demo";
const ZS: &str = "/apis/zerostack.dev/v1alpha1/namespaces/demo/zerostacks/chat";
const DEPLOYS: &str = "/apis/apps/v1/namespaces/demo/deployments/";
const SERVICES: &str = "/api/v1/namespaces/demo/services/";
const CMS: &str = "/api/v1/namespaces/demo/configmaps/";
const SECRETS: &str = "/api/v1/namespaces/demo/secrets/";
const PVCS: &str = "/api/v1/namespaces/demo/persistentvolumeclaims/";

fn counter() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!("generated-{}", N.fetch_add(1, Ordering::SeqCst))
}

fn setup(zs: &ZeroStack) -> (Arc<Context>, ApiServerVerifier) {
    let (client, fake) = ApiServerVerifier::start();
    fake.insert(ZS, serde_json::to_value(zs).unwrap());
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: "test".into(),
            instance: None,
        },
    );
    let mut ctx = Context::new(client, Some(recorder), Arc::new(Metrics::default()));
    ctx.random = counter;
    (Arc::new(ctx), fake)
}

/// The resource as the API server now has it (spec + status).
fn current(fake: &ApiServerVerifier) -> ZeroStack {
    serde_json::from_value(fake.get(ZS).expect("zerostack exists")).unwrap()
}

/// Replaces the spec, bumping generation as the API server would.
fn update(fake: &ApiServerVerifier, f: impl FnOnce(&mut ZeroStack)) -> ZeroStack {
    let mut zs = current(fake);
    f(&mut zs);
    zs.metadata.generation = Some(zs.metadata.generation.unwrap_or(1) + 1);
    fake.insert(ZS, serde_json::to_value(&zs).unwrap());
    zs
}

async fn run(ctx: &Arc<Context>, fake: &ApiServerVerifier) -> Result<Action, Error> {
    tokio::time::timeout(
        Duration::from_secs(10),
        reconcile(Arc::new(current(fake)), ctx.clone()),
    )
    .await
    .expect("reconcile finished in time")
}

fn cond<'a>(
    zs: &'a ZeroStack,
    t: &str,
) -> &'a k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition {
    zs.condition(t)
        .unwrap_or_else(|| panic!("condition {t} missing"))
}

fn source_hash(fake: &ApiServerVerifier) -> String {
    let d = fake
        .get(&format!("{DEPLOYS}chat-source"))
        .expect("source deployment");
    d["spec"]["template"]["metadata"]["annotations"][render::SCHEMA_HASH_ANNOTATION]
        .as_str()
        .expect("hash annotation")
        .to_string()
}

/// The name of the schema ConfigMap the source Deployment mounts.
fn mounted_schema(fake: &ApiServerVerifier) -> String {
    let d = fake
        .get(&format!("{DEPLOYS}chat-source"))
        .expect("source deployment");
    let d: k8s_openapi::api::apps::v1::Deployment = serde_json::from_value(d).unwrap();
    render::source::mounted_schema(&d).expect("a schema volume")
}

/// The schema ConfigMaps of the stack, sorted.
fn schema_config_maps(fake: &ApiServerVerifier) -> Vec<String> {
    let mut names: Vec<String> = fake
        .names_under(CMS)
        .into_iter()
        .filter(|n| n.starts_with("chat-schema-"))
        .collect();
    names.sort();
    names
}

fn child_patches(fake: &ApiServerVerifier) -> usize {
    fake.calls()
        .iter()
        .filter(|c| {
            c.method == Method::PATCH
                && !c.path.ends_with("/status")
                && !c.path.contains("/events/")
        })
        .count()
}

#[tokio::test]
async fn create_renders_every_child_with_owner_refs_and_writes_status() {
    let (ctx, fake) = setup(&zerostack("chat"));
    run(&ctx, &fake).await.expect("reconcile ok");

    let mut deploys = fake.names_under(DEPLOYS);
    deploys.sort();
    assert_eq!(deploys, ["chat-app", "chat-cache", "chat-source"]);
    assert_eq!(fake.names_under(SERVICES).len(), 3);
    let schema_cm = mounted_schema(&fake);
    assert_eq!(fake.names_under(CMS), std::slice::from_ref(&schema_cm));
    assert_eq!(
        schema_cm,
        format!("chat-schema-{}", source_hash(&fake)),
        "named after the configuration hash"
    );
    let cm = fake.get(&format!("{CMS}{schema_cm}")).unwrap();
    assert_eq!(cm["immutable"], true);
    assert_eq!(fake.names_under(SECRETS), ["chat-generated"]);
    assert_eq!(fake.names_under(PVCS), ["chat-cache-data"]);
    for path in [
        format!("{DEPLOYS}chat-cache"),
        format!("{CMS}{schema_cm}"),
        format!("{SECRETS}chat-generated"),
    ] {
        let obj = fake.get(&path).unwrap();
        let owner = &obj["metadata"]["ownerReferences"][0];
        assert_eq!(owner["kind"], "ZeroStack", "{path}");
        assert_eq!(
            owner["uid"], "11111111-2222-3333-4444-555555555555",
            "{path}"
        );
        assert_eq!(owner["controller"], true, "{path}");
    }
    // Server-side apply with our field manager, forced.
    let applies: Vec<_> = fake
        .calls()
        .into_iter()
        .filter(|c| c.method == Method::PATCH && !c.path.contains("/events"))
        .collect();
    for c in &applies {
        assert!(
            c.query.contains("fieldManager=zerostack-operator") && c.query.contains("force=true"),
            "{} {}",
            c.path,
            c.query
        );
    }

    let zs = current(&fake);
    let st = zs.status.clone().expect("status written");
    assert_eq!(st.observed_generation, Some(1));
    assert_eq!(cond(&zs, "SchemaValid").status, "True");
    assert_eq!(cond(&zs, "Ready").status, "False");
    assert_eq!(cond(&zs, "SourceReady").reason, "DeploymentNotReady");
    assert!(
        cond(&zs, "SourceReady").message.contains("chat-source"),
        "reason names the child"
    );
    assert_eq!(cond(&zs, "Progressing").status, "True");
    assert!(
        zs.status
            .as_ref()
            .unwrap()
            .conditions
            .iter()
            .all(|c| c.observed_generation == Some(1))
    );
    assert_eq!(st.phase.as_deref(), Some("Progressing"));
    assert_eq!(
        st.endpoints.unwrap().zero_cache.as_deref(),
        Some("http://chat-cache.demo.svc:4848")
    );
    // Events for the transitions.
    assert!(
        fake.calls()
            .iter()
            .any(|c| c.method == Method::POST && c.path.contains("/events"))
    );
    assert_eq!(ctx.metrics.reconciles(), 1);
}

#[tokio::test]
async fn ready_once_deployments_roll_out_and_secrets_stay_stable() {
    let (ctx, fake) = setup(&zerostack("chat"));
    run(&ctx, &fake).await.unwrap();
    let secret_before = fake.get(&format!("{SECRETS}chat-generated")).unwrap()["data"].clone();
    for d in ["chat-source", "chat-cache", "chat-app"] {
        fake.make_ready(NS, d);
    }
    let action = run(&ctx, &fake).await.unwrap();
    assert_eq!(action, Action::requeue(Duration::from_secs(300)));
    let zs = current(&fake);
    assert_eq!(cond(&zs, "Ready").status, "True", "{:?}", zs.status);
    assert_eq!(zs.status.as_ref().unwrap().phase.as_deref(), Some("Ready"));
    assert_eq!(
        zs.status
            .as_ref()
            .unwrap()
            .cache
            .as_ref()
            .unwrap()
            .ready_replicas,
        1
    );
    assert_eq!(cond(&zs, "Progressing").status, "False");
    assert_eq!(
        fake.get(&format!("{SECRETS}chat-generated")).unwrap()["data"],
        secret_before
    );
}

#[tokio::test]
async fn update_changes_children_in_place() {
    let (ctx, fake) = setup(&zerostack("chat"));
    run(&ctx, &fake).await.unwrap();
    update(&fake, |zs| zs.spec.source.replicas = 3);
    run(&ctx, &fake).await.unwrap();
    let d = fake.get(&format!("{DEPLOYS}chat-source")).unwrap();
    assert_eq!(d["spec"]["replicas"], 3);
    // More than one pod: a PDB appears.
    assert!(
        fake.get("/apis/policy/v1/namespaces/demo/poddisruptionbudgets/chat-source")
            .is_some()
    );
    assert_eq!(current(&fake).status.unwrap().observed_generation, Some(2));
}

#[tokio::test]
async fn schema_change_rolls_only_the_source() {
    let (ctx, fake) = setup(&zerostack("chat"));
    run(&ctx, &fake).await.unwrap();
    let hash1 = source_hash(&fake);
    let cache1 = fake.get(&format!("{DEPLOYS}chat-cache")).unwrap()["spec"]["template"].clone();
    let app1 = fake.get(&format!("{DEPLOYS}chat-app")).unwrap()["spec"]["template"].clone();
    update(&fake, |zs| {
        let i = zs.spec.schema.inline.as_mut().unwrap();
        i.schema = SCHEMA.replace(
            r#""name":{"type":"string","optional":true"#,
            r#""name":{"type":"string","optional":false"#,
        );
    });
    run(&ctx, &fake).await.unwrap();
    let hash2 = source_hash(&fake);
    assert_ne!(hash1, hash2, "schema edit changes the pod-template hash");
    assert_eq!(
        fake.get(&format!("{DEPLOYS}chat-cache")).unwrap()["spec"]["template"],
        cache1
    );
    assert_eq!(
        fake.get(&format!("{DEPLOYS}chat-app")).unwrap()["spec"]["template"],
        app1
    );
    let cm = fake.get(&format!("{CMS}chat-schema-{hash2}")).unwrap();
    assert!(
        cm["data"]["schema.json"]
            .as_str()
            .unwrap()
            .contains(r#""optional":false"#)
    );
    assert_eq!(mounted_schema(&fake), format!("chat-schema-{hash2}"));
    assert_eq!(
        schema_config_maps(&fake).len(),
        2,
        "the previous schema's ConfigMap stays for pods still rolling off it"
    );
    assert_eq!(
        current(&fake).status.unwrap().schema_hash.as_deref(),
        Some(hash2.as_str())
    );
}

/// The schema change events published so far: (reason, note).
fn schema_change_events(fake: &ApiServerVerifier) -> Vec<(String, String)> {
    fake.calls()
        .into_iter()
        .filter(|c| c.method == Method::POST && c.path.contains("/events"))
        .filter_map(|c| {
            let body = c.body?;
            let reason = body["reason"].as_str()?.to_string();
            reason.starts_with("SchemaChange").then(|| {
                (
                    reason,
                    body["note"].as_str().unwrap_or_default().to_string(),
                )
            })
        })
        .collect()
}

#[tokio::test]
async fn schema_change_status_says_in_place_or_resync_and_zero_cache_is_not_rolled() {
    use crate::crd::SchemaChangeKind;
    const CHATS_NAME: &str = r#""name":{"type":"string","optional":true,"customType":null}"#;
    let (ctx, fake) = setup(&zerostack("chat"));
    run(&ctx, &fake).await.unwrap();
    let hash1 = source_hash(&fake);
    assert_eq!(current(&fake).status.unwrap().last_schema_change, None);
    let cache1 = fake.get(&format!("{DEPLOYS}chat-cache")).unwrap()["spec"]["template"].clone();

    // A new optional column: applied in place.
    let with_topic = |ty: &str| {
        SCHEMA.replace(
            CHATS_NAME,
            &format!(r#"{CHATS_NAME},"topic":{{"type":"{ty}","optional":true,"customType":null}}"#),
        )
    };
    update(&fake, |zs| {
        zs.spec.schema.inline.as_mut().unwrap().schema = with_topic("string");
    });
    fake.clear_calls();
    run(&ctx, &fake).await.unwrap();
    let hash2 = source_hash(&fake);
    assert_ne!(hash1, hash2);
    let change = current(&fake)
        .status
        .unwrap()
        .last_schema_change
        .expect("recorded");
    assert_eq!(change.kind, SchemaChangeKind::InPlace, "{change:?}");
    assert_eq!(
        (change.from_hash.as_str(), change.to_hash.as_str()),
        (hash1.as_str(), hash2.as_str())
    );
    assert!(
        change
            .steps
            .iter()
            .any(|s| s.contains("add column") && s.contains("topic")),
        "{:?}",
        change.steps
    );
    assert_eq!(change.reason, None);
    assert_eq!(
        fake.get(&format!("{DEPLOYS}chat-cache")).unwrap()["spec"]["template"],
        cache1,
        "zero-cache's pod template is untouched, so it is not restarted"
    );
    let events = schema_change_events(&fake);
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].0, "SchemaChangeInPlace");
    assert!(events[0].1.contains("topic"), "{events:?}");

    // Nothing changes: the record stays as it was, and no new event.
    fake.clear_calls();
    run(&ctx, &fake).await.unwrap();
    assert_eq!(
        current(&fake).status.unwrap().last_schema_change,
        Some(change)
    );
    assert!(schema_change_events(&fake).is_empty());

    // A column's type changes: zero-cache resyncs, and the reason names the column.
    update(&fake, |zs| {
        zs.spec.schema.inline.as_mut().unwrap().schema = with_topic("number");
    });
    fake.clear_calls();
    run(&ctx, &fake).await.unwrap();
    let hash3 = source_hash(&fake);
    let change = current(&fake)
        .status
        .unwrap()
        .last_schema_change
        .expect("recorded");
    assert_eq!(change.kind, SchemaChangeKind::Resync, "{change:?}");
    assert_eq!(
        (change.from_hash.as_str(), change.to_hash.as_str()),
        (hash2.as_str(), hash3.as_str())
    );
    assert!(change.steps.is_empty());
    assert!(
        change
            .reason
            .as_deref()
            .unwrap_or_default()
            .contains("topic"),
        "{change:?}"
    );
    assert_eq!(schema_change_events(&fake)[0].0, "SchemaChangeResync");
    assert_eq!(
        fake.get(&format!("{DEPLOYS}chat-cache")).unwrap()["spec"]["template"],
        cache1
    );

    // The previous schema's ConfigMap is gone: said so, not guessed.
    fake.remove(&format!("{CMS}chat-schema-{hash3}"));
    update(&fake, |zs| {
        zs.spec.schema.inline.as_mut().unwrap().schema = SCHEMA.into();
    });
    run(&ctx, &fake).await.unwrap();
    let change = current(&fake)
        .status
        .unwrap()
        .last_schema_change
        .expect("recorded");
    assert_eq!(change.kind, SchemaChangeKind::Unknown, "{change:?}");
    assert!(
        change
            .reason
            .as_deref()
            .unwrap_or_default()
            .contains(&format!("chat-schema-{hash3}")),
        "{change:?}"
    );
}

#[tokio::test]
async fn schema_config_maps_are_pruned_to_the_running_one_and_a_short_history() {
    let (ctx, fake) = setup(&zerostack("chat"));
    run(&ctx, &fake).await.unwrap();
    let first = mounted_schema(&fake);
    for i in 0..6 {
        update(&fake, |zs| {
            let i_schema = zs.spec.schema.inline.as_mut().unwrap();
            i_schema.schema = SCHEMA.replace(
                r#""name":"channels""#,
                &format!(r#""name":"channels","serverName":"channels_v{i}""#),
            );
        });
        run(&ctx, &fake).await.unwrap();
    }
    let kept = schema_config_maps(&fake);
    assert_eq!(kept.len(), 1 + SCHEMA_HISTORY, "{kept:?}");
    assert!(
        kept.contains(&mounted_schema(&fake)),
        "the running one stays"
    );
    assert!(!kept.contains(&first), "the oldest went");
    // Reverting to a schema still in the history reuses its ConfigMap.
    let calls_before = fake.calls().len();
    let previous = kept.iter().find(|n| **n != mounted_schema(&fake)).cloned();
    assert!(previous.is_some());
    update(&fake, |zs| {
        let i_schema = zs.spec.schema.inline.as_mut().unwrap();
        i_schema.schema = SCHEMA.replace(
            r#""name":"channels""#,
            r#""name":"channels","serverName":"channels_v5""#,
        );
    });
    run(&ctx, &fake).await.unwrap();
    let cm_path = format!("{CMS}{}", mounted_schema(&fake));
    assert!(
        !fake.calls()[calls_before..]
            .iter()
            .any(|c| c.method == Method::PATCH && c.path == cm_path),
        "an existing schema ConfigMap is never written again"
    );
}

#[tokio::test]
async fn bad_schema_sets_schema_valid_false_and_keeps_running_config() {
    let (ctx, fake) = setup(&zerostack("chat"));
    run(&ctx, &fake).await.unwrap();
    let hash1 = source_hash(&fake);
    let cm1 = fake.get(&format!("{CMS}chat-schema-{hash1}")).unwrap()["data"].clone();
    update(&fake, |zs| {
        // Primary key names a column that does not exist.
        zs.spec.schema.inline.as_mut().unwrap().schema =
            SCHEMA.replace(r#""primaryKey":["id"]"#, r#""primaryKey":["nope"]"#);
    });
    run(&ctx, &fake)
        .await
        .expect("a bad schema is a status, not an error");
    let zs = current(&fake);
    let c = cond(&zs, "SchemaValid");
    assert_eq!(c.status, "False");
    assert_eq!(c.reason, "ValidationFailed");
    assert!(
        c.message.contains("spec.schema.inline"),
        "message names the input: {}",
        c.message
    );
    assert!(
        c.message.contains("primaryKey"),
        "message names the problem: {}",
        c.message
    );
    assert_eq!(c.observed_generation, Some(2));
    assert_eq!(cond(&zs, "Ready").status, "False");
    assert_eq!(cond(&zs, "Degraded").status, "True");
    assert_eq!(
        zs.status.as_ref().unwrap().phase.as_deref(),
        Some("SchemaInvalid")
    );
    assert_eq!(source_hash(&fake), hash1, "nothing rolls");
    assert_eq!(
        fake.get(&format!("{CMS}chat-schema-{hash1}")).unwrap()["data"],
        cm1,
        "ConfigMap untouched"
    );
    assert_eq!(
        schema_config_maps(&fake).len(),
        1,
        "no ConfigMap for the bad schema"
    );
    assert_eq!(
        zs.status.as_ref().unwrap().schema_hash.as_deref(),
        Some(hash1.as_str()),
        "status names the configuration still running"
    );
    // A warning event was published for the transition.
    assert!(fake.calls().iter().any(|c| {
        c.method == Method::POST
            && c.body
                .as_ref()
                .is_some_and(|b| b["type"] == "Warning" && b["reason"] == "ValidationFailed")
    }));
}

#[tokio::test]
async fn bad_schema_on_first_reconcile_creates_no_source() {
    let mut zs = zerostack("chat");
    zs.spec.schema.inline.as_mut().unwrap().schema = "{not json".into();
    let (ctx, fake) = setup(&zs);
    run(&ctx, &fake).await.unwrap();
    assert!(fake.get(&format!("{DEPLOYS}chat-source")).is_none());
    assert!(schema_config_maps(&fake).is_empty());
    let zs = current(&fake);
    assert_eq!(cond(&zs, "SchemaValid").status, "False");
    assert_eq!(cond(&zs, "SourceReady").reason, "WaitingForValidSchema");
}

#[tokio::test]
async fn schema_from_a_configmap_is_read_and_missing_configmap_is_reported() {
    let mut zs = zerostack("chat");
    zs.spec.schema.inline = None;
    zs.spec.schema.config_map_ref = Some(crate::crd::SchemaConfigMapRef {
        name: "zrocket-schema".into(),
        schema_key: "schema.json".into(),
        table_mappings_key: "table-mappings.json".into(),
        permissions_key: "permissions.json".into(),
    });
    let (ctx, fake) = setup(&zs);
    run(&ctx, &fake).await.unwrap();
    let c = current(&fake);
    assert_eq!(cond(&c, "SchemaValid").reason, "ConfigMapNotFound");
    assert!(
        cond(&c, "SchemaValid")
            .message
            .contains("demo/zrocket-schema")
    );

    fake.insert(
        &format!("{CMS}zrocket-schema"),
        serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "zrocket-schema", "namespace": "demo"},
            "data": {"schema.json": SCHEMA, "table-mappings.json": crate::fixtures::MAPPINGS}}),
    );
    run(&ctx, &fake).await.unwrap();
    let c = current(&fake);
    assert_eq!(cond(&c, "SchemaValid").status, "True");
    let cm = fake
        .get(&format!("{CMS}{}", mounted_schema(&fake)))
        .unwrap();
    assert_eq!(cm["data"]["table-mappings.json"], crate::fixtures::MAPPINGS);
    let user = fake.get(&format!("{CMS}zrocket-schema")).unwrap();
    assert!(
        user["metadata"].get("ownerReferences").is_none(),
        "the user's ConfigMap is only read"
    );
}

/// The bug a real cluster found: the user's schema ConfigMap carried the very name the operator
/// rendered its own into (`<stack>-schema`), so the operator took it over (server-side apply,
/// owner reference) and deleting the ZeroStack garbage-collected it.
#[tokio::test]
async fn the_users_schema_config_map_is_never_written_or_owned() {
    let mut zs = zerostack("chat");
    zs.spec.schema.inline = None;
    zs.spec.schema.config_map_ref = Some(crate::crd::SchemaConfigMapRef {
        name: "chat-schema".into(),
        schema_key: "schema.json".into(),
        table_mappings_key: "table-mappings.json".into(),
        permissions_key: "permissions.json".into(),
    });
    let (ctx, fake) = setup(&zs);
    let user_cm = serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "chat-schema", "namespace": "demo"},
        "data": {"schema.json": SCHEMA, "table-mappings.json": crate::fixtures::MAPPINGS}});
    fake.insert(&format!("{CMS}chat-schema"), user_cm.clone());
    run(&ctx, &fake).await.unwrap();
    // A bad edit to the user's ConfigMap: reported, and what runs stays.
    let running = mounted_schema(&fake);
    let mut bad = user_cm.clone();
    bad["data"]["schema.json"] = "{not json".into();
    fake.insert(&format!("{CMS}chat-schema"), bad.clone());
    run(&ctx, &fake).await.unwrap();
    assert_eq!(cond(&current(&fake), "SchemaValid").status, "False");
    assert_eq!(
        mounted_schema(&fake),
        running,
        "a bad schema never replaces a good one"
    );
    assert_eq!(
        fake.get(&format!("{CMS}{running}")).unwrap()["data"]["schema.json"],
        SCHEMA
    );
    for c in fake.calls() {
        assert!(
            !(c.path == format!("{CMS}chat-schema") && c.method != Method::GET),
            "{} {} touched the user's ConfigMap",
            c.method,
            c.path
        );
    }
    assert_eq!(fake.get(&format!("{CMS}chat-schema")).unwrap(), bad);
}

/// Every kind the operator writes, each with its name taken by an object it did not create:
/// that object is neither written, adopted nor deleted, nothing else is applied, and the status
/// says which object is in the way. Once it is gone, the stack is created.
#[tokio::test]
async fn a_name_taken_by_a_foreign_object_is_a_condition_never_a_takeover() {
    let mut zs = zerostack("chat");
    zs.spec.source.replicas = 2; // so that a PodDisruptionBudget is rendered
    multi_node(&mut zs, 2, true); // so that a HorizontalPodAutoscaler is rendered
    assert!(
        zs.spec.network_policy.enabled,
        "NetworkPolicies are on by default"
    );
    let schema = crate::schema_check::check(&crate::schema_check::SchemaFiles {
        origin: "test".into(),
        schema: SCHEMA.into(),
        table_mappings: Some(crate::fixtures::MAPPINGS.into()),
        permissions: None,
    })
    .unwrap();
    let children = render::render(
        &zs,
        &Inputs {
            schema: Some(schema),
            generated: GeneratedSecrets {
                source_token: "t".into(),
                admin_password: "p".into(),
            },
        },
    );
    let kinds: std::collections::BTreeSet<&str> = children.iter().map(|c| c.kind()).collect();
    assert_eq!(
        kinds.into_iter().collect::<Vec<_>>(),
        owned_kinds()
            .iter()
            .map(|(k, _)| *k)
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect::<Vec<_>>(),
        "the test covers every kind the operator writes"
    );
    let mut seen = std::collections::BTreeSet::new();
    for child in children.iter().filter(|c| seen.insert(c.kind())) {
        let (ctx, fake) = setup(&zs);
        let path = item_path(child);
        let foreign = serde_json::json!({
            "apiVersion": child.to_value()["apiVersion"], "kind": child.kind(),
            "metadata": {"name": child.name(), "namespace": "demo", "uid": "someone-else",
                "labels": {"app.kubernetes.io/instance": "chat", "app.kubernetes.io/managed-by": "zerostack-operator"}},
        });
        fake.insert(&path, foreign.clone());
        run(&ctx, &fake)
            .await
            .expect("a conflict is a status, not an error");
        let what = format!("{} {}", child.kind(), path);
        assert_eq!(fake.get(&path), Some(foreign), "{what}: untouched");
        assert_eq!(
            child_patches(&fake),
            0,
            "{what}: nothing applied: {:?}",
            fake.calls()
                .iter()
                .filter(|c| c.method == Method::PATCH)
                .map(|c| &c.path)
                .collect::<Vec<_>>()
        );
        assert!(
            fake.calls().iter().all(|c| c.method != Method::DELETE),
            "{what}: nothing deleted"
        );
        let st = current(&fake);
        let ready = cond(&st, "Ready");
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("False", "NameConflict"),
            "{what}"
        );
        assert!(
            ready
                .message
                .contains(&format!("{} demo/{}", child.kind(), child.name())),
            "{what}: {}",
            ready.message
        );
        assert_eq!(cond(&st, "Degraded").reason, "NameConflict", "{what}");

        fake.remove(&path);
        run(&ctx, &fake).await.unwrap();
        let obj = fake
            .get(&path)
            .unwrap_or_else(|| panic!("{what}: created once free"));
        assert_eq!(
            obj["metadata"]["ownerReferences"][0]["uid"], "11111111-2222-3333-4444-555555555555",
            "{what}"
        );
        assert_ne!(
            cond(&current(&fake), "Ready").reason,
            "NameConflict",
            "{what}"
        );
    }
}

/// The fake API server's path of a rendered child.
fn item_path(child: &render::Child) -> String {
    let plural = match child.kind() {
        "ConfigMap" => "/api/v1/namespaces/demo/configmaps",
        "Secret" => "/api/v1/namespaces/demo/secrets",
        "Service" => "/api/v1/namespaces/demo/services",
        "PersistentVolumeClaim" => "/api/v1/namespaces/demo/persistentvolumeclaims",
        "Deployment" => "/apis/apps/v1/namespaces/demo/deployments",
        "PodDisruptionBudget" => "/apis/policy/v1/namespaces/demo/poddisruptionbudgets",
        "NetworkPolicy" => "/apis/networking.k8s.io/v1/namespaces/demo/networkpolicies",
        "HorizontalPodAutoscaler" => {
            "/apis/autoscaling/v2/namespaces/demo/horizontalpodautoscalers"
        }
        other => panic!("no path for {other}"),
    };
    format!("{plural}/{}", child.name())
}

#[tokio::test]
async fn generated_values_are_never_read_from_a_secret_someone_else_owns() {
    let (ctx, fake) = setup(&zerostack("chat"));
    fake.insert(
        &format!("{SECRETS}chat-generated"),
        serde_json::json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "chat-generated", "namespace": "demo"},
            "data": {"source-token": "dXNlcnM="}}),
    );
    run(&ctx, &fake).await.unwrap();
    assert_eq!(cond(&current(&fake), "Ready").reason, "NameConflict");
    fake.remove(&format!("{SECRETS}chat-generated"));
    run(&ctx, &fake).await.unwrap();
    let data = &fake.get(&format!("{SECRETS}chat-generated")).unwrap()["data"];
    assert_ne!(
        data["source-token"], "dXNlcnM=",
        "a fresh value, not the user's"
    );
}

#[tokio::test]
async fn paused_touches_no_child_and_reports_the_condition() {
    let (ctx, fake) = setup(&zerostack("chat"));
    run(&ctx, &fake).await.unwrap();
    update(&fake, |zs| {
        zs.spec.paused = true;
        zs.spec.source.replicas = 5;
    });
    fake.clear_calls();
    let action = run(&ctx, &fake).await.unwrap();
    assert_eq!(action, Action::await_change());
    assert_eq!(child_patches(&fake), 0, "no child applied while paused");
    assert!(fake.calls().iter().all(|c| c.method != Method::DELETE));
    assert_eq!(
        fake.get(&format!("{DEPLOYS}chat-source")).unwrap()["spec"]["replicas"],
        1
    );
    let zs = current(&fake);
    assert_eq!(cond(&zs, "ReconciliationPaused").status, "True");
    assert_eq!(
        cond(&zs, "ReconciliationPaused").observed_generation,
        Some(2)
    );
    assert_eq!(zs.status.as_ref().unwrap().observed_generation, Some(2));

    update(&fake, |zs| zs.spec.paused = false);
    run(&ctx, &fake).await.unwrap();
    assert_eq!(
        fake.get(&format!("{DEPLOYS}chat-source")).unwrap()["spec"]["replicas"],
        5
    );
    assert_eq!(
        cond(&current(&fake), "ReconciliationPaused").status,
        "False"
    );
}

#[tokio::test]
async fn children_no_longer_wanted_are_deleted() {
    let (ctx, fake) = setup(&zerostack("chat"));
    run(&ctx, &fake).await.unwrap();
    // Something we do not own, with our labels, must survive the sweep.
    fake.insert(
        &format!("{CMS}user-owned"),
        serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "user-owned", "namespace": "demo",
            "labels": {"app.kubernetes.io/instance": "chat", "app.kubernetes.io/managed-by": "zerostack-operator"}}}),
    );
    update(&fake, |zs| {
        zs.spec.app.enabled = false;
        zs.spec.cache.storage.type_ = "EmptyDir".into();
    });
    run(&ctx, &fake).await.unwrap();
    assert!(
        fake.get(&format!("{DEPLOYS}chat-app")).is_none(),
        "app deployment deleted"
    );
    assert!(
        fake.get(&format!("{SERVICES}chat-app")).is_none(),
        "app service deleted"
    );
    assert!(
        fake.get(&format!("{PVCS}chat-cache-data")).is_none(),
        "PVC deleted"
    );
    assert!(
        fake.get(&format!("{CMS}user-owned")).is_some(),
        "foreign object kept"
    );
    let cache = fake.get(&format!("{DEPLOYS}chat-cache")).unwrap();
    let env = cache["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()
        .unwrap()
        .clone();
    assert!(
        !env.iter().any(|e| e["name"] == "ZERO_MUTATE_URL"),
        "no mutate URL without the app"
    );
    assert_eq!(cond(&current(&fake), "AppReady").reason, "Disabled");
}

#[tokio::test]
async fn api_error_backs_off_exponentially_and_reports_degraded() {
    let (ctx, fake) = setup(&zerostack("chat"));
    fake.fail(Method::PATCH, "/deployments/chat-cache", 500);
    let zs = Arc::new(current(&fake));
    let err = run(&ctx, &fake).await.expect_err("apply failure surfaces");
    assert!(
        err.to_string().contains("Deployment demo/chat-cache"),
        "{err}"
    );
    assert_eq!(
        error_policy(zs.clone(), &err, ctx.clone()),
        Action::requeue(Duration::from_secs(5))
    );
    let err = run(&ctx, &fake).await.expect_err("still failing");
    assert_eq!(
        error_policy(zs.clone(), &err, ctx.clone()),
        Action::requeue(Duration::from_secs(10))
    );
    let err = run(&ctx, &fake).await.expect_err("still failing");
    assert_eq!(
        error_policy(zs.clone(), &err, ctx.clone()),
        Action::requeue(Duration::from_secs(20))
    );
    assert_eq!(ctx.metrics.failures_of("kube"), 3);
    let c = current(&fake);
    assert_eq!(cond(&c, "Degraded").status, "True");
    assert_eq!(cond(&c, "Degraded").reason, "ReconcileError");
    assert!(cond(&c, "Degraded").message.contains("chat-cache"));
    assert!(
        !cond(&c, "Degraded").message.contains("generated-"),
        "no secret values in status"
    );

    // Recovery resets the backoff.
    fake.clear_faults();
    run(&ctx, &fake).await.expect("recovers");
    let err = Error::NoNamespace("x".into());
    assert_eq!(
        error_policy(zs, &err, ctx.clone()),
        Action::requeue(Duration::from_secs(5))
    );
    assert_eq!(cond(&current(&fake), "Degraded").status, "False");
}

#[test]
fn backoff_is_capped() {
    assert_eq!(backoff_delay(1), Duration::from_secs(5));
    assert_eq!(backoff_delay(4), Duration::from_secs(40));
    assert_eq!(backoff_delay(30), Duration::from_secs(300));
}

#[tokio::test]
async fn status_never_contains_secret_values() {
    let (ctx, fake) = setup(&zerostack("chat"));
    run(&ctx, &fake).await.unwrap();
    let status = serde_json::to_string(&current(&fake).status).unwrap();
    assert!(!status.contains("generated-"), "{status}");
    let _: Value = serde_json::from_str(&status).unwrap();
}

#[test]
fn event_notes_are_cut_at_a_character_boundary() {
    let text = format!("{}é tail", "x".repeat(999));
    let cut = truncate_chars(text, 1000);
    assert_eq!(cut.len(), 999, "the two-byte é at byte 999 does not fit");
    assert_eq!(truncate_chars("short".into(), 1000), "short");
}

/// A schema error quotes the user's table name; when a multi-byte character of it straddles
/// byte 1000 of the Event note, the reconcile must still finish (a byte cut would panic and put
/// the operator into a crash loop) and the note must be a whole-character prefix.
#[tokio::test]
async fn schema_error_with_a_multibyte_character_at_byte_1000_does_not_panic() {
    // Find a padding for which byte 1000 of the SchemaValid note falls inside a character, from
    // the message the shared spec crate really produces (not a guess of its format).
    let (schema, note) = (0..3)
        .find_map(|pad| {
            let table = format!("t{}{}", "x".repeat(pad), "漢".repeat(400));
            // A column of an unknown type: the error names the table.
            let schema = format!(
                r#"{{"tables":{{"{table}":{{"name":"{table}","columns":{{"id":{{"type":"integer","optional":false}}}},"primaryKey":["id"]}}}},"relationships":{{}}}}"#
            );
            let files = schema_check::SchemaFiles {
                origin: format!("ZeroStack {NS}/chat spec.schema.inline"),
                schema: schema.clone(),
                table_mappings: None,
                permissions: None,
            };
            let message = schema_check::check(&files).expect_err("the schema is invalid");
            let note = format!("SchemaValid=False: {message}");
            (note.len() > 1000 && !note.is_char_boundary(1000)).then_some((schema, note))
        })
        .expect("some padding puts a multi-byte character across byte 1000");

    let mut zs = zerostack("chat");
    zs.spec.schema.inline.as_mut().unwrap().schema = schema;
    zs.spec.schema.inline.as_mut().unwrap().table_mappings = None;
    let (ctx, fake) = setup(&zs);
    run(&ctx, &fake).await.expect("reconcile ok");

    assert_eq!(cond(&current(&fake), "SchemaValid").status, "False");
    let notes: Vec<String> = fake
        .calls()
        .into_iter()
        .filter(|c| c.method == Method::POST && c.path.contains("/events"))
        .filter_map(|c| c.body?["note"].as_str().map(str::to_string))
        .collect();
    let schema_note = notes
        .iter()
        .find(|n| n.starts_with("SchemaValid=False"))
        .unwrap_or_else(|| panic!("no SchemaValid event among {notes:?}"));
    assert!(
        schema_note.len() <= 1000 && schema_note.len() > 990,
        "{}",
        schema_note.len()
    );
    assert!(
        note.starts_with(schema_note.as_str()),
        "a prefix of the full note"
    );
    assert!(notes.iter().all(|n| n.len() <= 1000));
}

/// The operator watches only schema ConfigMaps that carry `zerostack.dev/schema`; a stack whose
/// ConfigMap lacks it still reconciles, and looks again within a minute even when Ready (no
/// watch event would tell it about an edit), while a labelled one waits for its event.
#[tokio::test]
async fn an_unlabelled_schema_config_map_is_polled_a_labelled_one_is_watched() {
    let mut zs = zerostack("chat");
    zs.spec.schema.inline = None;
    zs.spec.schema.config_map_ref = Some(crate::crd::SchemaConfigMapRef {
        name: "zrocket-schema".into(),
        schema_key: "schema.json".into(),
        table_mappings_key: "table-mappings.json".into(),
        permissions_key: "permissions.json".into(),
    });
    let (ctx, fake) = setup(&zs);
    let cm = |labels: Value| {
        serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "zrocket-schema", "namespace": "demo", "labels": labels},
            "data": {"schema.json": SCHEMA, "table-mappings.json": crate::fixtures::MAPPINGS}})
    };
    fake.insert(&format!("{CMS}zrocket-schema"), cm(serde_json::json!({})));
    run(&ctx, &fake).await.unwrap();
    for d in ["chat-source", "chat-cache", "chat-app"] {
        fake.make_ready(NS, d);
    }
    let unlabelled = run(&ctx, &fake).await.unwrap();
    assert_eq!(cond(&current(&fake), "Ready").status, "True");
    assert_eq!(unlabelled, Action::requeue(UNLABELLED_SCHEMA_REQUEUE));

    fake.insert(
        &format!("{CMS}zrocket-schema"),
        cm(serde_json::json!({render::SCHEMA_LABEL: "true"})),
    );
    let labelled = run(&ctx, &fake).await.unwrap();
    assert_eq!(labelled, Action::requeue(Duration::from_secs(300)));
}

const HPAS: &str = "/apis/autoscaling/v2/namespaces/demo/horizontalpodautoscalers/";
const RM: &str = "chat-replication-manager";
const VS: &str = "chat-view-syncer";

/// Turns a stack into the replication-manager + `n` view-syncers topology.
fn multi_node(zs: &mut ZeroStack, n: i32, autoscale: bool) {
    zs.spec.cache.view_syncers = Some(n);
    zs.spec.cache.backup = Some(crate::crd::BackupSpec {
        url: "s3://backups/chat".into(),
        endpoint: Some("http://minio.storage.svc:9000".into()),
        region: None,
        credentials_secret_ref: None,
        volume_claim_name: None,
    });
    zs.spec.cache.autoscale = autoscale.then_some(crate::crd::AutoscaleSpec {
        min_replicas: 2,
        max_replicas: 6,
        target_cpu: 60,
    });
}

fn env_of(fake: &ApiServerVerifier, deployment: &str, name: &str) -> Option<String> {
    let d = fake.get(&format!("{DEPLOYS}{deployment}"))?;
    d["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()?
        .iter()
        .find(|e| e["name"] == name)
        .and_then(|e| e["value"].as_str().map(String::from))
}

fn topology(fake: &ApiServerVerifier) -> crate::crd::CacheTopologyStatus {
    current(fake)
        .status
        .and_then(|s| s.cache_topology)
        .expect("status.cacheTopology")
}

/// Rocicorp's order: the view-syncers get a new spec only once the replication-manager runs
/// its own new spec and is ready, on creation and on every later change.
#[tokio::test]
async fn view_syncers_roll_only_behind_a_ready_replication_manager() {
    let mut zs = zerostack("chat");
    multi_node(&mut zs, 2, false);
    let (ctx, fake) = setup(&zs);
    run(&ctx, &fake).await.unwrap();
    let mut deploys = fake.names_under(DEPLOYS);
    deploys.sort();
    assert_eq!(
        deploys,
        ["chat-app", RM, "chat-source"],
        "no view-syncers before the replication-manager is ready"
    );
    assert_eq!(
        env_of(&fake, RM, "ZERO_NUM_SYNC_WORKERS").as_deref(),
        Some("0")
    );
    assert!(topology(&fake).view_syncers_held);
    assert!(!topology(&fake).replication_manager_ready);
    let st = current(&fake);
    assert_eq!(cond(&st, "CacheReady").status, "False");
    assert!(
        cond(&st, "CacheReady").message.contains(RM),
        "{:?}",
        cond(&st, "CacheReady")
    );

    fake.make_ready(NS, RM);
    run(&ctx, &fake).await.unwrap();
    let vs = fake
        .get(&format!("{DEPLOYS}{VS}"))
        .expect("view-syncers created");
    assert_eq!(vs["spec"]["replicas"], 2);
    assert_eq!(
        env_of(&fake, VS, "ZERO_CHANGE_STREAMER_URI").as_deref(),
        Some("ws://chat-replication-manager.demo.svc:4849/")
    );
    assert!(!topology(&fake).view_syncers_held);
    assert_eq!(
        fake.get(&format!("{SERVICES}chat-cache")).unwrap()["spec"]["selector"]["app.kubernetes.io/component"],
        "view-syncer",
        "the client Service selects the view-syncers"
    );

    for d in ["chat-source", "chat-app", VS] {
        fake.make_ready(NS, d);
    }
    run(&ctx, &fake).await.unwrap();
    let st = current(&fake);
    assert_eq!(cond(&st, "Ready").status, "True", "{:?}", st.status);
    let t = topology(&fake);
    assert!(t.replication_manager_ready);
    assert_eq!(
        (t.view_syncers.replicas, t.view_syncers.ready_replicas),
        (2, 2)
    );
    assert_eq!(st.status.unwrap().cache.unwrap().ready_replicas, 2);

    // A change to both: the replication-manager rolls, the view-syncers wait for it.
    update(&fake, |zs| zs.spec.cache.log_level = "debug".into());
    run(&ctx, &fake).await.unwrap();
    assert_eq!(
        env_of(&fake, RM, "ZERO_LOG_LEVEL").as_deref(),
        Some("debug")
    );
    assert_eq!(
        env_of(&fake, VS, "ZERO_LOG_LEVEL").as_deref(),
        Some("info"),
        "view-syncers held while the replication-manager rolls"
    );
    assert!(topology(&fake).view_syncers_held);
    assert_eq!(cond(&current(&fake), "Ready").status, "False");
    // Still held on the next pass while the replication-manager is not ready.
    run(&ctx, &fake).await.unwrap();
    assert_eq!(env_of(&fake, VS, "ZERO_LOG_LEVEL").as_deref(), Some("info"));
    assert!(
        fake.get(&format!("{DEPLOYS}{VS}")).is_some(),
        "a held Deployment is never swept"
    );

    fake.make_ready(NS, RM);
    run(&ctx, &fake).await.unwrap();
    assert_eq!(
        env_of(&fake, VS, "ZERO_LOG_LEVEL").as_deref(),
        Some("debug")
    );
    assert!(!topology(&fake).view_syncers_held);
}

/// With an autoscaler the operator's apply of the view-syncers never carries `replicas`, so
/// server-side apply leaves the autoscaler's choice alone; without one it does again.
#[tokio::test]
async fn with_an_autoscaler_the_view_syncer_replicas_are_never_applied() {
    let mut zs = zerostack("chat");
    multi_node(&mut zs, 2, true);
    let (ctx, fake) = setup(&zs);
    run(&ctx, &fake).await.unwrap();
    fake.make_ready(NS, RM);
    run(&ctx, &fake).await.unwrap();
    let hpa = fake.get(&format!("{HPAS}{VS}")).expect("an autoscaler");
    assert_eq!(hpa["spec"]["scaleTargetRef"]["name"], VS);
    assert_eq!(hpa["spec"]["minReplicas"], 2);
    assert_eq!(hpa["spec"]["maxReplicas"], 6);
    assert_eq!(
        hpa["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"],
        60
    );
    let vs_patches = |fake: &ApiServerVerifier| -> Vec<Value> {
        fake.calls()
            .into_iter()
            .filter(|c| c.method == Method::PATCH && c.path == format!("{DEPLOYS}{VS}"))
            .filter_map(|c| c.body)
            .collect()
    };
    let patches = vs_patches(&fake);
    assert!(!patches.is_empty(), "the view-syncers were applied");
    for p in &patches {
        assert!(p["spec"].get("replicas").is_none(), "replicas applied: {p}");
    }
    // Scaled by the autoscaler, reconciled again (the operator's watch fires): still untouched.
    update(&fake, |zs| zs.spec.cache.log_level = "debug".into());
    fake.make_ready(NS, RM);
    fake.clear_calls();
    run(&ctx, &fake).await.unwrap();
    fake.make_ready(NS, RM);
    run(&ctx, &fake).await.unwrap();
    let patches = vs_patches(&fake);
    assert!(!patches.is_empty());
    for p in &patches {
        assert!(p["spec"].get("replicas").is_none(), "replicas applied: {p}");
    }

    // Autoscaler removed: the operator owns replicas again and the autoscaler is deleted.
    update(&fake, |zs| zs.spec.cache.autoscale = None);
    fake.clear_calls();
    run(&ctx, &fake).await.unwrap();
    assert_eq!(
        fake.get(&format!("{DEPLOYS}{VS}")).unwrap()["spec"]["replicas"],
        2
    );
    assert!(
        fake.get(&format!("{HPAS}{VS}")).is_none(),
        "autoscaler deleted"
    );
}

/// Back to the single node: the topology's children go, the single node comes back on the
/// same replica volume (the replication-manager's, so its replica is not lost).
#[tokio::test]
async fn switching_topologies_keeps_the_replica_volume_and_sweeps_the_other_topology() {
    let mut zs = zerostack("chat");
    multi_node(&mut zs, 2, true);
    let (ctx, fake) = setup(&zs);
    run(&ctx, &fake).await.unwrap();
    fake.make_ready(NS, RM);
    run(&ctx, &fake).await.unwrap();
    let rm = fake.get(&format!("{DEPLOYS}{RM}")).unwrap();
    assert_eq!(
        rm["spec"]["template"]["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"],
        "chat-cache-data"
    );
    update(&fake, |zs| {
        zs.spec.cache.view_syncers = None;
        zs.spec.cache.autoscale = None;
    });
    run(&ctx, &fake).await.unwrap();
    // First pass: the topology goes; the single node waits for the replication-manager's
    // Deployment to be gone, never sharing the replica volume with it.
    let mut deploys = fake.names_under(DEPLOYS);
    deploys.sort();
    assert_eq!(deploys, ["chat-app", "chat-source"]);
    run(&ctx, &fake).await.unwrap();
    let mut deploys = fake.names_under(DEPLOYS);
    deploys.sort();
    assert_eq!(deploys, ["chat-app", "chat-cache", "chat-source"]);
    assert!(fake.get(&format!("{SERVICES}{RM}")).is_none());
    assert!(fake.get(&format!("{HPAS}{VS}")).is_none());
    assert_eq!(fake.names_under(PVCS), ["chat-cache-data"]);
    assert!(current(&fake).status.unwrap().cache_topology.is_none());

    // And into the topology again: the replication-manager waits for the single node to go.
    update(&fake, |zs| zs.spec.cache.view_syncers = Some(2));
    run(&ctx, &fake).await.unwrap();
    assert!(fake.get(&format!("{DEPLOYS}chat-cache")).is_none());
    assert!(
        fake.get(&format!("{DEPLOYS}{RM}")).is_none(),
        "not beside the single node"
    );
    run(&ctx, &fake).await.unwrap();
    assert!(fake.get(&format!("{DEPLOYS}{RM}")).is_some());
}

/// Turning the autoscaler on for running view-syncers: their count is first applied under the
/// handover manager (so server-side apply keeps the field when the operator stops sending it),
/// then the operator's own apply leaves it out.
#[tokio::test]
async fn an_autoscaler_turned_on_takes_over_the_running_count() {
    let mut zs = zerostack("chat");
    multi_node(&mut zs, 2, false);
    let (ctx, fake) = setup(&zs);
    run(&ctx, &fake).await.unwrap();
    fake.make_ready(NS, RM);
    run(&ctx, &fake).await.unwrap();
    // What a real API server records for the operator's apply.
    let path = format!("{DEPLOYS}{VS}");
    let mut vs = fake.get(&path).unwrap();
    vs["metadata"]["managedFields"] = serde_json::json!([{
        "manager": "zerostack-operator", "operation": "Apply", "apiVersion": "apps/v1",
        "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:replicas": {}, "f:template": {}}},
    }]);
    fake.insert(&path, vs);
    update(&fake, |zs| {
        zs.spec.cache.autoscale = Some(crate::crd::AutoscaleSpec {
            min_replicas: 2,
            max_replicas: 6,
            target_cpu: 60,
        })
    });
    fake.make_ready(NS, RM);
    fake.clear_calls();
    run(&ctx, &fake).await.unwrap();
    let patches: Vec<_> = fake
        .calls()
        .into_iter()
        .filter(|c| c.method == Method::PATCH && c.path == path)
        .collect();
    assert_eq!(patches.len(), 2, "{patches:?}");
    assert!(
        patches[0]
            .query
            .contains("fieldManager=zerostack-operator-replicas-handover"),
        "{}",
        patches[0].query
    );
    assert_eq!(
        patches[0].body.as_ref().unwrap()["spec"],
        serde_json::json!({"replicas": 2})
    );
    assert!(
        patches[1]
            .query
            .split('&')
            .any(|kv| kv == "fieldManager=zerostack-operator"),
        "{}",
        patches[1].query
    );
    assert!(
        patches[1].body.as_ref().unwrap()["spec"]
            .get("replicas")
            .is_none()
    );
}
