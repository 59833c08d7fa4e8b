//! The console's page-time benchmark: the pages an admin and an author open, through the
//! real router with a real signed-in session (cookie, session record, CSRF token), at
//! 10,000 live apps in one tenant (and 100 more tenants, 200,000 audit rows), on SQLite
//! and on PostgreSQL. Server time only: from the request entering the router to the last
//! byte of the rendered page.
//!
//! ```text
//! TESSERA_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/postgres \
//!     cargo bench -p platform --bench ui
//! ```
//!
//! Without the variable only SQLite runs. `UI_BENCH_REQUESTS` (default 200) sets the
//! requests per page. Pages with a cursor alternate between the first page and pages from
//! cursors spread over the whole list. A page over the 50 ms budget at p50 fails the run.

use std::error::Error;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use platform::config::{Config, LimitsConfig};
use platform::state::{App, AppState};
use platform::store::Change;
use platform::store::testing::{BulkSeed, TestDatabase, seed_bulk, seed_live_versions};
use tower::ServiceExt;

type BenchResult<T = ()> = Result<T, Box<dyn Error>>;

/// A measured page: who opens it, its name and the URI of its i-th request.
type Case = (&'static str, &'static str, Box<dyn Fn(usize) -> String>);

const APPS: i64 = 10_000;

const SEED: BulkSeed = BulkSeed {
    tenants: 100,
    apps: APPS + 1_000,
    big_tenant_apps: APPS,
    audit_rows: 200_000,
};

/// The issue's budget for a page's server time.
const BUDGET: Duration = Duration::from_millis(50);

const HOST: &str = "127.0.0.1:8080";
const PASSWORD: &str = "a bench password, long enough";

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

/// One request as a browser sends it: the platform's host, the peer, the session cookie.
async fn send(
    router: &axum::Router,
    cookie: Option<&str>,
    request: axum::http::request::Builder,
    body: Body,
) -> BenchResult<(StatusCode, Option<String>, String, Duration)> {
    let mut request = request.header(header::HOST, HOST);
    if let Some(cookie) = cookie {
        request = request.header(header::COOKIE, cookie);
    }
    let mut request = request.body(body)?;
    let peer: SocketAddr = "192.0.2.10:5000".parse()?;
    request.extensions_mut().insert(ConnectInfo(peer));
    let start = Instant::now();
    let response = router.clone().oneshot(request).await?;
    let status = response.status();
    let set_cookie = response
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("tessera_session="))
        .map(|c| c.split(';').next().unwrap_or_default().to_owned());
    let body = response.into_body().collect().await?.to_bytes();
    let elapsed = start.elapsed();
    Ok((
        status,
        set_cookie,
        String::from_utf8_lossy(&body).into_owned(),
        elapsed,
    ))
}

/// Sign `email` in through `/login` as a browser does; the session cookie.
async fn sign_in(router: &axum::Router, email: &str) -> BenchResult<String> {
    let (_, cookie, html, _) = send(router, None, Request::get("/login"), Body::empty()).await?;
    let cookie = cookie.ok_or("no session cookie from /login")?;
    let at = html.find("name=\"csrf\" value=\"").ok_or("no csrf field")? + 19;
    let csrf = &html[at..at + 64];
    let form = format!(
        "csrf={csrf}&email={}&password={}&next=%2F",
        email.replace('@', "%40"),
        PASSWORD.replace(' ', "+").replace(',', "%2C")
    );
    let (status, rotated, body, _) = send(
        router,
        Some(&cookie),
        Request::post("/login").header(header::CONTENT_TYPE, "application/x-www-form-urlencoded"),
        Body::from(form),
    )
    .await?;
    if status != StatusCode::SEE_OTHER {
        return Err(format!("signing in {email}: {status}: {body}").into());
    }
    Ok(rotated.unwrap_or(cookie))
}

