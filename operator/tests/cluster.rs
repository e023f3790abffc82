//! Cluster suite: runs unchanged against whatever cluster the kubeconfig points at (the local
//! cluster `tests/run.sh` starts, kind in GitHub Actions); see `zerostack_harness::cluster` for
//! when it runs and when it is skipped with one printed line.
//!
//! It installs the CRD, runs the controller in-process scoped to a fresh namespace and acting as
//! the chart's ServiceAccount with only the Role the chart renders for `watchNamespace` (no
//! ClusterRole: impersonation, so the API server enforces exactly that Role), creates a
//! ZeroStack whose schema comes from the user's ConfigMap, and checks children, owner references,
//! status, the schema-hash rollout, that the user's ConfigMap is never written or owned, that a
//! name taken by a foreign object is a condition and not a takeover, and garbage collection that
//! keeps the user's objects; the namespace is deleted at the end whatever happens.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret, Service};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, ResourceExt};
use serde_json::json;
use zerostack_harness::cluster::Cluster;
use zerostack_harness::process::output;
use zerostack_operator::crd::ZeroStack;
use zerostack_operator::metrics::Metrics;
use zerostack_operator::reconcile::Context;

const SCHEMA: &str = r#"{"tables":{"items":{"name":"items","columns":{"id":{"type":"string","optional":false,"customType":null},"title":{"type":"string","optional":true,"customType":null}},"primaryKey":["id"]}},"relationships":{}}"#;

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
    let Some(cluster) = Cluster::get("cluster_suite") else {
        return;
    };
    let kubeconfig = Kubeconfig::read_from(&cluster.kubeconfig).expect("kubeconfig readable");
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("kubeconfig usable");
    let client = Client::try_from(config).expect("client");
    // The CRD as the Rust types define it, unless one is installed (by the chart, say: then it is
    // left alone); when this suite installs it, it removes it again, so a later `helm install`
    // of the chart finds the cluster as it was.
    let ssa = PatchParams::apply("zerostack-cluster-test").force();
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    // A CRD still being deleted (by a test that ran before) is waited out, not used.
    eventually("no CRD being deleted", || {
        let crds = crds.clone();
        async move {
            let c = crds.get_opt("zerostacks.zerostack.dev").await.ok()?;
            c.is_none_or(|c| c.metadata.deletion_timestamp.is_none())
                .then_some(())
        }
    })
    .await;
    let crd_was_there = crds
        .get_opt("zerostacks.zerostack.dev")
        .await
        .expect("reading CRDs")
        .is_some();
    if !crd_was_there {
        crds.patch(
            "zerostacks.zerostack.dev",
            &ssa,
            &Patch::Apply(zerostack_operator::crd::crd()),
        )
        .await
        .expect("CRD applied");
    }
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

    let result = tokio::spawn(run_suite(cluster.clone(), client.clone(), ns_name.clone())).await;
    let _ = namespaces
        .delete(&ns_name, &DeleteParams::background())
        .await;
    if !crd_was_there {
        let _ = crds
            .delete("zerostacks.zerostack.dev", &DeleteParams::background())
            .await;
        eventually("the CRD deleted", || {
            let crds = crds.clone();
            async move {
                let gone = crds
                    .get_opt("zerostacks.zerostack.dev")
                    .await
                    .ok()?
                    .is_none();
                gone.then_some(())
            }
        })
        .await;
    }
    if let Err(e) = result {
        std::panic::resume_unwind(e.into_panic());
    }
}

fn owned_by(obj: &impl ResourceExt, uid: &str) -> bool {
    obj.owner_references().iter().any(|o| o.uid == uid)
}

async fn condition(stacks: &Api<ZeroStack>, type_: &str) -> Option<(String, String, String)> {
    let zs = stacks.get("suite").await.ok()?;
    let c = zs.condition(type_)?;
    Some((c.status.clone(), c.reason.clone(), c.message.clone()))
}

/// Release name of the chart's RBAC in the suite's namespace.
const RELEASE: &str = "suite";

