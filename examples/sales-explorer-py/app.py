"""Sales explorer, the Dash way: the demo's Rust dashboard (examples/sales-explorer) as an
`app.py` with pandas and plotly. It runs unchanged on Dash 4.4.1 (`python app.py`,
`gunicorn app:server`) and on Tessera (`kind = "python"`).

The table follows the sales explorer's specification (examples/sales-explorer/src/data.rs,
re-implemented by its check.py): 100,000 rows drawn from splitmix64 seeded with 42, six
draws a row. numpy draws them all at once: draw k mixes seed + (k + 1) x the golden gamma.
"""
import numpy as np
import pandas as pd
import plotly.graph_objects as go
from dash import Dash, Input, Output, dcc, html

REGIONS = ["North", "South", "East", "West", "Central", "Northeast", "Southwest", "Pacific"]
PRODUCTS = [f"P{n:02d}" for n in range(1, 21)]
MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
FIRST_YEAR, LAST_YEAR = 2015, 2024
ROWS, SEED = 100_000, 42


def splitmix64(seed, count):
    """The first `count` outputs of splitmix64 (wrapping 64-bit arithmetic)."""
    with np.errstate(over="ignore"):
        z = np.uint64(seed) + np.arange(1, count + 1, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def sales_table():
    draws = splitmix64(SEED, ROWS * 6).reshape(ROWS, 6)
    return pd.DataFrame(
        {
            "region": pd.Categorical.from_codes((draws[:, 0] % 8).astype(np.int8), REGIONS),
            "product": (draws[:, 1] % 20).astype(np.int8),
            "year": (FIRST_YEAR + draws[:, 2] % 10).astype(np.int16),
            "month": (draws[:, 3] % 12).astype(np.int8),
            "cents": ((1 + draws[:, 4] % 50) * (500 + draws[:, 5] % 9501)).astype(np.int64),
        }
    )


SALES = sales_table()
ROWS_PER_REGION = SALES["region"].value_counts()

app = Dash(__name__, title="Sales explorer")
server = app.server
app.layout = html.Div(
    [
        html.H2("Sales explorer"),
        dcc.Dropdown(id="region", options=REGIONS, value="North", clearable=False),
        dcc.RangeSlider(
            id="year",
            min=FIRST_YEAR,
            max=LAST_YEAR,
            step=1,
            value=[FIRST_YEAR, LAST_YEAR],
            marks={year: str(year) for year in range(FIRST_YEAR, LAST_YEAR + 1)},
        ),
        dcc.Graph(id="revenue-chart"),
        html.Div(id="summary"),
    ]
)


def years(value):
    """A year or a [from, to] pair, reversed ranges swapped."""
    ends = value if isinstance(value, list) else [value]
    if not 1 <= len(ends) <= 2 or not all(isinstance(y, (int, float)) and y == int(y) for y in ends):
        raise ValueError(f"year.value must be a year or a [from, to] pair of whole years, got {value!r}")
    return int(min(ends)), int(max(ends))


@app.callback(Output("revenue-chart", "figure"), Input("region", "value"), Input("year", "value"))
def revenue_chart(region, year):
    first, last = years(year)
    kept = SALES[(SALES["region"] == region) & SALES["year"].between(first, last)]
    cents = kept.groupby(["month", "product"])["cents"].sum()
    grid = cents.reindex(pd.MultiIndex.from_product([range(12), range(20)]), fill_value=0)
    dollars = (grid.to_numpy().reshape(12, 20) / 100).tolist()
    figure = go.Figure([go.Bar(x=PRODUCTS, y=dollars[m], name=name) for m, name in enumerate(MONTHS)])
    figure.update_layout(
        title=f"Revenue by product, {region} {first}-{last} ({len(kept)} rows)",
        barmode="stack",
        xaxis_title="Product",
        yaxis_title="Revenue (USD)",
    )
    return figure


@app.callback(Output("summary", "children"), Input("region", "value"))
def summary(region):
    if region not in REGIONS:
        return "No region selected"
    return f"{region}: {ROWS_PER_REGION[region]} rows"


if __name__ == "__main__":
    app.run(debug=True)
