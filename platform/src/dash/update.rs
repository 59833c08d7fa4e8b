//! `_dash-update-component`: check the renderer's body against the declared callback,
//! build the request the component gets, and turn its answer into Dash's response.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;

use super::ProtocolError;
use super::dependencies::{Callback, Dependencies, PropRef};

/// Dash's marker for "leave this output as it is".
const NO_UPDATE_KEY: &str = "_dash_no_update";

/// One input or state entry of the renderer's body. A property the browser has not set
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
    /// One `{id, property}` or a list of them; absent for callbacks without outputs.
    #[serde(default)]
    pub outputs: Option<Value>,
    /// Input values.
    pub inputs: Vec<PropValue>,
    /// State values.
    #[serde(default)]
    pub state: Vec<PropValue>,
    /// Which inputs changed (`id.prop`); empty on the initial call.
    #[serde(default)]
    pub changed_prop_ids: Vec<String>,
}

/// What the component's `run-callback` receives (see the WIT world).
#[derive(Debug, Serialize)]
pub struct GuestRequest<'a> {
    /// The outputs to produce, in order.
    pub outputs: &'a [PropRef],
    /// Inputs in declaration order.
    pub inputs: &'a [PropValue],
    /// State in declaration order.
    pub state: &'a [PropValue],
    /// Which inputs changed.
    pub changed_prop_ids: &'a [String],
}

/// A request that has been checked against its callback.
#[derive(Debug)]
pub struct CheckedUpdate<'d> {
    /// The declared callback.
    pub callback: &'d Callback,
    /// The body, as sent.
    pub request: UpdateRequest,
}

impl CheckedUpdate<'_> {
    /// The JSON handed to the component.
    pub fn guest_request_json(&self) -> String {
        let request = GuestRequest {
            outputs: &self.callback.outputs,
            inputs: &self.request.inputs,
            state: &self.request.state,
            changed_prop_ids: &self.request.changed_prop_ids,
        };
        // Serialising plain structs of JSON values cannot fail.
        serde_json::to_string(&request).unwrap_or_else(|_| "{}".to_owned())
    }
}

/// Parse a body and check it against the app's callbacks: the callback must exist and the
/// inputs, state and outputs must be exactly the declared ones, in order.
pub fn check<'d>(
    dependencies: &'d Dependencies,
    body: &[u8],
) -> Result<CheckedUpdate<'d>, ProtocolError> {
    let request: UpdateRequest =
        serde_json::from_slice(body).map_err(|e| ProtocolError::Malformed(e.to_string()))?;
    let callback = dependencies
        .get(&request.output)
        .ok_or_else(|| ProtocolError::UnknownCallback(request.output.clone()))?;
    compare("input", &callback.inputs, &request.inputs)?;
    compare("state", &callback.state, &request.state)?;
    if let Some(outputs) = &request.outputs {
        let sent: Vec<PropRef> = match outputs {
            Value::Array(items) => items
                .iter()
                .map(|o| serde_json::from_value(o.clone()))
                .collect::<Result<_, _>>(),
            single => serde_json::from_value(single.clone()).map(|o| vec![o]),
        }
        .map_err(|e| ProtocolError::Malformed(format!("outputs: {e}")))?;
        let declared: Vec<PropRef> = callback.outputs.clone();
        let sent: Vec<PropRef> = sent
            .into_iter()
            .map(|o| PropRef {
                property: o.property.split('@').next().unwrap_or_default().to_owned(),
                id: o.id,
            })
            .collect();
        if sent != declared {
            return Err(ProtocolError::Mismatch(format!(
                "outputs {} do not match the callback's outputs {}",
                describe(&sent),
                describe(&declared)
            )));
        }
    }
    Ok(CheckedUpdate { callback, request })
}

fn compare(kind: &str, declared: &[PropRef], sent: &[PropValue]) -> Result<(), ProtocolError> {
    if declared.len() != sent.len() {
        return Err(ProtocolError::Mismatch(format!(
            "the callback takes {} {kind} value(s) ({}), the request has {}",
            declared.len(),
            describe(declared),
            sent.len()
        )));
    }
    for (position, (want, got)) in declared.iter().zip(sent).enumerate() {
        if want.id != got.id || want.property != got.property {
            return Err(ProtocolError::Mismatch(format!(
                "{kind} {position} is {} but the callback declares {}",
                prop_name(&got.id, &got.property),
                prop_name(&want.id, &want.property)
            )));
        }
    }
    Ok(())
}

fn describe(refs: &[PropRef]) -> String {
    let names: Vec<String> = refs.iter().map(|r| prop_name(&r.id, &r.property)).collect();
    format!("[{}]", names.join(", "))
}

fn prop_name(id: &Value, property: &str) -> String {
    format!("{}.{property}", id_key(id))
}

/// The key Dash uses for a component id in responses: the string itself, or compact JSON
/// with sorted keys for dictionary ids.
pub fn id_key(id: &Value) -> String {
    match id {
        Value::String(s) => s.clone(),
        // serde_json's Map keeps insertion order with `preserve_order`; Dash sorts keys.
        Value::Object(map) => {
            let sorted: std::collections::BTreeMap<&String, &Value> = map.iter().collect();
            serde_json::to_string(&sorted).unwrap_or_default()
        }
        other => other.to_string(),
    }
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
}

/// Build `{"multi": true, "response": {...}}` from the component's JSON array, leaving
/// out `no_update` values and keeping large values (figures) as raw JSON text.
pub fn response_body(outputs: &[PropRef], answer: &str) -> Result<String, AnswerError> {
    let values: Vec<&RawValue> =
        serde_json::from_str(answer).map_err(|e| AnswerError::NotAnArray(e.to_string()))?;
    if values.len() != outputs.len() {
        return Err(AnswerError::WrongCount {
            got: values.len(),
            want: outputs.len(),
        });
    }
    // Group by component id, keeping first-seen order, as Dash does.
    let mut grouped: Vec<(String, Vec<(&str, &RawValue)>)> = Vec::new();
    for (output, value) in outputs.iter().zip(values) {
        if is_no_update(value) {
            continue;
        }
        let key = id_key(&output.id);
        match grouped.iter_mut().find(|(k, _)| *k == key) {
            Some((_, props)) => props.push((&output.property, value)),
            None => grouped.push((key, vec![(&output.property, value)])),
        }
    }
    let mut body = String::with_capacity(answer.len() + 64);
    body.push_str(r#"{"multi":true,"response":{"#);
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
    body.push_str("}}");
    Ok(body)
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
    use serde_json::json;

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
            PropRef {
                id: json!("a"),
                property: "children".into(),
            },
            PropRef {
                id: json!("b"),
                property: "value".into(),
            },
            PropRef {
                id: json!("a"),
                property: "style".into(),
            },
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
        let outputs = vec![PropRef {
            id: json!("a"),
            property: "children".into(),
        }];
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
}