/// Applies the ServiceAccount, Role and RoleBinding the chart renders for `watchNamespace=ns`
/// (checking that it renders nothing cluster-wide), and returns a client acting as that
/// ServiceAccount, so every call the controller makes is authorised by that Role alone.
async fn client_with_only_the_charts_role(cluster: &Cluster, ns: &str) -> Client {
    let chart = concat!(env!("CARGO_MANIFEST_DIR"), "/../charts/zerostack-operator");
    let mut helm = cluster.helm();
    helm.args(["template", RELEASE, chart, "--namespace", ns])
        .args(["--set", &format!("watchNamespace={ns}")])
        .args(["--show-only", "templates/serviceaccount.yaml"])
        .args(["--show-only", "templates/rbac.yaml"]);
    let rendered = output(&mut helm, None).expect("helm runs");
    assert!(rendered.success(), "helm template: {}", rendered.all());
    for kind in ["kind: ClusterRole", "kind: ClusterRoleBinding"] {
        assert!(
            !rendered.stdout.contains(kind),
            "a namespaced release renders no {kind}:\n{}",
            rendered.stdout
        );
    }
    let mut apply = cluster.kubectl();
    apply.args(["apply", "-n", ns, "-f", "-"]);
    let applied = output(&mut apply, Some(&rendered.stdout)).expect("kubectl runs");
    assert!(applied.success(), "kubectl apply: {}", applied.all());

    let kubeconfig = Kubeconfig::read_from(&cluster.kubeconfig).expect("kubeconfig readable");
    let mut config =
        kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
            .await
            .expect("kubeconfig usable");
    config.auth_info.impersonate = Some(format!(
        "system:serviceaccount:{ns}:{RELEASE}-zerostack-operator"
    ));
    config.auth_info.impersonate_groups = Some(vec![
        "system:serviceaccounts".into(),
        format!("system:serviceaccounts:{ns}"),
        "system:authenticated".into(),
    ]);
    let client = Client::try_from(config).expect("impersonating client");
    // The Role is all it has: nothing outside the namespace, not even a list of ConfigMaps.
    let everywhere: Api<ConfigMap> = Api::all(client.clone());
    let outside: Api<Secret> = Api::namespaced(client.clone(), "default");
    for (what, denied) in [
        (
            "list ConfigMaps cluster-wide",
            everywhere.list(&Default::default()).await.err(),
        ),
        (
            "list Secrets in default",
            outside.list(&Default::default()).await.err(),
        ),
    ] {
        assert!(
            matches!(denied, Some(kube::Error::Api(ref s)) if s.code == 403),
            "the ServiceAccount may {what}: {denied:?}"
        );
    }
    zerostack_operator::controller::check_crd(&client, Some(ns))
        .await
        .expect("the CRD check passes with the Role alone");
    client
}

