//! zero-cache: a single-node Deployment (Rocicorp's image at the pinned version) configured for
//! a custom change source per `zero-change-protocol.md` §1.11, with Rocicorp's probe and
//! shutdown guidance, plus its Service and (optionally) the volume for its SQLite replica.
//!
//! With `cache.viewSyncers` the same container is rendered in two roles instead (Rocicorp's
//! multi-node layout): one replication-manager (no sync workers; the only pod that dials the
//! change source; serves the change stream on 4849 behind a private Service) and N view-syncers
//! (`ZERO_CHANGE_STREAMER_URI`; restore the replica from the backup; serve clients behind the
//! client Service, with session affinity so a client keeps its view-syncer). The view-syncers'
//! HorizontalPodAutoscaler lives here too; the PodDisruptionBudget and NetworkPolicies are in
//! `policy`.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::{
    CrossVersionObjectReference, HorizontalPodAutoscaler, HorizontalPodAutoscalerSpec, MetricSpec,
    MetricTarget, ResourceMetricSource,
};
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, EmptyDirVolumeSource, EnvVar, Lifecycle, LifecycleHandler,
    PersistentVolumeClaim, PersistentVolumeClaimSpec, PersistentVolumeClaimVolumeSource, Service,
    ServicePort, ServiceSpec, SleepAction, Volume, VolumeMount, VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{
    APP_PORT, CACHE_PORT, CHANGE_STREAMER_PORT, DeploymentParts, KEY_ADMIN_PASSWORD, SOURCE_PORT,
    child_name, component, env, env_pod_field, env_secret, generated_ref, http_port, http_probe,
    meta, resources, selector_labels, service_host,
};
use crate::crd::{SecretKeyRef, ZeroStack};

/// Where the replica volume is mounted.
pub const DATA_DIR: &str = "/data";
/// Where `cache.backup.volumeClaimName` is mounted (for a `file://` backup).
pub const BACKUP_DIR: &str = "/backup";

/// Which zero-cache process a Deployment runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Today's default: one zero-cache that replicates and serves clients.
    Single,
    /// Replicates from the change source and serves the change stream; no clients.
    ReplicationManager,
    /// Serves clients from a replica fed by the replication-manager.
    ViewSyncer,
}

impl Role {
    /// The component (label and name suffix) of the role's Deployment.
    pub fn component(self) -> &'static str {
        match self {
            Role::Single => component::CACHE,
            Role::ReplicationManager => component::REPLICATION_MANAGER,
            Role::ViewSyncer => component::VIEW_SYNCER,
        }
    }
}

/// zero-cache's image for the configured version.
pub fn image(zs: &ZeroStack) -> String {
    zs.spec
        .cache
        .workload
        .image
        .clone()
        .unwrap_or_else(|| format!("rocicorp/zero:{}", zs.spec.cache.version))
}

/// Name of the replica PVC.
pub fn pvc_name(zs: &ZeroStack) -> String {
    child_name(zs, "cache-data")
}

/// The replica file: `replica.db`, or `replica-g<N>.db` for resync generation N, so a new
/// generation never opens the previous replica.
pub fn replica_file(zs: &ZeroStack) -> String {
    match zs.spec.cache.resync_generation() {
        None => format!("{DATA_DIR}/replica.db"),
        Some(g) => format!("{DATA_DIR}/replica-g{g}.db"),
    }
}

/// The backup URL zero-cache is given: the user's, or its `g<N>` folder for resync generation N,
/// so a new generation neither restores nor extends the previous backup.
pub fn backup_url(zs: &ZeroStack) -> Option<String> {
    let backup = zs.spec.cache.backup.as_ref()?;
    Some(match zs.spec.cache.resync_generation() {
        None => backup.url.clone(),
        Some(g) => format!("{}/g{g}", backup.url.trim_end_matches('/')),
    })
}

/// The zero-cache container's variable holding the source token.
const TOKEN_VAR: &str = "SOURCE_TOKEN";

/// The URL zero-cache dials: the source Service plus the token, taken from [`TOKEN_VAR`] by
/// Kubernetes' `$(VAR)` expansion so the token never appears in the pod spec.
pub fn upstream_url(zs: &ZeroStack) -> String {
    format!(
        "ws://{}:{SOURCE_PORT}/changes/v0/stream?token=$({TOKEN_VAR})",
        service_host(zs, component::SOURCE)
    )
}

/// The replication-manager's change-stream URL the view-syncers dial.
pub fn change_streamer_uri(zs: &ZeroStack) -> String {
    format!(
        "ws://{}:{CHANGE_STREAMER_PORT}/",
        service_host(zs, component::REPLICATION_MANAGER)
    )
}

