#!/usr/bin/env bash
# End-to-end test on kind: builds the three images, installs the operator with Helm, applies the
# dev databases and the example ZeroStack, waits for Ready, and checks that a document written
# to MongoDB reaches a real Zero client through zero-cache in the cluster. Then it runs the
# operator's cluster test suite against the same cluster.
#
# Needs: docker, kind, kubectl, helm, node + npm (for tests/node), cargo.
# Env: CLUSTER (default zerostack-e2e), KEEP_CLUSTER=1 to keep it, SKIP_BUILD=1 to reuse images.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
CLUSTER="${CLUSTER:-zerostack-e2e}"
TAG="e2e"
NS=zerostack-demo
PF_PID=""

log() { printf '\n==> %s\n' "$*"; }

dump() {
  log "diagnostics"
  kubectl get zerostacks,deploy,pods,svc,pvc -A -o wide || true
  kubectl -n "$NS" describe zerostack zrocket || true
  kubectl -n zerostack-system logs deploy/zerostack-operator --tail=200 || true
  for d in zrocket-source zrocket-cache zrocket-app; do
    kubectl -n "$NS" logs "deploy/$d" --tail=100 || true
  done
  kubectl get events -A --sort-by=.lastTimestamp | tail -50 || true
}

cleanup() {
  local rc=$?
  [[ -n "$PF_PID" ]] && kill "$PF_PID" 2>/dev/null || true
  [[ $rc -ne 0 ]] && dump
  if [[ "${KEEP_CLUSTER:-}" != 1 ]]; then kind delete cluster --name "$CLUSTER" || true; fi
  exit $rc
}
trap cleanup EXIT

log "kind cluster $CLUSTER"
kind get clusters | grep -qx "$CLUSTER" || kind create cluster --name "$CLUSTER" --wait 120s
kubectl config use-context "kind-$CLUSTER"

if [[ "${SKIP_BUILD:-}" != 1 ]]; then
  log "building images"
  docker build -f "$ROOT/operator/Dockerfile" -t "zerostack/operator:$TAG" "$ROOT"
  docker build -f "$ROOT/source-server/Dockerfile" -t "zerostack/source-server:$TAG" "$ROOT"
  docker build -f "$ROOT/app/Dockerfile" -t "zerostack/zrocket:$TAG" "$ROOT"
fi
for img in operator source-server zrocket; do
  kind load docker-image --name "$CLUSTER" "zerostack/$img:$TAG"
done

log "helm install the operator"
helm upgrade --install zerostack-operator "$ROOT/charts/zerostack-operator" \
  --namespace zerostack-system --create-namespace \
  --set image.repository=zerostack/operator --set image.tag="$TAG" --set image.pullPolicy=Never \
  --wait --timeout 3m
kubectl wait --for=condition=Established crd/zerostacks.zerostack.dev --timeout=60s

log "dev databases"
kubectl apply -f "$ROOT/manifests/dev-databases.yaml"
kubectl -n "$NS" rollout status statefulset/mongodb --timeout=5m
kubectl -n "$NS" wait --for=condition=complete job/mongodb-rs-init --timeout=5m
kubectl -n "$NS" rollout status deploy/postgres --timeout=5m

log "ZeroStack"
# The example, with the locally built images.
sed -e "s|^  source:|  source:\n    image: zerostack/source-server:$TAG\n    imagePullPolicy: Never|" \
    -e "s|^  app:|  app:\n    image: zerostack/zrocket:$TAG\n    imagePullPolicy: Never|" \
    "$ROOT/manifests/zerostack.yaml" | kubectl apply --server-side -f -
kubectl -n "$NS" wait zerostack/zrocket --for=condition=SchemaValid --timeout=2m
kubectl -n "$NS" wait zerostack/zrocket --for=condition=Ready --timeout=10m
kubectl -n "$NS" get zerostack zrocket -o wide

log "a MongoDB write reaches a Zero client"
(cd "$ROOT/tests/node" && npm ci --no-audit --no-fund >/dev/null)
kubectl -n "$NS" port-forward svc/zrocket-cache 14848:4848 >/dev/null 2>&1 &
PF_PID=$!
for _ in $(seq 1 30); do curl -fsS http://127.0.0.1:14848/ >/dev/null 2>&1 && break; sleep 1; done
SCHEMA_FILE="$(mktemp)"
kubectl -n "$NS" get configmap zrocket-schema -o jsonpath='{.data.schema\.json}' >"$SCHEMA_FILE"
MARK="e2e-$(date +%s)-$RANDOM"
node "$ROOT/tests/node/zero-client.mjs" --url http://127.0.0.1:14848 --schema "$SCHEMA_FILE" \
  --table channels --until-json "{\"name\":\"$MARK\"}" --timeout-ms 60000 &
CLIENT_PID=$!
sleep 5
kubectl -n "$NS" exec mongodb-0 -- mongosh --quiet zrocket \
  --eval "db.rooms.insertOne({_id: '$MARK', t: 'c', name: '$MARK'}).acknowledged"
wait "$CLIENT_PID"
log "the Zero client saw $MARK"

log "operator cluster suite"
(cd "$ROOT" && ZEROSTACK_CLUSTER_TESTS=1 cargo test -p zerostack-operator --test cluster -- --nocapture)

log "e2e passed"
