#!/usr/bin/env bash
# Checks the images of build-images.sh in a real cluster, the way the operator and
# manifests/dev-databases.yaml run them:
#   - operator, source-server, zrocket, zero-cache: one pod each with the security context the
#     operator renders (its uid, runAsNonRoot, readOnlyRootFilesystem, no privilege escalation,
#     capabilities dropped, RuntimeDefault seccomp, an emptyDir on /tmp) and imagePullPolicy
#     Never: `operator --help`, `source-server --help` and `check` with the fixtures,
#     `zrocket export --out /tmp/x`, the native SQLite module loading in zero-cache's Node,
#     and zero-cache starting against a nonsense upstream (it logs its start and fails to
#     connect, rather than dying on a missing library or module);
#   - dev-mongo and dev-postgres: a copy of manifests/dev-databases.yaml in which only the
#     images (with imagePullPolicy: Never) and the namespace differ: MongoDB Ready, the rs-init
#     Job complete and rs.status() ok, PostgreSQL Ready with zero_cvr and zero_cdc; then a pod
#     with the dev-mongo image's mongosh writes a document and reads it from a change stream.
# Namespaces are img-test-<random> and are deleted at the end (also on failure).
#
# Usage: tests/cluster/check-images.sh [--out DIR] [--kit DIR] [--no-load] [--keep]
#   --out      where build-images.sh put the archives (default .cache/images)
#   --kit      the Kubernetes test kit (default ../shared/k8s beside the repo), for `k8s-node load`
#   --no-load  the images are already in the node (skip `k8s-node load`)
#   --keep     keep the namespaces (to look around; delete them yourself)
# Needs: KUBECONFIG for the cluster and kubectl on PATH; loading needs root and the K8S_STATE
# (and K8S_BIN) the cluster was started with, as `k8s-node load` does.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
OUT="$REPO/.cache/images"
KIT="$REPO/../shared/k8s"
LOAD=1
KEEP=0
while [ $# -gt 0 ]; do
    case "$1" in
        --out) OUT="$2"; shift 2 ;;
        --kit) KIT="$2"; shift 2 ;;
        --no-load) LOAD=0; shift ;;
        --keep) KEEP=1; shift ;;
        *) sed -n 's/^# \{0,1\}//; /^Usage:/,/^Needs/p' "${BASH_SOURCE[0]}" >&2; exit 2 ;;
    esac
done

suffix="$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')"
NS="img-test-$suffix"
NS_DB="img-test-db-$suffix"
failed=0

log() { printf '\n==> %s\n' "$*"; }
ok() { printf '    ok: %s\n' "$*"; }
fail() {
    printf '    FAILED: %s\n' "$*" >&2
    failed=1
}

# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
    local rc=$?
    if [ "$KEEP" = 1 ]; then
        log "keeping namespaces $NS $NS_DB"
    else
        log "deleting namespaces $NS $NS_DB"
        kubectl delete namespace "$NS" "$NS_DB" --ignore-not-found --wait=true --timeout=180s >/dev/null || true
    fi
    exit "$rc"
}
trap cleanup EXIT

if [ "$LOAD" = 1 ]; then
    log "loading the archives of $OUT"
    for img in operator source-server zrocket zero-cache dev-mongo dev-postgres; do
        [ -f "$OUT/$img.tar" ] || { echo "check-images: $OUT/$img.tar is missing: run tests/cluster/build-images.sh" >&2; exit 1; }
    done
    "$KIT/k8s-node" load "$OUT"/{operator,source-server,zrocket,zero-cache,dev-mongo,dev-postgres}.tar | grep -v '^unpacking' || true
fi

kubectl create namespace "$NS" >/dev/null
# The fixtures source-server checks, mounted read-only as the operator mounts its ConfigMap.
kubectl -n "$NS" create configmap fixtures --from-file="$REPO/source-server/tests/fixtures" >/dev/null

# pod NAME IMAGE UID ARGS-JSON [ENV-JSON]: a pod as the operator renders its containers.
pod() {
    local name="$1" image="$2" uid="$3" args="$4" env="${5:-[]}"
    kubectl apply -f - >/dev/null <<EOF
apiVersion: v1
kind: Pod
metadata: {name: $name, namespace: $NS}
spec:
  restartPolicy: Never
  securityContext:
    runAsNonRoot: true
    runAsUser: $uid
    runAsGroup: $uid
    fsGroup: $uid
    seccompProfile: {type: RuntimeDefault}
  containers:
    - name: main
      image: $image
      imagePullPolicy: Never
      args: $args
      env: $env
      securityContext:
        allowPrivilegeEscalation: false
        readOnlyRootFilesystem: true
        runAsNonRoot: true
        privileged: false
        capabilities: {drop: [ALL]}
        seccompProfile: {type: RuntimeDefault}
      volumeMounts:
        - {name: tmp, mountPath: /tmp}
        - {name: fixtures, mountPath: /etc/zerostack/config, readOnly: true}
  volumes:
    - {name: tmp, emptyDir: {}}
    - {name: fixtures, configMap: {name: fixtures}}
EOF
}

