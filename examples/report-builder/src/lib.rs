//! A background callback with a progress bar and a cancel button.
//!
//! "Build report" starts a job that works through [`STEPS`] sections, about a quarter of a
//! second each, reporting its progress after every one; the platform runs it as a job
//! while the browser polls. While it runs the build button is disabled and the cancel
//! button enabled (Dash's `running`); "Cancel" stops the job on the server. Asking for a
//! section count of 0 makes the job fail, to show how a failed job ends.

use std::time::Duration;

use sdk::{App, Callback, Input, Output, State, dcc, html};
use serde_json::json;

/// Sections in a report.
pub const STEPS: u32 = 12;

/// Time one section takes.
const STEP: Duration = Duration::from_millis(250);

/// Build the app.
pub fn app() -> App {
    App::new("Report builder")
        .layout(
            html::div().children((
                html::h1().children("Report builder"),
                html::label().children("Sections to fail at (0 = never): "),
                dcc::input().id("fail-at").prop("type", "number").value(0),
                html::div().children((
                    html::button().id("build").children("Build report"),
                    html::button()
                        .id("cancel")
                        .children("Cancel")
                        .prop("disabled", true),
                )),
                html::progress()
                    .id("bar")
                    .prop("value", "0")
                    .prop("max", STEPS.to_string()),
                html::div().id("status").children("No report yet."),
            )),
        )
        .register(
            Callback::new(
                Output::new("status", "children"),
                Input::new("build", "n_clicks"),
                State::new("fail-at", "value"),
                |ctx| {
                    let clicks: Option<u64> = ctx.input("build")?;
                    let fail_at: Option<u32> = ctx.state("fail-at")?;
                    let clicks = clicks.unwrap_or_default();
                    for step in 1..=STEPS {
                        std::thread::sleep(STEP);
                        if fail_at == Some(step) {
                            return Err(format!("section {step} could not be built").into());
                        }
                        ctx.set_progress([step.to_string(), STEPS.to_string()])?;
                    }
                    Ok(json!(format!(
                        "Report {clicks} is ready: {STEPS} sections."
                    )))
                },
            )
            .background(200)
            .prevent_initial_call(true)
            .running(Output::new("build", "disabled"), true, false)
            .running(Output::new("cancel", "disabled"), false, true)
            .progress([Output::new("bar", "value"), Output::new("bar", "max")])
            .progress_default(vec![json!("0"), json!(STEPS.to_string())])
            .cancel(Input::new("cancel", "n_clicks")),
        )
}

sdk::export_app!(app);

#[cfg(test)]
mod tests {
    use super::*;
    use sdk::Outcome;

    #[test]
    fn build_reports_the_finished_report() {
        let request = json!({
            "outputs": {"id": "status", "property": "children"},
            "inputs": [{"id": "build", "property": "n_clicks", "value": 2}],
            "state": [{"id": "fail-at", "property": "value", "value": 0}],
        });
        let outcome = app().run_callback("status.children", &request.to_string());
        assert_eq!(
            outcome,
            Ok(Outcome::Outputs(
                json!(["Report 2 is ready: 12 sections."]).to_string()
            ))
        );
    }

    #[test]
    fn dependencies_declare_a_background_callback_and_its_canceller() {
        let deps: serde_json::Value =
            serde_json::from_str(&app().dependencies_json()).expect("JSON");
        assert_eq!(deps[0]["background"], json!({"interval": 200}));
        assert_eq!(deps[1]["output"], "cancel.id");
    }
}
