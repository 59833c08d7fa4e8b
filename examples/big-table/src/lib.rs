//! Big table: a DataTable paging, sorting and filtering 1,000,000 generated rows on the
//! server, so the browser only ever receives one page.
//!
//! The table's `page_action`, `sort_action` and `filter_action` are `"custom"`; one
//! callback reads `page_current`, `page_size`, `sort_by` and `filter_query` and answers
//! with that page's `data`, the `page_count` and a line counting the matching rows. A
//! malformed `filter_query` is the viewer's error: the SDK turns it into a 4xx.

pub mod data;
pub mod query;

use sdk::dash_table::{self, Column};
use sdk::{App, Input, Output, html};
use serde_json::json;

/// Rows per page unless the table says otherwise.
pub const PAGE_SIZE: usize = 20;

/// Build the app.
pub fn app() -> App {
    App::new("Big table")
        .layout(
            html::div().children((
                html::h2().children("Big table: 1,000,000 orders"),
                html::div().id("matches"),
                dash_table::data_table()
                    .id("table")
                    .columns([
                        Column::new("id", "Order").numeric(),
                        Column::new("city", "City").text(),
                        Column::new("product", "Product").text(),
                        Column::new("quantity", "Quantity").numeric(),
                        Column::new("price", "Price").numeric(),
                    ])
                    .data(json!([]))
                    .page_current(0)
                    .page_size(PAGE_SIZE)
                    .page_action("custom")
                    .sort_action("custom")
                    .sort_mode("multi")
                    .sort_by(json!([]))
                    .filter_action("custom")
                    .filter_query(""),
            )),
        )
        .callback(
            [
                Output::new("table", "data"),
                Output::new("table", "page_count"),
                Output::new("matches", "children"),
            ],
            [
                Input::new("table", "page_current"),
                Input::new("table", "page_size"),
                Input::new("table", "sort_by"),
                Input::new("table", "filter_query"),
            ],
            (),
            |ctx| {
                let request = query::Request::from_values(
                    ctx.input_value(0).as_ref(),
                    ctx.input_value(1).as_ref(),
                    ctx.input_value(2).as_ref(),
                    ctx.input_value(3).as_ref(),
                )?;
                let page = query::run(data::orders(), &request)?;
                let summary = format!("{} matching rows", page.matches);
                Ok((page.rows, page.page_count, summary))
            },
        )
}

sdk::export_app!(app);
