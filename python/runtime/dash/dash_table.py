"""`dash.dash_table`: the DataTable."""
import sys

from ._component import Namespace

sys.modules[__name__] = Namespace("dash_table")
