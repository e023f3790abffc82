//! The one ordering rule between children that a single server-side apply pass cannot express:
//! Rocicorp's multi-node upgrade order, replication-manager before view-syncers. A view-syncer
//! restores the replication-manager's backup and follows its change stream, so a new view-syncer
//! spec meeting an old (or not yet running) replication-manager is the combination to avoid.
//! And on a switch of topology, the single node and the replication-manager never both run on
//! the one replica volume.
//! Pure, so the rule is tested without an API server; `reconcile` applies it.

use crate::status::DeploymentObs;

/// Whether the view-syncers' Deployment may be applied now, given the replication-manager's
/// Deployment as the API server returned it from this reconcile's apply: only when it runs
/// the spec just applied (its controller observed the latest generation) and every pod of
/// that spec is ready. Otherwise the view-syncers keep their current object (or are not created
/// yet), and the watch on the replication-manager's Deployment brings the next reconcile.
pub fn view_syncers_may_roll(replication_manager: Option<&DeploymentObs>) -> bool {
    replication_manager.is_some_and(DeploymentObs::done)
}

/// Whether the Deployment that replicates into the stack's replica volume (the single node, or
/// the replication-manager) may be applied: only once the other topology's Deployment, which
/// used the same volume and file, no longer exists. Two zero-cache processes replicating into
/// one SQLite file would each apply the change stream to it.
pub fn replica_holder_may_start(previous_holder_exists: bool) -> bool {
    !previous_holder_exists
}

/// Field manager that keeps the view-syncers' `replicas` when an autoscaler takes over.
pub const REPLICAS_HANDOVER_MANAGER: &str = "zerostack-operator-replicas-handover";

/// When an autoscaler starts managing the view-syncers: the replica count to hand over, if the
/// operator's own apply still owns `spec.replicas` of `existing`. Server-side apply removes a
/// field its only owner stops sending, so dropping `replicas` from the operator's apply alone
/// would reset the Deployment to 1 pod until the autoscaler scales it back. Applying the current
/// count once under [`REPLICAS_HANDOVER_MANAGER`] first gives the field a second owner, so it
/// stays; after that the operator never sends it again and the autoscaler alone changes it.
pub fn replicas_to_hand_over(existing: &k8s_openapi::api::apps::v1::Deployment) -> Option<i32> {
    let owned_by_operator_apply = existing.metadata.managed_fields.iter().flatten().any(|m| {
        m.manager.as_deref() == Some(crate::render::MANAGER)
            && m.operation.as_deref() == Some("Apply")
            && m.fields_v1
                .as_ref()
                .is_some_and(|f| f.0["f:spec"].get("f:replicas").is_some())
    });
    owned_by_operator_apply.then(|| existing.spec.replicas.unwrap_or(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rm(generation_observed: bool, replicas: i32, ready: i32, updated: i32) -> DeploymentObs {
        DeploymentObs {
            name: "chat-replication-manager".into(),
            replicas,
            ready,
            updated,
            available: ready,
            generation_observed,
            stalled: false,
        }
    }

    #[test]
    fn replicas_are_handed_over_only_while_the_operators_apply_owns_them() {
        let deployment = |manager: &str, operation: &str, fields: serde_json::Value| {
            serde_json::from_value::<k8s_openapi::api::apps::v1::Deployment>(serde_json::json!({
                "metadata": {"name": "chat-view-syncer", "managedFields": [{
                    "manager": manager, "operation": operation, "apiVersion": "apps/v1",
                    "fieldsType": "FieldsV1", "fieldsV1": fields,
                }]},
                "spec": {"replicas": 3, "selector": {}, "template": {}},
            }))
            .unwrap()
        };
        let with_replicas = serde_json::json!({"f:spec": {"f:replicas": {}, "f:template": {}}});
        let without = serde_json::json!({"f:spec": {"f:template": {}}});
        assert_eq!(
            replicas_to_hand_over(&deployment(
                "zerostack-operator",
                "Apply",
                with_replicas.clone()
            )),
            Some(3)
        );
        // Already handed over: the operator's apply no longer has it.
        assert_eq!(
            replicas_to_hand_over(&deployment("zerostack-operator", "Apply", without)),
            None
        );
        // The autoscaler's (an Update of the scale subresource) is not ours to hand over.
        assert_eq!(
            replicas_to_hand_over(&deployment(
                "kube-controller-manager",
                "Update",
                with_replicas
            )),
            None
        );
    }

    #[test]
    fn view_syncers_wait_for_the_replication_manager_on_the_new_spec() {
        // No replication-manager yet: nothing to follow.
        assert!(!view_syncers_may_roll(None));
        // Its controller has not seen the new spec: the ready pod is the old one.
        assert!(!view_syncers_may_roll(Some(&rm(false, 1, 1, 1))));
        // New spec seen, its pod not ready yet (initial sync or restore under way).
        assert!(!view_syncers_may_roll(Some(&rm(true, 1, 0, 1))));
        // The ready pod still runs the old template (Recreate has not replaced it yet).
        assert!(!view_syncers_may_roll(Some(&rm(true, 1, 1, 0))));
        // Ready on the new spec.
        assert!(view_syncers_may_roll(Some(&rm(true, 1, 1, 1))));
        // Stopped (cache.replicas 0): nothing to wait for; the view-syncers stop too.
        assert!(view_syncers_may_roll(Some(&rm(true, 0, 0, 0))));
    }
}
