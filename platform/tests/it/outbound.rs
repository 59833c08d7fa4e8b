//! Outbound HTTP of a deployed app: its allowlist is the reserved setting
//! `TESSERA_OUTBOUND_HOSTS`, checked when set and picked up without a deploy; the operator's
//! `[outbound] allow_private` decides whether a server on 127.0.0.1 (the test's) may be
//! reached at all. The guest is `guest-http` (`fetch.children` GETs `url.value`).

use axum::http::StatusCode;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::TestApp;
use crate::versions::{api, people};

const UPDATE: &str = "/apps/acme/fetcher/_dash-update-component";
const HOSTS: &str = "/api/v1/tenants/acme/apps/fetcher/settings/TESSERA_OUTBOUND_HOSTS";

/// A server on 127.0.0.1 answering every request with `hello`; its base URL.
async fn hello_server() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("address").port();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buffer = [0u8; 4096];
                let _ = socket.read(&mut buffer).await;
                let _ = socket
                    .write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\nconnection: close\r\n\r\nhello",
                    )
                    .await;
            });
        }
    });
    format!("http://127.0.0.1:{port}")
}

/// The callback's answer (status and text) for fetching `url`.
async fn fetch(app: &TestApp, url: &str) -> (StatusCode, String) {
    let body = serde_json::json!({
        "output": "fetch.children",
        "outputs": {"id": "fetch", "property": "children"},
        "inputs": [{"id": "url", "property": "value", "value": url}],
        "changedPropIds": ["url.value"]
    });
    let reply = app.post_json(UPDATE, body.to_string()).await;
    (reply.status, reply.text())
}

async fn wait_for_refresh() {
    tokio::time::sleep(platform::runtime::Runtime::REFRESH + Duration::from_millis(150)).await;
}

#[tokio::test]
async fn the_allowlist_setting_grants_a_host_and_the_operator_grants_private_addresses() {
    let base = hello_server().await;
    let app = TestApp::with_outbound(platform::config::OutboundConfig {
        allow_private: true,
        ..Default::default()
    })
    .await;
    let [alice, ..] = people(&app).await;
    app.deploy("acme", "fetcher", "guest_http.wasm").await;
    let url = format!("{base}/");

    // No allowlist: refused.
    let (status, text) = fetch(&app, &url).await;
    assert!(!text.contains("hello"), "{status}: {text}");

    // A bad pattern is refused when it is set, naming it; nothing is stored.
    let bad = api(&app, "PUT", HOSTS, Some(&alice), r#"{"value":"127.0.0.1"}"#).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{}", bad.text());
    assert!(bad.text().contains("scheme is required"), "{}", bad.text());

    let body = serde_json::json!({ "value": base }).to_string();
    let set = api(&app, "PUT", HOSTS, Some(&alice), &body).await;
    assert_eq!(set.status, StatusCode::OK, "{}", set.text());
    wait_for_refresh().await;
    let (status, text) = fetch(&app, &url).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    assert!(text.contains("200 5 hello"), "{text}");

    // Removed: refused again, without a deploy.
    let unset = api(&app, "DELETE", HOSTS, Some(&alice), "").await;
    assert!(unset.status.is_success(), "{}", unset.text());
    wait_for_refresh().await;
    let (status, text) = fetch(&app, &url).await;
    assert!(!text.contains("hello"), "{status}: {text}");
}

#[tokio::test]
async fn without_allow_private_a_listed_loopback_host_is_still_refused() {
    let base = hello_server().await;
    let app = TestApp::new().await;
    let [alice, ..] = people(&app).await;
    app.deploy("acme", "fetcher", "guest_http.wasm").await;
    let body = serde_json::json!({ "value": base }).to_string();
    let set = api(&app, "PUT", HOSTS, Some(&alice), &body).await;
    assert_eq!(set.status, StatusCode::OK, "{}", set.text());
    wait_for_refresh().await;
    let (status, text) = fetch(&app, &format!("{base}/")).await;
    assert!(!text.contains("hello"), "{status}: {text}");
}
