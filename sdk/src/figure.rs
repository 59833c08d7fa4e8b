//! Figures for `dcc.Graph`: a `plotly::Plot` or any JSON figure.
//!
//! A [`Figure`] serialises as `{"data": [...], "layout": {...}}`, the shape `dcc.Graph`
//! reads from its `figure` prop. The Rust `plotly` crate's own serialisation of a `Plot`
//! also carries its HTML-export configuration, which a Dash figure has no use for, so this
//! module writes only the two keys a figure is made of (plus `frames` when a plot has
//! animation frames). It does not render anything; plotly.js in the browser does.
//!
//! Like plotly.py, which applies its default `plotly` template to every `go.Figure`, a
//! figure built from a `Plot` carries that template ([`default_template`]: the light blue
//! plot area, white grid, the colourway) as `layout.template`, unless the plot sets its own
//! (`Layout::template`). A JSON figure is sent as written, as a dict is in Dash.

use plotly::Plot;
use serde::ser::{Error as _, Serialize, SerializeMap, Serializer};
use serde_json::Value;

/// plotly.py's default template, `plotly.io.templates['plotly']`, as plotly 7.1.0 (the one
/// Dash 4.4.1 installs) writes it; `scripts/plotly-template.sh` regenerates the file, and
/// the differential suite checks it against plotly.py.
const PLOTLY_TEMPLATE: &str = include_str!("../assets/plotly_template.json");

/// plotly.py's default `plotly` template, which figures built from a `Plot` carry.
pub fn default_template() -> &'static Value {
    static TEMPLATE: std::sync::OnceLock<Value> = std::sync::OnceLock::new();
    TEMPLATE.get_or_init(|| {
        serde_json::from_str(PLOTLY_TEMPLATE).expect("the embedded plotly template is JSON")
    })
}

/// A figure for `dcc.Graph`'s `figure` prop, built from a `plotly::Plot` or a JSON value.
///
/// Return it from a callback (`Ok(Figure::from(plot))`) or pass it to
/// [`Graph::figure`](crate::dcc::Graph::figure).
#[derive(Clone)]
pub enum Figure {
    /// A figure built with the `plotly` crate; serialised only when it is sent.
    Plot(Box<Plot>),
    /// A figure already in JSON form (`{"data": [...], "layout": {...}}`).
    Json(Value),
}

impl Figure {
    /// The figure as JSON.
    ///
    /// # Errors
    ///
    /// Fails only if a trace's own serialisation fails, which the `plotly` crate's traces
    /// never do; the error is passed on rather than hidden.
    pub fn to_value(&self) -> serde_json::Result<Value> {
        match self {
            Figure::Json(value) => Ok(value.clone()),
            Figure::Plot(_) => serde_json::to_value(self),
        }
    }
}

impl std::fmt::Debug for Figure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // `plotly::Plot` has no `Debug`; its JSON is the useful view anyway.
        match self {
            Figure::Plot(plot) => write!(f, "Figure::Plot({} traces)", plot.data().len()),
            Figure::Json(value) => write!(f, "Figure::Json({value})"),
        }
    }
}

impl From<Plot> for Figure {
    fn from(plot: Plot) -> Self {
        Figure::Plot(Box::new(plot))
    }
}

impl From<&Plot> for Figure {
    fn from(plot: &Plot) -> Self {
        Figure::Plot(Box::new(plot.clone()))
    }
}

impl From<Value> for Figure {
    fn from(value: Value) -> Self {
        Figure::Json(value)
    }
}

impl Serialize for Figure {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Figure::Json(value) => value.serialize(serializer),
            Figure::Plot(plot) => {
                let frames = plot.frames().filter(|frames| !frames.is_empty());
                let mut map = serializer.serialize_map(Some(2 + usize::from(frames.is_some())))?;
                map.serialize_entry("data", plot.data())?;
                let mut layout = serde_json::to_value(plot.layout()).map_err(S::Error::custom)?;
                if let Value::Object(layout) = &mut layout
                    && !layout.contains_key("template")
                {
                    layout.insert("template".into(), default_template().clone());
                }
                map.serialize_entry("layout", &layout)?;
                if let Some(frames) = frames {
                    map.serialize_entry("frames", frames)?;
                }
                map.end()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use plotly::{Bar, Layout};
    use serde_json::json;

    #[test]
    fn plot_serialises_to_data_and_layout_only() {
        let mut plot = Plot::new();
        plot.add_trace(Bar::new(vec!["a", "b"], vec![1.0, 2.5]).name("t"));
        plot.set_layout(Layout::new().title("T"));
        let value = Figure::from(plot)
            .to_value()
            .expect("plotly figures serialise");
        let keys: Vec<&str> = value
            .as_object()
            .expect("a figure is an object")
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(keys, ["data", "layout"]);
        assert_eq!(value["data"][0]["type"], json!("bar"));
        assert_eq!(value["data"][0]["y"], json!([1.0, 2.5]));
        assert_eq!(value["layout"]["title"]["text"], json!("T"));
    }

    #[test]
    fn plots_carry_plotlys_default_template_unless_they_set_one() {
        let mut plot = Plot::new();
        plot.add_trace(Bar::new(vec!["a"], vec![1.0]));
        let value = Figure::from(plot.clone()).to_value().expect("json");
        let template = &value["layout"]["template"];
        assert_eq!(template["layout"]["plot_bgcolor"], json!("#E5ECF6"));
        assert_eq!(template["layout"]["colorway"][0], json!("#636efa"));
        assert_eq!(template["data"]["bar"][0]["type"], json!("bar"));
        plot.set_layout(Layout::new().template(plotly::layout::Template::new()));
        let own = Figure::from(plot).to_value().expect("json");
        assert_eq!(own["layout"]["template"], json!({}));
    }

    #[test]
    fn json_figure_passes_through_unchanged() {
        let raw = json!({"data": [], "layout": {"height": 300}});
        let figure = Figure::from(raw.clone());
        assert_eq!(figure.to_value().expect("json is json"), raw);
    }
}
