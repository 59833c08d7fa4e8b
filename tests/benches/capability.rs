//! The data capability's cost (issue 14), all figures from one run against real PostgreSQL:
//!
//! a) the sales explorer's chart callback (`revenue-chart.figure`) as the browser asks for
//!    it — a `_dash-update-component` request through the platform's router, the guest
//!    querying the `sales` source (PostgreSQL, a read-only role) through `data.query` and
//!    decoding Arrow IPC — against the same `GROUP BY` run natively with sqlx and the same
//!    figure built and serialized natively in Rust. Every request has its own inputs (all
//!    8 regions × 55 year ranges, in turn), so each is a memo miss that runs the guest;
//! b) the same callback answered by the platform's memoization (8 inputs repeated), as a
//!    share of the throughput of a light callback (`hello`'s greeting, a guest call) under
//!    the same concurrency, with the hit ratio from the memo's counters;
//! c) the shared cache's `get`/`set` p50 (1 KiB) in process and through Redis (the same
//!    measurement as `tests/benches/cache.rs`, fewer operations).
//!
//! ```text
//! scripts/build-guests.sh hello sales-explorer
//! TESSERA_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test \
//! TESSERA_TEST_REDIS_URL=redis://127.0.0.1:6379 cargo bench -p tests --bench capability
//! ```
//!
//! `cargo bench` (argument `--bench`) runs the full scale (100,000 rows, a few hundred
//! requests per figure, about a minute); `cargo test --release --workspace --bench
//! capability` (and so `cargo test --release --workspace`) runs it once at a tiny scale as
//! a check that every path works, printing figures that mean nothing. PostgreSQL is
//! required (it fails saying so); without `TESSERA_TEST_REDIS_URL` the Redis line says it
//! was skipped. Targets (printed, never asserted: a shared machine): (a) ≤ 1.3×, (b) ≥ 80 %.

use std::error::Error;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use platform::cache::{Cache, CacheLimits, CacheScope};
use platform::config::{Config, DataSourcesConfig, LimitsConfig};
use platform::datasources::{ConnectionInput, Kind, SourceLimits};
use platform::ids::{AppId, Slug, TenantId};
use platform::state::{App, AppState};
use platform::store::testing::TestDatabase;
use sales_explorer::data::{MONTHS, PRODUCTS, REGIONS, SplitMix64};
use sales_explorer::report::{Report, Years};
use sales_explorer::source::REVENUE_SQL;
use serde_json::{Value, json};
use sqlx::{Executor, Row};
use tower::ServiceExt;

type BenchResult<T = ()> = Result<T, Box<dyn Error + Send + Sync>>;

/// How big a run is.
struct Scale {
    rows: usize,
    /// Requests per side in (a).
    chart_requests: usize,
    /// Requests per side in (b).
    throughput_requests: usize,
    /// Concurrent clients in (b).
    clients: usize,
    cache_ops: usize,
}

const FULL: Scale = Scale {
    rows: 100_000,
    // Under the 439 selections (a) cycles through, so none repeats (a memo hit).
    chart_requests: 400,
    throughput_requests: 2_000,
    clients: 4,
    cache_ops: 1_000,
};

/// A check that every path works, for the test suite.
const SMALL: Scale = Scale {
    rows: 2_000,
    chart_requests: 16,
    throughput_requests: 40,
    clients: 2,
    cache_ops: 20,
};

/// Where scripts/build-guests.sh leaves the components.
fn guest(file: &str) -> BenchResult<Vec<u8>> {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let path = target.join("wasm32-wasip2/guest").join(file);
    std::fs::read(&path).map_err(|e| {
        format!(
            "cannot read {} ({e}); build the guests first: scripts/build-guests.sh hello sales-explorer",
            path.display()
        )
        .into()
    })
}

/// Every (region, years) selection, in an order that never repeats a region twice in a row.
fn selections() -> Vec<(&'static str, Years)> {
    let mut ranges = Vec::new();
    for from in 2015..=2024 {
        for to in from..=2024 {
            ranges.push(Years::new(from, to));
        }
    }
    let mut out = Vec::new();
    for years in ranges {
        for region in REGIONS {
            out.push((region, years));
        }
    }
    out
}

