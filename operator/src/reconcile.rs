//! The reconcile loop: read the few inputs that live in the cluster, render, apply every child by
//! server-side apply, delete the children no longer wanted, and write status.
//!
//! Everything that decides *what* to write lives in `render` and `status` (pure); this module is
//! only the I/O around them, so mocked-API tests can check the calls and their effects.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{
    ConfigMap, ObjectReference, PersistentVolumeClaim, Secret, Service,
};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use kube::core::ApiResource;
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder};
use kube::{Client, Resource, ResourceExt};
use serde_json::json;
use tracing::{info, warn};

use crate::crd::{Endpoints, SchemaChangeKind, SchemaChangeStatus, ZeroStack, ZeroStackStatus};
use crate::metrics::Metrics;
use crate::render::{
    self, APP_PORT, CACHE_PORT, Child, GeneratedSecrets, Inputs, KEY_ADMIN_PASSWORD,
    KEY_SOURCE_TOKEN, MANAGER, SOURCE_PORT, component,
};
use crate::schema_check::{self, RenderedSchema, SchemaFiles};
use crate::status::{self, DeploymentObs, Observed, SchemaOutcome, TopologyObs};

/// Errors of one reconcile. Messages never contain secret values.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A Kubernetes API call failed.
    #[error("{action}: {source}")]
    Kube {
        /// What was being done, naming the object.
        action: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },
    /// The resource has no namespace (it is namespaced, so this is a bug or a bad object).
    #[error("ZeroStack {0} has no namespace")]
    NoNamespace(String),
}

impl Error {
    /// Short label for the failures metric.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Kube { .. } => "kube",
            Error::NoNamespace(_) => "no_namespace",
        }
    }
}

fn kube_err(action: impl Into<String>) -> impl FnOnce(kube::Error) -> Error {
    let action = action.into();
    move |source| Error::Kube { action, source }
}

/// Shared state of the controller.
pub struct Context {
    /// API client.
    pub client: Client,
    /// Event recorder; None disables events (e.g. in some tests).
    pub recorder: Option<Recorder>,
    /// Prometheus metrics.
    pub metrics: Arc<Metrics>,
    /// Consecutive failures per object, for exponential backoff.
    pub failures: Mutex<HashMap<String, u32>>,
    /// Source of random secret values (replaceable in tests).
    pub random: fn() -> String,
}

impl Context {
    /// A context with the real random generator.
    pub fn new(client: Client, recorder: Option<Recorder>, metrics: Arc<Metrics>) -> Self {
        Self {
            client,
            recorder,
            metrics,
            failures: Mutex::new(HashMap::new()),
            random: random_hex,
        }
    }
}

/// 32 random bytes as hex: URL-safe, so the source token can sit in `ZERO_UPSTREAM_DB`.
pub fn random_hex() -> String {
    let mut buf = [0u8; 32];
    getrandom::fill(&mut buf).expect("OS random source available");
    hex::encode(buf)
}

/// Delay after the `n`th consecutive failure: 5 s, 10 s, 20 s, ... capped at 5 minutes.
pub fn backoff_delay(n: u32) -> Duration {
    let secs = 5u64.saturating_mul(1u64 << n.saturating_sub(1).min(16));
    Duration::from_secs(secs.min(300))
}

fn key(zs: &ZeroStack) -> String {
    format!("{}/{}", zs.namespace().unwrap_or_default(), zs.name_any())
}

/// The controller's error policy: count the failure and back off exponentially per object.
pub fn error_policy(zs: Arc<ZeroStack>, err: &Error, ctx: Arc<Context>) -> Action {
    let n = {
        let mut f = ctx.failures.lock().expect("failures lock");
        let n = f.entry(key(&zs)).or_insert(0);
        *n += 1;
        *n
    };
    ctx.metrics.failure(err.metric_label());
    let delay = backoff_delay(n);
    warn!(zerostack = %key(&zs), error = %err, attempt = n, retry_in_s = delay.as_secs(), "reconcile failed");
    Action::requeue(delay)
}

