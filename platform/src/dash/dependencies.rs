//! The callback graph an app declares, parsed from its `_dash-dependencies` JSON.
//!
//! Dictionary (pattern-matching) ids arrive as strings, as Dash writes them, and are
//! parsed into objects here so every later step compares JSON values.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::pattern;

/// One `{id, property}` pair of a dependency.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
pub struct PropRef {
    /// A component id: a string, or a dictionary for pattern-matching ids.
    pub id: Value,
    /// The property name.
    pub property: String,
}

/// One callback as declared by the app.
#[derive(Clone, Debug, PartialEq)]
pub struct Callback {
    /// Dash's callback id: the `output` string of the dependency.
    pub output: String,
    /// The outputs, parsed from `output`; empty for a callback without outputs.
    pub outputs: Vec<PropRef>,
    /// For each output, whether it carries Dash's `allow_duplicate` (`@hash`) suffix.
    pub allow_duplicate: Vec<bool>,
    /// Whether `output` is the multi-output form `..a.p...b.q..` (the handler returns a
    /// list with one entry per output).
    pub multi: bool,
    /// Whether the callback has no outputs (Dash's `no_output`).
    pub no_output: bool,
    /// The inputs, in order.
    pub inputs: Vec<PropRef>,
    /// The state, in order.
    pub state: Vec<PropRef>,
    /// Whether the browser runs it (a non-null `clientside_function`).
    pub clientside: bool,
    /// Set for a background callback (Dash's `background=True`).
    pub background: Option<Background>,
    /// Set for a callback the author marked `memoize(ttl)`: answers are kept this long
    /// (see [`crate::cache::memo`]). Background callbacks are never memoized.
    pub memoize: Option<std::time::Duration>,
    /// Whether the renderer may send it over the page's WebSocket (Dash's
    /// `websocket=True`); see [`super::ws`].
    pub websocket: bool,
}

/// A background callback's polling interval and what the platform needs to run it as a job.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct Background {
    /// Poll period the renderer uses, from Dash's `background.interval`.
    #[serde(skip)]
    pub interval_ms: u64,
    /// The progress outputs, `id.prop` as Dash's `str(Output)` writes them.
    #[serde(default)]
    pub progress: Vec<String>,
    /// The progress outputs' values when no job runs.
    #[serde(default, rename = "progressDefault")]
    pub progress_default: Option<Vec<Value>>,
    /// The inputs that cancel a running job, as `{id, property}`.
    #[serde(default)]
    pub cancel: Vec<Value>,
}

/// The dependency key the SDK uses for a background callback's progress outputs and
/// cancel inputs; not part of Dash's `_dash-dependencies`, so it is removed before serving.
pub const BACKGROUND_KEY: &str = "tessera_background";

/// The dependency key the SDK uses for a memoized callback, `{"ttl_ms": N}`; removed before
/// serving like [`BACKGROUND_KEY`].
pub const MEMOIZE_KEY: &str = "tessera_memoize";

/// Tessera's private keys of a dependency entry.
const PRIVATE_KEYS: [&str; 2] = [BACKGROUND_KEY, MEMOIZE_KEY];

/// The dependency list as Dash serves it: `json` without Tessera's private keys.
pub fn public_json(json: &str) -> String {
    match serde_json::from_str::<Vec<serde_json::Map<String, Value>>>(json) {
        Ok(mut entries)
            if entries
                .iter()
                .any(|e| PRIVATE_KEYS.iter().any(|k| e.contains_key(*k))) =>
        {
            for entry in &mut entries {
                for key in PRIVATE_KEYS {
                    entry.remove(key);
                }
            }
            serde_json::to_string(&entries).unwrap_or_else(|_| json.to_owned())
        }
        _ => json.to_owned(),
    }
}

/// All callbacks of an app version, by callback id.
#[derive(Clone, Debug, Default)]
pub struct Dependencies {
    by_output: HashMap<String, Callback>,
}

/// Why a dependency list is unusable.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid dependency list: {0}")]
pub struct InvalidDependencies(pub String);

