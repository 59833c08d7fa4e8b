import dash
from dash import html

dash.register_page(__name__)

layout = html.H1("This page does not exist", id="heading")
