//! Pattern-matching component ids: dictionaries whose values may be the wildcards
//! `["MATCH"]`, `["ALL"]` or `["ALLSMALLER"]`, and how Dash prints ids.
//!
//! Pure functions over JSON values; the request check ([`super::update`]) and the
//! dependency graph ([`super::graph`]) build on them.

use std::cmp::Ordering;

use serde_json::Value;

/// A wildcard in a dependency's dictionary id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wildcard {
    /// The component matching the triggering one.
    Match,
    /// Every matching component (a list in requests).
    All,
    /// Every matching component whose value at this key is below the `MATCH` one.
    AllSmaller,
}

impl Wildcard {
    /// The wildcard `value` stands for (`["MATCH"]` and so on), if any.
    pub fn of(value: &Value) -> Option<Wildcard> {
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

/// Whether requests carry a list of props for the declared id (it holds `ALL` or
/// `ALLSMALLER`) rather than one.
pub fn is_list(declared: &Value) -> bool {
    declared.as_object().is_some_and(|map| {
        map.values().any(|value| {
            matches!(
                Wildcard::of(value),
                Some(Wildcard::All | Wildcard::AllSmaller)
            )
        })
    })
}

/// Whether the declared id holds any wildcard.
pub fn has_wildcard(declared: &Value) -> bool {
    declared
        .as_object()
        .is_some_and(|map| map.values().any(|value| Wildcard::of(value).is_some()))
}

/// Whether a concrete id (as a request carries it) fits a declared id: equal strings, or
/// dictionaries with the same keys, equal wherever the declaration has no wildcard, and no
/// wildcard or non-scalar value in the concrete id.
pub fn matches(declared: &Value, concrete: &Value) -> bool {
    match (declared, concrete) {
        (Value::Object(pattern), Value::Object(concrete)) => {
            pattern.len() == concrete.len()
                && pattern.iter().all(|(key, want)| {
                    concrete.get(key).is_some_and(|got| {
                        is_scalar(got) && (Wildcard::of(want).is_some() || want == got)
                    })
                })
        }
        (Value::String(want), Value::String(got)) => want == got,
        _ => false,
    }
}

fn is_scalar(value: &Value) -> bool {
    matches!(value, Value::String(_) | Value::Number(_) | Value::Bool(_))
}

/// Whether two declared ids may name the same component (Dash's `_id_matches`): equal
/// strings, or dictionaries with the same keys whose values are equal or involve a
/// wildcard (except `MATCH` against `ALLSMALLER`).
pub fn overlaps(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Object(a), Value::Object(b)) => {
            a.len() == b.len()
                && a.iter().all(|(key, left)| {
                    let Some(right) = b.get(key) else {
                        return false;
                    };
                    if left == right {
                        return true;
                    }
                    match (Wildcard::of(left), Wildcard::of(right)) {
                        (None, None) => false,
                        (Some(_), None) | (None, Some(_)) => true,
                        (Some(Wildcard::All), _) | (_, Some(Wildcard::All)) => true,
                        // One MATCH and one ALLSMALLER.
                        _ => false,
                    }
                })
        }
        _ => a == b,
    }
}

/// Order of two id values for `ALLSMALLER`: numbers by value, strings lexically; `None`
/// when they cannot be compared.
pub fn compare(a: &Value, b: &Value) -> Option<Ordering> {
    match (a, b) {
        (Value::Number(a), Value::Number(b)) => a.as_f64()?.partial_cmp(&b.as_f64()?),
        (Value::String(a), Value::String(b)) => Some(a.cmp(b)),
        _ => None,
    }
}

/// Dash's `stringify_id`: a string as is; a dictionary as compact JSON with sorted keys,
/// escaped like Python's `json.dumps` (everything outside printable ASCII as `\uXXXX`).
pub fn stringify(id: &Value) -> String {
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

/// Parse an id as `_dash-dependencies` writes it: a dictionary id is a JSON string
/// starting with `{`, anything else is a plain string id.
pub fn parse_declared(id: Value) -> Value {
    match id {
        Value::String(text) if text.starts_with('{') => match serde_json::from_str(&text) {
            Ok(parsed @ Value::Object(_)) => parsed,
            _ => Value::String(text),
        },
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn concrete_ids_match_patterns_key_by_key() {
        let all = json!({"type": "filter", "index": ["ALL"]});
        assert!(matches(&all, &json!({"index": 4, "type": "filter"})));
        assert!(!matches(&all, &json!({"index": 4, "type": "card"})));
        assert!(!matches(&all, &json!({"index": 4})));
        assert!(!matches(
            &all,
            &json!({"index": ["MATCH"], "type": "filter"})
        ));
        assert!(!matches(
            &all,
            &json!({"index": {"x": 1}, "type": "filter"})
        ));
        assert!(!matches(&json!("a"), &json!({"index": 1})));
        assert!(matches(&json!("a"), &json!("a")));
        assert!(is_list(&all));
        assert!(!is_list(&json!({"index": ["MATCH"]})));
        assert!(has_wildcard(&json!({"index": ["MATCH"]})));
    }

    #[test]
    fn overlap_follows_dash_id_matches() {
        let matched = json!({"i": ["MATCH"], "t": "a"});
        assert!(overlaps(&matched, &json!({"i": 3, "t": "a"})));
        assert!(overlaps(&matched, &json!({"i": ["ALL"], "t": "a"})));
        assert!(!overlaps(&matched, &json!({"i": ["ALLSMALLER"], "t": "a"})));
        assert!(!overlaps(&matched, &json!({"i": 3, "t": "b"})));
        assert!(!overlaps(&matched, &json!("a")));
    }

    #[test]
    fn ids_print_like_dash_and_parse_back() {
        let id = json!({"type": "f", "index": ["MATCH"], "name": "é"});
        let text = stringify(&id);
        assert_eq!(text, r#"{"index":["MATCH"],"name":"\u00e9","type":"f"}"#);
        assert_eq!(parse_declared(Value::String(text)), id);
        assert_eq!(parse_declared(json!("{not json")), json!("{not json"));
    }
}
