//! `_dash-update-component`: check the renderer's body against the declared callback,
//! build the request the component gets, and turn its answer into Dash's response.
//!
//! Pattern-matching dependencies are resolved here: a `MATCH` entry must be one prop whose
//! id fits the pattern, an `ALL` or `ALLSMALLER` entry a list of them, every `MATCH` key
//! must hold the same value across the request, and `ALLSMALLER` values must lie below
//! it. The concrete outputs of the request are what the component answers for and what
//! the response is keyed by.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;

use super::ProtocolError;
use super::dependencies::{Callback, Dependencies, PropRef};
use super::pattern::{self, Wildcard};

/// Whether a request's `Content-Type` (`None`: absent) is JSON, as the renderer sends it:
/// `application/json`, parameters such as `charset` allowed. A cross-site HTML form cannot
/// send that type (a script needs a CORS preflight for it), so requiring it keeps blind
/// cross-origin posts away from callbacks.
pub fn is_json_content_type(value: Option<&str>) -> bool {
    value
        .and_then(|v| v.split(';').next())
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/json"))
}

/// The `Content-Type` of Dash's empty answers (204: PreventUpdate, nothing to change), as
/// Flask writes `return "", 204`.
pub const EMPTY_ANSWER_CONTENT_TYPE: &str = "text/html; charset=utf-8";

/// Dash's marker for "leave this output as it is".
const NO_UPDATE_KEY: &str = "_dash_no_update";

/// One input or state prop of the renderer's body. A property the browser has not set
/// arrives without `value`.
#[derive(Debug, Deserialize, Serialize)]
pub struct PropValue {
    /// Component id.
    pub id: Value,
    /// Property name.
    pub property: String,
    /// The value, when the browser has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Value>,
}

/// The renderer's request body.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateRequest {
    /// The callback id (its dependency's `output`).
    pub output: String,
    /// One output entry, or a list of them for a multi-output callback (an entry is an
    /// `{id, property}` or, for an `ALL` output, a list of them); absent for callbacks
    /// without outputs.
    #[serde(default)]
    pub outputs: Option<Value>,
    /// Input entries as sent: `{id, property, value}` or a list of them for a pattern.
    pub inputs: Vec<Value>,
    /// State entries, shaped like `inputs`.
    #[serde(default)]
    pub state: Vec<Value>,
    /// Which inputs changed (`id.prop`); empty on the initial call.
    #[serde(default)]
    pub changed_prop_ids: Vec<String>,
}

/// The concrete props of one declared output: one, or a list for an `ALL` output.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum OutputEntry {
    /// A plain or `MATCH` output.
    One(PropRef),
    /// An `ALL` output: every matching component, possibly none.
    Many(Vec<PropRef>),
}

/// What the component's `run-callback` receives (see the WIT world).
#[derive(Debug, Serialize)]
pub struct GuestRequest<'a> {
    /// The concrete outputs, one entry per declared output, in order.
    pub outputs: &'a [OutputEntry],
    /// Input entries in declaration order, as the renderer sent them.
    pub inputs: &'a [Value],
    /// State entries in declaration order.
    pub state: &'a [Value],
    /// Which inputs changed.
    pub changed_prop_ids: &'a [String],
    /// Where the app is served (`/apps/{tenant}/{app}/`), so page routing can strip it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pathname_prefix: Option<&'a str>,
}

/// A request that has been checked against its callback.
#[derive(Debug)]
pub struct CheckedUpdate<'d> {
    /// The declared callback.
    pub callback: &'d Callback,
    /// The body, as sent.
    pub request: UpdateRequest,
    /// The concrete outputs this call writes, one entry per declared output.
    pub outputs: Vec<OutputEntry>,
}

impl CheckedUpdate<'_> {
    /// The JSON handed to the component.
    pub fn guest_request_json(&self) -> String {
        self.guest_request(None)
    }

    /// The JSON handed to the component of an app served under `prefix`.
    pub fn guest_request_json_at(&self, prefix: &str) -> String {
        self.guest_request(Some(prefix))
    }

    fn guest_request(&self, pathname_prefix: Option<&str>) -> String {
        let request = GuestRequest {
            outputs: &self.outputs,
            inputs: &self.request.inputs,
            state: &self.request.state,
            changed_prop_ids: &self.request.changed_prop_ids,
            pathname_prefix,
        };
        // Serialising plain structs of JSON values cannot fail.
        serde_json::to_string(&request).unwrap_or_else(|_| "{}".to_owned())
    }
}

