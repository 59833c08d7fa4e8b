//! Filter, sort and page the orders without touching more than needed: the filter is one
//! pass over the columns (text clauses are decided once per distinct value), the sort
//! selects the top `(page + 1) * size` rows before ordering only those, and only the rows
//! of the requested page become JSON.

use std::cmp::Ordering;

use sdk::table::{Cell, Clause, Direction, FilterQuery, Page, SortBy};
use sdk::{Error, Result};
use serde_json::{Value, json};

use crate::PAGE_SIZE;
use crate::data::{CITIES, Orders, PRODUCTS};

/// A column of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Col {
    /// The row number.
    Id,
    /// The city (text).
    City,
    /// The product (text).
    Product,
    /// Units ordered.
    Quantity,
    /// Unit price.
    Price,
}

impl Col {
    fn parse(id: &str) -> Result<Col> {
        Ok(match id {
            "id" => Col::Id,
            "city" => Col::City,
            "product" => Col::Product,
            "quantity" => Col::Quantity,
            "price" => Col::Price,
            other => return Err(Error::invalid_input(format!("no column `{other}`"))),
        })
    }

    /// A key that orders rows as the column's values order (names are stored sorted).
    fn key(self, orders: &Orders, row: usize) -> u64 {
        match self {
            Col::Id => row as u64,
            Col::City => u64::from(orders.city[row]),
            Col::Product => u64::from(orders.product[row]),
            Col::Quantity => u64::from(orders.quantity[row]),
            Col::Price => u64::from(orders.price_cents[row]),
        }
    }
}

/// What the table asked for, checked.
#[derive(Debug, Clone)]
pub struct Request {
    page: Page,
    sort: Vec<(Col, Direction)>,
    filter: Vec<(Col, Clause)>,
}

impl Request {
    /// Read the table's `page_current`, `page_size`, `sort_by` and `filter_query`.
    pub fn from_values(
        page_current: Option<&Value>,
        page_size: Option<&Value>,
        sort_by: Option<&Value>,
        filter_query: Option<&Value>,
    ) -> Result<Request> {
        let page = Page::from_values(page_current, page_size, PAGE_SIZE)?;
        let sort = SortBy::from_value(sort_by)?
            .0
            .into_iter()
            .map(|key| Ok((Col::parse(&key.column)?, key.direction)))
            .collect::<Result<_>>()?;
        let filter = FilterQuery::from_value(filter_query)?
            .clauses
            .into_iter()
            .map(|clause| Ok((Col::parse(&clause.column)?, clause)))
            .collect::<Result<_>>()?;
        Ok(Request { page, sort, filter })
    }
}

/// One page of the answer.
#[derive(Debug, Clone, PartialEq)]
pub struct PageOut {
    /// The page's rows, as DataTable `data`.
    pub rows: Vec<Value>,
    /// Pages the matching rows fill.
    pub page_count: usize,
    /// Rows matching the filter.
    pub matches: usize,
}

/// A row predicate compiled from one clause.
enum Test<'a> {
    /// Allowed city or product indices.
    City(Vec<bool>),
    Product(Vec<bool>),
    Number(Col, &'a Clause),
}

fn number(orders: &Orders, col: Col, row: usize) -> f64 {
    match col {
        Col::Price => f64::from(orders.price_cents[row]) / 100.0,
        other => other.key(orders, row) as f64,
    }
}

impl Test<'_> {
    fn passes(&self, orders: &Orders, row: usize) -> bool {
        match self {
            Test::City(allowed) => allowed[usize::from(orders.city[row])],
            Test::Product(allowed) => allowed[usize::from(orders.product[row])],
            Test::Number(col, clause) => clause.matches(Cell::Number(number(orders, *col, row))),
        }
    }
}