async fn run_suite(cluster: Cluster, client: Client, ns: String) {
    let operator = client_with_only_the_charts_role(&cluster, &ns).await;
    let ctx = Arc::new(Context::new(operator, None, Arc::new(Metrics::default())));
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let controller = tokio::spawn(zerostack_operator::controller::run(
        ctx,
        Some(ns.clone()),
        async move {
            let _ = stop_rx.await;
        },
    ));
    let pp = PostParams::default();

    // The user's objects: the Secrets the stack reads, the schema ConfigMap under the very name
    // the operator used to render its own into (`<stack>-schema`), and a Service that happens to
    // carry the name of one of the stack's children.
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let services: Api<Service> = Api::namespaced(client.clone(), &ns);
    // Labelled as the README says, so its edits reach the operator by its watch.
    let user_cm: ConfigMap = serde_json::from_value(json!({
        "metadata": {"name": "suite-schema", "labels": {"zerostack.dev/schema": "true"}},
        "data": {"schema.json": SCHEMA},
    }))
    .unwrap();
    cms.create(&pp, &user_cm).await.expect("user ConfigMap");
    for (name, key) in [("mongodb", "uri"), ("postgres", "cvr-uri")] {
        let secret: Secret = serde_json::from_value(json!({
            "metadata": {"name": name}, "stringData": {key: "not-used-here"},
        }))
        .unwrap();
        secrets.create(&pp, &secret).await.expect("user Secret");
    }
    let foreign: Service = serde_json::from_value(json!({
        "metadata": {"name": "suite-app"},
        "spec": {"ports": [{"port": 80}]},
    }))
    .unwrap();
    services.create(&pp, &foreign).await.expect("user Service");

    let stacks: Api<ZeroStack> = Api::namespaced(client.clone(), &ns);
    let zs: ZeroStack = serde_json::from_value(json!({
        "apiVersion": "zerostack.dev/v1alpha1", "kind": "ZeroStack",
        "metadata": {"name": "suite", "namespace": ns},
        "spec": {
            "appId": "suite",
            "mongodb": {"uriSecretRef": {"name": "mongodb", "key": "uri"}},
            "postgres": {"cvrSecretRef": {"name": "postgres", "key": "cvr-uri"}},
            "schema": {"configMapRef": {"name": "suite-schema"}},
            "cache": {"storage": {"type": "EmptyDir", "size": "1Gi"}},
        }
    }))
    .unwrap();
    // Established is set a moment before the API server serves the new resource everywhere.
    let created = eventually("ZeroStack accepted", || {
        let (stacks, zs, pp) = (stacks.clone(), zs.clone(), pp.clone());
        async move { stacks.create(&pp, &zs).await.ok() }
    })
    .await;
    let uid = created.uid().unwrap();

    // A foreign object holding a child's name: a condition naming it, and nothing applied.
    let (status, _, message) = eventually("NameConflict", || {
        let stacks = stacks.clone();
        async move {
            condition(&stacks, "Ready")
                .await
                .filter(|c| c.1 == "NameConflict")
        }
    })
    .await;
    assert_eq!(status, "False");
    assert!(
        message.contains(&format!("Service {ns}/suite-app")),
        "{message}"
    );
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    assert!(
        deployments
            .list(&Default::default())
            .await
            .unwrap()
            .items
            .is_empty(),
        "nothing applied while a name is taken"
    );
    let still = services.get("suite-app").await.unwrap();
    assert!(!owned_by(&still, &uid), "the user's Service is not adopted");
    services
        .delete("suite-app", &DeleteParams::default())
        .await
        .expect("user Service deleted");

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
    assert!(
        secrets.get_opt("suite-generated").await.unwrap().is_some(),
        "generated Secret"
    );

    let status = eventually("status with observedGeneration", || {
        let stacks = stacks.clone();
        async move {
            let s = stacks.get("suite").await.ok()?;
            let st = s.status?;
            (st.observed_generation == s.metadata.generation
                && st
                    .conditions
                    .iter()
                    .any(|c| c.reason != "NameConflict" && c.type_ == "Ready"))
            .then_some(st)
        }
    })
    .await;
    let schema_valid = status
        .conditions
        .iter()
        .find(|c| c.type_ == "SchemaValid")
        .expect("SchemaValid");
    assert_eq!(schema_valid.status, "True");
    let user_now = cms.get("suite-schema").await.unwrap();
    assert!(
        user_now.owner_references().is_empty(),
        "the user's ConfigMap carries no owner reference: {:?}",
        user_now.owner_references()
    );
    assert_eq!(
        user_now.managed_fields().len(),
        1,
        "and no field manager but its creator"
    );

    // A valid schema change, made in the user's ConfigMap, rolls the source and nothing else.
    let before = hash(&deployments.get("suite-source").await.unwrap()).expect("hash");
    let cache_before = deployments.get("suite-cache").await.unwrap().spec.template;
    let new_schema = SCHEMA.replace(
        r#""title":{"type":"string","optional":true"#,
        r#""title":{"type":"string","optional":false"#,
    );
    let set_schema = |text: String| {
        let cms = cms.clone();
        async move {
            cms.patch(
                "suite-schema",
                &PatchParams::default(),
                &Patch::Merge(json!({"data": {"schema.json": text}})),
            )
            .await
            .expect("schema updated")
        }
    };
    set_schema(new_schema).await;
    let after = eventually("new schema hash", || {
        let deployments = deployments.clone();
        let before = before.clone();
        async move { hash(&deployments.get("suite-source").await.ok()?).filter(|h| *h != before) }
    })
    .await;
    assert_eq!(
        deployments.get("suite-cache").await.unwrap().spec.template,
        cache_before
    );
    let rendered = cms.get(&format!("suite-schema-{after}")).await.unwrap();
    assert!(owned_by(&rendered, &uid));
    assert_eq!(rendered.immutable, Some(true));

    // An invalid edit: SchemaValid=False, and what runs stays.
    set_schema("{not json".into()).await;
    eventually("SchemaValid=False", || {
        let stacks = stacks.clone();
        async move {
            condition(&stacks, "SchemaValid")
                .await
                .filter(|c| c.0 == "False")
        }
    })
    .await;
    assert_eq!(
        hash(&deployments.get("suite-source").await.unwrap()).as_deref(),
        Some(after.as_str()),
        "a bad schema never replaces a good one"
    );

    // Deleting the ZeroStack garbage-collects its children and keeps the user's objects.
    stacks
        .delete("suite", &DeleteParams::foreground())
        .await
        .expect("deleted");
    eventually("children garbage-collected", || {
        let deployments = deployments.clone();
        let cms = cms.clone();
        let stacks = stacks.clone();
        let after = after.clone();
        async move {
            let d = deployments.list(&Default::default()).await.ok()?;
            let rendered = cms.get_opt(&format!("suite-schema-{after}")).await.ok()?;
            let gone = stacks.get_opt("suite").await.ok()?.is_none();
            (gone && d.items.is_empty() && rendered.is_none()).then_some(())
        }
    })
    .await;
    assert!(
        cms.get_opt("suite-schema").await.unwrap().is_some(),
        "the user's ConfigMap survives the ZeroStack"
    );
    for name in ["mongodb", "postgres"] {
        assert!(
            secrets.get_opt(name).await.unwrap().is_some(),
            "the user's Secret {name} survives"
        );
    }

    let _ = stop_tx.send(());
    let _ = tokio::time::timeout(Duration::from_secs(10), controller).await;
}
