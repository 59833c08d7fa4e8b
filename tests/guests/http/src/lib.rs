//! A dashboard component that fetches URLs with `sdk::http`, as an author would.
//!
//! Callbacks (the URL is `url.value`):
//! * `fetch.children`: one GET; answers `"<status> <body bytes> <body text, first 200
//!   bytes>"`, or fails with the SDK's error (`http: refused by …: HttpRequestDenied`).
//! * `many.children` (`url.value`, `n.value`): GETs the URL `n` times, stopping at the
//!   first error; answers `"<n> ok"` or fails naming how many succeeded and the error.
//! * `post.children` (`url.value`, `payload.value`): POSTs the payload as JSON with an
//!   `x-tessera-test` header and answers the response's status, its `x-echo` header and
//!   its body decoded as JSON (`.json()`), re-serialized.
//! * `kind.children`: like `fetch`, but answers which [`sdk::http::Error`] case a failure
//!   is (`refused`, `timeout`, `too-large`, `tls`, …) followed by its text, so tests can
//!   check the classification.

use sdk::http::{self, Error};
use sdk::{App, Input, Output, html};

fn url(ctx: &sdk::Context) -> sdk::Result<String> {
    let url: Option<String> = ctx.input("url")?;
    url.ok_or_else(|| sdk::Error::InvalidInput("no URL".to_owned()))
}

fn summary(response: &http::Response) -> String {
    let body = response.bytes();
    let text = String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
    format!("{} {} {text}", response.status(), body.len())
}

fn kind(error: &Error) -> &'static str {
    match error {
        Error::Refused(_) => "refused",
        Error::Timeout(_) => "timeout",
        Error::TooLarge(_) => "too-large",
        Error::Tls(_) => "tls",
        Error::InvalidRequest(_) => "invalid-request",
        Error::Transport(_) => "transport",
        Error::Decode(_) => "decode",
    }
}

/// The app: one text field per input and one output per callback.
pub fn app() -> App {
    App::new("http")
        .layout(html::div().children((
            html::div().id("url"),
            html::div().id("n"),
            html::div().id("payload"),
            html::div().id("fetch"),
            html::div().id("many"),
            html::div().id("post"),
            html::div().id("kind"),
        )))
        .callback(
            Output::new("fetch", "children"),
            Input::new("url", "value"),
            (),
            |ctx| Ok(summary(&http::get(&url(ctx)?)?)),
        )
        .callback(
            Output::new("many", "children"),
            [Input::new("url", "value"), Input::new("n", "value")],
            (),
            |ctx| {
                let url = url(ctx)?;
                let count: Option<u64> = ctx.input("n")?;
                let count = count.unwrap_or(1);
                for done in 0..count {
                    if let Err(e) = http::get(&url) {
                        return Err(sdk::Error::Failed(format!("after {done} ok: {e}")));
                    }
                }
                Ok(format!("{count} ok"))
            },
        )
        .callback(
            Output::new("post", "children"),
            [Input::new("url", "value"), Input::new("payload", "value")],
            (),
            |ctx| {
                let payload: serde_json::Value = ctx.input("payload")?;
                let response = http::Request::new("POST", &url(ctx)?)
                    .header("x-tessera-test", "sent by the guest")
                    .json(&payload)?
                    .send()?;
                let echoed: serde_json::Value = response.json()?;
                Ok(format!(
                    "{} {} {echoed}",
                    response.status(),
                    response.header("x-echo").unwrap_or("-")
                ))
            },
        )
        .callback(
            Output::new("kind", "children"),
            Input::new("url", "value"),
            (),
            |ctx| {
                Ok(match http::get(&url(ctx)?) {
                    Ok(response) => format!("ok {}", summary(&response)),
                    Err(error) => format!("{} {error}", kind(&error)),
                })
            },
        )
}

sdk::export_app!(app);
