//! Live orders: a `dcc.Interval` polls the `orders` table of the tenant's data source
//! `sales` every two seconds and shows the number of orders and a bar chart of revenue per
//! region.
//!
//! The aggregate is memoized, so a room full of viewers costs one query per two seconds:
//! a clientside callback turns each tick into the current two-second window
//! (`Math.floor(Date.now() / 2000)`), and the memoized callback's only input is that
//! window. Every viewer polling in the same window sends the same input, so the platform
//! answers all but the first from its cache. Each answer says when it was computed, so a
//! viewer can see that an answer was shared.
//!
//! The demo seeds the table and adds an order every second while it runs
//! (`platform/src/demo.rs`). Where no source answers, the page says so in place of the
//! number.
//!
//! Below it, the same page streams over a WebSocket (Dash's `websocket=True` callbacks):
//! one click runs a callback that sends [`STREAMED`] ticks to the browser while it runs,
//! each appended to a list with a `Patch` through `set_props`, and a second button asks the
//! server for its clock over the socket (the request the WebSocket benchmark sends once a
//! second per viewer, `tests/src/bin/ws_viewers.rs`). A third reads the feed back from
//! the page while it runs (Dash's `get_prop`: the server asks the browser over the socket)
//! and says how many ticks the page shows.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use plotly::{Bar, Layout, Plot};
use sdk::clientside::ClientsideFunction;
use sdk::frame::Frame;
use sdk::sql::{self, QueryError};
use sdk::{App, Callback, Figure, Input, Output, Patch, dcc, html};

/// The data source's name, as the administrator registered it.
pub const SOURCE: &str = "sales";

/// How often the page polls.
pub const POLL: Duration = Duration::from_secs(2);

/// How long an answer is shared: one polling window, so every viewer of the window gets
/// the first viewer's answer and the next window queries again.
pub const SHARED_FOR: Duration = POLL;

/// How many ticks one click streams over the WebSocket.
pub const STREAMED: u64 = 100;

/// The pause between two streamed ticks.
pub const TICK: Duration = Duration::from_millis(10);

/// Streams [`STREAMED`] ticks while the callback runs: each one appends an item to the
/// feed (a `Patch`, so only the new item travels). Over HTTP (a browser without
/// SharedWorker) the ticks arrive together with the answer instead.
fn stream_ticks(ctx: &sdk::Context<'_>) -> sdk::Result<String> {
    for n in 1..=STREAMED {
        let mut patch = Patch::new();
        patch.append(html::li().children(format!("tick {n}")));
        ctx.set_props("stream-feed", serde_json::json!({ "children": patch }))?;
        std::thread::sleep(TICK);
    }
    Ok(format!("streamed {STREAMED} ticks"))
}

/// Asks the page how many ticks its feed shows now (`get_props` over the WebSocket): the
/// feed's children are read from the browser, not from any server state.
fn count_ticks(ctx: &sdk::Context<'_>) -> sdk::Result<String> {
    let Some(props) = ctx.get_props("stream-feed", &["children"])? else {
        return Ok("no page to ask (not over a WebSocket)".to_owned());
    };
    let shown = props
        .get("children")
        .and_then(serde_json::Value::as_array)
        .map_or(0, Vec::len);
    Ok(format!("the page shows {shown} ticks"))
}

/// Orders and revenue per region.
pub const BY_REGION_SQL: &str = "SELECT region, COUNT(*) AS n, \
     CAST(SUM(amount_cents) AS BIGINT) AS cents FROM orders GROUP BY region ORDER BY region";

/// The tick → window function the browser runs (the window is the memoized input).
pub const WINDOW_JS: &str = "function(n) { return Math.floor(Date.now() / 2000); }";

/// Orders per region, as the query answers them.
#[derive(Debug, Clone, PartialEq)]
pub struct Totals {
    /// Region names, in order.
    pub regions: Vec<String>,
    /// Orders per region.
    pub orders: Vec<u64>,
    /// Revenue per region, in dollars.
    pub dollars: Vec<f64>,
}

