//! Component ids: plain strings, or dictionaries for pattern-matching callbacks.
//!
//! A dictionary id such as `{"type": "filter", "index": 3}` lets one callback address many
//! components. In a dependency a key may hold a [`Wildcard`] instead of a value: [`MATCH`]
//! (the component whose id matched the triggering one), [`ALL`] (every matching component,
//! passed as a list) or [`ALLSMALLER`] (those whose value at that key is smaller than the
//! `MATCH` one). On the wire a wildcard is a one-element list, `["MATCH"]`, and a
//! dictionary id is written as Dash's `stringify_id` writes it: compact JSON, keys sorted,
//! non-ASCII escaped. This module only names and prints ids; matching concrete ids against
//! patterns is the platform's job (and [`App`](crate::App)'s check of native requests).

use serde::{Serialize, Serializer};
use serde_json::{Map, Value};

/// A pattern-matching wildcard in a dictionary id of a dependency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Wildcard {
    /// The one component whose id matches the triggering input's.
    Match,
    /// Every component whose id matches; values arrive as a list.
    All,
    /// Every matching component whose value at this key is smaller than the `MATCH` one.
    AllSmaller,
}

/// Dash's `MATCH`.
pub const MATCH: Wildcard = Wildcard::Match;
/// Dash's `ALL`.
pub const ALL: Wildcard = Wildcard::All;
/// Dash's `ALLSMALLER`.
pub const ALLSMALLER: Wildcard = Wildcard::AllSmaller;

impl Wildcard {
    /// The name Dash uses: `MATCH`, `ALL` or `ALLSMALLER`.
    pub fn name(self) -> &'static str {
        match self {
            Wildcard::Match => "MATCH",
            Wildcard::All => "ALL",
            Wildcard::AllSmaller => "ALLSMALLER",
        }
    }

    /// The wildcard a JSON value stands for, if it is one (`["MATCH"]` and so on).
    pub fn from_value(value: &Value) -> Option<Wildcard> {
        match value.as_array().map(Vec::as_slice) {
            Some([Value::String(name)]) => match name.as_str() {
                "MATCH" => Some(Wildcard::Match),
                "ALL" => Some(Wildcard::All),
                "ALLSMALLER" => Some(Wildcard::AllSmaller),
                _ => None,
            },
            _ => None,
        }
    }
}

impl Serialize for Wildcard {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        [self.name()].serialize(serializer)
    }
}

impl From<Wildcard> for Value {
    fn from(wildcard: Wildcard) -> Value {
        Value::Array(vec![Value::String(wildcard.name().to_owned())])
    }
}

/// A component id: a string, or a dictionary (built with `serde_json::json!`, whose values
/// may be [`Wildcard`]s in a dependency).
///
/// ```
/// use sdk::{ALL, Id};
/// use serde_json::json;
///
/// let id = Id::from(json!({"type": "filter", "index": ALL}));
/// assert_eq!(id.to_dash_string(), r#"{"index":["ALL"],"type":"filter"}"#);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Id(Value);

impl Id {
    /// The id as JSON: a string or an object.
    pub fn as_value(&self) -> &Value {
        &self.0
    }

    /// The id as Dash prints it in callback ids and response keys: the string itself, or
    /// compact JSON with sorted keys.
    pub fn to_dash_string(&self) -> String {
        stringify(&self.0)
    }

    /// The strongest wildcard in the id: `ALL` or `ALLSMALLER` (the values arrive as a
    /// list) before `MATCH` (one value); `None` for a plain id.
    pub fn wildcard(&self) -> Option<Wildcard> {
        let object = self.0.as_object()?;
        let mut strongest = None;
        for wildcard in object.values().filter_map(Wildcard::from_value) {
            match wildcard {
                Wildcard::All | Wildcard::AllSmaller => return Some(wildcard),
                Wildcard::Match => strongest = Some(Wildcard::Match),
            }
        }
        strongest
    }

    /// Whether requests carry a list of values for this id (it holds `ALL` or `ALLSMALLER`).
    pub fn is_list(&self) -> bool {
        matches!(self.wildcard(), Some(Wildcard::All | Wildcard::AllSmaller))
    }