/// Reconciles one ZeroStack.
pub async fn reconcile(zs: Arc<ZeroStack>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = Instant::now();
    ctx.metrics.reconcile_started();
    let result = reconcile_inner(&zs, &ctx).await;
    ctx.metrics.reconcile_finished(started.elapsed());
    match result {
        Ok(action) => {
            ctx.failures
                .lock()
                .expect("failures lock")
                .remove(&key(&zs));
            Ok(action)
        }
        Err(e) => {
            // Best effort: tell the user through status; the error itself goes to error_policy.
            let msg = e.to_string();
            if let Err(se) = report_error(&zs, &ctx, &msg).await {
                warn!(zerostack = %key(&zs), error = %se, "could not write error status");
            }
            Err(e)
        }
    }
}

async fn report_error(zs: &ZeroStack, ctx: &Context, message: &str) -> Result<(), Error> {
    let prev = zs.status.clone().unwrap_or_default();
    let obs = Observed {
        schema: match prev.schema_hash.clone() {
            Some(hash)
                if zs
                    .condition(status::types::SCHEMA_VALID)
                    .is_none_or(|c| c.status == "True") =>
            {
                SchemaOutcome::Valid { hash }
            }
            running_hash => SchemaOutcome::Invalid {
                reason: "Unknown".into(),
                message: "not checked in this attempt".into(),
                running_hash,
            },
        },
        source: None,
        cache: None,
        topology: None,
        app: None,
        error: Some(message.to_string()),
        conflicts: Vec::new(),
        endpoints: prev.endpoints.clone(),
    };
    let mut st = status::compute(zs, &obs, &now());
    // Keep the last known counts rather than blanking them on an API error.
    st.source = prev.source;
    st.cache = prev.cache;
    st.cache_topology = prev.cache_topology;
    st.app = prev.app;
    write_status(zs, ctx, st).await
}

fn now() -> Time {
    Time(k8s_openapi::jiff::Timestamp::now())
}