/// Parse a body and check it against the app's callbacks: the callback must exist, and
/// the inputs, state and outputs must fit the declared ones, in order.
pub fn check<'d>(
    dependencies: &'d Dependencies,
    body: &[u8],
) -> Result<CheckedUpdate<'d>, ProtocolError> {
    let request: UpdateRequest =
        serde_json::from_slice(body).map_err(|e| ProtocolError::Malformed(e.to_string()))?;
    let callback = dependencies
        .get(&request.output)
        .ok_or_else(|| ProtocolError::UnknownCallback(request.output.clone()))?;
    if callback.clientside {
        return Err(ProtocolError::Clientside(request.output.clone()));
    }
    let mut wildcards = Wildcards::default();
    check_entries(
        "input",
        &callback.inputs,
        &request.inputs,
        true,
        &mut wildcards,
    )?;
    check_entries(
        "state",
        &callback.state,
        &request.state,
        true,
        &mut wildcards,
    )?;
    let outputs = concrete_outputs(callback, request.outputs.as_ref(), &mut wildcards)?;
    wildcards.check_smaller()?;
    Ok(CheckedUpdate {
        callback,
        request,
        outputs,
    })
}

/// The `MATCH` values seen so far, by key, and the `ALLSMALLER` values to check.
#[derive(Default)]
struct Wildcards {
    matched: BTreeMap<String, Value>,
    smaller: Vec<(String, Value, String)>,
}

impl Wildcards {
    /// Record the wildcard positions of one concrete prop that fits `declared`.
    fn record(
        &mut self,
        declared: &Value,
        concrete: &Value,
        name: &str,
    ) -> Result<(), ProtocolError> {
        let (Some(pattern), Some(concrete)) = (declared.as_object(), concrete.as_object()) else {
            return Ok(());
        };
        for (key, want) in pattern {
            let Some(got) = concrete.get(key) else {
                continue;
            };
            match Wildcard::of(want) {
                Some(Wildcard::Match) => match self.matched.get(key) {
                    Some(seen) if seen != got => {
                        return Err(ProtocolError::Mismatch(format!(
                            "MATCH key {key:?} is {} in {name} but {} elsewhere in the request",
                            got, seen
                        )));
                    }
                    Some(_) => {}
                    None => {
                        self.matched.insert(key.clone(), got.clone());
                    }
                },
                Some(Wildcard::AllSmaller) => {
                    self.smaller
                        .push((key.clone(), got.clone(), name.to_owned()));
                }
                Some(Wildcard::All) | None => {}
            }
        }
        Ok(())
    }

    /// Every `ALLSMALLER` value must lie below the `MATCH` value of its key.
    fn check_smaller(&self) -> Result<(), ProtocolError> {
        for (key, value, name) in &self.smaller {
            let Some(limit) = self.matched.get(key) else {
                continue;
            };
            if pattern::compare(value, limit) != Some(std::cmp::Ordering::Less) {
                return Err(ProtocolError::Mismatch(format!(
                    "{name} is in an ALLSMALLER list but its {key:?} ({value}) is not smaller \
                     than the MATCH value {limit}"
                )));
            }
        }
        Ok(())
    }
}