impl Totals {
    /// Read the query's answer (`region`, `n`, `cents`).
    pub fn from_frame(frame: &Frame) -> sdk::Result<Totals> {
        if frame.num_rows() == 0 {
            return Ok(Totals {
                regions: Vec::new(),
                orders: Vec::new(),
                dollars: Vec::new(),
            });
        }
        let bad = |e: sdk::frame::FrameError| sdk::Error::failed(format!("the orders: {e}"));
        Ok(Totals {
            regions: frame.strings("region").map_err(bad)?,
            // Exact: counts and cents stay far below 2^53.
            orders: frame
                .numbers("n")
                .map_err(bad)?
                .into_iter()
                .map(|n| n as u64)
                .collect(),
            dollars: frame
                .numbers("cents")
                .map_err(bad)?
                .into_iter()
                .map(|cents| cents / 100.0)
                .collect(),
        })
    }

    /// All orders.
    pub fn total_orders(&self) -> u64 {
        self.orders.iter().sum()
    }

    /// The big number: `"{orders} orders, ${revenue}"`.
    pub fn headline(&self) -> String {
        format!(
            "{} orders, ${:.2}",
            self.total_orders(),
            self.dollars.iter().fold(0.0, |sum, d| sum + d)
        )
    }

    /// Revenue per region as a bar chart.
    pub fn figure(&self) -> Plot {
        let mut plot = Plot::new();
        plot.add_trace(Bar::new(self.regions.clone(), self.dollars.clone()).name("Revenue"));
        plot.set_layout(Layout::new().title("Revenue by region (USD)"));
        plot
    }
}

/// `HH:MM:SS.mmm` UTC of a time in milliseconds since the epoch.
pub fn clock_time(millis: u128) -> String {
    let (seconds, ms) = (millis / 1000, millis % 1000);
    format!(
        "{:02}:{:02}:{:02}.{ms:03}",
        seconds / 3600 % 24,
        seconds / 60 % 60,
        seconds % 60
    )
}

/// What the page shows for one window: the headline, the chart and when it was computed.
pub fn answer() -> sdk::Result<(String, Plot)> {
    match sql::query(SOURCE, BY_REGION_SQL, &[]) {
        Ok(ipc) => {
            let frame = Frame::from_ipc(&ipc)
                .map_err(|e| sdk::Error::failed(format!("the orders: {e}")))?;
            let totals = Totals::from_frame(&frame)?;
            Ok((totals.headline(), totals.figure()))
        }
        Err(QueryError::NotGranted(why) | QueryError::Unavailable(why)) => Ok((
            format!(
                "No data source `{SOURCE}` with an `orders` table answered ({why}). An \
                 administrator registers `{SOURCE}` and grants it to this app \
                 (`tessera sources grant`)."
            ),
            Plot::new(),
        )),
        Err(e) => Err(sdk::Error::failed(format!(
            "the data source `{SOURCE}`: {e}"
        ))),
    }
}

/// Build the app.
pub fn app() -> App {
    App::new("Live orders")
        .layout(
            html::div().children((
                html::h2().children("Live orders"),
                dcc::interval().id("tick").every_ms(POLL.as_millis() as u64),
                dcc::store().id("window"),
                html::div()
                    .id("orders-count")
                    .style(serde_json::json!({"fontSize": "2.5em", "fontWeight": "bold"})),
                dcc::graph().id("orders-chart"),
                html::p().id("orders-stamp"),
                html::h3().children("Streamed over a WebSocket"),
                html::button()
                    .id("stream-start")
                    .children("Stream 100 ticks"),
                html::button().id("stream-ping").children("Server clock"),
                html::button()
                    .id("stream-ask")
                    .children("Count the ticks shown"),
                html::p().id("stream-status").children("not streamed yet"),
                html::p().id("stream-clock"),
                html::p().id("stream-count"),
                html::ul().id("stream-feed").children(serde_json::json!([])),
            )),
        )
        .register(
            Callback::new(
                Output::new("stream-status", "children"),
                Input::new("stream-start", "n_clicks"),
                (),
                stream_ticks,
            )
            .websocket()
            .prevent_initial_call(true),
        )
        .register(
            Callback::new(
                Output::new("stream-clock", "children"),
                Input::new("stream-ping", "n_clicks"),
                (),
                |_ctx| {
                    let millis = SystemTime::now()
                        .duration_since(UNIX_EPOCH)
                        .map(|d| d.as_millis())
                        .unwrap_or(0);
                    Ok(format!("server clock {} UTC", clock_time(millis)))
                },
            )
            .websocket()
            .prevent_initial_call(true),
        )
        .register(
            Callback::new(
                Output::new("stream-count", "children"),
                Input::new("stream-ask", "n_clicks"),
                (),
                count_ticks,
            )
            .websocket()
            .prevent_initial_call(true),
        )
        .clientside_callback(
            Output::new("window", "data"),
            Input::new("tick", "n_intervals"),
            (),
            ClientsideFunction::inline(WINDOW_JS),
        )
        .register(
            Callback::new(
                [
                    Output::new("orders-count", "children"),
                    Output::new("orders-chart", "figure"),
                    Output::new("orders-stamp", "children"),
                ],
                Input::new("window", "data"),
                (),
                |_ctx| {
                    let (headline, plot) = answer()?;
                    let millis = SystemTime::now()
                        .duration_since(UNIX_EPOCH)
                        .map(|d| d.as_millis())
                        .unwrap_or(0);
                    Ok((
                        headline,
                        Figure::from(plot),
                        format!("computed at {} UTC", clock_time(millis)),
                    ))
                },
            )
            .memoize(SHARED_FOR),
        )
}

