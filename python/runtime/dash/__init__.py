"""Tessera's guest-side `dash`: the part of Dash 4's Python API an `app.py` touches.

An author's `app.py` imports this package instead of the real `dash` inside the sandbox:
there is no web server here, only the layout, the callback list and the callbacks, which
the Tessera runtime (`_tessera_runtime`) hands to the platform. `app.run(...)` and
`app.server` are accepted and do nothing.
"""
import hashlib
import os
import sys

from . import _pages, exceptions
from ._component import Component
from ._dependencies import (
    ALL,
    ALLSMALLER,
    MATCH,
    ClientsideFunction,
    DashDependency,
    Input,
    Output,
    State,
    stringify_id,
)
from ._patch import Patch
from .exceptions import PreventUpdate

__version__ = "4.4.1"

__all__ = [
    "ALL",
    "ALLSMALLER",
    "MATCH",
    "CeleryManager",
    "ClientsideFunction",
    "Dash",
    "DiskcacheManager",
    "Input",
    "Output",
    "Patch",
    "PreventUpdate",
    "State",
    "callback",
    "callback_context",
    "clientside_callback",
    "ctx",
    "dcc",
    "get_asset_url",
    "page_container",
    "page_registry",
    "register_page",
    "get_relative_path",
    "html",
    "strip_relative_path",
    "dash_table",
    "no_update",
    "set_props",
]


class NoUpdate:
    """`dash.no_update`: leave this output as it is."""

    def to_plotly_json(self):
        return {"_dash_no_update": "_dash_no_update"}

    @staticmethod
    def is_no_update(value):
        return isinstance(value, NoUpdate) or (
            isinstance(value, dict) and value == {"_dash_no_update": "_dash_no_update"}
        )


no_update = NoUpdate()


class _Callback:
    """One registered callback: its dependencies in the decorator's order and its function."""

    def __init__(
        self,
        func,
        outputs,
        multi,
        args,
        prevent_initial_call,
        clientside=None,
        running=None,
        on_error=None,
        background=None,
        websocket=False,
        persistent=False,
        hidden=False,
    ):
        self.func = func
        self.outputs = outputs
        self.multi = multi
        self.inputs = [d for d in args if isinstance(d, Input)]
        self.state = [d for d in args if isinstance(d, State)]
        # The function receives inputs and state in the order the decorator named them.
        self.args = args
        self.prevent_initial_call = prevent_initial_call is True
        self.clientside = clientside
        # An inline clientside function's source (`clientside_callback("function…")`).
        self.inline_source = None
        self.running = running or []
        self.on_error = on_error
        # For each of `args`, the keyword it is passed as (`inputs=dict(...)`), or None.
        self.keywords = [None] * len(args)
        # A background callback's `_Background`: the platform runs it as a job.
        self.background = background
        # Dash 4.4.1 writes null for the cancel callbacks it adds after the others.
        self.hidden = hidden
        # Sent over the page's WebSocket by the renderer (Dash's `websocket=True`).
        self.websocket = websocket
        # No "Updating..." title while it runs.
        self.persistent = persistent

    def id(self):
        """Dash's `create_callback_id`."""

        def hashed_inputs():
            joined = ".".join(str(x) for x in self.inputs)
            return hashlib.sha256(joined.encode("utf-8")).hexdigest()

        if not self.outputs:
            return hashed_inputs()

        def part(output):
            text = output.component_id_str().replace(".", "\\.") + "." + output.component_property
            if output.allow_duplicate:
                text += "@" + hashed_inputs()
            return text

        if self.multi:
            return ".." + "...".join(part(o) for o in self.outputs) + ".."
        return part(self.outputs[0])

    def dependency(self):
        """The `_dash-dependencies` entry, in Dash 4.4.1's key order."""
        entry = {
            "output": self.id(),
            "inputs": [d.to_dict() for d in self.inputs],
            "state": [d.to_dict() for d in self.state],
            "clientside_function": self.clientside,
            "prevent_initial_call": self.prevent_initial_call,
            "background": {"interval": self.background.interval} if self.background else None,
            # Dash 4.4.1 writes false for `clientside_callback`, null for the others.
            "dynamic_creator": False if self.clientside else None,
            "no_output": not self.outputs,
            "optional": False,
            "hidden": self.hidden,
            "websocket": self.websocket,
            "persistent": self.persistent,
        }
        if self.inline_source is not None:
            entry[_INLINE_SOURCE_KEY] = self.inline_source
        if self.background:
            entry[_BACKGROUND_KEY] = self.background.private()
        if self.running:
            entry["running"] = {
                "running": {str(output): on for output, on, _ in self.running},
                "runningOff": {str(output): off for output, _, off in self.running},
            }
        return entry


