//! Sales explorer: the demo dashboard and the platform's benchmark workload.
//!
//! Picking a region and a range of years redraws a stacked bar chart of revenue per
//! product and month. The rows come from the tenant's data source `sales` ([`source`]: one
//! `GROUP BY` query, decoded from Arrow with `sdk::frame::Frame`); where no such source is
//! granted, from 100,000 synthetic rows generated once per instance and scanned in full
//! (the sandbox benchmarks' workload), and a line under the chart says so. Both follow a
//! fixed specification (see [`data`]) that `check.py` re-implements independently, so the
//! figure can be checked number for number.

pub mod data;
pub mod report;
pub mod source;

use std::time::Duration;

use sdk::{App, Callback, Figure, Input, Output, dcc, html};

use crate::data::{FIRST_YEAR, LAST_YEAR, REGIONS};

/// Build the app: a region dropdown and a year range slider driving a chart and a summary.
pub fn app() -> App {
    App::new("Sales explorer")
        .layout(
            html::div().children((
                html::h2().children("Sales explorer"),
                dcc::dropdown()
                    .id("region")
                    .options(REGIONS)
                    .value("North")
                    .clearable(false),
                dcc::range_slider()
                    .id("year")
                    .min(FIRST_YEAR)
                    .max(LAST_YEAR)
                    .step(1)
                    .value(FIRST_YEAR, LAST_YEAR)
                    .marks((FIRST_YEAR..=LAST_YEAR).map(|year| (year, year.to_string()))),
                dcc::graph().id("revenue-chart"),
                html::div().id("summary"),
                html::p().id("source-note"),
            )),
        )
        // The chart depends on its inputs alone, never on the viewer: the platform keeps
        // each selection's figure for a minute, so a crowd on the same view costs one query.
        .register(
            Callback::new(
                Output::new("revenue-chart", "figure"),
                [Input::new("region", "value"), Input::new("year", "value")],
                (),
                |ctx| {
                    let region: Option<String> = ctx.input("region")?;
                    let years = report::Years::from_input(ctx.input_value("year").as_ref())?;
                    let report = source::revenue(region.as_deref(), years)?.into_value();
                    Ok(Figure::from(report.figure()))
                },
            )
            .memoize(Duration::from_secs(60)),
        )
        // The summary depends on the region alone and every viewer sees the same one: the
        // platform keeps each region's answer for five minutes (Dash's `@cache.memoize`).
        .register(
            Callback::new(
                Output::new("summary", "children"),
                Input::new("region", "value"),
                (),
                |ctx| {
                    let region: Option<String> = ctx.input("region")?;
                    source::summary(region.as_deref())
                },
            )
            .memoize(Duration::from_secs(300)),
        )
        // Where the rows come from (not memoized: a grant can change under a version).
        .callback(
            Output::new("source-note", "children"),
            Input::new("region", "value"),
            (),
            |_ctx| source::note(),
        )
}

sdk::export_app!(app);

#[cfg(test)]
mod tests {
    use super::*;
    use sdk::{CallbackError, Outcome};
    use serde_json::{Value, json};

    /// Run the chart callback and return its figure.
    pub(crate) fn chart(region: Value, year: Value) -> Result<Value, CallbackError> {
        let request = json!({
            "outputs": {"id": "revenue-chart", "property": "figure"},
            "inputs": [
                {"id": "region", "property": "value", "value": region},
                {"id": "year", "property": "value", "value": year},
            ],
            "changed_prop_ids": [],
        });
        match app().run_callback("revenue-chart.figure", &request.to_string())? {
            Outcome::Outputs(json) => {
                let mut outputs: Vec<Value> =
                    serde_json::from_str(&json).expect("outputs are a JSON array");
                assert_eq!(outputs.len(), 1);
                Ok(outputs.remove(0))
            }
            Outcome::PreventUpdate => panic!("the chart callback never prevents updates"),
        }
    }

    fn summary(region: Value) -> Result<Outcome, CallbackError> {
        let request = json!({
            "inputs": [{"id": "region", "property": "value", "value": region}],
            "changed_prop_ids": ["region.value"],
        });
        app().run_callback("summary.children", &request.to_string())
    }

    fn rows_in_title(figure: &Value) -> u64 {
        let title = figure["layout"]["title"]["text"]
            .as_str()
            .expect("the figure has a title");
        let rows = title
            .rsplit_once('(')
            .and_then(|(_, rest)| rest.strip_suffix(" rows)"))
            .expect("the title ends with the row count");
        rows.parse().expect("the row count is a number")
    }