# finished NAME: waits for the pod to end; true if it succeeded. Prints its log either way.
finished() {
    local name="$1" phase=""
    for _ in $(seq 1 90); do
        phase="$(kubectl -n "$NS" get pod "$name" -o jsonpath='{.status.phase}')"
        case "$phase" in Succeeded | Failed) break ;; esac
        sleep 1
    done
    kubectl -n "$NS" logs "$name" 2>&1 | sed 's/^/    | /' | head -n 8
    if [ "$phase" != Succeeded ]; then
        kubectl -n "$NS" describe pod "$name" | sed -n '/^Events:/,$p' | sed 's/^/    | /' | tail -n 15
        return 1
    fi
}

# logs_match NAME REGEX SECONDS: waits until the pod's log matches.
logs_match() {
    local name="$1" re="$2" secs="$3"
    for _ in $(seq 1 "$secs"); do
        kubectl -n "$NS" logs "$name" 2>/dev/null | grep -Eq "$re" && return 0
        sleep 1
    done
    return 1
}

log "our images (uid 65532, read-only root, no capabilities)"
pod operator-help zerostack/operator:e2e 65532 '["--help"]'
pod source-server-help zerostack/source-server:e2e 65532 '["--help"]'
pod source-server-check zerostack/source-server:e2e 65532 \
    '["check", "--schema-file", "/etc/zerostack/config/schema.json", "--table-mappings-file", "/etc/zerostack/config/table-mappings.json", "--permissions-file", "/etc/zerostack/config/permissions.json"]' \
    '[{"name": "MONGODB_URI", "value": "mongodb://mongodb.invalid:27017/zrocket?replicaSet=rs0"}, {"name": "SOURCE_TOKEN", "value": "t"}]'
pod zrocket-export zerostack/zrocket:e2e 65532 '["export", "--out", "/tmp/x"]'
if finished operator-help && kubectl -n "$NS" logs operator-help | grep -q 'Reconciles ZeroStack'; then ok "operator --help"; else fail "operator --help"; fi
if finished source-server-help && kubectl -n "$NS" logs source-server-help | grep -q 'change-source protocol'; then ok "source-server --help"; else fail "source-server --help"; fi
if finished source-server-check && kubectl -n "$NS" logs source-server-check | grep -q '^ok: '; then ok "source-server check"; else fail "source-server check"; fi
if finished zrocket-export && [ "$(kubectl -n "$NS" logs zrocket-export | grep -c '^wrote /tmp/x/')" = 3 ]; then ok "zrocket export --out /tmp/x"; else fail "zrocket export"; fi

log "zero-cache (uid 1000, HOME=/tmp, read-only root)"
# native IMAGE UID NODE_MODULES...: every native module of the image loads in its Node (see
# native-modules.cjs), with the same security context.
native() {
    local image="$1" uid="$2" name dirs
    name="native-${image#zerostack/}"
    name="${name%%:*}"
    shift 2
    dirs="$(printf '"%s", ' "$@")"
    kubectl apply -f - >/dev/null <<EOF
apiVersion: v1
kind: Pod
metadata: {name: $name, namespace: $NS}
spec:
  restartPolicy: Never
  securityContext: {runAsNonRoot: true, runAsUser: $uid, runAsGroup: $uid, fsGroup: $uid, seccompProfile: {type: RuntimeDefault}}
  containers:
    - name: main
      image: $image
      imagePullPolicy: Never
      command: [/usr/local/bin/node, /check/native-modules.cjs, ${dirs%, }]
      env: [{name: HOME, value: /tmp}]
      securityContext: {allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, runAsNonRoot: true, privileged: false, capabilities: {drop: [ALL]}, seccompProfile: {type: RuntimeDefault}}
      volumeMounts: [{name: tmp, mountPath: /tmp}, {name: check, mountPath: /check, readOnly: true}]
  volumes: [{name: tmp, emptyDir: {}}, {name: check, configMap: {name: check}}]
EOF
    finished "$name"
}
kubectl -n "$NS" create configmap check --from-file="$REPO/tests/cluster/native-modules.cjs" >/dev/null
if native zerostack/zero-cache:1.9.0 1000 /opt/app/node_modules &&
    kubectl -n "$NS" logs native-zero-cache | grep -q '^node v22\..* sqlite 3\.'; then
    ok "zero-cache image: every native module loads in Node 22, zero-sqlite3 works"