class _Background:
    """What `background=True` adds to a callback: how often the renderer polls, the
    progress outputs (and their values when no job runs) and the inputs that cancel it."""

    def __init__(self, interval, progress, progress_default, cancel):
        self.interval = interval
        self.progress = _as_list(progress) if progress else []
        self.progress_default = _as_list(progress_default) if progress_default else None
        self.cancel = _as_list(cancel) if cancel else []
        for dep in self.progress + self.cancel:
            if dep.has_wildcard():
                raise exceptions.WildcardInLongCallback(
                    "background callbacks does not support dependencies with pattern-matching "
                    f"ids\n    Received: {dep!r}"
                )
        if self.progress_default is not None and len(self.progress_default) != len(self.progress):
            raise Exception("Progress and progress default needs to be of same length")

    def private(self):
        """What the platform needs to run the job (`platform::dash::dependencies::Background`)."""
        private = {
            "progress": [str(output) for output in self.progress],
            "cancel": [dep.to_dict() for dep in self.cancel],
        }
        if self.progress_default is not None:
            private["progressDefault"] = self.progress_default
        return private


def _as_list(value):
    """Dash's `coerce_to_list`."""
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _cancellers(callbacks):
    """The callbacks Dash adds for background callbacks' cancel inputs, after all others:
    one per input, writing the input's own `id` and answering `no_update`; the renderer
    sends `cancelJob` with it and the platform stops the job."""
    seen = {}
    for callback in callbacks:
        for cancel in callback.background.cancel if callback.background else []:
            seen.setdefault(cancel, None)
    cancellers = []
    for cancel in seen:
        canceller = _Callback(
            lambda *_: no_update, [Output(cancel.component_id, "id")], False, [cancel], True
        )
        canceller.hidden = None
        cancellers.append(canceller)
    return cancellers


class DiskcacheManager:
    """Accepted and ignored: on Tessera the platform runs background callbacks as jobs."""

    def __init__(self, cache=None, cache_by=None, expire=None):
        self.handle = cache
        self.cache_by = cache_by
        self.expire = expire


class CeleryManager(DiskcacheManager):
    """Accepted and ignored, as `DiskcacheManager`."""

    def __init__(self, celery_app=None, cache_by=None, expire=None):
        super().__init__(celery_app, cache_by, expire)


# The dependency key that tells the platform a background callback's progress outputs and
# cancel inputs (`platform::dash::dependencies::BACKGROUND_KEY`); removed from what it serves.
_BACKGROUND_KEY = "tessera_background"

# The dependency key that carries an inline clientside source to the platform
# (`platform::dash::clientside::INLINE_SOURCE_KEY`), which removes it from what it serves.
_INLINE_SOURCE_KEY = "tessera_inline_source"

# Every callback registered with `dash.callback` or an app's `callback`, in order.
_CALLBACKS = []
# Every `Dash` made, so the runtime finds the app whatever its variable is called.
_APPS = []


def _flatten(items):
    for item in items:
        if isinstance(item, (list, tuple)):
            yield from _flatten(item)
        else:
            yield item


