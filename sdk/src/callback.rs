//! Callback dependencies and what a running callback sees.
//!
//! [`Output`], [`Input`] and [`State`] name a component prop (the id may be a pattern with
//! wildcards, see [`crate::id`]); [`Context`] hands a handler the values the browser sent,
//! typed through serde, says which props triggered the call, and exposes Dash's callback
//! context lists. The wire form of a request is parsed here too. This module does not
//! decide which callback runs; [`App`](crate::App) does.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::id::{Id, stringify};

/// `{"_dash_no_update": "_dash_no_update"}`: return it for an output to leave it unchanged.
pub fn no_update() -> Value {
    let mut marker = Map::with_capacity(1);
    marker.insert(
        "_dash_no_update".into(),
        Value::String("_dash_no_update".into()),
    );
    Value::Object(marker)
}

/// One output's value or Dash's `no_update`, so that a branch that leaves the output alone
/// does not force `json!` on every other branch:
/// `Ok(if ready { Update::Set(total) } else { Update::NoUpdate })`.
#[derive(Debug, Clone, PartialEq)]
pub enum Update<T> {
    /// Set the output to this value.
    Set(T),
    /// Leave the output as it is.
    NoUpdate,
}

impl<T: Serialize> Serialize for Update<T> {
    fn serialize<S: serde::Serializer>(
        &self,
        serializer: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        match self {
            Update::Set(value) => value.serialize(serializer),
            Update::NoUpdate => no_update().serialize(serializer),
        }
    }
}

impl<T> From<Option<T>> for Update<T> {
    /// `None` leaves the output alone.
    fn from(value: Option<T>) -> Self {
        value.map_or(Update::NoUpdate, Update::Set)
    }
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
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct $name {
            id: Id,
            property: String,
            allow_duplicate: bool,
        }

        impl $name {
            /// The prop `property` of the component whose id is `id`: a string, or a
            /// dictionary (`json!({"type": "card", "index": MATCH})`) for pattern matching.
            pub fn new(id: impl Into<Id>, property: impl Into<String>) -> Self {
                $name {
                    id: id.into(),
                    property: property.into(),
                    allow_duplicate: false,
                }
            }

            /// The component id, as Dash prints it (compact sorted JSON for dictionaries).
            pub fn id(&self) -> String {
                self.id.to_dash_string()
            }

            /// The component id as given.
            pub fn component_id(&self) -> &Id {
                &self.id
            }

            /// The prop name.
            pub fn property(&self) -> &str {
                &self.property
            }

            /// `id.property`, the form Dash uses in `changedPropIds` and callback ids.
            pub fn prop_id(&self) -> String {
                format!("{}.{}", self.id(), self.property)
            }