/// Check input or state entries (`with_value`) or output entries against declarations.
fn check_entries(
    kind: &str,
    declared: &[PropRef],
    sent: &[Value],
    with_value: bool,
    wildcards: &mut Wildcards,
) -> Result<Vec<OutputEntry>, ProtocolError> {
    if declared.len() != sent.len() {
        return Err(ProtocolError::Mismatch(format!(
            "the callback takes {} {kind} value(s) ({}), the request has {}",
            declared.len(),
            describe(declared),
            sent.len()
        )));
    }
    let mut entries = Vec::with_capacity(sent.len());
    for (position, (want, got)) in declared.iter().zip(sent).enumerate() {
        let one = |item: &Value| -> Result<PropRef, ProtocolError> {
            let prop: PropValue = serde_json::from_value(item.clone())
                .map_err(|e| ProtocolError::Malformed(format!("{kind} {position}: {e}")))?;
            if !with_value && prop.value.is_some() {
                return Err(ProtocolError::Malformed(format!(
                    "{kind} {position} carries a value"
                )));
            }
            // Outputs of allow_duplicate callbacks carry the `@hash` suffix.
            let property = match with_value {
                true => prop.property,
                false => prop
                    .property
                    .split('@')
                    .next()
                    .unwrap_or_default()
                    .to_owned(),
            };
            if property != want.property || !pattern::matches(&want.id, &prop.id) {
                return Err(ProtocolError::Mismatch(format!(
                    "{kind} {position} is {} but the callback declares {}",
                    prop_name(&prop.id, &property),
                    prop_name(&want.id, &want.property)
                )));
            }
            Ok(PropRef {
                id: prop.id,
                property,
            })
        };
        let entry = match (pattern::is_list(&want.id), got) {
            (true, Value::Array(items)) => {
                OutputEntry::Many(items.iter().map(&one).collect::<Result<Vec<_>, _>>()?)
            }
            (false, Value::Object(_)) => OutputEntry::One(one(got)?),
            (true, _) => {
                return Err(ProtocolError::Mismatch(format!(
                    "{kind} {position} ({}) is a pattern with ALL or ALLSMALLER and takes a \
                     list of props",
                    prop_name(&want.id, &want.property)
                )));
            }
            (false, _) => {
                return Err(ProtocolError::Mismatch(format!(
                    "{kind} {position} ({}) takes one {{id, property}} object",
                    prop_name(&want.id, &want.property)
                )));
            }
        };
        let name = format!("{kind} {position}");
        match &entry {
            OutputEntry::One(prop) => wildcards.record(&want.id, &prop.id, &name)?,
            OutputEntry::Many(props) => {
                for prop in props {
                    wildcards.record(&want.id, &prop.id, &name)?;
                }
            }
        }
        entries.push(entry);
    }
    Ok(entries)
}

/// The concrete outputs of a request: checked against the declaration when the request
/// names them, else the declared ones (possible only without wildcards).
fn concrete_outputs(
    callback: &Callback,
    sent: Option<&Value>,
    wildcards: &mut Wildcards,
) -> Result<Vec<OutputEntry>, ProtocolError> {
    if callback.no_output {
        return match sent {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(items)) if items.is_empty() => Ok(Vec::new()),
            Some(_) => Err(ProtocolError::Mismatch(
                "the callback has no outputs but the request names some".into(),
            )),
        };
    }
    let Some(sent) = sent else {
        if callback
            .outputs
            .iter()
            .any(|o| pattern::has_wildcard(&o.id))
        {
            return Err(ProtocolError::Mismatch(
                "the request must name the concrete outputs of a pattern-matching callback".into(),
            ));
        }
        return Ok(callback
            .outputs
            .iter()
            .cloned()
            .map(OutputEntry::One)
            .collect());
    };
    let entries: Vec<Value> = match (callback.multi, sent) {
        (true, Value::Array(items)) => items.clone(),
        (true, _) => {
            return Err(ProtocolError::Mismatch(
                "a multi-output callback takes a list of outputs".into(),
            ));
        }
        (false, single) => vec![single.clone()],
    };
    check_entries("output", &callback.outputs, &entries, false, wildcards)
}

fn describe(refs: &[PropRef]) -> String {
    let names: Vec<String> = refs.iter().map(|r| prop_name(&r.id, &r.property)).collect();
    format!("[{}]", names.join(", "))
}

fn prop_name(id: &Value, property: &str) -> String {
    format!("{}.{property}", id_key(id))
}

/// The key Dash uses for a component id in responses: the string itself, or compact JSON
/// with sorted keys for dictionary ids (Dash's `stringify_id`).
pub fn id_key(id: &Value) -> String {
    pattern::stringify(id)
}

/// Why the component's answer cannot be turned into a response.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AnswerError {
    /// Not a JSON array.
    #[error("the callback's outputs are not a JSON array: {0}")]
    NotAnArray(String),
    /// Wrong number of values.
    #[error("the callback returned {got} value(s) for {want} output(s)")]
    WrongCount {
        /// Values returned.
        got: usize,
        /// Outputs declared.
        want: usize,
    },
    /// A 0.2.0 answer object (`{"outputs", "side_update"}`) that does not fit.
    #[error("the callback's answer object is malformed: {0}")]
    BadEnvelope(String),
    /// An `ALL` output got something other than one value per matching component.
    #[error("output {output} matches {want} component(s) but the callback returned {got}")]
    WrongPatternCount {
        /// The output's pattern, as Dash prints it.
        output: usize,
        /// Values returned (0 when not a list).
        got: usize,
        /// Components matched.
        want: usize,
    },
}

