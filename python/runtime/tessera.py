"""What Tessera gives a Python dashboard beyond Dash: the data sources and the cache granted
to the app, its settings, who is viewing (`tessera.viewer()`) and HTTP requests to the
hosts on its outbound allowlist (`tessera.fetch(url)`).

    import tessera

    orders = tessera.query("warehouse", "select region, amount from orders where year = ?", [2026])
    tessera.cache.set("greeting", "hello", ttl=60)

    @tessera.cache.memoize(timeout=300)
    def slow_total(region): ...

Settings are in `os.environ` while a callback runs (`tessera.setting(name)` reads one);
the data folder shipped with the app is at `/data` (`pd.read_csv("data/sales.csv")`).
Each call reaches the host through `_host.call`; see `_tessera_runtime` for the frames.
"""
import functools
import hashlib
import json
import os
import pickle
import struct

__all__ = [
    "query",
    "cache",
    "setting",
    "viewer",
    "fetch",
    "Response",
    "QueryError",
    "CacheError",
    "ViewerError",
    "HttpError",
]


class QueryError(Exception):
    """A query that gave no answer. `kind` says why: "not-granted" (no such source for this
    app), "refused" (not one read-only statement, an argument over its limit), "limit" (a
    timeout, a row or byte cap), "failed" (the database's error) or "unavailable"."""

    def __init__(self, kind, message):
        super().__init__(f"{kind}: {message}")
        self.kind = kind
        self.message = message


class CacheError(Exception):
    """The cache refused or could not answer."""


class ViewerError(Exception):
    """The viewer cannot be told (a memoized callback: its answer is shared)."""


class HttpError(Exception):
    """An HTTP request that was refused by the app's outbound rules or failed (a timeout,
    a name that does not resolve, a response over the size cap), or whose status was an
    error (`Response.raise_for_status`)."""


def _call(kind, header, tail=b""):
    import _host

    head = json.dumps(header).encode()
    answer = _host.call(kind + struct.pack("<I", len(head)) + head + tail)
    return answer[:1], answer[1:]


def query(source, sql, params=()):
    """Runs one read-only statement on the data source `source` granted to this app, with
    `params` bound to its placeholders (None, bool, int, float or str), and answers a
    pandas DataFrame (a dict of column lists when pandas is not imported). Raises
    QueryError."""
    status, body = _call(b"d", {"source": source, "sql": sql, "params": list(params)})
    if status != b"0":
        refusal = json.loads(body)
        raise QueryError(refusal["kind"], refusal["message"])
    return _frame(json.loads(body)["columns"])


def _frame(columns):
    """Columns of the host's JSON to a DataFrame typed as `pandas.read_sql` types them:
    integers int64 (float64 with NaN when a NULL is among them), floats float64, text and
    bytes objects, dates and timestamps datetime64 (NaT for NULL)."""
    names = [column["name"] for column in columns]
    try:
        import pandas as pd
    except ImportError:
        return {name: _values(column) for name, column in zip(names, columns)}
    series = []
    for column in columns:
        kind, items = column["type"], _values(column)
        nulls = None in column["values"]
        if kind in ("date32", "timestamp", "timestamp_utc"):
            unit = "D" if kind == "date32" else "us"
            one = pd.Series(pd.to_datetime(items, unit=unit, utc=kind == "timestamp_utc"))
        elif kind in ("int64", "float64") or (kind == "bool" and not nulls):
            dtype = {"int64": "float64" if nulls else "int64", "float64": "float64"}.get(kind, "bool")
            one = pd.Series(items, dtype=dtype)
        else:
            one = pd.Series(items, dtype="object")
        series.append(one)
    frame = pd.DataFrame(dict(enumerate(series)))
    frame.columns = names
    return frame


def _values(column):
    """A column's values as Python objects: bytes for binary, NaN for a NULL among numbers."""
    items = column["values"]
    if column["type"] == "binary":
        return [None if v is None else bytes.fromhex(v) for v in items]
    if column["type"] in ("int64", "float64") and None in items:
        return [float("nan") if v is None else v for v in items]
    return items


