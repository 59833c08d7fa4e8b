//! Multi-page apps: a page registry, the page container and the routing callback.
//!
//! Mirrors Dash's `use_pages`: the layout holds [`container`] (a `dcc.Location` with id
//! `_pages_location`, a navigation bar, the content div and a store for the title), and
//! [`App::pages`](crate::App::pages) registers the server-side callback that, whenever the
//! browser's path changes, picks the page whose path template fits, calls its layout
//! function with the path variables and query parameters, and fills the content, the
//! navigation bar and the page title. Paths are relative to the app: the platform tells
//! callbacks where it serves the app ([`Context::pathname_prefix`]), so `/report/7`
//! is `/apps/{tenant}/{app}/report/7` in the browser. This module never touches the URL
//! itself; `dcc.Location` and `dcc.Link` in the browser do.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{Value, json};

use crate::app::Callback;
use crate::callback::{Context, Input, Output};
use crate::clientside::ClientsideFunction;
use crate::component::Component;
use crate::error::{Error, Result};
use crate::{dcc, html};

/// Id of the `dcc.Location` inside [`container`] (Dash's `_ID_LOCATION`).
pub const LOCATION_ID: &str = "_pages_location";
/// Id of the div that holds the current page (Dash's `_ID_CONTENT`).
pub const CONTENT_ID: &str = "_pages_content";
/// Id of the `dcc.Store` that carries the page title (Dash's `_ID_STORE`).
pub const STORE_ID: &str = "_pages_store";
/// Id of the div the title callback writes to (Dash's `_ID_DUMMY`).
pub const DUMMY_ID: &str = "_pages_dummy";
/// Id of the navigation bar the routing callback fills from the registry.
pub const NAV_ID: &str = "_pages_nav";

/// A page's layout function.
type Layout = Arc<dyn Fn(&PageContext) -> Component + Send + Sync>;

/// What a page's layout function is given: where the browser is and how to link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageContext {
    path: String,
    prefix: String,
    variables: BTreeMap<String, String>,
    query: BTreeMap<String, String>,
}

impl PageContext {
    /// The path inside the app, e.g. `/report/42`.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// A path variable of the page's template (`id` for `/report/<id>`).
    pub fn var(&self, name: &str) -> Option<&str> {
        self.variables.get(name).map(String::as_str)
    }

    /// A query parameter (`?name=value`).
    pub fn query(&self, name: &str) -> Option<&str> {
        self.query.get(name).map(String::as_str)
    }

    /// The browser URL of a path inside the app, for `dcc.Link` and `html.A` (Dash's
    /// `get_relative_path`): `href("/report/7")` is `/apps/{tenant}/{app}/report/7`.
    pub fn href(&self, path: &str) -> String {
        let path = format!("/{}", path.trim_start_matches('/'));
        crate::paths::app_get_relative_path(&self.prefix, &path).unwrap_or(path)
    }
}

/// One page of the registry.
#[derive(Clone)]
struct Page {
    template: String,
    title: String,
    layout: Layout,
}

impl Page {
    /// The path variables if `path` fits the template (`<name>` matches one segment).
    fn matches(&self, path: &str) -> Option<BTreeMap<String, String>> {
        let want: Vec<&str> = segments(&self.template);
        let got: Vec<&str> = segments(path);
        if want.len() != got.len() {
            return None;
        }
        let mut variables = BTreeMap::new();
        for (pattern, segment) in want.iter().zip(&got) {
            match pattern.strip_prefix('<').and_then(|p| p.strip_suffix('>')) {
                Some(name) => {
                    variables.insert(name.to_owned(), (*segment).to_owned());
                }
                None if pattern == segment => {}
                None => return None,
            }
        }
        Some(variables)
    }

    fn is_template(&self) -> bool {
        self.template.contains('<')
    }
}

fn segments(path: &str) -> Vec<&str> {
    path.split('/').filter(|s| !s.is_empty()).collect()
}

/// The page registry (Dash's `page_registry`): path templates, titles and layouts, in the
/// order the navigation bar lists them, plus the page shown for an unknown path.
#[derive(Clone, Default)]
pub struct Pages {
    pages: Vec<Page>,
    not_found: Option<Layout>,
}

impl std::fmt::Debug for Pages {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let paths: Vec<&str> = self.pages.iter().map(|p| p.template.as_str()).collect();
        f.debug_struct("Pages").field("paths", &paths).finish()
    }
}

impl Pages {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Add a page at `path`, which may hold variables (`/report/<id>`); `layout` builds
    /// the page for each visit. Pages without variables appear in the navigation bar.
    ///
    /// # Panics
    ///
    /// If `path` does not start with `/` or another page has the same path.
    pub fn page<F>(mut self, path: &str, title: &str, layout: F) -> Self
    where
        F: Fn(&PageContext) -> Component + Send + Sync + 'static,
    {
        assert!(
            path.starts_with('/'),
            "page path `{path}` must start with /"
        );
        assert!(
            self.pages.iter().all(|p| p.template != path),
            "two pages have the path `{path}`"
        );
        self.pages.push(Page {
            template: path.to_owned(),
            title: title.to_owned(),
            layout: Arc::new(layout),
        });
        self
    }

