//! 1,000,000 generated orders, stored by column.
//!
//! Row `i` is a pure function of `i` (a SplitMix64 hash), so every instance and every test
//! sees the same table without storing it anywhere.

use std::sync::OnceLock;

/// Number of rows.
pub const ROWS: usize = 1_000_000;

/// The cities a row can name.
pub const CITIES: [&str; 12] = [
    "Amsterdam",
    "Berlin",
    "Cairo",
    "Delhi",
    "Lima",
    "Lisbon",
    "Madrid",
    "Nairobi",
    "Oslo",
    "Paris",
    "Seoul",
    "Tokyo",
];

/// The products a row can name.
pub const PRODUCTS: [&str; 6] = ["Anvil", "Bolt", "Crate", "Drill", "Engine", "Fuse"];

/// The table, one vector per column; row `i` is index `i` of each.
#[derive(Debug)]
pub struct Orders {
    /// Index into [`CITIES`].
    pub city: Vec<u8>,
    /// Index into [`PRODUCTS`].
    pub product: Vec<u8>,
    /// Units ordered, 1..=100.
    pub quantity: Vec<u16>,
    /// Price in cents, 100..=100_000.
    pub price_cents: Vec<u32>,
}

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// Generate `rows` rows.
pub fn generate(rows: usize) -> Orders {
    let mut orders = Orders {
        city: Vec::with_capacity(rows),
        product: Vec::with_capacity(rows),
        quantity: Vec::with_capacity(rows),
        price_cents: Vec::with_capacity(rows),
    };
    for i in 0..rows as u64 {
        let h = splitmix(i);
        orders.city.push((h % CITIES.len() as u64) as u8);
        orders
            .product
            .push(((h >> 8) % PRODUCTS.len() as u64) as u8);
        orders.quantity.push(1 + ((h >> 16) % 100) as u16);
        orders.price_cents.push(100 + ((h >> 32) % 99_901) as u32);
    }
    orders
}

/// The shared table, generated on first use.
pub fn orders() -> &'static Orders {
    static ORDERS: OnceLock<Orders> = OnceLock::new();
    ORDERS.get_or_init(|| generate(ROWS))
}

impl Orders {
    /// Number of rows.
    pub fn len(&self) -> usize {
        self.city.len()
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.city.is_empty()
    }
}