#[derive(Deserialize)]
struct RawDependency {
    output: String,
    #[serde(default)]
    inputs: Vec<PropRef>,
    #[serde(default)]
    state: Vec<PropRef>,
    #[serde(default)]
    no_output: bool,
    #[serde(default)]
    clientside_function: Option<Value>,
    background: Option<Value>,
    #[serde(default, rename = "tessera_background")]
    background_spec: Option<Background>,
    #[serde(default, rename = "tessera_memoize")]
    memoize: Option<Memoize>,
    #[serde(default)]
    websocket: bool,
}

#[derive(Deserialize)]
struct Memoize {
    ttl_ms: u64,
}

impl Dependencies {
    /// Parse the JSON an app returns from `dependencies()`.
    pub fn parse(json: &str) -> Result<Self, InvalidDependencies> {
        let raw: Vec<RawDependency> =
            serde_json::from_str(json).map_err(|e| InvalidDependencies(e.to_string()))?;
        let mut by_output = HashMap::with_capacity(raw.len());
        for dep in raw {
            let (outputs, allow_duplicate) = if dep.no_output {
                (Vec::new(), Vec::new())
            } else {
                parse_output_id(&dep.output)
                    .ok_or_else(|| InvalidDependencies(format!("bad output id {:?}", dep.output)))?
                    .into_iter()
                    .unzip()
            };
            let declared = |refs: Vec<PropRef>| -> Vec<PropRef> {
                refs.into_iter()
                    .map(|r| PropRef {
                        id: pattern::parse_declared(r.id),
                        property: r.property,
                    })
                    .collect()
            };
            let background = match dep.background {
                Some(Value::Object(spec)) => {
                    let interval_ms = spec.get("interval").and_then(Value::as_u64).unwrap_or(1000);
                    let mut background = dep.background_spec.unwrap_or(Background {
                        interval_ms,
                        progress: Vec::new(),
                        progress_default: None,
                        cancel: Vec::new(),
                    });
                    background.interval_ms = interval_ms;
                    Some(background)
                }
                _ => None,
            };
            // Zero means no memo; a background callback's answer goes through its job instead.
            let memoize = match (&background, dep.memoize) {
                (None, Some(Memoize { ttl_ms })) if ttl_ms > 0 => {
                    Some(std::time::Duration::from_millis(ttl_ms))
                }
                _ => None,
            };
            let callback = Callback {
                // Dash runs a background callback over HTTP whatever its flag says.
                websocket: dep.websocket && background.is_none(),
                memoize,
                background,
                multi: is_multi(&dep.output),
                no_output: dep.no_output,
                output: dep.output.clone(),
                outputs,
                allow_duplicate,
                inputs: declared(dep.inputs),
                state: declared(dep.state),
                clientside: dep.clientside_function.is_some_and(|f| !f.is_null()),
            };
            if by_output.insert(dep.output.clone(), callback).is_some() {
                return Err(InvalidDependencies(format!(
                    "two callbacks share the output {:?}",
                    dep.output
                )));
            }
        }
        Ok(Self { by_output })
    }

    /// The callback with this id.
    pub fn get(&self, output: &str) -> Option<&Callback> {
        self.by_output.get(output)
    }

    /// Every callback, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &Callback> {
        self.by_output.values()
    }

    /// Whether any callback runs over the page's WebSocket (the app then gets Dash's
    /// `websocket` block in `_dash-config` and the `_dash-ws-callback` endpoint).
    pub fn uses_websocket(&self) -> bool {
        self.by_output.values().any(|callback| callback.websocket)
    }

    /// Number of callbacks.
    pub fn len(&self) -> usize {
        self.by_output.len()
    }

    /// Whether the app has no callbacks.
    pub fn is_empty(&self) -> bool {
        self.by_output.is_empty()
    }
}

/// Whether a callback id is the multi-output form `..a.p...b.q..`.
fn is_multi(output: &str) -> bool {
    output.len() > 4 && output.starts_with("..") && output.ends_with("..")
}

