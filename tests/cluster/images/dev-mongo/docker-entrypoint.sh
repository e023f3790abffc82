#!/bin/sh
# Entrypoint of the zerostack/dev-mongo:6.0.5 test image (busybox sh). It does what the official
# mongo image's entrypoint does with what manifests/dev-databases.yaml gives it:
#   - arguments that start with `-` are options of mongod (`--replSet rs0 --bind_ip_all`);
#   - `mongod ...` runs mongod with the data in /data/db (mongod's default, the manifest's
#     volume), as the image's user (999; the official image switches from root to 999);
#   - anything else runs as given (`mongosh ...`, `sh`).
# The official image's MONGO_INITDB_* user and database set-up is not emulated; setting those
# is an error rather than a silently open database.
set -eu

if [ "$#" -eq 0 ] || [ "${1#-}" != "$1" ]; then
    set -- mongod "$@"
fi

if [ "$1" != mongod ]; then
    exec "$@"
fi
shift

for v in MONGO_INITDB_ROOT_USERNAME MONGO_INITDB_ROOT_PASSWORD MONGO_INITDB_DATABASE; do
    if eval "[ -n \"\${$v:-}\" ]"; then
        echo "dev-mongo: $v is not supported by this test image (no users are created)" >&2
        exit 2
    fi
done

dbpath=""
for a in "$@"; do
    case "$a" in
        --networkMessageCompressors | --networkMessageCompressors=*)
            echo "dev-mongo: this image sets --networkMessageCompressors itself (snappy,zstd)" >&2
            exit 2
            ;;
        --dbpath | --dbpath=*) dbpath=given ;;
    esac
done
if [ -z "$dbpath" ]; then
    set -- --dbpath /data/db "$@"
fi

# MongoDB 6.0.5 has a known pre-authentication bug in its zlib wire compression (CVE-2025-14847,
# "MongoBleed": a crafted zlib-compressed message makes mongod return uninitialised heap
# memory to an unauthenticated client; fixed in 6.0.27). The wheel's 6.0.5 is what we have, so
# zlib stays off: only snappy and zstd are offered to clients. Always added, never overridable.
exec mongod "$@" --networkMessageCompressors snappy,zstd