fn chart_body(region: &str, years: Years) -> String {
    json!({
        "output": "revenue-chart.figure",
        "outputs": {"id": "revenue-chart", "property": "figure"},
        "inputs": [
            {"id": "region", "property": "value", "value": region},
            {"id": "year", "property": "value", "value": [years.from(), years.to()]},
        ],
        "changedPropIds": ["region.value"],
    })
    .to_string()
}

fn greeting_body(name: &str) -> String {
    json!({
        "output": "greeting.children",
        "outputs": {"id": "greeting", "property": "children"},
        "inputs": [{"id": "name", "property": "value", "value": name}],
        "changedPropIds": ["name.value"],
    })
    .to_string()
}

/// The fresh PostgreSQL database of the run: a `sales` table of `rows` rows of the sales
/// explorer's specification and a role that may only read it.
struct Warehouse {
    db: TestDatabase,
    role: String,
    password: String,
}

/// Columns of rows to insert at once.
#[derive(Default)]
struct Batch {
    region: Vec<String>,
    product: Vec<String>,
    year: Vec<i32>,
    month: Vec<i32>,
    units: Vec<i32>,
    price_cents: Vec<i32>,
    revenue_cents: Vec<i64>,
}

async fn warehouse(rows: usize) -> BenchResult<Warehouse> {
    let db = TestDatabase::postgres().await?.ok_or(
        "TESSERA_TEST_POSTGRES_URL is not set: this benchmark needs PostgreSQL \
         (postgres://postgres@127.0.0.1:5432/test on these machines)",
    )?;
    let pool = sqlx::PgPool::connect(&db.url).await?;
    pool.execute(
        "create table sales (region text not null, product text not null, \
         year int not null, month int not null, units int not null, \
         price_cents int not null, revenue_cents bigint not null)",
    )
    .await?;
    // The specification of examples/sales-explorer/src/data.rs, one batch per 10,000 rows.
    let mut rng = SplitMix64::new(sales_explorer::data::SEED);
    let mut left = rows;
    while left > 0 {
        let n = left.min(10_000);
        left -= n;
        let mut batch = Batch::default();
        for _ in 0..n {
            let draws: Vec<u64> = (0..6).map(|_| rng.next_u64()).collect();
            let units = 1 + draws[4] % 50;
            let price = 500 + draws[5] % 9501;
            batch
                .region
                .push(REGIONS[(draws[0] % 8) as usize].to_owned());
            batch
                .product
                .push(PRODUCTS[(draws[1] % 20) as usize].to_owned());
            batch.year.push(2015 + (draws[2] % 10) as i32);
            batch.month.push(1 + (draws[3] % 12) as i32);
            batch.units.push(units as i32);
            batch.price_cents.push(price as i32);
            batch.revenue_cents.push((units * price) as i64);
        }
        sqlx::query(
            "insert into sales select * from unnest($1::text[], $2::text[], $3::int[], \
             $4::int[], $5::int[], $6::int[], $7::bigint[])",
        )
        .bind(&batch.region)
        .bind(&batch.product)
        .bind(&batch.year)
        .bind(&batch.month)
        .bind(&batch.units)
        .bind(&batch.price_cents)
        .bind(&batch.revenue_cents)
        .execute(&pool)
        .await?;
    }
    pool.execute("analyze sales").await?;
    let suffix = format!("{:012x}", rand::random::<u64>() >> 16);
    let role = format!("tessera_bench_ro_{suffix}");
    let password = format!("pw-{suffix}");
    pool.execute(format!("create role {role} login password '{password}'").as_str())
        .await?;
    pool.execute(format!("grant select on sales to {role}").as_str())
        .await?;
    pool.close().await;
    Ok(Warehouse { db, role, password })
}

impl Warehouse {
    fn url_as_reader(&self) -> BenchResult<String> {
        let mut url = url::Url::parse(&self.db.url)?;
        url.set_username(&self.role).map_err(|()| "username")?;
        url.set_password(Some(&self.password))
            .map_err(|()| "password")?;
        Ok(url.to_string())
    }

    async fn drop_role(&self) -> BenchResult {
        let pool = sqlx::PgPool::connect(&self.db.url).await?;
        pool.execute(format!("drop owned by {}", self.role).as_str())
            .await?;
        pool.close().await;
        let admin = std::env::var(platform::store::testing::POSTGRES_URL_VAR)?;
        let pool = sqlx::PgPool::connect(&admin).await?;
        // The database goes when `db` drops; the role is cluster-wide.
        let _ = pool
            .execute(format!("drop role if exists {}", self.role).as_str())
            .await;
        pool.close().await;
        Ok(())
    }
}

