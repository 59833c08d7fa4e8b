//! The callback graph an app declares, parsed from its `_dash-dependencies` JSON.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

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
    /// The outputs, parsed from `output`.
    pub outputs: Vec<PropRef>,
    /// The inputs, in order.
    pub inputs: Vec<PropRef>,
    /// The state, in order.
    pub state: Vec<PropRef>,
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
}

impl Dependencies {
    /// Parse the JSON an app returns from `dependencies()`.
    pub fn parse(json: &str) -> Result<Self, InvalidDependencies> {
        let raw: Vec<RawDependency> =
            serde_json::from_str(json).map_err(|e| InvalidDependencies(e.to_string()))?;
        let mut by_output = HashMap::with_capacity(raw.len());
        for dep in raw {
            let outputs = parse_output_id(&dep.output)
                .ok_or_else(|| InvalidDependencies(format!("bad output id {:?}", dep.output)))?;
            let callback = Callback {
                output: dep.output.clone(),
                outputs,
                inputs: dep.inputs,
                state: dep.state,
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

    /// Number of callbacks.
    pub fn len(&self) -> usize {
        self.by_output.len()
    }

    /// Whether the app has no callbacks.
    pub fn is_empty(&self) -> bool {
        self.by_output.is_empty()
    }
}

/// Split Dash's output id: `id.prop` for one output, `..a.p...b.q..` for several. The
/// property follows the last dot, so dictionary ids (which contain dots only inside JSON
/// strings) still split correctly as long as property names have none.
pub fn parse_output_id(output: &str) -> Option<Vec<PropRef>> {
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
            let id = if id.starts_with('{') {
                serde_json::from_str(id).ok()?
            } else {
                Value::String(id.to_owned())
            };
            // Drop the `@hash` suffix Dash adds for allow_duplicate outputs.
            let property = property.split('@').next().unwrap_or(property).to_owned();
            Some(PropRef { id, property })
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
            Some(vec![PropRef {
                id: json!("summary"),
                property: "children".into()
            }])
        );
        let multi = parse_output_id("..a.children...b-c.value..").expect("multi");
        assert_eq!(multi.len(), 2);
        assert_eq!(
            multi[1],
            PropRef {
                id: json!("b-c"),
                property: "value".into()
            }
        );
        let dict = parse_output_id(r#"{"index":["MATCH"],"type":"line"}.children"#).expect("dict");
        assert_eq!(dict[0].id, json!({"index": ["MATCH"], "type": "line"}));
    }

    #[test]
    fn malformed_output_ids_are_refused() {
        for bad in ["nodot", ".children", "summary.", "..a.b...c.."] {
            assert_eq!(parse_output_id(bad), None, "{bad}");
        }
    }

    #[test]
    fn duplicate_outputs_are_refused() {
        let json =
            r#"[{"output":"a.b","inputs":[],"state":[]},{"output":"a.b","inputs":[],"state":[]}]"#;
        assert!(Dependencies::parse(json).is_err());
    }
}
