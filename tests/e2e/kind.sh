#!/usr/bin/env bash
# End-to-end test on kind: builds the three images, installs the operator with Helm, applies the
# dev databases and the example ZeroStack, waits for Ready, and checks that a document written
# to MongoDB reaches a real Zero client through zero-cache in the cluster: ZRocket publishes
# `null` permissions, so the client logs in like the browser and reads the named query
# `rooms.publicChannels`, which zero-cache resolves through the app's query endpoint. Then it
# runs the operator's cluster test suite against the same cluster.
#
# Needs: docker, kind, kubectl, helm, node + npm (for tests/node), cargo.
# Env: CLUSTER (default zerostack-e2e), KEEP_CLUSTER=1 to keep it, SKIP_BUILD=1 to reuse images.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
CLUSTER="${CLUSTER:-zerostack-e2e}"
TAG="e2e"
NS=zerostack-demo
# Background processes (port-forwards, the Zero client), stopped by PID on exit.
BG_PIDS=""

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
  for pid in $BG_PIDS; do kill "$pid" 2>/dev/null || true; done
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
BG_PIDS="$BG_PIDS $!"
kubectl -n "$NS" port-forward svc/zrocket-app 18011:8011 >/dev/null 2>&1 &
BG_PIDS="$BG_PIDS $!"
APP=http://127.0.0.1:18011
for _ in $(seq 1 30); do
  curl -fsS http://127.0.0.1:14848/ >/dev/null 2>&1 && curl -fsS "$APP/health" >/dev/null 2>&1 && break
  sleep 1
done
# Logging in needs the seeded users and POST /api/seed needs a login, so the first seed runs
# inside the app's pod (same image, same MONGODB_URI from the container's env).
kubectl -n "$NS" exec deploy/zrocket-app -- /usr/local/bin/zrocket seed
# Prints the string at a dotted path of the JSON on stdin (node is needed anyway; jq may not be).
json_field() { node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{let v=JSON.parse(s);for(const k of process.argv[1].split("."))v=v?.[k];if(typeof v!=="string"){console.error("no string at "+process.argv[1]+" in the answer");process.exit(1)}process.stdout.write(v)})' "$1"; }
LOGIN="$(curl -fsS -X POST -H 'Content-Type: application/json' -d '{"username":"alice"}' "$APP/api/auth/login")"
TOKEN="$(json_field token <<<"$LOGIN")"
USER_ID="$(json_field user._id <<<"$LOGIN")"
# The REST seed with the token: idempotent, and checks the app takes its own Bearer tokens.
curl -fsS -X POST -H "Authorization: Bearer $TOKEN" "$APP/api/seed" >/dev/null
SCHEMA_FILE="$(mktemp)"
kubectl -n "$NS" get configmap zrocket-schema -o jsonpath='{.data.schema\.json}' >"$SCHEMA_FILE"
MARK="e2e-$(date +%s)-$RANDOM"
CLIENT_OUT="$(mktemp)"
node "$ROOT/tests/node/zero-client.mjs" --url http://127.0.0.1:14848 --schema "$SCHEMA_FILE" \
  --table channels --query rooms.publicChannels --args '{}' --auth "$TOKEN" --user-id "$USER_ID" \
  --until-json "{\"name\":\"$MARK\"}" --timeout-ms 120000 >"$CLIENT_OUT" &
CLIENT_PID=$!
BG_PIDS="$BG_PIDS $CLIENT_PID"
# Write only once the query is live (the app answered it and the seeded channels synced), so the
# channel arrives as a change, not in the initial result.
for _ in $(seq 1 60); do
  grep -q '"resultType":"complete"' "$CLIENT_OUT" && break
  kill -0 "$CLIENT_PID" 2>/dev/null || break
  sleep 1
done
grep -q '"resultType":"complete"' "$CLIENT_OUT" || { cat "$CLIENT_OUT"; echo "the Zero client got no complete result" >&2; exit 1; }
kubectl -n "$NS" exec mongodb-0 -- mongosh --quiet zrocket --eval "db.rooms.insertOne({
  _id: '$MARK', t: 'c', name: '$MARK', readOnly: false, archived: false,
  memberIds: ['u-alice'], usernames: ['alice'], messageCount: NumberLong(0), createdBy: 'u-alice',
  createdAt: new Date(), updatedAt: new Date()}).acknowledged"
if ! wait "$CLIENT_PID"; then
  tail -c 4000 "$CLIENT_OUT"
  echo "the Zero client did not see $MARK" >&2
  exit 1
fi
log "the Zero client saw $MARK"

log "operator cluster suite"
(cd "$ROOT" && ZEROSTACK_CLUSTER_TESTS=1 cargo test -p zerostack-operator --test cluster -- --nocapture)

log "e2e passed"
