//! App settings and secrets (issue 6): set through the API and the CLI, read by a real
//! guest through `host.setting`, sealed in the database, masked in the server's log, and
//! picked up by running servers without a deploy.
//!
//! The guest is the hostile test component: `settings.children` answers what
//! `host.setting` returns for REGION, API_KEY and MISSING; `leak.children` writes API_KEY
//! to `host.log`, stdout and stderr and fails with it in its message.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use axum::http::StatusCode;
use platform::store::testing::TestDatabase;
use serde_json::{Value, json};
use sqlx::Row;

use crate::support::{TestApp, guest_wasm, hostile_request, tessera_command};
use crate::versions::{api, op, people, slug};

const SECRET: &str = "sk-live-7Hq2x9Lw4Rv8";
const UPDATE: &str = "/apps/acme/probe/_dash-update-component";
const SETTINGS: &str = "/api/v1/tenants/acme/apps/probe/settings";

/// What the guest reads through `host.setting` right now, as served.
async fn guest_sees(app: &TestApp) -> Value {
    let reply = app.post_json(UPDATE, hostile_request("settings")).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    reply.json()["response"]["settings"]["children"].clone()
}

async fn wait_for_refresh() {
    tokio::time::sleep(platform::runtime::Runtime::REFRESH + Duration::from_millis(150)).await;
}

/// The stored `(kind, value)` of a setting, read straight from the database.
async fn raw_row(url: &str, name: &str) -> (String, String) {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(url).await.expect("connect");
    let row = sqlx::query("select kind, value from app_settings where name = $1")
        .bind(name)
        .fetch_one(&pool)
        .await
        .expect("the setting is stored");
    let found = (row.get::<String, _>(0), row.get::<String, _>(1));
    pool.close().await;
    found
}

