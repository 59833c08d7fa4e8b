#!/usr/bin/env bash
# Builds dashboard components (wasm32-wasip2, `guest` profile) for the packages named as
# arguments; with no argument, every guest in the workspace. The .wasm files land in
# target/wasm32-wasip2/guest/ (or under $CARGO_TARGET_DIR), where the tests look for them.
#
#   scripts/build-guests.sh                       # all guests
#   scripts/build-guests.sh guest-hostile         # just one
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

if [[ $# -eq 0 ]]; then
    set -- hello sales-explorer dynamic-filters multi-page report-builder big-table dash-features live-orders guest-hostile guest-sockets guest-v0-1 guest-capable guest-http guest-memo
fi

packages=()
for package in "$@"; do
    packages+=(-p "$package")
done

cargo build --profile guest --target wasm32-wasip2 "${packages[@]}"
