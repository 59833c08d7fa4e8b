"""The Python benchmark's probe (scripts/bench-python.sh): the sales explorer's table and
callbacks (`sales.py`, a copy of examples/sales-explorer-py/app.py made by the script),
timed from inside, so that the same work can be compared in the sandbox and in CPython."""
import json
import time

from dash import Dash, Input, Output, html

import sales

app = Dash(__name__, title="Probe")
server = app.server
app.layout = html.Div([html.Button("measure", id="go"), html.Pre(id="out")])


def best(work, times=5):
    """The fastest of `times` runs of `work`, in ms."""
    timings = []
    for _ in range(times):
        started = time.perf_counter()
        work()
        timings.append(time.perf_counter() - started)
    return min(timings) * 1000


@app.callback(Output("out", "children"), Input("go", "n_clicks"))
def measure(clicks):
    if clicks == -1:  # holds its instance, so that a second call at once needs another
        time.sleep(2)
        return "held"
    return json.dumps(
        {
            "groupby_ms": best(lambda: sales.SALES.groupby(["region", "product"], observed=True)["cents"].sum()),
            "chart_ms": best(lambda: sales.revenue_chart("West", [2015, 2024]).to_json()),
            "summary_ms": best(lambda: sales.summary("West")),
        }
    )
