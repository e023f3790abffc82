//! Pure functions from a `ZeroStack` (plus the few inputs read from the cluster) to the child
//! objects the operator applies. No I/O happens here, so every object can be checked by golden
//! files, and the reconciler only has to apply what these functions return.
//!
//! One file per component: `config` (schema ConfigMap, generated Secret), `source`, `cache`,
//! `app`, and `policy` (PodDisruptionBudgets, NetworkPolicies). `cache` also renders the
//! replication-manager + view-syncers topology and the view-syncers' autoscaler.

pub mod app;
pub mod cache;
pub mod config;
pub mod policy;
pub mod source;

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMap, Container, EnvVar, EnvVarSource, ObjectFieldSelector,
    PersistentVolumeClaim, PodSecurityContext, ResourceRequirements, SeccompProfile, Secret,
    SecretKeySelector, SecurityContext, Service,
};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::{Resource, ResourceExt};
use serde::Serialize;

use crate::crd::{SecretKeyRef, ZeroStack};
use crate::schema_check::RenderedSchema;

/// Field manager / managed-by value of everything the operator writes.
pub const MANAGER: &str = "zerostack-operator";
/// The label (any value; `"true"` by convention) that puts a user's schema ConfigMap under the
/// operator's watch, so its edits roll out at once. The operator watches no other ConfigMap it
/// did not create.
pub const SCHEMA_LABEL: &str = "zerostack.dev/schema";
/// Pod-template annotation holding the hash of the rendered schema files.
pub const SCHEMA_HASH_ANNOTATION: &str = "zerostack.dev/schema-hash";
/// Port of the change source.
pub const SOURCE_PORT: i32 = 8001;
/// Port zero-cache serves clients on.
pub const CACHE_PORT: i32 = 4848;
/// Port of the replication-manager's change stream (zero-cache's default: `ZERO_PORT` + 1).
pub const CHANGE_STREAMER_PORT: i32 = 4849;
/// Port of the app.
pub const APP_PORT: i32 = 8011;
/// Where the schema ConfigMap is mounted in change-source pods.
pub const CONFIG_DIR: &str = "/etc/zerostack/config";
/// Crate version, used for the default image tags of our own images.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Keys of the generated Secret.
pub const KEY_SOURCE_TOKEN: &str = "source-token";
/// Key of the generated zero-cache admin password.
pub const KEY_ADMIN_PASSWORD: &str = "admin-password";

/// Secret values the operator generates once and then keeps (read back from the cluster).
/// Held as [`zerostack_spec::secret::Secret`]s, so `Inputs` and everything holding them can be `Debug`-printed safely.
#[derive(Clone, Debug, PartialEq)]
pub struct GeneratedSecrets {
    /// Token zero-cache presents to the source (URL-safe: hex).
    pub source_token: zerostack_spec::secret::Secret,
    /// zero-cache admin password.
    pub admin_password: zerostack_spec::secret::Secret,
}

/// What rendering needs besides the resource itself.
#[derive(Clone, Debug, PartialEq)]
pub struct Inputs {
    /// The schema files to roll out: the freshly validated ones, or the running ones when the
    /// new ones are invalid. `None` when no valid schema was ever seen: then the schema
    /// ConfigMap and the change source are not rendered.
    pub schema: Option<RenderedSchema>,
    /// Generated secret values.
    pub generated: GeneratedSecrets,
}

/// One child object.
#[allow(clippy::large_enum_variant)] // a handful per reconcile; boxing buys nothing
#[derive(Clone, Debug, PartialEq)]
pub enum Child {
    /// Schema ConfigMap.
    ConfigMap(ConfigMap),
    /// Generated Secret.
    Secret(Secret),
    /// A component's Deployment.
    Deployment(Deployment),
    /// A component's Service.
    Service(Service),
    /// zero-cache's volume.
    Pvc(PersistentVolumeClaim),
    /// A PodDisruptionBudget.
    Pdb(PodDisruptionBudget),
    /// A NetworkPolicy.
    NetworkPolicy(NetworkPolicy),
    /// The view-syncers' autoscaler.
    Hpa(HorizontalPodAutoscaler),
}