/// The component's answer with `set_props` side updates (WIT 0.2.0): the outputs array
/// and, by stringified component id, the props to set elsewhere on the page.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Envelope<'a> {
    #[serde(borrow)]
    outputs: &'a RawValue,
    #[serde(default)]
    side_update: Option<serde_json::Map<String, Value>>,
}

/// Dash's answer to a callback run that produced `answer` (the component's `outputs`
/// string): `None` when there is nothing to send (204, as Dash answers a callback without
/// outputs and without side updates), else the body. `answer` is the plain JSON array
/// of 0.1.0, or `{"outputs": [...], "side_update": {id: {prop: value}}}`, which becomes
/// Dash's `sideUpdate` key.
pub fn answer_body(
    outputs: &[OutputEntry],
    no_output: bool,
    answer: &str,
) -> Result<Option<String>, AnswerError> {
    let (values, side_update) = if answer.trim_start().starts_with('{') {
        let envelope: Envelope<'_> =
            serde_json::from_str(answer).map_err(|e| AnswerError::BadEnvelope(e.to_string()))?;
        let side_update = envelope.side_update.unwrap_or_default();
        if let Some((id, _)) = side_update.iter().find(|(_, props)| !props.is_object()) {
            return Err(AnswerError::BadEnvelope(format!(
                "the side update of {id:?} is not a dictionary of props"
            )));
        }
        (envelope.outputs.get(), side_update)
    } else {
        (answer, serde_json::Map::new())
    };
    if no_output && side_update.is_empty() {
        return Ok(None);
    }
    let mut body = String::with_capacity(answer.len() + 64);
    body.push_str(r#"{"multi":true,"#);
    if !side_update.is_empty() {
        body.push_str(r#""sideUpdate":"#);
        body.push_str(&Value::Object(side_update).to_string());
        body.push(',');
    }
    body.push_str(r#""response":"#);
    if no_output {
        body.push_str("{}");
    } else {
        write_response(outputs, values, &mut body)?;
    }
    body.push('}');
    Ok(Some(body))
}

/// Build `{"multi": true, "response": {...}}` from the component's JSON array (one value
/// per output entry, a list for an `ALL` output), leaving out `no_update` values and
/// keeping large values (figures) as raw JSON text.
pub fn response_body(outputs: &[OutputEntry], answer: &str) -> Result<String, AnswerError> {
    let mut body = String::with_capacity(answer.len() + 64);
    body.push_str(r#"{"multi":true,"response":"#);
    write_response(outputs, answer, &mut body)?;
    body.push('}');
    Ok(body)
}

/// Append the `response` object: outputs grouped by component id.
fn write_response<'o, 'a>(
    outputs: &'o [OutputEntry],
    answer: &'a str,
    body: &mut String,
) -> Result<(), AnswerError> {
    let values: Vec<&RawValue> =
        serde_json::from_str(answer).map_err(|e| AnswerError::NotAnArray(e.to_string()))?;
    if values.len() != outputs.len() {
        return Err(AnswerError::WrongCount {
            got: values.len(),
            want: outputs.len(),
        });
    }
    // Group by component id, keeping first-seen order, as Dash does.
    let mut grouped: Vec<(String, Vec<(&'o str, &'a RawValue)>)> = Vec::new();
    let mut add = |output: &'o PropRef, value: &'a RawValue| {
        let key = id_key(&output.id);
        match grouped.iter_mut().find(|(k, _)| *k == key) {
            Some((_, props)) => props.push((output.property.as_str(), value)),
            None => grouped.push((key, vec![(output.property.as_str(), value)])),
        }
    };
    for (position, (entry, value)) in outputs.iter().zip(values).enumerate() {
        if is_no_update(value) {
            continue;
        }
        match entry {
            OutputEntry::One(output) => add(output, value),
            OutputEntry::Many(props) => {
                let items: Vec<&RawValue> = serde_json::from_str(value.get()).map_err(|_| {
                    AnswerError::WrongPatternCount {
                        output: position,
                        got: 0,
                        want: props.len(),
                    }
                })?;
                if items.len() != props.len() {
                    return Err(AnswerError::WrongPatternCount {
                        output: position,
                        got: items.len(),
                        want: props.len(),
                    });
                }
                for (output, item) in props.iter().zip(items) {
                    if !is_no_update(item) {
                        add(output, item);
                    }
                }
            }
        }
    }
    body.push('{');
    for (i, (key, props)) in grouped.iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        body.push_str(&json_string(key));
        body.push_str(":{");
        for (j, (property, value)) in props.iter().enumerate() {
            if j > 0 {
                body.push(',');
            }
            body.push_str(&json_string(property));
            body.push(':');
            body.push_str(value.get());
        }
        body.push('}');
    }
    body.push('}');
    Ok(())
}

fn is_no_update(value: &RawValue) -> bool {
    let text = value.get();
    text.len() < 64
        && text.contains(NO_UPDATE_KEY)
        && serde_json::from_str::<Value>(text)
            .map(|v| v.get(NO_UPDATE_KEY).is_some_and(|m| m == NO_UPDATE_KEY))
            .unwrap_or(false)
}

fn json_string(s: &str) -> String {
    Value::String(s.to_owned()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_json_content_types_are_json() {
        assert!(is_json_content_type(Some("application/json")));
        assert!(is_json_content_type(Some(
            "Application/JSON; charset=utf-8"
        )));
        assert!(!is_json_content_type(None));
        assert!(!is_json_content_type(Some("text/plain")));
        assert!(!is_json_content_type(Some(
            "application/x-www-form-urlencoded"
        )));
        assert!(!is_json_content_type(Some("application/jsonp")));
    }
    use serde_json::json;

    fn one(id: Value, property: &str) -> OutputEntry {
        OutputEntry::One(PropRef {
            id,
            property: property.into(),
        })
    }

    fn deps() -> Dependencies {
        Dependencies::parse(
            &json!([
                {"output": "summary.children", "inputs": [{"id": "region", "property": "value"}], "state": []},
                {"output": "..a.children...b.value..",
                 "inputs": [{"id": "x", "property": "value"}],
                 "state": [{"id": "s", "property": "data"}]}
            ])
            .to_string(),
        )
        .expect("valid deps")
    }

    #[test]
    fn a_renderer_body_is_accepted_and_forwarded() {
        let deps = deps();
        let body = json!({
            "output": "summary.children",
            "outputs": {"id": "summary", "property": "children"},
            "inputs": [{"id": "region", "property": "value", "value": "West"}],
            "changedPropIds": ["region.value"],
            "parsedChangedPropsIds": ["region.value"]
        });
        let checked = check(&deps, body.to_string().as_bytes()).expect("accepted");
        let guest: Value = serde_json::from_str(&checked.guest_request_json()).expect("json");
        assert_eq!(
            guest,
            json!({
                "outputs": [{"id": "summary", "property": "children"}],
                "inputs": [{"id": "region", "property": "value", "value": "West"}],
                "state": [],
                "changed_prop_ids": ["region.value"]
            })
        );
    }

    #[test]
    fn unset_values_stay_absent() {
        let deps = deps();
        let body = json!({"output": "summary.children", "inputs": [{"id": "region", "property": "value"}]});
        let checked = check(&deps, body.to_string().as_bytes()).expect("accepted");
        let guest: Value = serde_json::from_str(&checked.guest_request_json()).expect("json");
        assert_eq!(
            guest["inputs"][0],
            json!({"id": "region", "property": "value"})
        );
    }

    #[test]
    fn bad_bodies_get_precise_errors() {
        let deps = deps();
        let cases = [
            ("not json", "malformed_request"),
            (
                r#"{"output": "nope.children", "inputs": []}"#,
                "unknown_callback",
            ),
            (
                r#"{"output": "summary.children", "inputs": []}"#,
                "request_mismatch",
            ),
            (
                r#"{"output": "summary.children", "inputs": [{"id": "other", "property": "value", "value": 1}]}"#,
                "request_mismatch",
            ),
            (
                r#"{"output": "summary.children", "outputs": {"id": "x", "property": "y"}, "inputs": [{"id": "region", "property": "value"}]}"#,
                "request_mismatch",
            ),
            (
                r#"{"output": "summary.children", "inputs": "region"}"#,
                "malformed_request",
            ),
        ];
        for (body, code) in cases {
            let err = check(&deps, body.as_bytes()).expect_err(body);
            assert_eq!(err.code(), code, "{body}: {err}");
        }
    }

    #[test]
    fn response_groups_by_id_and_skips_no_update() {
        let outputs = vec![
            one(json!("a"), "children"),
            one(json!("b"), "value"),
            one(json!("a"), "style"),
        ];
        let body = response_body(
            &outputs,
            r#"[ "hi", {"_dash_no_update": "_dash_no_update"}, {"color": "red"} ]"#,
        )
        .expect("valid answer");
        let parsed: Value = serde_json::from_str(&body).expect("json");
        assert_eq!(
            parsed,
            json!({"multi": true, "response": {"a": {"children": "hi", "style": {"color": "red"}}}})
        );
    }

    #[test]
    fn wrong_answers_are_errors() {
        let outputs = vec![one(json!("a"), "children")];
        assert_eq!(
            response_body(&outputs, "[1, 2]"),
            Err(AnswerError::WrongCount { got: 2, want: 1 })
        );
        assert!(matches!(
            response_body(&outputs, "{}"),
            Err(AnswerError::NotAnArray(_))
        ));
    }

    #[test]
    fn dictionary_ids_are_keyed_with_sorted_compact_json() {
        assert_eq!(
            id_key(&json!({"type": "line", "index": 2})),
            r#"{"index":2,"type":"line"}"#
        );
    }

    fn pattern_deps() -> Dependencies {
        Dependencies::parse(
            &json!([
                {"output": r#"{"index":["MATCH"],"type":"label"}.children"#,
                 "inputs": [{"id": r#"{"index":["MATCH"],"type":"f"}"#, "property": "value"},
                            {"id": r#"{"index":["ALLSMALLER"],"type":"f"}"#, "property": "value"}],
                 "state": []},
                {"output": r#"{"index":["ALL"],"type":"label"}.title"#,
                 "inputs": [{"id": r#"{"index":["ALL"],"type":"f"}"#, "property": "value"}],
                 "state": []}
            ])
            .to_string(),
        )
        .expect("valid deps")
    }

    fn f(index: u32, value: Option<&str>) -> Value {
        let mut prop = json!({"id": {"type": "f", "index": index}, "property": "value"});
        if let Some(value) = value {
            prop["value"] = json!(value);
        }
        prop
    }

    fn label(index: u32, property: &str) -> Value {
        json!({"id": {"index": index, "type": "label"}, "property": property})
    }

    #[test]
    fn match_and_allsmaller_requests_resolve_to_concrete_outputs() {
        let deps = pattern_deps();
        let body = json!({
            "output": r#"{"index":["MATCH"],"type":"label"}.children"#,
            "outputs": label(2, "children"),
            "inputs": [f(2, Some("b")), [f(0, Some("x")), f(1, None)]],
            "changedPropIds": [r#"{"index":2,"type":"f"}.value"#]
        });
        let checked = check(&deps, body.to_string().as_bytes()).expect("accepted");
        assert_eq!(
            checked.outputs,
            [OutputEntry::One(PropRef {
                id: json!({"index": 2, "type": "label"}),
                property: "children".into()
            })]
        );
        let guest: Value = serde_json::from_str(&checked.guest_request_json()).expect("json");
        assert_eq!(guest["outputs"], json!([label(2, "children")]));
        assert_eq!(guest["inputs"][1][1], f(1, None));
        let answer = response_body(&checked.outputs, r#"["two"]"#).expect("answer");
        assert_eq!(
            answer,
            r#"{"multi":true,"response":{"{\"index\":2,\"type\":\"label\"}":{"children":"two"}}}"#
        );
    }

    #[test]
    fn pattern_requests_that_do_not_fit_are_mismatches() {
        let deps = pattern_deps();
        let match_id = r#"{"index":["MATCH"],"type":"label"}.children"#;
        let all_id = r#"{"index":["ALL"],"type":"label"}.title"#;
        let cases = [
            // MATCH output for index 3, MATCH input for index 2.
            json!({"output": match_id, "outputs": label(3, "children"),
                   "inputs": [f(2, None), []]}),
            // ALLSMALLER holds an index that is not smaller.
            json!({"output": match_id, "outputs": label(2, "children"),
                   "inputs": [f(2, None), [f(2, None)]]}),
            // A list where one prop is due, and one prop where a list is due.
            json!({"output": match_id, "outputs": label(2, "children"),
                   "inputs": [[f(2, None)], []]}),
            json!({"output": all_id, "outputs": [label(1, "title")], "inputs": [f(1, None)]}),
            // A concrete id of another type, a wildcard sent as a value, no outputs.
            json!({"output": all_id, "outputs": [label(1, "title")],
                   "inputs": [[{"id": {"type": "g", "index": 1}, "property": "value"}]]}),
            json!({"output": all_id, "outputs": [label(1, "title")],
                   "inputs": [[{"id": {"type": "f", "index": ["ALL"]}, "property": "value"}]]}),
            json!({"output": all_id, "inputs": [[f(1, None)]]}),
        ];
        for body in cases {
            let err = check(&deps, body.to_string().as_bytes()).expect_err(&body.to_string());
            assert_eq!(err.code(), "request_mismatch", "{body}: {err}");
        }
    }

    #[test]
    fn all_outputs_take_a_list_per_output() {
        let deps = pattern_deps();
        let body = json!({
            "output": r#"{"index":["ALL"],"type":"label"}.title"#,
            "outputs": [label(1, "title"), label(2, "title")],
            "inputs": [[f(1, Some("a")), f(2, Some("b"))]],
        });
        let checked = check(&deps, body.to_string().as_bytes()).expect("accepted");
        let answer = response_body(
            &checked.outputs,
            r#"[["A", {"_dash_no_update": "_dash_no_update"}]]"#,
        )
        .expect("answer");
        let parsed: Value = serde_json::from_str(&answer).expect("json");
        assert_eq!(
            parsed,
            json!({"multi": true, "response": {r#"{"index":1,"type":"label"}"#: {"title": "A"}}})
        );
        assert_eq!(
            response_body(&checked.outputs, r#"[["A"]]"#),
            Err(AnswerError::WrongPatternCount {
                output: 0,
                got: 1,
                want: 2
            })
        );
        let empty = json!({
            "output": r#"{"index":["ALL"],"type":"label"}.title"#,
            "outputs": [],
            "inputs": [[]],
        });
        let checked = check(&deps, empty.to_string().as_bytes()).expect("no cards yet");
        assert_eq!(
            response_body(&checked.outputs, "[[]]").expect("answer"),
            r#"{"multi":true,"response":{}}"#
        );
    }

    #[test]
    fn side_updates_become_dash_side_update_key() {
        let outputs = vec![one(json!("a"), "children")];
        let answer = r#"{"outputs": ["hi"], "side_update": {"status": {"children": "ok"}, "{\"index\":1,\"type\":\"c\"}": {"x": 1}}}"#;
        let body = answer_body(&outputs, false, answer)
            .expect("valid answer")
            .expect("a body");
        let parsed: Value = serde_json::from_str(&body).expect("json");
        assert_eq!(
            parsed,
            json!({"multi": true,
                   "sideUpdate": {"status": {"children": "ok"}, r#"{"index":1,"type":"c"}"#: {"x": 1}},
                   "response": {"a": {"children": "hi"}}})
        );
        // The plain 0.1.0 array reads as before.
        assert_eq!(
            answer_body(&outputs, false, r#"["hi"]"#).expect("valid"),
            Some(r#"{"multi":true,"response":{"a":{"children":"hi"}}}"#.to_owned())
        );
    }

    #[test]
    fn a_callback_without_outputs_answers_only_with_side_updates() {
        assert_eq!(answer_body(&[], true, "[]"), Ok(None));
        assert_eq!(
            answer_body(&[], true, r#"{"outputs": [], "side_update": {}}"#),
            Ok(None)
        );
        assert_eq!(
            answer_body(
                &[],
                true,
                r#"{"outputs": [], "side_update": {"s": {"children": 1}}}"#
            ),
            Ok(Some(
                r#"{"multi":true,"sideUpdate":{"s":{"children":1}},"response":{}}"#.to_owned()
            ))
        );
    }

    #[test]
    fn hostile_answer_objects_are_refused() {
        let outputs = vec![one(json!("a"), "children")];
        for answer in [
            r#"{"outputs": ["x"], "side_update": {"s": "not props"}}"#,
            r#"{"outputs": ["x"], "side_update": [1]}"#,
            r#"{"outputs": ["x"], "extra": 1}"#,
            r#"{"side_update": {}}"#,
            r#"{"outputs": ["x"], "side_update": {"s": {}}"#,
        ] {
            assert!(
                matches!(
                    answer_body(&outputs, false, answer),
                    Err(AnswerError::BadEnvelope(_))
                ),
                "{answer}"
            );
        }
        assert_eq!(
            answer_body(&outputs, false, r#"{"outputs": ["x", "y"]}"#),
            Err(AnswerError::WrongCount { got: 2, want: 1 })
        );
    }
}
