"""`dash.dcc`: Dash's core components (Graph, Dropdown, Input, Store, ...)."""
import sys

from .._component import Namespace

sys.modules[__name__] = Namespace("dash_core_components")
