//! What the callbacks compute from the sales table: the revenue report behind the chart
//! and the one-line summary.
//!
//! Pure functions over [`Sales`]; the callbacks in the crate root only parse inputs and
//! call them, so benchmarks and tests can call them directly too.

use plotly::layout::{Axis, BarMode};
use plotly::{Bar, Layout, Plot};
use serde_json::Value;

use crate::data::{FIRST_YEAR, MONTHS, PRODUCTS, Sales, YEARS};

/// An inclusive range of years, `from <= to`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Years {
    from: i64,
    to: i64,
}

impl Years {
    /// The years `from..=to`; a reversed range is swapped rather than refused, because a
    /// range slider can legitimately hand its two ends over in either order.
    pub fn new(from: i64, to: i64) -> Self {
        Years {
            from: from.min(to),
            to: from.max(to),
        }
    }

    /// The first year.
    pub fn from(&self) -> i64 {
        self.from
    }

    /// The last year.
    pub fn to(&self) -> i64 {
        self.to
    }

    /// Read the `year.value` input: a `[from, to]` pair from the range slider, or a bare
    /// year (also accepted as a one-element list) meaning that year alone.
    ///
    /// # Errors
    ///
    /// [`sdk::Error::InvalidInput`] for anything else, including `null` and years with a
    /// fraction.
    pub fn from_input(value: Option<&Value>) -> sdk::Result<Self> {
        let refuse = |got: &Value| {
            sdk::Error::invalid_input(format!(
                "input `year.value` must be a year or a [from, to] pair of whole years, got {got}"
            ))
        };
        let value = value.unwrap_or(&Value::Null);
        let year = |v: &Value| {
            v.as_f64()
                .filter(|y| y.fract() == 0.0 && y.abs() < 1e9)
                // Exact: a whole number well within i64.
                .map(|y| y as i64)
                .ok_or_else(|| refuse(value))
        };
        match value {
            Value::Number(_) => year(value).map(|y| Years::new(y, y)),
            Value::Array(ends) => match ends.as_slice() {
                [only] => year(only).map(|y| Years::new(y, y)),
                [from, to] => Ok(Years::new(year(from)?, year(to)?)),
                _ => Err(refuse(value)),
            },
            _ => Err(refuse(value)),
        }
    }
}

/// Revenue of the kept rows per month × product, and how many rows were kept.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    region: String,
    years: Years,
    rows: u64,
    /// Cents, indexed by `month × 20 + product` (both from 0).
    cents: Vec<u64>,
}

/// Scan every row and total the revenue of `region` (by name) in `years`.
///
/// An unknown region, or none, keeps no rows; the report is still complete, all zeros.
pub fn revenue(sales: &Sales, region: Option<&str>, years: Years) -> Report {
    let mut cents = vec![0_u64; MONTHS.len() * PRODUCTS.len()];
    let mut rows = 0_u64;
    if let Some((low, span)) = region
        .and_then(Sales::region_code)
        .and_then(|code| group_range(code, years))
    {
        let (group, cell, revenue) = sales.columns();
        for ((&g, &c), &r) in group.iter().zip(cell).zip(revenue) {
            // One unsigned comparison tests `low <= g <= low + span`: below `low` wraps
            // around to a large value.
            if g.wrapping_sub(low) <= span {
                cents[usize::from(c)] += u64::from(r);
                rows += 1;
            }
        }
    }
    Report {
        region: region.unwrap_or("no region").to_owned(),
        years,
        rows,
        cents,
    }
}

/// The groups of `region` within `years`, as the first group and the span to the last;
/// `None` when the years miss the data entirely.
fn group_range(region: usize, years: Years) -> Option<(u8, u8)> {
    let first = i64::from(FIRST_YEAR);
    let last = first + YEARS as i64 - 1;
    let from = years.from().max(first);
    let to = years.to().min(last);
    if from > to {
        return None;
    }
    let base = region * YEARS;
    let low = base + usize::try_from(from - first).ok()?;
    let high = base + usize::try_from(to - first).ok()?;
    Some((u8::try_from(low).ok()?, u8::try_from(high - low).ok()?))
}

impl Report {
    /// A report of totals computed elsewhere (a database's `GROUP BY`): `cents` indexed by
    /// `month × 20 + product` (both from 0), as [`revenue`] fills it.
    pub fn from_totals(region: Option<&str>, years: Years, rows: u64, cents: Vec<u64>) -> Self {
        Report {
            region: region.unwrap_or("no region").to_owned(),
            years,
            rows,
            cents,
        }
    }

