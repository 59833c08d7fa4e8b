"""The guest side of a Python dashboard: loads the author's `app.py` once, then answers the
platform's requests (info, layout, dependencies, one callback) one at a time.

The host reaches this module through the interpreter's `turn` export (a statement run in
`__main__`) and this module reaches the host through `_host.call(frame)`, one opaque byte
frame each way. Frames from the guest start with one byte naming the operation:

- `q`: "what is the request?"; the answer is JSON `{"op": ..., "id": ..., "request": ...}`.
- `r` + JSON: the answer to the request (`{"ok": value}` or `{"error": kind, "message": text}`).
- `l` + one level digit (0 trace … 4 error) + UTF-8 text: a log line.
- `p` + JSON: a background callback's progress report (a list, one value per output).
- `t` + 4-byte length + component id + JSON props: `set_props` streamed to the page's
  WebSocket; `w` + JSON `{"id", "names"}`: props read from that page (`ctx.websocket`).
- `d`, `g`, `s`, `x`: the app's data sources and cache (`tessera.py`, the host's
  `sandbox/src/python/door.rs`).

An instance's first request carries `env`, the app's settings, which become `os.environ`
for its callbacks (never present while `app.py` loads: the loaded state is shared by every
later value of the settings).

The same functions run under CPython on the host (`answer(...)`), so they are tested there too.
"""
import asyncio
import importlib.util
import inspect
import json
import sys
import time
import traceback

import dash
from dash.exceptions import PreventUpdate

_state = {"app": None, "module": None}

# WASI's sleep blocks the host thread where no deadline can stop it: sleep in slices, so
# that the host's epoch ticks between them end a call at its deadline. Installed before the
# app is imported, so `from time import sleep` gets it too.
_blocking_sleep = time.sleep


def _sliced_sleep(seconds):
    if seconds < 0:
        raise ValueError("sleep length must be non-negative")
    end = time.monotonic() + seconds
    while True:
        left = end - time.monotonic()
        if left <= 0:
            return
        _blocking_sleep(min(left, 0.05))


time.sleep = _sliced_sleep


class _Waits:
    """The selector of `_SandboxLoop`: there is no I/O to wait for in the sandbox, only
    time (`asyncio.sleep`), slept with the deadline-aware `time.sleep`."""

    def select(self, timeout=None):
        if timeout is None:
            raise RuntimeError(
                "the callback awaits something that never comes: only asyncio.sleep and "
                "Tessera's own calls can be awaited in the sandbox"
            )
        if timeout > 0:
            time.sleep(timeout)
        return []


class _SandboxLoop(asyncio.BaseEventLoop):
    """An event loop without sockets (WASI has no `socketpair`, which asyncio's own loop
    needs): coroutines, tasks and timers, for Dash's `async def` callbacks."""

    def __init__(self):
        super().__init__()
        self._selector = _Waits()

    def _process_events(self, event_list):
        pass

    def _write_to_self(self):
        pass


def _await(awaitable):
    """An async callback's value, run to its end on a `_SandboxLoop`."""

    async def main():
        return await awaitable

    loop = _SandboxLoop()
    try:
        return loop.run_until_complete(main())
    finally:
        loop.close()


def _to_json(value):
    """JSON text as Dash writes it: plotly's encoder when plotly is there (numpy, pandas,
    figures), else the standard one that knows `to_plotly_json`."""
    try:
        from plotly.io.json import to_json_plotly
    except ImportError:
        return json.dumps(value, default=_default, separators=(",", ":"))
    return to_json_plotly(value)


def _default(value):
    if hasattr(value, "to_plotly_json"):
        return value.to_plotly_json()
    if hasattr(value, "tolist"):
        return value.tolist()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def load(path, module_name="app"):
    """Import the author's app file as module `app` (not `__main__`: `if __name__ ==
    "__main__": app.run()` stays quiet) and find its `Dash`."""
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    app = getattr(module, "app", None)
    if not isinstance(app, dash.Dash):
        app = dash.get_app()
    if app is None:
        raise RuntimeError(f"{path} makes no dash.Dash app")
    _state["app"], _state["module"] = app, module
    return app


def warm_up():
    """Loads what a first callback would import lazily: the layout's and dependencies' JSON,
    and when the app uses plotly, one small figure of plotly.express (its pandas backend
    through narwhals, the trace and layout classes of its templates, the JSON encoder).
    Runs before the snapshot of an app version, so it is paid once per deploy."""
    answer({"op": "layout"})
    answer({"op": "dependencies"})
    if "plotly.express" in sys.modules and "pandas" in sys.modules:
        import pandas as pd
        import plotly.express as px

        frame = pd.DataFrame({"x": [1, 2], "y": [3.0, 4.0], "c": ["a", "b"]})
        for make in (px.bar, px.line, px.scatter):
            _to_json(make(frame, x="x", y="y", color="c", title="warm-up"))
    elif "plotly.graph_objects" in sys.modules:
        import plotly.graph_objects as go

        _to_json(go.Figure(go.Bar(x=[1], y=[1])))