/// The single-node zero-cache Deployment.
pub fn deployment(zs: &ZeroStack) -> Deployment {
    role_deployment(zs, Role::Single)
}

/// The Litestream settings every role that runs Litestream needs (a view-syncer restores, the
/// others back up): endpoint, region and credentials, the latter only by `secretKeyRef`. The
/// backup URL goes to the replication-manager (and the single node) only: zero-cache hands it
/// to view-syncers itself.
fn litestream_env(zs: &ZeroStack, role: Role) -> Vec<EnvVar> {
    let Some(backup) = &zs.spec.cache.backup else {
        return vec![];
    };
    let mut out = vec![];
    if role != Role::ViewSyncer
        && let Some(url) = backup_url(zs)
    {
        out.push(env("ZERO_LITESTREAM_BACKUP_URL", url));
    }
    if let Some(endpoint) = &backup.endpoint {
        out.push(env("ZERO_LITESTREAM_ENDPOINT", endpoint.clone()));
    }
    if let Some(region) = &backup.region {
        out.push(env("ZERO_LITESTREAM_REGION", region.clone()));
    }
    if role != Role::ViewSyncer
        && let Some(url) = backup_url(zs)
    {
        // zero-cache 1.9.0 hands the Litestream VFS extension (which reads the backup's
        // watermark in the replication-manager) its URL by assigning `process.env` after start;
        // the extension's Go runtime only sees the environment the process started with.
        out.push(env("LITESTREAM_REPLICA_URL", url));
    }
    if let Some(creds) = &backup.credentials_secret_ref {
        let key = |k: &str| SecretKeyRef {
            name: creds.name.clone(),
            key: k.into(),
        };
        out.push(env_secret(
            "AWS_ACCESS_KEY_ID",
            &key(&creds.access_key_id_key),
        ));
        out.push(env_secret(
            "AWS_SECRET_ACCESS_KEY",
            &key(&creds.secret_access_key_key),
        ));
    }
    out
}