/// A platform (SQLite store, in-process cache) serving `demo/sales-explorer` with the
/// source `sales` granted, and `demo/hello`.
async fn platform(dir: &std::path::Path, warehouse: &Warehouse) -> BenchResult<AppState> {
    let config = Config {
        listen: "127.0.0.1:0".parse()?,
        data_dir: dir.to_path_buf(),
        component_cache_dir: None,
        database_url: format!("sqlite://{}", dir.join("tessera.db").display()),
        demo_dir: dir.join("no-demo"),
        frontend_dir: std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../admin-ui/node_modules"),
        admin_email: "admin@localhost".to_owned(),
        max_component_bytes: 64 << 20,
        limits: LimitsConfig::default(),
        redis_url: None,
        jobs: Default::default(),
        sessions: Default::default(),
        builds: Default::default(),
        deploy: Default::default(),
        public_url: "http://127.0.0.1:8080".to_owned(),
        apps_origin: None,
        secret_key: None,
        secret_key_file: dir.join("secret.key"),
        cluster: Default::default(),
        // The warehouse is on loopback.
        data_sources: DataSourcesConfig {
            allow_private_hosts: true,
            ..Default::default()
        },
        outbound: Default::default(),
        cache: Default::default(),
        metrics: Default::default(),
        log: Default::default(),
    };
    let state = App::start(config).await?;
    let tenant = Slug::parse("demo")?;
    for (app, file) in [
        ("sales-explorer", "sales_explorer.wasm"),
        ("hello", "hello.wasm"),
    ] {
        let mut deployer = state.deployer();
        deployer.new_app_visibility = platform::tenancy::Visibility::Public;
        deployer
            .deploy(&tenant, &Slug::parse(app)?, guest(file)?, "bench", 1, false)
            .await?;
    }
    let demo = state
        .store
        .tenant_by_slug(&tenant)
        .await?
        .ok_or("the demo tenant")?;
    let url = url::Url::parse(&warehouse.db.url)?;
    let input = ConnectionInput {
        host: url.host_str().map(str::to_owned),
        port: url.port().or(Some(5432)),
        database: Some(url.path().trim_start_matches('/').to_owned()),
        user: Some(warehouse.role.clone()),
        password: Some(warehouse.password.clone()),
        tls: Some("disable".into()),
        ..Default::default()
    };
    let change = platform::store::Change {
        actor: "bench",
        remote_addr: None,
        at: 1,
    };
    state
        .datasources
        .put(
            &demo,
            "sales",
            Kind::Postgres,
            &input,
            &SourceLimits::default(),
            &change,
        )
        .await?;
    state
        .datasources
        .set_grant(demo.id, "sales", "sales-explorer", true, &change)
        .await?;
    Ok(state)
}

/// POST one callback to the router as the renderer does; the answer's body.
async fn post(state: &AppState, app: &str, body: String) -> BenchResult<Vec<u8>> {
    let path = format!("/apps/demo/{app}/_dash-update-component");
    let apps = state.origins.apps_url(&Slug::parse("demo")?);
    let host = apps
        .split_once("://")
        .map_or(apps.as_str(), |(_, h)| h)
        .to_owned();
    let request = Request::post(&path)
        .header(header::HOST, host)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body))?;
    let response = platform::http::router(state.clone())
        .oneshot(request)
        .await?;
    let status = response.status();
    let bytes = response.into_body().collect().await?.to_bytes().to_vec();
    if status != StatusCode::OK {
        return Err(format!("{path}: {status} {}", String::from_utf8_lossy(&bytes)).into());
    }
    Ok(bytes)
}

