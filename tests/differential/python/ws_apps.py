"""Python twins of the WebSocket callbacks of two Tessera apps, on Dash 4.4.1's FastAPI
backend (the backend that serves `_dash-ws-callback`; Flask has no WebSocket).

- `live_orders`: the `websocket=True` callbacks of examples/live-orders (streaming a Patch
  per tick through `set_props`, reading the page through `get_props`, a clock) and its
  ordinary three-output callback, which must not run over the socket.
- `memo`: tests/guests/memo, whose callbacks all go over the socket (app-wide
  `websocket_callbacks=True`): an answer, PreventUpdate and a failure.

Keep them line-for-line translations of the Rust; only what the socket carries matters.
"""

import time

from dash import Dash, Input, Output, Patch, ctx, dcc, html, set_props
from dash.exceptions import PreventUpdate

STREAMED = 100
TICK = 0.01


def clock_time(millis):
    seconds, ms = divmod(millis, 1000)
    return f"{seconds // 3600 % 24:02}:{seconds // 60 % 60:02}:{seconds % 60:02}.{ms:03}"


def live_orders():
    app = Dash("live_orders", backend="fastapi")
    app.layout = html.Div([
        html.H2("Live orders"),
        dcc.Interval(id="tick", interval=2000),
        dcc.Store(id="window"),
        html.Div(id="orders-count"),
        dcc.Graph(id="orders-chart"),
        html.P(id="orders-stamp"),
        html.Button("Stream 100 ticks", id="stream-start"),
        html.Button("Server clock", id="stream-ping"),
        html.Button("Count the ticks shown", id="stream-ask"),
        html.P("not streamed yet", id="stream-status"),
        html.P(id="stream-clock"),
        html.P(id="stream-count"),
        html.Ul([], id="stream-feed"),
    ])

    @app.callback(
        Output("stream-status", "children"),
        Input("stream-start", "n_clicks"),
        websocket=True,
        prevent_initial_call=True,
    )
    def stream_ticks(_clicks):
        for n in range(1, STREAMED + 1):
            patch = Patch()
            patch.append(html.Li(f"tick {n}"))
            set_props("stream-feed", {"children": patch})
            time.sleep(TICK)
        return f"streamed {STREAMED} ticks"

    @app.callback(
        Output("stream-clock", "children"),
        Input("stream-ping", "n_clicks"),
        websocket=True,
        prevent_initial_call=True,
    )
    def server_clock(_clicks):
        return f"server clock {clock_time(time.time_ns() // 1_000_000)} UTC"

    @app.callback(
        Output("stream-count", "children"),
        Input("stream-ask", "n_clicks"),
        websocket=True,
        prevent_initial_call=True,
    )
    async def count_ticks(_clicks):
        socket = ctx.websocket
        if socket is None:
            return "no page to ask (not over a WebSocket)"
        children = await socket.get_prop("stream-feed", "children")
        shown = len(children) if isinstance(children, list) else 0
        return f"the page shows {shown} ticks"

    @app.callback(
        [
            Output("orders-count", "children"),
            Output("orders-chart", "figure"),
            Output("orders-stamp", "children"),
        ],
        Input("window", "data"),
    )
    def orders(_window):
        return ["0 orders", {}, "now"]

    return app


def memo():
    app = Dash("memo", backend="fastapi", websocket_callbacks=True)
    app.layout = html.Div([
        dcc.Input(id="in", value="a"),
        html.Div(id="memo"),
        html.Div(id="brief"),
        html.Div(id="plain"),
    ])

    def stamped(value):
        value = value or ""
        if value == "fail":
            raise RuntimeError("asked to fail")
        if value == "prevent":
            raise PreventUpdate
        if value.startswith("big:"):
            return "x" * int(value[4:] or 0)
        return f"{value} @{time.time_ns()}"

    for name in ("memo", "brief", "plain"):
        app.callback(Output(name, "children"), Input("in", "value"))(stamped)

    return app


APPS = {"live_orders": live_orders, "memo": memo}
