"""A pattern-matching app for the browser differential (tests/e2e/python-differential.test.mjs):
served unchanged by Dash 4.4.1 (gunicorn) and by Tessera (`kind = "python"`), driven by the
same clicks and keystrokes in Chromium. Filters are added with a `Patch` append; each has a
`MATCH` label, `ALL` of them make the total, and `ALLSMALLER` a running sum; an inline
clientside callback echoes the total."""
from dash import ALL, ALLSMALLER, MATCH, Dash, Input, Output, Patch, State, ctx, dcc, html

app = Dash(__name__, title="Filters")
server = app.server
app.layout = html.Div(
    [
        html.Button("Add a filter", id="add"),
        html.Div(id="filters", children=[]),
        html.Div(id="total"),
        html.Div(id="last"),
        html.Div(id="echo"),
    ]
)

# Runs in the browser: an inline function, which Dash writes into the index page.
app.clientside_callback(
    "function(total) { return total ? 'in the browser: ' + total.toUpperCase() : ''; }",
    Output("echo", "children"),
    Input("total", "children"),
)


@app.callback(
    Output("filters", "children"),
    Input("add", "n_clicks"),
    State("filters", "children"),
    prevent_initial_call=True,
)
def add(clicks, children):
    patch = Patch()
    patch.append(
        html.Div(
            [
                dcc.Input(id={"type": "amount", "index": clicks}, value=clicks, type="number"),
                html.Span(id={"type": "twice", "index": clicks}),
                html.Span(id={"type": "running", "index": clicks}),
            ],
            className="filter",
        )
    )
    return patch


@app.callback(Output({"type": "twice", "index": MATCH}, "children"), Input({"type": "amount", "index": MATCH}, "value"))
def twice(value):
    return f"twice: {float(value or 0) * 2}"


@app.callback(
    Output({"type": "running", "index": MATCH}, "children"),
    Input({"type": "amount", "index": MATCH}, "value"),
    Input({"type": "amount", "index": ALLSMALLER}, "value"),
)
def running(own, before):
    return f"running: {float(sum(v or 0 for v in before) + (own or 0))}"


@app.callback(Output("total", "children"), Input({"type": "amount", "index": ALL}, "value"))
def total(values):
    return f"{len(values)} filters, total {float(sum(v or 0 for v in values))}"


@app.callback(Output("last", "children"), Input({"type": "amount", "index": ALL}, "value"), prevent_initial_call=True)
def last(values):
    return f"changed: {ctx.triggered_id['index'] if ctx.triggered_id else None}"
