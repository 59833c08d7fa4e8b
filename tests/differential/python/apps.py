"""The Python twins of the apps in tests/differential/src/lib.rs, written with real dash.

Each function returns a Dash app; keep them line-for-line translations of the Rust ones.
"""

from dash import (
    ALL, ALLSMALLER, MATCH, Dash, Input, Output, Patch, State, ctx, dcc, html, no_update, set_props,
)
from dash import get_relative_path, strip_relative_path
from dash.exceptions import PreventUpdate
import plotly.graph_objects as go


def multi_state():
    app = Dash("multi_state")
    app.layout = html.Div([
        dcc.Input(id="a", value=1),
        dcc.Input(id="b", value=2),
        dcc.Input(id="label", value="sum"),
        html.Div(id="total"),
        dcc.Input(id="half"),
        html.Button(id="go"),
        dcc.Input(id="name", value="Ada"),
        html.Div(id="greeting"),
    ])

    @app.callback(
        [Output("total", "children"), Output("half", "value")],
        [Input("a", "value"), Input("b", "value")],
        State("label", "value"),
    )
    def total(a, b, label):
        a, b = float(a), float(b)
        return [f"{label}: {a + b}", (a + b) / 2.0]

    @app.callback(Output("greeting", "children"), Input("go", "n_clicks"), State("name", "value"))
    def greet(clicks, name):
        return f"Hello {name} ({clicks or 0} clicks)"

    return app


CITIES = {"France": ["Paris", "Lyon"], "Japan": ["Tokyo", "Osaka", "Kyoto"]}


def chained():
    app = Dash("chained")
    app.layout = html.Div([
        dcc.RadioItems(id="country", value="France"),
        dcc.RadioItems(id="city"),
        html.Div(id="display"),
    ])

    @app.callback(Output("city", "options"), Input("country", "value"))
    def options(country):
        return CITIES.get(country, [])

    @app.callback(Output("city", "value"), Input("city", "options"))
    def first_city(options):
        return options[0] if options else None

    @app.callback(Output("display", "children"), [Input("country", "value"), Input("city", "value")])
    def display(country, city):
        return f"{city} is in {country}"

    return app


def prevent():
    app = Dash("prevent")
    app.layout = html.Div([
        html.Button(id="btn"),
        html.Button(id="reset"),
        html.Div(id="out"),
        html.Div(id="x"),
        html.Div(id="y"),
    ])

    @app.callback(Output("out", "children"), Input("btn", "n_clicks"), prevent_initial_call=True)
    def out(clicks):
        if clicks is None:
            raise PreventUpdate
        if clicks % 3 == 0:
            return no_update
        return f"clicked {clicks}"

    @app.callback([Output("x", "children"), Output("y", "children")], Input("btn", "n_clicks"))
    def xy(clicks):
        clicks = clicks or 0
        if clicks == 5:
            return [no_update, no_update]
        if clicks % 2 == 0:
            return [no_update, f"y{clicks}"]
        return no_update

    @app.callback(
        Output("out", "children", allow_duplicate=True),
        Input("reset", "n_clicks"),
        prevent_initial_call=True,
    )
    def reset(_clicks):
        return "reset"

    @app.callback(Input("reset", "n_clicks"), State("out", "children"))
    def side_effect(_clicks, _out):
        return None

    return app


def python_repr(value):
    return repr(float(value)) if isinstance(value, float) else repr(value)


def patterns():
    app = Dash("patterns")
    app.layout = html.Div([
        dcc.Input(id={"type": "f", "index": 0}, value=1),
        dcc.Input(id={"type": "f", "index": 1}, value=2),
        dcc.Input(id={"type": "f", "index": 2}),
        dcc.Input(id="scale", value=2),
        html.Div(id="summary"),
    ])

    @app.callback(
        Output({"type": "label", "index": MATCH}, "children"),
        Input({"type": "f", "index": MATCH}, "value"),
        State({"type": "f", "index": MATCH}, "id"),
    )
    def label(value, id_):
        return f"{id_['index']}: {python_repr(value)}"

    @app.callback(Output("summary", "children"), Input({"type": "f", "index": ALL}, "value"))
    def summary(values):
        total = float(sum(v for v in values if v is not None))
        return f"{len(values)} fields, total {total}"

    @app.callback(
        Output({"type": "scaled", "index": ALL}, "children"),
        Input("scale", "value"),
        State({"type": "f", "index": ALL}, "value"),
    )
    def scaled(scale, values):
        return [no_update if v is None else float(v) * float(scale) for v in values]

    @app.callback(
        Output({"type": "running", "index": MATCH}, "children"),
        Input({"type": "f", "index": MATCH}, "value"),
        Input({"type": "f", "index": ALLSMALLER}, "value"),
    )
    def running(own, before):
        total = float(sum(v for v in before if v is not None) + (own or 0))
        indices = [item["id"]["index"] for item in ctx.inputs_list[1]]
        return {"after": indices, "sum": total}

    return app