impl Child {
    /// `Kind` of the object.
    pub fn kind(&self) -> &'static str {
        match self {
            Child::ConfigMap(_) => "ConfigMap",
            Child::Secret(_) => "Secret",
            Child::Deployment(_) => "Deployment",
            Child::Service(_) => "Service",
            Child::Pvc(_) => "PersistentVolumeClaim",
            Child::Pdb(_) => "PodDisruptionBudget",
            Child::NetworkPolicy(_) => "NetworkPolicy",
            Child::Hpa(_) => "HorizontalPodAutoscaler",
        }
    }

    /// `metadata.name` of the object.
    pub fn name(&self) -> String {
        match self {
            Child::ConfigMap(o) => o.name_any(),
            Child::Secret(o) => o.name_any(),
            Child::Deployment(o) => o.name_any(),
            Child::Service(o) => o.name_any(),
            Child::Pvc(o) => o.name_any(),
            Child::Pdb(o) => o.name_any(),
            Child::NetworkPolicy(o) => o.name_any(),
            Child::Hpa(o) => o.name_any(),
        }
    }

    /// Whether the object can never change once created (then it is created, not updated).
    pub fn is_immutable(&self) -> bool {
        matches!(self, Child::ConfigMap(cm) if cm.immutable == Some(true))
    }

    /// The object as JSON, `apiVersion` and `kind` included.
    pub fn to_value(&self) -> serde_json::Value {
        fn v<T: Serialize>(t: &T) -> serde_json::Value {
            serde_json::to_value(t).expect("k8s objects serialise")
        }
        match self {
            Child::ConfigMap(o) => v(o),
            Child::Secret(o) => v(o),
            Child::Deployment(o) => v(o),
            Child::Service(o) => v(o),
            Child::Pvc(o) => v(o),
            Child::Pdb(o) => v(o),
            Child::NetworkPolicy(o) => v(o),
            Child::Hpa(o) => v(o),
        }
    }
}

/// Every child of the stack, in apply order: config first, then the source, zero-cache and the
/// app (the order Rocicorp recommends for upgrades; the replication-manager before the
/// view-syncers), then policies.
pub fn render(zs: &ZeroStack, inputs: &Inputs) -> Vec<Child> {
    let mut out = Vec::new();
    out.push(Child::Secret(config::generated_secret(
        zs,
        &inputs.generated,
    )));
    if let Some(schema) = &inputs.schema {
        out.push(Child::ConfigMap(config::schema_config_map(zs, schema)));
        out.push(Child::Deployment(source::deployment(zs, schema)));
        out.push(Child::Service(source::service(zs)));
    }
    if let Some(pvc) = cache::pvc(zs) {
        out.push(Child::Pvc(pvc));
    }
    out.extend(cache::deployments(zs).into_iter().map(Child::Deployment));
    out.push(Child::Service(cache::service(zs)));
    out.extend(cache::replication_manager_service(zs).map(Child::Service));
    out.extend(cache::hpa(zs).map(Child::Hpa));
    if zs.spec.app.enabled {
        out.push(Child::Deployment(app::deployment(zs)));
        out.push(Child::Service(app::service(zs)));
    }
    out.extend(policy::pdbs(zs).into_iter().map(Child::Pdb));
    out.extend(
        policy::network_policies(zs)
            .into_iter()
            .map(Child::NetworkPolicy),
    );
    out
}

/// Component names used in labels and object names.
pub mod component {
    /// The change source.
    pub const SOURCE: &str = "source";
    /// zero-cache (the single node; also the client Service and the replica volume).
    pub const CACHE: &str = "cache";
    /// zero-cache's replication-manager (with `cache.viewSyncers`).
    pub const REPLICATION_MANAGER: &str = "replication-manager";
    /// zero-cache's view-syncers (with `cache.viewSyncers`).
    pub const VIEW_SYNCER: &str = "view-syncer";
    /// The app.
    pub const APP: &str = "app";
    /// Shared config objects.
    pub const CONFIG: &str = "config";
}