            /// `{"id": ..., "property": ...}`, the form of `_dash-dependencies` (a
            /// dictionary id is written as its string, as Dash does).
            pub fn to_value(&self) -> Value {
                let mut entry = Map::with_capacity(2);
                entry.insert("id".into(), Value::String(self.id()));
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

impl Output {
    /// Let this output also be written by other callbacks (Dash's `allow_duplicate=True`).
    /// Dash requires such a callback to set
    /// [`prevent_initial_call`](crate::Callback::prevent_initial_call).
    pub fn allow_duplicate(mut self) -> Self {
        self.allow_duplicate = true;
        self
    }

    /// Whether [`Output::allow_duplicate`] was set.
    pub fn allows_duplicate(&self) -> bool {
        self.allow_duplicate
    }
}

/// One or several [`Output`]s, [`Input`]s or [`State`]s: a single one, a `Vec` or an array
/// of them, or `()` for none.
///
/// A single `Output` makes a single-output callback: the handler returns the value itself.
/// A `Vec` or array of outputs (even of one) makes a multi-output callback, as a list does
/// in Dash: the handler returns a list (a `Vec`, an array or a tuple) with one value per
/// output. `()` as outputs makes a callback without outputs (Dash's `no_output`).
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

/// The body of a `run-callback` request, as the platform sends it.
#[derive(Debug, Default)]
pub(crate) struct Request {
    /// The concrete outputs, one entry per declared output (a list for `ALL` outputs);
    /// `None` when the request did not say.
    pub(crate) outputs: Option<Vec<Value>>,
    /// The inputs as sent: Dash's `inputs_list`.
    pub(crate) inputs_list: Vec<Value>,
    /// The state as sent: Dash's `states_list`.
    pub(crate) states_list: Vec<Value>,
    pub(crate) inputs: Vec<Entry>,
    pub(crate) state: Vec<Entry>,
    pub(crate) changed_prop_ids: Vec<String>,
    /// Where the platform serves the app (`/apps/{tenant}/{app}/`), when it said.
    pub(crate) pathname_prefix: Option<String>,
}

#[derive(Deserialize)]
struct RawRequest {
    #[serde(default)]
    outputs: Option<Value>,
    #[serde(default)]
    inputs: Vec<Value>,
    #[serde(default)]
    state: Vec<Value>,
    #[serde(default)]
    changed_prop_ids: Vec<String>,
    #[serde(default)]
    pathname_prefix: Option<String>,
}

impl Request {
    /// Parse the JSON text of a request.
    pub(crate) fn parse(text: &str) -> std::result::Result<Request, serde_json::Error> {
        let raw: RawRequest = serde_json::from_str(text)?;
        Request::from_raw(raw)
    }

    fn from_raw(raw: RawRequest) -> std::result::Result<Request, serde_json::Error> {
        let entries = |values: &[Value]| {
            values
                .iter()
                .map(Entry::deserialize)
                .collect::<std::result::Result<Vec<_>, _>>()
        };
        Ok(Request {
            outputs: raw.outputs.map(|outputs| match outputs {
                Value::Array(entries) => entries,
                single => vec![single],
            }),
            inputs: entries(&raw.inputs)?,
            state: entries(&raw.state)?,
            inputs_list: raw.inputs,
            states_list: raw.state,
            changed_prop_ids: raw.changed_prop_ids,
            pathname_prefix: raw.pathname_prefix,
        })
    }
}

/// One input or state entry of a request: one prop, or a list of them for an `ALL` or
/// `ALLSMALLER` pattern.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum Entry {
    One(Slot),
    Many(Vec<Slot>),
}

impl Entry {
    /// The value(s) as one JSON value: a list for a pattern entry.
    fn value(&self) -> Value {
        match self {
            Entry::One(slot) => slot.value.clone(),
            Entry::Many(slots) => slots.iter().map(|slot| slot.value.clone()).collect(),
        }
    }

