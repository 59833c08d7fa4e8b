"""Serve the Python twins through Flask's test client.

Reads {"app name": [request body, ...], ...} as JSON on stdin and prints
{"app name": {"dependencies": [...], "responses": [{"status": n, "body": json or null}]}}.
"""

import json
import sys

from apps import APPS


def serve(name, bodies):
    client = APPS[name]().server.test_client()
    dependencies = client.get("/_dash-dependencies").get_json()
    responses = []
    for body in bodies:
        answer = client.post("/_dash-update-component", json=body)
        text = answer.get_data(as_text=True)
        try:
            parsed = json.loads(text) if text else None
        except ValueError:
            parsed = {"not_json": text[:2000]}
        responses.append({"status": answer.status_code, "body": parsed})
    return {"dependencies": dependencies, "responses": responses}


def main():
    cases = json.load(sys.stdin)
    json.dump({name: serve(name, bodies) for name, bodies in cases.items()}, sys.stdout)


if __name__ == "__main__":
    main()