/// Split Dash's output id: `id.prop` for one output, `..a.p...b.q..` for several, each
/// with whether it carries the `@hash` suffix of `allow_duplicate`. The property follows
/// the last dot; dots inside ids are escaped as `\.`.
pub fn parse_output_id(output: &str) -> Option<Vec<(PropRef, bool)>> {
    let parts: Vec<&str> = match output.strip_prefix("..").and_then(|s| s.strip_suffix("..")) {
        Some(inner) => inner.split("...").collect(),
        None => vec![output],
    };
    parts
        .into_iter()
        .map(|part| {
            let (id, property) = part.rsplit_once('.')?;
            if id.is_empty() || property.is_empty() {
                return None;
            }
            let id = id.replace("\\.", ".");
            let id = if id.starts_with('{') {
                serde_json::from_str(&id).ok()?
            } else {
                Value::String(id)
            };
            // Drop the `@hash` suffix Dash adds for allow_duplicate outputs.
            let (property, duplicate) = match property.split_once('@') {
                Some((property, _hash)) => (property.to_owned(), true),
                None => (property.to_owned(), false),
            };
            if property.is_empty() {
                return None;
            }
            Some((PropRef { id, property }, duplicate))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn single_and_multi_output_ids_split_like_dash() {
        assert_eq!(
            parse_output_id("summary.children"),
            Some(vec![(
                PropRef {
                    id: json!("summary"),
                    property: "children".into()
                },
                false
            )])
        );
        let duplicate = parse_output_id("a\\.b.children@ab12").expect("duplicate");
        assert_eq!(duplicate[0].0.id, json!("a.b"));
        assert_eq!(duplicate[0].0.property, "children");
        assert!(duplicate[0].1);
        let multi = parse_output_id("..a.children...b-c.value..").expect("multi");
        assert_eq!(multi.len(), 2);
        assert_eq!(
            multi[1].0,
            PropRef {
                id: json!("b-c"),
                property: "value".into()
            }
        );
        let dict = parse_output_id(r#"{"index":["MATCH"],"type":"line"}.children"#).expect("dict");
        assert_eq!(dict[0].0.id, json!({"index": ["MATCH"], "type": "line"}));
    }

    #[test]
    fn malformed_output_ids_are_refused() {
        for bad in ["nodot", ".children", "summary.", "..a.b...c..", "a.@x"] {
            assert_eq!(parse_output_id(bad), None, "{bad}");
        }
    }

    #[test]
    fn memoize_is_parsed_and_never_served() {
        let json = json!([
            {"output": "a.children", "inputs": [], "state": [], "tessera_memoize": {"ttl_ms": 1500}},
            {"output": "b.children", "inputs": [], "state": [], "tessera_memoize": {"ttl_ms": 0}},
            {"output": "c.children", "inputs": [], "state": [], "background": {"interval": 100},
             "tessera_memoize": {"ttl_ms": 1500}}
        ])
        .to_string();
        let deps = Dependencies::parse(&json).expect("valid");
        let memo = |id| deps.get(id).expect("callback").memoize;
        assert_eq!(
            memo("a.children"),
            Some(std::time::Duration::from_millis(1500))
        );
        assert_eq!(memo("b.children"), None);
        assert_eq!(
            memo("c.children"),
            None,
            "background callbacks are not memoized"
        );
        let served = public_json(&json);
        assert!(!served.contains(MEMOIZE_KEY), "{served}");
        assert!(served.contains("\"background\""));
    }

    #[test]
    fn duplicate_outputs_are_refused() {
        let json =
            r#"[{"output":"a.b","inputs":[],"state":[]},{"output":"a.b","inputs":[],"state":[]}]"#;
        assert!(Dependencies::parse(json).is_err());
    }

    #[test]
    fn string_dictionary_ids_and_no_output_callbacks_parse() {
        let json = json!([
            {"output": "abc123", "inputs": [{"id": "b", "property": "n_clicks"}], "state": [], "no_output": true},
            {"output": "..x.children...y.value@ff..",
             "inputs": [{"id": "{\"index\":[\"ALL\"],\"type\":\"f\"}", "property": "value"}],
             "state": []}
        ]);
        let deps = Dependencies::parse(&json.to_string()).expect("valid");
        let none = deps.get("abc123").expect("no-output callback");
        assert!(none.no_output && none.outputs.is_empty());
        let multi = deps.get("..x.children...y.value@ff..").expect("multi");
        assert!(multi.multi);
        assert_eq!(multi.allow_duplicate, [false, true]);
        assert_eq!(multi.inputs[0].id, json!({"index": ["ALL"], "type": "f"}));
    }
}
