#!/usr/bin/env bash
# Push-to-live times of `git push` deploys, measured against a real `tessera serve` on a
# throwaway data directory: from the start of `git push` until the new version's layout
# is served.
#
#   1. a prebuilt component (kind = "wasm", examples' hello.wasm)
#   2. a Rust crate (kind = "rust", the sales explorer's source), cold: empty target dir
#   3. the same crate after a one-line change, warm: the app's target dir from step 2
#   4. the sandbox's cost: warm pushes of the same crate, alternately to this server (builds
#      in the bubblewrap sandbox) and to a second one started with
#      TESSERA_BUILDS_SANDBOX=none, REPS times each (default 5); medians and their ratio
#
#   scripts/bench-push.sh            # prints a table; needs git, curl, cargo, bwrap, the guests
#   REPS=9 scripts/bench-push.sh
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$(pwd)
target=${CARGO_TARGET_DIR:-$root/target}

# --workspace: the feature set of `cargo test --release --workspace`, so nothing rebuilds.
cargo build --release --workspace --bin tessera
[[ -f $target/wasm32-wasip2/guest/hello.wasm ]] || scripts/build-guests.sh

scratch=$(mktemp -d)
server=""
bare=""
cleanup() {
    [[ -n $server ]] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null
    [[ -n $bare ]] && kill "$bare" 2>/dev/null && wait "$bare" 2>/dev/null
    rm -rf "$scratch"
}
trap cleanup EXIT

export TESSERA_DATA_DIR=$scratch/data
export TESSERA_FRONTEND_DIR=$root/admin-ui/node_modules
unset TESSERA_DATABASE_URL TESSERA_REDIS_URL TESSERA_CONFIG
tessera=$target/release/tessera
"$tessera" admin create-user bench@example.org >/dev/null
"$tessera" admin create-tenant bench --owner bench@example.org >/dev/null
token=$("$tessera" admin token create bench@example.org --tenant bench)

"$tessera" serve --listen 127.0.0.1:0 >"$scratch/server.out" 2>"$scratch/server.err" &
server=$!
for _ in $(seq 100); do
    address=$(sed -n 's|.*listening on http://\([^/]*\)/.*|\1|p' "$scratch/server.out")
    [[ -n $address ]] && break
    sleep 0.1
done
[[ -n $address ]] || { echo "tessera did not start" >&2; cat "$scratch/server.err" >&2; exit 1; }

real_home=$HOME
export HOME=$scratch/home GIT_CONFIG_NOSYSTEM=1 GIT_TERMINAL_PROMPT=0
mkdir -p "$HOME"
git config --global user.name bench
git config --global user.email bench@example.org
git config --global init.defaultBranch main

now_ms() { echo $(($(date +%s%N) / 1000000)); }

# push DIR APP TEXT [ADDRESS TOKEN]: push DIR to APP, wait until its layout contains TEXT;
# prints ms.
push() {
    local dir=$1 app=$2 text=$3 at=${4:-$address} tok=${5:-$token} start
    start=$(now_ms)
    git -C "$dir" push --quiet --force "http://git:$tok@$at/git/bench/$app.git" HEAD:main \
        >"$scratch/push.log" 2>&1 || { cat "$scratch/push.log" >&2; exit 1; }
    until curl -fsS "http://bench.localhost:${at##*:}/apps/bench/$app/_dash-layout" 2>/dev/null | grep -q "$text"; do
        sleep 0.05
    done
    echo $(($(now_ms) - start))
}

# 1. Prebuilt component.
mkdir "$scratch/wasm"
cp "$target/wasm32-wasip2/guest/hello.wasm" "$scratch/wasm/app.wasm"
printf 'kind = "wasm"\ncomponent = "app.wasm"\nvisibility = "public"\n' >"$scratch/wasm/tessera.toml"
git -C "$scratch/wasm" init --quiet
git -C "$scratch/wasm" add -A
git -C "$scratch/wasm" commit --quiet -m hello
prebuilt=$(push "$scratch/wasm" hello Hello)