class _Cache:
    """The app's cache (shared by its viewers and replicas, bounded by the tenant's quota).
    Values are bytes; a str is stored as UTF-8."""

    def get(self, key):
        """The value of `key`, or None."""
        status, body = _call(b"g", {"key": key})
        if status == b"2":
            return None
        if status != b"0":
            raise CacheError(body.decode(errors="replace"))
        return body

    def set(self, key, value, ttl=300):
        """Keeps `value` under `key` for `ttl` seconds."""
        if isinstance(value, str):
            value = value.encode()
        status, body = _call(b"s", {"key": key, "ttl": int(ttl)}, bytes(value))
        if status != b"0":
            raise CacheError(body.decode(errors="replace"))

    def delete(self, key):
        """Forgets `key`."""
        status, body = _call(b"x", {"key": key})
        if status != b"0":
            raise CacheError(body.decode(errors="replace"))

    def memoize(self, timeout=300):
        """Flask-Caching's `memoize`: the function's pickled result is kept for `timeout`
        seconds per set of arguments. When the cache cannot answer, the function runs."""

        def decorator(function):
            name = f"{function.__module__}.{function.__qualname__}"

            @functools.wraps(function)
            def cached(*args, **kwargs):
                digest = hashlib.sha256(
                    pickle.dumps((args, sorted(kwargs.items())), protocol=4)
                ).hexdigest()
                key = f"memoize:{name}:{digest}"
                try:
                    found = self.get(key)
                except CacheError:
                    return function(*args, **kwargs)
                if found is not None:
                    return pickle.loads(found)
                result = function(*args, **kwargs)
                try:
                    self.set(key, pickle.dumps(result, protocol=4), ttl=timeout)
                except CacheError:
                    pass
                return result

            return cached

        return decorator


cache = _Cache()


def setting(name, default=None):
    """The app's setting `name` (plain or secret), or `default`. Only while a callback runs:
    `app.py`'s own code runs once per version, before any setting is given."""
    return os.environ.get(name, default)


def viewer():
    """Who is viewing: `{"user_id": ..., "email": ..., "groups": [...]}` for a signed-in
    person (`email` only when they are a member of the app's tenant, `groups` their teams
    in it), None for an anonymous viewer. Only while a callback runs."""
    import _host

    answer = _host.call(b"v")
    status, body = answer[:1], answer[1:]
    if status == b"2":
        return None
    if status != b"0":
        raise ViewerError(body.decode())
    return json.loads(body)


class Response:
    """What `fetch` answers, named as in `requests`: `status_code`, `headers` (a dict,
    names in lower case), `content` (bytes), `text`, `json()`, `ok`, `raise_for_status()`."""

    def __init__(self, url, status_code, headers, content):
        self.url = url
        self.status_code = status_code
        self.headers = headers
        self.content = content

    @property
    def ok(self):
        return self.status_code < 400

    @property
    def text(self):
        return self.content.decode("utf-8", errors="replace")

    def json(self):
        return json.loads(self.content)

    def raise_for_status(self):
        if not self.ok:
            raise HttpError(f"{self.status_code} for {self.url}")
        return self

    def __repr__(self):
        return f"<Response [{self.status_code}]>"


def fetch(url, method="GET", headers=None, body=None, json_body=None):
    """Sends one HTTP request from the running callback to a host on the app's outbound
    allowlist (its `TESSERA_OUTBOUND_HOSTS` setting; public addresses only, the
    callback's deadline and the platform's caps) and answers a `Response`. `body` is
    bytes or str; `json_body` is sent as JSON. Raises HttpError when it is refused or
    fails."""
    import _host

    headers = dict(headers or {})
    if json_body is not None:
        body = json.dumps(json_body)
        headers.setdefault("content-type", "application/json")
    if isinstance(body, str):
        body = body.encode()
    header = json.dumps(
        {"method": method.upper(), "url": url, "headers": [[k, str(v)] for k, v in headers.items()]}
    ).encode()
    answer = _host.call(b"h" + struct.pack("<I", len(header)) + header + (body or b""))
    status, payload = answer[:1], answer[1:]
    if status != b"0":
        raise HttpError(f"{method.upper()} {url.split('?')[0]}: {payload.decode()}")
    (length,) = struct.unpack("<I", payload[:4])
    meta = json.loads(payload[4 : 4 + length])
    response_headers = {}
    for name, value in meta["headers"]:
        response_headers[name] = value if name not in response_headers else f"{response_headers[name]}, {value}"
    return Response(url, meta["status"], response_headers, payload[4 + length :])
