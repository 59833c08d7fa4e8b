"""Run once per app version, before the snapshot: imports the author's app (and with it
pandas, plotly, ...) and warms what a first callback would otherwise load lazily, so that
no viewer waits for it."""
import sys
import time

_started = time.perf_counter()
import _tessera_runtime  # noqa: E402

_tessera_runtime.load("/app/app.py")
_tessera_runtime.warm_up()
print(f"tessera: app.py loaded in {(time.perf_counter() - _started) * 1000:.0f} ms", file=sys.stderr)
# The state after this turn is the version's memory image: nothing may wait in a buffer, or
# every instance restored from it would write it again.
sys.stdout.flush()
sys.stderr.flush()
