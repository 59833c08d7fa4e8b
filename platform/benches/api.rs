//! The API listing benchmark: a page of 50 apps and a page of 50 audit entries through
//! the real router (token authentication, policy, store, JSON), over 10,000 tenants,
//! 100,000 apps and 1,000,000 audit rows, on SQLite and on PostgreSQL.
//!
//! ```text
//! TESSERA_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/postgres \
//!     cargo bench -p platform --bench api
//! ```
//!
//! Without the variable only SQLite runs. `API_BENCH_REQUESTS` (default 300) sets the
//! requests per measured case. Each case alternates between the first page and pages
//! from cursors spread over the whole list, so it is not one cached answer.

use std::error::Error;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use platform::config::{Config, LimitsConfig};
use platform::state::App;
use platform::store::Change;
use platform::store::testing::{BulkSeed, TestDatabase, seed_bulk};
use tower::ServiceExt;

type BenchResult<T = ()> = Result<T, Box<dyn Error>>;

/// A measured case: its name and the URI of its i-th request.
type Case = (&'static str, Box<dyn Fn(usize) -> String>);

const SEED: BulkSeed = BulkSeed {
    tenants: 10_000,
    apps: 100_000,
    big_tenant_apps: 2_000,
    audit_rows: 1_000_000,
};

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

async fn run(db: TestDatabase) -> BenchResult {
    let backend = db.backend;
    let dir = tempfile::tempdir()?;
    let repo = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let config = Config {
        listen: "127.0.0.1:0".parse()?,
        data_dir: dir.path().to_path_buf(),
        component_cache_dir: None,
        database_url: db.url.clone(),
        demo_dir: dir.path().join("none"),
        frontend_dir: repo.join("admin-ui/node_modules"),
        admin_email: "admin@localhost".to_owned(),
        max_component_bytes: 64 << 20,
        limits: LimitsConfig::default(),
        jobs: platform::config::JobsConfig::default(),
        outbound: platform::config::OutboundConfig::default(),
        cache: platform::config::CacheConfig::default(),
        sessions: platform::config::SessionsConfig::default(),
        builds: platform::config::BuildsConfig::default(),
        deploy: platform::config::DeployConfig::default(),
        redis_url: None,
        public_url: "http://127.0.0.1:8080".to_owned(),
        apps_origin: None,
        secret_key: None,
        secret_key_file: dir.path().join("secret.key"),
        cluster: Default::default(),
        data_sources: Default::default(),
        metrics: Default::default(),
        log: Default::default(),
    };
    let state = App::start(config).await?;
    let started = Instant::now();
    seed_bulk(&state.store, SEED).await?;
    println!(
        "{backend:?}: seeded {} tenants, {} apps, {} audit rows in {:.1} s",
        SEED.tenants,
        SEED.apps,
        SEED.audit_rows,
        started.elapsed().as_secs_f64()
    );
    let change = Change {
        actor: "bench",
        remote_addr: None,
        at: platform::clock::Clock::now_millis(&platform::clock::SystemClock),
    };
    platform::admin::create_user(&state.store, "owner@example.org", None, false, &change).await?;
    platform::admin::grant(
        &state.store,
        "owner@example.org",
        "tenant-1",
        "owner",
        &change,
    )
    .await?;
    let token = platform::admin::create_token(
        &state.store,
        "owner@example.org",
        "tenant-1",
        None,
        1,
        &change,
    )
    .await?
    .token;
    let router = platform::http::router(state.clone());
    let requests: usize = std::env::var("API_BENCH_REQUESTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    let cases: [Case; 2] = [
        (
            "apps page (50)",
            Box::new(|i| match i % 2 {
                0 => "/api/v1/tenants/tenant-1/apps?limit=50".to_owned(),
                // App names sort as text: `app-1…` then `app-10…`; any name is a cursor.
                _ => format!(
                    "/api/v1/tenants/tenant-1/apps?limit=50&cursor=app-{}",
                    1 + (i * 7919) % 1_900
                ),
            }),
        ),
        (
            "audit page (50)",
            Box::new(move |i| match i % 2 {
                0 => "/api/v1/tenants/tenant-1/audit?limit=50".to_owned(),
                _ => format!(
                    "/api/v1/tenants/tenant-1/audit?limit=50&cursor={}",
                    (i as i64 * 104_729) % (SEED.audit_rows) + 1
                ),
            }),
        ),
    ];
    for (name, uri) in &cases {
        let mut times = Vec::with_capacity(requests);
        for i in 0..requests + 20 {
            let request = Request::get(uri(i))
                .header(header::AUTHORIZATION, format!("Bearer {token}"))
                .body(Body::empty())?;
            let start = Instant::now();
            let response = router.clone().oneshot(request).await?;
            let status = response.status();
            let body = response.into_body().collect().await?.to_bytes();
            let elapsed = start.elapsed();
            if status != StatusCode::OK {
                return Err(format!("{name}: {status}: {}", String::from_utf8_lossy(&body)).into());
            }
            let page: serde_json::Value = serde_json::from_slice(&body)?;
            let items = page["items"].as_array().map_or(0, Vec::len);
            if i % 2 == 0 && items != 50 {
                return Err(format!("{name}: the first page has {items} items").into());
            }
            // The first 20 warm the caches and the connection pool.
            if i >= 20 {
                times.push(elapsed);
            }
        }
        times.sort();
        println!(
            "{backend:?}: {name}: p50 {:.2} ms, p99 {:.2} ms ({requests} requests)",
            percentile(&times, 0.50).as_secs_f64() * 1e3,
            percentile(&times, 0.99).as_secs_f64() * 1e3,
        );
    }
    state.store.close().await;
    Ok(())
}

#[tokio::main]
async fn main() -> BenchResult {
    let databases = TestDatabase::all().await?;
    for db in databases {
        run(db).await?;
    }
    Ok(())
}
