"""A multi-page app as Dash's documentation writes one (`use_pages=True`, a `pages/`
folder, a navigation bar from `dash.page_registry`, `dcc.Link`s, a path template, query
parameters, a 404 page). The browser differential (tests/e2e/python-differential.test.mjs)
runs it under Dash 4.4.1 with gunicorn and on Tessera."""
import dash
from dash import Dash, dcc, html

app = Dash(__name__, use_pages=True, title="Regions")
server = app.server

app.layout = html.Div(
    [
        html.Nav(
            [
                dcc.Link(page["name"], href=page["relative_path"], id=f"nav-{page['module'].split('.')[-1]}")
                for page in dash.page_registry.values()
                if page["module"] != "pages.not_found_404"
            ],
            id="nav",
        ),
        dash.page_container,
    ]
)

if __name__ == "__main__":
    app.run(debug=True)
