//! The generic layout node: a component of any namespace with free-form props.
//!
//! [`Component`] serialises exactly as Dash's `to_plotly_json` does (`props`, then `type`,
//! then `namespace`), so a tree built here is the body of `_dash-layout` as is. The typed
//! builders in [`html`](crate::html) and [`dcc`](crate::dcc) are thin layers over it; any
//! other component library (`dash_table`, third-party packages) is reachable through
//! [`component`]. This module knows nothing about callbacks.

use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{Map, Value};

/// One node of a layout: `{"props": {...}, "type": "...", "namespace": "..."}`.
#[derive(Debug, Clone, PartialEq)]
pub struct Component {
    namespace: String,
    kind: String,
    props: Map<String, Value>,
}

/// Start a component of any library, for example `component("dash_table", "DataTable")`.
pub fn component(namespace: impl Into<String>, kind: impl Into<String>) -> Component {
    Component {
        namespace: namespace.into(),
        kind: kind.into(),
        props: Map::new(),
    }
}

impl Component {
    /// The JavaScript namespace of the component library, e.g. `dash_html_components`.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The component's type within its library, e.g. `Div`.
    pub fn kind(&self) -> &str {
        &self.kind
    }

    /// The props set so far, in the order they were set.
    pub fn props(&self) -> &Map<String, Value> {
        &self.props
    }

    /// Set any prop. A later call with the same key replaces the earlier value.
    pub fn prop(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.props.insert(key.into(), value.into());
        self
    }

    /// Set the `id` callbacks use to address this component.
    pub fn id(self, id: impl Into<crate::Id>) -> Self {
        self.prop("id", Value::from(id.into()))
    }

    /// Set `children`: a string, a component, a list of either, or a tuple of mixed ones.
    pub fn children(self, children: impl IntoChildren) -> Self {
        self.prop("children", children.into_children())
    }

    /// Set the inline `style`, e.g. `json!({"width": "40%"})`.
    pub fn style(self, style: impl Into<Value>) -> Self {
        self.prop("style", style)
    }

    /// Set the CSS class (`className` on the wire).
    pub fn class_name(self, class: impl Into<String>) -> Self {
        self.prop("className", class.into())
    }

    /// Set `htmlFor` (an `html.Label`'s target input id).
    pub fn html_for(self, id: impl Into<String>) -> Self {
        self.prop("htmlFor", id.into())
    }

    /// Set `n_clicks` (the click count an HTML element starts with).
    pub fn n_clicks(self, clicks: u64) -> Self {
        self.prop("n_clicks", clicks)
    }

    /// Set `disabled` (buttons, inputs).
    pub fn disabled(self, disabled: bool) -> Self {
        self.prop("disabled", disabled)
    }

    /// Set `title` (the tooltip the browser shows).
    pub fn title(self, title: impl Into<String>) -> Self {
        self.prop("title", title.into())
    }

    /// The component as a JSON value, the same shape it has in `_dash-layout`.
    pub fn to_value(&self) -> Value {
        let mut node = Map::with_capacity(3);
        node.insert("props".into(), Value::Object(self.props.clone()));
        node.insert("type".into(), Value::String(self.kind.clone()));
        node.insert("namespace".into(), Value::String(self.namespace.clone()));
        Value::Object(node)
    }
}

impl Serialize for Component {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // Written by hand so that the key order is Dash's, whatever serde's derive might do.
        let mut map = serializer.serialize_map(Some(3))?;
        map.serialize_entry("props", &self.props)?;
        map.serialize_entry("type", &self.kind)?;
        map.serialize_entry("namespace", &self.namespace)?;
        map.end()
    }
}

impl From<Component> for Value {
    fn from(component: Component) -> Value {
        // Moving the props avoids cloning a whole subtree.
        let mut node = Map::with_capacity(3);
        node.insert("props".into(), Value::Object(component.props));
        node.insert("type".into(), Value::String(component.kind));
        node.insert("namespace".into(), Value::String(component.namespace));
        Value::Object(node)
    }
}

/// Anything that can be a component's `children`.
///
/// Dash accepts a string, a number, a component or a list of those; a list here may be a
/// `Vec` or array of one kind, or a tuple of up to 24 different kinds.
pub trait IntoChildren {
    /// The JSON value of the `children` prop.
    fn into_children(self) -> Value;
}

impl IntoChildren for Component {
    fn into_children(self) -> Value {
        self.into()
    }
}

impl IntoChildren for Value {
    fn into_children(self) -> Value {
        self
    }
}

impl IntoChildren for &str {
    fn into_children(self) -> Value {
        Value::String(self.to_owned())
    }
}

