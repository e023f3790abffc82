//! Availability and network policies: PodDisruptionBudgets where a component has more than one
//! pod (never for a singleton, which would block node drains), and the NetworkPolicies (on unless
//! turned off) that keep the change source private to zero-cache and zero-cache's internal ports
//! closed. With view-syncers: a PodDisruptionBudget of at most one view-syncer down at a time,
//! and the replication-manager's change stream (4849) open to view-syncers only.

use std::collections::BTreeMap;

use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicyPort,
    NetworkPolicySpec,
};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{
    CACHE_PORT, CHANGE_STREAMER_PORT, SOURCE_PORT, child_name, component, meta, selector_labels,
};
use crate::crd::ZeroStack;

/// PDBs (minAvailable 1) for the source and the app when they run more than one pod, and
/// (maxUnavailable 1) for the view-syncers: their count may be the autoscaler's, and one at a
/// time is what a client's reconnect to another view-syncer absorbs. The replication-manager is
/// a singleton and gets none.
pub fn pdbs(zs: &ZeroStack) -> Vec<PodDisruptionBudget> {
    let mut wanted = vec![];
    if zs.spec.source.replicas > 1 {
        wanted.push(component::SOURCE);
    }
    if zs.spec.app.enabled && zs.spec.app.replicas > 1 {
        wanted.push(component::APP);
    }
    wanted
        .into_iter()
        .map(|c| PodDisruptionBudget {
            metadata: meta(zs, child_name(zs, c), c),
            spec: Some(PodDisruptionBudgetSpec {
                min_available: Some(IntOrString::Int(1)),
                selector: Some(LabelSelector {
                    match_labels: Some(selector_labels(zs, c)),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            status: None,
        })
        .chain(zs.spec.cache.view_syncer_count().map(|_| {
            let c = component::VIEW_SYNCER;
            PodDisruptionBudget {
                metadata: meta(zs, child_name(zs, c), c),
                spec: Some(PodDisruptionBudgetSpec {
                    max_unavailable: Some(IntOrString::Int(1)),
                    selector: Some(LabelSelector {
                        match_labels: Some(selector_labels(zs, c)),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                status: None,
            }
        }))
        .collect()
}

/// NetworkPolicies, unless `spec.networkPolicy.enabled` is false. Who must reach whom, and why
/// these two policies allow it: zero-cache → source :8001 (the change stream; the only peer
/// the source admits), zero-cache → app :8011 and the app → MongoDB (neither has a policy),
/// browsers and port-forwards → zero-cache :4848 (admitted from anywhere) and → the app (no
/// policy). Only ingress is restricted, so no pod loses its way out (DNS, MongoDB, PostgreSQL).
pub fn network_policies(zs: &ZeroStack) -> Vec<NetworkPolicy> {
    if !zs.spec.network_policy.enabled {
        return vec![];
    }
    let port = |p: i32| NetworkPolicyPort {
        port: Some(IntOrString::Int(p)),
        protocol: Some("TCP".into()),
        ..Default::default()
    };
    let policy = |c: &str, rule: NetworkPolicyIngressRule| NetworkPolicy {
        metadata: meta(zs, child_name(zs, c), c),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector {
                match_labels: Some(selector_labels(zs, c)),
                ..Default::default()
            }),
            policy_types: Some(vec!["Ingress".into()]),
            ingress: Some(vec![rule]),
            ..Default::default()
        }),
    };
    let peer = |c: &str| NetworkPolicyPeer {
        pod_selector: Some(LabelSelector {
            match_labels: Some(selector_labels(zs, c)),
            ..Default::default()
        }),
        ..Default::default()
    };
    if zs.spec.cache.view_syncer_count().is_some() {
        return vec![
            // Only the replication-manager dials the change source; view-syncers never do.
            policy(
                component::SOURCE,
                NetworkPolicyIngressRule {
                    from: Some(vec![peer(component::REPLICATION_MANAGER)]),
                    ports: Some(vec![port(SOURCE_PORT)]),
                },
            ),
            // The change stream is for view-syncers only; clients never reach this pod.
            policy(
                component::REPLICATION_MANAGER,
                NetworkPolicyIngressRule {
                    from: Some(vec![peer(component::VIEW_SYNCER)]),
                    ports: Some(vec![port(CHANGE_STREAMER_PORT)]),
                },
            ),
            // Clients reach 4848; a view-syncer's other ports stay closed.
            policy(
                component::VIEW_SYNCER,
                NetworkPolicyIngressRule {
                    from: None,
                    ports: Some(vec![port(CACHE_PORT)]),
                },
            ),
        ];
    }
    let cache_pods: BTreeMap<String, String> = selector_labels(zs, component::CACHE);
    vec![
        // Only zero-cache may open the change stream.
        policy(
            component::SOURCE,
            NetworkPolicyIngressRule {
                from: Some(vec![NetworkPolicyPeer {
                    pod_selector: Some(LabelSelector {
                        match_labels: Some(cache_pods),
                        ..Default::default()
                    }),
                    ..Default::default()
                }]),
                ports: Some(vec![port(SOURCE_PORT)]),
            },
        ),
        // Clients reach 4848; the change-streamer (4849) and litestream (4850) ports stay closed.
        policy(
            component::CACHE,
            NetworkPolicyIngressRule {
                from: None,
                ports: Some(vec![port(CACHE_PORT)]),
            },
        ),
    ]
}