    pub(crate) fn describe(&self) -> String {
        match self {
            Entry::One(slot) => slot.prop_id(),
            Entry::Many(slots) => format!(
                "[{}]",
                slots
                    .iter()
                    .map(Slot::prop_id)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }
}

/// One input or state prop of a request.
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
    /// `id.property`, with a dictionary id printed as Dash prints it.
    pub(crate) fn prop_id(&self) -> String {
        format!("{}.{}", stringify(&self.id), self.property)
    }
}

/// Which input or state value to read: a position in the callback's list, or an id
/// (`"region"`, or `"region.value"` when one component feeds several props; a pattern id
/// by its Dash string, e.g. `{"index":["ALL"],"type":"filter"}`).
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
    /// The position this key names among dependencies named `(id, property)`.
    fn position(&self, names: &[(String, String)]) -> Option<usize> {
        match *self {
            Key::Position(position) => (position < names.len()).then_some(position),
            Key::Id(key) => names.iter().position(|(id, property)| {
                id == key
                    || key
                        .strip_prefix(id.as_str())
                        .and_then(|rest| rest.strip_prefix('.'))
                        == Some(property.as_str())
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

/// What a running callback sees: its input and state values, what triggered it, and
/// Dash's callback-context lists.
#[derive(Debug)]
pub struct Context<'a> {
    callback: &'a str,
    request: &'a Request,
    /// `(id, property)` of each input and state, as declared (or, without a declaration,
    /// as the request's single entries name them).
    input_names: Vec<(String, String)>,
    state_names: Vec<(String, String)>,
    /// Whether the callback was declared with a list of outputs.
    multi: bool,
    /// How many progress outputs a background callback declared.
    pub(crate) progress_outputs: usize,
    /// Props of other components set through [`Context::set_props`], by stringified id
    /// (Dash's `sideUpdate`).
    side_updates: std::cell::RefCell<Map<String, Value>>,
}

#[cfg(test)]
fn names_from_entries(entries: &[Entry]) -> Vec<(String, String)> {
    entries
        .iter()
        .map(|entry| match entry {
            Entry::One(slot) => (stringify(&slot.id), slot.property.clone()),
            Entry::Many(_) => (String::new(), String::new()),
        })
        .collect()
}

impl<'a> Context<'a> {
    #[cfg(test)]
    pub(crate) fn new(callback: &'a str, request: &'a Request) -> Self {
        Context {
            callback,
            request,
            input_names: names_from_entries(&request.inputs),
            state_names: names_from_entries(&request.state),
            multi: request
                .outputs
                .as_ref()
                .is_some_and(|outputs| outputs.len() != 1),
            progress_outputs: 0,
            side_updates: std::cell::RefCell::default(),
        }
    }

    /// A context whose id keys resolve through the declared inputs and state.
    pub(crate) fn declared(
        callback: &'a str,
        request: &'a Request,
        inputs: &[Input],
        state: &[State],
        multi: bool,
    ) -> Self {
        Context {
            callback,
            request,
            input_names: inputs
                .iter()
                .map(|input| (input.id(), input.property.clone()))
                .collect(),
            state_names: state
                .iter()
                .map(|state| (state.id(), state.property.clone()))
                .collect(),
            multi,
            progress_outputs: 0,
            side_updates: std::cell::RefCell::default(),
        }
    }

    /// The URL path the platform serves the app under, with its trailing slash (Dash's
    /// `requests_pathname_prefix`, e.g. `/apps/acme/sales/`); `/` when the request did
    /// not say (native tests).
    pub fn pathname_prefix(&self) -> &str {
        self.request.pathname_prefix.as_deref().unwrap_or("/")
    }

    /// Report progress from a background callback (Dash's `set_progress`): with one
    /// progress output the value itself, with several a list of one value per output.
    /// The browser shows the latest report at its next poll.
    ///
    /// # Errors
    ///
    /// [`Error::Failed`] if the callback declared no progress outputs, or `value` is not
    /// JSON or (for several outputs) not a list of the right length.
    pub fn set_progress(&self, value: impl Serialize) -> Result<()> {
        let value = serde_json::to_value(value)
            .map_err(|e| Error::Failed(format!("progress is not JSON: {e}")))?;
        let values = match (self.progress_outputs, value) {
            (0, _) => {
                return Err(Error::Failed(format!(
                    "callback `{}` declared no progress outputs",
                    self.callback
                )));
            }
            (1, value) => vec![value],
            (n, Value::Array(values)) if values.len() == n => values,
            (n, _) => {
                return Err(Error::Failed(format!(
                    "callback `{}` has {n} progress outputs; report a list of {n} values",
                    self.callback
                )));
            }
        };
        crate::progress::report(&Value::Array(values).to_string());
        Ok(())
    }

    /// Set props of any component of the page, not only this callback's outputs (Dash's
    /// `set_props`): `props` is a dictionary such as `json!({"children": "Saved"})`. The
    /// browser applies them with the callback's answer (Dash's `sideUpdate`); from a
    /// background callback, with its result. Several calls for one id merge, the later
    /// value of a prop winning. Works in callbacks without outputs and in
    /// [`Callback::on_error`](crate::Callback::on_error) handlers.
    ///
    /// In a [`Callback::websocket`](crate::Callback::websocket) callback that came over the
    /// page's WebSocket, each call is sent to the browser at once, while the callback goes
    /// on (Dash's streaming `set_props`): a loop of calls streams updates, and a
    /// [`Patch`](crate::Patch) as a prop value appends to what the page already shows.
    /// A call streams at most 10,000 updates and, all together, no more bytes than its
    /// output cap.
    ///
    /// # Errors
    ///
    /// [`Error::Failed`] if `props` is not a JSON dictionary, or a streamed update is past
    /// the call's bounds.
    pub fn set_props(&self, id: impl Into<Id>, props: impl Serialize) -> Result<()> {
        let Ok(Value::Object(props)) = serde_json::to_value(props) else {
            return Err(Error::Failed(format!(
                "callback `{}`: set_props takes a dictionary of props",
                self.callback
            )));
        };
        let key = id.into().to_dash_string();
        // A map of JSON values always serialises.
        let text = serde_json::to_string(&props).unwrap_or_default();
        match crate::stream::send(&key, &text) {
            Ok(true) => return Ok(()),
            Ok(false) => {}
            Err(why) => {
                return Err(Error::Failed(format!(
                    "callback `{}`: set_props: {why}",
                    self.callback
                )));
            }
        }
        let mut updates = self.side_updates.borrow_mut();
        match updates.get_mut(&key) {
            Some(Value::Object(existing)) => existing.extend(props),
            _ => {
                updates.insert(key, Value::Object(props));
            }
        }
        Ok(())
    }

    /// Read `properties` of the component `id` from the page, while the callback runs
    /// (Dash's `ctx.websocket.get_prop`): the props the page holds now, by name; a prop it
    /// does not have (or a component not on the page) is absent from the map.
    ///
    /// `Ok(None)` when the call did not come over the page's WebSocket (an HTTP request, a
    /// background job, a memoized call): then there is no page to ask, as in Dash where
    /// `ctx.websocket` is `None`. The wait counts against the callback's deadline.
    ///
    /// # Errors
    ///
    /// [`Error::Failed`] past the host's bounds (64 names, ids of 4 KiB, names of 256
    /// bytes, an answer over the output cap) or when the connection closed meanwhile.
    pub fn get_props(
        &self,
        id: impl Into<Id>,
        properties: &[&str],
    ) -> Result<Option<Map<String, Value>>> {
        let key = id.into().to_dash_string();
        let names: Vec<String> = properties.iter().map(|p| (*p).to_owned()).collect();
        let failed =
            |why: String| Error::Failed(format!("callback `{}`: get_props: {why}", self.callback));
        let Some(text) = crate::stream::read(&key, &names).map_err(failed)? else {
            return Ok(None);
        };
        match serde_json::from_str::<Value>(&text) {
            Ok(Value::Object(props)) => Ok(Some(props)),
            _ => Err(failed(
                "the page answered something other than a dictionary".to_owned(),
            )),
        }
    }

    /// The side updates made so far, leaving none behind.
    pub(crate) fn take_side_updates(&self) -> Map<String, Value> {
        std::mem::take(&mut *self.side_updates.borrow_mut())
    }

    /// The id of the running callback (its dependency `output` string).
    pub fn callback_id(&self) -> &str {
        self.callback
    }

    /// An input value, deserialised into `T`. For an `ALL` or `ALLSMALLER` pattern the
    /// value is the list of the matching components' values, so ask for a `Vec`.
    ///
    /// A prop the browser has not set reads as `null`, so ask for an `Option<T>` where
    /// that can happen.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] naming the input if there is no such input or its value
    /// does not deserialise into `T`.
    pub fn input<T: DeserializeOwned>(&self, key: impl Into<Key<'a>>) -> Result<T> {
        self.typed("input", &self.request.inputs, &self.input_names, key.into())
    }

    /// A state value, deserialised into `T`; see [`Context::input`].
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] naming the state if there is no such state or its value
    /// does not deserialise into `T`.
    pub fn state<T: DeserializeOwned>(&self, key: impl Into<Key<'a>>) -> Result<T> {
        self.typed("state", &self.request.state, &self.state_names, key.into())
    }

    /// An input value as raw JSON (`null` if the browser has not set it, a list for a
    /// pattern), or `None` if the callback has no such input.
    pub fn input_value(&self, key: impl Into<Key<'a>>) -> Option<Value> {
        let position = key.into().position(&self.input_names)?;
        self.request.inputs.get(position).map(Entry::value)
    }

    /// A state value as raw JSON; see [`Context::input_value`].
    pub fn state_value(&self, key: impl Into<Key<'a>>) -> Option<Value> {
        let position = key.into().position(&self.state_names)?;
        self.request.state.get(position).map(Entry::value)
    }

    /// The `id.property` of every input whose change triggered this call; empty on the
    /// initial call when the page loads. Pattern ids are in Dash's string form.
    pub fn triggered(&self) -> &'a [String] {
        &self.request.changed_prop_ids
    }

    /// Dash's `ctx.triggered`: `[{"prop_id": "id.property", "value": …}, …]`, each
    /// triggering input with the value it now has; on the initial call Dash's placeholder
    /// `[{"prop_id": ".", "value": null}]`.
    pub fn triggered_values(&self) -> Value {
        if self.request.changed_prop_ids.is_empty() {
            return serde_json::json!([{"prop_id": ".", "value": null}]);
        }
        let inputs: Vec<&Value> = self
            .request
            .inputs_list
            .iter()
            .flat_map(|entry| match entry {
                Value::Array(items) => items.iter().collect::<Vec<_>>(),
                one => vec![one],
            })
            .collect();
        let value_of = |prop_id: &str| {
            inputs
                .iter()
                .find(|input| {
                    let id = input.get("id").map(stringify);
                    let property = input.get("property").and_then(Value::as_str);
                    matches!((id, property), (Some(id), Some(property))
                        if prop_id.len() == id.len() + 1 + property.len()
                            && prop_id.starts_with(&id)
                            && prop_id.ends_with(property))
                })
                .and_then(|input| input.get("value").cloned())
                .unwrap_or(Value::Null)
        };
        Value::Array(
            self.request
                .changed_prop_ids
                .iter()
                .map(|prop_id| serde_json::json!({"prop_id": prop_id, "value": value_of(prop_id)}))
                .collect(),
        )
    }

    /// Dash's `ctx.triggered_prop_ids`: each triggering `id.property` with its component
    /// id (a string, or the dictionary of a pattern-matching id), in order.
    pub fn triggered_prop_ids(&self) -> Vec<(&'a str, Value)> {
        self.request
            .changed_prop_ids
            .iter()
            .map(|prop_id| (prop_id.as_str(), component_of(prop_id)))
            .collect()
    }

    /// The component id of the first triggering input (Dash's `ctx.triggered_id`): a
    /// string, or a dictionary for a pattern-matching id; `None` on the initial call.
    pub fn triggered_id(&self) -> Option<Value> {
        self.request
            .changed_prop_ids
            .first()
            .map(|prop_id| component_of(prop_id))
    }

    /// Whether the prop `prop_id` (`"id.property"`) or any prop of the component `prop_id`
    /// (`"id"`) triggered this call.
    pub fn is_triggered(&self, prop_id: &str) -> bool {
        self.request.changed_prop_ids.iter().any(|triggered| {
            triggered == prop_id
                || triggered
                    .rsplit_once('.')
                    .is_some_and(|(id, _)| id == prop_id)
        })
    }

    /// Dash's `ctx.inputs_list`: the inputs exactly as the request carried them, one
    /// `{"id", "property", "value"}` object per input, or a list of them for a pattern.
    pub fn inputs_list(&self) -> &'a [Value] {
        &self.request.inputs_list
    }

    /// Dash's `ctx.states_list`, shaped like [`Context::inputs_list`].
    pub fn states_list(&self) -> &'a [Value] {
        &self.request.states_list
    }

