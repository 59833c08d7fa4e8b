//! `tessera serve --demo`: the `demo` tenant with the example dashboards, deployed as
//! public apps. Idempotent: an example whose component is already live is left alone.

use anyhow::Context;

use crate::deploy::Deployed;
use crate::ids::Slug;
use crate::state::AppState;

/// App name and component file of each example, relative to the demo directory.
pub const EXAMPLES: &[(&str, &str)] = &[
    ("hello", "hello.wasm"),
    ("sales-explorer", "sales_explorer.wasm"),
    ("dynamic-filters", "dynamic_filters.wasm"),
    ("multi-page", "multi_page.wasm"),
    ("report-builder", "report_builder.wasm"),
    ("big-table", "big_table.wasm"),
    ("dash-features", "dash_features.wasm"),
    ("live-orders", "live_orders.wasm"),
];

/// The examples' sources: `{demo_dir}/example-sources` when it exists (the container image
/// ships them there; not `examples`, which cargo makes in its own output folder), else the
/// checkout this binary was built from. An example's `assets/` and
/// `data/` folders, when it has them, are deployed with it.
fn examples_dir(demo_dir: &std::path::Path) -> std::path::PathBuf {
    let shipped = demo_dir.join("example-sources");
    if shipped.is_dir() {
        return shipped;
    }
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples")
}

/// The demo tenant's slug.
pub const TENANT: &str = "demo";

/// Deploy every example that is not live yet; return what is live afterwards.
pub async fn install(state: &AppState) -> anyhow::Result<Vec<(String, Deployed)>> {
    let tenant = Slug::parse(TENANT)?;
    let mut deployed = Vec::new();
    for (name, file) in EXAMPLES {
        let path = state.config.demo_dir.join(file);
        let bytes = tokio::fs::read(&path).await.with_context(|| {
            format!(
                "the demo needs {} (build the examples with scripts/build-guests.sh hello sales-explorer dynamic-filters multi-page report-builder big-table dash-features live-orders, or set TESSERA_DEMO_DIR)",
                path.display()
            )
        })?;
        let app = Slug::parse(name)?;
        let examples = examples_dir(&state.config.demo_dir);
        let assets_dir = examples.join(name).join("assets");
        let assets = if assets_dir.is_dir() {
            crate::assets::read_dir(&assets_dir)
                .with_context(|| format!("the assets of the demo app {name}"))?
        } else {
            Vec::new()
        };
        // An example's `data/` folder travels with it, as a push would ship it.
        let data_dir = examples.join(name).join(crate::appdata::DEFAULT_FOLDER);
        let data = if data_dir.is_dir() {
            crate::appdata::read_dir(&data_dir, ".")
                .with_context(|| format!("the data folder of the demo app {name}"))?
        } else {
            Vec::new()
        };
        // The demo's apps are for anyone to open: public, said explicitly.
        let mut deployer = state.deployer();
        deployer.new_app_visibility = crate::tenancy::Visibility::Public;
        let result = deployer
            .deploy_with_files(
                &tenant,
                &app,
                bytes,
                crate::deploy::Shipped { assets, data },
                "demo",
                state.clock.now_millis(),
                true,
            )
            .await
            .with_context(|| format!("deploying the demo app {name}"))?;
        deployed.push(((*name).to_owned(), result));
    }
    install_sales_source(state)
        .await
        .context("installing the demo's data source `sales`")?;
    Ok(deployed)
}

/// The demo's data source: a SQLite file of generated sales, granted to the sales explorer.
pub const SALES_SOURCE: &str = "sales";

/// Rows of the demo's sales table.
pub const SALES_ROWS: u64 = 100_000;

/// Creates `{sources_dir}/demo/sales.db` when missing (and its `orders` table), registers
/// it as the demo tenant's source `sales` when it is not yet, and grants it to the sales
/// explorer and live orders. Idempotent.
pub async fn install_sales_source(state: &AppState) -> anyhow::Result<()> {
    let dir = crate::datasources::connection::tenant_dir(&state.config.sources_dir(), TENANT);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let file = dir.join("sales.db");
    if !file.exists() {
        write_sales_file(&file).await?;
    }
    // Also for a file an older demo wrote before the live-orders example existed.
    seed_orders(&file).await?;
    let tenant = state
        .store
        .tenant_by_slug(&Slug::parse(TENANT)?)
        .await?
        .context("the demo tenant is missing")?;
    let change = crate::store::Change {
        actor: "demo",
        remote_addr: None,
        at: state.clock.now_millis(),
    };
    if state
        .store
        .data_source(tenant.id, SALES_SOURCE)
        .await?
        .is_none()
    {
        let input = crate::datasources::ConnectionInput {
            path: Some("sales.db".to_owned()),
            ..Default::default()
        };
        state
            .datasources
            .put(
                &tenant,
                SALES_SOURCE,
                crate::datasources::Kind::Sqlite,
                &input,
                &Default::default(),
                &change,
            )
            .await?;
    }
    // Granted to the examples that read it, those the demo has deployed.
    for app in ["sales-explorer", "live-orders"] {
        if state
            .store
            .app_id(tenant.id, &Slug::parse(app)?)
            .await?
            .is_some()
        {
            state
                .datasources
                .set_grant(tenant.id, SALES_SOURCE, app, true, &change)
                .await?;
        }
    }
    Ok(())
}

