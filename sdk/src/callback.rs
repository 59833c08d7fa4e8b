//! Callback dependencies and what a running callback sees.
//!
//! [`Output`], [`Input`] and [`State`] name a component prop; [`Context`] hands a handler
//! the values the browser sent, typed through serde, and says which props triggered the
//! call. The wire form of a request is parsed here too. This module does not decide which
//! callback runs; [`App`](crate::App) does.

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::error::{Error, Result};

/// `{"_dash_no_update": "_dash_no_update"}`: return it for an output to leave it unchanged.
pub fn no_update() -> Value {
    let mut marker = Map::with_capacity(1);
    marker.insert(
        "_dash_no_update".into(),
        Value::String("_dash_no_update".into()),
    );
    Value::Object(marker)
}

/// Whether `value` is the [`no_update`] marker.
pub(crate) fn is_no_update(value: &Value) -> bool {
    value.as_object().is_some_and(|object| {
        object.len() == 1
            && object.get("_dash_no_update").and_then(Value::as_str) == Some("_dash_no_update")
    })
}

macro_rules! dependency {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub struct $name {
            id: String,
            property: String,
        }

        impl $name {
            /// The prop `property` of the component whose id is `id`.
            pub fn new(id: impl Into<String>, property: impl Into<String>) -> Self {
                $name {
                    id: id.into(),
                    property: property.into(),
                }
            }

            /// The component id.
            pub fn id(&self) -> &str {
                &self.id
            }

            /// The prop name.
            pub fn property(&self) -> &str {
                &self.property
            }

            /// `id.property`, the form Dash uses in `changedPropIds`.
            pub fn prop_id(&self) -> String {
                format!("{}.{}", self.id, self.property)
            }

            /// `{"id": ..., "property": ...}`, the form of `_dash-dependencies`.
            pub fn to_value(&self) -> Value {
                let mut entry = Map::with_capacity(2);
                entry.insert("id".into(), Value::String(self.id.clone()));
                entry.insert("property".into(), Value::String(self.property.clone()));
                Value::Object(entry)
            }
        }
    };
}

dependency!(
    /// A prop a callback writes.
    Output
);
dependency!(
    /// A prop whose change runs a callback; its value is passed in.
    Input
);
dependency!(
    /// A prop whose value is passed in without its change running the callback.
    State
);

/// One or several [`Output`]s, [`Input`]s or [`State`]s: a single one, a `Vec` or an array
/// of them, or `()` for none.
///
/// A single `Output` makes a single-output callback: the handler returns the value itself.
/// A `Vec` or array of outputs (even of one) makes a multi-output callback, as a list does
/// in Dash: the handler returns a list (a `Vec`, an array or a tuple) with one value per
/// output.
pub trait Dependencies<T> {
    /// The dependencies in order.
    fn into_list(self) -> Vec<T>;

    /// Whether this is one bare dependency rather than a list.
    fn is_single(&self) -> bool {
        false
    }
}

macro_rules! dependencies {
    ($($name:ident),*) => {$(
        impl Dependencies<$name> for $name {
            fn into_list(self) -> Vec<$name> {
                vec![self]
            }

            fn is_single(&self) -> bool {
                true
            }
        }

        impl Dependencies<$name> for Vec<$name> {
            fn into_list(self) -> Vec<$name> {
                self
            }
        }

        impl<const N: usize> Dependencies<$name> for [$name; N] {
            fn into_list(self) -> Vec<$name> {
                self.into()
            }
        }

        impl Dependencies<$name> for () {
            fn into_list(self) -> Vec<$name> {
                Vec::new()
            }
        }
    )*};
}
dependencies!(Output, Input, State);

/// The body of a `run-callback` request.
#[derive(Debug, Deserialize)]
pub(crate) struct Request {
    #[serde(default)]
    pub(crate) inputs: Vec<Slot>,
    #[serde(default)]
    pub(crate) state: Vec<Slot>,
    #[serde(default)]
    pub(crate) changed_prop_ids: Vec<String>,
}

