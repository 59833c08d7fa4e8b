//! The cost of signing in and of checking a session on every request.
//!
//! ```text
//! TESSERA_TEST_REDIS_URL=redis://127.0.0.1:6379/ cargo bench -p platform --bench auth
//! ```
//!
//! 1. argon2id: one `verify` of the right and of a wrong password with the parameters the
//!    platform hashes with, beside one SHA-256 of the same input as the baseline.
//! 2. The per-request session check through the real router: `GET /healthz` without a
//!    cookie (the baseline: the session layer finds nothing to load) against the same
//!    request carrying a signed-in session cookie, with sessions in the database (SQLite)
//!    and in Redis. The difference is what a signed-in request pays: loading the session,
//!    the user's epoch, record and memberships, and saving the renewed idle expiry.
//!
//! Figures are medians and p99 of `AUTH_BENCH_REQUESTS` (default 2,000) requests; ratios
//! are against the baseline of the same run, since these machines are shared and noisy.

use std::error::Error;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use platform::config::{Config, LimitsConfig};
use platform::state::App;
use platform::store::Change;
use sha2::Digest;
use tower::ServiceExt;

type BenchResult<T = ()> = Result<T, Box<dyn Error>>;

const PASSWORD: &str = "correct horse battery staple";

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn summary(mut times: Vec<Duration>) -> (Duration, Duration) {
    times.sort();
    (percentile(&times, 0.5), percentile(&times, 0.99))
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn argon2() {
    let hash = platform::auth::password::hash(PASSWORD).expect("hash");
    let rounds = 30;
    let mut right = Vec::new();
    let mut wrong = Vec::new();
    let mut sha = Vec::new();
    for _ in 0..rounds {
        let t = Instant::now();
        assert!(platform::auth::password::verify(PASSWORD, &hash));
        right.push(t.elapsed());
        let t = Instant::now();
        assert!(!platform::auth::password::verify("not the password", &hash));
        wrong.push(t.elapsed());
        let t = Instant::now();
        std::hint::black_box(sha2::Sha256::digest(std::hint::black_box(PASSWORD)));
        sha.push(t.elapsed());
    }
    let (right, _) = summary(right);
    let (wrong, _) = summary(wrong);
    let (sha, _) = summary(sha);
    println!(
        "argon2id verify ({hash_head}…): right password p50 {:.1} ms, wrong password p50 {:.1} ms \
         ({rounds} rounds); SHA-256 of the same input p50 {:.2} µs, argon2id/SHA-256 {:.0}×",
        right.as_secs_f64() * 1e3,
        wrong.as_secs_f64() * 1e3,
        micros(sha),
        right.as_secs_f64() / sha.as_secs_f64().max(1e-9),
        hash_head = hash.split('$').take(4).collect::<Vec<_>>().join("$")
    );
}

async fn config(dir: &std::path::Path, redis_url: Option<String>) -> Config {
    let repo = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    Config {
        listen: "127.0.0.1:0".parse().expect("address"),
        data_dir: dir.to_path_buf(),
        component_cache_dir: None,
        database_url: format!("sqlite://{}", dir.join("tessera.db").display()),
        demo_dir: dir.join("none"),
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
        public_url: "http://127.0.0.1:8080".to_owned(),
        apps_origin: None,
        secret_key: None,
        secret_key_file: dir.join("secret.key"),
        cluster: Default::default(),
        data_sources: Default::default(),
        metrics: Default::default(),
        log: Default::default(),
        redis_url,
    }
}

async fn call(
    router: &Router,
    uri: &str,
    cookie: Option<&str>,
    form: Option<String>,
) -> BenchResult<(StatusCode, Vec<String>, String)> {
    let mut request = Request::builder()
        .uri(uri)
        .extension(axum::extract::ConnectInfo(std::net::SocketAddr::from((
            [127, 0, 0, 1],
            40000,
        ))));
    if let Some(cookie) = cookie {
        request = request.header(header::COOKIE, cookie);
    }
    let body = match form {
        Some(form) => {
            request = request
                .method("POST")
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
            Body::from(form)
        }
        None => Body::empty(),
    };
    let response = router.clone().oneshot(request.body(body)?).await?;
    let status = response.status();
    let cookies = response
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or_default().to_owned())
        .collect();
    let body = response.into_body().collect().await?.to_bytes();
    Ok((status, cookies, String::from_utf8_lossy(&body).into_owned()))
}

