//! The ZRocket app: Deployment and Service. zero-cache calls its mutate/query endpoints; the
//! browser loads its web UI and connects to zero-cache at `PUBLIC_ZERO_URL`.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Container, Service};

use super::{
    APP_PORT, DeploymentParts, VERSION, component, env, env_secret, http_port, http_probe,
    resources, tmp_volume,
};
use zerostack_spec::env::app as vars;

use crate::crd::ZeroStack;

/// Default image of the app.
pub fn default_image() -> String {
    format!("ghcr.io/zerostack/zrocket:{VERSION}")
}

/// The app Deployment.
pub fn deployment(zs: &ZeroStack) -> Deployment {
    let spec = &zs.spec.app;
    let mut envs = vec![
        env(vars::PORT, APP_PORT.to_string()),
        env_secret(vars::MONGODB_URI, &zs.spec.mongodb.uri_secret_ref),
    ];
    if let Some(db) = &zs.spec.mongodb.database {
        envs.push(env(vars::MONGODB_DATABASE, db.clone()));
    }
    // No AUTH_SECRET: the app keeps its sessions in MongoDB and signs no tokens (it warns
    // when the variable is still set).
    envs.push(env(vars::PUBLIC_ZERO_URL, spec.public_zero_url.clone()));
    // Sign-in modes: each variable only when asked for, so the app's safe defaults (no dev
    // login, no external identity, Secure decided by the app) hold for a stack that says nothing.
    if spec.dev_login {
        envs.push(env(vars::DEV_LOGIN, "true"));
    }
    if let Some(oidc) = &spec.oidc {
        envs.push(env(vars::OIDC_ISSUER, oidc.issuer.clone()));
        envs.push(env(vars::OIDC_JWKS_URL, oidc.jwks_url.clone()));
        envs.push(env(vars::OIDC_AUDIENCE, oidc.audience.clone()));
    }
    if spec.cookie_secure {
        envs.push(env(vars::COOKIE_SECURE, "true"));
    }
    if let Some(domain) = &spec.cookie_domain {
        envs.push(env(vars::COOKIE_DOMAIN, domain.clone()));
    }
    if spec.trust_proxy {
        envs.push(env(vars::TRUST_PROXY, "true"));
    }
    envs.push(env(vars::LOG_LEVEL, spec.log_level.clone()));
    envs.push(env(vars::LOG_FORMAT, "json"));

    let (tmp, tmp_mount) = tmp_volume();
    let container = Container {
        name: "zrocket".into(),
        image: Some(spec.workload.image.clone().unwrap_or_else(default_image)),
        ports: Some(vec![http_port(APP_PORT)]),
        env: Some(envs),
        readiness_probe: Some(http_probe("/health", 5, 3, 3)),
        liveness_probe: Some(http_probe("/health", 10, 3, 3)),
        resources: Some(resources(
            &spec.workload.resources,
            ("50m", "64Mi"),
            "256Mi",
        )),
        volume_mounts: Some(vec![tmp_mount]),
        ..Default::default()
    };
    super::deployment(
        zs,
        DeploymentParts {
            component: component::APP,
            replicas: spec.replicas,
            container,
            volumes: vec![tmp],
            workload: &spec.workload,
            uid: 65532,
            annotations: BTreeMap::new(),
            termination_grace_seconds: 30,
            strategy: None,
            default_affinity: None,
        },
    )
}

/// The app Service (zero-cache's mutate/query URLs point here).
pub fn service(zs: &ZeroStack) -> Service {
    super::service(zs, component::APP, APP_PORT)
}
