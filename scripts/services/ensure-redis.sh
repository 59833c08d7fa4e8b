#!/usr/bin/env bash
# Make sure a Redis server answers on 127.0.0.1:$REDIS_PORT (default 6379) for the tests.
#
#   eval "$(scripts/services/ensure-redis.sh RUN_DIR)"    check, or start a throwaway server
#   scripts/services/ensure-redis.sh stop RUN_DIR        stop it again (only if we started it)
#
# When a server already answers (on the rust-svc machine kind one always does) nothing is
# started. Otherwise a throwaway redis-server without persistence runs from RUN_DIR, bound to
# loopback, until `stop RUN_DIR`.
# Prints shell assignments: TESSERA_TEST_REDIS_URL=... and, when it started one,
# TESSERA_TEST_REDIS_STARTED=RUN_DIR. Progress goes to stderr.
set -euo pipefail

port=${REDIS_PORT:-6379}
say() { printf 'ensure-redis: %s\n' "$*" >&2; }
fail() {
    printf 'ensure-redis: ERROR: %s\n' "$*" >&2
    exit 1
}

answers() { (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; }

if [ "${1:-}" = stop ]; then
    dir=${2:?usage: ensure-redis.sh stop RUN_DIR}
    [ -f "$dir/.tessera-throwaway-redis" ] || exit 0 # not ours: leave it alone
    if [ -f "$dir/redis.pid" ]; then
        pid=$(cat "$dir/redis.pid")
        kill "$pid" 2>/dev/null || true
        # A stopped child of PID 1 lingers as a zombie for a moment; do not wait that out.
        for _ in $(seq 50); do
            stat=$(ps -o stat= -p "$pid" 2>/dev/null || true)
            [ -z "$stat" ] || [[ "$stat" == Z* ]] && break
            sleep 0.1
        done
    fi
    rm -rf "$dir"
    say "stopped the throwaway server in $dir"
    exit 0
fi

dir=${1:?usage: ensure-redis.sh RUN_DIR | stop RUN_DIR}
url="redis://127.0.0.1:$port"
if answers; then
    say "a server already answers on 127.0.0.1:$port"
    echo "TESSERA_TEST_REDIS_URL=$url"
    exit 0
fi

command -v redis-server >/dev/null || fail "redis-server not found (Debian: apt-get install redis-server)"
say "nothing on 127.0.0.1:$port; starting a throwaway server in $dir"
mkdir -p "$dir"
touch "$dir/.tessera-throwaway-redis"
nohup redis-server --bind 127.0.0.1 --port "$port" --save '' --appendonly no --dir "$dir" \
    --daemonize no --logfile "$dir/redis.log" >/dev/null 2>&1 &
echo $! >"$dir/redis.pid"
for _ in $(seq 100); do
    answers && break
    kill -0 "$(cat "$dir/redis.pid")" 2>/dev/null || fail "redis-server exited; see $dir/redis.log"
    sleep 0.05
done
answers || fail "redis-server does not answer on 127.0.0.1:$port; see $dir/redis.log"
say "throwaway server ready on 127.0.0.1:$port"
echo "TESSERA_TEST_REDIS_URL=$url"
echo "TESSERA_TEST_REDIS_STARTED=$dir"
