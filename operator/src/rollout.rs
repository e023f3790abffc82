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
