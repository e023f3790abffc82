//! The change source (source-server): a Deployment that mounts the schema ConfigMap, and its
//! Service. The schema hash in the pod template makes a schema edit roll exactly these pods.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{
    ConfigMapVolumeSource, Container, Lifecycle, LifecycleHandler, Service, SleepAction, Volume,
    VolumeMount,
};

use super::{
    CONFIG_DIR, DeploymentParts, KEY_SOURCE_TOKEN, SCHEMA_HASH_ANNOTATION, SOURCE_PORT, VERSION,
    component, config, env, env_secret, generated_ref, http_port, http_probe, resources,
    tmp_volume,
};
use zerostack_spec::env::source as vars;

use crate::crd::{SecretKeyRef, ZeroStack};
use crate::schema_check::{MAPPINGS_FILE, PERMISSIONS_FILE, RenderedSchema, SCHEMA_FILE};

/// The pod volume holding the schema ConfigMap.
const CONFIG_VOLUME: &str = "config";

/// Readiness: `/ready` every 5 s, out of the Service after 3 failures, i.e. within 15 s of
/// MongoDB going away. It must stay under 30 s, the time after which a source that lost
/// MongoDB hands zero-cache's connection off (README, "Running two sources"): by then the
/// Service must already send the reconnect to the other source, not back to this one.
const READY_PERIOD_SECONDS: i32 = 5;
/// See [`READY_PERIOD_SECONDS`].
const READY_FAILURES: i32 = 3;
/// The source's hand-off time when MongoDB is away; the readiness window stays under it.
pub const HANDOFF_SECONDS: i32 = 30;
const _: () = assert!(READY_PERIOD_SECONDS * READY_FAILURES < HANDOFF_SECONDS);

/// How long a stopping source pod keeps serving before it gets SIGTERM (the kubelet's
/// `preStop` sleep; no binary in the image needed). Endpoints drop a terminating pod at once,
/// but kube-proxy on every node and zero-cache's reconnect need a moment to see it: without
/// the pause, a reconnect in that window can land on the pod that is closing.
pub const PRE_STOP_SLEEP_SECONDS: i64 = 5;
/// Grace period of a source pod: the `preStop` sleep plus the source's own shutdown.
const TERMINATION_GRACE_SECONDS: i64 = 30;
const _: () = assert!(PRE_STOP_SLEEP_SECONDS < TERMINATION_GRACE_SECONDS);

/// Default image of the change source.
pub fn default_image() -> String {
    format!("ghcr.io/zerostack/source-server:{VERSION}")
}

/// The Secret key with the source token: the user's, or the generated one.
pub fn token_ref(zs: &ZeroStack) -> SecretKeyRef {
    zs.spec
        .source
        .token_secret_ref
        .clone()
        .unwrap_or_else(|| generated_ref(zs, KEY_SOURCE_TOKEN))
}

/// The change-source Deployment.
pub fn deployment(zs: &ZeroStack, schema: &RenderedSchema) -> Deployment {
    let spec = &zs.spec.source;
    let mut envs = vec![
        env(vars::PORT, SOURCE_PORT.to_string()),
        env_secret(vars::MONGODB_URI, &zs.spec.mongodb.uri_secret_ref),
    ];
    if let Some(db) = &zs.spec.mongodb.database {
        envs.push(env(vars::MONGODB_DATABASE, db.clone()));
    }
    for (var, file) in [
        (vars::SCHEMA_FILE, SCHEMA_FILE),
        (vars::TABLE_MAPPINGS_FILE, MAPPINGS_FILE),
        (vars::PERMISSIONS_FILE, PERMISSIONS_FILE),
    ] {
        if schema.data.contains_key(file) {
            envs.push(env(var, format!("{CONFIG_DIR}/{file}")));
        }
    }
    envs.push(env_secret(vars::SOURCE_TOKEN, &token_ref(zs)));
    envs.push(env(vars::LOG_LEVEL, spec.log_level.clone()));
    envs.push(env(vars::LOG_FORMAT, "json"));

    let (tmp, tmp_mount) = tmp_volume();
    let container = Container {
        name: "source-server".into(),
        image: Some(spec.workload.image.clone().unwrap_or_else(default_image)),
        ports: Some(vec![http_port(SOURCE_PORT)]),
        env: Some(envs),
        readiness_probe: Some(http_probe(
            "/ready",
            READY_PERIOD_SECONDS,
            3,
            READY_FAILURES,
        )),
        liveness_probe: Some(http_probe("/health", 10, 3, 3)),
        startup_probe: Some(http_probe("/health", 2, 3, 30)),
        resources: Some(resources(
            &spec.workload.resources,
            ("100m", "128Mi"),
            "512Mi",
        )),
        volume_mounts: Some(vec![
            VolumeMount {
                name: CONFIG_VOLUME.into(),
                mount_path: CONFIG_DIR.into(),
                read_only: Some(true),
                ..Default::default()
            },
            tmp_mount,
        ]),
        lifecycle: Some(Lifecycle {
            pre_stop: Some(LifecycleHandler {
                sleep: Some(SleepAction {
                    seconds: PRE_STOP_SLEEP_SECONDS,
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let volumes = vec![
        Volume {
            name: CONFIG_VOLUME.into(),
            config_map: Some(ConfigMapVolumeSource {
                name: config::schema_config_map_name(zs, &schema.hash),
                ..Default::default()
            }),
            ..Default::default()
        },
        tmp,
    ];
    super::deployment(
        zs,
        DeploymentParts {
            component: component::SOURCE,
            replicas: spec.replicas,
            container,
            volumes,
            workload: &spec.workload,
            uid: 65532,
            annotations: BTreeMap::from([(
                SCHEMA_HASH_ANNOTATION.to_string(),
                schema.hash.clone(),
            )]),
            termination_grace_seconds: TERMINATION_GRACE_SECONDS,
            // A new source pod is ready before an old one stops: with two replicas one always
            // serves zero-cache during a rollout.
            strategy: Some(super::surge_one_strategy()),
            // Two or more: on different nodes where the cluster has them, so one node's loss
            // cannot take every source. One replica renders no affinity at all.
            default_affinity: (spec.replicas >= 2)
                .then(|| super::spread_over_nodes(zs, component::SOURCE)),
        },
    )
}

/// The schema ConfigMap a change-source Deployment mounts (what its pods run).
pub fn mounted_schema(d: &Deployment) -> Option<String> {
    d.spec
        .template
        .spec
        .as_ref()?
        .volumes
        .as_ref()?
        .iter()
        .find(|v| v.name == CONFIG_VOLUME)?
        .config_map
        .as_ref()
        .map(|c| c.name.clone())
}

/// The change-source Service (zero-cache's `ZERO_UPSTREAM_DB` points here).
pub fn service(zs: &ZeroStack) -> Service {
    super::service(zs, component::SOURCE, SOURCE_PORT)
}
