//! The synthetic sales table: how it is generated and how it is stored.
//!
//! The specification, which `check.py` implements independently:
//!
//! - 100,000 rows from splitmix64 seeded with 42. Each draw adds `0x9E3779B97F4A7C15` to
//!   the state and mixes it (`z ^= z >> 30; z *= 0xBF58476D1CE4E5B9; z ^= z >> 27;
//!   z *= 0x94D049BB133111EB; r = z ^ (z >> 31)`), all in wrapping 64-bit arithmetic.
//! - Per row, six draws in this order: region `r % 8`, product `r % 20`, year
//!   `2015 + r % 10`, month `1 + r % 12`, units `1 + r % 50`, unit price in cents
//!   `500 + r % 9501`. Revenue in cents is units × price.
//!
//! The table lives once per instance, built on first use. It is stored by column in
//! bytes, and only in the form the scan needs (see [`Sales`]), so a full scan touches
//! 600 KB. This module holds no query logic beyond per-region counts.

use std::sync::OnceLock;

/// Number of rows in the table.
pub const ROWS: usize = 100_000;
/// The seed of the generator.
pub const SEED: u64 = 42;
/// Region names, in the order of their codes.
pub const REGIONS: [&str; 8] = [
    "North",
    "South",
    "East",
    "West",
    "Central",
    "Northeast",
    "Southwest",
    "Pacific",
];
/// Product names, in the order of their codes.
pub const PRODUCTS: [&str; 20] = [
    "P01", "P02", "P03", "P04", "P05", "P06", "P07", "P08", "P09", "P10", "P11", "P12", "P13",
    "P14", "P15", "P16", "P17", "P18", "P19", "P20",
];
/// Month names, January first.
pub const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];
/// The first year with sales.
pub const FIRST_YEAR: i32 = 2015;
/// The last year with sales.
pub const LAST_YEAR: i32 = FIRST_YEAR + YEARS as i32 - 1;
/// Number of years with sales.
pub const YEARS: usize = 10;

/// The splitmix64 generator of the specification.
#[derive(Debug, Clone)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// A generator starting from `seed`.
    pub fn new(seed: u64) -> Self {
        SplitMix64 { state: seed }
    }

    /// The next 64-bit draw.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A draw reduced to `0..n`, as the specification does it (plain modulo).
    fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

/// The sales table in the form the scan reads.
///
/// A query filters on region and year and groups by month and product, so each pair is
/// folded into one byte: `group = region × 10 + (year − 2015)` (0..80, so one region's
/// years are contiguous and a year range is one range of groups) and
/// `cell = (month − 1) × 20 + product` (0..240, the index of the month × product total).
/// Revenue in cents fits a `u32` (at most 50 × 10,000).
#[derive(Debug, Clone)]
pub struct Sales {
    group: Vec<u8>,
    cell: Vec<u8>,
    revenue_cents: Vec<u32>,
    region_rows: [u32; REGIONS.len()],
}

/// The table of this instance, generated on first use.
pub fn sales() -> &'static Sales {
    static SALES: OnceLock<Sales> = OnceLock::new();
    SALES.get_or_init(|| Sales::generate(SEED, ROWS))
}

/// Narrow a value the specification bounds to a byte.
fn byte(value: u64) -> u8 {
    // The callers pass values below 240; saturating keeps this total without a panic path.
    u8::try_from(value).unwrap_or(u8::MAX)
}

impl Sales {
    /// Generate `rows` rows from `seed` as the specification says.
    pub fn generate(seed: u64, rows: usize) -> Self {
        let mut rng = SplitMix64::new(seed);
        let mut sales = Sales {
            group: Vec::with_capacity(rows),
            cell: Vec::with_capacity(rows),
            revenue_cents: Vec::with_capacity(rows),
            region_rows: [0; REGIONS.len()],
        };
        for _ in 0..rows {
            // The draw order is part of the specification: do not reorder.
            let region = rng.below(REGIONS.len() as u64);
            let product = rng.below(PRODUCTS.len() as u64);
            let year = rng.below(YEARS as u64);
            let month = rng.below(MONTHS.len() as u64);
            let units = 1 + rng.below(50);
            let price_cents = 500 + rng.below(9501);
            sales.group.push(byte(region * YEARS as u64 + year));
            sales
                .cell
                .push(byte(month * PRODUCTS.len() as u64 + product));
            // At most 50 × 10,000 = 500,000 cents, far below u32::MAX.
            sales
                .revenue_cents
                .push(u32::try_from(units * price_cents).unwrap_or(u32::MAX));
            sales.region_rows[usize::from(byte(region))] += 1;
        }
        sales
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.group.len()
    }

    /// Whether the table has no rows.
    pub fn is_empty(&self) -> bool {
        self.group.is_empty()
    }

    /// The code of a region name, if it is one.
    pub fn region_code(name: &str) -> Option<usize> {
        REGIONS.iter().position(|region| *region == name)
    }

    /// Number of rows of the region with code `region`.
    pub fn region_rows(&self, region: usize) -> u32 {
        self.region_rows.get(region).copied().unwrap_or(0)
    }

    /// The columns the scan reads: group, cell and revenue in cents, row by row.
    pub(crate) fn columns(&self) -> (&[u8], &[u8], &[u32]) {
        (&self.group, &self.cell, &self.revenue_cents)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix64_matches_the_reference_sequence() {
        // The first outputs for seed 0 published with the reference C implementation.
        let mut rng = SplitMix64::new(0);
        assert_eq!(rng.next_u64(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(rng.next_u64(), 0x6E78_9E6A_A1B9_65F4);
    }

    #[test]
    fn generated_table_has_every_row_and_sane_codes() {
        let sales = Sales::generate(SEED, 1_000);
        assert_eq!(sales.len(), 1_000);
        let (group, cell, revenue) = sales.columns();
        assert!(
            group
                .iter()
                .all(|&g| usize::from(g) < REGIONS.len() * YEARS)
        );
        assert!(
            cell.iter()
                .all(|&c| usize::from(c) < MONTHS.len() * PRODUCTS.len())
        );
        assert!(revenue.iter().all(|&r| (500..=500_000).contains(&r)));
        let counted: u32 = (0..REGIONS.len()).map(|r| sales.region_rows(r)).sum();
        assert_eq!(counted, 1_000);
    }

    #[test]
    fn last_year_is_2024() {
        assert_eq!(LAST_YEAR, 2024);
    }
}
