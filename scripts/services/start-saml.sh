#!/usr/bin/env bash
# Start Tessera's test SAML identity provider (tests/services/saml) in the background, with
# two new RSA keys and self-signed certificates made in RUN_DIR (the published one and a
# "rogue" one; see the top of tests/services/saml/idp.js).
#
#   scripts/services/start-saml.sh [RUN_DIR]     start; prints KEY=VALUE lines for `eval`
#   scripts/services/start-saml.sh stop RUN_DIR  stop the IdP started in RUN_DIR
#
# Environment: SAML_PORT (default 9500), SAML_TTL_SECONDS, SAML_PEOPLE_FILE.
set -euo pipefail
here="$(cd "$(dirname "$0")/../.." && pwd)"
dir_of_idp="$here/tests/services/saml"

if [[ "${1:-}" == "stop" ]]; then
    run_dir="${2:?usage: start-saml.sh stop RUN_DIR}"
    if [[ -f "$run_dir/saml.pid" ]]; then
        pid="$(cat "$run_dir/saml.pid")"
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 50); do
            state="$(ps -o stat= -p "$pid" 2>/dev/null || true)"
            [[ -z "$state" || "$state" == Z* ]] && break
            sleep 0.1
        done
        rm -f "$run_dir/saml.pid"
    fi
    exit 0
fi

for tool in node npm openssl curl; do
    command -v "$tool" >/dev/null || { echo "start-saml.sh: $tool is not installed" >&2; exit 1; }
done
if [[ ! -d "$dir_of_idp/node_modules/samlify" ]]; then
    (cd "$dir_of_idp" && npm ci --no-audit --no-fund >&2)
fi

run_dir="${1:-$(mktemp -d)}"
mkdir -p "$run_dir"
for name in idp rogue; do
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=tessera-test-$name" \
        -keyout "$run_dir/$name.key" -out "$run_dir/$name.crt" 2>/dev/null
done
port="${SAML_PORT:-9500}"
SAML_PORT="$port" SAML_KEY="$run_dir/idp.key" SAML_CERT="$run_dir/idp.crt" \
    SAML_ROGUE_KEY="$run_dir/rogue.key" SAML_ROGUE_CERT="$run_dir/rogue.crt" \
    nohup node "$dir_of_idp/idp.js" >"$run_dir/saml.log" 2>&1 &
pid=$!
echo "$pid" >"$run_dir/saml.pid"
base="http://127.0.0.1:$port/idp"
for _ in $(seq 100); do
    if curl -fsS "$base/good/metadata" >/dev/null 2>&1; then
        echo "SAML_IDP=$base"
        echo "SAML_METADATA_URL=$base/good/metadata"
        echo "SAML_ROGUE_METADATA_URL=$base/rogue/metadata"
        echo "SAML_ROGUE_CERT=$run_dir/rogue.crt"
        echo "SAML_PID=$pid"
        echo "SAML_RUN_DIR=$run_dir"
        exit 0
    fi
    if ! kill -0 "$pid" 2>/dev/null; then break; fi
    sleep 0.1
done
echo "start-saml.sh: the IdP did not serve its metadata; its log:" >&2
cat "$run_dir/saml.log" >&2
kill "$pid" 2>/dev/null || true
exit 1