else
    fail "zero-cache image: native modules"
fi
if native zerostack/dev-mongo:6.0.5 999 /opt/mongosh/node_modules; then
    ok "dev-mongo image: every native module of mongosh loads"
else
    fail "dev-mongo image: native modules"
fi
# As the operator runs it (env of operator/src/render/cache.rs), with an upstream that is not there.
pod zero-cache-start zerostack/zero-cache:1.9.0 1000 '[]' '[
  {"name": "ZERO_UPSTREAM_DB", "value": "postgresql://nobody:nothing@127.0.0.1:1/none"},
  {"name": "ZERO_REPLICA_FILE", "value": "/tmp/replica.db"},
  {"name": "ZERO_ADMIN_PASSWORD", "value": "check-only"},
  {"name": "ZERO_PORT", "value": "4848"},
  {"name": "ZERO_LOG_FORMAT", "value": "json"},
  {"name": "ZERO_ENABLE_TELEMETRY", "value": "false"},
  {"name": "DO_NOT_TRACK", "value": "1"},
  {"name": "ZERO_STORAGE_DB_TMP_DIR", "value": "/tmp"},
  {"name": "HOME", "value": "/tmp"}]'
if logs_match zero-cache-start 'Unable to connect to Postgres|ECONNREFUSED' 90; then
    kubectl -n "$NS" logs zero-cache-start | grep -E 'starting server@|Unable to connect' | cut -c1-220 | sed 's/^/    | /' | head -n 4
    if kubectl -n "$NS" logs zero-cache-start | grep -Eq 'Cannot find module|ERR_DLOPEN_FAILED|cannot open shared object|EROFS'; then
        fail "zero-cache: a module, a library or a writable path is missing"
    else
        ok "zero-cache 1.9.0 starts and fails to connect to the nonsense upstream"
    fi
else
    kubectl -n "$NS" logs zero-cache-start 2>&1 | tail -n 20 | sed 's/^/    | /'
    fail "zero-cache did not get as far as connecting"
fi

log "dev databases: manifests/dev-databases.yaml with only the images and the namespace replaced"
sed -e "s/zerostack-demo/$NS_DB/g" \
    -e 's|^\( *\)image: mongo:8\.0\.4$|\1image: zerostack/dev-mongo:6.0.5\n\1imagePullPolicy: Never|' \
    -e 's|^\( *\)image: postgres:16\.6-alpine$|\1image: zerostack/dev-postgres:15\n\1imagePullPolicy: Never|' \
    "$REPO/manifests/dev-databases.yaml" >"/tmp/$NS_DB.yaml"
if [ "$(grep -c 'imagePullPolicy: Never' "/tmp/$NS_DB.yaml")" != 3 ]; then
    echo "check-images: manifests/dev-databases.yaml no longer has the images this script replaces" >&2
    rm -f "/tmp/$NS_DB.yaml"
    exit 1
fi
kubectl apply -f "/tmp/$NS_DB.yaml" >/dev/null
rm -f "/tmp/$NS_DB.yaml"
start=$SECONDS
if kubectl -n "$NS_DB" rollout status statefulset/mongodb --timeout=180s >/dev/null; then
    ok "MongoDB StatefulSet Ready after $((SECONDS - start)) s"
else
    fail "MongoDB StatefulSet not Ready"
    kubectl -n "$NS_DB" logs mongodb-0 --tail=30 2>&1 | sed 's/^/    | /'
fi
if kubectl -n "$NS_DB" wait --for=condition=complete job/mongodb-rs-init --timeout=180s >/dev/null; then
    ok "rs-init Job complete after $((SECONDS - start)) s: $(kubectl -n "$NS_DB" logs job/mongodb-rs-init | tr '\n' ' ')"
else
    fail "rs-init Job did not complete"
    kubectl -n "$NS_DB" logs job/mongodb-rs-init 2>&1 | tail -n 20 | sed 's/^/    | /'
fi
rs="$(kubectl -n "$NS_DB" exec mongodb-0 -- mongosh --quiet --eval \
    'const s = rs.status(); s.ok + " " + s.set + " " + s.members.map(m => m.stateStr).join(",")' 2>&1 || true)"
