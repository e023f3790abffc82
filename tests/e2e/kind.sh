#!/usr/bin/env bash
# The cluster end-to-end test on kind, for machines with Docker: the same scenario the local
# cluster runs in every CI run (tests/e2e/tests/stack_in_cluster.rs) and the operator's cluster
# suite, against a kind cluster `zerostack-e2e` with our images built from the Dockerfiles
# (tests/cluster/with-cluster.sh --kind). zero-cache and the dev databases run their official
# images there.
#
# Needs: docker, kind, kubectl, helm, node + npm, cargo, and Chromium (tests/install.sh installs
# the last ones). KEEP_CLUSTER=1 keeps the cluster afterwards.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
tests/install.sh node
tests/install.sh chromium
tests/install.sh web
cargo build --workspace --bins
exec tests/cluster/with-cluster.sh --kind \
    cargo nextest run -p zerostack-e2e -p zerostack-operator --test cluster --test helm_chart \
    --test stack_in_cluster --no-fail-fast "$@"