/// Signs in through `/login` and returns the session cookie.
async fn sign_in(router: &Router) -> BenchResult<String> {
    let (_, cookies, page) = call(router, "/login", None, None).await?;
    let anonymous = cookies.first().ok_or("no cookie from /login")?.clone();
    let csrf = page
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .ok_or("no CSRF field")?;
    let form = format!(
        "csrf={csrf}&email=bench%40example.org&password={}&next=%2F",
        PASSWORD.replace(' ', "+")
    );
    let (status, cookies, _) = call(router, "/login", Some(&anonymous), Some(form)).await?;
    if status != StatusCode::SEE_OTHER {
        return Err(format!("sign-in answered {status}").into());
    }
    Ok(cookies.first().ok_or("no rotated cookie")?.clone())
}

async fn measure(
    router: &Router,
    cookie: Option<&str>,
    requests: usize,
) -> BenchResult<Vec<Duration>> {
    let mut times = Vec::with_capacity(requests);
    for _ in 0..requests {
        let started = Instant::now();
        let (status, _, _) = call(router, "/healthz", cookie, None).await?;
        times.push(started.elapsed());
        assert_eq!(status, StatusCode::OK);
    }
    Ok(times)
}

async fn sessions(redis_url: Option<String>, requests: usize) -> BenchResult {
    let store_name = if redis_url.is_some() {
        "Redis"
    } else {
        "database (SQLite)"
    };
    let dir = tempfile::tempdir()?;
    let state = App::start(config(dir.path(), redis_url).await).await?;
    let change = Change {
        actor: "bench",
        remote_addr: None,
        at: platform::clock::Clock::now_millis(&platform::clock::SystemClock),
    };
    platform::admin::create_user(
        &state.store,
        "bench@example.org",
        Some(PASSWORD),
        false,
        &change,
    )
    .await?;
    let router = platform::http::router(state.clone());
    let cookie = sign_in(&router).await?;
    // Warm up both paths, then interleave the measured runs in blocks.
    measure(&router, None, 200).await?;
    measure(&router, Some(&cookie), 200).await?;
    let mut anonymous = Vec::new();
    let mut signed_in = Vec::new();
    for _ in 0..10 {
        anonymous.extend(measure(&router, None, requests / 10).await?);
        signed_in.extend(measure(&router, Some(&cookie), requests / 10).await?);
    }
    let (a50, a99) = summary(anonymous);
    let (s50, s99) = summary(signed_in);
    println!(
        "session check, {store_name}: anonymous GET /healthz p50 {:.0} µs (p99 {:.0}); \
         signed in p50 {:.0} µs (p99 {:.0}); the check costs {:.0} µs at p50, {:.1}× the baseline",
        micros(a50),
        micros(a99),
        micros(s50),
        micros(s99),
        micros(s50.saturating_sub(a50)),
        s50.as_secs_f64() / a50.as_secs_f64().max(1e-9)
    );
    state.store.close().await;
    Ok(())
}

#[tokio::main]
async fn main() -> BenchResult {
    let requests = std::env::var("AUTH_BENCH_REQUESTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000);
    argon2();
    sessions(None, requests).await?;
    match std::env::var("TESSERA_TEST_REDIS_URL") {
        Ok(url) => sessions(Some(url), requests).await?,
        Err(_) => println!("session check, Redis: skipped (set TESSERA_TEST_REDIS_URL)"),
    }
    Ok(())
}
