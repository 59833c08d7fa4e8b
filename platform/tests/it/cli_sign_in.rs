//! `tessera login` (the device authorization grant): a command line starts a sign-in, a
//! signed-in person approves it at `/device`, the command line collects its token once.
//! Denied, expired, uncollected and over-polled sign-ins; the cap on pending ones; and the
//! real `tessera login` binary with the real `git`, pushing with the token it stored.

use std::io::{BufRead, BufReader};

use axum::http::{StatusCode, header};
use platform::admin;
use platform::store::AuditFilter;
use platform::store::testing::TestDatabase;
use serde_json::{Value, json};

use crate::sessions::{Browser, PASSWORD, op};
use crate::support::{Reply, TestApp, guest_wasm};
use crate::ui_admin::{signed_in, tenants};

fn location(reply: &Reply) -> String {
    reply
        .headers
        .get(header::LOCATION)
        .map(|l| l.to_str().expect("ascii").to_owned())
        .unwrap_or_default()
}

async fn start(app: &TestApp, tenant: Option<&str>) -> Value {
    let reply = app
        .post_json(
            "/api/v1/cli/sign-ins",
            json!({"client_name": "avery-laptop", "tenant": tenant}).to_string(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text());
    reply.json()
}

async fn poll(app: &TestApp, device_code: &str) -> Reply {
    app.post_json(
        "/api/v1/cli/sign-ins/token",
        json!({"device_code": device_code}).to_string(),
    )
    .await
}

/// Run SQL on the app's database (to age a sign-in rather than wait ten minutes).
async fn sql(app: &TestApp, statement: &str) {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&app.state.config.database_url)
        .await
        .expect("connect");
    sqlx::query(statement).execute(&pool).await.expect("sql");
    pool.close().await;
}

async fn scalar(app: &TestApp, query: &str) -> Option<String> {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&app.state.config.database_url)
        .await
        .expect("connect");
    let value: Option<String> = sqlx::query_scalar(query)
        .fetch_one(&pool)
        .await
        .expect("query");
    pool.close().await;
    value
}

/// The last poll is older than the interval: the next one is not "too soon".
async fn wait_out_the_interval(app: &TestApp) {
    sql(
        app,
        "update cli_sign_ins set last_polled_at = last_polled_at - 5000",
    )
    .await;
}

async fn audited(app: &TestApp, action: &str) -> usize {
    let filter = AuditFilter {
        action: Some(action),
        actor: None,
    };
    app.state
        .store
        .filtered_audit_entries(None, &filter, None, 100)
        .await
        .expect("audit")
        .len()
}

#[tokio::test]
async fn a_command_line_gets_one_token_when_a_person_approves_it_in_the_browser() {
    for db in TestDatabase::all().await.expect("databases") {
        let app = tenants(Some(db)).await;
        let started = start(&app, Some("b")).await;
        let device = started["device_code"]
            .as_str()
            .expect("device code")
            .to_owned();
        let code = started["user_code"].as_str().expect("user code").to_owned();
        assert_eq!(device.len(), 40);
        assert!(code.len() == 9 && code.as_bytes()[4] == b'-', "{code}");
        assert_eq!(
            started["verification_uri_complete"],
            format!("http://127.0.0.1:8080/device?code={code}")
        );
        assert_eq!(started["interval"], 2);
        assert_eq!(started["expires_in"], 600);

        // Not approved yet; asking again at once is too soon.
        let reply = poll(&app, &device).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST);
        assert_eq!(reply.error_code(), "authorization_pending");
        let reply = poll(&app, &device).await;
        assert_eq!(reply.error_code(), "slow_down");

        // Signed out, the page leads to sign-in and back with the code.
        let mut anonymous = Browser::new(&app);
        let reply = anonymous.get(&format!("/device?code={code}")).await;
        assert_eq!(reply.status, StatusCode::SEE_OTHER);
        assert!(
            location(&reply).starts_with("/login?next=/device%3Fcode%3D"),
            "{}",
            location(&reply)
        );

        // The code as a person might type it; the page names the machine and offers the
        // person's tenants only.
        let mut ada = signed_in(&app, "ada@example.org").await;
        let typed = code.to_lowercase().replace('-', " ");
        let page = ada
            .get(&format!("/device?code={}", typed.replace(' ', "+")))
            .await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.text());
        let html = page.text();
        assert!(html.contains("avery-laptop"), "{html}");
        assert!(html.contains(&code), "{html}");
        assert!(html.contains("<option value=\"b\" selected>"), "{html}");
        assert!(!html.contains("<option value=\"c\""), "{html}");
        let csrf = crate::sessions::csrf_of(&html);

        // A tenant she is no member of: refused, no token made.
        let reply = ada
            .post_form(
                &format!("/device/{code}/approve"),
                &[("csrf", &csrf), ("tenant", "c")],
            )
            .await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{}", reply.text());
        assert_eq!(audited(&app, "token.create").await, 0);

        let reply = ada
            .post_form(
                &format!("/device/{code}/approve"),
                &[("csrf", &csrf), ("tenant", "b")],
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
        assert!(reply.text().contains("Approved"), "{}", reply.text());

        wait_out_the_interval(&app).await;
        let reply = poll(&app, &device).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
        let token = reply.json()["token"].as_str().expect("token").to_owned();
        assert_eq!(reply.json()["tenant"], "b");
        assert_eq!(reply.json()["email"], "ada@example.org");
        // The token is ada's, with her role in b (admin: she may list its members).
        let members = app
            .get_with_token("/api/v1/tenants/b/members", &token)
            .await;
        assert_eq!(members.status, StatusCode::OK, "{}", members.text());
        // Once only; nothing of the token stays in the database.
        wait_out_the_interval(&app).await;
        let reply = poll(&app, &device).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST);
        assert_eq!(reply.error_code(), "invalid_grant");
        assert_eq!(
            scalar(&app, "select max(token_sealed) from cli_sign_ins").await,
            None
        );
        // The code is used up.
        let page = ada.get(&format!("/device?code={code}")).await;
        assert_eq!(page.status, StatusCode::NOT_FOUND);
        assert_eq!(audited(&app, "cli_sign_in.approve").await, 1);
        assert_eq!(audited(&app, "token.create").await, 1);
    }
}