/// A zero-cache Deployment in the given role.
pub fn role_deployment(zs: &ZeroStack, role: Role) -> Deployment {
    let spec = &zs.spec.cache;
    let change_ref = zs
        .spec
        .postgres
        .change_secret_ref
        .as_ref()
        .unwrap_or(&zs.spec.postgres.cvr_secret_ref);
    let admin_ref = spec
        .admin_password_secret_ref
        .clone()
        .unwrap_or_else(|| generated_ref(zs, KEY_ADMIN_PASSWORD));
    let mut envs = vec![
        // Must come before ZERO_UPSTREAM_DB, which refers to it.
        env_secret(TOKEN_VAR, &super::source::token_ref(zs)),
        env("ZERO_UPSTREAM_TYPE", "custom"),
        env("ZERO_UPSTREAM_DB", upstream_url(zs)),
        env_secret("ZERO_CVR_DB", &zs.spec.postgres.cvr_secret_ref),
        env_secret("ZERO_CHANGE_DB", change_ref),
        env("ZERO_REPLICA_FILE", replica_file(zs)),
        env_secret("ZERO_ADMIN_PASSWORD", &admin_ref),
        env("ZERO_APP_ID", zs.spec.app_id.clone()),
        env("ZERO_SHARD_NUM", zs.spec.shard.to_string()),
        env("ZERO_PORT", CACHE_PORT.to_string()),
        // Without a task ID zero-cache 1.9.0 makes a random nanoid and hands it to its workers
        // as `--task-id <id>`; one that starts with '-' (1 in 64) is read as a flag and every
        // worker dies with "Expected string at taskID". The pod's name is unique and safe.
        env_pod_field("ZERO_TASK_ID", "metadata.name"),
        env("ZERO_LOG_FORMAT", "json"),
        env("ZERO_LOG_LEVEL", spec.log_level.clone()),
        env("ZERO_ENABLE_TELEMETRY", "false"),
        env("DO_NOT_TRACK", "1"),
        env("ZERO_STORAGE_DB_TMP_DIR", "/tmp"),
        env("HOME", "/tmp"),
    ];
    match role {
        // No sync workers: it serves no clients, only the change stream.
        Role::ReplicationManager => {
            envs.push(env("ZERO_NUM_SYNC_WORKERS", "0"));
            envs.push(env(
                "ZERO_CHANGE_STREAMER_PORT",
                CHANGE_STREAMER_PORT.to_string(),
            ));
        }
        Role::Single | Role::ViewSyncer => {
            if let Some(n) = spec.num_sync_workers {
                envs.push(env("ZERO_NUM_SYNC_WORKERS", n.to_string()));
            }
        }
    }
    if role == Role::ViewSyncer {
        // A view-syncer never dials the change source (zero-cache 1.9.0 `server/syncer.ts`):
        // its replica comes from the backup and then from this stream.
        envs.push(env("ZERO_CHANGE_STREAMER_URI", change_streamer_uri(zs)));
    }
    // The replication-manager handles no client requests, so it needs no app endpoints.
    if zs.spec.app.enabled && role != Role::ReplicationManager {
        let app = service_host(zs, component::APP);
        envs.push(env(
            "ZERO_MUTATE_URL",
            format!("http://{app}:{APP_PORT}/api/zero/mutate"),
        ));
        envs.push(env(
            "ZERO_QUERY_URL",
            format!("http://{app}:{APP_PORT}/api/zero/query"),
        ));
        // Browsers authenticate to the app by its session cookie; zero-cache passes it on to
        // the mutate and query endpoints only when told to.
        envs.push(env("ZERO_MUTATE_FORWARD_COOKIES", "true"));
        envs.push(env("ZERO_QUERY_FORWARD_COOKIES", "true"));
    }
    // `verifyTokens` is ignored: the app's session tokens are opaque, so zero-cache cannot
    // verify them; it forwards them (and the cookie) and the app checks each one.
    envs.extend(litestream_env(zs, role));

    let (tmp, tmp_mount) = super::tmp_volume();
    // A view-syncer's replica is a copy restored from the backup at every start, so it lives
    // on the pod (emptyDir): view-syncers scale and move freely.
    let pvc = spec.storage.is_pvc() && role != Role::ViewSyncer;
    let data = Volume {
        name: "data".into(),
        persistent_volume_claim: pvc.then(|| PersistentVolumeClaimVolumeSource {
            claim_name: pvc_name(zs),
            ..Default::default()
        }),
        empty_dir: (!pvc).then(|| EmptyDirVolumeSource {
            size_limit: Some(Quantity(spec.storage.size.clone())),
            ..Default::default()
        }),
        ..Default::default()
    };
    let mut volumes = vec![data, tmp];
    let mut mounts = vec![
        VolumeMount {
            name: "data".into(),
            mount_path: DATA_DIR.into(),
            ..Default::default()
        },
        tmp_mount,
    ];
    if let Some(claim) = spec
        .backup
        .as_ref()
        .and_then(|b| b.volume_claim_name.clone())
    {
        volumes.push(Volume {
            name: "backup".into(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: claim,
                ..Default::default()
            }),
            ..Default::default()
        });
        mounts.push(VolumeMount {
            name: "backup".into(),
            mount_path: BACKUP_DIR.into(),
            ..Default::default()
        });
    }
    let mut ports = vec![http_port(CACHE_PORT)];
    if role == Role::ReplicationManager {
        ports.push(ContainerPort {
            name: Some("changes".into()),
            container_port: CHANGE_STREAMER_PORT,
            protocol: Some("TCP".into()),
            ..Default::default()
        });
    }
    let container = Container {
        name: "zero-cache".into(),
        image: Some(image(zs)),
        ports: Some(ports),
        env: Some(envs),
        // Rocicorp's guidance: `/` answers only once zero-cache is ready (after initial sync,
        // or a view-syncer's restore), which can take minutes: 5 s x 120 = 10 minutes.
        startup_probe: Some(http_probe("/", 5, 5, 120)),
        readiness_probe: Some(http_probe("/", 5, 5, 3)),
        liveness_probe: Some(http_probe("/keepalive", 10, 5, 3)),
        lifecycle: Some(Lifecycle {
            pre_stop: Some(LifecycleHandler {
                sleep: Some(SleepAction { seconds: 10 }),
                ..Default::default()
            }),
            ..Default::default()
        }),
        resources: Some(resources(&spec.workload.resources, ("500m", "1Gi"), "2Gi")),
        volume_mounts: Some(mounts),
        ..Default::default()
    };
    let stopped = spec.replicas == 0;
    let replicas = match role {
        Role::Single | Role::ReplicationManager => spec.replicas,
        Role::ViewSyncer if stopped => 0,
        Role::ViewSyncer => spec.view_syncer_count().unwrap_or(1),
    };
    let mut d = super::deployment(
        zs,
        DeploymentParts {
            component: role.component(),
            replicas,
            container,
            volumes,
            workload: &spec.workload,
            uid: 1000,
            annotations: BTreeMap::new(),
            // Long grace so in-flight client sessions drain, per Rocicorp's k8s examples.
            termination_grace_seconds: 600,
            // Never two zero-cache pods on one replica file. The replication-manager is a
            // Deployment with this strategy and the stack's PVC rather than a StatefulSet: it
            // inherits the single node's volume (switching topologies keeps the replica), its
            // claim is an owned child that goes with the stack, and a Deployment replaces a pod
            // stuck on a bad template where a StatefulSet's rollout waits for a manual delete.
            // View-syncers have no shared file and roll one by one.
            strategy: (role != Role::ViewSyncer).then(super::recreate_strategy),
            default_affinity: None,
        },
    );
    if role == Role::ViewSyncer && hpa(zs).is_some() {
        // The autoscaler owns `replicas`: leaving it out of the applied object means
        // server-side apply never resets what the autoscaler chose.
        d.spec.replicas = None;
    }
    d
}

