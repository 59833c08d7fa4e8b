//! The sales table read from the tenant's data source `sales` (issue 14): the database
//! filters and groups, the app only turns the totals into a [`Report`].
//!
//! The demo tenant's source is a SQLite file of the same specification as [`crate::data`]
//! (`platform/src/demo.rs` writes it), so both paths draw the same chart. Where no source
//! `sales` is granted (a bare sandbox, a native test, another tenant), the callbacks use
//! the built-in table and the page says so ([`note`]); any other query failure is the
//! callback's error.

use sdk::frame::Frame;
use sdk::sql::{self, Param, QueryError};

use crate::data::{MONTHS, PRODUCTS, Sales};
use crate::report::{self, Report, Years};

/// The data source's name, as the administrator registered it.
pub const SOURCE: &str = "sales";

/// Revenue and rows per month × product of one region in a range of years. `CAST` keeps
/// PostgreSQL's `SUM(bigint)` (a numeric) an integer; SQLite and PostgreSQL both read it.
pub const REVENUE_SQL: &str = "SELECT month, product, \
     CAST(SUM(revenue_cents) AS BIGINT) AS cents, COUNT(*) AS n \
     FROM sales WHERE region = $1 AND year BETWEEN $2 AND $3 \
     GROUP BY month, product";

/// Rows of one region.
pub const REGION_ROWS_SQL: &str = "SELECT COUNT(*) AS n FROM sales WHERE region = $1";

/// Rows of the whole table, for the note under the chart.
pub const ALL_ROWS_SQL: &str = "SELECT COUNT(*) AS n FROM sales";

/// Where the rows came from.
#[derive(Debug, Clone, PartialEq)]
pub enum Rows<T> {
    /// From the data source.
    Source(T),
    /// From the built-in table, because the source is not granted or not reachable; the
    /// platform's message says which.
    BuiltIn(T, String),
}

impl<T> Rows<T> {
    /// The value, wherever it came from.
    pub fn into_value(self) -> T {
        match self {
            Rows::Source(value) | Rows::BuiltIn(value, _) => value,
        }
    }
}

/// Run `sql` on the source; `Ok(None)` when the app must fall back to the built-in table
/// (the source is not granted, or data sources are not available here).
fn query(sql: &str, params: &[Param]) -> sdk::Result<Result<Frame, String>> {
    match sql::query(SOURCE, sql, params) {
        Ok(ipc) => Frame::from_ipc(&ipc)
            .map(Ok)
            .map_err(|e| sdk::Error::failed(format!("the `{SOURCE}` answer: {e}"))),
        Err(QueryError::NotGranted(m) | QueryError::Unavailable(m)) => Ok(Err(m)),
        Err(e) => Err(sdk::Error::failed(format!(
            "the data source `{SOURCE}`: {e}"
        ))),
    }
}

/// The chart's report for `region` in `years`: grouped by the database, or scanned from
/// the built-in table when there is no source.
pub fn revenue(region: Option<&str>, years: Years) -> sdk::Result<Rows<Report>> {
    let Some(name) = region else {
        return Ok(Rows::Source(Report::from_totals(
            None,
            years,
            0,
            vec![0; MONTHS.len() * PRODUCTS.len()],
        )));
    };
    let params = [
        Param::from(name),
        Param::from(years.from()),
        Param::from(years.to()),
    ];
    match query(REVENUE_SQL, &params)? {
        Ok(frame) => report_of(&frame, name, years).map(Rows::Source),
        Err(why) => Ok(Rows::BuiltIn(
            report::revenue(crate::data::sales(), region, years),
            why,
        )),
    }
}