/// Orders the demo seeds and keeps at most (the feed deletes the oldest beyond it).
pub const ORDERS_KEPT: i64 = 5_000;

/// The demo's `orders` table (in the `sales` source's file), which the live-orders
/// example polls: created with a few hundred orders when missing.
async fn seed_orders(file: &std::path::Path) -> anyhow::Result<()> {
    use sqlx::{Connection, Executor};
    let mut conn = orders_connection(file).await?;
    let existing: Option<String> = sqlx::query_scalar(
        "select name from sqlite_master where type = 'table' and name = 'orders'",
    )
    .fetch_optional(&mut conn)
    .await?;
    if existing.is_none() {
        let mut tx = conn.begin().await?;
        tx.execute(
            "create table orders (id integer primary key, placed_at_ms integer not null, \
             region text not null, amount_cents integer not null)",
        )
        .await?;
        for i in 0..500_u64 {
            insert_order(&mut tx, i).await?;
        }
        tx.commit().await?;
    }
    conn.close().await?;
    Ok(())
}

async fn orders_connection(file: &std::path::Path) -> anyhow::Result<sqlx::SqliteConnection> {
    use sqlx::Connection;
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(file)
        .busy_timeout(std::time::Duration::from_secs(5));
    Ok(sqlx::SqliteConnection::connect_with(&options).await?)
}

/// One synthetic order, drawn from splitmix64 seeded with `n`.
async fn insert_order(conn: &mut sqlx::SqliteConnection, n: u64) -> anyhow::Result<()> {
    const REGIONS: [&str; 4] = ["North", "South", "East", "West"];
    let mut state = n.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x5EED;
    let mut draw = |below: u64| {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        (z ^ (z >> 31)) % below
    };
    let region = REGIONS[usize::try_from(draw(4)).unwrap_or(0)];
    let amount = 500 + draw(50_000);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    sqlx::query("insert into orders (placed_at_ms, region, amount_cents) values ($1, $2, $3)")
        .bind(i64::try_from(now)?)
        .bind(region)
        .bind(i64::try_from(amount)?)
        .execute(conn)
        .await?;
    Ok(())
}

/// While the demo serves: one new order a second in the demo's `orders` table, so the
/// live-orders page has something to show; the oldest beyond [`ORDERS_KEPT`] are deleted.
/// A failed step is logged and the feed goes on.
pub async fn feed_orders(state: AppState) {
    let dir = crate::datasources::connection::tenant_dir(&state.config.sources_dir(), TENANT);
    let file = dir.join("sales.db");
    let mut ticks = tokio::time::interval(std::time::Duration::from_secs(1));
    let mut n: u64 = 1_000_000;
    loop {
        ticks.tick().await;
        n += 1;
        let step = async {
            let mut conn = orders_connection(&file).await?;
            insert_order(&mut conn, n).await?;
            sqlx::query("delete from orders where id <= (select max(id) from orders) - $1")
                .bind(ORDERS_KEPT)
                .execute(&mut conn)
                .await?;
            anyhow::Ok(())
        };
        if let Err(e) = step.await {
            tracing::warn!(error = %e, "the demo's orders feed skipped a step");
        }
    }
}

/// The sales table of the sales explorer's specification (examples/sales-explorer/src/
/// data.rs: splitmix64 seeded with 42, six draws per row), written to a new file and moved
/// into place, so a half-written file is never a source.
async fn write_sales_file(file: &std::path::Path) -> anyhow::Result<()> {
    use sqlx::{Connection, Executor};
    const REGIONS: [&str; 8] = [
        "North",
        "South",
        "East",
        "West",
        "Central",
        "Northeast",
        "Southwest",
        "Pacific",
    ];
    let partial = file.with_extension("db.partial");
    let _ = std::fs::remove_file(&partial);
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(&partial)
        .create_if_missing(true);
    let mut conn = sqlx::SqliteConnection::connect_with(&options).await?;
    conn.execute(
        "create table sales (region text not null, product text not null, \
         year integer not null, month integer not null, units integer not null, \
         price_cents integer not null, revenue_cents integer not null)",
    )
    .await?;
    let mut tx = conn.begin().await?;
    let mut state: u64 = 42;
    let mut draw = |n: u64| {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        (z ^ (z >> 31)) % n
    };
    for _ in 0..SALES_ROWS {
        let region = REGIONS[usize::try_from(draw(8)).unwrap_or(0)];
        let product = format!("P{:02}", draw(20) + 1);
        let year = 2015 + draw(10);
        let month = 1 + draw(12);
        let units = 1 + draw(50);
        let price = 500 + draw(9501);
        sqlx::query("insert into sales values ($1, $2, $3, $4, $5, $6, $7)")
            .bind(region)
            .bind(product)
            .bind(i64::try_from(year)?)
            .bind(i64::try_from(month)?)
            .bind(i64::try_from(units)?)
            .bind(i64::try_from(price)?)
            .bind(i64::try_from(units * price)?)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    conn.close().await?;
    std::fs::rename(&partial, file)
        .with_context(|| format!("moving the sales table to {}", file.display()))?;
    Ok(())
}
