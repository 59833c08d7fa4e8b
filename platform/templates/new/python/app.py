"""{title}: a Dash app served by Tessera. Edit, commit and `git push`."""

import pandas as pd
import plotly.express as px
from dash import Dash, Input, Output, dcc, html

sales = pd.DataFrame(
    {
        "region": ["North", "North", "South", "South", "East", "East", "West", "West"],
        "product": ["Tea", "Coffee", "Tea", "Coffee", "Tea", "Coffee", "Tea", "Coffee"],
        "units": [12, 7, 9, 14, 5, 8, 11, 6],
    }
)

app = Dash(__name__)
# Tessera serves the app itself; `server` and `app.run` are kept so the file also runs
# with plain `python app.py`.
server = app.server

app.layout = html.Div(
    [
        html.H1("{title}"),
        dcc.Dropdown(sorted(sales["region"].unique()), "North", id="region", clearable=False),
        dcc.Graph(id="units"),
    ]
)


@app.callback(Output("units", "figure"), Input("region", "value"))
def units_by_product(region):
    rows = sales[sales["region"] == region]
    return px.bar(rows, x="product", y="units", title=f"Units sold in {region}")


if __name__ == "__main__":
    app.run(debug=True)
