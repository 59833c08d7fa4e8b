//! The smaller holes of sign-in and sessions (issue 11), each replayed: a 4 MiB email
//! posted to `/login`, the throttle dodged by spelling the address differently, a password
//! change that left other sessions alive, session ids in clear in the database, and
//! database files readable by others.

use std::os::unix::fs::PermissionsExt;

use axum::http::StatusCode;
use platform::store::testing::TestDatabase;
use platform::store::{AuditFilter, Store};
use sqlx::{Connection, Row};

use crate::sessions::{Browser, PASSWORD, csrf_of, failures, setup};
use crate::support::TestApp;

/// The SQLite database's size in bytes as its pages count it (the WAL included).
async fn database_bytes(app: &TestApp) -> i64 {
    let url = &app.state.config.database_url;
    let mut conn = sqlx::SqliteConnection::connect(url).await.expect("connect");
    let pages: i64 = sqlx::query("pragma page_count")
        .fetch_one(&mut conn)
        .await
        .expect("page_count")
        .try_get(0)
        .expect("int");
    let size: i64 = sqlx::query("pragma page_size")
        .fetch_one(&mut conn)
        .await
        .expect("page_size")
        .try_get(0)
        .expect("int");
    conn.close().await.expect("close");
    pages * size
}

#[tokio::test]
async fn five_four_mib_emails_are_refused_and_grow_the_database_by_a_few_kib() {
    let app = setup(None).await;
    let huge = format!("{}@example.org", "a".repeat(4 << 20));
    let mut browser = Browser::new(&app);
    // The session holding the CSRF token exists before the measure starts.
    let csrf = browser.csrf().await;
    let before = database_bytes(&app).await;
    for _ in 0..5 {
        let reply = browser
            .post_form(
                "/login",
                &[
                    ("csrf", &csrf),
                    ("email", &huge),
                    ("password", "x"),
                    ("next", "/"),
                ],
            )
            .await;
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
        let page = reply.text();
        assert!(page.contains("Enter a valid email address"));
        assert!(page.len() < 16 << 10, "the page does not echo 4 MiB");
    }
    let grown = database_bytes(&app).await - before;
    eprintln!("five 4 MiB sign-in posts grew the database by {grown} bytes");
    assert!(grown <= 16 << 10, "the database grew by {grown} bytes");
    let rows = app
        .state
        .store
        .filtered_audit_entries(
            None,
            &AuditFilter {
                action: Some("auth.sign_in_failed"),
                actor: None,
            },
            None,
            10,
        )
        .await
        .expect("audit");
    assert_eq!(rows.len(), 5);
    for row in rows {
        assert_eq!(row.target, "email:invalid");
        assert_eq!(row.detail["reason"], "invalid_email");
    }
}

#[tokio::test]
async fn spelling_the_address_differently_gets_no_fresh_throttle_budget() {
    let app = setup(None).await;
    let spellings = [
        "bob@example.org",
        " bob@example.org",
        "BOB@example.org ",
        "\tBob@Example.ORG",
        " bob@EXAMPLE.org\t",
    ];
    for spelling in spellings {
        let mut browser = Browser::new(&app);
        let reply = browser.sign_in(spelling, "wrong password", "/").await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{spelling:?}");
    }
    // Five failures under five spellings: every spelling of the account now waits, even
    // with the right password, from a fresh address too.
    for (i, spelling) in spellings.iter().enumerate() {
        let mut browser = Browser::new(&app);
        browser.peer = format!("192.0.2.{}:5000", 100 + i).parse().expect("addr");
        let reply = browser.sign_in(spelling, PASSWORD, "/").await;
        assert_eq!(reply.status, StatusCode::TOO_MANY_REQUESTS, "{spelling:?}");
    }
    assert_eq!(failures(&app).await, 10);
}

#[tokio::test]
async fn changing_the_password_ends_the_other_sessions_and_keeps_this_one() {
    let app = setup(None).await;
    let mut laptop = Browser::new(&app);
    let mut phone = Browser::new(&app);
    for b in [&mut laptop, &mut phone] {
        assert_eq!(
            b.sign_in("bob@example.org", PASSWORD, "/").await.status,
            StatusCode::SEE_OTHER
        );
        assert_eq!(b.get("/apps/b/hello/").await.status, StatusCode::OK);
    }
    let csrf = csrf_of(&laptop.get("/account/password").await.text());
    let changed = laptop
        .post_form(
            "/account/password",
            &[
                ("csrf", &csrf),
                ("current", PASSWORD),
                ("new", "a brand new passphrase"),
            ],
        )
        .await;
    assert_eq!(changed.status, StatusCode::OK);
    assert!(changed.text().contains("Your password was changed."));
    assert_eq!(
        laptop.get("/apps/b/hello/").await.status,
        StatusCode::OK,
        "the session that changed it stays signed in"
    );
    assert_eq!(
        phone.get("/apps/b/hello/").await.status,
        StatusCode::SEE_OTHER,
        "the other session ended"
    );
    assert_eq!(
        phone
            .sign_in("bob@example.org", "a brand new passphrase", "/")
            .await
            .status,
        StatusCode::SEE_OTHER
    );
    assert_eq!(phone.get("/apps/b/hello/").await.status, StatusCode::OK);
}

