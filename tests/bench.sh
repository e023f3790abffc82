#!/usr/bin/env bash
# ZeroStack benchmarks (on demand; not run by CI). Installs what is missing, builds the release
# binaries, then runs the `bench` binary (tests/bench), which starts MongoDB, PostgreSQL
# (wal_level=logical), zero-cache 1.9.0 and source-server on 127.0.0.1 and free ports, measures
# each figure beside its ceiling in the same run, and prints and saves one table to
# tests/artifacts/bench-<UTC time>.md and .json. All state lives in a temp dir.
#   tests/bench.sh              full run (about 10 minutes on 2 cores)
#   tests/bench.sh --curves     also the scaling curves and their SVG plots (about 15-20 minutes;
#                               with --rounds 5, as in the README, about 20)
#   tests/bench.sh --quick      smoke run (about 2 minutes)
#   tests/bench.sh --help       sizes, rates and other flags
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
# Help needs nothing installed or built: the binary's own help, kept identical by a unit test.
for arg in "$@"; do
    case "$arg" in
        -h | --help) cat "$REPO/tests/bench/help.txt"; exit 0 ;;
        --) break ;;
    esac
done
"$REPO/tests/install.sh" all
echo "[bench] cargo build --release -p source-server -p zerostack-bench --bins"
cargo build --release -p source-server -p zerostack-bench --bins
BENCH_COMMAND="tests/bench.sh" exec "$REPO/target/release/bench" "$@"
