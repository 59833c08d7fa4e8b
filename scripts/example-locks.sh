#!/usr/bin/env bash
# Writes each example's own Cargo.lock: the workspace's lock cut down to what that example
# reaches, so an example folder copied out of this repository pushes as it is and builds
# with the versions the SDK is tested with. Inside the workspace cargo reads only the root
# lock; run this after changing Cargo.lock or an example's dependencies (the test
# `build::every_example_folder_is_a_crate_of_its_own_with_a_current_lock` says when).
#
#   scripts/example-locks.sh            # every example under examples/
#   scripts/example-locks.sh hello      # just one
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
if [[ $# -eq 0 ]]; then
    set -- $(for manifest in examples/*/Cargo.toml; do basename "$(dirname "$manifest")"; done)
fi
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

for example in "$@"; do
    [ -f "examples/$example/Cargo.toml" ] || { echo "example-locks: no examples/$example/Cargo.toml" >&2; exit 1; }
    copy="$scratch/$example"
    mkdir -p "$copy"
    cp -r "examples/$example/." "$copy/"
    rm -rf "$copy/target"
    cp Cargo.lock "$copy/Cargo.lock"
    # Resolving from the workspace's lock drops what the example does not reach and keeps
    # every version; the SDK is patched in as the build server does.
    (cd "$copy" && cargo tree --quiet -e normal \
        --config "patch.crates-io.sdk.path=\"$repo/sdk\"" >/dev/null)
    cp "$copy/Cargo.lock" "examples/$example/Cargo.lock"
    echo "examples/$example/Cargo.lock: $(grep -c '^\[\[package\]\]' "$copy/Cargo.lock") packages"
done