async fn reconcile_inner(zs: &ZeroStack, ctx: &Context) -> Result<Action, Error> {
    let ns = zs
        .namespace()
        .ok_or_else(|| Error::NoNamespace(zs.name_any()))?;
    let name = zs.name_any();

    if zs.spec.paused {
        let st = status::paused(zs, &now());
        write_status(zs, ctx, st).await?;
        info!(zerostack = %key(zs), "paused; children left as they are");
        return Ok(Action::await_change());
    }

    // 1. The schema: validate before anything rolls.
    let (schema, outcome, schema_unwatched) = resolve_schema(zs, ctx, &ns).await?;
    // A new valid schema: how will the source follow it (before the sweep may prune the old
    // one's ConfigMap)?
    let schema_change = match (
        &outcome,
        zs.status.as_ref().and_then(|s| s.schema_hash.as_deref()),
        &schema,
    ) {
        (SchemaOutcome::Valid { hash }, Some(previous), Some(new)) if previous != hash => {
            Some(classify_schema_change(zs, ctx, &ns, previous, new).await?)
        }
        _ => None,
    };

    // 2. Generated secrets: reuse what exists, generate what is missing.
    let generated = generated_secrets(zs, ctx, &ns).await?;

    // 3. Render, then look at what exists under each child's name: an object this ZeroStack
    //    made is updated; anything else (the user's own object, another stack's) is never
    //    written, adopted or deleted, and while one is in the way nothing is applied at all.
    let children = render::render(zs, &Inputs { schema, generated });
    let mut existing: BTreeMap<(String, String), Option<DynamicObject>> = BTreeMap::new();
    let mut conflicts = Vec::new();
    for child in &children {
        let key = (child.kind().to_string(), child.name());
        let current = get(ctx, &ns, child.kind(), &key.1).await?;
        if current.as_ref().is_some_and(|o| !owned_by(o, zs)) {
            conflicts.push(format!("{} {ns}/{}", key.0, key.1));
        }
        existing.insert(key, current);
    }
    let mut applied: BTreeMap<(String, String), serde_json::Value> = BTreeMap::new();
    let deployment_key = |c: &str| ("Deployment".to_string(), format!("{name}-{c}"));
    let view_syncers_key = deployment_key(component::VIEW_SYNCER);
    let mut view_syncers_held = false;
    // The single node and the replication-manager share the replica volume: on a switch of
    // topology the new one starts only once the other's Deployment is gone (the sweep below
    // deletes it), so two zero-cache processes never replicate into one file.
    let (holder, previous_holder) = match zs.spec.cache.view_syncer_count() {
        None => (component::CACHE, component::REPLICATION_MANAGER),
        Some(_) => (component::REPLICATION_MANAGER, component::CACHE),
    };
    let holder_key = deployment_key(holder);
    let previous_holder_exists = get(ctx, &ns, "Deployment", &deployment_key(previous_holder).1)
        .await?
        .is_some_and(|d| owned_by(&d, zs));
    if conflicts.is_empty() {
        for child in &children {
            let key = (child.kind().to_string(), child.name());
            if key == holder_key
                && !crate::rollout::replica_holder_may_start(previous_holder_exists)
            {
                info!(zerostack = %self::key(zs), deployment = %key.1, "waiting for the other topology's zero-cache to go before starting on its replica volume");
                continue;
            }
            // The view-syncers roll only behind a ready replication-manager (rendered, and so
            // applied, before them); until then their current object stays as it is.
            if key == view_syncers_key {
                let rm = applied
                    .get(&deployment_key(component::REPLICATION_MANAGER))
                    .and_then(|v| serde_json::from_value::<Deployment>(v.clone()).ok())
                    .map(|d| DeploymentObs::from_deployment(&d));
                if !crate::rollout::view_syncers_may_roll(rm.as_ref()) {
                    view_syncers_held = true;
                    info!(zerostack = %self::key(zs), "view-syncers wait for the replication-manager to be ready on the new spec");
                    if let Some(current) = existing.get(&key).cloned().flatten() {
                        applied.insert(key, to_value(current));
                    }
                    continue;
                }
                if render::cache::hpa(zs).is_some()
                    && let Some(current) = existing.get(&key).cloned().flatten()
                    && let Ok(d) = serde_json::from_value::<Deployment>(to_value(current))
                    && let Some(replicas) = crate::rollout::replicas_to_hand_over(&d)
                {
                    hand_over_replicas(ctx, &ns, &key.1, replicas).await?;
                }
            }
            let obj = match existing.get(&key).cloned().flatten() {
                // Immutable (the content-addressed schema): same name, same content.
                Some(current) if child.is_immutable() => to_value(current),
                _ => apply(ctx, &ns, child).await?,
            };
            applied.insert(key, obj);
        }
        // 4. Delete children that are no longer wanted.
        sweep_orphans(zs, ctx, &ns, &applied).await?;
    } else {
        warn!(zerostack = %key(zs), objects = ?conflicts, "names taken by objects this ZeroStack did not create; applying nothing");
        applied.extend(
            existing
                .into_iter()
                .filter_map(|(k, v)| v.map(|o| (k, to_value(o)))),
        );
    }

    // 5. Status from what the API server returned.
    let dep = |suffix: &str| -> Option<DeploymentObs> {
        applied
            .get(&("Deployment".to_string(), format!("{name}-{suffix}")))
            .and_then(|v| serde_json::from_value::<Deployment>(v.clone()).ok())
            .map(|d| DeploymentObs::from_deployment(&d))
    };
    let obs = Observed {
        schema: outcome,
        source: dep(component::SOURCE),
        cache: if zs.spec.cache.view_syncer_count().is_none() {
            dep(component::CACHE)
        } else {
            None
        },
        topology: zs.spec.cache.view_syncer_count().map(|_| TopologyObs {
            replication_manager: dep(component::REPLICATION_MANAGER),
            view_syncers: dep(component::VIEW_SYNCER),
            view_syncers_held,
        }),
        app: if zs.spec.app.enabled {
            dep(component::APP)
        } else {
            None
        },
        error: None,
        conflicts,
        endpoints: Some(Endpoints {
            zero_cache: Some(format!(
                "http://{}:{CACHE_PORT}",
                render::service_host(zs, component::CACHE)
            )),
            source: Some(format!(
                "http://{}:{SOURCE_PORT}",
                render::service_host(zs, component::SOURCE)
            )),
            app: zs.spec.app.enabled.then(|| {
                format!(
                    "http://{}:{APP_PORT}",
                    render::service_host(zs, component::APP)
                )
            }),
        }),
    };
    let mut st = status::compute(zs, &obs, &now());
    if let Some(change) = &schema_change {
        st.last_schema_change = Some(change.clone());
    }
    let ready = st
        .conditions
        .iter()
        .any(|c| c.type_ == status::types::READY && c.status == "True");
    write_status(zs, ctx, st).await?;
    if let Some(change) = &schema_change {
        publish_schema_change(zs, ctx, change).await;
    }
    let mut requeue = if ready {
        Duration::from_secs(300)
    } else {
        Duration::from_secs(30)
    };
    if schema_unwatched {
        requeue = requeue.min(UNLABELLED_SCHEMA_REQUEUE);
    }
    Ok(Action::requeue(requeue))
}

