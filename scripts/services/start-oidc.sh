#!/usr/bin/env bash
# Start Tessera's test OpenID provider (tests/services/oidc) in the background.
#
#   scripts/services/start-oidc.sh [RUN_DIR]     start; prints KEY=VALUE lines for `eval`
#   scripts/services/start-oidc.sh stop RUN_DIR  stop the provider started in RUN_DIR
#
# Environment: OIDC_PORT (default 9400), OIDC_REDIRECT_URIS, OIDC_TTL_SECONDS and the other
# variables documented at the top of tests/services/oidc/provider.js.
set -euo pipefail
here="$(cd "$(dirname "$0")/../.." && pwd)"
dir_of_provider="$here/tests/services/oidc"

if [[ "${1:-}" == "stop" ]]; then
    run_dir="${2:?usage: start-oidc.sh stop RUN_DIR}"
    if [[ -f "$run_dir/oidc.pid" ]]; then
        pid="$(cat "$run_dir/oidc.pid")"
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 50); do
            state="$(ps -o stat= -p "$pid" 2>/dev/null || true)"
            [[ -z "$state" || "$state" == Z* ]] && break
            sleep 0.1
        done
        rm -f "$run_dir/oidc.pid"
    fi
    exit 0
fi

command -v node >/dev/null || { echo "start-oidc.sh: node is not installed" >&2; exit 1; }
command -v npm >/dev/null || { echo "start-oidc.sh: npm is not installed" >&2; exit 1; }
if [[ ! -d "$dir_of_provider/node_modules/oidc-provider" ]]; then
    (cd "$dir_of_provider" && npm ci --no-audit --no-fund >&2)
fi

run_dir="${1:-$(mktemp -d)}"
mkdir -p "$run_dir"
port="${OIDC_PORT:-9400}"
issuer="${OIDC_ISSUER:-http://127.0.0.1:$port}"
OIDC_PORT="$port" OIDC_ISSUER="$issuer" nohup node "$dir_of_provider/provider.js" \
    >"$run_dir/oidc.log" 2>&1 &
pid=$!
echo "$pid" >"$run_dir/oidc.pid"
for _ in $(seq 100); do
    if curl -fsS "$issuer/.well-known/openid-configuration" >/dev/null 2>&1; then
        echo "OIDC_ISSUER=$issuer"
        echo "OIDC_CLIENT_ID=${OIDC_CLIENT_ID:-dashboard}"
        echo "OIDC_CLIENT_SECRET=${OIDC_CLIENT_SECRET:-dashboard-secret}"
        echo "OIDC_PID=$pid"
        echo "OIDC_RUN_DIR=$run_dir"
        exit 0
    fi
    if ! kill -0 "$pid" 2>/dev/null; then break; fi
    sleep 0.1
done
echo "start-oidc.sh: the provider did not answer discovery; its log:" >&2
cat "$run_dir/oidc.log" >&2
kill "$pid" 2>/dev/null || true
exit 1