/// The native side of (a): the same SQL on a sqlx pool (as the reader role), the same
/// report and figure, serialized as the callback's answer would be.
async fn native_chart(pool: &sqlx::PgPool, region: &str, years: Years) -> BenchResult<Value> {
    let rows = sqlx::query(REVENUE_SQL)
        .bind(region)
        .bind(years.from())
        .bind(years.to())
        .fetch_all(pool)
        .await?;
    let mut cents = vec![0_u64; MONTHS.len() * PRODUCTS.len()];
    let mut kept = 0_u64;
    for row in rows {
        let month: i32 = row.try_get("month")?;
        let product: String = row.try_get("product")?;
        let total: i64 = row.try_get("cents")?;
        let n: i64 = row.try_get("n")?;
        kept += n as u64;
        if let Some(p) = PRODUCTS.iter().position(|name| *name == product) {
            cents[(month as usize - 1) * PRODUCTS.len() + p] += total as u64;
        }
    }
    let report = Report::from_totals(Some(region), years, kept, cents);
    let figure = sdk::Figure::from(report.figure());
    Ok(json!({"response": {"revenue-chart": {"figure": figure}}, "multi": true}))
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn mean(times: &[Duration]) -> Duration {
    times.iter().sum::<Duration>() / times.len().max(1) as u32
}

/// (a): one request at a time, each with its own selection.
async fn chart_through_capability_vs_native(
    state: &AppState,
    reader: &sqlx::PgPool,
    n: usize,
) -> BenchResult<(Vec<Duration>, Vec<Duration>)> {
    let selections = selections();
    // Warm both sides (instance, pools) on a selection the measurement does not use
    // twice: the memo would answer it.
    let (region, years) = selections[selections.len() - 1];
    let through: Value =
        serde_json::from_slice(&post(state, "sales-explorer", chart_body(region, years)).await?)?;
    let native = native_chart(reader, region, years).await?;
    let title =
        |v: &Value| v["response"]["revenue-chart"]["figure"]["layout"]["title"]["text"].clone();
    if title(&through) != title(&native)
        || through["response"]["revenue-chart"]["figure"]["data"]
            != native["response"]["revenue-chart"]["figure"]["data"]
    {
        return Err(format!(
            "the capability's chart differs from the native one: {} vs {}",
            title(&through),
            title(&native)
        )
        .into());
    }
    // The guest read the source, not its built-in table.
    let note_body = json!({
        "output": "source-note.children",
        "outputs": {"id": "source-note", "property": "children"},
        "inputs": [{"id": "region", "property": "value", "value": "North"}],
        "changedPropIds": ["region.value"],
    })
    .to_string();
    let note: Value = serde_json::from_slice(&post(state, "sales-explorer", note_body).await?)?;
    let note = note["response"]["source-note"]["children"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    if !note.starts_with("Rows from the data source `sales`") {
        return Err(format!("the sales explorer did not read the source: {note}").into());
    }
    let mut capability = Vec::with_capacity(n);
    let mut natively = Vec::with_capacity(n);
    for i in 0..n {
        let (region, years) = selections[i % (selections.len() - 1)];
        let started = Instant::now();
        let body = post(state, "sales-explorer", chart_body(region, years)).await?;
        capability.push(started.elapsed());
        std::hint::black_box(body);
        let started = Instant::now();
        let figure = native_chart(reader, region, years).await?;
        std::hint::black_box(serde_json::to_vec(&figure)?);
        natively.push(started.elapsed());
    }
    capability.sort();
    natively.sort();
    Ok((capability, natively))
}

/// Requests per second of `total` requests from `clients` concurrent clients, body `i`.
async fn throughput(
    state: &AppState,
    app: &'static str,
    total: usize,
    clients: usize,
    body: Arc<dyn Fn(usize) -> String + Send + Sync>,
) -> BenchResult<f64> {
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (state, next, body) = (state.clone(), next.clone(), body.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= total {
                    return BenchResult::Ok(());
                }
                post(&state, app, body(i)).await?;
            }
        }));
    }
    for task in tasks {
        task.await??;
    }
    Ok(total as f64 / started.elapsed().as_secs_f64())
}