    /// The page shown for a path no template fits (Dash's `not_found_404`); without it, a
    /// plain "404 - Page not found" heading.
    pub fn not_found<F>(mut self, layout: F) -> Self
    where
        F: Fn(&PageContext) -> Component + Send + Sync + 'static,
    {
        self.not_found = Some(Arc::new(layout));
        self
    }

    /// `(path, title)` of every page, in registration order.
    pub fn registry(&self) -> Vec<(&str, &str)> {
        self.pages
            .iter()
            .map(|p| (p.template.as_str(), p.title.as_str()))
            .collect()
    }

    /// Every page's layout as its layout function builds it without path variables or
    /// query (the 404 page last), for Dash's `validation_layout`: the renderer then knows
    /// the ids of every page's callbacks before the page is shown.
    pub(crate) fn validation_layouts(&self) -> Vec<Component> {
        let prefix = crate::paths::requests_pathname_prefix();
        let context = |path: &str| PageContext {
            path: path.to_owned(),
            prefix: prefix.clone(),
            variables: BTreeMap::new(),
            query: BTreeMap::new(),
        };
        let mut layouts: Vec<Component> = self
            .pages
            .iter()
            .map(|page| (page.layout)(&context(&page.template)))
            .collect();
        if let Some(not_found) = &self.not_found {
            layouts.push(not_found(&context("/")));
        }
        layouts
    }

    /// Route a browser path: `(page layout, page title, navigation bar)`. A path outside
    /// `prefix` is routed as is.
    pub fn route(&self, pathname: &str, search: &str, prefix: &str) -> (Component, String, Value) {
        let inner = match pathname.strip_prefix(prefix) {
            Some(rest) => rest,
            None if format!("{pathname}/") == prefix => "",
            None => pathname,
        };
        let path = format!("/{}", inner.trim_matches('/'));
        let query = search
            .trim_start_matches('?')
            .split('&')
            .filter_map(|pair| {
                let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                (!key.is_empty()).then(|| (key.to_owned(), value.replace('+', " ")))
            })
            .collect();
        let mut context = PageContext {
            path: path.clone(),
            prefix: prefix.to_owned(),
            variables: BTreeMap::new(),
            query,
        };
        let found = self
            .pages
            .iter()
            .find_map(|page| page.matches(&path).map(|vars| (page, vars)));
        let (layout, title, current) = match found {
            Some((page, variables)) => {
                context.variables = variables;
                ((page.layout)(&context), page.title.clone(), Some(page))
            }
            None => {
                let layout = match &self.not_found {
                    Some(layout) => layout(&context),
                    None => html::h1().children("404 - Page not found"),
                };
                (layout, "Page not found".to_owned(), None)
            }
        };
        let links: Vec<Component> = self
            .pages
            .iter()
            .filter(|page| !page.is_template())
            .map(|page| {
                let active = current.is_some_and(|c| c.template == page.template);
                dcc::link()
                    .href(context.href(&page.template))
                    .class_name(if active {
                        "tessera-nav-link active"
                    } else {
                        "tessera-nav-link"
                    })
                    .children(page.title.clone())
                    .into()
            })
            .collect();
        (
            layout,
            title,
            Value::Array(links.into_iter().map(Value::from).collect()),
        )
    }

    /// The routing callback and the clientside title callback, as Dash registers them.
    pub(crate) fn into_callbacks(self) -> (Callback, Callback) {
        let router = Callback::new(
            [
                Output::new(NAV_ID, "children"),
                Output::new(CONTENT_ID, "children"),
                Output::new(STORE_ID, "data"),
            ],
            [
                Input::new(LOCATION_ID, "pathname"),
                Input::new(LOCATION_ID, "search"),
            ],
            (),
            move |ctx: &Context<'_>| -> Result<Value> {
                let Some(pathname) = ctx.input::<Option<String>>(0)? else {
                    return Err(Error::PreventUpdate);
                };
                let search = ctx.input::<Option<String>>(1)?.unwrap_or_default();
                let (layout, title, nav) = self.route(&pathname, &search, ctx.pathname_prefix());
                Ok(json!([nav, layout, {"title": title}]))
            },
        )
        .prevent_initial_call(true)
        .hidden(true);
        let title = Callback::clientside(
            Output::new(DUMMY_ID, "children"),
            Input::new(STORE_ID, "data"),
            (),
            ClientsideFunction::inline(
                "function(data) {\n    if (data && data.title) { document.title = data.title; }\n    return window.dash_clientside.no_update;\n}",
            ),
        )
        .hidden(true);
        (router, title)
    }
}