/// Filter, sort and page `orders` as `request` asks.
pub fn run(orders: &Orders, request: &Request) -> Result<PageOut> {
    let tests: Vec<Test<'_>> = request
        .filter
        .iter()
        .map(|(col, clause)| match col {
            Col::City => Test::City(
                CITIES
                    .iter()
                    .map(|c| clause.matches(Cell::Text(c)))
                    .collect(),
            ),
            Col::Product => Test::Product(
                PRODUCTS
                    .iter()
                    .map(|p| clause.matches(Cell::Text(p)))
                    .collect(),
            ),
            col => Test::Number(*col, clause),
        })
        .collect();
    let page = request.page;
    let rows: Vec<usize> = if tests.is_empty() && request.sort.is_empty() {
        // Neither filtered nor sorted: the page is a plain range of rows.
        let range = page.range(orders.len());
        return Ok(PageOut {
            rows: range.map(|row| to_json(orders, row)).collect(),
            page_count: page.count(orders.len()),
            matches: orders.len(),
        });
    } else {
        (0..orders.len())
            .filter(|&row| tests.iter().all(|test| test.passes(orders, row)))
            .collect()
    };
    let matches = rows.len();
    let range = page.range(matches);
    let chosen: Vec<usize> = if request.sort.is_empty() || range.is_empty() {
        rows[range].to_vec()
    } else {
        let mut rows = rows;
        let compare = |a: &usize, b: &usize| -> Ordering {
            for (col, direction) in &request.sort {
                let ordering = col.key(orders, *a).cmp(&col.key(orders, *b));
                let ordering = match direction {
                    Direction::Ascending => ordering,
                    Direction::Descending => ordering.reverse(),
                };
                if ordering != Ordering::Equal {
                    return ordering;
                }
            }
            a.cmp(b)
        };
        // Only the first `range.end` rows in sort order matter: select, then sort those.
        let top = &mut rows[..];
        if range.end < top.len() {
            top.select_nth_unstable_by(range.end - 1, compare);
        }
        let top = &mut top[..range.end];
        top.sort_unstable_by(compare);
        top[range.start..].to_vec()
    };
    Ok(PageOut {
        rows: chosen.into_iter().map(|row| to_json(orders, row)).collect(),
        page_count: page.count(matches),
        matches,
    })
}

fn to_json(orders: &Orders, row: usize) -> Value {
    json!({
        "id": row,
        "city": CITIES[usize::from(orders.city[row])],
        "product": PRODUCTS[usize::from(orders.product[row])],
        "quantity": orders.quantity[row],
        "price": f64::from(orders.price_cents[row]) / 100.0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::generate;

    fn request(page: u64, size: u64, sort: Value, filter: &str) -> Result<Request> {
        Request::from_values(
            Some(&json!(page)),
            Some(&json!(size)),
            Some(&sort),
            Some(&json!(filter)),
        )
    }

    fn ids(page: &PageOut) -> Vec<u64> {
        page.rows
            .iter()
            .map(|row| row["id"].as_u64().expect("id"))
            .collect()
    }

    #[test]
    fn pages_sorts_and_filters_like_a_full_sort_would() {
        let orders = generate(5000);
        let sort = json!([
            {"column_id": "city", "direction": "desc"},
            {"column_id": "price", "direction": "asc"},
        ]);
        let filter = "{quantity} s> 30 && {product} icontains r";
        // The reference: filter everything, sort everything, then slice.
        let mut expected: Vec<usize> = (0..orders.len())
            .filter(|&row| {
                orders.quantity[row] > 30
                    && "rR".chars().any(|r| {
                        PRODUCTS[usize::from(orders.product[row])]
                            .to_lowercase()
                            .contains(r)
                    })
            })
            .collect();
        expected.sort_by(|&a, &b| {
            orders.city[b]
                .cmp(&orders.city[a])
                .then(orders.price_cents[a].cmp(&orders.price_cents[b]))
                .then(a.cmp(&b))
        });
        for page_no in [0_u64, 1, 7, 1000] {
            let page = run(
                &orders,
                &request(page_no, 25, sort.clone(), filter).expect("ok"),
            )
            .expect("runs");
            let start = (page_no as usize * 25).min(expected.len());
            let end = (start + 25).min(expected.len());
            let want: Vec<u64> = expected[start..end].iter().map(|&r| r as u64).collect();
            assert_eq!(ids(&page), want, "page {page_no}");
            assert_eq!(page.matches, expected.len());
            assert_eq!(page.page_count, expected.len().div_ceil(25));
        }
    }

    #[test]
    fn unsorted_unfiltered_pages_are_ranges() {
        let orders = generate(1000);
        let page = run(&orders, &request(3, 10, json!([]), "").expect("ok")).expect("runs");
        assert_eq!(ids(&page), (30..40).collect::<Vec<_>>());
        assert_eq!(page.page_count, 100);
        let row = &page.rows[0];
        assert_eq!(row["city"], CITIES[usize::from(orders.city[30])]);
        assert_eq!(row["price"], f64::from(orders.price_cents[30]) / 100.0);
    }

    #[test]
    fn bad_requests_are_invalid_input() {
        for (sort, filter) in [
            (json!([]), "{quantity} s> "),
            (json!([]), "{nope} = 1"),
            (json!([]), "{quantity} > 1 || {price} < 2"),
            (json!([{"column_id": "nope", "direction": "asc"}]), ""),
            (json!("id"), ""),
        ] {
            let err = request(0, 10, sort, filter).expect_err("rejected");
            assert!(matches!(err, Error::InvalidInput(_)), "{err}");
        }
        assert!(request(0, 0, json!([]), "").is_err());
    }
}
