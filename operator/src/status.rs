//! Conditions and status, computed by pure functions from what the reconciler observed.
//!
//! Users (and `kubectl wait --for=condition=Ready`) read conditions, so every condition carries
//! its own `observedGeneration` and a reason + message that name the failing child. Transition
//! times only move when a condition's status changes, and the list of transitions drives Events.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::ResourceExt;

use crate::crd::{CacheTopologyStatus, ComponentStatus, Endpoints, ZeroStack, ZeroStackStatus};

/// Condition types, in the order they are written.
pub mod types {
    /// Every component ready and the schema valid.
    pub const READY: &str = "Ready";
    /// The change source Deployment is available.
    pub const SOURCE_READY: &str = "SourceReady";
    /// The zero-cache Deployment is available.
    pub const CACHE_READY: &str = "CacheReady";
    /// The app Deployment is available (or the app is disabled).
    pub const APP_READY: &str = "AppReady";
    /// The schema passed `zerostack-spec` validation.
    pub const SCHEMA_VALID: &str = "SchemaValid";
    /// A rollout is under way.
    pub const PROGRESSING: &str = "Progressing";
    /// Something is wrong that needs attention.
    pub const DEGRADED: &str = "Degraded";
    /// `spec.paused` is set.
    pub const PAUSED: &str = "ReconciliationPaused";
}

/// The schema outcome of this reconcile.
#[derive(Clone, Debug, PartialEq)]
pub enum SchemaOutcome {
    /// Valid; the hash now rolled out.
    Valid { hash: String },
    /// Invalid; `reason` is a CamelCase reason, `message` the validation errors.
    Invalid {
        reason: String,
        message: String,
        running_hash: Option<String>,
    },
}

/// A Deployment as returned by the API server after apply.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct DeploymentObs {
    /// Name of the Deployment.
    pub name: String,
    /// Desired replicas.
    pub replicas: i32,
    /// Ready replicas.
    pub ready: i32,
    /// Replicas on the current template.
    pub updated: i32,
    /// Available replicas.
    pub available: i32,
    /// The Deployment controller has seen the latest spec.
    pub generation_observed: bool,
    /// The rollout hit its progress deadline.
    pub stalled: bool,
}

impl DeploymentObs {
    /// Reads the counts from a Deployment's status.
    pub fn from_deployment(d: &Deployment) -> Self {
        let st = d.status.clone().unwrap_or_default();
        let stalled = st.conditions.unwrap_or_default().iter().any(|c| {
            c.type_.as_deref() == Some("Progressing")
                && c.status.as_deref() == Some("False")
                && c.reason.as_deref() == Some("ProgressDeadlineExceeded")
        });
        Self {
            name: d.name_any(),
            replicas: d.spec.replicas.unwrap_or(1),
            ready: st.ready_replicas.unwrap_or(0),
            updated: st.updated_replicas.unwrap_or(0),
            available: st.available_replicas.unwrap_or(0),
            generation_observed: st.observed_generation.unwrap_or(0)
                >= d.metadata.generation.unwrap_or(0),
            stalled,
        }
    }

    /// Every pod runs the latest spec and is ready and available: the rollout is over.
    pub fn done(&self) -> bool {
        self.generation_observed
            && self.updated >= self.replicas
            && self.ready >= self.replicas
            && self.available >= self.replicas
    }

    fn counts(&self) -> ComponentStatus {
        ComponentStatus {
            replicas: self.replicas,
            ready_replicas: self.ready,
            updated_replicas: self.updated,
        }
    }
}

/// Everything one reconcile observed.
#[derive(Clone, Debug, PartialEq)]
pub struct Observed {
    /// Schema outcome.
    pub schema: SchemaOutcome,
    /// Source Deployment (None when no valid schema was ever seen).
    pub source: Option<DeploymentObs>,
    /// The single-node zero-cache Deployment (None with view-syncers).
    pub cache: Option<DeploymentObs>,
    /// The replication-manager + view-syncers, when `cache.viewSyncers` is set.
    pub topology: Option<TopologyObs>,
    /// App Deployment (None when disabled).
    pub app: Option<DeploymentObs>,
    /// A reconcile error, already free of secrets.
    pub error: Option<String>,
    /// Objects that hold a child's name but were not created by this ZeroStack
    /// (`Kind namespace/name`); while there are any, nothing is applied.
    pub conflicts: Vec<String>,
    /// Endpoints to publish.
    pub endpoints: Option<Endpoints>,
}

/// zero-cache's two Deployments in the replication-manager + view-syncers topology.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct TopologyObs {
    /// The replication-manager's Deployment.
    pub replication_manager: Option<DeploymentObs>,
    /// The view-syncers' Deployment.
    pub view_syncers: Option<DeploymentObs>,
    /// The view-syncers' new spec was not applied: the replication-manager is not ready yet.
    pub view_syncers_held: bool,
}

