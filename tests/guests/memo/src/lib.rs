//! A dashboard for the memoization tests: every answer carries the wall-clock time (ns) at
//! which the guest computed it, so a test can tell a stored answer from a fresh run.
//!
//! - `memo.children`: memoized for 60 s; input `fail` fails, `prevent` is `PreventUpdate`,
//!   `big:N` answers N bytes.
//! - `brief.children`: memoized for 300 ms.
//! - `plain.children`: not memoized.
//!
//! The app sends every callback over the page's WebSocket (Dash's app-wide
//! `websocket_callbacks=True`, none marked `websocket` itself): the WebSocket tests run an
//! ordinary callback over the socket with it. Over HTTP the callbacks answer as before.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sdk::{App, Callback, Context, Error, Input, Output, Result, dcc, html};

fn stamped(ctx: &Context<'_>) -> Result<String> {
    let value: Option<String> = ctx.input("in")?;
    let value = value.unwrap_or_default();
    match value.as_str() {
        "fail" => return Err(Error::Failed("asked to fail".into())),
        "prevent" => return Err(Error::PreventUpdate),
        _ => {}
    }
    if let Some(size) = value.strip_prefix("big:") {
        let size: usize = size.parse().unwrap_or(0);
        return Ok("x".repeat(size));
    }
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    Ok(format!("{value} @{nanos}"))
}

pub fn app() -> App {
    let callback = |id: &str| {
        Callback::new(
            Output::new(id, "children"),
            Input::new("in", "value"),
            (),
            stamped,
        )
    };
    App::new("memo")
        .layout(html::div().children((
            dcc::input().id("in").value("a"),
            html::div().id("memo"),
            html::div().id("brief"),
            html::div().id("plain"),
        )))
        .websocket_callbacks(true)
        .register(callback("memo").memoize(Duration::from_secs(60)))
        .register(callback("brief").memoize(Duration::from_millis(300)))
        .register(callback("plain"))
}

sdk::export_app!(app);
