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
                "the demo needs {} (build the examples with scripts/build-guests.sh hello sales-explorer dynamic-filters multi-page report-builder big-table, or set TESSERA_DEMO_DIR)",
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
    Ok(deployed)
}
