#!/usr/bin/env bash
# Tessera's benchmarks: the sandbox spine in-process, then the HTTP server under load.
#
#   scripts/bench.sh
#
# 1. `cargo bench -p tests --bench spine`: compile, instantiate and per-call times of the
#    sales explorer component in wasmtime, against the same callback run natively.
# 2. `tessera serve --demo` on a free port with a fresh data dir, loaded with wrk
#    (-t2 -c16 -d10s --latency) on GET /healthz (the baseline; it pings the database), on
#    GET _dash-layout (a Dash request that runs no callback), then on the real Dash request
#    bodies of the summary and chart callbacks. A table gives req/s, p50 and p99 and each
#    one's throughput as a share of the baseline.
# 3. The same app written for Dash 4.4.1 (tests/benches/dash_sales/app.py, same ids, answers
#    and path) on gunicorn with 2 x cores + 1 sync workers, as Dash's deployment guide
#    advises, in the venv of scripts/differential-venv.sh: the same wrk requests, and the
#    ratio of Tessera's req/s to Dash's.
# Environment: BENCH_DURATION (default 10s), BENCH_CONNECTIONS (16), BENCH_THREADS (2),
# BENCH_SKIP_SPINE=1 to run only the HTTP part, BENCH_SKIP_DASH=1 to leave out step 3.
# wrk and the server share the machine's cores; compare figures from the same run only.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"

duration=${BENCH_DURATION:-10s}
connections=${BENCH_CONNECTIONS:-16}
threads=${BENCH_THREADS:-2}
target_dir=${CARGO_TARGET_DIR:-$repo/target}

scripts/setup.sh --bench
# Every guest: building a subset unifies features differently and recompiles the SDK.
scripts/build-guests.sh
# --workspace: the feature set of `cargo test --release --workspace`, so nothing rebuilds.
cargo build --release --workspace --bin tessera

if [ "${BENCH_SKIP_SPINE:-0}" != 1 ]; then
    printf '\n==> spine (cargo bench -p tests --bench spine)\n'
    cargo bench -p tests --bench spine
fi

# --- HTTP ------------------------------------------------------------------------------------
printf '\n==> HTTP: tessera serve --demo under wrk\n'
port=$(node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')
listen=127.0.0.1:$port
base=http://$listen
run_dir=$(mktemp -d "${TMPDIR:-/tmp}/tessera-bench.XXXXXX")
server_pid=
stop_server() {
    if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
        kill -TERM "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    rm -rf "$run_dir"
}
trap stop_server EXIT

# The benchmark runs the built binary itself, so that no cargo process sits in between.
export TESSERA_DEMO_DIR=${TESSERA_DEMO_DIR:-$target_dir/wasm32-wasip2/guest}
RUST_LOG=${RUST_LOG:-warn} "$target_dir/release/tessera" serve --demo --listen "$listen" \
    --data-dir "$run_dir/data" >"$run_dir/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 300); do
    curl -fsS -o /dev/null "$base/healthz" 2>/dev/null && break
    kill -0 "$server_pid" 2>/dev/null || {
        cat "$run_dir/server.log" >&2
        echo "bench: tessera exited before answering /healthz" >&2
        exit 1
    }
    sleep 0.1
done
curl -fsS -o /dev/null "$base/healthz" || {
    cat "$run_dir/server.log" >&2
    echo "bench: tessera does not answer $base/healthz after 30 s" >&2
    exit 1
}

lua=$repo/tests/benches/wrk/dash.lua
# Apps are served on their own origin (the demo tenant's: demo.localhost, which curl resolves
# to loopback); wrk gets its Host header (that origin answers /healthz too).
apps=http://demo.localhost:$port
update=$apps/apps/demo/sales-explorer/_dash-update-component

# Check once that each body gets a real answer before measuring how fast it comes.
check() {
    local what=$1 body=$2 expect=$3 out
    out=$(curl -fsS -H 'Content-Type: application/json' --data "$body" "$update") || {
        echo "bench: the $what callback request failed" >&2
        exit 1
    }
    grep -q -- "$expect" <<<"$out" || {
        echo "bench: the $what callback answered without '$expect': ${out:0:300}" >&2
        exit 1
    }
}
check summary '{"output":"summary.children","outputs":{"id":"summary","property":"children"},"inputs":[{"id":"region","property":"value","value":"West"}],"changedPropIds":["region.value"],"parsedChangedPropsIds":["region.value"]}' 'West: '
check chart '{"output":"revenue-chart.figure","outputs":{"id":"revenue-chart","property":"figure"},"inputs":[{"id":"region","property":"value","value":"West"},{"id":"year","property":"value","value":[2015,2024]}],"changedPropIds":["region.value"],"parsedChangedPropsIds":["region.value"]}' 'Revenue by product, West 2015-2024'

declare -A rps p50 p99
# measure KEY MODE HOST BASE LOG: one wrk run of MODE against BASE; figures under KEY.
measure() {
    local key=$1 mode=$2 host=$3 url=$4 log=$5 out line errors
    printf -- '--- wrk -t%s -c%s -d%s --latency: %s\n' "$threads" "$connections" "$duration" "$key"
    out=$(TESSERA_WRK_MODE=$mode wrk -t"$threads" -c"$connections" -d"$duration" --latency -H "Host: $host" -s "$lua" "$url")
    echo "$out"
    line=$(grep '^RESULT ' <<<"$out") || {
        echo "bench: wrk printed no RESULT line for $key" >&2
        exit 1
    }
    errors=$(sed -E 's/.* errors=([0-9]+).*/\1/' <<<"$line")
    if [ "$errors" != 0 ]; then
        echo "bench: $errors failed requests in the $key run; server log:" >&2
        tail -n 40 "$log" >&2
        exit 1
    fi
    rps[$key]=$(sed -E 's/.* rps=([0-9.]+).*/\1/' <<<"$line")
    p50[$key]=$(sed -E 's/.* p50_us=([0-9]+).*/\1/' <<<"$line")
    p99[$key]=$(sed -E 's/.* p99_us=([0-9]+).*/\1/' <<<"$line")
}
for mode in healthz layout summary chart; do
    measure "$mode" "$mode" "demo.localhost:$port" "$base" "$run_dir/server.log"
done

printf '\n==> HTTP results (%s connections, %s threads, %s each, one run; server and wrk share %s cores)\n' \
    "$connections" "$threads" "$duration" "$(nproc)"
printf '  %-40s %10s %10s %10s %18s\n' "endpoint" "req/s" "p50 ms" "p99 ms" "req/s vs /healthz"
for mode in healthz layout summary chart; do
    case $mode in
        healthz) label="GET /healthz (baseline, db ping)" ;;
        layout) label="GET _dash-layout (no callback)" ;;
        summary) label="POST summary.children callback" ;;
        chart) label="POST revenue-chart.figure callback" ;;
    esac
    awk -v l="$label" -v r="${rps[$mode]}" -v a="${p50[$mode]}" -v b="${p99[$mode]}" -v base="${rps[healthz]}" \
        'BEGIN { printf "  %-40s %10.0f %10.2f %10.2f %17.1f%%\n", l, r, a / 1000, b / 1000, 100 * r / base }'