/// The zero-cache Deployments of the stack's topology, replication-manager first.
pub fn deployments(zs: &ZeroStack) -> Vec<Deployment> {
    match zs.spec.cache.view_syncer_count() {
        None => vec![deployment(zs)],
        Some(_) => vec![
            role_deployment(zs, Role::ReplicationManager),
            role_deployment(zs, Role::ViewSyncer),
        ],
    }
}

/// The zero-cache Service (clients connect here). With view-syncers it keeps its name and
/// selects them, so the URL clients use does not change with the topology; `ClientIP` affinity
/// keeps a client's reconnects on the view-syncer that holds its state.
pub fn service(zs: &ZeroStack) -> Service {
    let mut svc = super::service(zs, component::CACHE, CACHE_PORT);
    if zs.spec.cache.view_syncer_count().is_some() {
        let spec = svc.spec.as_mut().expect("service spec");
        spec.selector = Some(selector_labels(zs, component::VIEW_SYNCER));
        spec.session_affinity = Some("ClientIP".into());
    }
    svc
}

/// The replication-manager's private Service on the change-streamer port (the view-syncers'
/// `ZERO_CHANGE_STREAMER_URI`); a NetworkPolicy admits only view-syncers to it.
pub fn replication_manager_service(zs: &ZeroStack) -> Option<Service> {
    zs.spec.cache.view_syncer_count()?;
    let c = component::REPLICATION_MANAGER;
    Some(Service {
        metadata: meta(zs, child_name(zs, c), c),
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".into()),
            selector: Some(selector_labels(zs, c)),
            ports: Some(vec![ServicePort {
                name: Some("changes".into()),
                port: CHANGE_STREAMER_PORT,
                target_port: Some(IntOrString::String("changes".into())),
                protocol: Some("TCP".into()),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        status: None,
    })
}

/// The view-syncers' HorizontalPodAutoscaler, when `cache.autoscale` is set (and zero-cache
/// is not stopped: an autoscaler would scale a stopped Deployment back up).
pub fn hpa(zs: &ZeroStack) -> Option<HorizontalPodAutoscaler> {
    let spec = &zs.spec.cache;
    spec.view_syncer_count()?;
    let auto = spec.autoscale.as_ref()?;
    if spec.replicas == 0 {
        return None;
    }
    let c = component::VIEW_SYNCER;
    Some(HorizontalPodAutoscaler {
        metadata: meta(zs, child_name(zs, c), c),
        spec: HorizontalPodAutoscalerSpec {
            scale_target_ref: CrossVersionObjectReference {
                api_version: Some("apps/v1".into()),
                kind: "Deployment".into(),
                name: child_name(zs, c),
            },
            min_replicas: Some(auto.min_replicas),
            max_replicas: auto.max_replicas,
            metrics: Some(vec![MetricSpec {
                type_: "Resource".into(),
                resource: Some(ResourceMetricSource {
                    name: "cpu".into(),
                    target: MetricTarget {
                        type_: "Utilization".into(),
                        average_utilization: Some(auto.target_cpu),
                        ..Default::default()
                    },
                }),
                ..Default::default()
            }]),
            ..Default::default()
        },
        status: None,
    })
}

/// The replica's PVC, when persistent storage is requested (the single node's or the
/// replication-manager's; view-syncers keep their copy on the pod).
pub fn pvc(zs: &ZeroStack) -> Option<PersistentVolumeClaim> {
    let storage = &zs.spec.cache.storage;
    storage.is_pvc().then(|| PersistentVolumeClaim {
        metadata: meta(zs, pvc_name(zs), component::CACHE),
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".into()]),
            storage_class_name: storage.storage_class_name.clone(),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([(
                    "storage".to_string(),
                    Quantity(storage.size.clone()),
                )])),
                ..Default::default()
            }),
            ..Default::default()
        }),
        status: None,
    })
}
