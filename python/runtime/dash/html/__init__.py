"""`dash.html`: every HTML element, as `html.Div(children, id=..., ...)`."""
import sys

from .._component import Namespace

sys.modules[__name__] = Namespace("dash_html_components")