/// One input or state entry of a request.
#[derive(Debug, Deserialize)]
pub(crate) struct Slot {
    /// A string, or an object for pattern-matching ids.
    pub(crate) id: Value,
    pub(crate) property: String,
    /// Absent when the prop is undefined in the browser; that reads as `null`.
    #[serde(default)]
    pub(crate) value: Value,
}

impl Slot {
    /// `id.property`, with a non-string id in compact JSON.
    pub(crate) fn prop_id(&self) -> String {
        match &self.id {
            Value::String(id) => format!("{id}.{}", self.property),
            other => format!("{other}.{}", self.property),
        }
    }

    /// Whether this slot is the dependency `id`.`property`.
    pub(crate) fn is(&self, id: &str, property: &str) -> bool {
        self.id.as_str() == Some(id) && self.property == property
    }
}

/// Which input or state value to read: a position in the callback's list, or an id
/// (`"region"`, or `"region.value"` when one component feeds several props).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key<'a> {
    /// The n-th input (or state), counting from 0 in the order they were declared.
    Position(usize),
    /// A component id, optionally followed by `.property`.
    Id(&'a str),
}

impl From<usize> for Key<'_> {
    fn from(position: usize) -> Self {
        Key::Position(position)
    }
}

impl<'a> From<&'a str> for Key<'a> {
    fn from(id: &'a str) -> Self {
        Key::Id(id)
    }
}

impl Key<'_> {
    fn find<'s>(&self, slots: &'s [Slot]) -> Option<&'s Slot> {
        match *self {
            Key::Position(position) => slots.get(position),
            Key::Id(key) => slots.iter().find(|slot| {
                slot.id.as_str() == Some(key)
                    || key
                        .rsplit_once('.')
                        .is_some_and(|(id, property)| slot.is(id, property))
            }),
        }
    }

    fn describe(&self) -> String {
        match self {
            Key::Position(position) => format!("at position {position}"),
            Key::Id(id) => format!("`{id}`"),
        }
    }
}

/// What a running callback sees: its input and state values and what triggered it.
#[derive(Debug)]
pub struct Context<'a> {
    callback: &'a str,
    inputs: &'a [Slot],
    state: &'a [Slot],
    triggered: &'a [String],
}

impl<'a> Context<'a> {
    pub(crate) fn new(callback: &'a str, request: &'a Request) -> Self {
        Context {
            callback,
            inputs: &request.inputs,
            state: &request.state,
            triggered: &request.changed_prop_ids,
        }
    }

    /// The id of the running callback (its dependency `output` string).
    pub fn callback_id(&self) -> &str {
        self.callback
    }

    /// An input value, deserialised into `T`.
    ///
    /// A prop the browser has not set reads as `null`, so ask for an `Option<T>` where
    /// that can happen.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] naming the input if there is no such input or its value
    /// does not deserialise into `T`.
    pub fn input<T: DeserializeOwned>(&self, key: impl Into<Key<'a>>) -> Result<T> {
        self.typed("input", self.inputs, key.into())
    }

    /// A state value, deserialised into `T`; see [`Context::input`].
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] naming the state if there is no such state or its value
    /// does not deserialise into `T`.
    pub fn state<T: DeserializeOwned>(&self, key: impl Into<Key<'a>>) -> Result<T> {
        self.typed("state", self.state, key.into())
    }

    /// An input value as raw JSON (`null` if the browser has not set it), or `None` if
    /// the callback has no such input.
    pub fn input_value(&self, key: impl Into<Key<'a>>) -> Option<&'a Value> {
        key.into().find(self.inputs).map(|slot| &slot.value)
    }

    /// A state value as raw JSON; see [`Context::input_value`].
    pub fn state_value(&self, key: impl Into<Key<'a>>) -> Option<&'a Value> {
        key.into().find(self.state).map(|slot| &slot.value)
    }

    /// The `id.property` of every input whose change triggered this call; empty on the
    /// initial call when the page loads.
    pub fn triggered(&self) -> &'a [String] {
        self.triggered
    }

    /// The component id of the first triggering input (Dash's `ctx.triggered_id`).
    pub fn triggered_id(&self) -> Option<&'a str> {
        let first = self.triggered.first()?;
        Some(first.rsplit_once('.').map_or(first.as_str(), |(id, _)| id))
    }

    /// Whether the prop `prop_id` (`"id.property"`) or any prop of the component `prop_id`
    /// (`"id"`) triggered this call.
    pub fn is_triggered(&self, prop_id: &str) -> bool {
        self.triggered.iter().any(|triggered| {
            triggered == prop_id
                || triggered
                    .rsplit_once('.')
                    .is_some_and(|(id, _)| id == prop_id)
        })
    }

    fn typed<T: DeserializeOwned>(&self, kind: &str, slots: &'a [Slot], key: Key<'_>) -> Result<T> {
        let Some(slot) = key.find(slots) else {
            return Err(Error::InvalidInput(format!(
                "callback `{}` has no {kind} {} (it has {})",
                self.callback,
                key.describe(),
                describe_slots(slots),
            )));
        };
        T::deserialize(&slot.value).map_err(|error| {
            Error::InvalidInput(format!(
                "callback `{}`: {kind} `{}` has the wrong type: {error}",
                self.callback,
                slot.prop_id(),
            ))
        })
    }
}

