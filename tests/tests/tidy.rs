//! Repository invariants checked as ordinary tests ("tidy" tests): the crate boundaries of
//! ARCHITECTURE.md, matching migrations on both databases, SQL kept in the store, and a
//! project that stands on its own.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The dependency names of a crate's `[dependencies]` table.
fn dependencies(krate: &str) -> BTreeSet<String> {
    let text = std::fs::read_to_string(repo().join(krate).join("Cargo.toml")).expect("manifest");
    let manifest: toml::Table = toml::from_str(&text).expect("manifest parses");
    manifest
        .get("dependencies")
        .and_then(toml::Value::as_table)
        .map(|t| t.keys().cloned().collect())
        .unwrap_or_default()
}

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read_dir").flatten() {
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.')
            || name == "target"
            || name == "node_modules"
            || name == "artifacts"
        {
            continue;
        }
        if path.is_dir() {
            files_under(&path, out);
        } else {
            out.push(path);
        }
    }
}

#[test]
fn sdk_depends_only_on_what_builds_for_wasm() {
    // sha2 (pure Rust, builds for wasm32) computes Dash's `allow_duplicate` and
    // no-output callback ids, which are sha256 hashes of the inputs.
    // Behind the optional `frame` feature: the Arrow crates and parquet (pure Rust, built
    // for wasm32-wasip2 by the report builder), and bytes, which parquet's reader takes.
    let allowed: BTreeSet<String> = [
        "wit-bindgen",
        "serde",
        "serde_json",
        "plotly",
        "sha2",
        "arrow-array",
        "arrow-cast",
        "arrow-csv",
        "arrow-ipc",
        "arrow-ord",
        "arrow-schema",
        "arrow-select",
        "parquet",
        "bytes",
    ]
    .map(String::from)
    .into();
    let extra: Vec<_> = dependencies("sdk").difference(&allowed).cloned().collect();
    assert!(extra.is_empty(), "sdk may not depend on {extra:?}");
}

#[test]
fn sandbox_knows_nothing_of_http_databases_or_the_platform() {
    // tokio is allowed: wasmtime-wasi's stream traits are written in its types; so is
    // hyper, whose types wasmtime-wasi-http's are: guests' outbound requests go through
    // sandbox/src/outbound.rs (allowlist, addresses checked after DNS) and nowhere else.
    let forbidden = ["axum", "sqlx", "platform", "sdk", "redis", "reqwest"];
    let deps = dependencies("sandbox");
    for name in forbidden {
        assert!(!deps.contains(name), "sandbox may not depend on {name}");
    }
}

#[test]
fn platform_reaches_dashboards_only_through_the_sandbox() {
    let deps = dependencies("platform");
    assert!(deps.contains("sandbox"));
    for name in [
        "sdk",
        "wasmtime",
        "wasmtime-wasi",
        "hello",
        "sales-explorer",
    ] {
        assert!(!deps.contains(name), "platform may not depend on {name}");
    }
}

#[test]
fn migrations_match_on_sqlite_and_postgres() {
    let names = |backend: &str| -> BTreeSet<String> {
        std::fs::read_dir(repo().join("migrations").join(backend))
            .expect("migrations dir")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect()
    };
    let sqlite = names("sqlite");
    assert!(!sqlite.is_empty());
    assert_eq!(
        sqlite,
        names("postgres"),
        "every migration needs both dialects"
    );
}

#[test]
fn sql_lives_only_in_the_store() {
    let mut files = Vec::new();
    files_under(&repo().join("platform/src"), &mut files);
    // The platform's own database is reached only through the store. Tenants' data
    // sources (their databases, read-only, for their guests) are `datasources`' business,
    // and the demo writes its tenant's SQLite source file.
    let store = repo().join("platform/src/store");
    let datasources = repo().join("platform/src/datasources");
    let demo = repo().join("platform/src/demo.rs");
    let offenders: Vec<_> = files
        .iter()
        .filter(|f| !f.starts_with(&store) && !f.starts_with(&datasources) && **f != demo)
        .filter(|f| std::fs::read_to_string(f).is_ok_and(|t| t.contains("sqlx::")))
        .collect();
    assert!(
        offenders.is_empty(),
        "sqlx used outside platform/src/store: {offenders:?}"
    );
}

#[test]
fn the_project_never_reads_the_founders_notes() {
    let mut files = Vec::new();
    files_under(&repo(), &mut files);
    let needle = ["..", "shared", ""].join("/");
    let offenders: Vec<_> = files
        .iter()
        .filter(|f| std::fs::read_to_string(f).is_ok_and(|t| t.contains(&needle)))
        .collect();
    assert!(
        offenders.is_empty(),
        "files refer to {needle}: {offenders:?}"
    );
}
