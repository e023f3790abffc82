//! zero-cache: a single-node Deployment (Rocicorp's image at the pinned version) configured for
//! a custom change source per `zero-change-protocol.md` §1.11, with Rocicorp's probe and
//! shutdown guidance, plus its Service and (optionally) the volume for its SQLite replica.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{
    Container, EmptyDirVolumeSource, Lifecycle, LifecycleHandler, PersistentVolumeClaim,
    PersistentVolumeClaimSpec, PersistentVolumeClaimVolumeSource, Service, SleepAction, Volume,
    VolumeMount, VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use super::{
    APP_PORT, CACHE_PORT, DeploymentParts, KEY_ADMIN_PASSWORD, SOURCE_PORT, child_name, component,
    env, env_pod_field, env_secret, generated_ref, http_port, http_probe, meta, resources,
    service_host,
};
use crate::crd::ZeroStack;

/// Where the replica volume is mounted.
pub const DATA_DIR: &str = "/data";

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

/// The zero-cache Deployment.
pub fn deployment(zs: &ZeroStack) -> Deployment {
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
        env("ZERO_REPLICA_FILE", format!("{DATA_DIR}/replica.db")),
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
    if let Some(n) = spec.num_sync_workers {
        envs.push(env("ZERO_NUM_SYNC_WORKERS", n.to_string()));
    }
    if zs.spec.app.enabled {
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

    let (tmp, tmp_mount) = super::tmp_volume();
    let data = Volume {
        name: "data".into(),
        persistent_volume_claim: spec
            .storage
            .is_pvc()
            .then(|| PersistentVolumeClaimVolumeSource {
                claim_name: pvc_name(zs),
                ..Default::default()
            }),
        empty_dir: (!spec.storage.is_pvc()).then(|| EmptyDirVolumeSource {
            size_limit: Some(Quantity(spec.storage.size.clone())),
            ..Default::default()
        }),
        ..Default::default()
    };
    let container = Container {
        name: "zero-cache".into(),
        image: Some(image(zs)),
        ports: Some(vec![http_port(CACHE_PORT)]),
        env: Some(envs),
        // Rocicorp's guidance: `/` answers only once zero-cache is ready (after initial sync),
        // which can take minutes: 5 s x 120 = 10 minutes of startup budget.
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
        volume_mounts: Some(vec![
            VolumeMount {
                name: "data".into(),
                mount_path: DATA_DIR.into(),
                ..Default::default()
            },
            tmp_mount,
        ]),
        ..Default::default()
    };
    super::deployment(
        zs,
        DeploymentParts {
            component: component::CACHE,
            replicas: spec.replicas,
            container,
            volumes: vec![data, tmp],
            workload: &spec.workload,
            uid: 1000,
            annotations: BTreeMap::new(),
            // Long grace so in-flight client sessions drain, per Rocicorp's k8s examples.
            termination_grace_seconds: 600,
            // Never two zero-cache pods on one replica file.
            recreate: true,
        },
    )
}

/// The zero-cache Service (clients connect here).
pub fn service(zs: &ZeroStack) -> Service {
    super::service(zs, component::CACHE, CACHE_PORT)
}

/// The replica's PVC, when persistent storage is requested.
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
