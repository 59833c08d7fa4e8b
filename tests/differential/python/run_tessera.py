"""The same Python twins on Tessera's own guest runtime (python/runtime: `_tessera_runtime`
and Tessera's `dash` package), run here by CPython instead of the sandbox's interpreter.

Reads {"app name": [[callback id, guest request JSON], ...], ...} as JSON on stdin and
prints {"app name": {"dependencies": [...], "answers": [answer, ...]}} where each answer is
what `_tessera_runtime.answer` gives the host ({"ok": {"outputs": text}}, {"ok":
{"prevent_update": true}} or {"error": kind, "message": traceback}).
"""

import json
import os
import sys

# Tessera's `dash` shadows the real one installed in this venv.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../../python/runtime"))

import dash  # noqa: E402
import _tessera_runtime as runtime  # noqa: E402
from apps import APPS  # noqa: E402

assert dash.__file__.startswith(sys.path[0]), f"the real dash was imported: {dash.__file__}"


def serve(name, calls):
    dash._CALLBACKS.clear()
    runtime._state["app"] = APPS[name]()
    dependencies = json.loads(runtime.answer({"op": "dependencies"})["ok"])
    answers = [
        runtime.answer({"op": "callback", "id": callback_id, "request": request})
        for callback_id, request in calls
    ]
    return {"dependencies": dependencies, "answers": answers}


def main():
    cases = json.load(sys.stdin)
    json.dump({name: serve(name, calls) for name, calls in cases.items()}, sys.stdout)


if __name__ == "__main__":
    main()