async fn people(state: &AppState) -> BenchResult {
    let change = Change {
        actor: "bench",
        remote_addr: None,
        at: platform::clock::Clock::now_millis(&platform::clock::SystemClock),
    };
    for (email, role) in [
        ("admin@example.org", "owner"),
        ("author@example.org", "author"),
    ] {
        platform::admin::create_user(&state.store, email, Some(PASSWORD), false, &change).await?;
        platform::admin::grant(&state.store, email, "tenant-1", role, &change).await?;
    }
    Ok(())
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
        public_url: format!("http://{HOST}"),
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
    seed_live_versions(&state.store, 1).await?;
    println!(
        "{backend:?}: seeded {APPS} live apps in tenant-1 ({} apps, {} audit rows in all) in {:.1} s",
        SEED.apps,
        SEED.audit_rows,
        started.elapsed().as_secs_f64()
    );
    people(&state).await?;
    let router = platform::http::router(state.clone());
    let admin = sign_in(&router, "admin@example.org").await?;
    let author = sign_in(&router, "author@example.org").await?;
    let requests: usize = std::env::var("UI_BENCH_REQUESTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    // App names sort as text (`app-1`, `app-10`, …): any name is a cursor.
    let app = |i: usize| format!("app-{}", 1 + (i * 7919) % APPS as usize);
    let cases: Vec<Case> = vec![
        (
            "admin",
            "home: gallery",
            Box::new(move |i| match i % 2 {
                0 => "/".to_owned(),
                _ => format!("/?after=tenant-1/{}", app(i)),
            }),
        ),
        (
            "admin",
            "tenant's apps",
            Box::new(move |i| match i % 2 {
                0 => "/?tenant=tenant-1".to_owned(),
                _ => format!("/?tenant=tenant-1&after=tenant-1/{}", app(i)),
            }),
        ),
        (
            "admin",
            "search",
            Box::new(move |i| format!("/?q={}&tenant=tenant-1", 1 + (i * 31) % 999)),
        ),
        (
            "admin",
            "app page",
            Box::new(move |i| format!("/ui/tenant-1/apps/{}", app(i))),
        ),
        (
            "admin",
            "audit log",
            Box::new(|i| match i % 2 {
                0 => "/ui/tenant-1/audit".to_owned(),
                _ => format!(
                    "/ui/tenant-1/audit?before={}",
                    (i as i64 * 104_729) % SEED.audit_rows + 1
                ),
            }),
        ),
        (
            "admin",
            "members",
            Box::new(|_| "/ui/tenant-1/members".to_owned()),
        ),
        (
            "admin",
            "connections",
            Box::new(|_| "/ui/tenant-1/connections".to_owned()),
        ),
        (
            "author",
            "home: gallery",
            Box::new(move |i| match i % 2 {
                0 => "/".to_owned(),
                _ => format!("/?after=tenant-1/{}", app(i)),
            }),
        ),
        (
            "author",
            "app page",
            Box::new(move |i| format!("/ui/tenant-1/apps/{}", app(i))),
        ),
    ];
    let mut over = Vec::new();
    for (who, name, uri) in &cases {
        let cookie = if *who == "admin" { &admin } else { &author };
        let mut times = Vec::with_capacity(requests);
        for i in 0..requests + 20 {
            let uri = uri(i);
            let (status, _, body, elapsed) =
                send(&router, Some(cookie), Request::get(&uri), Body::empty()).await?;
            if status != StatusCode::OK {
                return Err(format!("{who} {name} {uri}: {status}: {body}").into());
            }
            // The first 20 warm the caches and the connection pool.
            if i >= 20 {
                times.push(elapsed);
            }
        }
        times.sort();
        let p50 = percentile(&times, 0.50);
        println!(
            "{backend:?}: {who}: {name}: p50 {:.2} ms, p99 {:.2} ms ({requests} requests)",
            p50.as_secs_f64() * 1e3,
            percentile(&times, 0.99).as_secs_f64() * 1e3,
        );
        if p50 > BUDGET {
            over.push(format!("{who} {name}"));
        }
    }
    state.store.close().await;
    if !over.is_empty() {
        return Err(format!("{backend:?}: over {BUDGET:?} at p50: {}", over.join(", ")).into());
    }
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
