"""Run once per app version, before the snapshot: imports the author's app (and with it
pandas, plotly, ...) and warms what a first callback would otherwise load lazily, so that
no viewer waits for it."""
import os
import sys
import time

_started = time.perf_counter()
import _tessera_runtime  # noqa: E402


class _LoadingEnviron(type(os.environ)):
    """`os.environ` while app.py loads: a missing name says why it is missing."""

    def __getitem__(self, key):
        try:
            return super().__getitem__(key)
        except KeyError:
            raise KeyError(
                f"{key!r}: the app's settings are in os.environ while its callbacks run, "
                "not while app.py loads (read them inside a callback)"
            ) from None


# The packages the app's requirements.txt installed at deploy (pure Python, in its bundle):
# a site folder, so that their .pth files are read as Python reads them.
if os.path.isdir("/app/.site"):
    import site

    site.addsitedir("/app/.site")

# Where Tessera serves the app (`/apps/{tenant}/{app}/`), for `get_relative_path` and
# `get_asset_url` while app.py loads, as Dash's `requests_pathname_prefix`.
try:
    with open("/app/.tessera/app.json", encoding="utf-8") as _config:
        import json

        import dash

        dash.requests_pathname_prefix = json.load(_config)["requests_pathname_prefix"]
except FileNotFoundError:
    pass

_plain = type(os.environ)
os.environ.__class__ = _LoadingEnviron
try:
    _tessera_runtime.load("/app/app.py")
finally:
    os.environ.__class__ = _plain
_tessera_runtime.warm_up()
print(f"tessera: app.py loaded in {(time.perf_counter() - _started) * 1000:.0f} ms", file=sys.stderr)
# The state after this turn is the version's memory image: nothing may wait in a buffer, or
# every instance restored from it would write it again.
sys.stdout.flush()
sys.stderr.flush()
