//! The chart callback against `check.py`, an independent Python implementation of the
//! data specification. The two must agree on the title (and so the row count) and on every
//! bar. Python 3 is a test requirement: without it these tests fail rather than skip, so a
//! green run always means the check happened.

use std::path::PathBuf;
use std::process::{Command, Output};

use sdk::Outcome;
use serde_json::{Value, json};

/// Run `check.py` with `args` and parse its JSON.
fn python_report(args: &[&str]) -> Value {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("check.py");
    let output: Output = match Command::new("python3").arg(&script).args(args).output() {
        Ok(output) => output,
        Err(error) => panic!(
            "could not run `python3 {}`: {error}. The independent check of the sales \
             explorer needs Python 3 on PATH (scripts/setup.sh --test checks for it).",
            script.display()
        ),
    };
    assert!(
        output.status.success(),
        "check.py {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("check.py prints JSON")
}

/// Run the chart callback and return its figure.
fn app_figure(region: &str, year: Value) -> Value {
    let request = json!({
        "outputs": {"id": "revenue-chart", "property": "figure"},
        "inputs": [
            {"id": "region", "property": "value", "value": region},
            {"id": "year", "property": "value", "value": year},
        ],
        "changed_prop_ids": ["region.value"],
    });
    let outcome = sales_explorer::app()
        .run_callback("revenue-chart.figure", &request.to_string())
        .expect("the chart callback succeeds");
    let Outcome::Outputs(json) = outcome else {
        panic!("the chart callback never prevents updates");
    };
    let outputs: Value = serde_json::from_str(&json).expect("outputs are JSON");
    outputs[0].clone()
}

fn assert_same(region: &str, year: Value, args: &[&str]) {
    let expected = python_report(args);
    let figure = app_figure(region, year);
    assert_eq!(figure["layout"]["title"]["text"], expected["title"]);
    let months = expected["months"].as_object().expect("months is an object");
    let traces = figure["data"].as_array().expect("traces are a list");
    assert_eq!(traces.len(), months.len());
    for (trace, (month, totals)) in traces.iter().zip(months) {
        assert_eq!(trace["name"], json!(month));
        let ours = trace["y"].as_array().expect("y is a list");
        let theirs = totals.as_array().expect("totals are a list");
        assert_eq!(ours.len(), theirs.len(), "{month}");
        for (product, (a, b)) in ours.iter().zip(theirs).enumerate() {
            let (a, b) = (a.as_f64().expect("a number"), b.as_f64().expect("a number"));
            assert!(
                (a - b).abs() <= 1e-9,
                "{region} {args:?}, {month}, product {}: app {a}, check.py {b}",
                product + 1
            );
        }
    }
}

#[test]
fn north_over_all_years_matches_check_py() {
    assert_same("North", json!([2015, 2024]), &["North", "2015", "2024"]);
}

#[test]
fn pacific_in_one_year_matches_check_py() {
    assert_same("Pacific", json!(2019), &["Pacific", "2019"]);
}

#[test]
fn east_over_three_years_matches_check_py() {
    assert_same("East", json!([2020, 2022]), &["East", "2020", "2022"]);
}