/// Turn the grouped rows (`month` 1–12, `product` `P01`–`P20`, `cents`, `n`) into a report.
fn report_of(frame: &Frame, region: &str, years: Years) -> sdk::Result<Report> {
    let mut cents = vec![0_u64; MONTHS.len() * PRODUCTS.len()];
    let mut rows = 0_u64;
    // An empty answer may carry untyped columns: nothing to read.
    if frame.num_rows() > 0 {
        let bad =
            |e: sdk::frame::FrameError| sdk::Error::failed(format!("the `{SOURCE}` answer: {e}"));
        let months = frame.numbers("month").map_err(bad)?;
        let products = frame.strings("product").map_err(bad)?;
        let totals = frame.numbers("cents").map_err(bad)?;
        let counts = frame.numbers("n").map_err(bad)?;
        for (((month, product), total), count) in
            months.iter().zip(&products).zip(&totals).zip(&counts)
        {
            // Rows outside the specification (another month or product) are not drawn but
            // still counted, as the title counts rows kept by the filter.
            rows += *count as u64;
            let Some(product) = PRODUCTS.iter().position(|p| p == product) else {
                continue;
            };
            if (1.0..=12.0).contains(month) {
                let month = *month as usize - 1;
                // Exact: totals stay far below 2^53 cents.
                cents[month * PRODUCTS.len() + product] += *total as u64;
            }
        }
    }
    Ok(Report::from_totals(Some(region), years, rows, cents))
}

/// The summary line for `region`.
pub fn summary(region: Option<&str>) -> sdk::Result<String> {
    let Some((name, _)) = region.and_then(|name| Sales::region_code(name).map(|c| (name, c)))
    else {
        return Ok(report::summary(crate::data::sales(), None));
    };
    match query(REGION_ROWS_SQL, &[Param::from(name)])? {
        Ok(frame) => {
            let count = first_number(&frame)?;
            Ok(format!("{name}: {count} rows"))
        }
        Err(_) => Ok(report::summary(crate::data::sales(), region)),
    }
}

/// The line under the chart saying where the rows come from, so a page without the
/// source says so rather than quietly showing the sample.
pub fn note() -> sdk::Result<String> {
    Ok(match query(ALL_ROWS_SQL, &[])? {
        Ok(frame) => format!(
            "Rows from the data source `{SOURCE}` ({} rows).",
            first_number(&frame)?
        ),
        Err(why) => format!(
            "No data source `{SOURCE}` answered ({why}): the chart and the summary show the \
             built-in sample table. An administrator registers `{SOURCE}` and grants it to \
             this app (`tessera sources grant`)."
        ),
    })
}

fn first_number(frame: &Frame) -> sdk::Result<u64> {
    frame
        .numbers("n")
        .ok()
        .and_then(|n| n.first().copied())
        .filter(|n| n.is_finite() && *n >= 0.0)
        // Exact: a row count.
        .map(|n| n as u64)
        .ok_or_else(|| sdk::Error::failed(format!("the `{SOURCE}` answer has no count")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn natively_the_built_in_table_is_used_and_the_note_says_why() {
        let years = Years::new(2015, 2024);
        match revenue(Some("North"), years).expect("renders") {
            Rows::BuiltIn(report, why) => {
                assert_eq!(
                    report,
                    report::revenue(crate::data::sales(), Some("North"), years)
                );
                assert!(why.contains("only available inside Tessera"), "{why}");
            }
            Rows::Source(_) => panic!("natively there is no data source"),
        }
        let note = note().expect("a note");
        assert!(
            note.starts_with("No data source `sales` answered"),
            "{note}"
        );
    }

    #[test]
    fn grouped_rows_become_the_report_of_a_scan() {
        // The same totals the database would answer, built from the built-in table.
        let sales = Sales::generate(5, 4_000);
        let years = Years::new(2016, 2020);
        let scanned = report::revenue(&sales, Some("West"), years);
        let mut csv = String::from("month,product,cents,n\n");
        let mut lines = 0;
        for month in 0..MONTHS.len() {
            for (product, name) in PRODUCTS.iter().enumerate() {
                let dollars = scanned.month_dollars(month)[product];
                if dollars > 0.0 {
                    // One row per cell; the count goes on the first line only.
                    let n = if lines == 0 { scanned.rows() } else { 0 };
                    csv.push_str(&format!(
                        "{},{name},{},{n}\n",
                        month + 1,
                        (dollars * 100.0).round() as u64
                    ));
                    lines += 1;
                }
            }
        }
        // A row of another product is counted but not drawn.
        csv.push_str("3,P99,500,0\n");
        let frame = Frame::from_csv_bytes(csv.as_bytes()).expect("csv");
        let report = report_of(&frame, "West", years).expect("a report");
        assert_eq!(report, scanned);
    }
}
