#!/usr/bin/env bash
# Runs every test of the repository against real services, installing what is missing first.
# This is the README's test command and what CI (.ci/run) calls.
#
# The tests run with a real Kubernetes cluster (tests/cluster/with-cluster.sh): the cluster kit
# beside the checkout when there is one, else the cluster your kubeconfig names, else kind; with
# none of them the cluster tests print one line each and are skipped.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

tests/install.sh all

echo "[tests] cargo fmt --check"
cargo fmt --all -- --check

echo "[tests] building binaries used by end-to-end tests"
cargo build --workspace --bins

echo "[tests] cargo nextest run --workspace"
tests/cluster/with-cluster.sh cargo nextest run --workspace --no-fail-fast "$@"
