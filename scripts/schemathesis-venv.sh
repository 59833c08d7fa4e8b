#!/usr/bin/env bash
# Create (once) the Python virtual environment with Schemathesis, which fuzzes the REST API
# against its own OpenAPI document (scripts/schemathesis.sh).
#
#   scripts/schemathesis-venv.sh      prints the path of the venv's `schemathesis` when ready
#
# The venv lives in <target dir>/schemathesis-venv. Safe and fast to run again: when the
# pinned version is installed, nothing is downloaded.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
target=${CARGO_TARGET_DIR:-$repo/target}
venv="$target/schemathesis-venv"
version=4.32.5
marker="$venv/.tessera-schemathesis-$version"

if [ -f "$marker" ] && [ -x "$venv/bin/schemathesis" ]; then
    echo "$venv/bin/schemathesis"
    exit 0
fi

command -v python3 >/dev/null || {
    echo "schemathesis-venv: python3 not found (Debian: apt-get install python3 python3-venv)" >&2
    exit 1
}
mkdir -p "$target"
rm -rf "$venv"
python3 -m venv "$venv" >&2 || {
    echo "schemathesis-venv: 'python3 -m venv' failed (Debian: apt-get install python3-venv)" >&2
    exit 1
}
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check "schemathesis==$version" >&2 || {
    echo "schemathesis-venv: installing schemathesis==$version from PyPI failed" >&2
    exit 1
}
touch "$marker"
echo "$venv/bin/schemathesis"
