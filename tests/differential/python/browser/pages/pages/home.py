import dash
from dash import dcc, html

dash.register_page(__name__, path="/", title="Regions: home")

layout = html.Div(
    [
        html.H1("All regions", id="heading"),
        dcc.Link("North in 2024", href=dash.get_relative_path("/region/north?year=2024"), id="to-north"),
        dcc.Link("Nowhere", href=dash.get_relative_path("/nowhere"), id="to-nowhere"),
    ]
)
