//! The Kubernetes cluster the cluster tests run against, and its command-line tools.
//!
//! `tests/cluster/with-cluster.sh` (what `tests/run.sh` and CI use) starts a real cluster from
//! the cluster kit, or uses the one the user's kubeconfig names, or kind, and exports
//! `KUBECONFIG`, `ZEROSTACK_K8S_BIN` (where `kubectl` and `helm` are) and
//! `ZEROSTACK_CLUSTER_TESTS=1`. A test asks [`Cluster::get`] first: with
//! `ZEROSTACK_CLUSTER_TESTS=1` a missing cluster is a failure (CI must never skip silently);
//! without it, a test runs when a kubeconfig exists and is skipped with one printed line
//! otherwise (a laptop with no cluster).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

/// The environment variable that makes a missing cluster an error.
pub const REQUIRED: &str = "ZEROSTACK_CLUSTER_TESTS";
/// Where `kubectl` and `helm` are, when not on `PATH`.
pub const BIN_DIR: &str = "ZEROSTACK_K8S_BIN";

/// A reachable cluster and the tools to talk to it.
#[derive(Clone, Debug)]
pub struct Cluster {
    /// The kubeconfig in use (`KUBECONFIG` or `~/.kube/config`).
    pub kubeconfig: PathBuf,
    bin_dir: Option<PathBuf>,
}

impl Cluster {
    /// The cluster to test against, or `None` after printing why the test is skipped.
    /// Panics when `ZEROSTACK_CLUSTER_TESTS=1` and there is none.
    pub fn get(test: &str) -> Option<Cluster> {
        let required = std::env::var(REQUIRED).is_ok_and(|v| v == "1");
        match Self::find() {
            Ok(c) => Some(c),
            Err(e) if required => panic!("{test}: {REQUIRED}=1 but no cluster: {e:#}"),
            Err(e) => {
                println!(
                    "{test}: skipped: {e:#} (tests/run.sh starts a cluster; or set KUBECONFIG)"
                );
                None
            }
        }
    }

    fn find() -> anyhow::Result<Cluster> {
        let kubeconfig = match std::env::var_os("KUBECONFIG") {
            Some(k) if !k.is_empty() => PathBuf::from(k),
            _ => std::env::var_os("HOME")
                .map(|h| Path::new(&h).join(".kube/config"))
                .filter(|p| p.exists())
                .context("no kubeconfig (KUBECONFIG unset and no ~/.kube/config)")?,
        };
        if !kubeconfig.exists() {
            bail!("the kubeconfig {} does not exist", kubeconfig.display());
        }
        let bin_dir = std::env::var_os(BIN_DIR).map(PathBuf::from);
        Ok(Cluster {
            kubeconfig,
            bin_dir,
        })
    }

    fn tool(&self, name: &str) -> Command {
        let program = self
            .bin_dir
            .as_ref()
            .map(|d| d.join(name))
            .filter(|p| p.exists())
            .unwrap_or_else(|| PathBuf::from(name));
        let mut cmd = Command::new(program);
        cmd.env("KUBECONFIG", &self.kubeconfig);
        cmd
    }

    /// `kubectl` for this cluster.
    pub fn kubectl(&self) -> Command {
        self.tool("kubectl")
    }

    /// `helm` for this cluster.
    pub fn helm(&self) -> Command {
        self.tool("helm")
    }
}

pub use crate::process::run;