def _register(args, kwargs, func=None, clientside=None, app=None):
    outputs = []
    multi = False
    deps = []
    for arg in args:
        if isinstance(arg, (list, tuple)):
            flat = list(_flatten(arg))
            if any(isinstance(d, Output) for d in flat):
                multi = True
            for d in flat:
                (outputs if isinstance(d, Output) else deps).append(d)
        elif isinstance(arg, Output):
            outputs.append(arg)
        elif isinstance(arg, DashDependency):
            deps.append(arg)
    keywords = [None] * len(deps)
    for key in ("output", "inputs", "state"):
        value = kwargs.get(key)
        if value is None:
            continue
        if key == "output" and isinstance(value, (list, tuple)):
            multi = True
        if isinstance(value, dict) and key != "output":
            # Dash's flexible signature: the function takes these as keyword arguments.
            for name, d in value.items():
                deps.append(d)
                keywords.append(name)
            continue
        for d in _flatten([value]):
            if isinstance(d, Output):
                outputs.append(d)
            else:
                deps.append(d)
                keywords.append(None)
    if len(outputs) > 1:
        multi = True
    prevent = kwargs.get("prevent_initial_call")
    if prevent is None and (app or get_app()) is not None:
        prevent = (app or get_app()).config.prevent_initial_callbacks
    running = kwargs.get("running")
    background = None
    if kwargs.get("background"):
        background = _Background(
            kwargs.get("interval", 1000),
            kwargs.get("progress"),
            kwargs.get("progress_default"),
            kwargs.get("cancel"),
        )
    callback = _Callback(
        func,
        outputs,
        multi,
        deps,
        prevent,
        clientside,
        running,
        kwargs.get("on_error"),
        background,
        bool(kwargs.get("websocket", False)),
        bool(kwargs.get("persistent", False)),
        bool(kwargs.get("hidden", False)),
    )
    callback.keywords = keywords
    (_CALLBACKS if app is None else app._callbacks).append(callback)
    return callback


def callback(*args, **kwargs):
    """`@dash.callback(Output(...), Input(...), State(...), prevent_initial_call=...)`."""

    def decorator(func):
        _register(args, kwargs, func=func)
        return func

    return decorator


def clientside_callback(clientside_function, *args, app=None, **kwargs):
    """A callback that runs in the browser: an inline function's source or a
    `ClientsideFunction` of an asset script."""
    if isinstance(clientside_function, ClientsideFunction):
        spec = {
            "namespace": clientside_function.namespace,
            "function_name": clientside_function.function_name,
        }
        _register(args, kwargs, clientside=spec, app=app)
        return
    # An inline source: named as Dash names it (the sha256 of the source, in Dash's private
    # namespace); the platform takes the source out of the dependency and writes it into
    # the index page as Dash does.
    spec = {
        "namespace": "_dashprivate_clientside_funcs",
        "function_name": hashlib.sha256(clientside_function.encode("utf-8")).hexdigest(),
    }
    callback = _register(args, kwargs, clientside=spec, app=app)
    callback.inline_source = clientside_function


class _Config(dict):
    def __getattr__(self, name):
        return self.get(name)

    def __setattr__(self, name, value):
        self[name] = value


