//! The Dash endpoints: shapes the front end relies on, bad input, failing callbacks.

use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::support::TestApp;

const SALES: &str = "/apps/demo/sales-explorer/";

async fn sales_app() -> TestApp {
    let app = TestApp::new().await;
    app.deploy("demo", "sales-explorer", "sales_explorer.wasm")
        .await;
    app
}

fn summary_request(region: Value) -> String {
    json!({
        "output": "summary.children",
        "outputs": {"id": "summary", "property": "children"},
        "inputs": [{"id": "region", "property": "value", "value": region}],
        "changedPropIds": ["region.value"],
        "parsedChangedPropsIds": ["region.value"]
    })
    .to_string()
}

fn chart_request(region: &str, years: Value) -> String {
    json!({
        "output": "revenue-chart.figure",
        "outputs": {"id": "revenue-chart", "property": "figure"},
        "inputs": [
            {"id": "region", "property": "value", "value": region},
            {"id": "year", "property": "value", "value": years}
        ],
        "changedPropIds": []
    })
    .to_string()
}

#[tokio::test]
async fn index_page_carries_the_config_and_the_pinned_scripts() {
    let app = sales_app().await;
    let reply = app.get(SALES).await;
    assert_eq!(reply.status, StatusCode::OK);
    let html = reply.text();
    assert!(html.contains("<title>Sales explorer</title>"), "{html}");
    assert!(html.contains(r#"<div id="react-entry-point">"#));
    let config_start = html
        .find(r#"<script id="_dash-config" type="application/json">"#)
        .expect("config");
    let config_json = &html[config_start..];
    let config_json = &config_json
        [config_json.find('>').expect(">") + 1..config_json.find("</script>").expect("end")];
    let config: Value = serde_json::from_str(config_json).expect("config is JSON");
    assert_eq!(config["requests_pathname_prefix"], SALES);
    assert_eq!(config["serve_locally"], true);
    assert!(config["end_id"].as_str().is_some_and(|s| s.len() >= 16));
    // Script order as Dash writes it: React before the renderer, the renderer before the
    // component suites, and the renderer instantiated last.
    let position = |needle: &str| {
        html.find(needle)
            .unwrap_or_else(|| panic!("{needle} missing"))
    };
    assert!(position("react@18") < position("react-dom@18"));
    assert!(position("react-dom@18") < position("dash_renderer"));
    assert!(position("dash_renderer") < position("dash_core_components."));
    assert!(position("dash_core_components.") < position("new DashRenderer()"));
}

#[tokio::test]
async fn index_script_urls_are_served_with_long_caching() {
    let app = sales_app().await;
    let html = app.get(SALES).await.text();
    let scripts: Vec<&str> = html
        .split(r#"<script src=""#)
        .skip(1)
        .map(|s| &s[..s.find('"').expect("closing quote")])
        .collect();
    assert_eq!(scripts.len(), 9, "{scripts:?}");
    for src in scripts {
        let reply = app.get(src).await;
        assert_eq!(reply.status, StatusCode::OK, "{src}");
        assert_eq!(
            reply.content_type.as_deref(),
            Some("application/javascript"),
            "{src}"
        );
        assert_eq!(
            reply
                .headers
                .get("cache-control")
                .and_then(|v| v.to_str().ok()),
            Some("public, max-age=31536000, immutable"),
            "{src}"
        );
        assert!(reply.body.len() > 1000, "{src} is suspiciously small");
    }
    // The chunks dcc loads on demand, and plotly.js where dcc's Graph looks for it.
    for lazy in [
        "dash/dcc/async-graph.js",
        "dash/dcc/async-dropdown.js",
        "plotly/package_data/plotly.min.js",
    ] {
        let reply = app
            .get(&format!("{SALES}_dash-component-suites/{lazy}"))
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{lazy}");
    }
    let escape = app
        .get(&format!(
            "{SALES}_dash-component-suites/dash/dcc/..%2F..%2Fpackage.json"
        ))
        .await;
    assert_eq!(escape.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn layout_has_dashs_component_shape() {
    let app = sales_app().await;
    let reply = app.get(&format!("{SALES}_dash-layout")).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.content_type.as_deref(), Some("application/json"));
    let text = reply.text();
    // Dash serialises props, type, namespace in that order.
    assert!(text.starts_with(r#"{"props":"#), "{text}");
    let layout = reply.json();
    assert_eq!(layout["type"], "Div");
    assert_eq!(layout["namespace"], "dash_html_components");
    let children = layout["props"]["children"].as_array().expect("children");
    let find = |id: &str| {
        children
            .iter()
            .find(|c| c["props"]["id"] == id)
            .unwrap_or_else(|| panic!("no component {id}"))
    };
    assert_eq!(find("region")["type"], "Dropdown");
    assert_eq!(find("region")["namespace"], "dash_core_components");
    assert_eq!(find("region")["props"]["value"], "North");
    assert_eq!(find("year")["type"], "RangeSlider");
    assert_eq!(find("year")["props"]["value"], json!([2015, 2024]));
    assert_eq!(find("revenue-chart")["type"], "Graph");
    assert_eq!(find("summary")["type"], "Div");
}

#[tokio::test]
async fn dependencies_have_dashs_shape() {
    let app = sales_app().await;
    let reply = app.get(&format!("{SALES}_dash-dependencies")).await;
    assert_eq!(reply.status, StatusCode::OK);
    let deps = reply.json();
    let deps = deps.as_array().expect("array");
    // The chart, the summary and the note saying where the rows come from.
    assert_eq!(deps.len(), 3);
    let chart = deps
        .iter()
        .find(|d| d["output"] == "revenue-chart.figure")
        .expect("chart callback");
    assert_eq!(
        chart["inputs"],
        json!([{"id": "region", "property": "value"}, {"id": "year", "property": "value"}])
    );
    assert_eq!(chart["state"], json!([]));
    let keys: Vec<&str> = chart
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "output",
            "inputs",
            "state",
            "clientside_function",
            "prevent_initial_call",
            "background",
            "dynamic_creator",
            "no_output",
            "optional",
            "hidden",
            "websocket",
            "persistent"
        ]
    );
}

#[tokio::test]
async fn update_component_answers_in_dashs_multi_shape() {
    let app = sales_app().await;
    let reply = app
        .post_json(
            &format!("{SALES}_dash-update-component"),
            summary_request(json!("West")),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(reply.content_type.as_deref(), Some("application/json"));
    let body = reply.json();
    assert_eq!(body["multi"], true);
    let text = body["response"]["summary"]["children"]
        .as_str()
        .expect("summary text");
    assert!(
        text.starts_with("West: ") && text.ends_with(" rows"),
        "{text}"
    );
    assert_eq!(
        body.as_object().expect("object").len(),
        2,
        "only multi and response: {body}"
    );

    let reply = app
        .post_json(
            &format!("{SALES}_dash-update-component"),
            chart_request("Pacific", json!([2019, 2021])),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let figure = &reply.json()["response"]["revenue-chart"]["figure"];
    assert_eq!(figure["data"].as_array().map(Vec::len), Some(12));
    assert_eq!(figure["layout"]["barmode"], "stack");
    let title = figure["layout"]["title"]["text"]
        .as_str()
        .or(figure["layout"]["title"].as_str());
    assert!(
        title.is_some_and(|t| t.starts_with("Revenue by product, Pacific 2019-2021 (")),
        "{figure}"
    );
}

#[tokio::test]
async fn bad_update_bodies_are_4xx_with_a_json_reason() {
    let app = sales_app().await;
    let url = format!("{SALES}_dash-update-component");
    let cases: Vec<(String, StatusCode, &str)> = vec![
        ("{not json".into(), StatusCode::BAD_REQUEST, "malformed_request"),
        (r#"{"inputs": []}"#.into(), StatusCode::BAD_REQUEST, "malformed_request"),
        (
            json!({"output": "nope.children", "inputs": []}).to_string(),
            StatusCode::BAD_REQUEST,
            "unknown_callback",
        ),
        (
            json!({"output": "summary.children", "inputs": [{"id": "year", "property": "value", "value": 1}]})
                .to_string(),
            StatusCode::BAD_REQUEST,
            "request_mismatch",
        ),
        // Wrong input type: the component itself names the problem.
        (chart_request("North", json!("not a year range")), StatusCode::BAD_REQUEST, "invalid_input"),
    ];
    for (body, status, code) in cases {
        let reply = app.post_json(&url, body.clone()).await;
        assert_eq!(reply.status, status, "{body}: {}", reply.text());
        assert_eq!(reply.error_code(), code, "{body}: {}", reply.text());
        let message = reply.json()["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert!(!message.is_empty(), "{body}: empty message");
    }
}

#[tokio::test]
async fn unknown_apps_and_tenants_are_404_json() {
    let app = sales_app().await;
    for uri in [
        "/apps/demo/missing/",
        "/apps/other/sales-explorer/_dash-layout",
        "/apps/demo/missing/_dash-dependencies",
        "/apps/Bad..Name/x/",
    ] {
        let reply = app.get(uri).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{uri}");
        assert_eq!(reply.error_code(), "app_not_found", "{uri}");
    }
    let reply = app
        .post_json(
            "/apps/demo/missing/_dash-update-component",
            summary_request(json!("North")),
        )
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_trapping_callback_fails_only_its_own_request() {
    let app = TestApp::with_limits(platform::config::LimitsConfig {
        // Long enough that the memory, output and panic cases finish well before it even
        // on a loaded machine; only the spinning guest should ever reach it. (A call past
        // 10 ms of CPU runs in the idle class, so while other tests keep both cores busy
        // the memory bomb may take a second or more to reach its cap.)
        deadline_ms: 5000,
        memory_mb: 32,
        output_mb: 1,
        ..Default::default()
    })
    .await;
    app.deploy("demo", "sales-explorer", "sales_explorer.wasm")
        .await;
    app.deploy("evil", "hostile", "guest_hostile.wasm").await;
    let hostile = crate::support::hostile_request;
    for (callback, code) in [
        ("spin", "callback_deadline"),
        ("hog", "callback_memory"),
        ("flood", "callback_output_too_large"),
        ("panic", "callback_panicked"),
    ] {
        let reply = app
            .post_json(
                "/apps/evil/hostile/_dash-update-component",
                hostile(callback),
            )
            .await;
        assert_eq!(
            reply.status,
            StatusCode::INTERNAL_SERVER_ERROR,
            "{callback}: {}",
            reply.text()
        );
        assert_eq!(reply.error_code(), code, "{callback}: {}", reply.text());
        let ok = app
            .post_json(
                &format!("{SALES}_dash-update-component"),
                summary_request(json!("North")),
            )
            .await;
        assert_eq!(ok.status, StatusCode::OK, "after {callback}: {}", ok.text());
    }
}

/// A log sink for one test thread: what `tracing` writes while the guard lives.
#[derive(Clone, Default)]
struct LogSink(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for LogSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut sink = self.0.lock().expect("log sink");
        // Bounded: this test only needs a few lines.
        if sink.len() < 1 << 20 {
            sink.extend_from_slice(buf);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A panicking callback: an anonymous viewer gets an error id and no panic text; the app
/// log line has the id, the tenant, the app, the version and the panic; an admin of the
/// tenant (who may deploy the app) gets the detail.
#[tokio::test]
async fn a_viewer_gets_an_error_id_and_the_app_log_the_panic() {
    let sink = LogSink::default();
    let writer = sink.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter("tessera::app_log=info")
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let app = TestApp::new().await;
    app.deploy("evil", "hostile", "guest_hostile.wasm").await;
    let uri = "/apps/evil/hostile/_dash-update-component";
    let reply = app
        .post_json(uri, crate::support::hostile_request("panic"))
        .await;
    assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(reply.error_code(), "callback_panicked");
    let message = reply.json()["error"]["message"]
        .as_str()
        .expect("message")
        .to_owned();
    assert!(!message.contains("on purpose"), "{message}");
    assert!(!message.contains(".rs"), "{message}");
    let id = message
        .split("error id ")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .expect("an error id")
        .to_owned();
    assert_eq!(id.len(), 10, "{message}");
    let log = String::from_utf8_lossy(&sink.0.lock().expect("log")).into_owned();
    let line = log
        .lines()
        .find(|l| l.contains(&id))
        .unwrap_or_else(|| panic!("no log line with {id}: {log}"));
    for part in [
        "tessera::app_log",
        "tenant=evil",
        "app=hostile",
        "version=1",
        "on purpose",
    ] {
        assert!(line.contains(part), "{part} missing: {line}");
    }
    // The tenant's admin may deploy the app: the body has the detail.
    platform::admin::create_user(&app.state.store, "ada@example.org", None, false, &op())
        .await
        .expect("user");
    platform::admin::grant(&app.state.store, "ada@example.org", "evil", "admin", &op())
        .await
        .expect("grant");
    let token =
        platform::admin::create_token(&app.state.store, "ada@example.org", "evil", None, 1, &op())
            .await
            .expect("token")
            .token;
    let author = app
        .request(
            axum::http::Request::post(uri)
                .header(axum::http::header::CONTENT_TYPE, "application/json")
                .header(axum::http::header::AUTHORIZATION, format!("Bearer {token}"))
                .body(axum::body::Body::from(crate::support::hostile_request(
                    "panic",
                )))
                .expect("request"),
        )
        .await;
    assert_eq!(author.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(author.text().contains("on purpose"), "{}", author.text());
}

fn op() -> platform::store::Change<'static> {
    use platform::clock::Clock;
    platform::store::Change {
        actor: "test",
        remote_addr: None,
        at: platform::clock::SystemClock.now_millis(),
    }
}

#[tokio::test]
async fn health_answers_ok() {
    let app = TestApp::new().await;
    let reply = app.get("/healthz").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json()["status"], "ok");
}

const FILTERS: &str = "/apps/demo/dynamic-filters/_dash-update-component";

fn dropdown(index: u64, value: Option<&str>) -> Value {
    let mut prop = json!({"id": {"type": "filter-dropdown", "index": index}, "property": "value"});
    if let Some(value) = value {
        prop["value"] = json!(value);
    }
    prop
}

#[tokio::test]
async fn pattern_matching_requests_run_in_the_sandbox_keyed_by_concrete_ids() {
    let app = TestApp::new().await;
    app.deploy("demo", "dynamic-filters", "dynamic_filters.wasm")
        .await;
    let label = json!({
        "output": r#"{"index":["MATCH"],"type":"filter-label"}.children"#,
        "outputs": {"id": {"index": 4, "type": "filter-label"}, "property": "children"},
        "inputs": [dropdown(4, Some("North"))],
        "changedPropIds": [r#"{"index":4,"type":"filter-dropdown"}.value"#]
    });
    let reply = app.post_json(FILTERS, label.to_string()).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let text = reply.json()["response"][r#"{"index":4,"type":"filter-label"}"#]["children"].clone();
    assert!(
        text.as_str()
            .is_some_and(|t| t.starts_with("Filter 4: North (")),
        "{text}"
    );
    let summary = json!({
        "output": "summary.children",
        "outputs": {"id": "summary", "property": "children"},
        "inputs": [[dropdown(1, Some("West")), dropdown(2, None)]],
        "changedPropIds": []
    });
    let reply = app.post_json(FILTERS, summary.to_string()).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let text = reply.json()["response"]["summary"]["children"].clone();
    assert!(
        text.as_str()
            .is_some_and(|t| t.starts_with("2 filter(s) on West: ")),
        "{text}"
    );
}

#[tokio::test]
async fn pattern_requests_that_do_not_fit_the_wildcards_are_400() {
    let app = TestApp::new().await;
    app.deploy("demo", "dynamic-filters", "dynamic_filters.wasm")
        .await;
    let bodies = [
        // MATCH output for card 4, MATCH input of card 5.
        json!({
            "output": r#"{"index":["MATCH"],"type":"filter-label"}.children"#,
            "outputs": {"id": {"index": 4, "type": "filter-label"}, "property": "children"},
            "inputs": [dropdown(5, Some("North"))]
        }),
        // One prop where ALL takes a list.
        json!({
            "output": "summary.children",
            "outputs": {"id": "summary", "property": "children"},
            "inputs": [dropdown(1, Some("West"))]
        }),
        // A concrete id of another type in the ALL list.
        json!({
            "output": "summary.children",
            "outputs": {"id": "summary", "property": "children"},
            "inputs": [[{"id": {"type": "other", "index": 1}, "property": "value"}]]
        }),
    ];
    for body in bodies {
        let reply = app.post_json(FILTERS, body.to_string()).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(reply.error_code(), "request_mismatch", "{body}");
    }
}

/// The `_dash-config` object of an index page.
pub(crate) fn dash_config(html: &str) -> Value {
    let start = html
        .find(r#"<script id="_dash-config" type="application/json">"#)
        .expect("config");
    let rest = &html[start..];
    let json = &rest[rest.find('>').expect(">") + 1..rest.find("</script>").expect("end")];
    serde_json::from_str(json).expect("config is JSON")
}

/// A token of a new admin of `tenant` (who may deploy its apps).
async fn admin_token(app: &TestApp, tenant: &str) -> String {
    platform::admin::create_user(&app.state.store, "ada@example.org", None, false, &op())
        .await
        .expect("user");
    platform::admin::grant(&app.state.store, "ada@example.org", tenant, "admin", &op())
        .await
        .expect("grant");
    platform::admin::create_token(&app.state.store, "ada@example.org", tenant, None, 1, &op())
        .await
        .expect("token")
        .token
}

/// Relative paths: the guest learns its prefix when it loads (its layout's header link
/// goes to `/apps/demo/multi-page/live`), the page layouts travel in `_dash-config`'s
/// `validation_layout` (Dash's `use_pages`), not in `_dash-layout`, and authors cannot
/// set the reserved setting that carries the prefix.
#[tokio::test]
async fn a_multi_page_app_knows_its_prefix_and_sends_dashs_validation_layout() {
    let app = TestApp::new().await;
    app.deploy("demo", "multi-page", "multi_page.wasm").await;
    let layout = app.get("/apps/demo/multi-page/_dash-layout").await;
    assert_eq!(layout.status, StatusCode::OK);
    let text = layout.text();
    assert!(!text.contains("tessera_page_layouts"), "{text}");
    assert!(
        text.contains(r#""href":"/apps/demo/multi-page/live""#),
        "the header link is not under the prefix: {text}"
    );
    let config = dash_config(&app.get("/apps/demo/multi-page/").await.text());
    let validation = config["validation_layout"].to_string();
    for id in [
        "live-interval",
        "live-store",
        "report-title",
        "not-found",
        "app-root",
    ] {
        assert!(
            validation.contains(&format!(r#""id":"{id}""#)),
            "{id} missing: {validation}"
        );
    }
    // An app without pages has none.
    app.deploy("demo", "sales-explorer", "sales_explorer.wasm")
        .await;
    let config = dash_config(&app.get(SALES).await.text());
    assert!(config.get("validation_layout").is_none(), "{config}");

    let refused = platform::settings::check_value(
        platform::settings::PATHNAME_PREFIX_SETTING,
        "/apps/other/app/",
    );
    assert!(refused.is_err(), "authors may not move the prefix");
}

/// Dash's keys in `_dash-config`; the dev tools UI (`ui`) for the app's authors only.
#[tokio::test]
async fn the_dev_tools_are_on_for_authors_only() {
    let app = sales_app().await;
    let anonymous = dash_config(&app.get(SALES).await.text());
    assert_eq!(anonymous["ui"], false);
    for key in [
        "url_base_pathname",
        "requests_pathname_prefix",
        "ui",
        "props_check",
        "disable_version_check",
        "show_undo_redo",
        "suppress_callback_exceptions",
        "update_title",
        "children_props",
        "serve_locally",
        "dash_version",
        "python_version",
        "dash_version_url",
        "ddk_version",
        "plotly_version",
        "validate_callbacks",
        "csrf_token_name",
        "csrf_header_name",
        "end_id",
        "plotly_cloud_installed",
    ] {
        assert!(anonymous.get(key).is_some(), "{key} missing: {anonymous}");
    }
    let token = admin_token(&app, "demo").await;
    let author_page = app.get_with_token(SALES, &token).await.text();
    let author = dash_config(&author_page);
    assert_eq!(author["ui"], true);
    // Dash's version check stays off: no request leaves for plotly's server.
    assert_eq!(author["disable_version_check"], true);
    // The renderer's development build, whose dev tools hold the error pop-up (Dash's
    // debug mode), for the authors; the minified one for everyone else.
    let renderer = |html: &str| {
        html.split('"')
            .find(|s| s.contains("dash_renderer."))
            .unwrap_or_else(|| panic!("no renderer script in {html}"))
            .to_owned()
    };
    let anonymous_renderer = renderer(&app.get(SALES).await.text());
    assert!(
        anonymous_renderer.ends_with(".min.js"),
        "{anonymous_renderer}"
    );
    let author_renderer = renderer(&author_page);
    assert!(author_renderer.ends_with(".dev.js"), "{author_renderer}");
    let served = app.get(&author_renderer).await;
    assert_eq!(served.status, StatusCode::OK);
    assert!(
        served.text().contains("dash-fe-error__title"),
        "the development build holds the error pop-up"
    );
}

/// A 204 carries the `Content-Type` Flask gives it.
#[tokio::test]
async fn an_empty_answer_has_flasks_content_type() {
    let app = TestApp::new().await;
    app.deploy("evil", "hostile", "guest_hostile.wasm").await;
    let reply = app
        .post_json(
            "/apps/evil/hostile/_dash-update-component",
            crate::support::hostile_request("prevent"),
        )
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.text());
    assert_eq!(
        reply
            .headers
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("text/html; charset=utf-8")
    );
}

/// A failing callback: its authors get the panic and the guest's last log lines; a viewer
/// neither.
#[tokio::test]
async fn an_author_sees_the_log_tail_of_a_failing_callback() {
    let app = TestApp::new().await;
    app.deploy("demo", "dash-features", "dash_features.wasm")
        .await;
    let uri = "/apps/demo/dash-features/_dash-update-component";
    let body = json!({
        "output": "crash-out.children",
        "outputs": {"id": "crash-out", "property": "children"},
        "inputs": [{"id": "crash", "property": "n_clicks", "value": 1}],
        "changedPropIds": ["crash.n_clicks"],
    })
    .to_string();
    let viewer = app.post_json(uri, body.clone()).await;
    assert_eq!(viewer.status, StatusCode::INTERNAL_SERVER_ERROR);
    let message = viewer.json()["error"]["message"].to_string();
    assert!(!message.contains("quarterly"), "{message}");
    assert!(message.contains("error id"), "{message}");
    let token = admin_token(&app, "demo").await;
    let author = app
        .request(
            axum::http::Request::post(uri)
                .header(axum::http::header::CONTENT_TYPE, "application/json")
                .header(axum::http::header::AUTHORIZATION, format!("Bearer {token}"))
                .body(axum::body::Body::from(body))
                .expect("request"),
        )
        .await;
    assert_eq!(author.status, StatusCode::INTERNAL_SERVER_ERROR);
    let message = author.json()["error"]["message"]
        .as_str()
        .expect("message")
        .to_owned();
    assert!(
        message.contains("the quarterly total overflowed at row 17"),
        "{message}"
    );
    assert!(
        message.contains("summing the quarterly rows (click 1)"),
        "{message}"
    );
}

/// Issue 15: the `endId` a page is given is signed for its app, and checked. A job started
/// by a page load is reached only with that page's signed `endId`: a forged one (the bare
/// value, a made-up MAC), one signed for another app or another tenant's app of the same
/// name is refused before any job is polled or cancelled, and the job goes on untouched.
#[tokio::test]
async fn an_end_id_not_signed_for_this_app_reaches_no_job() {
    const REPORT: &str = "/apps/demo/report-builder/";
    let app = TestApp::new().await;
    app.deploy("demo", "report-builder", "report_builder.wasm")
        .await;
    app.deploy("demo", "hello", "hello.wasm").await;
    let page = app.get(REPORT).await.text();
    let at = page.find("\"end_id\":\"").expect("end_id in _dash-config") + 10;
    let issued = page[at..].split('"').next().expect("end_id").to_owned();
    let (value, _) = issued.rsplit_once('~').expect("value~mac");
    let update = format!("{REPORT}_dash-update-component");
    let build = json!({
        "output": "status.children",
        "outputs": {"id": "status", "property": "children"},
        "inputs": [{"id": "build", "property": "n_clicks", "value": 1}],
        "changedPropIds": ["build.n_clicks"],
        "state": [{"id": "fail-at", "property": "value", "value": 0}]
    })
    .to_string();
    let started = app
        .post_json(&format!("{update}?endId={issued}"), build.clone())
        .await;
    assert_eq!(started.status, StatusCode::OK, "{}", started.text());
    let job = started.json()["job"].as_str().expect("job").to_owned();
    let poll_body = json!({
        "output": "status.children",
        "outputs": {"id": "status", "property": "children"},
        "inputs": [{"id": "build", "property": "n_clicks", "value": null}],
        "changedPropIds": ["build.n_clicks"],
        "state": [{"id": "fail-at", "property": "value", "value": null}]
    })
    .to_string();
    let cancel_body = json!({
        "output": "cancel.id",
        "outputs": {"id": "cancel", "property": "id"},
        "inputs": [{"id": "cancel", "property": "n_clicks", "value": 1}],
        "changedPropIds": ["cancel.n_clicks"]
    })
    .to_string();
    let forged = [
        ("the bare value", value.to_owned()),
        ("a made-up MAC", format!("{value}~{}", "0".repeat(64))),
        (
            "another app's page",
            crate::support::end_id(&app, "demo", "hello", value),
        ),
        (
            "another tenant's app of that name",
            crate::support::end_id(&app, "other", "report-builder", value),
        ),
    ];
    for (what, end_id) in &forged {
        let poll = app
            .post_json(
                &format!("{update}?endId={end_id}&cacheKey={job}&job={job}"),
                poll_body.clone(),
            )
            .await;
        assert_eq!(
            poll.status,
            StatusCode::BAD_REQUEST,
            "{what}: {}",
            poll.text()
        );
        assert_eq!(poll.error_code(), "invalid_end_id", "{what}");
        let cancel = app
            .post_json(
                &format!("{update}?endId={end_id}&cancelJob={job}"),
                cancel_body.clone(),
            )
            .await;
        assert_eq!(
            cancel.status,
            StatusCode::BAD_REQUEST,
            "{what}: {}",
            cancel.text()
        );
        let start = app
            .post_json(&format!("{update}?endId={end_id}"), build.clone())
            .await;
        assert_eq!(
            start.status,
            StatusCode::BAD_REQUEST,
            "{what}: {}",
            start.text()
        );
    }
    // The page's own endId still reaches its job, which none of the above cancelled.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let poll = app
            .post_json(
                &format!("{update}?endId={issued}&cacheKey={job}&job={job}"),
                poll_body.clone(),
            )
            .await;
        assert_eq!(poll.status, StatusCode::OK, "{}", poll.text());
        if let Some(response) = poll.json().get("response") {
            assert_eq!(
                response["status"]["children"], "Report 1 is ready: 12 sections.",
                "the job ran to its end"
            );
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the job never finished"
        );
        tokio::time::sleep(std::time::Duration::from_millis(150)).await;
    }
}

/// Dash's hot reload exists only for the app `tessera dev` serves: elsewhere
/// `_reload-hash` is reserved (404) and `_dash-config` has no `hot_reload`; for that app
/// the renderer gets the block, the hash, the dev tools (its visitor is the author) and a
/// failed build's message above the page, and the page is the failure alone while no
/// version ever built.
#[tokio::test]
async fn hot_reload_and_the_build_banner_belong_to_tessera_dev_only() {
    let app = TestApp::new().await;
    app.deploy("dev", "hello", "hello.wasm").await;
    app.deploy("dev", "other", "hello.wasm").await;
    let reply = app.get("/apps/dev/hello/_reload-hash").await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND, "{}", reply.text());
    let config = dash_config(&app.get("/apps/dev/hello/").await.text());
    assert!(config.get("hot_reload").is_none(), "{config}");
    assert_eq!(
        config["ui"],
        json!(false),
        "an anonymous viewer is no author"
    );

    let session = std::sync::Arc::new(platform::dev::DevSession::new(
        platform::ids::Slug::parse("dev").expect("slug"),
        platform::ids::Slug::parse("hello").expect("slug"),
    ));
    app.state.dev.set(session.clone()).expect("set once");
    let first = app.get("/apps/dev/hello/_reload-hash").await.json();
    assert_eq!(first["hard"], json!(true));
    assert!(first["reloadHash"].is_string(), "{first}");
    let page = app.get("/apps/dev/hello/").await.text();
    let config = dash_config(&page);
    assert_eq!(
        config["hot_reload"],
        json!({"interval": platform::dev::HOT_RELOAD_INTERVAL_MS, "max_retry": platform::dev::HOT_RELOAD_MAX_RETRY})
    );
    assert_eq!(
        config["ui"],
        json!(true),
        "the one person tessera dev serves is the author"
    );
    assert!(!page.contains("_tessera-dev-error"), "{page}");
    // The page checks the hash it was rendered at itself (a save before the renderer's
    // first poll would otherwise never reload it).
    let rendered_at = format!("{}", first["reloadHash"]);
    assert!(
        page.contains(r#"<script id="_tessera-dev-reload">"#) && page.contains(&rendered_at),
        "{page}"
    );
    // Another app of the same server is none of tessera dev's business.
    let other = app.get("/apps/dev/other/_reload-hash").await;
    assert_eq!(other.status, StatusCode::NOT_FOUND);
    assert!(
        dash_config(&app.get("/apps/dev/other/").await.text())
            .get("hot_reload")
            .is_none()
    );

    // A failed build: a new hash, its message (escaped) above the last good version.
    session.failed("error[E0425]: cannot find value `x` <in> this scope".into());
    let second = app.get("/apps/dev/hello/_reload-hash").await.json();
    assert_ne!(first["reloadHash"], second["reloadHash"]);
    let page = app.get("/apps/dev/hello/").await.text();
    assert!(page.contains(r#"<pre id="_tessera-dev-error""#), "{page}");
    assert!(
        page.contains("cannot find value `x` &#60;in&#62; this scope"),
        "{page}"
    );
    assert!(
        page.contains(r#"<div id="react-entry-point">"#),
        "the app is still there"
    );
}