#[tokio::test]
async fn denied_expired_and_uncollected_sign_ins_give_no_token() {
    let app = tenants(None).await;
    let mut carl = signed_in(&app, "carl@example.org").await;
    let csrf = carl.csrf().await;

    // Denied: the command line is told; the code cannot be approved afterwards.
    let denied = start(&app, None).await;
    let code = denied["user_code"].as_str().expect("code");
    let reply = carl
        .post_form(&format!("/device/{code}/deny"), &[("csrf", &csrf)])
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let reply = poll(&app, denied["device_code"].as_str().expect("device")).await;
    assert_eq!(reply.error_code(), "access_denied");
    let reply = carl
        .post_form(
            &format!("/device/{code}/approve"),
            &[("csrf", &csrf), ("tenant", "b")],
        )
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);

    // Expired before anyone approved it.
    let expired = start(&app, None).await;
    let code = expired["user_code"].as_str().expect("code");
    sql(
        &app,
        &format!("update cli_sign_ins set expires_at = created_at - 1 where user_code = '{code}'"),
    )
    .await;
    let reply = poll(&app, expired["device_code"].as_str().expect("device")).await;
    assert_eq!(reply.error_code(), "expired_token");
    assert_eq!(
        carl.get(&format!("/device?code={code}")).await.status,
        StatusCode::NOT_FOUND
    );

    // Approved but never collected: the token is revoked when the sign-in has expired and
    // the next sign-in prunes.
    let forgotten = start(&app, Some("b")).await;
    let code = forgotten["user_code"].as_str().expect("code");
    let reply = carl
        .post_form(
            &format!("/device/{code}/approve"),
            &[("csrf", &csrf), ("tenant", "b")],
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let public_id = scalar(
        &app,
        &format!("select token_public_id from cli_sign_ins where user_code = '{code}'"),
    )
    .await
    .expect("a token was made");
    sql(
        &app,
        &format!("update cli_sign_ins set expires_at = created_at - 1 where user_code = '{code}'"),
    )
    .await;
    start(&app, None).await;
    assert!(
        scalar(
            &app,
            &format!(
                "select cast(revoked_at as text) from api_tokens where public_id = '{public_id}'"
            ),
        )
        .await
        .is_some(),
        "the uncollected token is revoked"
    );
    let reply = poll(&app, forgotten["device_code"].as_str().expect("device")).await;
    assert_eq!(reply.error_code(), "expired_token");

    // Malformed and unknown device codes, bad fields.
    for device in ["", "short", &"A".repeat(40), &"é".repeat(20)] {
        let reply = poll(&app, device).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{device}");
        assert_eq!(reply.error_code(), "invalid_grant", "{device}");
    }
    for body in [
        json!({"client_name": ""}),
        json!({"client_name": "a\nb"}),
        json!({"client_name": "x".repeat(101)}),
        json!({"client_name": "ok", "tenant": "Not A Slug"}),
        json!({"client_name": "ok", "extra": 1}),
    ] {
        let reply = app
            .post_json("/api/v1/cli/sign-ins", body.to_string())
            .await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(reply.error_code(), "validation_failed", "{body}");
    }
    // The code form itself needs a signed-in person.
    assert_eq!(carl.get("/device").await.status, StatusCode::OK);
    assert_eq!(
        Browser::new(&app).get("/device").await.status,
        StatusCode::SEE_OTHER
    );
}

#[tokio::test]
async fn sign_ins_nobody_approved_are_capped() {
    let app = tenants(None).await;
    let cap = platform::cli_sign_in::MAX_PENDING;
    let pending: i64 = scalar(&app, "select cast(count(*) as text) from cli_sign_ins")
        .await
        .expect("count")
        .parse()
        .expect("number");
    for _ in pending..cap {
        start(&app, None).await;
    }
    let reply = app
        .post_json(
            "/api/v1/cli/sign-ins",
            json!({"client_name": "one more"}).to_string(),
        )
        .await;
    assert_eq!(
        reply.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        reply.text()
    );
    assert_eq!(reply.error_code(), "too_many_requests");
    // Expired ones no longer count.
    sql(&app, "update cli_sign_ins set expires_at = 1").await;
    start(&app, None).await;
}