/// How soon a stack whose schema ConfigMap lacks [`render::SCHEMA_LABEL`] is reconciled again:
/// no watch event tells the operator about an edit of such a ConfigMap, so it looks this often.
pub const UNLABELLED_SCHEMA_REQUEUE: Duration = Duration::from_secs(60);

/// Reads and validates the schema. On failure, falls back to the running ConfigMap's files so
/// nothing rolls. The flag says whether the schema comes from a ConfigMap the operator's watch
/// does not see (missing, or without [`render::SCHEMA_LABEL`]).
async fn resolve_schema(
    zs: &ZeroStack,
    ctx: &Context,
    ns: &str,
) -> Result<(Option<RenderedSchema>, SchemaOutcome, bool), Error> {
    let mut unwatched = false;
    let files = match (&zs.spec.schema.inline, &zs.spec.schema.config_map_ref) {
        (Some(i), _) => Ok(SchemaFiles {
            origin: format!("ZeroStack {ns}/{} spec.schema.inline", zs.name_any()),
            schema: i.schema.clone(),
            table_mappings: i.table_mappings.clone(),
            permissions: i.permissions.clone(),
        }),
        (None, Some(r)) => {
            let api: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), ns);
            let cm = api
                .get_opt(&r.name)
                .await
                .map_err(kube_err(format!("reading ConfigMap {ns}/{}", r.name)))?;
            unwatched = cm
                .as_ref()
                .is_none_or(|cm| !cm.labels().contains_key(render::SCHEMA_LABEL));
            match cm {
                None => Err((
                    "ConfigMapNotFound",
                    format!("ConfigMap {ns}/{} not found", r.name),
                )),
                Some(cm) => {
                    let data = cm.data.unwrap_or_default();
                    match data.get(&r.schema_key) {
                        None => Err((
                            "SchemaKeyMissing",
                            format!("ConfigMap {ns}/{} has no key {}", r.name, r.schema_key),
                        )),
                        Some(s) => Ok(SchemaFiles {
                            origin: format!("ConfigMap {ns}/{}", r.name),
                            schema: s.clone(),
                            table_mappings: data.get(&r.table_mappings_key).cloned(),
                            permissions: data.get(&r.permissions_key).cloned(),
                        }),
                    }
                }
            }
        }
        (None, None) => Err((
            "NoSchema",
            "spec.schema has neither inline nor configMapRef".to_string(),
        )),
    };
    let checked = match files {
        Ok(files) => schema_check::check(&files).map_err(|m| ("ValidationFailed", m)),
        Err(e) => Err(e),
    };
    match checked {
        Ok(rendered) => {
            let hash = rendered.hash.clone();
            Ok((Some(rendered), SchemaOutcome::Valid { hash }, unwatched))
        }
        Err((reason, message)) => {
            let running = running_schema(zs, ctx, ns).await?;
            let running_hash = running.as_ref().map(|r| r.hash.clone());
            Ok((
                running,
                SchemaOutcome::Invalid {
                    reason: reason.into(),
                    message,
                    running_hash,
                },
                unwatched,
            ))
        }
    }
}

