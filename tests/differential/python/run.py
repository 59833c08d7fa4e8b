"""Serve the Python twins through Flask's test client.

Reads {"app name": [request body, ...], ...} as JSON on stdin and prints
{"app name": {"dependencies": [...], "layout": {...}, "config_keys": [...],
"responses": [{"status": n, "body": json or null, "content_type": "..."}]}, ...,
"_plotly_template": plotly.py's default template}.
"""

import json
import sys

import plotly
import plotly.io as pio

from apps import APPS


def serve(name, bodies):
    app = APPS[name]()
    client = app.server.test_client()
    dependencies = client.get("/_dash-dependencies").get_json()
    layout = client.get("/_dash-layout").get_json()
    with app.server.test_request_context("/"):
        config_keys = sorted(app._config().keys())
    responses = []
    for body in bodies:
        answer = client.post("/_dash-update-component", json=body)
        text = answer.get_data(as_text=True)
        try:
            parsed = json.loads(text) if text else None
        except ValueError:
            parsed = {"not_json": text[:2000]}
        responses.append(
            {
                "status": answer.status_code,
                "body": parsed,
                "content_type": answer.headers.get("Content-Type"),
            }
        )
    return {
        "dependencies": dependencies,
        "layout": layout,
        "config_keys": config_keys,
        "responses": responses,
    }


def main():
    cases = json.load(sys.stdin)
    answers = {name: serve(name, bodies) for name, bodies in cases.items()}
    template = pio.templates["plotly"].to_plotly_json()
    answers["_plotly_template"] = json.loads(json.dumps(template, cls=plotly.utils.PlotlyJSONEncoder))
    json.dump(answers, sys.stdout)


if __name__ == "__main__":
    main()
