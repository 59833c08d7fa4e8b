"""The sales explorer written as a Dash 4.4.1 app, for scripts/bench.sh's comparison.

The same component ids, callbacks and answers as examples/sales-explorer, served under
the same path (/apps/demo/sales-explorer/) so wrk sends both servers byte-identical
requests (tests/benches/wrk/dash.lua). The table is the example's own specification
(examples/sales-explorer/check.py, imported). The Tessera app memoizes both callbacks
(the summary for five minutes, the chart for a minute), so this app keeps the same
answers too: the region counts once at start, the chart's figure with `functools.cache`
(warmed for the benchmark's requests before the workers fork), as a Dash author would
with `flask_caching`'s memoize.

    gunicorn -w 5 -b 127.0.0.1:PORT --chdir tests/benches/dash_sales app:server
"""

import functools
import os
import sys

from dash import Dash, Input, Output, dcc, html
import plotly.graph_objects as go

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, "..", "..", "..", "examples", "sales-explorer"))
import check  # noqa: E402  (the example's specification of its table)

COUNTS = {}
for row_region, *_ in check.rows():
    COUNTS[row_region] = COUNTS.get(row_region, 0) + 1

app = Dash(__name__, url_base_pathname="/apps/demo/sales-explorer/", title="Sales explorer")
server = app.server

app.layout = html.Div(
    [
        html.H1("Sales explorer"),
        dcc.Dropdown(id="region", options=check.REGIONS, value="North", clearable=False),
        dcc.RangeSlider(id="year", min=2015, max=2024, step=1, value=[2015, 2024]),
        html.Div(id="summary"),
        dcc.Graph(id="revenue-chart"),
    ]
)


@app.callback(Output("summary", "children"), Input("region", "value"))
def summary(region):
    if region not in COUNTS:
        return "No region selected"
    return f"{region}: {COUNTS[region]} rows"


@functools.cache
def chart_for(region, first, last):
    """The chart's figure, memoized whole as Tessera's `memoize(ttl)` keeps the answer (Dash
    still serializes it on every request, as it does a `flask_caching` hit)."""
    data = check.report(region, first, last)
    products = [f"P{n:02d}" for n in range(1, 21)]
    figure = go.Figure(
        [go.Bar(name=month, x=products, y=totals) for month, totals in data["months"].items()]
    )
    figure.update_layout(
        barmode="stack",
        title=data["title"],
        xaxis_title="Product",
        yaxis_title="Revenue (USD)",
    )
    return figure


# Warmed before gunicorn forks its workers (`--preload`), as Tessera's memo is warm after
# the first request of each region.
for warm_region in check.REGIONS:
    chart_for(warm_region, 2015, 2024)


@app.callback(Output("revenue-chart", "figure"), Input("region", "value"), Input("year", "value"))
def chart(region, year):
    first, last = (year, year) if isinstance(year, int) else (year[0], year[1])
    return chart_for(region, min(first, last), max(first, last))