/// Classifies the change from the rolled-out schema `previous` (read back from its
/// content-addressed ConfigMap, which the sweep keeps for a while) to `new`.
async fn classify_schema_change(
    zs: &ZeroStack,
    ctx: &Context,
    ns: &str,
    previous: &str,
    new: &RenderedSchema,
) -> Result<SchemaChangeStatus, Error> {
    let cm_name = render::config::schema_config_map_name(zs, previous);
    let api: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), ns);
    let old = api
        .get_opt(&cm_name)
        .await
        .map_err(kube_err(format!("reading ConfigMap {ns}/{cm_name}")))?
        .filter(|cm| owned_by(cm, zs))
        .and_then(|cm| cm.data)
        .map(|data| RenderedSchema {
            data,
            hash: previous.to_string(),
        });
    let (kind, steps, reason) = match old.map(|old| schema_check::classify(&old, new)) {
        Some(Ok(schema_check::Change::InPlace(steps))) => (SchemaChangeKind::InPlace, steps, None),
        Some(Ok(schema_check::Change::Resync(reason))) => {
            (SchemaChangeKind::Resync, Vec::new(), Some(reason))
        }
        Some(Err(e)) => (
            SchemaChangeKind::Unknown,
            Vec::new(),
            Some(format!("the previous schema no longer loads: {e}")),
        ),
        None => (
            SchemaChangeKind::Unknown,
            Vec::new(),
            Some(format!(
                "the previous schema's ConfigMap {ns}/{cm_name} is gone"
            )),
        ),
    };
    info!(zerostack = %key(zs), from = previous, to = %new.hash, ?kind, ?steps, ?reason, "schema change");
    Ok(SchemaChangeStatus {
        from_hash: previous.to_string(),
        to_hash: new.hash.clone(),
        kind,
        steps,
        reason,
        at: now(),
    })
}

/// One Event per schema change rolled out, saying how zero-cache's replica follows it.
async fn publish_schema_change(zs: &ZeroStack, ctx: &Context, change: &SchemaChangeStatus) {
    let Some(recorder) = &ctx.recorder else {
        return;
    };
    let (reason, what) = match change.kind {
        SchemaChangeKind::InPlace => (
            "SchemaChangeInPlace",
            format!("applied in place: {}", change.steps.join("; ")),
        ),
        SchemaChangeKind::Resync => (
            "SchemaChangeResync",
            format!(
                "zero-cache resyncs: {}",
                change.reason.as_deref().unwrap_or_default()
            ),
        ),
        SchemaChangeKind::Unknown => (
            "SchemaChangeUnknown",
            format!(
                "not classified: {}",
                change.reason.as_deref().unwrap_or_default()
            ),
        ),
    };
    let note = truncate_chars(
        format!(
            "schema {} → {}: {what}",
            short(&change.from_hash),
            short(&change.to_hash)
        ),
        1000,
    );
    let ev = Event {
        type_: EventType::Normal,
        reason: reason.into(),
        note: Some(note),
        action: "RollSchema".into(),
        secondary: None,
    };
    if let Err(e) = recorder.publish(&ev, &zs.object_ref(&())).await {
        warn!(zerostack = %key(zs), error = %e, "could not publish event");
    }
}

/// The first 12 characters of a hash, as people quote them.
fn short(hash: &str) -> &str {
    hash.get(..12).unwrap_or(hash)
}

async fn generated_secrets(
    zs: &ZeroStack,
    ctx: &Context,
    ns: &str,
) -> Result<GeneratedSecrets, Error> {
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
    let name = render::config::generated_secret_name(zs);
    // Values are only ever read back from the Secret this ZeroStack made: a Secret of the same
    // name that someone else owns is a name conflict (reported after rendering), never a source.
    let existing = api
        .get_opt(&name)
        .await
        .map_err(kube_err(format!("reading Secret {ns}/{name}")))?
        .filter(|s| owned_by(s, zs))
        .and_then(|s| s.data)
        .unwrap_or_default();
    let get = |k: &str| {
        existing
            .get(k)
            .and_then(|b| String::from_utf8(b.0.clone()).ok())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(ctx.random)
            .into()
    };
    Ok(GeneratedSecrets {
        source_token: get(KEY_SOURCE_TOKEN),
        admin_password: get(KEY_ADMIN_PASSWORD),
    })
}

