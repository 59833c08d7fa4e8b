#!/usr/bin/env bash
# Write sdk/assets/plotly_template.json: plotly.py's default template
# (`plotly.io.templates['plotly']`, what every figure plotly.py builds carries as
# layout.template), taken from the plotly package of the differential venv
# (scripts/differential-venv.sh, dash 4.4.1 and its plotly). The SDK embeds the file; the
# differential suite checks that it still matches.
#
#   scripts/plotly-template.sh
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
python=$("$repo/scripts/differential-venv.sh")
"$python" - "$repo/sdk/assets/plotly_template.json" <<'PY'
import json
import sys

import plotly
import plotly.io as pio

template = pio.templates["plotly"].to_plotly_json()
text = json.dumps(template, cls=plotly.utils.PlotlyJSONEncoder, separators=(",", ":"), sort_keys=True)
with open(sys.argv[1], "w", encoding="utf-8") as out:
    out.write(text + "\n")
print(f"{sys.argv[1]}: plotly {plotly.__version__}, {len(text)} bytes")
PY
