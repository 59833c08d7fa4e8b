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
    deploy_bytes(app, tenant, name, guest_wasm("hello.wasm")).await
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

/// `wasm` with a custom section appended: another component (another hash), same code.
fn variant(mut wasm: Vec<u8>, note: &[u8]) -> Vec<u8> {
    let name = b"note";
    let size = u8::try_from(1 + name.len() + note.len()).expect("small");
    wasm.extend([0, size, u8::try_from(name.len()).expect("small")]);
    wasm.extend(name);
    wasm.extend(note);
    wasm
}

async fn deploy_bytes(
    app: &TestApp,
    tenant: &str,
    name: &str,
    wasm: Vec<u8>,
) -> Result<(), String> {
    app.state
        .deployer()
        .deploy(
            &Slug::parse(tenant).expect("slug"),
            &Slug::parse(name).expect("slug"),
            wasm,
            "test",
            1,
            false,
        )
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// The storage quota counts what the tenant stores: a component run by several versions
/// and apps counts once; a new one over the quota is refused with nothing stored.
#[tokio::test]
async fn a_version_over_the_storage_quota_is_refused_and_nothing_is_stored() {
    for db in TestDatabase::all().await.expect("databases") {
        let app = TestApp::on(db).await;
        let hello = guest_wasm("hello.wasm");
        let size = i64::try_from(hello.len()).expect("size");
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
        // The same component again, as a new version and as another app: nothing new stored.
        deploy(&app, "tight", "hello")
            .await
            .expect("a second version of the same component fits");
        deploy(&app, "tight", "again")
            .await
            .expect("another app of the same component fits");
        let store = &app.state.store;
        let tenant = store
            .tenant_by_slug(&Slug::parse("tight").expect("slug"))
            .await
            .expect("q")
            .expect("tenant");
        assert_eq!(
            store.component_usage(tenant.id).await.expect("usage"),
            (1, size)
        );
        let refused = deploy_bytes(&app, "tight", "hello", variant(hello, b"other"))
            .await
            .expect_err("another component does not");
        assert!(refused.contains("over its quota"), "{refused}");
        let id = store
            .app_id(tenant.id, &Slug::parse("hello").expect("slug"))
            .await
            .expect("q")
            .expect("app");
        let versions = store.list_versions(tenant.id, id).await.expect("versions");
        assert_eq!(versions.len(), 2, "nothing stored");
        assert_eq!(
            store.component_usage(tenant.id).await.expect("usage"),
            (1, size),
            "nothing stored"
        );
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
