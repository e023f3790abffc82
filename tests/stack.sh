#!/usr/bin/env bash
# Starts the whole ZeroStack locally: MongoDB, PostgreSQL, source-server, zero-cache and the
# ZRocket app, each as a process on 127.0.0.1. Installs what is missing first, builds the
# workspace binaries, then runs the harness's `stack` binary, which prints what runs where and
# stops everything on Ctrl-C.
#   STACK_DIR=dir   keep the state (data, logs, secrets) there instead of a temp dir
#   SOURCE_PORT / ZERO_PORT / APP_PORT   preferred ports (8001 / 4848 / 8011)
#   --view-syncers N / VIEW_SYNCERS=N   a replication-manager (Litestream backup in the state
#                   dir) and N view-syncers instead of one zero-cache; the first on ZERO_PORT
# The app's dev login is turned on (DEV_LOGIN=true), and the script says so.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
"$REPO/tests/install.sh" all
echo "[stack] cargo build --bins"
cargo build --bins
# A local demo: the password-less dev login is on (never in a deployment; see README).
export DEV_LOGIN=true
echo "[stack] DEV_LOGIN=true: the dev login is ON (sign in as any user without a password)"
exec "$REPO/target/debug/stack" "$@"