    /// The concrete outputs of this call, one entry per declared output: an
    /// `{"id", "property"}` object, or a list of them for an `ALL` output (its length is
    /// how many values that output takes). Empty when the request did not say.
    pub fn outputs(&self) -> &'a [Value] {
        self.request.outputs.as_deref().unwrap_or_default()
    }

    /// Dash's `ctx.outputs_list`: [`Context::outputs`] as a list for a multi-output
    /// callback, its only entry for a single-output one (`null` when the request did not
    /// name its outputs).
    pub fn outputs_list(&self) -> Value {
        match (self.multi, self.outputs()) {
            (true, entries) => Value::Array(entries.to_vec()),
            (false, [only]) => only.clone(),
            (false, _) => Value::Null,
        }
    }

    fn typed<T: DeserializeOwned>(
        &self,
        kind: &str,
        entries: &[Entry],
        names: &[(String, String)],
        key: Key<'_>,
    ) -> Result<T> {
        let Some(entry) = key
            .position(names)
            .and_then(|position| entries.get(position))
        else {
            return Err(Error::InvalidInput(format!(
                "callback `{}` has no {kind} {} (it has {})",
                self.callback,
                key.describe(),
                describe_entries(entries),
            )));
        };
        T::deserialize(entry.value()).map_err(|error| {
            Error::InvalidInput(format!(
                "callback `{}`: {kind} `{}` has the wrong type: {error}",
                self.callback,
                entry.describe(),
            ))
        })
    }
}

/// The component id of `id.property`: a dictionary when the id is JSON, else the string.
fn component_of(prop_id: &str) -> Value {
    let id = prop_id.rsplit_once('.').map_or(prop_id, |(id, _)| id);
    if id.starts_with('{')
        && let Ok(parsed @ Value::Object(_)) = serde_json::from_str::<Value>(id)
    {
        return parsed;
    }
    Value::String(id.to_owned())
}

fn describe_entries(entries: &[Entry]) -> String {
    if entries.is_empty() {
        return "none".into();
    }
    entries
        .iter()
        .map(|entry| format!("`{}`", entry.describe()))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn request(body: Value) -> Request {
        Request::parse(&body.to_string()).expect("test requests are well formed")
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
        assert_eq!(ctx.input_value("region"), Some(json!("West")));
        assert_eq!(ctx.input_value("nope"), None);
        assert_eq!(ctx.triggered_id(), Some(json!("year")));
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
        assert_eq!(ctx.input_value(0), Some(Value::Null));
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

    #[test]
    fn pattern_entries_read_as_lists_and_triggered_ids_as_dictionaries() {
        let request = request(json!({
            "outputs": [{"id": "summary", "property": "children"}],
            "inputs": [[{"id": {"index": 1, "type": "f"}, "property": "value", "value": "a"},
                        {"id": {"index": 2, "type": "f"}, "property": "value"}]],
            "state": [{"id": {"index": 2, "type": "g"}, "property": "data", "value": 7}],
            "changed_prop_ids": [r#"{"index":2,"type":"f"}.value"#],
        }));
        let inputs = [Input::new(
            json!({"type": "f", "index": crate::ALL}),
            "value",
        )];
        let state = [State::new(
            json!({"type": "g", "index": crate::MATCH}),
            "data",
        )];
        let ctx = Context::declared("summary.children", &request, &inputs, &state, false);
        assert_eq!(
            ctx.input::<Vec<Option<String>>>(0),
            Ok(vec![Some("a".to_owned()), None])
        );
        assert_eq!(
            ctx.input::<Vec<Option<String>>>(r#"{"index":["ALL"],"type":"f"}"#),
            Ok(vec![Some("a".to_owned()), None])
        );
        assert_eq!(
            ctx.state::<u32>(r#"{"index":["MATCH"],"type":"g"}.data"#),
            Ok(7)
        );
        assert_eq!(ctx.triggered_id(), Some(json!({"index": 2, "type": "f"})));
        assert_eq!(
            ctx.triggered_prop_ids(),
            vec![(
                r#"{"index":2,"type":"f"}.value"#,
                json!({"index": 2, "type": "f"})
            )]
        );
        assert_eq!(
            ctx.inputs_list()[0][1],
            json!({"id": {"index": 2, "type": "f"}, "property": "value"})
        );
        assert_eq!(ctx.states_list().len(), 1);
        assert_eq!(
            ctx.outputs(),
            [json!({"id": "summary", "property": "children"})]
        );
        assert_eq!(
            ctx.outputs_list(),
            json!({"id": "summary", "property": "children"})
        );
    }

    #[test]
    fn pattern_dependencies_are_written_with_string_ids() {
        let input = Input::new(json!({"type": "f", "index": crate::ALLSMALLER}), "value");
        assert_eq!(
            input.to_value(),
            json!({"id": r#"{"index":["ALLSMALLER"],"type":"f"}"#, "property": "value"})
        );
        assert_eq!(
            input.prop_id(),
            r#"{"index":["ALLSMALLER"],"type":"f"}.value"#
        );
    }
}
