#!/usr/bin/env bash
# The noisy-neighbour suite (issue 12): a hostile tenant attacks a real `tessera serve` in one
# way at a time (spinning callbacks, memory bombs, 100 MiB outputs, empty-log floods, a
# load-time spin, the instance pool, background-job floods, a compile bomb pushed with
# kind = "wasm") while another tenant's light callback is measured. Driver:
# tests/src/bin/noisy.rs; figures in docs/benchmarks.md.
#
#   scripts/bench-noisy.sh                        # --scale full: 20 s per case, ~6 minutes
#   scripts/bench-noisy.sh --scale small          # what scripts/test.sh runs: under 3 minutes
#   scripts/bench-noisy.sh --cases spin,compile --report-only
#
# Without --report-only the run fails when the light tenant had a failed request, the
# hostile tenant got an unclear answer (500 "internal", no error code, a dropped connection),
# the compile bomb was not refused naming the compile limit, or the server's peak resident
# memory went over the documented bound. Latencies and their ratios are printed, never
# asserted. The server's log is kept up to 16 MiB in the run's temporary directory.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
target_dir=${CARGO_TARGET_DIR:-$repo/target}

args=("$@")
if [[ " ${args[*]-} " != *" --scale "* ]]; then
    args=(--scale full "${args[@]}")
fi

# Every guest: building a subset unifies features differently and recompiles the SDK.
scripts/build-guests.sh
# --workspace: the feature set of `cargo test --release --workspace`, so nothing rebuilds.
cargo build --release --workspace --bin tessera
cargo build --release --workspace --bin noisy

exec "$target_dir/release/noisy" "${args[@]}"
