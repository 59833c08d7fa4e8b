#!/usr/bin/env bash
# Fuzz the REST API against its own OpenAPI document with Schemathesis (from PyPI, pinned in
# scripts/schemathesis-venv.sh): a real `tessera serve` on a free loopback port, on a fresh
# SQLite data dir seeded with a tenant, an owner, a team, a deployed app and the owner's API
# token; then `schemathesis run` with a bounded number of examples per operation. Fails on
# any 5xx and on any response that does not match the document.
#
#   scripts/schemathesis.sh        (after `cargo build --release --workspace --bin tessera`
#                                   and scripts/build-guests.sh)
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
target=${CARGO_TARGET_DIR:-$repo/target}
tessera="$target/release/tessera"
[ -x "$tessera" ] || {
    echo "schemathesis.sh: $tessera is missing; run cargo build --release --workspace --bin tessera" >&2
    exit 1
}
schemathesis=$("$repo/scripts/schemathesis-venv.sh")

work=$(mktemp -d "${TMPDIR:-/tmp}/tessera-schemathesis.XXXXXX")
server=
# shellcheck disable=SC2317 # reached through the EXIT trap
cleanup() {
    if [ -n "$server" ]; then
        kill "$server" 2>/dev/null || true
        wait "$server" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

export TESSERA_DATA_DIR="$work/data"
export TESSERA_FRONTEND_DIR="$repo/admin-ui/node_modules"
unset TESSERA_DATABASE_URL
t() { "$tessera" "$@"; }

t admin create-tenant acme --name "Acme" >/dev/null
t admin create-user owner@example.org >/dev/null
t admin grant owner@example.org acme owner >/dev/null
t admin create-user viewer@example.org >/dev/null
t admin grant viewer@example.org acme viewer >/dev/null
t deploy acme/hello "$target/wasm32-wasip2/guest/hello.wasm" >/dev/null
token=$(t admin token create owner@example.org --tenant acme 2>"$work/token.err") || {
    cat "$work/token.err" >&2
    exit 1
}

# Create the log first: the background shell opens it only when it gets to run.
: >"$work/serve.log"
# "$tessera" itself, not the `t` function: `$!` must be the server, which cleanup kills (a
# function would run in a subshell whose death leaves the server behind).
"$tessera" serve --listen 127.0.0.1:0 >"$work/serve.log" 2>&1 &
server=$!
address=
for _ in $(seq 1 100); do
    address=$(sed -n 's|^Tessera is listening on \(http://[^/]*\)/$|\1|p' "$work/serve.log" || true)
    [ -n "$address" ] && break
    sleep 0.1
done
[ -n "$address" ] || {
    echo "schemathesis.sh: tessera serve did not start:" >&2
    cat "$work/serve.log" >&2
    exit 1
}

# Point the path parameters at the seeded rows so the operations reach their logic rather
# than stopping at "no such tenant" (owner@ is user 1, viewer@ user 2).
cat >"$work/schemathesis.toml" <<'TOML'
[parameters]
"path.tenant" = "acme"
"path.app" = "hello"
"path.user_id" = 2
TOML

status=0
"$schemathesis" --config-file "$work/schemathesis.toml" run "$address/api/v1/openapi.json" \
    --header "Authorization: Bearer $token" \
    --checks not_a_server_error,response_schema_conformance \
    --phases examples,coverage,fuzzing \
    --max-examples "${SCHEMATHESIS_EXAMPLES:-25}" \
    --workers 1 \
    --seed 1 \
    --no-color ||
    status=$?
if [ "$status" != 0 ]; then
    echo "schemathesis.sh: failures above; the server log:" >&2
    tail -n 50 "$work/serve.log" >&2
fi
exit "$status"