def describe():
    return {
        "triggered_id": ctx.triggered_id,
        "triggered_prop_ids": dict(ctx.triggered_prop_ids),
        "inputs_list": ctx.inputs_list,
        "states_list": ctx.states_list,
        "outputs_list": ctx.outputs_list,
    }


def context():
    app = Dash("context")
    app.layout = html.Div([
        html.Button(id="b1"),
        html.Button(id={"type": "btn", "index": 1}),
        html.Button(id={"type": "btn", "index": 2}),
        dcc.Input(id="s", value="state"),
        dcc.Store(id="ctx"),
        dcc.Store(id="ctx-multi"),
        dcc.Store(id="other"),
    ])

    @app.callback(
        Output("ctx", "data"),
        [Input("b1", "n_clicks"), Input({"type": "btn", "index": ALL}, "n_clicks")],
        State("s", "value"),
    )
    def single(_b1, _buttons, _s):
        return describe()

    @app.callback(
        [Output("ctx-multi", "data"), Output("other", "data")],
        Input({"type": "btn", "index": ALL}, "n_clicks"),
    )
    def multi(_buttons):
        return [describe(), list(ctx.triggered_prop_ids)]

    return app


def app_error(err):
    set_props("log", {"children": f"app: {err}"})
    return None


def features():
    app = Dash("features", on_error=app_error)
    app.layout = html.Div([
        html.Button(id="save"),
        html.Div(id="out"),
        html.Div(id="status"),
        html.Button(id="ping"),
        html.Div(id="pinged"),
        html.Button(id="fail"),
        html.Div(id="result"),
        html.Div(id="log"),
        html.Div([
            html.Button(id="fail2"),
            html.Div(id="c2"),
            html.Button(id="add"),
            dcc.Store(id="doc"),
            html.Button(id="go"),
            html.Div(id="ran"),
            html.Button(id="reset"),
        ]),
    ])

    @app.callback(Output("out", "children"), Input("save", "n_clicks"))
    def save(clicks):
        clicks = clicks or 0
        set_props("status", {"children": f"saved {clicks}"})
        set_props({"type": "card", "index": 1}, {"title": "t"})
        set_props("status", {"title": "merged"})
        return f"out {clicks}"

    @app.callback(Input("ping", "n_clicks"))
    def ping(clicks):
        if clicks is not None:
            set_props("pinged", {"children": f"ping {clicks}"})

    def handle(err):
        set_props("status", {"children": "handled"})
        return [f"failed: {err}", no_update]

    @app.callback(
        [Output("result", "children"), Output("log", "children")],
        Input("fail", "n_clicks"),
        on_error=handle,
    )
    def fail(clicks):
        clicks = clicks or 0
        if clicks % 2 == 1:
            raise Exception("boom")
        return ["ok", "fine"]

    @app.callback(Output("c2", "children"), Input("fail2", "n_clicks"))
    def fail2(_clicks):
        raise Exception("kaput")

    @app.callback(Output("doc", "data"), Input("add", "n_clicks"))
    def add(clicks):
        clicks = clicks or 0
        patch = Patch()
        patch["rows"].append(clicks)
        patch["rows"].prepend(0)
        patch["rows"].insert(1, "x")
        patch["rows"].extend([7, 8])
        patch["rows"].remove(2)
        patch["count"] += clicks
        patch["total"] -= 1
        patch["scale"] *= 2
        patch["ratio"] /= 4
        patch["meta"].update({"by": "me"})
        del patch["old"]
        patch["rows"][0] = "first"
        patch["tmp"].clear()
        patch["order"].reverse()
        return patch

    @app.callback(
        Output("ran", "children"),
        Input("go", "n_clicks"),
        running=[(Output("go", "disabled"), True, False)],
    )
    def ran(clicks):
        return f"ran {clicks or 0}"

    @app.callback(
        Output("out", "children", allow_duplicate=True),
        Input("reset", "n_clicks"),
        prevent_initial_call="initial_duplicate",
    )
    def reset(_clicks):
        return "reset"

    return app


def shapes():
    app = Dash("shapes")
    app.layout = html.Div([
        html.Div(id="empty"),
        dcc.Link(id="link", href="/page-2"),
        dcc.Markdown(id="md"),
        dcc.Dropdown(id="dd", options=["North", "South"], value="North"),
        dcc.Checklist(id="nums", options=[1, 2.5]),
        dcc.Location(id="loc"),
        html.Div(id="rel"),
        html.Div(id="cs"),
        dcc.Graph(id="chart"),
    ])

    app.clientside_callback(
        "function(value) { return value; }",
        Output("cs", "children"),
        Input("dd", "value"),
    )

    @app.callback(Output("rel", "children"), Input("loc", "pathname"))
    def rel(pathname):
        return [get_relative_path("/page-2"), strip_relative_path(pathname)]

    @app.callback(Output("chart", "figure"), Input("dd", "value"))
    def chart(value):
        return go.Figure(go.Bar(x=[value], y=[3]))

    return app


APPS = {
    "multi_state": multi_state,
    "chained": chained,
    "prevent": prevent,
    "patterns": patterns,
    "context": context,
    "features": features,
    "shapes": shapes,
}
