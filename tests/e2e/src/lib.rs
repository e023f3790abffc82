//! What the end-to-end test (`tests/stack_in_cluster.rs`) needs to run the whole stack in a real
//! cluster the way a user does: which images to run ([`images`]), the README's manifests
//! rewritten to use them ([`manifests`]), and local ports into the cluster ([`port_forward`]).

pub mod images;
pub mod manifests;
pub mod port_forward;