impl IntoChildren for String {
    fn into_children(self) -> Value {
        Value::String(self)
    }
}

impl IntoChildren for &String {
    fn into_children(self) -> Value {
        Value::String(self.clone())
    }
}

macro_rules! number_children {
    ($($t:ty),*) => {$(
        impl IntoChildren for $t {
            fn into_children(self) -> Value {
                Value::from(self)
            }
        }
    )*};
}
number_children!(i32, i64, u32, u64, usize, f64);

impl<T: IntoChildren> IntoChildren for Vec<T> {
    fn into_children(self) -> Value {
        Value::Array(self.into_iter().map(IntoChildren::into_children).collect())
    }
}

impl<T: IntoChildren, const N: usize> IntoChildren for [T; N] {
    fn into_children(self) -> Value {
        Value::Array(self.into_iter().map(IntoChildren::into_children).collect())
    }
}

impl<T: IntoChildren> IntoChildren for Option<T> {
    fn into_children(self) -> Value {
        self.map_or(Value::Null, IntoChildren::into_children)
    }
}

macro_rules! tuple_children {
    ($($name:ident),+) => {
        impl<$($name: IntoChildren),+> IntoChildren for ($($name,)+) {
            fn into_children(self) -> Value {
                #[expect(non_snake_case, reason = "the type parameters double as bindings")]
                let ($($name,)+) = self;
                Value::Array(vec![$($name.into_children()),+])
            }
        }
    };
}
tuple_children!(A);
tuple_children!(A, B);
tuple_children!(A, B, C);
tuple_children!(A, B, C, D);
tuple_children!(A, B, C, D, E);
tuple_children!(A, B, C, D, E, F);
tuple_children!(A, B, C, D, E, F, G);
tuple_children!(A, B, C, D, E, F, G, H);
tuple_children!(A, B, C, D, E, F, G, H, I);
tuple_children!(A, B, C, D, E, F, G, H, I, J);
tuple_children!(A, B, C, D, E, F, G, H, I, J, K);
tuple_children!(A, B, C, D, E, F, G, H, I, J, K, L);
tuple_children!(A, B, C, D, E, F, G, H, I, J, K, L, M);
tuple_children!(A, B, C, D, E, F, G, H, I, J, K, L, M, N);
tuple_children!(A, B, C, D, E, F, G, H, I, J, K, L, M, N, O);
tuple_children!(A, B, C, D, E, F, G, H, I, J, K, L, M, N, O, P);
tuple_children!(A, B, C, D, E, F, G, H, I, J, K, L, M, N, O, P, Q);
tuple_children!(A, B, C, D, E, F, G, H, I, J, K, L, M, N, O, P, Q, R);
tuple_children!(A, B, C, D, E, F, G, H, I, J, K, L, M, N, O, P, Q, R, S);
tuple_children!(A, B, C, D, E, F, G, H, I, J, K, L, M, N, O, P, Q, R, S, T);
tuple_children!(
    A, B, C, D, E, F, G, H, I, J, K, L, M, N, O, P, Q, R, S, T, U
);
tuple_children!(
    A, B, C, D, E, F, G, H, I, J, K, L, M, N, O, P, Q, R, S, T, U, V
);
tuple_children!(
    A, B, C, D, E, F, G, H, I, J, K, L, M, N, O, P, Q, R, S, T, U, V, W
);
tuple_children!(
    A, B, C, D, E, F, G, H, I, J, K, L, M, N, O, P, Q, R, S, T, U, V, W, X
);

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn component_serialises_props_type_namespace_in_that_order() {
        let div = component("dash_html_components", "Div")
            .id("root")
            .children((
                "text",
                component("dash_html_components", "Span").children("inner"),
            ));
        let text = serde_json::to_string(&div).expect("a component always serialises");
        assert_eq!(
            text,
            r#"{"props":{"id":"root","children":["text",{"props":{"children":"inner"},"type":"Span","namespace":"dash_html_components"}]},"type":"Div","namespace":"dash_html_components"}"#
        );
        assert_eq!(
            serde_json::to_string(&div.to_value()).expect("values serialise"),
            text
        );
        assert_eq!(
            serde_json::to_string(&Value::from(div)).expect("values serialise"),
            text
        );
    }

    #[test]
    fn string_child_stays_a_string() {
        let h1 = component("dash_html_components", "H1").children("Title");
        assert_eq!(h1.props()["children"], json!("Title"));
    }

    #[test]
    fn later_prop_replaces_earlier_one_in_place() {
        let c = component("ns", "T").prop("a", 1).prop("b", 2).prop("a", 3);
        assert_eq!(Value::Object(c.props().clone()), json!({"a": 3, "b": 2}));
    }
}