class Dash:
    """`dash.Dash(__name__, title=...)`: the app. Serving options are accepted and ignored."""

    def __init__(
        self,
        name=None,
        title="Dash",
        prevent_initial_callbacks=False,
        on_error=None,
        websocket_callbacks=False,
        use_pages=None,
        pages_folder="pages",
        assets_folder="assets",
        description=None,
        suppress_callback_exceptions=False,
        routing_callback_inputs=None,
        **kwargs,
    ):
        self.title = title
        # Every callback goes over the page's WebSocket (Dash's app-wide mode).
        self._websocket_callbacks = bool(websocket_callbacks)
        self.on_error = on_error
        self.layout = None
        self.config = _Config(
            prevent_initial_callbacks=prevent_initial_callbacks,
            name=name,
            # Where Tessera serves the app, set before app.py is imported.
            requests_pathname_prefix=requests_pathname_prefix,
            assets_url_path="assets",
        )
        self._options = kwargs
        # `server = app.server` is accepted: a WSGI server means nothing inside the sandbox.
        self.server = None
        self._callbacks = []
        _APPS.append(self)
        self.config.suppress_callback_exceptions = suppress_callback_exceptions
        self.use_pages = (pages_folder != "pages") if use_pages is None else use_pages
        self.routing_callback_inputs = routing_callback_inputs or {}
        root = _pages._root_path(name)
        self.config.pages_folder = _pages_folder(root, pages_folder, use_pages)
        self.config.assets_folder = os.path.join(root, assets_folder)
        _pages.CONFIG.update(
            name=name,
            title=title,
            description=description,
            assets_folder=self.config.assets_folder,
            pages_folder=self.config.pages_folder,
        )
        if self.use_pages and self.config.pages_folder:
            # As Dash, while the app is made: `page_registry` is full after `Dash(...)`.
            _pages.import_pages(self.config.pages_folder)

    def callback(self, *args, **kwargs):
        def decorator(func):
            _register(args, kwargs, func=func, app=self)
            return func

        return decorator

    def clientside_callback(self, clientside_function, *args, **kwargs):
        return clientside_callback(clientside_function, *args, app=self, **kwargs)

    def get_asset_url(self, path):
        return get_asset_url(path)

    def get_relative_path(self, path):
        return get_relative_path(path)

    def strip_relative_path(self, path):
        return strip_relative_path(path)

    def run(self, *args, **kwargs):
        """Accepted and ignored: Tessera serves the app."""

    run_server = run


def _pages_folder(root, pages_folder, use_pages):
    """Dash's `pages_folder_config`: the folder's path; a missing one is an error when
    pages are used or the folder is not the default."""
    if not pages_folder:
        return None
    path = os.path.join(root, pages_folder)
    if (use_pages or str(pages_folder) != "pages") and not os.path.isdir(path):
        raise exceptions.InvalidConfig(
            f"A folder called `{pages_folder}` does not exist. If a folder for pages is not "
            'required in your application, set `pages_folder=""`. For example: '
            '`app = Dash(__name__,  pages_folder="")`'
        )
    return path


# The ids of `page_container`'s parts, as Dash names them.
_ID_CONTENT = "_pages_content"
_ID_LOCATION = "_pages_location"
_ID_STORE = "_pages_store"
_ID_DUMMY = "_pages_dummy"
# Dash's clientside callback that shows a page's title, byte for byte (its name is the
# sha256 of this source).
_TITLE_SOURCE = (
    "\n                function(data) {\n                    document.title = data.title\n"
    "                }\n                "
)


def _router_callbacks(app):
    """What Dash adds to an app with pages at its first request: the router (the page of
    the location's path into `_pages_content`, its title into `_pages_store`) and the
    clientside callback that sets the document's title from the store."""
    if not app.use_pages:
        return []
    inputs = {
        "pathname_": Input(_ID_LOCATION, "pathname"),
        "search_": Input(_ID_LOCATION, "search"),
    }
    inputs.update(app.routing_callback_inputs)

    def update(pathname_, search_, **states):
        query = _pages._parse_query_string(search_)
        page, variables = _pages.path_to_page(app.strip_relative_path(pathname_))
        if page == {}:
            for module, page in _pages.PAGE_REGISTRY.items():
                if module.split(".")[-1] == "not_found_404":
                    layout, title = page["layout"], page["title"]
                    break
            else:
                layout, title = html.H1("404 - Page not found"), app.title
        else:
            layout, title = page.get("layout", ""), page["title"]
        if callable(layout):
            layout = layout(**{**(variables or {}), **query, **states})
        if callable(title):
            title = title(**(variables or {}))
        return layout, {"title": title}

    router = _Callback(
        update,
        [Output(_ID_CONTENT, "children"), Output(_ID_STORE, "data")],
        True,
        list(inputs.values()),
        True,
        hidden=True,
    )
    router.keywords = list(inputs)
    title = _Callback(
        None,
        [Output(_ID_DUMMY, "children")],
        False,
        [Input(_ID_STORE, "data")],
        app.config.prevent_initial_callbacks,
        clientside={
            "namespace": "_dashprivate_clientside_funcs",
            "function_name": hashlib.sha256(_TITLE_SOURCE.encode("utf-8")).hexdigest(),
        },
    )
    title.inline_source = _TITLE_SOURCE
    # Dash registers it after giving the others their `hidden` value: it stays null.
    title.hidden = None
    return [router, title]


