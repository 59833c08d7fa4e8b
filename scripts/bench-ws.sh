#!/usr/bin/env bash
# WebSocket viewers of the live-orders example (issue 15): N viewers each hold a
# `_dash-ws-callback` connection to a fresh `tessera serve` and ask for one update a second
# over it. Prints the server's memory per connection, the update latency (p50/p99/max) and
# its CPU. Driver: tests/src/bin/ws_viewers.rs; figures in docs/benchmarks.md.
#
#   scripts/bench-ws.sh                          # 1,000 viewers for 30 s
#   scripts/bench-ws.sh --viewers 10000          # the full run (11,000+ open files per process)
#   scripts/bench-ws.sh --viewers 200 --seconds 10
#
# The driver raises its own open-file limit (and so the server's) to twice the viewers plus
# slack; the hard limit (`ulimit -Hn`) must allow it. Run it on a quiet machine: the driver
# and the server share its cores.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
target_dir=${CARGO_TARGET_DIR:-$repo/target}

viewers=1000
seconds=30
while [[ $# -gt 0 ]]; do
    case "$1" in
        --viewers) viewers=$2; shift 2 ;;
        --seconds) seconds=$2; shift 2 ;;
        *) echo "usage: $0 [--viewers N] [--seconds S]" >&2; exit 2 ;;
    esac
done

# Every guest: building a subset unifies features differently and recompiles the SDK.
scripts/build-guests.sh
cargo build --release --workspace --bins
echo "load average before the run: $(cut -d' ' -f1-3 /proc/loadavg)"
"$target_dir/release/ws_viewers" --viewers "$viewers" --seconds "$seconds" \
    --tessera "$target_dir/release/tessera" \
    --component "$target_dir/wasm32-wasip2/guest/live_orders.wasm"
echo "load average after the run: $(cut -d' ' -f1-3 /proc/loadavg)"
