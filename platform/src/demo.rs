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
];

/// The examples' sources in the checkout this binary was built from; an example's
/// `assets/` and `data/` folders there, when it has them, are deployed with it.
fn examples_dir() -> std::path::PathBuf {
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
                "the demo needs {} (build the examples with scripts/build-guests.sh hello sales-explorer dynamic-filters multi-page report-builder big-table dash-features, or set TESSERA_DEMO_DIR)",
                path.display()
            )
        })?;
        let app = Slug::parse(name)?;
        let assets_dir = examples_dir().join(name).join("assets");
        let assets = if assets_dir.is_dir() {
            crate::assets::read_dir(&assets_dir)
                .with_context(|| format!("the assets of the demo app {name}"))?
        } else {
            Vec::new()
        };
        // An example's `data/` folder travels with it, as a push would ship it.
        let data_dir = examples_dir()
            .join(name)
            .join(crate::appdata::DEFAULT_FOLDER);
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

/// Creates `{sources_dir}/demo/sales.db` when missing, registers it as the demo tenant's
/// source `sales` when it is not yet, and grants it to the sales explorer. Idempotent.
pub async fn install_sales_source(state: &AppState) -> anyhow::Result<()> {
    let dir = crate::datasources::connection::tenant_dir(&state.config.sources_dir(), TENANT);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let file = dir.join("sales.db");
    if !file.exists() {
        write_sales_file(&file).await?;
    }
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
    state
        .datasources
        .set_grant(tenant.id, SALES_SOURCE, "sales-explorer", true, &change)
        .await?;
    Ok(())
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