def _layout():
    app = _state["app"]
    layout = app.layout
    if not layout and app.use_pages:
        layout = dash.page_container
    if callable(layout) and not hasattr(layout, "to_plotly_json"):
        layout = layout()
    return layout


def _layout_json():
    """The layout, with what the platform takes out of it (`platform::dash::layout`): the
    pages' layouts for Dash's `validation_layout`, the app-wide WebSocket flag."""
    app = _state["app"]
    layout = _to_json(_layout())
    extra = {}
    pages = dash._page_layouts(app)
    if pages is not None:
        extra["tessera_page_layouts"] = pages
    if app._websocket_callbacks:
        extra["tessera_websocket_callbacks"] = True
    if extra and layout.endswith("}"):
        layout = layout[:-1] + "," + _to_json(extra)[1:]
    return layout


def _callback_list():
    declared = _state["app"]._callbacks + dash._CALLBACKS
    # In the order Dash 4.4.1 adds them at its first request.
    return declared + dash._cancellers(declared) + dash._router_callbacks(_state["app"])


def _callbacks():
    return {cb.id(): cb for cb in _callback_list()}


def _arguments(callback, request):
    """The callback function's positional and keyword arguments (Dash's `inputs=dict(...)`
    passes keywords)."""
    args, kwargs = [], {}
    for keyword, value in zip(callback.keywords, _arg_values(callback, request)):
        if keyword is None:
            args.append(value)
        else:
            kwargs[keyword] = value
    return args, kwargs


def _arg_values(callback, request):
    inputs = iter(request.get("inputs", []))
    state = iter(request.get("state", []))
    values = []
    for dep in callback.args:
        item = next(inputs if isinstance(dep, dash.Input) else state, None)
        if isinstance(item, list):
            values.append([one.get("value") for one in item])
        elif isinstance(item, dict):
            values.append(item.get("value"))
        else:
            values.append(None)
    return values


def _run_callback(callback_id, request, websocket=False):
    callback = _callbacks().get(callback_id)
    if callback is None or callback.func is None:
        return {"error": "invalid-input", "message": f"no callback {callback_id!r}"}
    dash.ctx._request = request
    dash.ctx._side_update = {}
    dash.ctx._multi = callback.multi
    dash.ctx._websocket = dash._Socket() if websocket else None
    on_error = callback.on_error or _state["app"].on_error
    args, kwargs = _arguments(callback, request)
    if callback.background and callback.background.progress:
        # Dash's background callbacks with `progress=` get `set_progress` first.
        args.insert(0, _set_progress)
    try:
        result = callback.func(*args, **kwargs)
        if inspect.isawaitable(result):
            result = _await(result)
    except PreventUpdate:
        return {"ok": {"prevent_update": True}}
    except Exception as error:  # Dash's `on_error`: the handler's value replaces the outputs
        if on_error is None:
            raise
        result = on_error(error)
        if result is None and callback.outputs:
            result = dash.no_update
    finally:
        dash.ctx._request = None
        dash.ctx._websocket = None
    side = dash.ctx._side_update
    if not callback.outputs:
        outputs = []
    elif callback.multi:
        if dash.NoUpdate.is_no_update(result):
            outputs = [result] * len(callback.outputs)
        else:
            outputs = list(result)
            if len(outputs) != len(callback.outputs):
                raise dash.exceptions.InvalidCallbackReturnValue(
                    f"callback {callback_id} returned {len(outputs)} values "
                    f"for {len(callback.outputs)} outputs"
                )
    else:
        outputs = [result]
    answer = {"outputs": outputs, "side_update": side} if side else outputs
    return {"ok": {"outputs": _to_json(answer)}}


def _set_progress(value):
    """A background callback's `set_progress`: one value per progress output (a single
    value for one), shown by the page at its next poll."""
    if not isinstance(value, (list, tuple)):
        value = [value]
    import _host

    _host.call(b"p" + _to_json(list(value)).encode())


def answer(request):
    """One request (a dict) to its answer (a dict); exceptions become failed answers with
    the Python traceback, as the author would see it."""
    op = request.get("op")
    try:
        if op == "info":
            app = _state["app"]
            return {"ok": {"title": app.title, "sdk_version": f"tessera-python dash {dash.__version__}"}}
        if op == "layout":
            return {"ok": _layout_json()}
        if op == "dependencies":
            return {"ok": json.dumps([cb.dependency() for cb in _callback_list()])}
        if op == "callback":
            return _run_callback(
                request["id"], json.loads(request["request"]), request.get("websocket", False)
            )
        return {"error": "invalid-input", "message": f"unknown operation {op!r}"}
    except Exception:
        return {"error": "failed", "message": traceback.format_exc()}


def serve():
    """One turn: ask the host for the request, answer it."""
    import _host

    request = json.loads(_host.call(b"q"))
    env = request.pop("env", None)
    if env is not None:
        _set_env(env)
    _host.call(b"r" + json.dumps(answer(request)).encode())


def _set_env(env):
    import os

    for name in _state.get("env_names", ()):
        os.environ.pop(name, None)
    os.environ.update(env)
    _state["env_names"] = list(env)


def log(level, message):
    import _host

    _host.call(b"l" + str(level).encode() + str(message).encode())
