//! The index page of an app: Dash's HTML skeleton with `_dash-config` and the scripts.

use askama::Template;
use serde_json::json;

use crate::frontend::{DASH_VERSION, Frontend};

/// The props of components that may hold other components, per namespace, as Dash 4.4.1
/// registers them (`ComponentRegistry.children_props`); the renderer needs them to walk
/// layouts.
const CHILDREN_PROPS: &str = include_str!("children_props.json");

/// A small inline icon, so browsers do not ask for `/favicon.ico`.
const FAVICON: &str = "data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 16 16'%3E%3Crect x='1' y='1' width='6' height='6' fill='%23119dff'/%3E%3Crect x='9' y='1' width='6' height='6' fill='%23555'/%3E%3Crect x='1' y='9' width='6' height='6' fill='%23555'/%3E%3Crect x='9' y='9' width='6' height='6' fill='%23119dff'/%3E%3C/svg%3E";

#[derive(Template)]
#[template(path = "dash_index.html")]
struct IndexPage<'a> {
    title: &'a str,
    favicon: &'a str,
    css: &'a [String],
    config_json: String,
    scripts: Vec<String>,
    inline_scripts: &'a [String],
    dev_error: Option<&'a str>,
    dev_error_style: &'a str,
    dev_reload_script: Option<String>,
}

/// What an app adds to its index page: its assets and its inline clientside functions.
#[derive(Debug, Clone, Default)]
pub struct AppExtras<'a> {
    /// Stylesheet URLs, in Dash's order, for the head.
    pub css: Vec<String>,
    /// Asset script URLs, in Dash's order, loaded after React and before the renderer.
    pub scripts: Vec<String>,
    /// The favicon URL (the app's `assets/favicon.ico`), if it has one.
    pub favicon: Option<String>,
    /// Inline clientside functions, already made safe for a `<script>` element
    /// ([`super::clientside::inline_script`]).
    pub inline_scripts: &'a [String],
    /// Dash's `validation_layout` of a multi-page app ([`super::layout`]).
    pub validation_layout: Option<&'a serde_json::Value>,
    /// Dash's dev tools UI (`ui`): the error pop-up with callback errors, for the app's
    /// authors.
    pub dev_tools: bool,
    /// For an app with WebSocket callbacks: the URL of the renderer's worker script
    /// (relative to the prefix), which puts Dash's `websocket` block in `_dash-config`.
    pub websocket_worker: Option<String>,
    /// Dash's app-wide `websocket_callbacks` (the block's `enabled`): the renderer sends
    /// every callback over the socket.
    pub websocket_callbacks: bool,
    /// Served by `tessera dev`: Dash's hot reload, and the last build's failure shown
    /// above the page.
    pub dev: Option<DevPage>,
}

/// What `tessera dev` adds to the page.
#[derive(Debug, Clone, Default)]
pub struct DevPage {
    /// The failure of the last build or load, while the folder does not build.
    pub error: Option<String>,
    /// The reload hash the page is rendered at.
    pub reload_hash: String,
}

/// The dev page's own check of the reload hash against the one it was rendered at. Dash's
/// renderer takes its first `_reload-hash` answer as its baseline, a second after it
/// starts: a save finished before that would never reload the page.
fn dev_reload_script(prefix: &str, reload_hash: &str) -> String {
    let url = script_safe_json(&json!(format!("{prefix}_reload-hash")));
    let rendered = script_safe_json(&json!(reload_hash));
    format!(
        "setInterval(function () {{ fetch({url}, {{cache: 'no-store'}}).then(function (r) {{ return r.json(); }})         .then(function (h) {{ if (h.reloadHash !== {rendered}) {{ window.location.reload(); }} }})         .catch(function () {{}}); }}, {});",
        crate::dev::HOT_RELOAD_INTERVAL_MS
    )
}

/// Render the index page of the app served under `prefix` (`/apps/{tenant}/{app}/`).
///
/// `end_id` is the per-page token the renderer echoes on every callback request.
pub fn render(frontend: &Frontend, prefix: &str, title: &str, end_id: &str) -> String {
    render_with(frontend, prefix, title, end_id, &AppExtras::default())
}

