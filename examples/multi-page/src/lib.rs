//! A multi-page dashboard: a page registry with a path template, a 404 page, a navigation
//! bar, `dcc.Store` + `dcc.Interval`, and two clientside callbacks (one inline, one from
//! the app's `assets/app.js`), styled by `assets/style.css`.
//!
//! Pages (relative to the app, e.g. `/apps/demo/multi-page/report/42`):
//! - `/`: home, with links to reports;
//! - `/report/<id>`: one report, the id taken from the path, `?view=` from the query;
//! - `/live`: an interval ticking five times into a session `dcc.Store`, shown by a
//!   second callback;
//! - anything else: the 404 page.
//!
//! Every link is relative to the app (`PageContext::href` in pages, `sdk::get_relative_path`
//! in the header), so the app navigates under whatever prefix the platform serves it.
//!
//! The header is on every page: a theme toggle (clientside, `window.dash_clientside.ui.theme`
//! defined in `assets/app.js`) and a note field whose character counter is an inline
//! clientside function. Neither ever reaches the server.

use sdk::pages::{self, PageContext, Pages};
use sdk::{App, ClientsideFunction, Component, Input, Output, dcc, html};
use serde_json::json;

/// How many times the `/live` page's interval fires.
pub const TICKS: i64 = 5;

/// The inline clientside character counter.
pub const COUNTER_JS: &str = "function(value) {\n    var n = (value || '').length;\n    return n + (n === 1 ? ' character' : ' characters');\n}";

fn home(ctx: &PageContext) -> Component {
    html::div().id("home").children((
        html::h2().children("Home"),
        html::p().children("Reports open by id; the path carries it."),
        html::ul().children(vec![
            html::li().children(
                dcc::link()
                    .id("link-report-42")
                    .href(ctx.href("/report/42"))
                    .children("Report 42"),
            ),
            html::li().children(
                dcc::link()
                    .id("link-report-7")
                    .href(ctx.href("/report/7?view=full"))
                    .children("Report 7 (full view)"),
            ),
        ]),
    ))
}

fn report(ctx: &PageContext) -> Component {
    let id = ctx.var("id").unwrap_or_default();
    html::div().id("report").children((
        html::h2()
            .id("report-title")
            .children(format!("Report {id}")),
        html::p()
            .id("report-view")
            .children(format!("view: {}", ctx.query("view").unwrap_or("summary"))),
        dcc::link()
            .id("link-home")
            .href(ctx.href("/"))
            .children("Back home"),
    ))
}

fn live(_: &PageContext) -> Component {
    html::div().id("live").children((
        html::h2().children("Live"),
        dcc::interval()
            .id("live-interval")
            .every_ms(300)
            .max_intervals(TICKS),
        dcc::store().id("live-store").storage_type("session"),
        html::div().id("live-count").children("waiting"),
    ))
}

fn not_found(ctx: &PageContext) -> Component {
    html::div().id("not-found").children((
        html::h2().children("404 - Page not found"),
        html::p().children(format!("There is no page at {}.", ctx.path())),
        dcc::link().href(ctx.href("/")).children("Home"),
    ))
}

/// The page registry.
pub fn registry() -> Pages {
    Pages::new()
        .page("/", "Home", home)
        .page("/report/<id>", "Report", report)
        .page("/live", "Live", live)
        .not_found(not_found)
}

/// Build the app.
pub fn app() -> App {
    App::new("Multi-page")
        .layout(
            html::div()
                .id("app-root")
                .class_name("theme-light")
                .children((
                    html::header().class_name("mp-header").children((
                        html::h1().children("Tessera multi-page"),
                        html::button().id("theme-toggle").children("Toggle theme"),
                        dcc::input().id("note").placeholder("Type a note"),
                        html::span().id("note-count").children("0 characters"),
                        // A link written in the layout, outside any page: Dash's
                        // get_relative_path puts it under the app's prefix.
                        dcc::link()
                            .id("header-live")
                            .href(sdk::get_relative_path("/live"))
                            .children("Live ticks"),
                    )),
                    pages::container(),
                )),
        )
        .pages(registry())
        .clientside_callback(
            Output::new("app-root", "className"),
            Input::new("theme-toggle", "n_clicks"),
            (),
            ClientsideFunction::named("ui", "theme"),
        )
        .clientside_callback(
            Output::new("note-count", "children"),
            Input::new("note", "value"),
            (),
            ClientsideFunction::inline(COUNTER_JS),
        )
        .callback(
            Output::new("live-store", "data"),
            Input::new("live-interval", "n_intervals"),
            (),
            |ctx| {
                let ticks: Option<i64> = ctx.input(0)?;
                Ok(json!({"ticks": ticks.unwrap_or(0)}))
            },
        )
        .callback(
            Output::new("live-count", "children"),
            Input::new("live-store", "data"),
            (),
            |ctx| {
                let data: Option<serde_json::Value> = ctx.input(0)?;
                let ticks = data
                    .as_ref()
                    .and_then(|d| d.get("ticks"))
                    .and_then(serde_json::Value::as_i64)
                    .unwrap_or(0);
                Ok(format!("ticks: {ticks}"))
            },
        )
}

sdk::export_app!(app);

#[cfg(test)]
mod tests {
    use super::*;
    use sdk::Outcome;

    fn run(id: &str, request: serde_json::Value) -> serde_json::Value {
        match app().run_callback(id, &request.to_string()) {
            Ok(Outcome::Outputs(json)) => serde_json::from_str(&json).expect("json"),
            other => panic!("{id}: {other:?}"),
        }
    }

    #[test]
    fn the_router_serves_the_report_template_under_the_app_prefix() {
        let out = run(
            ".._pages_nav.children..._pages_content.children..._pages_store.data..",
            json!({
                "inputs": [
                    {"id": "_pages_location", "property": "pathname", "value": "/apps/demo/multi-page/report/42"},
                    {"id": "_pages_location", "property": "search", "value": "?view=full"},
                ],
                "pathname_prefix": "/apps/demo/multi-page/",
            }),
        );
        let page = out[1].to_string();
        assert!(page.contains("Report 42"), "{page}");
        assert!(page.contains("view: full"), "{page}");
        assert_eq!(out[2], json!({"title": "Report"}));
    }

    #[test]
    fn ticks_flow_from_the_interval_through_the_store() {
        let data = run(
            "live-store.data",
            json!({"inputs": [{"id": "live-interval", "property": "n_intervals", "value": 3}]}),
        );
        assert_eq!(data, json!([{"ticks": 3}]));
        let shown = run(
            "live-count.children",
            json!({"inputs": [{"id": "live-store", "property": "data", "value": {"ticks": 3}}]}),
        );
        assert_eq!(shown, json!(["ticks: 3"]));
    }

    #[test]
    fn clientside_callbacks_are_declared_for_the_browser() {
        let deps: serde_json::Value =
            serde_json::from_str(&app().dependencies_json()).expect("json");
        let theme = deps
            .as_array()
            .and_then(|d| d.iter().find(|d| d["output"] == "app-root.className"))
            .expect("theme callback");
        assert_eq!(
            theme["clientside_function"],
            json!({"namespace": "ui", "function_name": "theme"})
        );
    }
}
