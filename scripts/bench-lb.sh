#!/usr/bin/env bash
# Replicas behind a real load balancer (issue 16): three web replicas and a builder on one
# PostgreSQL database and one Redis, behind HAProxy and then nginx (deploy/haproxy.cfg and
# deploy/nginx.conf as shipped, ports swapped), under a steady callback load while one
# replica is SIGKILLed and restarted, another drained and restarted (an upgrade), an app is
# pushed through the balancer, and Redis is stopped and started. Driver: tests/src/bin/lb.rs;
# figures in docs/benchmarks.md.
#
#   scripts/bench-lb.sh                       # --scale full: 32 clients, ~2 minutes per balancer
#   scripts/bench-lb.sh --scale small         # what scripts/test.sh runs: under 2 minutes in all
#   scripts/bench-lb.sh --lb nginx --report-only
#
# Needs TESSERA_TEST_POSTGRES_URL (a database is created and dropped), redis-server (its own,
# on a free port), haproxy, nginx, git and psql (scripts/setup.sh --test installs them).
# Fails when a request failed other than those in flight at the SIGKILL, when memoized
# answers were not shared through Redis before the outage and again after it, or when the
# pushed version did not serve on every web replica. Logs are kept up to 16 MiB per balancer.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
target_dir=${CARGO_TARGET_DIR:-$repo/target}

args=("$@")
if [[ " ${args[*]-} " != *" --scale "* ]]; then
    args=(--scale full "${args[@]}")
fi
export TESSERA_TEST_POSTGRES_URL="${TESSERA_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}"

# Every guest: building a subset unifies features differently and recompiles the SDK.
scripts/build-guests.sh
# --workspace: the feature set of `cargo test --release --workspace`, so nothing rebuilds.
cargo build --release --workspace --bin tessera
cargo build --release --workspace --bin lb

exec "$target_dir/release/lb" "${args[@]}"
