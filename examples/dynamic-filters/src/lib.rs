//! Dynamic filters: pattern-matching filter cards added and removed at run time.
//!
//! Each card filters a small table of orders by region. Three callbacks show Dash's
//! pattern-matching ids end to end: the card list reacts to the add button and to `ALL`
//! remove buttons, a `MATCH` callback labels each card from its own dropdown, and an `ALL`
//! callback summarises every card's choice. The orders are generated (splitmix64, seed 7)
//! so the numbers are the same on every run.

use std::sync::OnceLock;

use sdk::{ALL, App, Callback, Component, Input, MATCH, Output, PreventUpdate, State, dcc, html};
use serde_json::{Value, json};

/// The regions an order can come from, in the order of their codes.
pub const REGIONS: [&str; 6] = ["North", "South", "East", "West", "Central", "Pacific"];
/// How many orders the table holds.
pub const ORDERS: usize = 2_000;

/// One order: a region code and its revenue in whole dollars.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Order {
    /// Index into [`REGIONS`].
    pub region: usize,
    /// Revenue in dollars.
    pub revenue: u64,
}

/// The order table, generated once per instance.
pub fn orders() -> &'static [Order] {
    static ORDERS_TABLE: OnceLock<Vec<Order>> = OnceLock::new();
    ORDERS_TABLE.get_or_init(|| {
        let mut state: u64 = 7;
        let mut next = || {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        };
        (0..ORDERS)
            .map(|_| Order {
                region: (next() % REGIONS.len() as u64) as usize,
                revenue: 10 + next() % 990,
            })
            .collect()
    })
}

/// Orders and revenue of the regions named in `regions` (all orders when it is empty).
pub fn totals(regions: &[&str]) -> (usize, u64) {
    orders()
        .iter()
        .filter(|order| regions.is_empty() || regions.contains(&REGIONS[order.region]))
        .fold((0, 0), |(count, revenue), order| {
            (count + 1, revenue + order.revenue)
        })
}

/// A card's id of the given kind: `{"type": kind, "index": index}`.
fn card_id(kind: &str, index: &Value) -> Value {
    json!({"type": kind, "index": index})
}

/// One filter card holding its dropdown (set to `choice`), its label and a remove button.
pub fn card(index: &Value, choice: &Value) -> Component {
    html::div()
        .id(card_id("filter-card", index))
        .class_name("filter-card")
        .style(json!({"border": "1px solid #ccc", "padding": "8px", "margin": "8px 0"}))
        .children((
            html::div().id(card_id("filter-label", index)),
            dcc::dropdown()
                .id(card_id("filter-dropdown", index))
                .options(REGIONS)
                .value(choice.clone())
                .placeholder("Any region"),
            html::button()
                .id(card_id("remove-filter", index))
                .children("Remove"),
        ))
}

/// Build the app: an add button, the card container and the summary.
pub fn app() -> App {
    App::new("Dynamic filters")
        .layout(
            html::div().children((
                html::h2().children("Dynamic filters"),
                html::button().id("add-filter").children("Add filter"),
                html::div()
                    .id("filter-cards")
                    .children(Vec::<Component>::new()),
                html::div().id("summary"),
            )),
        )
        .register(
            Callback::new(
                Output::new("filter-cards", "children"),
                [
                    Input::new("add-filter", "n_clicks"),
                    Input::new(json!({"type": "remove-filter", "index": ALL}), "n_clicks"),
                ],
                State::new(json!({"type": "filter-dropdown", "index": ALL}), "value"),
                |ctx| {
                    // The cards as they are: each dropdown's id index and its value.
                    let mut cards: Vec<(Value, Value)> = ctx.states_list()[0]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|prop| {
                            let value = prop.get("value").cloned().unwrap_or(Value::Null);
                            (prop["id"]["index"].clone(), value)
                        })
                        .collect();
                    match ctx.triggered_id() {
                        Some(Value::String(id)) if id == "add-filter" => {
                            let clicks: Option<u64> = ctx.input("add-filter")?;
                            cards.push((json!(clicks.unwrap_or(1)), Value::Null));
                        }
                        Some(Value::Object(id)) => {
                            // A remove button: only a real click (not a fresh button) counts.
                            let clicked =
                                ctx.triggered_prop_ids().first().is_some_and(|_| {
                                    ctx.inputs_list()[1].as_array().into_iter().flatten().any(
                                        |prop| {
                                            prop["id"] == Value::Object(id.clone())
                                                && prop.get("value").is_some_and(|v| !v.is_null())
                                        },
                                    )
                                });
                            if !clicked {
                                Err(PreventUpdate)?;
                            }
                            cards.retain(|(index, _)| Some(index) != id.get("index"));
                        }
                        _ => Err(PreventUpdate)?,
                    }
                    Ok(cards
                        .iter()
                        .map(|(index, choice)| card(index, choice))
                        .collect::<Vec<_>>())
                },
            )
            .prevent_initial_call(true),
        )
        .callback(
            Output::new(json!({"type": "filter-label", "index": MATCH}), "children"),
            Input::new(json!({"type": "filter-dropdown", "index": MATCH}), "value"),
            (),
            |ctx| {
                let choice: Option<String> = ctx.input(0)?;
                let index = ctx
                    .outputs()
                    .first()
                    .and_then(|output| output["id"].get("index"))
                    .map_or_else(String::new, Value::to_string);
                Ok(match choice {
                    Some(region) => {
                        let (count, _) = totals(&[region.as_str()]);
                        format!("Filter {index}: {region} ({count} orders)")
                    }
                    None => format!("Filter {index}: any region"),
                })
            },
        )
        .callback(
            Output::new("summary", "children"),
            Input::new(json!({"type": "filter-dropdown", "index": ALL}), "value"),
            (),
            |ctx| {
                let choices: Vec<Option<String>> = ctx.input(0)?;
                let mut regions: Vec<&str> = choices.iter().flatten().map(String::as_str).collect();
                regions.sort_unstable();
                regions.dedup();
                let (count, revenue) = totals(&regions);
                Ok(if regions.is_empty() {
                    format!(
                        "{} filter(s), none set: all {count} orders, revenue ${revenue}",
                        choices.len()
                    )
                } else {
                    format!(
                        "{} filter(s) on {}: {count} of {ORDERS} orders, revenue ${revenue}",
                        choices.len(),
                        regions.join(", ")
                    )
                })
            },
        )
}

