//! The common components of `dash_core_components` (Dash's `dcc` module).
//!
//! Each component is a small typed builder over [`Component`] with methods for its main
//! props; [`prop`](Graph::prop) remains available for everything else. A builder becomes a
//! plain [`Component`] through `From`/`.into()`, and can be used directly as children. This
//! module only builds JSON; the behaviour lives in the Dash front end.

use serde_json::{Map, Value};

use crate::component::{Component, IntoChildren, component};
use crate::figure::Figure;

/// The namespace of Dash's core components.
pub const NAMESPACE: &str = "dash_core_components";

/// One entry of an `options` list (`Dropdown`, `Checklist`, `RadioItems`).
///
/// Kept as the author wrote it, as Dash sends it: a string or a number is the entry itself
/// (`["North", "South"]`, `[1, 2.5]`: the label is the value), a `(label, value)` pair or
/// [`Choice::new`] is a `{"label", "value"}` object (with `"disabled"` when an entry must
/// be greyed out).
#[derive(Debug, Clone, PartialEq)]
pub struct Choice(ChoiceKind);

#[derive(Debug, Clone, PartialEq)]
enum ChoiceKind {
    /// A bare string or number.
    Plain(Value),
    Labelled {
        label: Value,
        value: Value,
        disabled: bool,
    },
}

impl Choice {
    /// An option showing `label` and selecting `value`.
    pub fn new(label: impl Into<Value>, value: impl Into<Value>) -> Self {
        Choice(ChoiceKind::Labelled {
            label: label.into(),
            value: value.into(),
            disabled: false,
        })
    }

    /// Show the option greyed out and not selectable (a bare entry becomes a
    /// `{"label", "value", "disabled"}` object, the only way Dash can say it).
    pub fn disabled(self, disabled: bool) -> Self {
        let (label, value) = match self.0 {
            ChoiceKind::Plain(value) => (value.clone(), value),
            ChoiceKind::Labelled { label, value, .. } => (label, value),
        };
        Choice(ChoiceKind::Labelled {
            label,
            value,
            disabled,
        })
    }

    fn into_value(self) -> Value {
        match self.0 {
            ChoiceKind::Plain(value) => value,
            ChoiceKind::Labelled {
                label,
                value,
                disabled,
            } => {
                let mut entry = Map::with_capacity(3);
                entry.insert("label".into(), label);
                entry.insert("value".into(), value);
                if disabled {
                    entry.insert("disabled".into(), Value::Bool(true));
                }
                Value::Object(entry)
            }
        }
    }
}

impl From<&str> for Choice {
    fn from(text: &str) -> Self {
        Choice(ChoiceKind::Plain(text.into()))
    }
}

impl From<String> for Choice {
    fn from(text: String) -> Self {
        Choice(ChoiceKind::Plain(text.into()))
    }
}

impl From<i64> for Choice {
    fn from(n: i64) -> Self {
        Choice(ChoiceKind::Plain(n.into()))
    }
}

impl From<i32> for Choice {
    fn from(n: i32) -> Self {
        Choice(ChoiceKind::Plain(n.into()))
    }
}

impl From<f64> for Choice {
    fn from(x: f64) -> Self {
        Choice(ChoiceKind::Plain(number(x)))
    }
}

impl<L: Into<Value>, V: Into<Value>> From<(L, V)> for Choice {
    fn from((label, value): (L, V)) -> Self {
        Choice::new(label, value)
    }
}

/// A JSON number that looks like the one Dash would send: `2015`, not `2015.0`.
fn number(x: f64) -> Value {
    // 2^53: beyond it an f64 no longer holds every integer, so keep it as a float.
    const EXACT: f64 = 9_007_199_254_740_992.0;
    if x.fract() == 0.0 && x.abs() <= EXACT {
        // Exact: `x` is integral and within ±2^53.
        Value::from(x as i64)
    } else {
        Value::from(x)
    }
}

fn options<I, T>(options: I) -> Value
where
    I: IntoIterator<Item = T>,
    T: Into<Choice>,
{
    Value::Array(
        options
            .into_iter()
            .map(|choice| choice.into().into_value())
            .collect(),
    )
}

/// Slider marks keyed by position, as Dash wants them: `{"2015": "2015", ...}`.
fn marks<I, K, L>(marks: I) -> Value
where
    I: IntoIterator<Item = (K, L)>,
    K: Into<f64>,
    L: Into<Value>,
{
    let map = marks
        .into_iter()
        .map(|(at, label)| (number(at.into()).to_string(), label.into()))
        .collect();
    Value::Object(map)
}