/// (c): p50 of `set` and `get` of 1 KiB values.
async fn cache_p50(cache: &Cache, ops: usize) -> BenchResult<(Duration, Duration)> {
    let scope = CacheScope {
        tenant: TenantId(1),
        app: AppId(1),
    };
    let value = vec![7u8; 1024];
    let (mut sets, mut gets) = (Vec::new(), Vec::new());
    for i in 0..ops {
        let started = Instant::now();
        cache
            .set(scope, &format!("key-{i}"), &value, Duration::from_secs(60))
            .await?;
        sets.push(started.elapsed());
    }
    for i in 0..ops {
        let started = Instant::now();
        let got = cache.get(scope, &format!("key-{i}")).await?;
        gets.push(started.elapsed());
        if got.as_deref() != Some(&value[..]) {
            return Err("a cached value did not read back".into());
        }
    }
    sets.sort();
    gets.sort();
    Ok((percentile(&sets, 50.0), percentile(&gets, 50.0)))
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

fn us(d: Duration) -> String {
    format!("{:.1} µs", d.as_secs_f64() * 1e6)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> BenchResult {
    // `cargo bench` passes --bench; `cargo test` does not.
    let full = std::env::args().any(|a| a == "--bench");
    let scale = if full { FULL } else { SMALL };
    println!(
        "capability benchmark ({}): {} rows in PostgreSQL",
        if full {
            "full scale"
        } else {
            "small scale: a check, not figures"
        },
        scale.rows
    );
    let begun = Instant::now();
    let warehouse = warehouse(scale.rows).await?;
    let dir = tempfile::tempdir()?;
    let outcome = run(&scale, &warehouse, dir.path()).await;
    warehouse.drop_role().await?;
    outcome?;
    println!("  (whole run {:.1} s)", begun.elapsed().as_secs_f64());
    Ok(())
}

async fn run(scale: &Scale, warehouse: &Warehouse, dir: &std::path::Path) -> BenchResult {
    let state = platform(dir, warehouse).await?;
    let reader = sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .connect(&warehouse.url_as_reader()?)
        .await?;

    // (a)
    let (capability, natively) =
        chart_through_capability_vs_native(&state, &reader, scale.chart_requests).await?;
    println!(
        "  a) chart callback, {} requests: through the capability p50 {} mean {} | native sqlx + figure p50 {} mean {} | ratio p50 {:.2}x, mean {:.2}x (target <= 1.3x)",
        capability.len(),
        ms(percentile(&capability, 50.0)),
        ms(mean(&capability)),
        ms(percentile(&natively, 50.0)),
        ms(mean(&natively)),
        percentile(&capability, 50.0).as_secs_f64() / percentile(&natively, 50.0).as_secs_f64(),
        mean(&capability).as_secs_f64() / mean(&natively).as_secs_f64(),
    );

    // (b)
    let light = throughput(
        &state,
        "hello",
        scale.throughput_requests,
        scale.clients,
        Arc::new(|i| greeting_body(&format!("viewer {i}"))),
    )
    .await?;
    let before = state.memo.stats();
    let memoized = throughput(
        &state,
        "sales-explorer",
        scale.throughput_requests,
        scale.clients,
        Arc::new(|i| chart_body(REGIONS[i % REGIONS.len()], Years::new(2016, 2023))),
    )
    .await?;
    let after = state.memo.stats();
    let (hits, misses) = (after.hits - before.hits, after.misses - before.misses);
    println!(
        "  b) {} clients, {} requests each side: light callback (hello) {:.0}/s | memoized chart {:.0}/s = {:.0} % (target >= 80 %), hit ratio {:.1} % ({hits} hits, {misses} misses)",
        scale.clients,
        scale.throughput_requests,
        light,
        memoized,
        100.0 * memoized / light,
        100.0 * hits as f64 / (hits + misses).max(1) as f64,
    );
    if hits == 0 {
        return Err("the memoized chart was never answered from the cache".into());
    }

    // (c)
    let (set, get) = cache_p50(&Cache::in_process(CacheLimits::default()), scale.cache_ops).await?;
    println!(
        "  c) cache in process, {} ops of 1 KiB: set p50 {} get p50 {}",
        scale.cache_ops,
        us(set),
        us(get)
    );
    match std::env::var("TESSERA_TEST_REDIS_URL") {
        Ok(url) => {
            let namespace = format!("{:016x}", rand::random::<u64>());
            let cache = Cache::connect_redis(&url, &namespace, CacheLimits::default()).await?;
            let (set, get) = cache_p50(&cache, scale.cache_ops).await?;
            println!(
                "     cache in Redis,   {} ops of 1 KiB: set p50 {} get p50 {}",
                scale.cache_ops,
                us(set),
                us(get)
            );
        }
        Err(_) => println!("     cache in Redis: skipped, TESSERA_TEST_REDIS_URL is not set"),
    }
    reader.close().await;
    Ok(())
}