fn describe_slots(slots: &[Slot]) -> String {
    if slots.is_empty() {
        return "none".into();
    }
    slots
        .iter()
        .map(|slot| format!("`{}`", slot.prop_id()))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn request(body: Value) -> Request {
        serde_json::from_value(body).expect("test requests are well formed")
    }

    #[test]
    fn no_update_is_dash_marker() {
        assert_eq!(
            serde_json::to_string(&no_update()).expect("values serialise"),
            r#"{"_dash_no_update":"_dash_no_update"}"#
        );
        assert!(is_no_update(&no_update()));
        assert!(!is_no_update(&json!({"_dash_no_update": "x"})));
    }

    #[test]
    fn input_by_position_and_by_id() {
        let request = request(json!({
            "inputs": [{"id": "region", "property": "value", "value": "West"},
                       {"id": "year", "property": "value", "value": [2016, 2018]}],
            "changed_prop_ids": ["year.value"],
        }));
        let ctx = Context::new("chart.figure", &request);
        assert_eq!(ctx.input::<String>(0), Ok("West".to_owned()));
        assert_eq!(ctx.input::<Vec<i32>>("year"), Ok(vec![2016, 2018]));
        assert_eq!(ctx.input::<Vec<i32>>("year.value"), Ok(vec![2016, 2018]));
        assert_eq!(ctx.input_value("region"), Some(&json!("West")));
        assert_eq!(ctx.input_value("nope"), None);
        assert_eq!(ctx.triggered_id(), Some("year"));
        assert!(ctx.is_triggered("year"));
        assert!(ctx.is_triggered("year.value"));
        assert!(!ctx.is_triggered("region"));
    }

    #[test]
    fn absent_value_reads_as_null() {
        let request = request(json!({
            "inputs": [{"id": "button", "property": "n_clicks"}],
        }));
        let ctx = Context::new("out.children", &request);
        assert_eq!(ctx.input::<Option<u32>>(0), Ok(None));
        assert_eq!(ctx.input_value(0), Some(&Value::Null));
    }

    #[test]
    fn type_mismatch_names_the_input_and_the_expected_type() {
        let request = request(json!({
            "inputs": [{"id": "region", "property": "value", "value": 3}],
        }));
        let ctx = Context::new("summary.children", &request);
        assert_eq!(
            ctx.input::<String>(0),
            Err(Error::InvalidInput(
                "callback `summary.children`: input `region.value` has the wrong type: \
                 invalid type: integer `3`, expected a string"
                    .into()
            ))
        );
    }

    #[test]
    fn missing_input_lists_what_there_is() {
        let request = request(json!({
            "inputs": [{"id": "region", "property": "value", "value": "North"}],
        }));
        let ctx = Context::new("summary.children", &request);
        assert_eq!(
            ctx.state::<String>(0),
            Err(Error::InvalidInput(
                "callback `summary.children` has no state at position 0 (it has none)".into()
            ))
        );
        assert_eq!(
            ctx.input::<String>("year"),
            Err(Error::InvalidInput(
                "callback `summary.children` has no input `year` (it has `region.value`)".into()
            ))
        );
    }
}
