"""A background callback as Dash's documentation writes one: a DiskcacheManager, progress
outputs with their defaults, `running` outputs and a cancel button. The browser
differential (tests/e2e/python-differential.test.mjs) runs it under Dash 4.4.1 with
gunicorn and on Tessera, which runs it as a job and ignores the manager."""
import time

import diskcache
from dash import Dash, DiskcacheManager, Input, Output, callback, html

cache = diskcache.Cache()
app = Dash(__name__, background_callback_manager=DiskcacheManager(cache))
server = app.server

app.layout = html.Div(
    [
        html.Button("Build", id="build"),
        html.Button("Cancel", id="cancel", disabled=True),
        html.Progress(id="bar", value="0", max="6"),
        html.P("No report yet", id="status"),
    ]
)


@callback(
    Output("status", "children"),
    Input("build", "n_clicks"),
    background=True,
    running=[
        (Output("build", "disabled"), True, False),
        (Output("cancel", "disabled"), False, True),
    ],
    cancel=Input("cancel", "n_clicks"),
    progress=[Output("bar", "value"), Output("bar", "max")],
    progress_default=["0", "6"],
    interval=250,
    prevent_initial_call=True,
)
def build(set_progress, n_clicks):
    # The second report takes long enough to be cancelled half-way.
    pause = 0.4 if n_clicks == 1 else 1.5
    for step in range(1, 7):
        time.sleep(pause)
        set_progress((str(step), "6"))
    return f"Report {n_clicks} is ready: 6 sections."


if __name__ == "__main__":
    app.run(debug=True)