done

if [ "${BENCH_SKIP_DASH:-0}" = 1 ]; then
    exit 0
fi

printf '\n==> HTTP: the same app on Dash 4.4.1 with gunicorn, the same requests\n'
stop_server
run_dir=$(mktemp -d "${TMPDIR:-/tmp}/tessera-bench-dash.XXXXXX")
python=$(scripts/differential-venv.sh)
venv_bin=$(dirname "$python")
if [ ! -x "$venv_bin/gunicorn" ]; then
    "$python" -m pip install --quiet --disable-pip-version-check "gunicorn==23.0.0"
fi
workers=$((2 * $(nproc) + 1))
"$venv_bin/gunicorn" --preload -w "$workers" -b "$listen" --chdir "$repo/tests/benches/dash_sales" \
    app:server >"$run_dir/server.log" 2>&1 &
server_pid=$!
layout_url=$base/apps/demo/sales-explorer/_dash-layout
for _ in $(seq 900); do # the app builds its table and warms its reports first
    curl -fsS -o /dev/null "$layout_url" 2>/dev/null && break
    kill -0 "$server_pid" 2>/dev/null || {
        cat "$run_dir/server.log" >&2
        echo "bench: gunicorn exited before serving the Dash app" >&2
        exit 1
    }
    sleep 0.1
done
update=$base/apps/demo/sales-explorer/_dash-update-component
check summary '{"output":"summary.children","outputs":{"id":"summary","property":"children"},"inputs":[{"id":"region","property":"value","value":"West"}],"changedPropIds":["region.value"],"parsedChangedPropsIds":["region.value"]}' 'West: '
check chart '{"output":"revenue-chart.figure","outputs":{"id":"revenue-chart","property":"figure"},"inputs":[{"id":"region","property":"value","value":"West"},{"id":"year","property":"value","value":[2015,2024]}],"changedPropIds":["region.value"],"parsedChangedPropsIds":["region.value"]}' 'Revenue by product, West 2015-2024'
for mode in layout summary chart; do
    measure "dash-$mode" "$mode" "127.0.0.1:$port" "$base" "$run_dir/server.log"
done

printf '\n==> Tessera against Dash 4.4.1 on gunicorn (%s workers), same requests, same run\n' "$workers"
printf '  %-40s %12s %12s %14s %14s %10s\n' "request" "Tessera r/s" "Dash r/s" "Tessera p99" "Dash p99" "ratio"
for mode in layout summary chart; do
    awk -v l="$mode" -v t="${rps[$mode]}" -v d="${rps[dash-$mode]}" -v tp="${p99[$mode]}" -v dp="${p99[dash-$mode]}" \
        'BEGIN { printf "  %-40s %12.0f %12.0f %11.2f ms %11.2f ms %9.1fx\n", l, t, d, tp / 1000, dp / 1000, t / d }'
done
