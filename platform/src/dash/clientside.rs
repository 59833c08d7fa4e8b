//! Clientside callbacks: the inline JavaScript an app carries, taken out of its
//! dependency list and written into the index page the way Dash writes it.
//!
//! The SDK puts an inline function's source in the dependency under
//! [`INLINE_SOURCE_KEY`]; here it is removed (so `_dash-dependencies` has Dash's keys
//! only) and turned into Dash's `_inline_clientside_template`, escaped so that it cannot
//! leave the `<script>` element it is written into. This module never runs JavaScript and
//! never calls the sandbox.

use serde_json::Value;

use super::dependencies::InvalidDependencies;

/// The dependency key that carries an inline function's source (the SDK's
/// `INLINE_SOURCE_KEY`).
pub const INLINE_SOURCE_KEY: &str = "tessera_inline_source";

/// A dependency list split into what the renderer gets and what the index page inlines.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Split {
    /// The `_dash-dependencies` body, without inline sources.
    pub served_json: String,
    /// One script per inline function, in dependency order, already escaped.
    pub inline_scripts: Vec<String>,
}

/// Take the inline sources out of an app's dependency list.
///
/// A list without any inline source is served byte for byte as the component wrote it.
pub fn split(dependencies_json: &str) -> Result<Split, InvalidDependencies> {
    if !dependencies_json.contains(INLINE_SOURCE_KEY) {
        return Ok(Split {
            served_json: dependencies_json.to_owned(),
            inline_scripts: Vec::new(),
        });
    }
    let mut list: Vec<serde_json::Map<String, Value>> =
        serde_json::from_str(dependencies_json).map_err(|e| InvalidDependencies(e.to_string()))?;
    let mut inline_scripts = Vec::new();
    for dependency in &mut list {
        let Some(source) = dependency.remove(INLINE_SOURCE_KEY) else {
            continue;
        };
        let Value::String(source) = source else {
            return Err(InvalidDependencies(format!(
                "{INLINE_SOURCE_KEY} of {:?} is not a string",
                dependency.get("output")
            )));
        };
        let function = dependency.get("clientside_function");
        let name = |key: &str| {
            function
                .and_then(|f| f.get(key))
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        let (Some(namespace), Some(function_name)) = (name("namespace"), name("function_name"))
        else {
            return Err(InvalidDependencies(format!(
                "callback {:?} carries inline JavaScript but no clientside_function name",
                dependency.get("output")
            )));
        };
        inline_scripts.push(inline_script(&namespace, &function_name, &source));
    }
    let served_json =
        serde_json::to_string(&list).map_err(|e| InvalidDependencies(e.to_string()))?;
    Ok(Split {
        served_json,
        inline_scripts,
    })
}

/// Dash's `_inline_clientside_template`, with the names as JSON strings and the whole
/// text made safe for a `<script>` element.
pub fn inline_script(namespace: &str, function_name: &str, source: &str) -> String {
    let namespace = Value::String(namespace.to_owned()).to_string();
    let function_name = Value::String(function_name.to_owned()).to_string();
    let text = format!(
        "(function() {{\n    var clientside = window.dash_clientside = window.dash_clientside || {{}};\n    var ns = clientside[{namespace}] = clientside[{namespace}] || {{}};\n    ns[{function_name}] = {source};\n}})();"
    );
    script_safe(&text)
}

/// JavaScript that cannot end or re-open its `<script>` element: `</` becomes `<\/` and
/// `<!--` becomes `<\!--`. Both escapes mean the same characters inside JavaScript string,
/// template and regular-expression literals, the only places such text can appear in a
/// valid function.
pub fn script_safe(javascript: &str) -> String {
    javascript.replace("</", "<\\/").replace("<!--", "<\\!--")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn inline_sources_leave_the_served_list_and_become_scripts() {
        let deps = json!([
            {"output": "a.children", "clientside_function": null},
            {"output": "b.children",
             "clientside_function": {"namespace": "_dashprivate_clientside_funcs", "function_name": "f1"},
             "tessera_inline_source": "function(v) { return '</script><script>alert(1)</script>' + v; }"},
        ]);
        let split = split(&deps.to_string()).expect("split");
        let served: Value = serde_json::from_str(&split.served_json).expect("json");
        assert!(served[1].get(INLINE_SOURCE_KEY).is_none());
        assert_eq!(
            served[1]["clientside_function"]["function_name"],
            json!("f1")
        );
        assert_eq!(split.inline_scripts.len(), 1);
        let script = &split.inline_scripts[0];
        assert!(script.contains(r#"ns["f1"] = function(v)"#), "{script}");
        assert!(!script.to_lowercase().contains("</script"), "{script}");
        assert!(script.contains(r"<\/script>"), "{script}");
    }

    #[test]
    fn lists_without_inline_sources_are_served_unchanged() {
        let text = r#"[{"output":"a.children","inputs":[]}]"#;
        assert_eq!(split(text).expect("split").served_json, text);
    }

    #[test]
    fn an_inline_source_without_a_function_name_is_refused() {
        let deps = json!([{"output": "b.children", "tessera_inline_source": "function(){}"}]);
        assert!(split(&deps.to_string()).is_err());
    }

    #[test]
    fn html_comment_openers_are_escaped() {
        assert_eq!(script_safe("'<!--<script>'"), r"'<\!--<script>'");
    }
}