/// Run `tessera` as an author would on their machine: HOME is a scratch folder.
fn tessera(home: &std::path::Path, args: &[&str]) -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_tessera"));
    command
        .args(args)
        .env("HOME", home)
        // As `crate::git::git` runs git, which runs `tessera credential` with its own env.
        .env("XDG_CONFIG_HOME", home)
        .env_remove("TESSERA_CONFIG_DIR")
        .env_remove("TESSERA_URL")
        .env("GIT_CONFIG_NOSYSTEM", "1");
    command
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tessera_login_stores_a_token_that_git_push_uses_until_logout() {
    use std::os::unix::fs::PermissionsExt;
    let clock = std::sync::Arc::new(platform::clock::ShiftedClock::default());
    let (app, base) = TestApp::served(clock).await;
    let store = &app.state.store;
    admin::create_tenant(store, "acme", None, None, &op())
        .await
        .expect("tenant");
    admin::create_user(store, "alice@example.org", Some(PASSWORD), false, &op())
        .await
        .expect("user");
    admin::grant(store, "alice@example.org", "acme", "author", &op())
        .await
        .expect("grant");
    // The author's machine: HOME and a repository on `main`.
    let (_scratch, home, work) = crate::git::scratch_repo().await;

    let mut login = tessera(
        &home,
        &[
            "login",
            &base,
            "--tenant",
            "acme",
            "--client-name",
            "alice-laptop",
        ],
    )
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped())
    .spawn()
    .expect("tessera login starts");
    let stderr = login.stderr.take().expect("stderr");
    let code = tokio::task::spawn_blocking(move || {
        for line in BufReader::new(stderr).lines() {
            let line = line.expect("line");
            if let Some(code) = line.strip_prefix("Your code: ") {
                return code.trim().to_owned();
            }
        }
        panic!("tessera login printed no code");
    })
    .await
    .expect("reader");

    // Alice approves in her browser.
    let mut alice = signed_in(&app, "alice@example.org").await;
    let page = alice.get(&format!("/device?code={code}")).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text());
    assert!(page.text().contains("alice-laptop"));
    let csrf = crate::sessions::csrf_of(&page.text());
    let reply = alice
        .post_form(
            &format!("/device/{code}/approve"),
            &[("csrf", &csrf), ("tenant", "acme")],
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());

    let output = tokio::task::spawn_blocking(move || login.wait_with_output())
        .await
        .expect("join")
        .expect("tessera login ends");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    assert!(
        stdout.contains(&format!(
            "Signed in to {base} as alice@example.org in tenant acme"
        )),
        "{stdout}"
    );
    let credentials = home.join("tessera/credentials.toml");
    let mode = std::fs::metadata(&credentials)
        .expect("credentials stored")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    assert!(
        std::fs::read_to_string(&credentials)
            .expect("read")
            .contains("tsr_")
    );

    // git pushes with no token in the URL: it asks `tessera credential`.
    use crate::git::ok;
    std::fs::write(work.join("app.wasm"), guest_wasm("hello.wasm")).expect("write");
    std::fs::write(
        work.join("tessera.toml"),
        "name = \"sales\"\nkind = \"wasm\"\ncomponent = \"app.wasm\"\n",
    )
    .expect("write");
    ok(&home, &work, &["add", "."]).await;
    ok(&home, &work, &["commit", "--quiet", "-m", "first"]).await;
    let remote = format!("{base}/git/acme/sales.git");
    let push = crate::git::git(&home, &work, &["push", &remote, "main"]).await;
    assert!(push.status.success(), "{}", crate::git::stderr(&push));
    let live = store
        .live_version(
            &platform::ids::Slug::parse("acme").expect("slug"),
            &platform::ids::Slug::parse("sales").expect("slug"),
        )
        .await
        .expect("q");
    assert!(live.is_some(), "the push deployed the app");
    assert_eq!(audited(&app, "cli_sign_in.approve").await, 1);

    // Logout revokes the token on the server and forgets it here.
    let stored = std::fs::read_to_string(&credentials).expect("read");
    let at = stored.find("tsr_").expect("token");
    let token: String = stored[at..].chars().take_while(|c| *c != '"').collect();
    assert_eq!(
        app.get_with_token("/api/v1/tenants", &token).await.status,
        StatusCode::OK
    );
    let output = tessera(&home, &["logout", &base]).output().expect("logout");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(String::from_utf8_lossy(&output.stdout).contains("revoked"));
    assert_eq!(
        app.get_with_token("/api/v1/tenants", &token).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert!(
        !std::fs::read_to_string(&credentials)
            .expect("read")
            .contains("tsr_")
    );
}