/// `<stack>-<suffix>`.
pub fn child_name(zs: &ZeroStack, suffix: &str) -> String {
    format!("{}-{suffix}", zs.name_any())
}

/// Labels every child carries; `instance` + `managed-by` find them for the orphan sweep.
pub fn labels(zs: &ZeroStack, component: &str) -> BTreeMap<String, String> {
    let mut l = selector_labels(zs, component);
    l.insert("app.kubernetes.io/managed-by".into(), MANAGER.into());
    l.insert("app.kubernetes.io/part-of".into(), "zerostack".into());
    l
}

/// The stable subset of labels used in selectors (selectors are immutable).
pub fn selector_labels(zs: &ZeroStack, component: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (
            "app.kubernetes.io/name".to_string(),
            "zerostack".to_string(),
        ),
        ("app.kubernetes.io/instance".to_string(), zs.name_any()),
        (
            "app.kubernetes.io/component".to_string(),
            component.to_string(),
        ),
    ])
}

/// Label selector (string form) matching every child of a stack.
pub fn children_selector(zs: &ZeroStack) -> String {
    format!(
        "app.kubernetes.io/instance={},app.kubernetes.io/managed-by={MANAGER}",
        zs.name_any()
    )
}

/// Metadata of a child: name, namespace, labels and the controller owner reference.
pub fn meta(zs: &ZeroStack, name: String, component: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        namespace: zs.namespace(),
        labels: Some(labels(zs, component)),
        owner_references: Some(vec![owner_ref(zs)]),
        ..Default::default()
    }
}