    /// Number of rows kept.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// The chart title.
    pub fn title(&self) -> String {
        format!(
            "Revenue by product, {} {}-{} ({} rows)",
            self.region,
            self.years.from(),
            self.years.to(),
            self.rows
        )
    }

    /// Revenue in dollars per product for `month` (0 = January).
    pub fn month_dollars(&self, month: usize) -> Vec<f64> {
        let start = month * PRODUCTS.len();
        self.cents
            .get(start..start + PRODUCTS.len())
            .unwrap_or_default()
            .iter()
            // Exact: totals stay far below 2^53 cents.
            .map(|&cents| cents as f64 / 100.0)
            .collect()
    }

    /// A stacked bar chart: one trace per month over the twenty products.
    pub fn figure(&self) -> Plot {
        let mut plot = Plot::new();
        for (month, name) in MONTHS.iter().enumerate() {
            plot.add_trace(Bar::new(PRODUCTS.to_vec(), self.month_dollars(month)).name(*name));
        }
        plot.set_layout(
            Layout::new()
                .title(self.title())
                .bar_mode(BarMode::Stack)
                .x_axis(Axis::new().title("Product"))
                .y_axis(Axis::new().title("Revenue (USD)")),
        );
        plot
    }
}

/// `"{region}: {count} rows"`, or `"No region selected"` when the region is unknown or
/// missing.
pub fn summary(sales: &Sales, region: Option<&str>) -> String {
    match region.and_then(|name| Sales::region_code(name).map(|code| (name, code))) {
        Some((name, code)) => format!("{name}: {} rows", sales.region_rows(code)),
        None => "No region selected".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::REGIONS;
    use serde_json::json;

    #[test]
    fn year_input_forms() {
        let parse = |v: Value| Years::from_input(Some(&v));
        assert_eq!(parse(json!([2016, 2018])), Ok(Years::new(2016, 2018)));
        assert_eq!(parse(json!([2018, 2016])), Ok(Years::new(2016, 2018)));
        assert_eq!(parse(json!(2019)), Ok(Years::new(2019, 2019)));
        assert_eq!(parse(json!([2019])), Ok(Years::new(2019, 2019)));
        assert_eq!(parse(json!(2019.0)), Ok(Years::new(2019, 2019)));
        assert_eq!(
            parse(json!("2019")),
            Err(sdk::Error::InvalidInput(
                "input `year.value` must be a year or a [from, to] pair of whole years, \
                 got \"2019\""
                    .into()
            ))
        );
        assert!(Years::from_input(None).is_err());
    }

    #[test]
    fn years_outside_the_data_keep_no_rows() {
        let sales = Sales::generate(1, 5_000);
        let report = revenue(&sales, Some("North"), Years::new(2030, 2040));
        assert_eq!(report.rows(), 0);
        let clipped = revenue(&sales, Some("North"), Years::new(1990, 2017));
        let inside = revenue(&sales, Some("North"), Years::new(2015, 2017));
        assert_eq!(clipped.rows(), inside.rows());
        assert!(inside.rows() > 0);
    }

    #[test]
    fn scan_agrees_with_a_plain_row_by_row_count() {
        // Regenerate rows the long way and compare one region-year cell by cell.
        let sales = Sales::generate(7, 3_000);
        let mut rng = crate::data::SplitMix64::new(7);
        let mut expected = vec![0_u64; 240];
        let mut rows = 0;
        for _ in 0..3_000 {
            let draws: Vec<u64> = (0..6).map(|_| rng.next_u64()).collect();
            let (region, product, year, month) = (
                draws[0] % 8,
                draws[1] % 20,
                2015 + draws[2] % 10,
                draws[3] % 12,
            );
            let cents = (1 + draws[4] % 50) * (500 + draws[5] % 9501);
            if region == 2 && (2017..=2019).contains(&year) {
                expected[(month * 20 + product) as usize] += cents;
                rows += 1;
            }
        }
        let report = revenue(&sales, Some("East"), Years::new(2017, 2019));
        assert_eq!(report.rows(), rows);
        assert_eq!(report.cents, expected);
    }

    #[test]
    fn summary_names_region_and_count() {
        let sales = Sales::generate(1, 100);
        let north = sales.region_rows(0);
        assert_eq!(
            summary(&sales, Some("North")),
            format!("North: {north} rows")
        );
        assert_eq!(summary(&sales, Some("north")), "No region selected");
        assert_eq!(summary(&sales, None), "No region selected");
    }

    #[test]
    fn all_regions_sum_to_every_row() {
        let sales = Sales::generate(3, 2_000);
        let total: u64 = REGIONS
            .iter()
            .map(|r| revenue(&sales, Some(r), Years::new(2015, 2024)).rows())
            .sum();
        assert_eq!(total, 2_000);
    }
}