# manifests/dev-databases.yaml gives the mongosh probe 10 s: it must never have timed out.
timeouts="$(kubectl -n "$NS_DB" get events --field-selector involvedObject.name=mongodb-0 -o json |
    grep -c 'Readiness probe failed: command timed out' || true)"
if [ "$timeouts" = 0 ]; then ok "no timed-out readiness probe on mongodb-0"; else fail "$timeouts timed-out readiness probes on mongodb-0"; fi
if [ "$(echo "$rs" | tail -n 1)" = "1 rs0 PRIMARY" ]; then ok "rs.status(): $rs"; else fail "rs.status(): $rs"; fi
comp="$(kubectl -n "$NS_DB" exec mongodb-0 -- mongosh --quiet --eval \
    'db.adminCommand({getCmdLineOpts: 1}).parsed.net.compression.compressors' 2>&1 || true)"
if [ "$(echo "$comp" | tail -n 1)" = "snappy,zstd" ]; then ok "mongod wire compressors: $comp (no zlib)"; else fail "mongod compressors: $comp"; fi
if kubectl -n "$NS_DB" rollout status deploy/postgres --timeout=180s >/dev/null; then
    ok "PostgreSQL Deployment Ready after $((SECONDS - start)) s"
else
    fail "PostgreSQL not Ready"
    kubectl -n "$NS_DB" logs deploy/postgres --tail=30 2>&1 | sed 's/^/    | /'
fi
dbs="$(kubectl -n "$NS_DB" exec deploy/postgres -- psql -U postgres -Atc \
    "select string_agg(datname, ',' order by datname) from pg_database where datname like 'zero_%'" 2>&1 || true)"
if [ "$dbs" = "zero_cdc,zero_cvr" ]; then ok "PostgreSQL databases: $dbs"; else fail "PostgreSQL databases: $dbs"; fi

# client NAME IMAGE COMMAND...: runs a pod to its end in the databases' namespace and prints
# its log (not `kubectl run -i`, which can miss the output of a command that ends quickly).
client() {
    local name="$1" image="$2" phase=""
    shift 2
    kubectl -n "$NS_DB" run "$name" --image="$image" --image-pull-policy=Never --restart=Never \
        --command -- "$@" >/dev/null
    for _ in $(seq 1 90); do
        phase="$(kubectl -n "$NS_DB" get pod "$name" -o jsonpath='{.status.phase}')"
        case "$phase" in Succeeded | Failed) break ;; esac
        sleep 1
    done
    kubectl -n "$NS_DB" logs "$name" 2>&1
    kubectl -n "$NS_DB" delete pod "$name" --wait=false >/dev/null
}

# From other pods, over the Services, with the URIs of the manifest's Secrets.
mongo_uri="$(kubectl -n "$NS_DB" get secret mongodb -o jsonpath='{.data.uri}' | base64 -d)"
pg_uri="$(kubectl -n "$NS_DB" get secret postgres -o jsonpath='{.data.cvr-uri}' | base64 -d)"
pg="$(client pg-client zerostack/dev-postgres:15 psql "$pg_uri" -Atc 'select current_database(), current_user')"
if [ "$pg" = "zero_cvr|postgres" ]; then ok "psql over TCP with the Secret's password (scram-sha-256): $pg"; else fail "psql over TCP: $pg"; fi
bad="$(client pg-badpw zerostack/dev-postgres:15 psql "${pg_uri/dev-only-password/wrong}" -Atc 'select 1')"
if echo "$bad" | grep -q 'password authentication failed'; then ok "a wrong password is refused over TCP"; else fail "wrong password: $bad"; fi

# A change stream opened first, then a write: the stream must deliver it.
js='
const c = db.getSiblingDB("imgtest").getCollection("docs");
const cs = c.watch([], {maxAwaitTimeMS: 1000});
const id = c.insertOne({hello: "world", at: new Date()}).insertedId;
let ev = null;
for (let i = 0; i < 20 && !ev; i++) { ev = cs.tryNext(); }
print(ev ? ev.operationType + " " + ev.fullDocument.hello + " " + (ev.documentKey._id.equals(id)) : "no event");
'
out="$(client mongo-client zerostack/dev-mongo:6.0.5 mongosh --quiet "$mongo_uri" --eval "$js")"
if [ "$(echo "$out" | tail -n 1)" = "insert world true" ]; then
    ok "write + change-stream read from another pod ($mongo_uri): $(echo "$out" | tail -n 1)"
else
    fail "change stream: $out"
fi

if [ "$failed" = 0 ]; then log "all image checks passed"; else log "some image checks FAILED"; fi
exit "$failed"
