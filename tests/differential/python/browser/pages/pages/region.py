import dash
from dash import Input, Output, callback, dcc, html

dash.register_page(
    __name__,
    path_template="/region/<name>",
    title=lambda name=None: f"Region {name}",
    order=1,
)


def layout(name=None, year="2025", **_query):
    return html.Div(
        [
            html.H1(f"Region {name}", id="heading"),
            dcc.Dropdown(["2023", "2024", "2025"], year, id="year", clearable=False),
            html.P(id="summary"),
        ]
    )


@callback(Output("summary", "children"), Input("year", "value"), Input("heading", "children"))
def summary(year, heading):
    return f"{heading}, {year}"
