//! Operations endpoints (issue 16): `/readyz` follows the database and Redis, `/metrics`
//! answers only the configured token, and a real Prometheus server (the Debian package)
//! scrapes it and answers a query for a callback metric.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::cache::OwnRedis;
use crate::support::{TestApp, guest_wasm};

#[tokio::test]
async fn readyz_follows_the_database_and_redis_while_healthz_stays_liveness() {
    let plain = TestApp::new().await;
    let ready = plain.get("/readyz").await;
    assert_eq!(ready.status, StatusCode::OK, "{}", ready.text());
    assert_eq!(ready.json(), json!({"status": "ok", "database": "ok"}));

    let mut redis = OwnRedis::start();
    let app = TestApp::with_redis_url(redis.url.clone()).await;
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status, StatusCode::OK, "{}", ready.text());
    assert_eq!(ready.json()["redis"], "ok");

    // Redis down degrades every replica alike (the cache is bypassed): still ready, or a
    // load balancer would take every replica out at once.
    redis.kill();
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status, StatusCode::OK);
    assert_eq!(
        ready.json(),
        json!({"status": "degraded", "database": "ok", "redis": "unavailable"})
    );
    // Liveness does not depend on Redis: the process still serves.
    assert_eq!(app.get("/healthz").await.status, StatusCode::OK);
}

#[tokio::test]
async fn metrics_are_hidden_without_the_configured_token() {
    // No token configured: nobody reads them, as if the route did not exist.
    let app = TestApp::new().await;
    assert_eq!(app.get("/metrics").await.status, StatusCode::NOT_FOUND);
    assert_eq!(
        app.get_with_token("/metrics", "").await.status,
        StatusCode::NOT_FOUND
    );
}

/// A free TCP port on loopback.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("a free port")
        .local_addr()
        .expect("address")
        .port()
}

/// A child process killed on drop.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

const TOKEN: &str = "scrape-token-for-the-test";

#[tokio::test]
async fn a_real_prometheus_scrapes_the_metrics_and_answers_a_callback_query() {
    let prometheus = ["/usr/bin/prometheus", "/usr/local/bin/prometheus"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .unwrap_or_else(|| {
            panic!(
                "prometheus is not installed: scripts/setup.sh --test installs the Debian package"
            )
        });
    let dir = tempfile::tempdir().expect("tempdir");
    let database_url = format!("sqlite://{}", dir.path().join("tessera.db").display());
    let component = dir.path().join("sales_explorer.wasm");
    std::fs::write(&component, guest_wasm("sales_explorer.wasm")).expect("write component");
    let deployed = crate::support::tessera_command(&dir.path().join("cli"))
        .env("TESSERA_DATABASE_URL", &database_url)
        .args(["deploy", "demo/sales-explorer"])
        .arg(&component)
        .args(["--visibility", "public"])
        .output()
        .expect("run tessera deploy");
    assert!(
        deployed.status.success(),
        "{}",
        String::from_utf8_lossy(&deployed.stderr)
    );
    let (child, address) = crate::support::spawn_listening(
        crate::support::tessera_command(&dir.path().join("server"))
            .env("TESSERA_DATABASE_URL", &database_url)
            .env("TESSERA_METRICS_TOKEN", TOKEN)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null()),
    );
    let _server = Killed(child);
    let client = crate::support::reaching_apps(reqwest::Client::builder(), &address, &["demo"])
        .build()
        .expect("client");
    let port = address.rsplit(':').next().expect("port");
    let callback = client
        .post(format!(
            "http://demo.localhost:{port}/apps/demo/sales-explorer/_dash-update-component"
        ))
        .json(&json!({
            "output": "summary.children",
            "outputs": {"id": "summary", "property": "children"},
            "inputs": [{"id": "region", "property": "value", "value": "North"}],
            "changedPropIds": ["region.value"]
        }))
        .send()
        .await
        .expect("callback");
    assert_eq!(callback.status(), 200);

    // The token reads the metrics; without it the route does not exist.
    let metrics = format!("http://{address}/metrics");
    let denied = client.get(&metrics).send().await.expect("scrape");
    assert_eq!(denied.status(), 404);
    let text = client
        .get(&metrics)
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("scrape")
        .text()
        .await
        .expect("body");
    assert!(
        text.contains(r#"tessera_http_requests_total{route="/apps/{tenant}/{app}/_dash-update-component",status="200"}"#),
        "{text}"
    );

    let web = format!("127.0.0.1:{}", free_port());
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n\
             scrape_configs:\n  - job_name: tessera\n    metrics_path: /metrics\n\
             \x20   authorization:\n      type: Bearer\n      credentials: {TOKEN}\n\
             \x20   static_configs:\n      - targets: ['{address}']\n"
        ),
    )
    .expect("write prometheus.yml");
    // Its log goes to a file read only on failure (bounded: the last 4 KiB).
    let log_path = dir.path().join("prometheus.log");
    let log = std::fs::File::create(&log_path).expect("log file");
    let _prometheus = Killed(
        Command::new(prometheus)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("tsdb").display()
            ))
            .arg(format!("--web.listen-address={web}"))
            .arg("--log.level=warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start prometheus"),
    );
    let log_tail = || {
        let text = std::fs::read_to_string(&log_path).unwrap_or_default();
        text[text.len().saturating_sub(4096)..].to_owned()
    };
    let query = r#"tessera_callbacks_total{app="sales-explorer",outcome="ok"}"#;
    let deadline = Instant::now() + Duration::from_secs(60);
    let value = loop {
        assert!(
            Instant::now() < deadline,
            "Prometheus had no value for {query} within 60 s; its log:\n{}",
            log_tail()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
        let Ok(reply) = client
            .get(format!("http://{web}/api/v1/query"))
            .query(&[("query", query)])
            .send()
            .await
        else {
            continue;
        };
        let Ok(body) = reply.json::<Value>().await else {
            continue;
        };
        if let Some(value) = body["data"]["result"][0]["value"][1].as_str() {
            break value.parse::<f64>().expect("a number");
        }
    };
    assert!(value >= 1.0, "{query} = {value}");
}