/// Controller owner reference to the stack, so deleting it garbage-collects every child.
pub fn owner_ref(zs: &ZeroStack) -> OwnerReference {
    zs.controller_owner_ref(&())
        .unwrap_or_else(|| OwnerReference {
            api_version: ZeroStack::api_version(&()).into_owned(),
            kind: ZeroStack::kind(&()).into_owned(),
            name: zs.name_any(),
            uid: String::new(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        })
}

/// Pod security context: non-root, RuntimeDefault seccomp.
pub fn pod_security(uid: i64) -> PodSecurityContext {
    PodSecurityContext {
        run_as_non_root: Some(true),
        run_as_user: Some(uid),
        run_as_group: Some(uid),
        fs_group: Some(uid),
        seccomp_profile: Some(SeccompProfile {
            type_: "RuntimeDefault".into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Container security context: read-only root, no privilege escalation, no capabilities.
pub fn container_security() -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        read_only_root_filesystem: Some(true),
        run_as_non_root: Some(true),
        privileged: Some(false),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".into()]),
            ..Default::default()
        }),
        seccomp_profile: Some(SeccompProfile {
            type_: "RuntimeDefault".into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A plain env var.
pub fn env(name: &str, value: impl Into<String>) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: Some(value.into()),
        ..Default::default()
    }
}

/// An env var set to one of the pod's own fields (downward API), e.g. `metadata.name`.
pub fn env_pod_field(name: &str, field_path: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: field_path.into(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// An env var read from a Secret key.
pub fn env_secret(name: &str, secret: &SecretKeyRef) -> EnvVar {
    EnvVar {
        name: name.into(),
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: secret.name.clone(),
                key: secret.key.clone(),
                optional: Some(false),
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The generated Secret's key as a reference.
pub fn generated_ref(zs: &ZeroStack, key: &str) -> SecretKeyRef {
    SecretKeyRef {
        name: config::generated_secret_name(zs),
        key: key.into(),
    }
}

/// Requests/limits: the user's, else the component default.
pub fn resources(
    user: &Option<ResourceRequirements>,
    req: (&str, &str),
    mem_limit: &str,
) -> ResourceRequirements {
    user.clone().unwrap_or_else(|| ResourceRequirements {
        requests: Some(BTreeMap::from([
            ("cpu".to_string(), Quantity(req.0.into())),
            ("memory".to_string(), Quantity(req.1.into())),
        ])),
        limits: Some(BTreeMap::from([(
            "memory".to_string(),
            Quantity(mem_limit.into()),
        )])),
        ..Default::default()
    })
}

/// Sets image pull policy, resources and the user's extra env on a container.
pub fn apply_workload(c: &mut Container, w: &crate::crd::WorkloadSpec) {
    c.image_pull_policy = w.image_pull_policy.clone();
    c.env
        .get_or_insert_with(Vec::new)
        .extend(w.env.iter().cloned());
}

/// In-cluster DNS name of a child Service.
pub fn service_host(zs: &ZeroStack, suffix: &str) -> String {
    format!(
        "{}.{}.svc",
        child_name(zs, suffix),
        zs.namespace().unwrap_or_else(|| "default".into())
    )
}

/// Everything that differs between the three Deployments.
pub struct DeploymentParts<'a> {
    /// Component name (label and name suffix).
    pub component: &'a str,
    /// Desired pods.
    pub replicas: i32,
    /// The single container.
    pub container: Container,
    /// Pod volumes.
    pub volumes: Vec<k8s_openapi::api::core::v1::Volume>,
    /// User's pod settings.
    pub workload: &'a crate::crd::WorkloadSpec,
    /// UID/GID the pod runs as.
    pub uid: i64,
    /// Operator-owned pod annotations (e.g. the schema hash).
    pub annotations: BTreeMap<String, String>,
    /// Grace period for shutdown.
    pub termination_grace_seconds: i64,
    /// The rollout strategy; `None` leaves Kubernetes' default (rolling, 25 % / 25 %).
    pub strategy: Option<k8s_openapi::api::apps::v1::DeploymentStrategy>,
    /// The pods' affinity when the user gives none (the user's always wins, whole).
    pub default_affinity: Option<k8s_openapi::api::core::v1::Affinity>,
}

/// `Recreate`: the old pod is gone before the new one starts (zero-cache: one writer per
/// replica file).
pub fn recreate_strategy() -> k8s_openapi::api::apps::v1::DeploymentStrategy {
    k8s_openapi::api::apps::v1::DeploymentStrategy {
        type_: Some("Recreate".into()),
        ..Default::default()
    }
}

/// Rolling with `maxUnavailable: 0`, `maxSurge: 1`: a new pod must be ready before an old one
/// stops, so a rollout never drops below the wanted count (the defaults, 25 % each, round
/// `maxUnavailable` down to 0 only below four replicas, and surge more than one pod above).
pub fn surge_one_strategy() -> k8s_openapi::api::apps::v1::DeploymentStrategy {
    use k8s_openapi::api::apps::v1::{DeploymentStrategy, RollingUpdateDeployment};
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
    DeploymentStrategy {
        type_: Some("RollingUpdate".into()),
        rolling_update: Some(RollingUpdateDeployment {
            max_unavailable: Some(IntOrString::Int(0)),
            max_surge: Some(IntOrString::Int(1)),
        }),
    }
}

/// A *preferred* anti-affinity spreading a component's pods over nodes
/// (`kubernetes.io/hostname`), so one node's loss does not take them all; preferred, so a
/// single-node cluster still schedules every pod.
pub fn spread_over_nodes(zs: &ZeroStack, component: &str) -> k8s_openapi::api::core::v1::Affinity {
    use k8s_openapi::api::core::v1::{
        Affinity, PodAffinityTerm, PodAntiAffinity, WeightedPodAffinityTerm,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
    Affinity {
        pod_anti_affinity: Some(PodAntiAffinity {
            preferred_during_scheduling_ignored_during_execution: Some(vec![
                WeightedPodAffinityTerm {
                    weight: 100,
                    pod_affinity_term: PodAffinityTerm {
                        label_selector: Some(LabelSelector {
                            match_labels: Some(selector_labels(zs, component)),
                            ..Default::default()
                        }),
                        topology_key: "kubernetes.io/hostname".into(),
                        ..Default::default()
                    },
                },
            ]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A hardened Deployment around one container.
pub fn deployment(zs: &ZeroStack, parts: DeploymentParts<'_>) -> Deployment {
    use k8s_openapi::api::apps::v1::DeploymentSpec;
    use k8s_openapi::api::core::v1::{PodSpec, PodTemplateSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

    let mut annotations = parts.workload.pod_annotations.clone().unwrap_or_default();
    annotations.extend(parts.annotations);
    let mut container = parts.container;
    container.security_context = Some(container_security());
    apply_workload(&mut container, parts.workload);
    Deployment {
        metadata: meta(zs, child_name(zs, parts.component), parts.component),
        spec: DeploymentSpec {
            replicas: Some(parts.replicas),
            revision_history_limit: Some(5),
            selector: LabelSelector {
                match_labels: Some(selector_labels(zs, parts.component)),
                ..Default::default()
            },
            strategy: parts.strategy,
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels(zs, parts.component)),
                    annotations: (!annotations.is_empty()).then_some(annotations),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    automount_service_account_token: Some(false),
                    enable_service_links: Some(false),
                    security_context: Some(pod_security(parts.uid)),
                    termination_grace_period_seconds: Some(parts.termination_grace_seconds),
                    containers: vec![container],
                    volumes: Some(parts.volumes),
                    node_selector: parts.workload.node_selector.clone(),
                    tolerations: parts.workload.tolerations.clone(),
                    affinity: parts.workload.affinity.clone().or(parts.default_affinity),
                    ..Default::default()
                }),
            },
            ..Default::default()
        },
        status: None,
    }
}

/// A ClusterIP Service in front of one component.
pub fn service(zs: &ZeroStack, component: &str, port: i32) -> Service {
    use k8s_openapi::api::core::v1::{ServicePort, ServiceSpec};
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
    Service {
        metadata: meta(zs, child_name(zs, component), component),
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".into()),
            selector: Some(selector_labels(zs, component)),
            ports: Some(vec![ServicePort {
                name: Some("http".into()),
                port,
                target_port: Some(IntOrString::String("http".into())),
                protocol: Some("TCP".into()),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        status: None,
    }
}

/// A named container port.
pub fn http_port(port: i32) -> k8s_openapi::api::core::v1::ContainerPort {
    k8s_openapi::api::core::v1::ContainerPort {
        name: Some("http".into()),
        container_port: port,
        protocol: Some("TCP".into()),
        ..Default::default()
    }
}

/// An HTTP GET probe on the `http` port.
pub fn http_probe(
    path: &str,
    period: i32,
    timeout: i32,
    failures: i32,
) -> k8s_openapi::api::core::v1::Probe {
    use k8s_openapi::api::core::v1::{HTTPGetAction, Probe};
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.into()),
            port: IntOrString::String("http".into()),
            ..Default::default()
        }),
        period_seconds: Some(period),
        timeout_seconds: Some(timeout),
        failure_threshold: Some(failures),
        ..Default::default()
    }
}

/// A writable scratch directory (the root filesystem is read-only).
pub fn tmp_volume() -> (
    k8s_openapi::api::core::v1::Volume,
    k8s_openapi::api::core::v1::VolumeMount,
) {
    use k8s_openapi::api::core::v1::{EmptyDirVolumeSource, Volume, VolumeMount};
    (
        Volume {
            name: "tmp".into(),
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..Default::default()
        },
        VolumeMount {
            name: "tmp".into(),
            mount_path: "/tmp".into(),
            ..Default::default()
        },
    )
}

#[cfg(test)]
mod golden_tests;
