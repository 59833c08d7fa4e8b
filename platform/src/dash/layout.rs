//! The `_dash-layout` body and Dash's `validation_layout`.
//!
//! A multi-page app's component sends its pages' layouts with its layout (the SDK's key
//! [`PAGE_LAYOUTS_KEY`]); they are taken out here, once per load. `_dash-layout` serves the
//! layout without them, and the index page's `_dash-config` carries Dash's
//! `validation_layout` (a `Div` of every page and the layout, as `use_pages` builds it), so
//! the renderer checks the callbacks of pages not shown yet against their ids instead of
//! logging "ID not found in layout". The root key [`WEBSOCKET_CALLBACKS_KEY`] (Dash's
//! app-wide `websocket_callbacks=True`) is taken out the same way.

use serde_json::{Value, json};

/// The layout key that carries a multi-page app's page layouts (the SDK's
/// `PAGE_LAYOUTS_KEY`).
pub const PAGE_LAYOUTS_KEY: &str = "tessera_page_layouts";

/// The layout key that carries Dash's app-wide `websocket_callbacks=True` (the SDK's
/// `WEBSOCKET_CALLBACKS_KEY`).
pub const WEBSOCKET_CALLBACKS_KEY: &str = "tessera_websocket_callbacks";

/// A component's layout, split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// The `_dash-layout` body.
    pub served_json: String,
    /// Dash's `validation_layout`, for `_dash-config`, when the app has pages.
    pub validation: Option<Value>,
    /// Dash's app-wide `websocket_callbacks`: every callback may come over the page's
    /// WebSocket.
    pub websocket_callbacks: bool,
}

/// Take the page layouts out of `layout_json`. A layout without them (or one that is not
/// JSON, which the renderer will report) is served as the component gave it.
pub fn split(layout_json: &str) -> Layout {
    let unchanged = || Layout {
        served_json: layout_json.to_owned(),
        validation: None,
        websocket_callbacks: false,
    };
    if !layout_json.contains(PAGE_LAYOUTS_KEY) && !layout_json.contains(WEBSOCKET_CALLBACKS_KEY) {
        return unchanged();
    }
    let Ok(Value::Object(mut root)) = serde_json::from_str::<Value>(layout_json) else {
        return unchanged();
    };
    let websocket_callbacks = root.remove(WEBSOCKET_CALLBACKS_KEY) == Some(Value::Bool(true));
    let pages = root.remove(PAGE_LAYOUTS_KEY);
    let layout = Value::Object(root);
    let validation = pages.map(|pages| {
        let mut children = match pages {
            Value::Array(pages) => pages,
            other => vec![other],
        };
        children.push(layout.clone());
        json!({
            "props": {"children": children},
            "type": "Div",
            "namespace": "dash_html_components",
        })
    });
    Layout {
        served_json: layout.to_string(),
        validation,
        websocket_callbacks,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_layouts_leave_the_layout_for_the_validation_layout() {
        let page = json!({"props": {"id": "live-count"}, "type": "Div", "namespace": "dash_html_components"});
        let sent = json!({
            "props": {"id": "root"}, "type": "Div", "namespace": "dash_html_components",
            PAGE_LAYOUTS_KEY: [page],
        });
        let split = split(&sent.to_string());
        let served: Value = serde_json::from_str(&split.served_json).expect("json");
        assert_eq!(served.get(PAGE_LAYOUTS_KEY), None);
        assert_eq!(served["props"]["id"], "root");
        let validation = split.validation.expect("pages");
        assert_eq!(validation["type"], "Div");
        assert_eq!(
            validation["props"]["children"][0]["props"]["id"],
            "live-count"
        );
        assert_eq!(validation["props"]["children"][1], served);
        assert!(!split.websocket_callbacks);
    }

    #[test]
    fn the_app_wide_websocket_flag_leaves_the_layout() {
        let sent = json!({
            "props": {"id": "root"}, "type": "Div", "namespace": "dash_html_components",
            WEBSOCKET_CALLBACKS_KEY: true,
        });
        let split = split(&sent.to_string());
        assert!(split.websocket_callbacks);
        assert_eq!(split.validation, None);
        let served: Value = serde_json::from_str(&split.served_json).expect("json");
        assert_eq!(served.get(WEBSOCKET_CALLBACKS_KEY), None);
        assert_eq!(served["props"]["id"], "root");
    }

    #[test]
    fn a_plain_layout_is_served_as_is() {
        let plain =
            r#"{"props":{"children":"hi"},"type":"Div","namespace":"dash_html_components"}"#;
        assert_eq!(split(plain).served_json, plain);
        assert_eq!(split(plain).validation, None);
        assert_eq!(split("not json").served_json, "not json");
    }
}
