#!/usr/bin/env bash
# Runs every test of the repository against real services, installing what is missing first.
# This is the README's test command and what CI (.ci/run) calls.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

tests/install.sh all

echo "[tests] cargo fmt --check"
cargo fmt --all -- --check

echo "[tests] building binaries used by end-to-end tests"
cargo build --workspace --bins

echo "[tests] cargo nextest run --workspace"
cargo nextest run --workspace --no-fail-fast "$@"
