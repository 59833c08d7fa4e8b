#!/usr/bin/env bash
# Density (issue 16): N apps deployed on one host through `tessera deploy` (a prebuilt
# component, one process per deploy) while a real `tessera serve` runs on the same data
# directory; then the idle server's resident memory, the first callback of never-used apps
# (sampled, before and after a restart) and the deploy time of the first 10 against the
# last 10. Driver: tests/src/bin/density.rs; figures in docs/benchmarks.md.
#
#   scripts/bench-density.sh                   # --scale full: 10,000 apps, 100 tenants
#   scripts/bench-density.sh --scale small     # 200 apps, about a minute
#   scripts/bench-density.sh --apps 2000 --variants 20 --report-only
#
# Fails when a deploy or a sampled callback failed, or when the idle server holds more than
# 1 GiB resident. Refuses to start when the database would leave under 15 GiB free on the
# temporary directory's disk; stops deploying after --max-minutes (60). The server's log is
# kept up to 16 MiB in the run's temporary directory (removed at the end unless --keep).
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
cargo build --release --workspace --bin density

exec "$target_dir/release/density" "${args[@]}"