sdk::export_app!(app);

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    #[test]
    fn the_aggregate_is_memoized_on_the_window_alone() {
        let deps: Value =
            serde_json::from_str(&app().dependencies_json()).expect("dependencies are JSON");
        let deps = deps.as_array().expect("a list");
        let server = deps
            .iter()
            .find(|d| {
                d["output"]
                    .as_str()
                    .is_some_and(|o| o.contains("orders-count"))
            })
            .expect("the aggregate callback");
        assert_eq!(
            server["inputs"],
            json!([{"id": "window", "property": "data"}])
        );
        assert_eq!(server["tessera_memoize"], json!({"ttl_ms": 2_000}));
        let layout: Value = serde_json::from_str(&app().layout_json()).expect("layout");
        assert_eq!(layout["props"]["children"][1]["type"], "Interval");
        assert_eq!(layout["props"]["children"][1]["props"]["interval"], 2000);
    }

    #[test]
    fn the_stream_callbacks_go_over_the_websocket_and_append_ticks() {
        let deps: Value =
            serde_json::from_str(&app().dependencies_json()).expect("dependencies are JSON");
        let ws: Vec<&str> = deps
            .as_array()
            .expect("a list")
            .iter()
            .filter(|d| d["websocket"] == json!(true))
            .filter_map(|d| d["output"].as_str())
            .collect();
        assert_eq!(
            ws,
            [
                "stream-status.children",
                "stream-clock.children",
                "stream-count.children"
            ]
        );
        // Natively there is no page to read the feed from.
        let counted = app()
            .run_callback(
                "stream-count.children",
                r#"{"inputs": [{"id": "stream-ask", "property": "n_clicks", "value": 1}]}"#,
            )
            .expect("runs");
        let sdk::Outcome::Outputs(text) = counted else {
            panic!("outputs expected");
        };
        assert_eq!(text, r#"["no page to ask (not over a WebSocket)"]"#);
        // Natively nothing streams: the ticks merge into one side update, the last Patch.
        let answer = app()
            .run_callback(
                "stream-status.children",
                r#"{"inputs": [{"id": "stream-start", "property": "n_clicks", "value": 1}]}"#,
            )
            .expect("runs");
        let sdk::Outcome::Outputs(text) = answer else {
            panic!("outputs expected");
        };
        let answer: Value = serde_json::from_str(&text).expect("JSON");
        assert_eq!(answer["outputs"], json!(["streamed 100 ticks"]));
        let patch = &answer["side_update"]["stream-feed"]["children"];
        assert_eq!(patch["operations"][0]["operation"], "Append");
        assert_eq!(
            patch["operations"][0]["params"]["value"]["props"]["children"],
            "tick 100"
        );
    }

    #[test]
    fn totals_read_the_grouped_rows() {
        let csv = "region,n,cents\nEast,3,1050\nWest,2,250\n";
        let frame = Frame::from_csv_bytes(csv.as_bytes()).expect("csv");
        let totals = Totals::from_frame(&frame).expect("totals");
        assert_eq!(totals.regions, ["East", "West"]);
        assert_eq!(totals.total_orders(), 5);
        assert_eq!(totals.headline(), "5 orders, $13.00");
        let empty = Frame::from_csv_bytes(b"region,n,cents\n").expect("csv");
        assert_eq!(
            Totals::from_frame(&empty).expect("none").headline(),
            "0 orders, $0.00"
        );
    }

    #[test]
    fn natively_the_page_says_no_source_answered() {
        let (headline, _) = answer().expect("an answer");
        assert!(headline.starts_with("No data source `sales`"), "{headline}");
        assert_eq!(clock_time(3_723_004), "01:02:03.004");
    }
}