/// The schema the change source runs now: the operator's ConfigMap mounted by the source
/// Deployment this ZeroStack made, if both exist. Used when a new schema is invalid, so that
/// nothing rolls.
async fn running_schema(
    zs: &ZeroStack,
    ctx: &Context,
    ns: &str,
) -> Result<Option<RenderedSchema>, Error> {
    let name = render::child_name(zs, component::SOURCE);
    let deployments: Api<Deployment> = Api::namespaced(ctx.client.clone(), ns);
    let Some(source) = deployments
        .get_opt(&name)
        .await
        .map_err(kube_err(format!("reading Deployment {ns}/{name}")))?
        .filter(|d| owned_by(d, zs))
    else {
        return Ok(None);
    };
    let Some(cm_name) = render::source::mounted_schema(&source) else {
        return Ok(None);
    };
    let config_maps: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), ns);
    let running = config_maps
        .get_opt(&cm_name)
        .await
        .map_err(kube_err(format!("reading ConfigMap {ns}/{cm_name}")))?
        .filter(|cm| owned_by(cm, zs))
        .and_then(|cm| {
            let hash = cm
                .annotations()
                .get(render::SCHEMA_HASH_ANNOTATION)
                .cloned()?;
            Some(RenderedSchema {
                data: cm.data?,
                hash,
            })
        });
    Ok(running)
}

/// Whether `obj` is a child this ZeroStack created: it carries our controller reference.
pub fn owned_by(obj: &impl Resource, zs: &ZeroStack) -> bool {
    let uid = zs.uid().unwrap_or_default();
    !uid.is_empty()
        && obj
            .owner_references()
            .iter()
            .any(|o| o.uid == uid && o.controller == Some(true))
}

fn to_value(obj: DynamicObject) -> serde_json::Value {
    serde_json::to_value(obj).expect("objects serialise")
}

async fn get(
    ctx: &Context,
    ns: &str,
    kind: &str,
    name: &str,
) -> Result<Option<DynamicObject>, Error> {
    api_for(ctx, ns, kind)
        .get_opt(name)
        .await
        .map_err(kube_err(format!("reading {kind} {ns}/{name}")))
}

/// The API resource of each kind the operator owns, in sweep order.
pub fn owned_kinds() -> Vec<(&'static str, ApiResource)> {
    vec![
        ("ConfigMap", ApiResource::erase::<ConfigMap>(&())),
        ("Secret", ApiResource::erase::<Secret>(&())),
        ("Deployment", ApiResource::erase::<Deployment>(&())),
        ("Service", ApiResource::erase::<Service>(&())),
        (
            "PersistentVolumeClaim",
            ApiResource::erase::<PersistentVolumeClaim>(&()),
        ),
        (
            "PodDisruptionBudget",
            ApiResource::erase::<PodDisruptionBudget>(&()),
        ),
        ("NetworkPolicy", ApiResource::erase::<NetworkPolicy>(&())),
        (
            "HorizontalPodAutoscaler",
            ApiResource::erase::<HorizontalPodAutoscaler>(&()),
        ),
    ]
}

fn api_for(ctx: &Context, ns: &str, kind: &str) -> Api<DynamicObject> {
    let ar = owned_kinds()
        .into_iter()
        .find(|(k, _)| *k == kind)
        .map(|(_, ar)| ar)
        .expect("every rendered kind is an owned kind");
    Api::namespaced_with(ctx.client.clone(), ns, &ar)
}

async fn apply(ctx: &Context, ns: &str, child: &Child) -> Result<serde_json::Value, Error> {
    let api = api_for(ctx, ns, child.kind());
    let name = child.name();
    let obj = api
        .patch(
            &name,
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(child.to_value()),
        )
        .await
        .map_err(kube_err(format!("applying {} {ns}/{name}", child.kind())))?;
    Ok(serde_json::to_value(obj).expect("objects serialise"))
}

/// Applies only `spec.replicas` of a Deployment under the handover field manager (see
/// [`crate::rollout::replicas_to_hand_over`]).
async fn hand_over_replicas(
    ctx: &Context,
    ns: &str,
    name: &str,
    replicas: i32,
) -> Result<(), Error> {
    let api: Api<Deployment> = Api::namespaced(ctx.client.clone(), ns);
    info!(deployment = %name, replicas, "handing the view-syncers' replicas over to their autoscaler");
    api.patch(
        name,
        &PatchParams::apply(crate::rollout::REPLICAS_HANDOVER_MANAGER).force(),
        &Patch::Apply(json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name},
            "spec": {"replicas": replicas},
        })),
    )
    .await
    .map_err(kube_err(format!(
        "handing over replicas of Deployment {ns}/{name}"
    )))?;
    Ok(())
}