/// The cookie's session id, as the browser holds it.
fn cookie_id(browser: &Browser<'_>) -> String {
    let cookie = browser.cookie.clone().expect("a session cookie");
    let pair = cookie.split(';').next().expect("pair");
    pair.split_once('=').expect("name=value").1.to_owned()
}

#[tokio::test]
async fn only_a_hash_of_the_session_id_is_stored() {
    for db in TestDatabase::all().await.expect("databases") {
        let app = setup(Some(db)).await;
        let mut bob = Browser::new(&app);
        assert_eq!(
            bob.sign_in("bob@example.org", PASSWORD, "/").await.status,
            StatusCode::SEE_OTHER
        );
        let id = cookie_id(&bob);
        let pool = sqlx::AnyPool::connect(&app.state.config.database_url)
            .await
            .expect("connect");
        let rows = sqlx::query("select id, data from sessions")
            .fetch_all(&pool)
            .await
            .expect("sessions");
        let keys: Vec<String> = rows.iter().map(|r| r.get::<String, _>(0)).collect();
        assert!(
            keys.contains(&platform::store::session_key(&id)),
            "stored under its sha256"
        );
        for row in &rows {
            let (key, data): (String, String) = (row.get(0), row.get(1));
            assert!(!key.contains(&id) && !data.contains(&id), "{key} {data}");
        }
        pool.close().await;
        if app.state.config.database_url.starts_with("sqlite:") {
            // Nor anywhere in the file or its write-ahead log.
            let path = app.state.config.data_dir.join("tessera.db");
            for file in [path.clone(), path.with_extension("db-wal")] {
                let bytes = std::fs::read(&file).unwrap_or_default();
                assert!(
                    !bytes.windows(id.len()).any(|w| w == id.as_bytes()),
                    "{} holds the session id",
                    file.display()
                );
            }
        }
        assert_eq!(bob.get("/apps/b/hello/").await.status, StatusCode::OK);
    }
}

#[tokio::test]
async fn the_database_files_and_the_secret_key_are_readable_by_the_server_only() {
    let app = TestApp::new().await;
    let dir = &app.state.config.data_dir;
    let mode = |name: &str| {
        std::fs::metadata(dir.join(name))
            .unwrap_or_else(|e| panic!("{name}: {e}"))
            .permissions()
            .mode()
            & 0o777
    };
    for name in [
        "tessera.db",
        "tessera.db-wal",
        "tessera.db-shm",
        "secret.key",
    ] {
        assert_eq!(mode(name), 0o600, "{name}");
    }

    // Files left readable by an older version are tightened at the next start.
    let old = tempfile::tempdir().expect("tempdir");
    let db = old.path().join("old.db");
    let key = old.path().join("secret.key");
    let url = format!("sqlite://{}", db.display());
    Store::connect(&url)
        .await
        .expect("first start")
        .close()
        .await;
    platform::secretbox::SecretBox::load(None, &key).expect("key");
    for file in [&db, &key] {
        std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    }
    Store::connect(&url)
        .await
        .expect("next start")
        .close()
        .await;
    platform::secretbox::SecretBox::load(None, &key).expect("key again");
    for file in [&db, &key] {
        let mode = std::fs::metadata(file).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", file.display());
    }
}

#[tokio::test]
async fn redis_keeps_a_session_under_the_hash_of_its_id() {
    let app = TestApp::with_redis().await;
    platform::admin::create_user(
        &app.state.store,
        "bob@example.org",
        Some(PASSWORD),
        false,
        &crate::sessions::op(),
    )
    .await
    .expect("user");
    let mut bob = Browser::new(&app);
    assert_eq!(
        bob.sign_in("bob@example.org", PASSWORD, "/").await.status,
        StatusCode::SEE_OTHER
    );
    let id = cookie_id(&bob);
    let url = app.state.config.redis_url.clone().expect("redis");
    let client = redis::Client::open(url).expect("client");
    let mut conn = redis::aio::ConnectionManager::new(client)
        .await
        .expect("connect");
    let exists = |key: String| {
        let mut conn = conn.clone();
        async move {
            redis::cmd("EXISTS")
                .arg(key)
                .query_async::<i64>(&mut conn)
                .await
                .expect("exists")
        }
    };
    let hashed = format!("tessera:session:{}", platform::store::session_key(&id));
    assert_eq!(exists(hashed).await, 1, "stored under the hash");
    assert_eq!(exists(format!("tessera:session:{id}")).await, 0);
    let _: () = redis::cmd("PING")
        .query_async::<()>(&mut conn)
        .await
        .expect("ping");
}