sdk::export_app!(app);

#[cfg(test)]
mod tests {
    use super::*;
    use sdk::Outcome;

    fn dropdown(index: u64, value: Option<&str>) -> Value {
        let mut prop =
            json!({"id": card_id("filter-dropdown", &json!(index)), "property": "value"});
        if let Some(value) = value {
            prop["value"] = json!(value);
        }
        prop
    }

    fn run(id: &str, request: Value) -> Outcome {
        app()
            .run_callback(id, &request.to_string())
            .expect("the callback runs")
    }

    fn outputs(outcome: Outcome) -> Value {
        match outcome {
            Outcome::Outputs(json) => serde_json::from_str(&json).expect("outputs are JSON"),
            Outcome::PreventUpdate => panic!("the update was prevented"),
        }
    }

    const CARDS: &str = "filter-cards.children";
    const SUMMARY: &str = "summary.children";

    fn cards_request(add: Option<u64>, removes: Value, dropdowns: Value, changed: &str) -> Value {
        let mut add_prop = json!({"id": "add-filter", "property": "n_clicks"});
        if let Some(add) = add {
            add_prop["value"] = json!(add);
        }
        json!({
            "outputs": [{"id": "filter-cards", "property": "children"}],
            "inputs": [add_prop, removes],
            "state": [dropdowns],
            "changed_prop_ids": [changed],
        })
    }

    #[test]
    fn totals_split_the_table_by_region() {
        let (all, _) = totals(&[]);
        assert_eq!(all, ORDERS);
        let by_region: usize = REGIONS.iter().map(|region| totals(&[region]).0).sum();
        assert_eq!(by_region, ORDERS);
        assert!(totals(&["North"]).0 > 0);
    }

    #[test]
    fn add_appends_a_card_and_keeps_the_choices() {
        let request = cards_request(
            Some(2),
            json!([{"id": card_id("remove-filter", &json!(1)), "property": "n_clicks"}]),
            json!([dropdown(1, Some("West"))]),
            "add-filter.n_clicks",
        );
        let cards = outputs(run(CARDS, request));
        let cards = cards[0].as_array().expect("a list of cards");
        assert_eq!(cards.len(), 2);
        let first_dropdown = &cards[0]["props"]["children"][1]["props"];
        assert_eq!(first_dropdown["value"], json!("West"));
        assert_eq!(
            cards[1]["props"]["id"],
            json!({"type": "filter-card", "index": 2})
        );
    }

    #[test]
    fn remove_drops_the_clicked_card_and_a_fresh_button_changes_nothing() {
        let removes = json!([
            {"id": card_id("remove-filter", &json!(1)), "property": "n_clicks"},
            {"id": card_id("remove-filter", &json!(2)), "property": "n_clicks", "value": 1}
        ]);
        let dropdowns = json!([dropdown(1, Some("West")), dropdown(2, None)]);
        let clicked = r#"{"index":2,"type":"remove-filter"}.n_clicks"#;
        let cards = outputs(run(
            CARDS,
            cards_request(Some(2), removes.clone(), dropdowns.clone(), clicked),
        ));
        assert_eq!(cards[0].as_array().map(Vec::len), Some(1));
        let fresh = r#"{"index":1,"type":"remove-filter"}.n_clicks"#;
        assert_eq!(
            run(CARDS, cards_request(Some(2), removes, dropdowns, fresh)),
            Outcome::PreventUpdate
        );
    }

    #[test]
    fn label_and_summary_follow_the_dropdowns() {
        let label = r#"{"index":["MATCH"],"type":"filter-label"}.children"#;
        let request = json!({
            "outputs": [{"id": card_id("filter-label", &json!(3)), "property": "children"}],
            "inputs": [dropdown(3, Some("North"))],
        });
        let (north, _) = totals(&["North"]);
        assert_eq!(
            outputs(run(label, request)),
            json!([format!("Filter 3: North ({north} orders)")])
        );
        let request = json!({
            "inputs": [[dropdown(1, Some("North")), dropdown(2, None), dropdown(3, Some("North"))]],
        });
        let (_, revenue) = totals(&["North"]);
        assert_eq!(
            outputs(run(SUMMARY, request)),
            json!([format!(
                "3 filter(s) on North: {north} of 2000 orders, revenue ${revenue}"
            )])
        );
    }
}