#[tokio::test]
async fn settings_and_secrets_reach_the_guest_through_the_api_on_both_databases() {
    for db in TestDatabase::all().await.expect("databases") {
        let url = db.url.clone();
        let backend = db.backend;
        let app = TestApp::on(db).await;
        let [alice, bob, victor] = people(&app).await;
        app.deploy("acme", "probe", "guest_hostile.wasm").await;
        assert_eq!(
            guest_sees(&app).await,
            json!({"REGION": null, "API_KEY": null, "MISSING": null}),
            "{backend:?}"
        );

        let region = format!("{SETTINGS}/REGION");
        let key = format!("{SETTINGS}/API_KEY");
        // Only who may deploy the app may see or change its settings.
        for token in [&bob, &victor] {
            let refused = api(&app, "PUT", &region, Some(token), r#"{"value":"x"}"#).await;
            assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.text());
            let refused = api(&app, "GET", SETTINGS, Some(token), "").await;
            assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.text());
        }
        // Bad names and values are refused with a reason, and nothing is stored.
        for (uri, body, says) in [
            (
                format!("{SETTINGS}/1BAD"),
                r#"{"value":"x"}"#,
                "invalid setting name",
            ),
            (
                format!("{SETTINGS}/A-B"),
                r#"{"value":"x"}"#,
                "invalid setting name",
            ),
            (region.clone(), r#"{"value":"a\u0000b"}"#, "NUL"),
            (region.clone(), r#"{"value":7}"#, "value"),
            (region.clone(), r#"{"value":"x","secrte":true}"#, "secrte"),
        ] {
            let reply = api(&app, "PUT", &uri, Some(&alice), body).await;
            assert_eq!(
                reply.status,
                StatusCode::BAD_REQUEST,
                "{body}: {}",
                reply.text()
            );
            assert_eq!(reply.error_code(), "validation_failed", "{body}");
            assert!(reply.text().contains(says), "{body}: {}", reply.text());
        }
        let listed = api(&app, "GET", SETTINGS, Some(&alice), "").await;
        assert_eq!(listed.json(), json!([]), "refusals store nothing");

        let set = api(&app, "PUT", &region, Some(&alice), r#"{"value":"eu-west"}"#).await;
        assert_eq!(set.status, StatusCode::OK, "{}", set.text());
        assert_eq!(set.json()["value"], "eu-west");
        let body = json!({"value": SECRET, "secret": true}).to_string();
        let set = api(&app, "PUT", &key, Some(&alice), &body).await;
        assert_eq!(set.status, StatusCode::OK, "{}", set.text());
        assert_eq!(
            (set.json()["secret"].clone(), set.json()["value"].clone()),
            (json!(true), Value::Null),
            "a secret is never shown back"
        );
        let listed = api(&app, "GET", SETTINGS, Some(&alice), "").await;
        assert!(!listed.text().contains(SECRET), "{}", listed.text());
        let names: Vec<(String, Value)> = listed
            .json()
            .as_array()
            .expect("list")
            .iter()
            .map(|s| {
                (
                    s["name"].as_str().expect("name").to_owned(),
                    s["value"].clone(),
                )
            })
            .collect();
        assert_eq!(
            names,
            [
                ("API_KEY".to_owned(), Value::Null),
                ("REGION".to_owned(), json!("eu-west"))
            ]
        );

        // At rest the secret is sealed; the plain setting is not.
        let (kind, stored) = raw_row(&url, "API_KEY").await;
        assert_eq!(kind, "secret");
        assert!(
            stored.starts_with("v1:") && !stored.contains(SECRET),
            "{stored}"
        );
        assert_eq!(
            raw_row(&url, "REGION").await,
            ("plain".into(), "eu-west".into())
        );

        // Running servers pick the values up without a deploy.
        wait_for_refresh().await;
        assert_eq!(
            guest_sees(&app).await,
            json!({"REGION": "eu-west", "API_KEY": SECRET, "MISSING": null}),
            "{backend:?}"
        );
        // What the guest fails with is masked before it leaves the sandbox.
        let leak = app.post_json(UPDATE, hostile_request("leak")).await;
        assert!(!leak.text().contains(SECRET), "{}", leak.text());

        // A new value replaces the old one; removing a setting is idempotent.
        let body = json!({"value": "sk-rotated-0000", "secret": true}).to_string();
        assert_eq!(
            api(&app, "PUT", &key, Some(&alice), &body).await.status,
            StatusCode::OK
        );
        for _ in 0..2 {
            let gone = api(&app, "DELETE", &region, Some(&alice), "").await;
            assert_eq!(gone.status, StatusCode::NO_CONTENT, "{}", gone.text());
        }
        wait_for_refresh().await;
        assert_eq!(
            guest_sees(&app).await,
            json!({"REGION": null, "API_KEY": "sk-rotated-0000", "MISSING": null})
        );

        // The audit log names the settings, never their values.
        let audit = api(
            &app,
            "GET",
            "/api/v1/tenants/acme/audit?action=app.settings.set",
            Some(&alice),
            "",
        )
        .await;
        assert!(!audit.text().contains(SECRET), "{}", audit.text());
        assert!(!audit.text().contains("eu-west"), "{}", audit.text());
        let details: Vec<Value> = audit.json()["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|e| e["detail"].clone())
            .collect();
        assert_eq!(details.len(), 3, "{details:?}");
        assert!(
            details.contains(&json!({"settings": [], "secrets": ["API_KEY"]})),
            "{details:?}"
        );
        assert!(
            details.contains(&json!({"settings": ["REGION"], "secrets": []})),
            "{details:?}"
        );
    }
}

#[tokio::test]
async fn a_secret_copied_to_another_app_does_not_open() {
    let app = TestApp::new().await;
    let [alice, ..] = people(&app).await;
    for name in ["probe", "other"] {
        app.deploy("acme", name, "guest_hostile.wasm").await;
    }
    let body = json!({"value": SECRET, "secret": true}).to_string();
    let set = api(
        &app,
        "PUT",
        &format!("{SETTINGS}/API_KEY"),
        Some(&alice),
        &body,
    )
    .await;
    assert_eq!(set.status, StatusCode::OK, "{}", set.text());
    // Someone with write access to the database copies the sealed value to another app.
    let store = &app.state.store;
    let probe = store
        .app_access(&slug("acme"), &slug("probe"), None)
        .await
        .expect("query")
        .expect("probe");
    let other = store
        .app_access(&slug("acme"), &slug("other"), None)
        .await
        .expect("query")
        .expect("other");
    let sealed = store.app_settings(probe.app_id).await.expect("settings");
    store
        .set_app_settings(
            other.tenant_id,
            other.app_id,
            &[platform::store::SettingWrite {
                name: "API_KEY",
                secret: true,
                stored_value: sealed[0].value.clone(),
            }],
            10,
            &op(),
        )
        .await
        .expect("stored");
    let reply = app
        .post_json(
            "/apps/acme/other/_dash-update-component",
            hostile_request("settings"),
        )
        .await;
    assert_eq!(
        reply.status,
        StatusCode::INTERNAL_SERVER_ERROR,
        "{}",
        reply.text()
    );
    assert!(!reply.text().contains(SECRET), "{}", reply.text());
    let opened =
        platform::settings::for_guest(store, &app.state.secrets, other.app_id, "/apps/t/a/").await;
    let error = opened
        .expect_err("a copied secret does not open")
        .to_string();
    assert!(
        error.contains("the secret API_KEY of this app cannot be decrypted"),
        "{error}"
    );
}

/// Runs `tessera args…` with `stdin`; returns success and stdout + stderr.
fn run(data_dir: &Path, args: &[&str], stdin: &str) -> (bool, String) {
    use std::io::Write;
    let mut child = tessera_command(data_dir)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run tessera");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write stdin");
    let output = child.wait_with_output().expect("wait");
    (
        output.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    )
}

#[tokio::test]
async fn the_cli_sets_a_secret_from_stdin_and_it_never_reaches_the_log_or_the_database_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path();
    let wasm = data.join("hostile.wasm");
    std::fs::write(&wasm, guest_wasm("guest_hostile.wasm")).expect("write");
    let (ok, text) = run(
        data,
        &[
            "deploy",
            "acme/probe",
            wasm.to_str().expect("utf-8"),
            "--visibility",
            "public",
        ],
        "",
    );
    assert!(ok, "{text}");

    let (ok, text) = run(
        data,
        &["apps", "settings", "set", "acme/probe", "REGION=eu-west"],
        "",
    );
    assert!(ok && text.contains("set setting REGION"), "{text}");
    // A bare name takes its value from standard input, keeping it out of the shell history.
    let (ok, text) = run(
        data,
        &[
            "apps",
            "settings",
            "set",
            "--secret",
            "acme/probe",
            "API_KEY",
        ],
        &format!("{SECRET}\n"),
    );
    assert!(ok && text.contains("set secret API_KEY"), "{text}");
    for (args, says) in [
        (
            &["apps", "settings", "set", "acme/probe", "1X=a"][..],
            "invalid setting name",
        ),
        (
            &["apps", "settings", "set", "acme/nope", "A=b"][..],
            "no app acme/nope",
        ),
    ] {
        let (ok, text) = run(data, args, "");
        assert!(!ok && text.contains(says), "{args:?}: {text}");
    }
    let (ok, text) = run(data, &["apps", "settings", "list", "acme/probe"], "");
    assert!(ok, "{text}");
    assert!(text.contains("API_KEY=(secret)"), "{text}");
    assert!(text.contains("REGION=eu-west"), "{text}");
    assert!(!text.contains(SECRET), "{text}");

    // A real server, logging at info to a file: the guest reads both values, and its
    // attempts to log the secret come out masked.
    let log_path = data.join("server.log");
    let log = std::fs::File::create(&log_path).expect("log file");
    let (mut child, address) = crate::support::spawn_listening(
        tessera_command(data)
            .env("RUST_LOG", "info")
            .args(["serve", "--listen", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log)),
    );
    let client = crate::support::reaching_apps(reqwest::Client::builder(), &address, &["acme"])
        .build()
        .expect("client");
    let post = |callback: &str| {
        client
            .post(format!(
                "http://{}{UPDATE}",
                crate::support::host_for(&address, UPDATE)
            ))
            .header("content-type", "application/json")
            .body(hostile_request(callback))
            .send()
    };
    let seen: Value = post("settings")
        .await
        .expect("settings answer")
        .json()
        .await
        .expect("JSON");
    assert_eq!(
        seen["response"]["settings"]["children"],
        json!({"REGION": "eu-west", "API_KEY": SECRET, "MISSING": null})
    );
    let leak = post("leak").await.expect("leak answer");
    assert_eq!(leak.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let leak = leak.text().await.expect("body");
    assert!(!leak.contains(SECRET), "{leak}");

    // Removing a setting reaches the running server within its refresh interval.
    let (ok, text) = run(
        data,
        &["apps", "settings", "unset", "acme/probe", "REGION", "NOPE"],
        "",
    );
    assert!(ok, "{text}");
    assert!(
        text.contains("removed REGION") && text.contains("NOPE was not set"),
        "{text}"
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let seen: Value = post("settings")
            .await
            .expect("answer")
            .json()
            .await
            .expect("JSON");
        if seen["response"]["settings"]["children"]["REGION"].is_null() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "REGION still served: {seen}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let _ = child.kill();
    let _ = child.wait();

    let log = std::fs::read_to_string(&log_path).expect("read log");
    for stream in ["host.log", "stdout", "stderr"] {
        assert!(
            log.contains(&format!("{stream} sees API_KEY=[secret API_KEY]")),
            "the {stream} line should be logged, masked:\n{log}"
        );
    }
    assert!(
        !log.contains(SECRET),
        "the secret is in the server log:\n{log}"
    );
    // Nor is it anywhere in the SQLite files (database and write-ahead log).
    for entry in std::fs::read_dir(data).expect("data dir") {
        let path = entry.expect("entry").path();
        let name = path
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        if name.starts_with("tessera.db") {
            let bytes = std::fs::read(&path).expect("read");
            assert!(
                !bytes.windows(SECRET.len()).any(|w| w == SECRET.as_bytes()),
                "{name} holds the secret in the clear"
            );
        }
    }
}

#[tokio::test]
async fn an_app_built_with_the_sdk_reads_its_setting() {
    let app = TestApp::new().await;
    let [alice, ..] = people(&app).await;
    app.deploy("acme", "greeter", "hello.wasm").await;
    let greet = || async {
        let body = json!({
            "output": "greeting.children",
            "outputs": {"id": "greeting", "property": "children"},
            "inputs": [{"id": "name", "property": "value", "value": "Ada"}],
            "changedPropIds": ["name.value"]
        });
        let reply = app
            .post_json(
                "/apps/acme/greeter/_dash-update-component",
                body.to_string(),
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
        reply.json()["response"]["greeting"]["children"].clone()
    };
    assert_eq!(greet().await, "Hello, Ada!");
    let set = api(
        &app,
        "PUT",
        "/api/v1/tenants/acme/apps/greeter/settings/GREETING",
        Some(&alice),
        r#"{"value":"Bonjour"}"#,
    )
    .await;
    assert_eq!(set.status, StatusCode::OK, "{}", set.text());
    wait_for_refresh().await;
    assert_eq!(greet().await, "Bonjour, Ada!");
}