def _page_layouts(app):
    """Every page's layout (a layout function called without arguments), for Dash's
    `validation_layout`; none when the app suppresses callback exceptions."""
    if not app.use_pages or app.config.suppress_callback_exceptions:
        return None
    _pages.check_registry()
    return [p["layout"]() if callable(p["layout"]) else p["layout"] for p in _pages.PAGE_REGISTRY.values()]


class _Context:
    """`dash.ctx` / `dash.callback_context` for the callback that runs now."""

    def __init__(self):
        self._request = None
        self._side_update = {}
        self._multi = False
        self._websocket = None

    @property
    def websocket(self):
        """The page's WebSocket while a callback that came over it runs, else None."""
        return self._websocket

    @property
    def triggered(self):
        request = self._request or {}
        changed = request.get("changed_prop_ids") or []
        values = {}
        for item in _flatten(request.get("inputs", [])):
            if isinstance(item, dict):
                values[f"{stringify_id(item.get('id'))}.{item.get('property')}"] = item.get("value")
        found = [{"prop_id": p, "value": values.get(p)} for p in changed]
        return _Falsy(found or [{"prop_id": ".", "value": None}], bool(found))

    @property
    def triggered_prop_ids(self):
        request = self._request or {}
        out = {}
        for prop_id in request.get("changed_prop_ids") or []:
            out[prop_id] = _parse_id(prop_id.rsplit(".", 1)[0])
        return out

    @property
    def triggered_id(self):
        request = self._request or {}
        changed = request.get("changed_prop_ids") or []
        if not changed:
            return None
        return _parse_id(changed[0].rsplit(".", 1)[0])

    def _props(self, key):
        out = {}
        for item in _flatten((self._request or {}).get(key, [])):
            if isinstance(item, dict):
                out[f"{stringify_id(item.get('id'))}.{item.get('property')}"] = item.get("value")
        return out

    @property
    def inputs(self):
        return self._props("inputs")

    @property
    def states(self):
        return self._props("state")

    @property
    def inputs_list(self):
        return (self._request or {}).get("inputs", [])

    @property
    def states_list(self):
        return (self._request or {}).get("state", [])

    @property
    def outputs_list(self):
        # Dash's body has one object for a single output, a list for `[Output(...)]`.
        outputs = (self._request or {}).get("outputs", [])
        return outputs if self._multi or len(outputs) != 1 else outputs[0]


class _Falsy(list):
    """Dash's `triggered` is a one-element list that is false before any input changed."""

    def __init__(self, items, truth):
        super().__init__(items)
        self._truth = truth

    def __bool__(self):
        return self._truth


def _parse_id(text):
    if text.startswith("{"):
        import json

        return json.loads(text)
    return text


ctx = _Context()
callback_context = ctx


def set_props(component_id, props):
    """Set props of a component that is not an output of the running callback. In a
    callback that came over the page's WebSocket each prop goes to the page at once, as
    Dash streams it; otherwise they go with the callback's answer."""
    key = stringify_id(component_id)
    if ctx._websocket is not None:
        for name, value in props.items():
            ctx._websocket.set_prop_sync(key, name, value)
        return
    ctx._side_update.setdefault(key, {}).update(props)


