//! Cluster suite: runs unchanged against whatever cluster the kubeconfig points at (kind in
//! GitHub Actions). Skipped, with a printed note, when there is no kubeconfig and
//! `ZEROSTACK_CLUSTER_TESTS` is not set.
//!
//! It installs the CRD, runs the controller in-process scoped to a fresh namespace, creates a
//! ZeroStack, and checks children, owner references, status, the schema-hash rollout and garbage
//! collection; the namespace is deleted at the end whatever happens.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::{Client, CustomResourceExt, ResourceExt};
use serde_json::json;
use zerostack_operator::crd::ZeroStack;
use zerostack_operator::metrics::Metrics;
use zerostack_operator::reconcile::Context;

const SCHEMA: &str = r#"{"tables":{"items":{"name":"items","columns":{"id":{"type":"string","optional":false,"customType":null},"title":{"type":"string","optional":true,"customType":null}},"primaryKey":["id"]}},"relationships":{}}"#;

fn wanted() -> bool {
    if std::env::var_os("ZEROSTACK_CLUSTER_TESTS").is_some() {
        return true;
    }
    let home_config =
        std::env::var_os("HOME").map(|h| std::path::Path::new(&h).join(".kube/config"));
    std::env::var_os("KUBECONFIG").is_some() || home_config.is_some_and(|p| p.exists())
}

async fn eventually<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    for _ in 0..120 {
        if let Some(v) = f().await {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    panic!("timed out waiting for {what}");
}

fn hash(d: &Deployment) -> Option<String> {
    d.spec
        .template
        .metadata
        .as_ref()?
        .annotations
        .as_ref()?
        .get("zerostack.dev/schema-hash")
        .cloned()
}

#[tokio::test]
async fn cluster_suite() {
    if !wanted() {
        println!("skipped: no kubeconfig (set KUBECONFIG or ZEROSTACK_CLUSTER_TESTS to run)");
        return;
    }
    let client = Client::try_default().await.expect("kubeconfig usable");
    let ssa = PatchParams::apply("zerostack-cluster-test").force();
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.patch(
        "zerostacks.zerostack.dev",
        &ssa,
        &Patch::Apply(ZeroStack::crd()),
    )
    .await
    .expect("CRD applied");
    eventually("CRD established", || {
        let crds = crds.clone();
        async move {
            let c = crds.get("zerostacks.zerostack.dev").await.ok()?;
            c.status?
                .conditions?
                .iter()
                .any(|c| c.type_ == "Established" && c.status == "True")
                .then_some(())
        }
    })
    .await;

    let ns_name = format!(
        "zs-test-{}",
        &zerostack_operator::reconcile::random_hex()[..8]
    );
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": ns_name}})).unwrap(),
        )
        .await
        .expect("namespace created");

    let result = tokio::spawn(run_suite(client.clone(), ns_name.clone())).await;
    let _ = namespaces
        .delete(&ns_name, &DeleteParams::background())
        .await;
    if let Err(e) = result {
        std::panic::resume_unwind(e.into_panic());
    }
}

async fn run_suite(client: Client, ns: String) {
    let ctx = Arc::new(Context::new(
        client.clone(),
        None,
        Arc::new(Metrics::default()),
    ));
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let controller = tokio::spawn(zerostack_operator::controller::run(
        ctx,
        Some(ns.clone()),
        async move {
            let _ = stop_rx.await;
        },
    ));

    let stacks: Api<ZeroStack> = Api::namespaced(client.clone(), &ns);
    let zs: ZeroStack = serde_json::from_value(json!({
        "apiVersion": "zerostack.dev/v1alpha1", "kind": "ZeroStack",
        "metadata": {"name": "suite", "namespace": ns},
        "spec": {
            "appId": "suite",
            "mongodb": {"uriSecretRef": {"name": "mongodb", "key": "uri"}},
            "postgres": {"cvrSecretRef": {"name": "postgres", "key": "cvr-uri"}},
            "schema": {"inline": {"schema": SCHEMA}},
            "cache": {"storage": {"type": "EmptyDir", "size": "1Gi"}},
        }
    }))
    .unwrap();
    let created = stacks
        .create(&PostParams::default(), &zs)
        .await
        .expect("ZeroStack accepted");
    let uid = created.uid().unwrap();

    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    for name in ["suite-source", "suite-cache", "suite-app"] {
        let d = eventually(name, || {
            let deployments = deployments.clone();
            async move { deployments.get_opt(name).await.ok().flatten() }
        })
        .await;
        let owner = &d.owner_references()[0];
        assert_eq!(owner.uid, uid, "{name} owned by the ZeroStack");
        assert_eq!(owner.controller, Some(true));
    }
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    assert!(
        secrets.get_opt("suite-generated").await.unwrap().is_some(),
        "generated Secret"
    );

    let status = eventually("status with observedGeneration", || {
        let stacks = stacks.clone();
        async move {
            let s = stacks.get("suite").await.ok()?;
            let st = s.status?;
            (st.observed_generation == s.metadata.generation).then_some(st)
        }
    })
    .await;
    let schema_valid = status
        .conditions
        .iter()
        .find(|c| c.type_ == "SchemaValid")
        .expect("SchemaValid");
    assert_eq!(schema_valid.status, "True");
    assert!(status.conditions.iter().any(|c| c.type_ == "Ready"));

    // A schema change rolls the source (new hash) and nothing else.
    let before = hash(&deployments.get("suite-source").await.unwrap()).expect("hash");
    let cache_before = deployments.get("suite-cache").await.unwrap().spec.template;
    let new_schema = SCHEMA.replace(
        r#""title":{"type":"string","optional":true"#,
        r#""title":{"type":"string","optional":false"#,
    );
    stacks
        .patch(
            "suite",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"schema": {"inline": {"schema": new_schema}}}})),
        )
        .await
        .expect("schema updated");
    let after = eventually("new schema hash", || {
        let deployments = deployments.clone();
        let before = before.clone();
        async move { hash(&deployments.get("suite-source").await.ok()?).filter(|h| *h != before) }
    })
    .await;
    assert_ne!(before, after);
    assert_eq!(
        deployments.get("suite-cache").await.unwrap().spec.template,
        cache_before
    );

    // Deleting the ZeroStack garbage-collects its children.
    stacks
        .delete("suite", &DeleteParams::foreground())
        .await
        .expect("deleted");
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    eventually("children garbage-collected", || {
        let deployments = deployments.clone();
        let cms = cms.clone();
        async move {
            let d = deployments.list(&Default::default()).await.ok()?;
            let c = cms.get_opt("suite-schema").await.ok()?;
            (d.items.iter().all(|d| !d.name_any().starts_with("suite-")) && c.is_none())
                .then_some(())
        }
    })
    .await;

    let _ = stop_tx.send(());
    let _ = tokio::time::timeout(Duration::from_secs(10), controller).await;
}