/// How many schema ConfigMaps a stack keeps besides the one it runs: the previous ones, so
/// pods still rolling off them keep their volume and a reverted schema finds its ConfigMap.
pub const SCHEMA_HISTORY: usize = 3;

async fn sweep_orphans(
    zs: &ZeroStack,
    ctx: &Context,
    ns: &str,
    applied: &BTreeMap<(String, String), serde_json::Value>,
) -> Result<(), Error> {
    let lp = ListParams::default().labels(&render::children_selector(zs));
    let schema_prefix = render::config::schema_config_map_prefix(zs);
    // The user's input is never ours to delete, whatever references it may carry.
    let user_config_map = zs.spec.schema.config_map_ref.as_ref().map(|r| &r.name);
    for (kind, _) in owned_kinds() {
        let api = api_for(ctx, ns, kind);
        let list = api
            .list(&lp)
            .await
            .map_err(kube_err(format!("listing {kind}s in {ns}")))?;
        let mut unwanted: Vec<DynamicObject> = list
            .items
            .into_iter()
            .filter(|o| owned_by(o, zs))
            .filter(|o| !applied.contains_key(&(kind.to_string(), o.name_any())))
            .filter(|o| kind != "ConfigMap" || user_config_map != Some(&o.name_any()))
            .collect();
        if kind == "ConfigMap" {
            // Newest first; the first SCHEMA_HISTORY earlier schemas stay.
            let (mut schemas, others): (Vec<_>, Vec<_>) = unwanted
                .into_iter()
                .partition(|o| o.name_any().starts_with(&schema_prefix));
            schemas.sort_by_key(|o| std::cmp::Reverse(o.creation_timestamp()));
            unwanted = others
                .into_iter()
                .chain(schemas.into_iter().skip(SCHEMA_HISTORY))
                .collect();
        }
        for obj in unwanted {
            let name = obj.name_any();
            info!(zerostack = %key(zs), kind, name = %name, "deleting child no longer wanted");
            match api.delete(&name, &DeleteParams::background()).await {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => return Err(kube_err(format!("deleting {kind} {ns}/{name}"))(e)),
            }
        }
    }
    Ok(())
}

async fn write_status(zs: &ZeroStack, ctx: &Context, st: ZeroStackStatus) -> Result<(), Error> {
    let ns = zs.namespace().unwrap_or_default();
    let api: Api<ZeroStack> = Api::namespaced(ctx.client.clone(), &ns);
    let transitions = status::transitions(zs.status.as_ref(), &st);
    let patch = json!({
        "apiVersion": ZeroStack::api_version(&()),
        "kind": ZeroStack::kind(&()),
        "status": st,
    });
    api.patch_status(
        &zs.name_any(),
        &PatchParams::apply(MANAGER).force(),
        &Patch::Apply(patch),
    )
    .await
    .map_err(kube_err(format!(
        "writing status of ZeroStack {ns}/{}",
        zs.name_any()
    )))?;
    if let Some(recorder) = &ctx.recorder {
        let reference: ObjectReference = zs.object_ref(&());
        for t in transitions {
            let bad = matches!(
                (t.type_.as_str(), t.status.as_str()),
                ("Degraded", "True")
                    | (
                        "Ready" | "SourceReady" | "CacheReady" | "AppReady" | "SchemaValid",
                        "False"
                    )
            );
            let note = truncate_chars(format!("{}={}: {}", t.type_, t.status, t.message), 1000);
            let ev = Event {
                type_: if bad {
                    EventType::Warning
                } else {
                    EventType::Normal
                },
                reason: t.reason.clone(),
                note: Some(note),
                action: "Reconcile".into(),
                secondary: None,
            };
            if let Err(e) = recorder.publish(&ev, &reference).await {
                warn!(zerostack = %key(zs), error = %e, "could not publish event");
            }
        }
    }
    Ok(())
}

/// At most `max` bytes of `text`, cut at a character boundary (an Event note has a size limit,
/// and schema errors quote user input, which may be any UTF-8).
fn truncate_chars(mut text: String, max: usize) -> String {
    if text.len() > max {
        let cut = (0..=max)
            .rev()
            .find(|&i| text.is_char_boundary(i))
            .unwrap_or(0);
        text.truncate(cut);
    }
    text
}

#[cfg(test)]
#[path = "reconcile_tests.rs"]
mod tests;