/// The CacheReady condition of the topology: the replication-manager first (the view-syncers
/// depend on it), then the view-syncers.
fn topology_cond(t: &TopologyObs) -> Cond {
    let rm = component_cond(
        "the replication-manager",
        t.replication_manager.as_ref(),
        "NotCreated",
    );
    if !rm.0 {
        return rm;
    }
    let vs = match &t.view_syncers {
        None => (
            false,
            "WaitingForReplicationManager".into(),
            "the view-syncers are created once the replication-manager is ready".into(),
        ),
        Some(_) => component_cond("the view-syncers", t.view_syncers.as_ref(), "NotCreated"),
    };
    if !vs.0 {
        return vs;
    }
    (
        true,
        "DeploymentAvailable".into(),
        format!("replication-manager ready; {}", vs.2),
    )
}

/// (status, reason, message) of one condition.
type Cond = (bool, String, String);

fn component_cond(kind: &str, obs: Option<&DeploymentObs>, missing_reason: &str) -> Cond {
    match obs {
        None => (
            false,
            missing_reason.to_string(),
            format!("{kind} has no Deployment yet"),
        ),
        Some(d) if d.stalled => (
            false,
            "ProgressDeadlineExceeded".into(),
            format!(
                "Deployment {} exceeded its progress deadline ({}/{} ready)",
                d.name, d.ready, d.replicas
            ),
        ),
        Some(d) if d.done() => (
            true,
            "DeploymentAvailable".into(),
            format!(
                "Deployment {}: {}/{} replicas ready",
                d.name, d.ready, d.replicas
            ),
        ),
        Some(d) => (
            false,
            "DeploymentNotReady".into(),
            format!(
                "Deployment {}: {}/{} ready, {}/{} updated",
                d.name, d.ready, d.replicas, d.updated, d.replicas
            ),
        ),
    }
}

/// Computes the full status of an unpaused stack.
pub fn compute(zs: &ZeroStack, obs: &Observed, now: &Time) -> ZeroStackStatus {
    let generation = zs.metadata.generation.unwrap_or(0);
    let source = component_cond(
        "the change source",
        obs.source.as_ref(),
        "WaitingForValidSchema",
    );
    let cache = match &obs.topology {
        Some(t) => topology_cond(t),
        None => component_cond("zero-cache", obs.cache.as_ref(), "NotCreated"),
    };
    let app = if zs.spec.app.enabled {
        component_cond("the app", obs.app.as_ref(), "NotCreated")
    } else {
        (true, "Disabled".into(), "spec.app.enabled is false".into())
    };
    let schema: Cond = match &obs.schema {
        SchemaOutcome::Valid { hash } => (
            true,
            "Valid".into(),
            format!("schema files valid (sha256 {hash})"),
        ),
        SchemaOutcome::Invalid {
            reason,
            message,
            running_hash,
        } => (
            false,
            reason.clone(),
            match running_hash {
                Some(h) => {
                    format!("{message}\nThe running configuration (sha256 {h}) is left in place.")
                }
                None => message.clone(),
            },
        ),
    };
    let (rm, vs) = obs.topology.as_ref().map_or((None, None), |t| {
        (t.replication_manager.clone(), t.view_syncers.clone())
    });
    let deployments = [&obs.source, &obs.cache, &rm, &vs, &obs.app];
    let rolling: Vec<&DeploymentObs> = deployments
        .iter()
        .filter_map(|d| d.as_ref())
        .filter(|d| !d.done() && !d.stalled)
        .collect();
    let progressing: Cond = if rolling.is_empty() {
        (
            false,
            "RolloutComplete".into(),
            "no rollout in progress".into(),
        )
    } else {
        let names: Vec<&str> = rolling.iter().map(|d| d.name.as_str()).collect();
        (
            true,
            "RollingOut".into(),
            format!("waiting for Deployment {}", names.join(", ")),
        )
    };
    let conflict: Option<Cond> = (!obs.conflicts.is_empty()).then(|| {
        (
            false,
            "NameConflict".into(),
            format!(
                "not created by this ZeroStack but named like its children: {}. The operator \
                 never takes over an object it did not create, so it applies nothing until \
                 these are renamed or deleted (or the ZeroStack is renamed)",
                obs.conflicts.join(", ")
            ),
        )
    });
    let degraded: Cond = if let Some(e) = &obs.error {
        (true, "ReconcileError".into(), e.clone())
    } else if let Some((_, reason, message)) = &conflict {
        (true, reason.clone(), message.clone())
    } else if !schema.0 {
        (
            true,
            "SchemaInvalid".into(),
            "the schema is invalid; see condition SchemaValid".into(),
        )
    } else if let Some(d) = deployments
        .iter()
        .filter_map(|d| d.as_ref())
        .find(|d| d.stalled)
    {
        (
            true,
            "ProgressDeadlineExceeded".into(),
            format!("Deployment {} is stuck", d.name),
        )
    } else {
        (false, "AsExpected".into(), "no problems".into())
    };
    let ready: Cond = {
        let failing = [
            (&source, "SourceReady"),
            (&cache, "CacheReady"),
            (&app, "AppReady"),
            (&schema, "SchemaValid"),
        ]
        .into_iter()
        .find(|(c, _)| !c.0);
        match (failing, &obs.error) {
            (_, Some(e)) => (false, "ReconcileError".into(), e.clone()),
            _ if conflict.is_some() => conflict.clone().expect("checked"),
            (Some((c, t)), None) => (false, format!("{t}False"), c.2.clone()),
            (None, None) => (
                true,
                "AllComponentsReady".into(),
                "the change source, zero-cache and the app are ready".into(),
            ),
        }
    };
    let paused: Cond = (false, "Reconciling".into(), "spec.paused is false".into());

    let wanted = [
        (types::READY, ready),
        (types::SOURCE_READY, source),
        (types::CACHE_READY, cache),
        (types::APP_READY, app),
        (types::SCHEMA_VALID, schema),
        (types::PROGRESSING, progressing),
        (types::DEGRADED, degraded),
        (types::PAUSED, paused),
    ];
    let prev = zs.status.clone().unwrap_or_default();
    let conditions = wanted
        .into_iter()
        .map(|(t, c)| condition(&prev.conditions, t, c, generation, now))
        .collect::<Vec<_>>();
    let is = |t: &str| {
        conditions
            .iter()
            .any(|c| c.type_ == t && c.status == "True")
    };
    let phase = if is(types::READY) {
        "Ready"
    } else if !is(types::SCHEMA_VALID) {
        "SchemaInvalid"
    } else if is(types::DEGRADED) {
        "Degraded"
    } else if is(types::PROGRESSING) {
        "Progressing"
    } else {
        "Pending"
    };
    ZeroStackStatus {
        observed_generation: Some(generation),
        phase: Some(phase.into()),
        conditions,
        source: obs.source.as_ref().map(DeploymentObs::counts),
        // With view-syncers, `cache` counts the pods that serve clients.
        cache: obs
            .cache
            .as_ref()
            .or(vs.as_ref())
            .map(DeploymentObs::counts),
        cache_topology: obs.topology.as_ref().map(|t| CacheTopologyStatus {
            replication_manager_ready: t.replication_manager.as_ref().is_some_and(|d| d.done()),
            replication_manager: t
                .replication_manager
                .as_ref()
                .map(DeploymentObs::counts)
                .unwrap_or_default(),
            view_syncers: t
                .view_syncers
                .as_ref()
                .map(DeploymentObs::counts)
                .unwrap_or_default(),
            view_syncers_held: t.view_syncers_held,
        }),
        app: obs.app.as_ref().map(DeploymentObs::counts),
        endpoints: obs.endpoints.clone(),
        schema_hash: match &obs.schema {
            SchemaOutcome::Valid { hash } => Some(hash.clone()),
            SchemaOutcome::Invalid { running_hash, .. } => running_hash.clone(),
        },
        // The reconcile replaces it when it rolls a new schema; until then the last one stays.
        last_schema_change: zs
            .status
            .as_ref()
            .and_then(|s| s.last_schema_change.clone()),
    }
}

