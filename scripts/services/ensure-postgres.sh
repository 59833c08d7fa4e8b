#!/usr/bin/env bash
# Make sure a PostgreSQL server answers on 127.0.0.1:$PGPORT (default 5432) for the tests.
#
#   eval "$(scripts/services/ensure-postgres.sh RUN_DIR)"    check, or start a throwaway server
#   scripts/services/ensure-postgres.sh stop RUN_DIR        stop it again (only if we started it)
#
# When a server already answers (on the rust-svc machine kind one always does: trust auth,
# user postgres) nothing is started. Otherwise a throwaway cluster is created in RUN_DIR with
# trust authentication on loopback only, and stopped by `stop RUN_DIR`.
# Prints shell assignments: TESSERA_TEST_POSTGRES_URL=... and, when it started one,
# TESSERA_TEST_POSTGRES_STARTED=RUN_DIR. Progress goes to stderr.
set -euo pipefail

port=${PGPORT:-5432}
say() { printf 'ensure-postgres: %s\n' "$*" >&2; }
fail() {
    printf 'ensure-postgres: ERROR: %s\n' "$*" >&2
    exit 1
}

answers() { (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; }

pg_bin() {
    local ver
    ver=$(find /usr/lib/postgresql -mindepth 1 -maxdepth 1 -printf '%f\n' 2>/dev/null | sort -V | tail -n1)
    if [ -z "$ver" ] || [ ! -x "/usr/lib/postgresql/$ver/bin/initdb" ]; then
        fail "no PostgreSQL server binaries under /usr/lib/postgresql (Debian: apt-get install postgresql)"
    fi
    echo "/usr/lib/postgresql/$ver/bin"
}

# PostgreSQL refuses to run as root; run its tools as the postgres user then.
as_pg() {
    if [ "$(id -u)" = 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

if [ "${1:-}" = stop ]; then
    dir=${2:?usage: ensure-postgres.sh stop RUN_DIR}
    [ -f "$dir/.tessera-throwaway-postgres" ] || exit 0 # not ours: leave it alone
    if [ -f "$dir/data/postmaster.pid" ]; then
        as_pg "$(pg_bin)/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null || true
    fi
    rm -rf "$dir"
    say "stopped the throwaway server in $dir"
    exit 0
fi

dir=${1:?usage: ensure-postgres.sh RUN_DIR | stop RUN_DIR}
url="postgres://postgres@127.0.0.1:$port/postgres"
if answers; then
    say "a server already answers on 127.0.0.1:$port"
    echo "TESSERA_TEST_POSTGRES_URL=$url"
    exit 0
fi

bin=$(pg_bin)
say "nothing on 127.0.0.1:$port; starting a throwaway cluster in $dir"
mkdir -p "$dir"
touch "$dir/.tessera-throwaway-postgres"
if [ "$(id -u)" = 0 ]; then
    chown postgres: "$dir"
    as_pg test -w "$dir" || fail "user postgres cannot write $dir (is a parent directory private? chmod 755 it)"
fi
as_pg "$bin/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 ||
    fail "initdb failed; see $dir/initdb.log"
as_pg "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 30 \
    -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c fsync=off" start >/dev/null ||
    fail "the server did not start; see $dir/server.log"
answers || fail "the server started but 127.0.0.1:$port does not answer; see $dir/server.log"
say "throwaway server ready on 127.0.0.1:$port"
echo "TESSERA_TEST_POSTGRES_URL=$url"
echo "TESSERA_TEST_POSTGRES_STARTED=$dir"
