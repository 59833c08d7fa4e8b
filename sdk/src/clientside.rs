//! Clientside callbacks: JavaScript functions the browser runs instead of the sandbox.
//!
//! A [`ClientsideFunction`] is either inline source text, which the platform writes into
//! the app's index page under `window.dash_clientside` exactly as Dash does (namespace
//! `_dashprivate_clientside_funcs`, function name the sha256 of the source), or the name of
//! a function an asset script defines (`window.dash_clientside.<namespace>.<function>`).
//! This module only describes the function; it never runs JavaScript.

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// The namespace Dash gives inline clientside functions.
pub const INLINE_NAMESPACE: &str = "_dashprivate_clientside_funcs";

/// Where a clientside callback's JavaScript comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientsideFunction {
    /// JavaScript source of a function expression, e.g. `"function(v) { return v; }"`.
    Inline(String),
    /// A function an asset script defines as `window.dash_clientside[namespace][function_name]`.
    Named {
        /// The object under `window.dash_clientside`.
        namespace: String,
        /// The function's name in that object.
        function_name: String,
    },
}

impl ClientsideFunction {
    /// Inline JavaScript: the source of one function expression.
    pub fn inline(source: impl Into<String>) -> Self {
        ClientsideFunction::Inline(source.into())
    }

    /// A function defined by an asset file under `window.dash_clientside`.
    pub fn named(namespace: impl Into<String>, function_name: impl Into<String>) -> Self {
        ClientsideFunction::Named {
            namespace: namespace.into(),
            function_name: function_name.into(),
        }
    }

    /// The namespace the browser looks the function up in.
    pub fn namespace(&self) -> &str {
        match self {
            ClientsideFunction::Inline(_) => INLINE_NAMESPACE,
            ClientsideFunction::Named { namespace, .. } => namespace,
        }
    }

    /// The function's name: for inline source, the hex sha256 of the source, as Dash names it.
    pub fn function_name(&self) -> String {
        match self {
            ClientsideFunction::Inline(source) => Sha256::digest(source.as_bytes())
                .iter()
                .map(|byte| format!("{byte:02x}"))
                .collect(),
            ClientsideFunction::Named { function_name, .. } => function_name.clone(),
        }
    }

    /// The inline source, if any.
    pub fn source(&self) -> Option<&str> {
        match self {
            ClientsideFunction::Inline(source) => Some(source),
            ClientsideFunction::Named { .. } => None,
        }
    }

    /// The dependency's `clientside_function` value: `{"namespace", "function_name"}`.
    pub(crate) fn to_value(&self) -> Value {
        let mut object = Map::with_capacity(2);
        object.insert("namespace".into(), Value::String(self.namespace().into()));
        object.insert("function_name".into(), Value::String(self.function_name()));
        Value::Object(object)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_functions_are_named_by_the_sha256_of_their_source_like_dash() {
        // hashlib.sha256(b"function(x) { return x; }").hexdigest()
        let f = ClientsideFunction::inline("function(x) { return x; }");
        assert_eq!(f.namespace(), "_dashprivate_clientside_funcs");
        assert_eq!(
            f.function_name(),
            "5f5f351a92f850aef74a0525be75227ff272c42b3062203ba8b95b1f8b8ab7b0"
        );
        assert_eq!(
            f.function_name(),
            ClientsideFunction::inline("function(x) { return x; }").function_name()
        );
        assert_ne!(
            f.function_name(),
            ClientsideFunction::inline("function(y) { return y; }").function_name()
        );
    }

    #[test]
    fn named_functions_keep_their_names() {
        let f = ClientsideFunction::named("ui", "toggle");
        assert_eq!(
            f.to_value(),
            serde_json::json!({"namespace": "ui", "function_name": "toggle"})
        );
        assert_eq!(f.source(), None);
    }
}
