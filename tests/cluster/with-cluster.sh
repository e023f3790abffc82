#!/usr/bin/env bash
# Runs a command with a real Kubernetes cluster to test against, then takes down what it started.
#
#   tests/cluster/with-cluster.sh [--kit|--kubeconfig|--kind|--none] COMMAND [ARGS...]
#
# Which cluster (the first that applies, or the one the flag names):
#   kit         the cluster kit beside the checkout (../shared/k8s, or ZEROSTACK_K8S_KIT): its
#               run-time packages are installed, its binaries unpacked into .cache/k8s-bin, a
#               single-node cluster is started with its state in a temp folder (or an already
#               running kit cluster is reused when K8S_STATE names it), our images are built
#               without Docker (tests/cluster/build-images.sh) and imported into the node. Needs
#               root. What was started here is stopped by its pid files at the end, whatever
#               happens.
#   kubeconfig  the cluster the user's kubeconfig names (KUBECONFIG or ~/.kube/config), when it
#               answers. Our images must be pullable from it: set ZEROSTACK_E2E_IMAGES=kind
#               after loading them, or the end-to-end test is skipped with one printed line.
#   kind        a kind cluster `zerostack-e2e` (Docker and kind installed): our images are built
#               from the Dockerfiles and loaded with `kind load`; zero-cache and the dev
#               databases use their official images.
#   none        no cluster: one line says so and the command runs; the cluster tests print one
#               line each and skip.
#
# The command sees KUBECONFIG, ZEROSTACK_K8S_BIN (kubectl, helm), ZEROSTACK_CLUSTER_TESTS=1 (a
# cluster test then fails instead of skipping) and ZEROSTACK_E2E_IMAGES (local|kind: which image
# names the end-to-end test uses). KEEP_CLUSTER=1 leaves a started cluster running;
# ZEROSTACK_REQUIRE_CLUSTER=1 (CI) makes "no cluster" an error instead of a skip.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
# The kit sits beside the checkout (../shared/k8s), or beside the folder holding it.
KIT="${ZEROSTACK_K8S_KIT:-}"
if [ -z "$KIT" ]; then
    for k in "$REPO/../shared/k8s" "$REPO/../../shared/k8s"; do
        [ -x "$k/k8s-node" ] && { KIT="$(cd "$k" && pwd)"; break; }
    done
    KIT="${KIT:-$REPO/../shared/k8s}"
fi
PROFILE="${ZEROSTACK_PROFILE:-debug}"

log() { printf '[cluster] %s\n' "$*" >&2; }

mode=""
case "${1:-}" in
    --kit | --kubeconfig | --kind | --none) mode="${1#--}"; shift ;;
esac
[ $# -gt 0 ] || { echo "usage: $0 [--kit|--kubeconfig|--kind|--none] COMMAND [ARGS...]" >&2; exit 2; }

kubeconfig_answers() {
    local kc="${KUBECONFIG:-$HOME/.kube/config}"
    [ -f "$kc" ] && command -v kubectl >/dev/null && kubectl --request-timeout=5s get --raw /readyz >/dev/null 2>&1
}

if [ -z "$mode" ]; then
    if [ -x "$KIT/k8s-node" ] && [ "$(id -u)" = 0 ]; then
        mode=kit
    elif kubeconfig_answers; then
        mode=kubeconfig
    elif command -v kind >/dev/null && docker info >/dev/null 2>&1; then
        mode=kind
    else
        mode=none
    fi
fi

started=""
cleanup() {
    local rc=$?
    if [ -n "$started" ] && [ "${KEEP_CLUSTER:-}" != 1 ]; then
        local t0; t0=$(date +%s)
        case "$started" in
            kit) "$KIT/k8s-node" down >/dev/null 2>&1 || log "k8s-node down failed (state in $K8S_STATE)"
                 rm -rf "$K8S_STATE" ;;
            kind) kind delete cluster --name zerostack-e2e >/dev/null 2>&1 || true ;;
        esac
        log "$started cluster stopped in $(( $(date +%s) - t0 )) s"
    elif [ -n "$started" ]; then
        log "KEEP_CLUSTER=1: the cluster keeps running; KUBECONFIG=$KUBECONFIG"
    fi
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

t0=$(date +%s)
case "$mode" in
    kit)
        export K8S_BIN="$REPO/.cache/k8s-bin"
        "$KIT/install.sh" >&2
        export PATH="$K8S_BIN:$PATH"
        if [ -n "${K8S_STATE:-}" ] && [ -f "$K8S_STATE/admin.kubeconfig" ] \
            && kubectl --kubeconfig "$K8S_STATE/admin.kubeconfig" --request-timeout=5s get --raw /readyz >/dev/null 2>&1; then
            log "reusing the kit cluster in $K8S_STATE"
            export KUBECONFIG="$K8S_STATE/admin.kubeconfig"
        else
            export K8S_STATE; K8S_STATE="$(mktemp -d "${TMPDIR:-/tmp}/zerostack-k8s.XXXXXX")"
            started=kit
            log "starting a single-node cluster (state in $K8S_STATE)"
            eval "$("$KIT/k8s-node" up)"
        fi
        images="$REPO/.cache/images"
        "$REPO/tests/cluster/build-images.sh" --profile "$PROFILE" --out "$images" --kit "$KIT" >&2
        "$KIT/k8s-node" load "$images"/*.tar >/dev/null
        export ZEROSTACK_K8S_BIN="$K8S_BIN" ZEROSTACK_E2E_IMAGES=local
        ;;
    kubeconfig)
        log "using the cluster of ${KUBECONFIG:-~/.kube/config}: $(kubectl config current-context 2>/dev/null || echo '?')"
        export KUBECONFIG="${KUBECONFIG:-$HOME/.kube/config}"
        ;;
    kind)
        started=kind
        kind get clusters 2>/dev/null | grep -qx zerostack-e2e || kind create cluster --name zerostack-e2e --wait 120s >&2
        export KUBECONFIG; KUBECONFIG="$(mktemp)"
        kind get kubeconfig --name zerostack-e2e >"$KUBECONFIG"
        for c in operator source-server app; do
            img="zerostack/$c:e2e"; [ "$c" = app ] && img=zerostack/zrocket:e2e
            docker build -q -f "$REPO/$c/Dockerfile" -t "$img" "$REPO" >&2
            kind load docker-image --name zerostack-e2e "$img" >&2
        done
        export ZEROSTACK_E2E_IMAGES=kind
        ;;
    none)
        if [ "${ZEROSTACK_REQUIRE_CLUSTER:-}" = 1 ]; then
            echo "[cluster] ZEROSTACK_REQUIRE_CLUSTER=1 but there is no cluster: no cluster kit at $KIT (or not root), no kubeconfig that answers, no kind" >&2
            exit 1
        fi
        echo "[cluster] no cluster (no cluster kit at $KIT, no kubeconfig that answers, no kind): the cluster tests are skipped" >&2
        exec "$@"
        ;;
    *) echo "unknown cluster mode $mode" >&2; exit 2 ;;
esac
export ZEROSTACK_CLUSTER_TESTS=1
log "$mode cluster ready in $(( $(date +%s) - t0 )) s"
"$@"
