//! Multi-page apps, clientside callbacks and per-app assets, on the real `multi-page`
//! example component.

use axum::http::StatusCode;
use platform::assets::AssetFile;
use serde_json::{Value, json};

use crate::support::TestApp;

const APP: &str = "/apps/demo/multi-page/";

fn asset(path: &str, text: &str) -> AssetFile {
    AssetFile {
        path: path.to_owned(),
        bytes: text.as_bytes().to_vec(),
    }
}

fn example_assets() -> Vec<AssetFile> {
    vec![
        asset("style.css", ".mp-header { color: rgb(1, 2, 3); }"),
        asset("app.js", "window.loaded = true;"),
        asset("sub/extra.css", "p { margin: 0; }"),
        AssetFile {
            path: "favicon.ico".into(),
            bytes: vec![0, 0, 1, 0],
        },
    ]
}

async fn multi_page() -> TestApp {
    let app = TestApp::new().await;
    app.deploy_with_assets("demo", "multi-page", "multi_page.wasm", example_assets())
        .await
        .expect("deploy");
    app
}

/// The `href`/`src` of every tag in `html` that contains `needle`, in document order.
fn urls(html: &str, attribute: &str, needle: &str) -> Vec<String> {
    html.split(&format!("{attribute}=\""))
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .filter(|url| url.contains(needle))
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn assets_are_served_with_their_content_type_and_fingerprinted_in_the_index() {
    let app = multi_page().await;
    let html = app.get(APP).await.text();
    let css = urls(&html, "href", "/assets/");
    assert_eq!(css.len(), 3, "two stylesheets and the favicon: {css:?}");
    assert!(
        css[0].starts_with("/apps/demo/multi-page/assets/favicon.ico?m="),
        "{css:?}"
    );
    assert!(
        css[1].starts_with("/apps/demo/multi-page/assets/style.css?m="),
        "{css:?}"
    );
    assert!(
        css[2].starts_with("/apps/demo/multi-page/assets/sub/extra.css?m="),
        "{css:?}"
    );
    let scripts = urls(&html, "src", "");
    let js = scripts
        .iter()
        .position(|s| s.contains("/assets/app.js?m="))
        .expect("asset script");
    let react = scripts
        .iter()
        .position(|s| s.contains("react-dom"))
        .expect("react-dom");
    let renderer = scripts
        .iter()
        .position(|s| s.contains("dash_renderer"))
        .expect("renderer");
    assert!(react < js && js < renderer, "{scripts:?}");

    let reply = app.get(&css[1]).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        reply.content_type.as_deref(),
        Some("text/css; charset=utf-8")
    );
    assert_eq!(reply.text(), ".mp-header { color: rgb(1, 2, 3); }");
    assert!(
        reply.headers["cache-control"]
            .to_str()
            .expect("ascii")
            .contains("immutable")
    );
    let js = app.get(&scripts[js]).await;
    assert_eq!(
        js.content_type.as_deref(),
        Some("text/javascript; charset=utf-8")
    );
    let icon = app.get(&css[0]).await;
    assert_eq!(icon.content_type.as_deref(), Some("image/x-icon"));
    // Without the current fingerprint the answer must not be cached for good.
    let bare = app.get(&format!("{APP}assets/style.css")).await;
    assert_eq!(bare.status, StatusCode::OK);
    assert_eq!(bare.headers["cache-control"], "no-cache");
}

#[tokio::test]
async fn assets_are_refused_outside_the_app_and_on_traversal() {
    let app = multi_page().await;
    app.deploy("demo", "hello", "hello.wasm").await;
    // Another app of the same tenant does not see them.
    let other = app.get("/apps/demo/hello/assets/style.css").await;
    assert_eq!(other.status, StatusCode::NOT_FOUND);
    assert_eq!(other.error_code(), "asset_not_found");
    let missing = app.get(&format!("{APP}assets/nope.css")).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    for bad in [
        "..%2F..%2Fhello%2Fassets%2Fstyle.css",
        "sub/..%2Fstyle.css",
        ".env.css",
    ] {
        let reply = app.get(&format!("{APP}assets/{bad}")).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(reply.error_code(), "bad_asset_path", "{bad}");
    }
    let unknown_app = app.get("/apps/demo/nope/assets/style.css").await;
    assert_eq!(unknown_app.status, StatusCode::NOT_FOUND);
    assert_eq!(unknown_app.error_code(), "app_not_found");
}