/// [`render`] with the app's assets and inline clientside functions, placed where Dash
/// places them: stylesheets in the head, asset scripts between React and the renderer,
/// inline functions after the component bundles and before `new DashRenderer()`.
pub fn render_with(
    frontend: &Frontend,
    prefix: &str,
    title: &str,
    end_id: &str,
    extras: &AppExtras<'_>,
) -> String {
    let config = config(prefix, end_id, extras);
    let bundle = |src: String| format!("{prefix}{src}");
    let scripts = frontend
        .prelude_scripts()
        .into_iter()
        .map(bundle)
        .chain(extras.scripts.iter().cloned())
        .chain(
            frontend
                .component_scripts(extras.dev_tools)
                .into_iter()
                .map(bundle),
        )
        .collect();
    let page = IndexPage {
        title,
        favicon: extras.favicon.as_deref().unwrap_or(FAVICON),
        css: &extras.css,
        config_json: script_safe_json(&config),
        scripts,
        inline_scripts: extras.inline_scripts,
        dev_error: extras.dev.as_ref().and_then(|dev| dev.error.as_deref()),
        dev_error_style: crate::dev::BANNER_STYLE,
        dev_reload_script: extras
            .dev
            .as_ref()
            .map(|dev| dev_reload_script(prefix, &dev.reload_hash)),
    };
    page.render()
        .unwrap_or_else(|e| format!("template error: {e}"))
}

/// The `_dash-config` of the app served under `prefix`: the keys Dash 4.4.1's `_config()`
/// sends (values for a production app without hot reload), `ui` for the app's authors, and
/// `validation_layout` for a multi-page app.
pub fn config(prefix: &str, end_id: &str, extras: &AppExtras<'_>) -> serde_json::Value {
    let children_props: serde_json::Value =
        serde_json::from_str(CHILDREN_PROPS).unwrap_or_else(|_| json!({}));
    let mut config = json!({
        "url_base_pathname": null,
        "requests_pathname_prefix": prefix,
        "ui": extras.dev_tools,
        "props_check": false,
        "disable_version_check": true,
        "show_undo_redo": false,
        "suppress_callback_exceptions": false,
        "update_title": "Updating...",
        "children_props": children_props,
        "serve_locally": true,
        "dash_version": DASH_VERSION,
        // Dash's keys for its dev tools' version check, which `disable_version_check`
        // keeps off: no Python here, and no request to plotly's server.
        "python_version": null,
        "dash_version_url": null,
        "ddk_version": null,
        "plotly_version": null,
        "validate_callbacks": false,
        "csrf_token_name": "_csrf_token",
        "csrf_header_name": "X-CSRFToken",
        "end_id": end_id,
        "plotly_cloud_installed": false,
    });
    if let Some(validation_layout) = extras.validation_layout {
        config["validation_layout"] = validation_layout.clone();
    }
    if extras.dev.is_some() {
        // Dash's `hot_reload` block (its dev tools' `dev_tools_hot_reload`): the renderer
        // polls `_reload-hash` and reloads the page when the hash changes.
        config["hot_reload"] = json!({
            "interval": crate::dev::HOT_RELOAD_INTERVAL_MS,
            "max_retry": crate::dev::HOT_RELOAD_MAX_RETRY,
        });
    }
    if let Some(worker) = &extras.websocket_worker {
        config["websocket"] = super::ws::config_block(prefix, worker, extras.websocket_callbacks);
    }
    config
}

/// JSON that cannot close the `<script>` element it sits in: `<`, `>` and `&` only occur
/// inside JSON strings, where their `\u` escapes mean the same.
fn script_safe_json(value: &serde_json::Value) -> String {
    value
        .to_string()
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_safe_json_cannot_close_the_script_element() {
        let json = script_safe_json(&json!({"title": "</script><script>alert(1)</script>"}));
        assert!(!json.contains("</script>"));
        let back: serde_json::Value = serde_json::from_str(&json).expect("still JSON");
        assert_eq!(back["title"], "</script><script>alert(1)</script>");
    }

    #[test]
    fn children_props_are_valid_json_with_the_core_namespaces() {
        let value: serde_json::Value = serde_json::from_str(CHILDREN_PROPS).expect("json");
        assert_eq!(value["dash_core_components"]["Tab"], json!(["label"]));
        assert!(value["dash_html_components"]["Div"].is_array());
    }
}
