//! Wiring of the kube-runtime Controller: the ZeroStack watch, `.owns()` on every child kind
//! (so a child edited or deleted by hand is put back), and a watch on the user's schema
//! ConfigMaps (so an edit there is validated and rolled without touching the ZeroStack).
//!
//! Every watch is narrowed by a label selector, so the operator never lists or caches the
//! cluster's other ConfigMaps and Secrets: children by the `managed-by` label the operator puts
//! on them, the user's schema ConfigMaps by [`SCHEMA_LABEL`], which the user adds. A label
//! rather than a metadata-only watch of every ConfigMap with a mapper, because that would still
//! list and watch (and need RBAC for) every ConfigMap in scope. A referenced ConfigMap without
//! the label is still read on every reconcile, and the reconcile then requeues itself sooner
//! (`reconcile::UNLABELLED_SCHEMA_REQUEUE`), so its edits arrive, only later.

use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Secret, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Api, ListParams};
use kube::runtime::controller::Controller;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use tracing::{info, warn};

use crate::crd::ZeroStack;
use crate::reconcile::{Context, error_policy, reconcile};
use crate::render::{MANAGER, SCHEMA_LABEL};

fn api<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    <K as kube::Resource>::DynamicType: Default,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// Checks that the CRD is installed, with an actionable message when it is not. Lists in the
/// watched namespace only, when there is one: a namespaced operator has no right to list
/// across the cluster.
pub async fn check_crd(client: &Client, namespace: Option<&str>) -> anyhow::Result<()> {
    let zs: Api<ZeroStack> = api(client, namespace);
    zs.list(&ListParams::default().limit(1))
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "cannot list zerostacks.zerostack.dev ({e}); is the CRD installed? \
             kubectl apply --server-side -f crds/zerostack.dev_zerostacks.yaml"
            )
        })?;
    Ok(())
}

/// Runs the controller until `shutdown` resolves.
pub async fn run(
    ctx: Arc<Context>,
    namespace: Option<String>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let client = ctx.client.clone();
    let ns = namespace.as_deref();
    let owned =
        watcher::Config::default().labels(&format!("app.kubernetes.io/managed-by={MANAGER}"));
    let controller = Controller::new(
        api::<ZeroStack>(&client, ns),
        watcher::Config::default().any_semantic(),
    );
    let store = controller.store();
    controller
        .owns(api::<Deployment>(&client, ns), owned.clone())
        .owns(api::<Service>(&client, ns), owned.clone())
        .owns(api::<ConfigMap>(&client, ns), owned.clone())
        .owns(api::<Secret>(&client, ns), owned.clone())
        .owns(api::<PersistentVolumeClaim>(&client, ns), owned.clone())
        .owns(api::<PodDisruptionBudget>(&client, ns), owned.clone())
        // The view-syncers' HorizontalPodAutoscaler is not watched: its status changes with
        // every metrics sample, and each change would be a reconcile. One edited or deleted by
        // hand is put back by the next periodic reconcile (at most 5 minutes).
        .owns(api::<NetworkPolicy>(&client, ns), owned)
        .watches(
            api::<ConfigMap>(&client, ns),
            watcher::Config::default().labels(SCHEMA_LABEL),
            move |cm| {
                // Every ZeroStack whose spec.schema.configMapRef names this ConfigMap.
                let cm_ns = cm.namespace();
                let cm_name = cm.name_any();
                store
                    .state()
                    .into_iter()
                    .filter(|zs| {
                        zs.namespace() == cm_ns
                            && zs
                                .spec
                                .schema
                                .config_map_ref
                                .as_ref()
                                .is_some_and(|r| r.name == cm_name)
                    })
                    .map(|zs| ObjectRef::from_obj(&*zs))
                    .collect::<Vec<_>>()
            },
        )
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx)
        .for_each(|res| async move {
            match res {
                Ok((obj, _)) => info!(zerostack = %obj, "reconciled"),
                Err(e) => warn!(error = %e, "reconcile loop error"),
            }
        })
        .await;
    info!("controller stopped");
}