#[tokio::test]
async fn deploys_with_bad_assets_are_refused_and_change_nothing() {
    let app = TestApp::new().await;
    for (bad, what) in [
        (asset("../x.css", ""), "not allowed"),
        (asset("x.html", "<p>"), "extension"),
        (asset(".htaccess.css", ""), "not allowed"),
    ] {
        let err = app
            .deploy_with_assets("demo", "multi-page", "multi_page.wasm", vec![bad])
            .await
            .expect_err("refused");
        assert!(err.to_string().contains(what), "{err}");
    }
    assert_eq!(app.get(APP).await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_index_inlines_clientside_functions_escaped_and_dependencies_stay_dash_shaped() {
    let app = multi_page().await;
    let html = app.get(APP).await.text();
    let deps: Value = app.get(&format!("{APP}_dash-dependencies")).await.json();
    let text = deps.to_string();
    assert!(!text.contains("tessera_inline_source"), "{text}");
    let counter_dep = deps
        .as_array()
        .and_then(|d| d.iter().find(|d| d["output"] == "note-count.children"))
        .expect("counter dependency");
    assert_eq!(
        counter_dep["clientside_function"]["namespace"],
        json!("_dashprivate_clientside_funcs")
    );
    let name = counter_dep["clientside_function"]["function_name"]
        .as_str()
        .expect("function name");
    assert_eq!(name.len(), 64, "a sha256, as Dash names inline functions");
    assert!(
        html.contains(&format!(r#"ns["{name}"] = function(value) {{"#)),
        "inline counter missing:\n{html}"
    );
    assert!(html.contains(r#"window.dash_clientside = window.dash_clientside || {};"#));
    // Inline scripts come after the component bundles and before the renderer starts.
    let inline = html.find(name).expect("inline");
    assert!(html.rfind("dash_core_components").expect("dcc") < inline);
    assert!(inline < html.find("new DashRenderer()").expect("renderer"));
}

#[test]
fn inline_scripts_cannot_close_their_script_element() {
    let script = platform::dash::clientside::inline_script(
        "_dashprivate_clientside_funcs",
        "f",
        "function() { return '</script><script>alert(1)</script><!--'; }",
    );
    assert!(
        !script.to_ascii_lowercase().contains("</script"),
        "{script}"
    );
    assert!(!script.contains("<!--"), "{script}");
}

#[tokio::test]
async fn clientside_callbacks_are_refused_on_update_component() {
    let app = multi_page().await;
    let body = json!({
        "output": "note-count.children",
        "outputs": {"id": "note-count", "property": "children"},
        "inputs": [{"id": "note", "property": "value", "value": "hi"}],
        "changedPropIds": ["note.value"],
    });
    let reply = app
        .post_json(&format!("{APP}_dash-update-component"), body.to_string())
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.error_code(), "clientside_callback");
}

#[tokio::test]
async fn page_paths_serve_the_index_and_the_router_gets_the_prefix() {
    let app = multi_page().await;
    for path in ["report/42", "live", "no/such/page", "report/42/"] {
        let reply = app.get(&format!("{APP}{path}")).await;
        assert_eq!(reply.status, StatusCode::OK, "{path}");
        assert!(reply.text().contains("react-entry-point"), "{path}");
    }
    // Dash's reserved names are not pages.
    let reserved = app.get(&format!("{APP}_dash-nothing")).await;
    assert_eq!(reserved.status, StatusCode::NOT_FOUND);
    // A path under an app that does not exist is the missing-app 404.
    let other = app.get("/apps/demo/nope/report/42").await;
    assert_eq!(other.status, StatusCode::NOT_FOUND);
    assert_eq!(other.error_code(), "app_not_found");

    let router = ".._pages_nav.children..._pages_content.children..._pages_store.data..";
    let body = json!({
        "output": router,
        "outputs": [
            {"id": "_pages_nav", "property": "children"},
            {"id": "_pages_content", "property": "children"},
            {"id": "_pages_store", "property": "data"},
        ],
        "inputs": [
            {"id": "_pages_location", "property": "pathname", "value": "/apps/demo/multi-page/report/42"},
            {"id": "_pages_location", "property": "search", "value": ""},
        ],
        "changedPropIds": ["_pages_location.pathname"],
    });
    let reply = app
        .post_json(&format!("{APP}_dash-update-component"), body.to_string())
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let answer = reply.json();
    let content = answer["response"]["_pages_content"]["children"].to_string();
    assert!(content.contains("Report 42"), "{content}");
    assert_eq!(
        answer["response"]["_pages_store"]["data"],
        json!({"title": "Report"})
    );
    let nav = &answer["response"]["_pages_nav"]["children"];
    assert_eq!(nav[0]["props"]["href"], json!("/apps/demo/multi-page/"));
}