    /// Whether the concrete id `concrete`, as a request carries it, fits this id: equal
    /// strings, or dictionaries with the same keys whose values are equal wherever this
    /// id holds no wildcard.
    pub fn matches(&self, concrete: &Value) -> bool {
        match (&self.0, concrete) {
            (Value::Object(pattern), Value::Object(concrete)) => {
                pattern.len() == concrete.len()
                    && pattern.iter().all(|(key, want)| {
                        concrete.get(key).is_some_and(|got| {
                            Wildcard::from_value(got).is_none()
                                && (Wildcard::from_value(want).is_some() || want == got)
                        })
                    })
            }
            (pattern, concrete) => pattern == concrete,
        }
    }
}

impl From<&str> for Id {
    fn from(id: &str) -> Self {
        Id(Value::String(id.to_owned()))
    }
}

impl From<String> for Id {
    fn from(id: String) -> Self {
        Id(Value::String(id))
    }
}

impl From<&String> for Id {
    fn from(id: &String) -> Self {
        Id(Value::String(id.clone()))
    }
}

impl From<Value> for Id {
    /// A string or an object; any other JSON value is kept as is, as Dash does.
    fn from(id: Value) -> Self {
        Id(id)
    }
}

impl From<Map<String, Value>> for Id {
    fn from(id: Map<String, Value>) -> Self {
        Id(Value::Object(id))
    }
}

impl From<Id> for Value {
    fn from(id: Id) -> Value {
        id.0
    }
}

/// Dash's `stringify_id`: a string as is, a dictionary as compact JSON with sorted keys
/// and Python's `json.dumps` escaping (everything outside printable ASCII as `\uXXXX`).
pub(crate) fn stringify(id: &Value) -> String {
    match id {
        Value::String(id) => id.clone(),
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let mut out = String::from("{");
            for (position, key) in keys.into_iter().enumerate() {
                if position > 0 {
                    out.push(',');
                }
                out.push_str(&ascii_json(&Value::String(key.clone())));
                out.push(':');
                out.push_str(&ascii_json(&map[key]));
            }
            out.push('}');
            out
        }
        other => ascii_json(other),
    }
}

/// Compact JSON escaped the way Python's `json.dumps` does by default (`ensure_ascii`).
fn ascii_json(value: &Value) -> String {
    let text = value.to_string();
    if text.bytes().all(|byte| (b' '..=b'~').contains(&byte)) {
        return text;
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if (' '..='~').contains(&c) {
            out.push(c);
        } else {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn dictionary_ids_print_like_dash_stringify_id() {
        let id = Id::from(json!({"type": "filter", "index": MATCH}));
        assert_eq!(
            id.to_dash_string(),
            r#"{"index":["MATCH"],"type":"filter"}"#
        );
        assert_eq!(
            Id::from(json!({"b": "é", "a": 1.5})).to_dash_string(),
            r#"{"a":1.5,"b":"\u00e9"}"#
        );
        assert_eq!(Id::from("plain.id").to_dash_string(), "plain.id");
    }

    #[test]
    fn wildcards_are_one_element_lists() {
        assert_eq!(Value::from(ALLSMALLER), json!(["ALLSMALLER"]));
        assert_eq!(Wildcard::from_value(&json!(["ALL"])), Some(ALL));
        assert_eq!(Wildcard::from_value(&json!(["ANY"])), None);
        assert_eq!(
            Id::from(json!({"i": MATCH, "t": ALL})).wildcard(),
            Some(Wildcard::All)
        );
        assert!(!Id::from(json!({"i": MATCH})).is_list());
    }

    #[test]
    fn patterns_match_concrete_ids_only() {
        let pattern = Id::from(json!({"type": "filter", "index": ALL}));
        assert!(pattern.matches(&json!({"index": 3, "type": "filter"})));
        assert!(!pattern.matches(&json!({"index": 3, "type": "other"})));
        assert!(!pattern.matches(&json!({"index": 3})));
        assert!(!pattern.matches(&json!({"index": ["ALL"], "type": "filter"})));
        assert!(!pattern.matches(&json!("filter")));
        assert!(Id::from("a").matches(&json!("a")));
    }
}
