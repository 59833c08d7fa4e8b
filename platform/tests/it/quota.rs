//! Per-tenant quotas enforced: number of apps and storage at deploy, callbacks in flight
//! and the callback deadline while serving. On SQLite and PostgreSQL.

use std::time::{Duration, Instant};

use axum::http::StatusCode;
use platform::admin;
use platform::ids::Slug;
use platform::store::testing::TestDatabase;
use platform::store::{Change, Quotas};

use crate::support::{TestApp, guest_wasm};

fn op() -> Change<'static> {
    Change {
        actor: "test",
        remote_addr: None,
        at: 1,
    }
}

fn quotas() -> Quotas {
    Quotas::DEFAULT
}

async fn tenant_with(app: &TestApp, slug: &str, quotas: Quotas) {
    let tenant = admin::create_tenant(&app.state.store, slug, None, None, &op())
        .await
        .expect("tenant");
    app.state
        .store
        .set_quotas(tenant.id, &quotas, &op())
        .await
        .expect("quotas");
}

async fn deploy(app: &TestApp, tenant: &str, name: &str) -> Result<(), String> {
    app.state
        .deployer()
        .deploy(
            &Slug::parse(tenant).expect("slug"),
            &Slug::parse(name).expect("slug"),
            guest_wasm("hello.wasm"),
            "test",
            1,
            false,
        )
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

#[tokio::test]
async fn a_new_app_over_the_app_quota_is_refused_and_existing_ones_still_deploy() {
    for db in TestDatabase::all().await.expect("databases") {
        let app = TestApp::on(db).await;
        tenant_with(
            &app,
            "small",
            Quotas {
                max_apps: 1,
                ..quotas()
            },
        )
        .await;
        deploy(&app, "small", "one").await.expect("first app");
        let refused = deploy(&app, "small", "two").await.expect_err("over quota");
        assert!(refused.contains("quota allows 1"), "{refused}");
        deploy(&app, "small", "one")
            .await
            .expect("new version of an existing app");
        let missing = app.get("/apps/small/two/").await;
        assert_eq!(
            missing.status,
            StatusCode::NOT_FOUND,
            "nothing half-created"
        );
    }
}

#[tokio::test]
async fn a_version_over_the_storage_quota_is_refused_and_nothing_is_stored() {
    for db in TestDatabase::all().await.expect("databases") {
        let app = TestApp::on(db).await;
        let size = i64::try_from(guest_wasm("hello.wasm").len()).expect("size");
        tenant_with(
            &app,
            "tight",
            Quotas {
                max_version_storage_bytes: size + size / 2,
                ..quotas()
            },
        )
        .await;
        deploy(&app, "tight", "hello")
            .await
            .expect("first version fits");
        let refused = deploy(&app, "tight", "hello")
            .await
            .expect_err("second does not");
        assert!(refused.contains("over its quota"), "{refused}");
        let store = &app.state.store;
        let tenant = store
            .tenant_by_slug(&Slug::parse("tight").expect("slug"))
            .await
            .expect("q")
            .expect("tenant");
        let id = store
            .app_id(tenant.id, &Slug::parse("hello").expect("slug"))
            .await
            .expect("q")
            .expect("app");
        let versions = store.list_versions(tenant.id, id).await.expect("versions");
        assert_eq!(versions.len(), 1);
    }
}

fn spin() -> String {
    crate::support::hostile_request("spin")
}

#[tokio::test]
async fn callbacks_over_the_tenant_concurrency_quota_get_429_and_run_under_its_deadline() {
    let app = TestApp::new().await;
    tenant_with(
        &app,
        "evil",
        Quotas {
            max_concurrent_callbacks: 1,
            callback_deadline_ms: 400,
            ..quotas()
        },
    )
    .await;
    app.deploy("evil", "hostile", "guest_hostile.wasm").await;
    let uri = "/apps/evil/hostile/_dash-update-component";
    let started = Instant::now();
    let (first, (second, second_took)) = tokio::join!(app.post_json(uri, spin()), async {
        tokio::time::sleep(Duration::from_millis(150)).await;
        let sent = Instant::now();
        let reply = app.post_json(uri, spin()).await;
        (reply, sent.elapsed())
    });
    // The tenant's 400 ms deadline applies, not the platform's 5 s.
    assert_eq!(first.error_code(), "callback_deadline", "{}", first.text());
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        second.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        second.text()
    );
    assert_eq!(second.error_code(), "quota_exceeded");
    // The refusal is held before it is sent, so a client retrying at once costs little.
    assert!(
        second_took >= platform::quota::REFUSAL_DELAY,
        "refused after {second_took:?}"
    );
    // The slot came back.
    let again = app.post_json(uri, spin()).await;
    assert_eq!(again.error_code(), "callback_deadline", "{}", again.text());
}