/// The `dcc` components whose first argument is `children`: Dash writes `"children": null`
/// for them until children are set (as `dcc.Link(href=…).to_plotly_json()` shows).
const WITH_CHILDREN: [&str; 10] = [
    "Button",
    "Clipboard",
    "ConfirmDialogProvider",
    "Link",
    "Loading",
    "Markdown",
    "Tab",
    "Tabs",
    "Tooltip",
    "Upload",
];

fn start(namespace: &str, kind: &str) -> Component {
    let started = component(namespace, kind);
    if WITH_CHILDREN.contains(&kind) {
        started.prop("children", Value::Null)
    } else {
        started
    }
}

macro_rules! dcc_component {
    ($(#[$doc:meta])* $name:ident, $func:ident, $kind:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq)]
        pub struct $name(Component);

        #[doc = concat!("Start a `dcc.", $kind, "`.")]
        pub fn $func() -> $name {
            $name(start(NAMESPACE, $kind))
        }

        impl $name {
            /// Set the `id` callbacks use to address this component.
            pub fn id(self, id: impl Into<crate::Id>) -> Self {
                $name(self.0.id(id))
            }

            /// Set any prop not covered by a typed method.
            pub fn prop(self, key: impl Into<String>, value: impl Into<Value>) -> Self {
                $name(self.0.prop(key, value))
            }

            /// Set the inline `style`.
            pub fn style(self, style: impl Into<Value>) -> Self {
                $name(self.0.style(style))
            }

            /// Set the CSS class (`className` on the wire).
            pub fn class_name(self, class: impl Into<String>) -> Self {
                $name(self.0.class_name(class))
            }

            /// The plain component, for code that handles any kind of node.
            pub fn into_component(self) -> Component {
                self.0
            }
        }

        impl From<$name> for Component {
            fn from(node: $name) -> Component {
                node.0
            }
        }

        impl From<$name> for Value {
            fn from(node: $name) -> Value {
                node.0.into()
            }
        }

        impl IntoChildren for $name {
            fn into_children(self) -> Value {
                self.0.into()
            }
        }
    };
}

macro_rules! with_value {
    ($($name:ident),*) => {$(
        impl $name {
            /// Set the selected or entered `value`.
            pub fn value(self, value: impl Into<Value>) -> Self {
                self.prop("value", value)
            }
        }
    )*};
}

macro_rules! with_options {
    ($($name:ident),*) => {$(
        impl $name {
            /// Set the `options`: strings, `(label, value)` pairs or [`Choice`]s.
            pub fn options<I, T>(self, choices: I) -> Self
            where
                I: IntoIterator<Item = T>,
                T: Into<Choice>,
            {
                self.prop("options", options(choices))
            }
        }
    )*};
}

macro_rules! with_range {
    ($($name:ident),*) => {$(
        impl $name {
            /// Set the smallest selectable value.
            pub fn min(self, min: impl Into<f64>) -> Self {
                self.prop("min", number(min.into()))
            }

            /// Set the largest selectable value.
            pub fn max(self, max: impl Into<f64>) -> Self {
                self.prop("max", number(max.into()))
            }

            /// Set the distance between selectable values.
            pub fn step(self, step: impl Into<f64>) -> Self {
                self.prop("step", number(step.into()))
            }

            /// Set the `marks`: `(position, label)` pairs; a label is a string or a
            /// `{"label", "style"}` object.
            pub fn marks<I, K, L>(self, pairs: I) -> Self
            where
                I: IntoIterator<Item = (K, L)>,
                K: Into<f64>,
                L: Into<Value>,
            {
                self.prop("marks", marks(pairs))
            }
        }
    )*};
}

macro_rules! with_children {
    ($($name:ident),*) => {$(
        impl $name {
            /// Set `children`.
            pub fn children(self, children: impl IntoChildren) -> Self {
                $name(self.0.children(children))
            }
        }
    )*};
}

dcc_component!(
    /// `dcc.Graph`: a plotly.js chart.
    Graph, graph, "Graph"
);
dcc_component!(
    /// `dcc.Dropdown`: pick one or several options from a list.
    Dropdown, dropdown, "Dropdown"
);
dcc_component!(
    /// `dcc.Slider`: pick one number.
    Slider, slider, "Slider"
);
dcc_component!(
    /// `dcc.RangeSlider`: pick a `[from, to]` range.
    RangeSlider, range_slider, "RangeSlider"
);
dcc_component!(
    /// `dcc.Input`: a text or number field.
    Input, input, "Input"
);
dcc_component!(
    /// `dcc.Checklist`: tick any number of options.
    Checklist, checklist, "Checklist"
);
dcc_component!(
    /// `dcc.RadioItems`: pick exactly one option.
    RadioItems, radio_items, "RadioItems"
);
dcc_component!(
    /// `dcc.Store`: JSON data kept in the browser, visible to callbacks.
    Store, store, "Store"
);
dcc_component!(
    /// `dcc.Interval`: a timer that bumps `n_intervals`.
    Interval, interval, "Interval"
);
dcc_component!(
    /// `dcc.Markdown`: Markdown text rendered as HTML.
    Markdown, markdown, "Markdown"
);
dcc_component!(
    /// `dcc.Tabs`: a set of [`Tab`]s, one visible at a time.
    Tabs, tabs, "Tabs"
);
dcc_component!(
    /// `dcc.Tab`: one tab of a [`Tabs`].
    Tab, tab, "Tab"
);

with_value!(Dropdown, Slider, Input, Checklist, RadioItems, Tabs, Tab);
with_options!(Dropdown, Checklist, RadioItems);
with_range!(Slider, RangeSlider);
dcc_component!(
    /// `dcc.Location`: the browser's URL as props (`pathname`, `search`, `hash`, `href`);
    /// callbacks read it and may set it to navigate.
    Location, location, "Location"
);
dcc_component!(
    /// `dcc.Link`: a link that changes the URL without reloading the page.
    Link, link, "Link"
);

with_children!(Markdown, Tabs, Tab, Link);

impl Graph {
    /// Set the `figure`: a `plotly::Plot`, a [`Figure`] or a JSON value.
    ///
    /// A figure that cannot be serialised (only possible with a hand-written trace type)
    /// leaves the prop unset and logs why, rather than failing the whole layout.
    pub fn figure(self, figure: impl Into<Figure>) -> Self {
        match figure.into().to_value() {
            Ok(value) => self.prop("figure", value),
            Err(error) => {
                crate::log::error(&format!("dcc.Graph figure left unset: {error}"));
                self
            }
        }
    }

    /// Set the plotly.js `config` (mode bar, responsiveness, ...).
    pub fn config(self, config: impl Into<Value>) -> Self {
        self.prop("config", config)
    }
}

impl Dropdown {
    /// Allow (the default) or forbid clearing the selection.
    pub fn clearable(self, clearable: bool) -> Self {
        self.prop("clearable", clearable)
    }

    /// Allow selecting several options; `value` becomes a list.
    pub fn multi(self, multi: bool) -> Self {
        self.prop("multi", multi)
    }

    /// Allow (the default) or forbid typing to filter the options.
    pub fn searchable(self, searchable: bool) -> Self {
        self.prop("searchable", searchable)
    }

    /// Text shown while nothing is selected.
    pub fn placeholder(self, text: impl Into<String>) -> Self {
        self.prop("placeholder", text.into())
    }
}

impl RangeSlider {
    /// Set the selected `[from, to]` range.
    pub fn value(self, from: impl Into<f64>, to: impl Into<f64>) -> Self {
        self.prop(
            "value",
            Value::Array(vec![number(from.into()), number(to.into())]),
        )
    }
}

impl Input {
    /// Set the HTML input `type` (`"text"`, `"number"`, `"password"`, ...).
    pub fn input_type(self, kind: impl Into<String>) -> Self {
        self.prop("type", kind.into())
    }

    /// Text shown while the field is empty.
    pub fn placeholder(self, text: impl Into<String>) -> Self {
        self.prop("placeholder", text.into())
    }

    /// Send `value` only on Enter or blur instead of on every keystroke.
    pub fn debounce(self, debounce: bool) -> Self {
        self.prop("debounce", debounce)
    }

    /// The smallest number a `number` input accepts.
    pub fn min(self, min: impl Into<f64>) -> Self {
        self.prop("min", number(min.into()))
    }

    /// The largest number a `number` input accepts.
    pub fn max(self, max: impl Into<f64>) -> Self {
        self.prop("max", number(max.into()))
    }

    /// The step of a `number` input.
    pub fn step(self, step: impl Into<f64>) -> Self {
        self.prop("step", number(step.into()))
    }
}

impl Checklist {
    /// Lay the options out on one line.
    pub fn inline(self, inline: bool) -> Self {
        self.prop("inline", inline)
    }
}

impl RadioItems {
    /// Lay the options out on one line.
    pub fn inline(self, inline: bool) -> Self {
        self.prop("inline", inline)
    }
}

impl Store {
    /// Set the stored `data`.
    pub fn data(self, data: impl Into<Value>) -> Self {
        self.prop("data", data)
    }

    /// Where the browser keeps the data: `"memory"` (default), `"local"` or `"session"`.
    pub fn storage_type(self, storage: impl Into<String>) -> Self {
        self.prop("storage_type", storage.into())
    }
}

impl Interval {
    /// Milliseconds between ticks.
    pub fn every_ms(self, milliseconds: u64) -> Self {
        self.prop("interval", milliseconds)
    }

    /// Stop after this many ticks (`-1`, the default, never stops).
    pub fn max_intervals(self, count: i64) -> Self {
        self.prop("max_intervals", count)
    }

    /// Pause or resume the timer.
    pub fn disabled(self, disabled: bool) -> Self {
        self.prop("disabled", disabled)
    }
}

impl Location {
    /// How a change of the URL is applied: `true` reloads the page, `false` only updates
    /// the props, `"callback-nav"` (what multi-page apps use) updates them and notifies
    /// other `Location`s.
    pub fn refresh(self, refresh: impl Into<Value>) -> Self {
        self.prop("refresh", refresh)
    }

    /// Set the path (navigates when changed by a callback).
    pub fn pathname(self, pathname: impl Into<String>) -> Self {
        self.prop("pathname", pathname.into())
    }
}

impl Link {
    /// The target URL.
    pub fn href(self, href: impl Into<String>) -> Self {
        self.prop("href", href.into())
    }
}

impl Markdown {
    /// Start from the Markdown `text` (its `children`).
    pub fn text(self, text: impl Into<String>) -> Self {
        self.children(text.into())
    }
}

impl Tab {
    /// Set the tab's `label`.
    pub fn label(self, label: impl Into<String>) -> Self {
        self.prop("label", label.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn props(node: impl Into<Component>) -> Value {
        Value::Object(node.into().props().clone())
    }

    #[test]
    fn dropdown_options_accept_strings_pairs_and_choices() {
        let node = dropdown()
            .id("region")
            .options(["North", "South"])
            .value("North")
            .clearable(false);
        assert_eq!(
            props(node),
            json!({
                "id": "region",
                "options": ["North", "South"],
                "value": "North",
                "clearable": false,
            })
        );
        let node = radio_items().options(vec![
            Choice::from(("One", 1)),
            Choice::new("Two", 2).disabled(true),
        ]);
        assert_eq!(
            props(node)["options"],
            json!([{"label": "One", "value": 1},
                   {"label": "Two", "value": 2, "disabled": true}])
        );
    }

    #[test]
    fn options_stay_as_written() {
        assert_eq!(props(checklist().options([1, 2]))["options"], json!([1, 2]));
        assert_eq!(
            props(checklist().options([2.5, 3.0]))["options"],
            json!([2.5, 3])
        );
        assert_eq!(
            props(dropdown().options([Choice::from("A").disabled(true)]))["options"],
            json!([{"label": "A", "value": "A", "disabled": true}])
        );
    }

    #[test]
    fn range_slider_numbers_and_marks_look_like_dash() {
        let node = range_slider()
            .id("year")
            .min(2015)
            .max(2024)
            .step(1)
            .value(2015, 2024)
            .marks([(2015, "2015"), (2016, "2016")]);
        assert_eq!(
            serde_json::to_string(&props(node)).expect("values serialise"),
            r#"{"id":"year","min":2015,"max":2024,"step":1,"value":[2015,2024],"marks":{"2015":"2015","2016":"2016"}}"#
        );
        assert_eq!(
            slider().step(0.5).into_component().props()["step"],
            json!(0.5)
        );
    }

    #[test]
    fn builders_keep_the_core_namespace_and_type() {
        let node: Component = graph().id("g").into();
        assert_eq!(node.namespace(), "dash_core_components");
        assert_eq!(node.kind(), "Graph");
        assert_eq!(Component::from(range_slider()).kind(), "RangeSlider");
    }

    #[test]
    fn graph_figure_takes_a_plot() {
        let mut plot = plotly::Plot::new();
        plot.add_trace(plotly::Bar::new(vec!["a"], vec![1]));
        let node = graph().figure(plot);
        assert_eq!(props(node)["figure"]["data"][0]["type"], json!("bar"));
    }
}