/// Status of a paused stack: the previous status with `ReconciliationPaused=True`, the generation
/// acknowledged, and nothing else touched (the children are not being looked at).
pub fn paused(zs: &ZeroStack, now: &Time) -> ZeroStackStatus {
    let generation = zs.metadata.generation.unwrap_or(0);
    let mut st = zs.status.clone().unwrap_or_default();
    let c = condition(
        &st.conditions,
        types::PAUSED,
        (
            true,
            "SpecPaused".into(),
            "spec.paused is true: child objects are left as they are".into(),
        ),
        generation,
        now,
    );
    st.conditions.retain(|x| x.type_ != types::PAUSED);
    st.conditions.push(c);
    st.observed_generation = Some(generation);
    st.phase = Some("Paused".into());
    st
}

fn condition(prev: &[Condition], type_: &str, c: Cond, generation: i64, now: &Time) -> Condition {
    let status = if c.0 { "True" } else { "False" };
    let last = prev
        .iter()
        .find(|p| p.type_ == type_ && p.status == status)
        .map(|p| p.last_transition_time.clone())
        .unwrap_or_else(|| now.clone());
    Condition {
        type_: type_.into(),
        status: status.into(),
        reason: c.1,
        message: c.2,
        observed_generation: Some(generation),
        last_transition_time: last,
    }
}

/// A condition whose status changed (or appeared), for an Event.
#[derive(Clone, Debug, PartialEq)]
pub struct Transition {
    /// Condition type.
    pub type_: String,
    /// New status.
    pub status: String,
    /// New reason.
    pub reason: String,
    /// New message.
    pub message: String,
}

/// The conditions whose status differs between `old` and `new`.
pub fn transitions(old: Option<&ZeroStackStatus>, new: &ZeroStackStatus) -> Vec<Transition> {
    let before = old.map(|o| o.conditions.as_slice()).unwrap_or(&[]);
    new.conditions
        .iter()
        .filter(|c| {
            !before
                .iter()
                .any(|b| b.type_ == c.type_ && b.status == c.status)
        })
        .map(|c| Transition {
            type_: c.type_.clone(),
            status: c.status.clone(),
            reason: c.reason.clone(),
            message: c.message.clone(),
        })
        .collect()
}