    #[test]
    fn layout_matches_the_specification() {
        let layout: Value = serde_json::from_str(&app().layout_json()).expect("layout is JSON");
        let children = &layout["props"]["children"];
        assert_eq!(children[0]["type"], "H2");
        assert_eq!(children[0]["props"]["children"], "Sales explorer");
        let dropdown = &children[1];
        assert_eq!(dropdown["namespace"], "dash_core_components");
        assert_eq!(dropdown["type"], "Dropdown");
        assert_eq!(
            dropdown["props"]["options"].as_array().map(Vec::len),
            Some(8)
        );
        // Options go as the author wrote them (Dash sends plain strings as strings).
        assert_eq!(dropdown["props"]["options"][7], json!("Pacific"));
        assert_eq!(dropdown["props"]["value"], "North");
        assert_eq!(dropdown["props"]["clearable"], false);
        let slider = &children[2]["props"];
        assert_eq!(children[2]["type"], "RangeSlider");
        assert_eq!(
            (slider["min"].clone(), slider["max"].clone()),
            (json!(2015), json!(2024))
        );
        assert_eq!(slider["step"], 1);
        assert_eq!(slider["value"], json!([2015, 2024]));
        assert_eq!(slider["marks"]["2019"], "2019");
        assert_eq!(slider["marks"].as_object().map(|m| m.len()), Some(10));
        assert_eq!(children[3]["props"], json!({"id": "revenue-chart"}));
        // html components without children say so, as Dash's do.
        assert_eq!(
            children[4]["props"],
            json!({"id": "summary", "children": null})
        );
        assert_eq!(
            children[5]["props"],
            json!({"id": "source-note", "children": null})
        );
        assert_eq!(app().info().title, "Sales explorer");
    }

    #[test]
    fn dependencies_list_the_callbacks_and_what_is_memoized() {
        let deps: Value =
            serde_json::from_str(&app().dependencies_json()).expect("dependencies are JSON");
        assert_eq!(deps[0]["output"], "revenue-chart.figure");
        assert_eq!(
            deps[0]["inputs"],
            json!([{"id": "region", "property": "value"}, {"id": "year", "property": "value"}])
        );
        assert_eq!(deps[1]["output"], "summary.children");
        assert_eq!(deps[0]["tessera_memoize"], json!({"ttl_ms": 60_000}));
        assert_eq!(deps[1]["tessera_memoize"], json!({"ttl_ms": 300_000}));
        assert_eq!(deps[2]["output"], "source-note.children");
        assert!(deps[2].get("tessera_memoize").is_none(), "{}", deps[2]);
    }

    #[test]
    fn chart_has_a_stacked_bar_per_month_over_the_twenty_products() {
        let figure = chart(json!("North"), json!([2015, 2024])).expect("the chart renders");
        let traces = figure["data"].as_array().expect("traces are a list");
        assert_eq!(traces.len(), 12);
        assert_eq!(traces[0]["name"], "Jan");
        assert_eq!(traces[11]["name"], "Dec");
        assert_eq!(traces[0]["type"], "bar");
        assert_eq!(traces[0]["x"][0], "P01");
        assert_eq!(traces[0]["x"][19], "P20");
        assert_eq!(traces[5]["y"].as_array().map(Vec::len), Some(20));
        assert_eq!(figure["layout"]["barmode"], "stack");
        assert_eq!(figure["layout"]["xaxis"]["title"]["text"], "Product");
        assert_eq!(figure["layout"]["yaxis"]["title"]["text"], "Revenue (USD)");
        let title = figure["layout"]["title"]["text"].as_str().expect("a title");
        assert!(
            title.starts_with("Revenue by product, North 2015-2024 ("),
            "{title}"
        );
    }

    #[test]
    fn all_regions_over_all_years_cover_every_row() {
        let total: u64 = REGIONS
            .iter()
            .map(|region| {
                rows_in_title(&chart(json!(region), json!([2015, 2024])).expect("renders"))
            })
            .sum();
        assert_eq!(total, 100_000);
    }

    #[test]
    fn reversed_range_is_swapped_and_a_bare_year_is_one_year() {
        assert_eq!(
            chart(json!("East"), json!([2022, 2020])),
            chart(json!("East"), json!([2020, 2022]))
        );
        assert_eq!(
            chart(json!("Pacific"), json!(2019)),
            chart(json!("Pacific"), json!([2019, 2019]))
        );
    }

    #[test]
    fn unknown_region_still_draws_an_empty_figure() {
        let figure = chart(json!("Atlantis"), json!([2015, 2024])).expect("renders");
        assert_eq!(
            figure["layout"]["title"]["text"],
            "Revenue by product, Atlantis 2015-2024 (0 rows)"
        );
        assert_eq!(figure["data"].as_array().map(Vec::len), Some(12));
        assert!(
            figure["data"][3]["y"]
                .as_array()
                .expect("y is a list")
                .iter()
                .all(|y| y.as_f64() == Some(0.0))
        );
    }

    #[test]
    fn malformed_years_are_invalid_input() {
        for year in [
            json!("2019"),
            json!([2019.5, 2020]),
            json!([2015, 2016, 2017]),
            Value::Null,
        ] {
            assert!(
                matches!(chart(json!("North"), year.clone()), Err(CallbackError::InvalidInput(m)) if m.contains("year.value")),
                "{year} should be refused"
            );
        }
        assert!(matches!(
            chart(json!(3), json!([2015, 2024])),
            Err(CallbackError::InvalidInput(m)) if m.contains("region.value")
        ));
    }

    #[test]
    fn summary_counts_the_region_rows() {
        let rows = rows_in_title(&chart(json!("West"), json!([2015, 2024])).expect("renders"));
        assert_eq!(
            summary(json!("West")),
            Ok(Outcome::Outputs(
                json!([format!("West: {rows} rows")]).to_string()
            ))
        );
    }

    #[test]
    fn summary_without_a_known_region_says_so() {
        for region in [json!("Atlantis"), Value::Null] {
            assert_eq!(
                summary(region),
                Ok(Outcome::Outputs(r#"["No region selected"]"#.into()))
            );
        }
    }
}
