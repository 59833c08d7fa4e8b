//! Dash's partial and side updates in one page: a long list grown with a `Patch` (the
//! browser keeps the list; only the new item travels), `set_props` updating a status line
//! that is no output, a failing callback whose `on_error` shows a fallback, and a slow
//! ordinary callback that disables its button while it runs (`running`), and a callback
//! that panics without an `on_error`: its authors see the panic and its log in Dash's dev
//! tools, a viewer only an error id.
//!
//! The browser test `tests/e2e/dash-features.test.mjs` drives it.

use sdk::{App, Callback, Component, Input, Output, Patch, html};
use serde_json::{Value, json};

/// How many items the list starts with: enough that resending it would be obvious.
pub const INITIAL_ITEMS: usize = 300;

fn item(text: String) -> Component {
    html::li().children(text)
}

/// Build the app.
pub fn app() -> App {
    let items: Vec<Component> = (0..INITIAL_ITEMS)
        .map(|n| item(format!("initial item number {n}")))
        .collect();
    App::new("Dash features")
        .layout(html::div().children((
            html::h1().children("Dash features"),
            html::button().id("add").children("Add an item"),
            html::div().id("status").children("nothing added"),
            html::ul().id("items").children(items),
            html::button().id("fail").children("Fail"),
            html::div().id("result").children("not run"),
            html::button().id("slow").children("Slow"),
            html::div().id("slow-out").children("not run"),
            html::button().id("crash").children("Crash"),
            html::div().id("crash-out").children("not run"),
        )))
        .register(
            Callback::new(
                Output::new("items", "children"),
                Input::new("add", "n_clicks"),
                (),
                |ctx| {
                    let clicks: u64 = ctx.input::<Option<u64>>(0)?.unwrap_or(0);
                    ctx.set_props("status", json!({"children": format!("added {clicks}")}))?;
                    let mut patch = Patch::new();
                    patch.append(item(format!("added item {clicks}")));
                    Ok(patch)
                },
            )
            .prevent_initial_call(true),
        )
        .register(
            Callback::new(
                Output::new("result", "children"),
                Input::new("fail", "n_clicks"),
                (),
                |_| -> sdk::Result<Value> { Err("the data source is down".into()) },
            )
            .prevent_initial_call(true)
            .on_error(|_, error| Ok(format!("fallback: {error}"))),
        )
        .register(
            Callback::new(
                Output::new("slow-out", "children"),
                Input::new("slow", "n_clicks"),
                (),
                |ctx| {
                    let clicks: u64 = ctx.input::<Option<u64>>(0)?.unwrap_or(0);
                    // Long enough for the browser to show the disabled button.
                    std::thread::sleep(std::time::Duration::from_millis(800));
                    Ok(format!("slow done {clicks}"))
                },
            )
            .prevent_initial_call(true)
            .running(Output::new("slow", "disabled"), true, false),
        )
        .register(
            Callback::new(
                Output::new("crash-out", "children"),
                Input::new("crash", "n_clicks"),
                (),
                |ctx| -> sdk::Result<Value> {
                    let clicks: u64 = ctx.input::<Option<u64>>(0)?.unwrap_or(0);
                    sdk::log::info(&format!("{CRASH_LOG} (click {clicks})"));
                    panic!("{CRASH_PANIC}");
                },
            )
            .prevent_initial_call(true),
        )
}

/// What the crashing callback logs before it panics.
pub const CRASH_LOG: &str = "summing the quarterly rows";
/// Its panic message: the author's detail a viewer must never see.
pub const CRASH_PANIC: &str = "the quarterly total overflowed at row 17";

sdk::export_app!(app);

#[cfg(test)]
mod tests {
    use super::*;
    use sdk::Outcome;

    fn clicks(id: &str) -> String {
        json!({"inputs": [{"id": id, "property": "n_clicks", "value": 2}]}).to_string()
    }

    fn answer(outcome: Result<Outcome, sdk::CallbackError>) -> Value {
        match outcome {
            Ok(Outcome::Outputs(text)) => serde_json::from_str(&text).expect("JSON"),
            other => panic!("expected outputs, got {other:?}"),
        }
    }

    #[test]
    fn adding_sends_one_item_and_a_status() {
        let answer = answer(app().run_callback("items.children", &clicks("add")));
        assert_eq!(
            answer["outputs"][0]["operations"][0]["params"]["value"]["props"]["children"],
            "added item 2"
        );
        assert_eq!(answer["side_update"]["status"]["children"], "added 2");
    }

    #[test]
    fn a_failure_shows_the_fallback() {
        let answer = answer(app().run_callback("result.children", &clicks("fail")));
        assert_eq!(answer, json!(["fallback: the data source is down"]));
    }
}
