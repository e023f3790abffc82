#!/bin/sh
# Entrypoint of the zerostack/dev-postgres:15 test image (busybox sh). It does what the official
# postgres image's entrypoint does with what manifests/dev-databases.yaml gives it:
#   - on the first start (no $PGDATA/PG_VERSION): initdb as user POSTGRES_USER (default
#     postgres) with POSTGRES_PASSWORD, trust on the local socket and scram-sha-256 for every
#     TCP login; then /docker-entrypoint-initdb.d/*.sql, *.sql.gz and *.sh in name order against
#     a server that listens on the socket only; POSTGRES_DB (if not postgres) is created first;
#   - then `postgres` listening on all addresses.
# Arguments that start with `-` are options of postgres; any other command runs as given.
#
# PGDATA is a sub-folder of the volume (/var/lib/postgresql/data/pgdata, set in the image's
# ENV): an emptyDir or a fresh PV is owned by root, and initdb must chmod PGDATA to 0700,
# which only its owner may. The official image does the same when told to via PGDATA.
set -eu

if [ "$#" -eq 0 ] || [ "${1#-}" != "$1" ]; then
    set -- postgres "$@"
fi
if [ "$1" != postgres ]; then
    exec "$@"
fi
shift

: "${PGDATA:=/var/lib/postgresql/data/pgdata}"
: "${POSTGRES_USER:=postgres}"
: "${POSTGRES_DB:=$POSTGRES_USER}"
export PGDATA

log() { echo "dev-postgres: $*"; }

init_database() {
    if [ -z "${POSTGRES_PASSWORD:-}" ]; then
        echo "dev-postgres: the database is uninitialized and POSTGRES_PASSWORD is not set" >&2
        exit 1
    fi
    mkdir -p "$PGDATA"
    if ! chmod 700 "$PGDATA"; then
        echo "dev-postgres: cannot chmod $PGDATA (owned by another user): point PGDATA at a sub-folder of the volume" >&2
        exit 1
    fi
    pwfile="$(mktemp)"
    printf '%s\n' "$POSTGRES_PASSWORD" >"$pwfile"
    # The C locale needs no locale files; UTF8 as the official image has.
    # shellcheck disable=SC2086 # POSTGRES_INITDB_ARGS is a list of words, as in the official image
    initdb --username="$POSTGRES_USER" --pwfile="$pwfile" --auth-local=trust \
        --auth-host=scram-sha-256 --encoding=UTF8 --no-locale ${POSTGRES_INITDB_ARGS:-}
    rm -f "$pwfile"
    # initdb allows TCP only from 127.0.0.1 and ::1; the official image adds every address.
    printf '\nhost all all all scram-sha-256\n' >>"$PGDATA/pg_hba.conf"
    printf "\nlisten_addresses = '*'\n" >>"$PGDATA/postgresql.conf"

    log "running the init scripts on a server that listens on the socket only"
    pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w start
    psql_init() { psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --no-password --no-psqlrc "$@"; }
    if [ "$POSTGRES_DB" != postgres ]; then
        echo "CREATE DATABASE \"$POSTGRES_DB\";" | psql_init --dbname postgres
    fi
    for f in /docker-entrypoint-initdb.d/*; do
        [ -e "$f" ] || continue
        case "$f" in
            *.sh)
                log "running $f"
                # shellcheck disable=SC1090 # the user's script, sourced as the official image does
                . "$f"
                ;;
            *.sql)
                log "running $f"
                psql_init --dbname "$POSTGRES_DB" -f "$f"
                ;;
            *.sql.gz)
                log "running $f"
                gunzip -c "$f" | psql_init --dbname "$POSTGRES_DB"
                ;;
            *) log "ignoring $f" ;;
        esac
    done
    pg_ctl -D "$PGDATA" -m fast -w stop
    log "init done"
}

if [ ! -s "$PGDATA/PG_VERSION" ]; then
    init_database
fi

# The official image has STOPSIGNAL SIGINT: the kubelet's SIGTERM then means a fast shutdown
# (disconnect clients) instead of a smart one that waits for them (zero-cache keeps its
# connections open, so a pod would wait for its grace period). mkimage.py cannot set a stop
# signal, so this shell stays PID 1 and turns TERM into INT.
postgres "$@" &
pid=$!
trap 'kill -INT "$pid" 2>/dev/null || true' TERM INT
status=0
while :; do
    if wait "$pid"; then status=0; else status=$?; fi
    # wait also returns when a trapped signal arrives; go on until postgres has exited.
    kill -0 "$pid" 2>/dev/null || break
done
exit "$status"
