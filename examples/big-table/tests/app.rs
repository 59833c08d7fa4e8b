//! The big table through the platform's entry point (`App::run_callback`), over all
//! 1,000,000 rows.

use std::time::Instant;

use sdk::{CallbackError, Outcome};
use serde_json::{Value, json};

fn call(page: Value, size: Value, sort: Value, filter: Value) -> Result<Vec<Value>, CallbackError> {
    let request = json!({
        "outputs": [
            {"id": "table", "property": "data"},
            {"id": "table", "property": "page_count"},
            {"id": "matches", "property": "children"},
        ],
        "inputs": [
            {"id": "table", "property": "page_current", "value": page},
            {"id": "table", "property": "page_size", "value": size},
            {"id": "table", "property": "sort_by", "value": sort},
            {"id": "table", "property": "filter_query", "value": filter},
        ],
        "changed_prop_ids": ["table.page_current"],
    });
    let app = big_table::app();
    let id = "..table.data...table.page_count...matches.children..";
    match app.run_callback(id, &request.to_string())? {
        Outcome::Outputs(json) => Ok(serde_json::from_str(&json).expect("outputs are JSON")),
        Outcome::PreventUpdate => panic!("the table callback never prevents updates"),
    }
}

#[test]
fn one_page_of_a_million_rows() {
    let started = Instant::now();
    let out = call(json!(0), json!(20), json!([]), json!("")).expect("first page");
    assert_eq!(out[0].as_array().map(Vec::len), Some(20));
    assert_eq!(out[0][0]["id"], 0);
    assert_eq!(out[1], 50_000);
    assert_eq!(out[2], "1000000 matching rows");

    let out = call(
        json!(2),
        json!(20),
        json!([{"column_id": "price", "direction": "desc"}]),
        json!("{quantity} s> 30 && {city} icontains o"),
    )
    .expect("sorted and filtered page");
    let rows = out[0].as_array().expect("rows");
    assert_eq!(rows.len(), 20);
    let prices: Vec<f64> = rows
        .iter()
        .map(|r| r["price"].as_f64().expect("price"))
        .collect();
    assert!(prices.windows(2).all(|w| w[0] >= w[1]), "{prices:?}");
    assert!(rows.iter().all(|r| r["quantity"].as_u64() > Some(30)));
    assert!(rows.iter().all(|r| {
        r["city"]
            .as_str()
            .is_some_and(|c| c.to_lowercase().contains('o'))
    }));
    eprintln!("two calls over 1,000,000 rows took {:?}", started.elapsed());
}

#[test]
fn a_malformed_filter_is_invalid_input() {
    let err = call(json!(0), json!(20), json!([]), json!("{price} frob 3")).expect_err("rejected");
    match err {
        CallbackError::InvalidInput(message) => {
            assert!(
                message.contains("position 8") && message.contains("frob"),
                "{message}"
            );
        }
        other => panic!("expected invalid input, got {other:?}"),
    }
}
