#!/usr/bin/env bash
# Run Tessera with the example dashboards deployed as public apps.
#
#   scripts/demo.sh [tessera serve options...]      e.g. scripts/demo.sh --listen 127.0.0.1:9000
#
# Installs what is missing (scripts/setup.sh), builds the example components and the server
# (release profile), then replaces itself with `tessera serve --demo`. TESSERA_LISTEN,
# TESSERA_DATA_DIR and the other TESSERA_* variables are passed through. Stop it with Ctrl-C.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"

scripts/setup.sh
scripts/build-guests.sh hello sales-explorer dynamic-filters multi-page report-builder big-table dash-features live-orders

# The server looks for the example components in <target dir>/wasm32-wasip2/guest; follow a
# relocated cargo target directory.
if [ -n "${CARGO_TARGET_DIR:-}" ] && [ -z "${TESSERA_DEMO_DIR:-}" ]; then
    export TESSERA_DEMO_DIR="$CARGO_TARGET_DIR/wasm32-wasip2/guest"
fi

# Work out the address to print: --listen ADDR / --listen=ADDR wins over TESSERA_LISTEN.
listen=${TESSERA_LISTEN:-127.0.0.1:8080}
prev=
for arg in "$@"; do
    case "$arg" in
        --listen=*) listen=${arg#--listen=} ;;
        *) [ "$prev" = --listen ] && listen=$arg ;;
    esac
    prev=$arg
done

# Apps are served on their own origin, http://demo.localhost:PORT (browsers and curl
# resolve *.localhost to loopback); the platform (sign-in, API) stays on the listen address.
port=${listen##*:}
apps=http://demo.localhost:$port
cat <<EOF

  Tessera demo (platform: http://$listen/)
    sales explorer: $apps/apps/demo/sales-explorer/
    dynamic filters: $apps/apps/demo/dynamic-filters/
    multi-page:     $apps/apps/demo/multi-page/
    hello:          $apps/apps/demo/hello/
    report builder: $apps/apps/demo/report-builder/
    big table:      $apps/apps/demo/big-table/
    dash features:  $apps/apps/demo/dash-features/
    live orders:    $apps/apps/demo/live-orders/

EOF

# No `-p platform`: the workspace's feature set, the one `cargo test --release --workspace`
# builds, so the tests' server and this one are the same build.
exec cargo run --release --bin tessera -- serve --demo "$@"
