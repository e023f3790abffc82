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

fn child_patches(fake: &ApiServerVerifier) -> usize {
    fake.calls()
        .iter()
        .filter(|c| c.method == Method::PATCH && !c.path.ends_with("/status"))
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
    assert_eq!(fake.names_under(CMS), ["chat-schema"]);
    assert_eq!(fake.names_under(SECRETS), ["chat-generated"]);
    assert_eq!(fake.names_under(PVCS), ["chat-cache-data"]);
    for path in [
        format!("{DEPLOYS}chat-cache"),
        format!("{CMS}chat-schema"),
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
    let cm = fake.get(&format!("{CMS}chat-schema")).unwrap();
    assert!(
        cm["data"]["schema.json"]
            .as_str()
            .unwrap()
            .contains(r#""optional":false"#)
    );
    assert_eq!(
        current(&fake).status.unwrap().schema_hash.as_deref(),
        Some(hash2.as_str())
    );
}

#[tokio::test]
async fn bad_schema_sets_schema_valid_false_and_keeps_running_config() {
    let (ctx, fake) = setup(&zerostack("chat"));
    run(&ctx, &fake).await.unwrap();
    let hash1 = source_hash(&fake);
    let cm1 = fake.get(&format!("{CMS}chat-schema")).unwrap()["data"].clone();
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
        fake.get(&format!("{CMS}chat-schema")).unwrap()["data"],
        cm1,
        "ConfigMap untouched"
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
    assert!(fake.get(&format!("{CMS}chat-schema")).is_none());
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
    let cm = fake.get(&format!("{CMS}chat-schema")).unwrap();
    assert_eq!(cm["data"]["table-mappings.json"], crate::fixtures::MAPPINGS);
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