/// The page container (Dash's `dash.page_container`): the `dcc.Location`, a navigation
/// bar (`nav#_pages_nav`, class `tessera-nav`), the page content and the title store.
/// Put it in the app's layout once.
pub fn container() -> Component {
    html::div().children((
        dcc::location().id(LOCATION_ID).refresh("callback-nav"),
        html::nav().id(NAV_ID).class_name("tessera-nav"),
        html::div().id(CONTENT_ID).prop("disable_n_clicks", true),
        dcc::store().id(STORE_ID),
        html::div().id(DUMMY_ID).prop("disable_n_clicks", true),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{App, Outcome};

    fn pages() -> Pages {
        Pages::new()
            .page("/", "Home", |_| html::h1().children("Home"))
            .page("/report/<id>", "Report", |ctx| {
                html::h1().children(format!(
                    "Report {} ({})",
                    ctx.var("id").unwrap_or("?"),
                    ctx.query("view").unwrap_or("plain")
                ))
            })
            .page("/about", "About", |ctx| {
                dcc::link()
                    .href(ctx.href("/report/7"))
                    .children("r7")
                    .into()
            })
    }

    fn text(component: &Component) -> Value {
        Value::from(component.clone())["props"]["children"].clone()
    }

    #[test]
    fn paths_under_the_prefix_pick_their_page_and_variables() {
        let p = pages();
        let prefix = "/apps/demo/mp/";
        let (layout, title, _) = p.route("/apps/demo/mp/report/42", "?view=full", prefix);
        assert_eq!(text(&layout), json!("Report 42 (full)"));
        assert_eq!(title, "Report");
        let (layout, _, nav) = p.route("/apps/demo/mp", "", prefix);
        assert_eq!(text(&layout), json!("Home"));
        assert_eq!(
            nav.as_array().map(Vec::len),
            Some(2),
            "templates are not in the nav"
        );
        assert_eq!(nav[0]["props"]["href"], json!("/apps/demo/mp/"));
        assert_eq!(
            nav[0]["props"]["className"],
            json!("tessera-nav-link active")
        );
        assert_eq!(nav[1]["props"]["href"], json!("/apps/demo/mp/about"));
        let (layout, _, _) = p.route("/apps/demo/mp/about/", "", prefix);
        assert_eq!(layout.kind(), "Link");
        assert_eq!(
            Value::from(layout)["props"]["href"],
            json!("/apps/demo/mp/report/7")
        );
    }

    #[test]
    fn unknown_paths_get_the_404_page() {
        let (layout, title, _) = pages().route("/apps/demo/mp/nope/1/2", "", "/apps/demo/mp/");
        assert_eq!(text(&layout), json!("404 - Page not found"));
        assert_eq!(title, "Page not found");
        let custom = pages().not_found(|ctx| html::p().children(format!("no {}", ctx.path())));
        let (layout, _, _) = custom.route("/apps/demo/mp/report", "", "/apps/demo/mp/");
        assert_eq!(text(&layout), json!("no /report"));
    }

    #[test]
    fn the_routing_callback_uses_the_prefix_the_platform_sends() {
        let app = App::new("Pages").layout(container()).pages(pages());
        let deps: Value = serde_json::from_str(&app.dependencies_json()).expect("json");
        let router = ".._pages_nav.children..._pages_content.children..._pages_store.data..";
        assert_eq!(deps[0]["output"], json!(router));
        assert_eq!(deps[0]["prevent_initial_call"], json!(true));
        assert_eq!(deps[0]["hidden"], json!(true));
        assert_eq!(
            deps[1]["clientside_function"]["namespace"],
            json!("_dashprivate_clientside_funcs")
        );
        let request = json!({
            "inputs": [
                {"id": "_pages_location", "property": "pathname", "value": "/apps/t/a/report/9"},
                {"id": "_pages_location", "property": "search", "value": ""},
            ],
            "changed_prop_ids": ["_pages_location.pathname"],
            "pathname_prefix": "/apps/t/a/",
        });
        let Ok(Outcome::Outputs(out)) = app.run_callback(router, &request.to_string()) else {
            panic!("router failed");
        };
        let out: Value = serde_json::from_str(&out).expect("json");
        assert_eq!(out[1]["props"]["children"], json!("Report 9 (plain)"));
        assert_eq!(out[2], json!({"title": "Report"}));
        assert_eq!(out[0][0]["props"]["href"], json!("/apps/t/a/"));
        let unset = json!({"inputs": [
            {"id": "_pages_location", "property": "pathname"},
            {"id": "_pages_location", "property": "search"},
        ]});
        assert_eq!(
            app.run_callback(router, &unset.to_string()),
            Ok(Outcome::PreventUpdate)
        );
    }
}
