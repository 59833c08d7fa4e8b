//! A background callback with a progress bar and a cancel button.
//!
//! "Build report" starts a job that works through [`STEPS`] sections, about a quarter of a
//! second each, reporting its progress after every one; the platform runs it as a job
//! while the browser polls. While it runs the build button is disabled and the cancel
//! button enabled (Dash's `running`); "Cancel" stops the job on the server. Asking for a
//! section count of 0 makes the job fail, to show how a failed job ends.
//!
//! Below it, a sales summary read from the app's data folder: `data/sales.csv` ships with
//! the version (a push's `data/` folder, `tessera deploy --data`), the callback reads it
//! with [`sdk::frame::Frame`] and groups revenue by the dimension the dropdown picks, for a
//! bar chart and a table. Natively (tests) the folder is `TESSERA_DATA_DIR`.

use std::sync::OnceLock;
use std::time::Duration;

use plotly::{Bar, Layout, Plot};
use sdk::dash_table::{self, Column};
use sdk::frame::{Agg, Frame};
use sdk::{App, Callback, Figure, Input, Output, State, dcc, html};
use serde_json::json;

/// The data file the summary reads.
pub const SALES_FILE: &str = "sales.csv";

/// The dimensions the summary can group by.
pub const DIMENSIONS: [&str; 3] = ["region", "product", "month"];

/// The sales table, read once per instance (the data folder never changes under a version).
fn sales() -> Result<&'static Frame, sdk::Error> {
    static SALES: OnceLock<Result<Frame, String>> = OnceLock::new();
    SALES
        .get_or_init(|| Frame::read_csv(SALES_FILE).map_err(|e| e.to_string()))
        .as_ref()
        .map_err(|e| sdk::Error::failed(e.clone()))
}

/// Revenue and units per value of `dimension`, largest revenue first.
pub fn summary(sales: &Frame, dimension: &str) -> sdk::Result<Frame> {
    if !DIMENSIONS.contains(&dimension) {
        return Err(sdk::Error::invalid_input(format!(
            "cannot group by {dimension:?}"
        )));
    }
    Ok(sales
        .group_by(dimension, &[("revenue", Agg::Sum), ("units", Agg::Sum)])?
        .sort("revenue_sum", true)?)
}

/// A bar of revenue per group.
pub fn chart(summary: &Frame, dimension: &str) -> sdk::Result<Plot> {
    let mut plot = Plot::new();
    plot.add_trace(Bar::new(
        summary.strings(dimension)?,
        summary.numbers("revenue_sum")?,
    ));
    plot.set_layout(Layout::new().title(format!("Revenue by {dimension} ({SALES_FILE})")));
    Ok(plot)
}

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
                html::h2().children("Sales summary (data/sales.csv)"),
                dcc::dropdown()
                    .id("dimension")
                    .options(DIMENSIONS)
                    .value("region")
                    .clearable(false),
                dcc::graph().id("sales-chart"),
                dash_table::data_table()
                    .id("sales-table")
                    .columns([
                        Column::new("dimension", "Group").text(),
                        Column::new("revenue_sum", "Revenue").numeric(),
                        Column::new("units_sum", "Units").numeric(),
                    ])
                    .data(json!([])),
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
        .callback(
            [
                Output::new("sales-chart", "figure"),
                Output::new("sales-table", "data"),
            ],
            Input::new("dimension", "value"),
            (),
            |ctx| {
                let dimension: String = ctx.input("dimension")?;
                let summary = summary(sales()?, &dimension)?;
                let figure = Figure::from(chart(&summary, &dimension)?);
                // The table's first column is the group, whatever the dimension.
                let rows: Vec<serde_json::Value> = summary
                    .to_rows()?
                    .into_iter()
                    .map(|mut row| {
                        let group = row.remove(&dimension).unwrap_or_default();
                        row.insert("dimension".to_owned(), group);
                        serde_json::Value::Object(row)
                    })
                    .collect();
                Ok((figure, rows))
            },
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

    /// The example's own `data/` folder, as the platform would hand it over.
    fn with_data_folder() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("data");
        // SAFETY: every test of this crate that reads data sets the same value.
        unsafe { std::env::set_var(sdk::data::DATA_DIR_VAR, dir) };
    }

    #[test]
    fn the_sales_summary_groups_the_shipped_csv() {
        with_data_folder();
        let request = json!({
            "outputs": [
                {"id": "sales-chart", "property": "figure"},
                {"id": "sales-table", "property": "data"}
            ],
            "inputs": [{"id": "dimension", "property": "value", "value": "region"}],
        });
        let outcome = app().run_callback(
            "..sales-chart.figure...sales-table.data..",
            &request.to_string(),
        );
        let Ok(Outcome::Outputs(text)) = outcome else {
            panic!("{outcome:?}");
        };
        let outputs: serde_json::Value = serde_json::from_str(&text).expect("JSON");
        let regions = &outputs[0]["data"][0]["x"];
        assert_eq!(regions.as_array().map(Vec::len), Some(4), "{regions}");
        let table = outputs[1].as_array().expect("rows");
        assert_eq!(table.len(), 4);
        // Largest revenue first; every row sums 18 lines (6 months x 3 products).
        let revenue: Vec<f64> = table
            .iter()
            .map(|row| row["revenue_sum"].as_f64().expect("number"))
            .collect();
        assert!(revenue.windows(2).all(|w| w[0] >= w[1]), "{revenue:?}");
        let total: f64 = revenue.iter().sum();
        let sales = Frame::read_csv(SALES_FILE).expect("csv");
        let expected: f64 = sales.numbers("revenue").expect("revenue").iter().sum();
        assert!((total - expected).abs() < 1e-6, "{total} vs {expected}");
        assert_eq!(table[0]["dimension"], regions[0]);

        let bad = json!({
            "outputs": [
                {"id": "sales-chart", "property": "figure"},
                {"id": "sales-table", "property": "data"}
            ],
            "inputs": [{"id": "dimension", "property": "value", "value": "units"}],
        });
        let refused = app().run_callback(
            "..sales-chart.figure...sales-table.data..",
            &bad.to_string(),
        );
        assert!(refused.is_err(), "{refused:?}");
    }

    #[test]
    fn dependencies_declare_a_background_callback_and_its_canceller() {
        let deps: serde_json::Value =
            serde_json::from_str(&app().dependencies_json()).expect("JSON");
        assert_eq!(deps[0]["background"], json!({"interval": 200}));
        assert_eq!(deps[1]["output"], "cancel.id");
    }
}