# 2. Rust crate, cold.
crate=$scratch/rust
mkdir -p "$crate/src"
cp examples/sales-explorer/src/*.rs "$crate/src/"
cp Cargo.lock "$crate/"
cat >"$crate/Cargo.toml" <<'EOF'
[package]
name = "sales-explorer"
version = "0.1.0"
edition = "2024"

[lib]
crate-type = ["cdylib"]

[dependencies]
sdk = "0.1"
serde_json = { version = "1.0.145", features = ["preserve_order"] }
plotly = { version = "=0.14.1", default-features = false }
EOF
printf 'kind = "rust"\nvisibility = "public"\n' >"$crate/tessera.toml"
git -C "$crate" init --quiet
git -C "$crate" add -A
git -C "$crate" commit --quiet -m sales
cold=$(push "$crate" sales "Sales explorer")

# 3. Warm: a one-line change.
sed -i 's/html::h2().children("Sales explorer")/html::h2().children("Sales explorer, warm")/' "$crate/src/lib.rs"
git -C "$crate" commit --quiet -am retitle
warm=$(push "$crate" sales "Sales explorer, warm")

# 4. The sandbox's cost on warm builds: a second server without it, same crate, same
# machine, pushes alternating between the two.
reps=${REPS:-5}
bare_data=$scratch/bare-data
TESSERA_DATA_DIR=$bare_data "$tessera" admin create-user bench@example.org >/dev/null
TESSERA_DATA_DIR=$bare_data "$tessera" admin create-tenant bench --owner bench@example.org >/dev/null
bare_token=$(TESSERA_DATA_DIR=$bare_data "$tessera" admin token create bench@example.org --tenant bench)
# Unsandboxed builds use the operator's cargo and rustup homes and the pinned toolchain.
: >"$scratch/bare.out"
TESSERA_DATA_DIR=$bare_data TESSERA_BUILDS_SANDBOX=none HOME=$real_home \
    RUSTUP_TOOLCHAIN=$(sed -n 's/^channel = "\(.*\)"/\1/p' rust-toolchain.toml) \
    "$tessera" serve --listen 127.0.0.1:0 >"$scratch/bare.out" 2>"$scratch/bare.err" &
bare=$!
for _ in $(seq 100); do
    bare_address=$(sed -n 's|.*listening on http://\([^/]*\)/.*|\1|p' "$scratch/bare.out")
    [[ -n $bare_address ]] && break
    sleep 0.1
done
[[ -n $bare_address ]] || { echo "the unsandboxed tessera did not start" >&2; exit 1; }
push "$crate" sales "Sales explorer, warm" "$bare_address" "$bare_token" >/dev/null # its cold build
sandboxed=()
unsandboxed=()
for i in $(seq "$reps"); do
    sed -i "s/html::h2().children(\"Sales explorer[^\"]*\")/html::h2().children(\"Sales explorer, run $i\")/" "$crate/src/lib.rs"
    git -C "$crate" commit --quiet -am "run $i"
    sandboxed+=("$(push "$crate" sales "Sales explorer, run $i")")
    unsandboxed+=("$(push "$crate" sales "Sales explorer, run $i" "$bare_address" "$bare_token")")
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : int((a[NR/2] + a[NR/2+1]) / 2)}'; }
with=$(median "${sandboxed[@]}")
without=$(median "${unsandboxed[@]}")
ratio=$(awk -v a="$with" -v b="$without" 'BEGIN {printf "%.3f", a / b}')

cores=$(nproc)
echo
echo "push-to-live on $(date -u +%F), $cores cores, $(uname -m):"
echo "| push | ms |"
echo "|---|---|"
echo "| prebuilt component (hello.wasm) | $prebuilt |"
echo "| Rust crate, cold (empty target dir) | $cold |"
echo "| Rust crate, warm (one-line change) | $warm |"
echo
echo "warm Rust pushes, $reps each, alternating (ms): sandboxed ${sandboxed[*]}; unsandboxed ${unsandboxed[*]}"
echo "| warm push-to-live | median ms |"
echo "|---|---|"
echo "| in the bubblewrap sandbox | $with |"
echo "| without a sandbox (TESSERA_BUILDS_SANDBOX=none) | $without |"
echo "| ratio | $ratio |"