class _Socket:
    """`ctx.websocket` (Dash's `DashWebsocketCallback`) on Tessera: the platform holds the
    connection; these calls go to it through the host."""

    # The platform ends the call when its connection closes.
    is_shutdown = False

    def set_prop_sync(self, component_id, prop_name, value):
        """Sends `{prop_name: value}` for `component_id` to the page now."""
        import struct

        import _host
        import _tessera_runtime

        key = stringify_id(component_id).encode()
        props = _tessera_runtime._to_json({prop_name: value}).encode()
        answer = _host.call(b"t" + struct.pack("<I", len(key)) + key + props)
        if answer[:1] == b"1":
            raise exceptions.CallbackException(f"set_props: {answer[1:].decode()}")
        if answer[:1] == b"2":
            # No socket after all (never for a call that came over one): answer it.
            ctx._side_update.setdefault(stringify_id(component_id), {})[prop_name] = value

    async def set_prop(self, component_id, prop_name, value):
        self.set_prop_sync(component_id, prop_name, value)

    async def get_prop(self, component_id, prop_name, timeout=30.0):
        """The value of `prop_name` of `component_id` that the page holds now (None if it
        has none); the wait counts against the callback's deadline."""
        import json

        import _host

        header = {"id": stringify_id(component_id), "names": [prop_name]}
        answer = _host.call(b"w" + json.dumps(header).encode())
        if answer[:1] == b"2":
            raise exceptions.WebsocketDisconnected()
        if answer[:1] != b"0":
            raise exceptions.CallbackException(f"get_prop: {answer[1:].decode()}")
        return json.loads(answer[1:]).get(prop_name)


def get_app():
    return _APPS[-1] if _APPS else None


# The app's URL prefix (`/apps/{tenant}/{app}/` on Tessera); "/" until the runtime sets it.
requests_pathname_prefix = "/"


def get_relative_path(path):
    """`path` under the app's prefix, as Dash's `get_relative_path`."""
    prefix = requests_pathname_prefix
    if path == "":
        return prefix
    if not path.startswith("/"):
        raise exceptions.UnsupportedRelativePath(
            f"Paths that aren't prefixed with a leading / are not supported. You supplied: {path}"
        )
    return "/".join([prefix.rstrip("/"), path.lstrip("/")])


def get_asset_url(path):
    """The URL of `assets/{path}` where the app is served, as Dash's `get_asset_url`."""
    return "/".join([requests_pathname_prefix.rstrip("/"), "assets", path])


def strip_relative_path(path):
    """`path` without the app's prefix and outer slashes, as Dash's `strip_relative_path`."""
    prefix = requests_pathname_prefix
    if path is None:
        return None
    if (prefix != "/" and not path.startswith(prefix.rstrip("/"))) or (
        prefix == "/" and not path.startswith("/")
    ):
        raise exceptions.UnsupportedRelativePath(
            "Paths that aren't prefixed with requests_pathname_prefix are not supported. "
            f"You supplied: {path} and requests_pathname_prefix was {prefix}"
        )
    if prefix != "/":
        path = path.replace(prefix.rstrip("/"), "", 1)
    return path.strip("/")


from . import dcc, html, dash_table  # noqa: E402  (they import from this package)

register_page = _pages.register_page
page_registry = _pages.PAGE_REGISTRY
page_container = html.Div(
    [
        dcc.Location(id=_ID_LOCATION, refresh="callback-nav"),
        html.Div(id=_ID_CONTENT, disable_n_clicks=True),
        dcc.Store(id=_ID_STORE),
        html.Div(id=_ID_DUMMY, disable_n_clicks=True),
    ]
)

sys.modules.setdefault("dash.dependencies", sys.modules[__name__])
