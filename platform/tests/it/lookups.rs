//! One lookup per request (issue 16): a warm Dash request asks the database nothing, and a
//! change made through one replica (a revoked grant, a deploy) reaches another replica's
//! cached lookups through the database's change counter within two seconds.
//! Runs on SQLite and, when configured, PostgreSQL.

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use platform::admin;
use platform::ids::Slug;
use platform::store::Change;
use platform::store::testing::TestDatabase;
use serde_json::json;

use crate::support::TestApp;

const SALES: &str = "/apps/demo/sales-explorer/";

fn op() -> Change<'static> {
    use platform::clock::Clock;
    Change {
        actor: "test",
        remote_addr: None,
        at: platform::clock::SystemClock.now_millis(),
    }
}

fn summary_request() -> String {
    json!({
        "output": "summary.children",
        "outputs": {"id": "summary", "property": "children"},
        "inputs": [{"id": "region", "property": "value", "value": "North"}],
        "changedPropIds": ["region.value"]
    })
    .to_string()
}

#[tokio::test]
async fn a_warm_dash_request_asks_the_database_nothing() {
    for db in TestDatabase::all().await.expect("databases") {
        let backend = db.backend;
        let app = TestApp::on(db).await;
        app.deploy("demo", "sales-explorer", "sales_explorer.wasm")
            .await;
        let callback = format!("{SALES}_dash-update-component");
        settle(&app).await;
        // Warm: the access answer and the live version are cached.
        let warm = app.post_json(&callback, summary_request()).await;
        assert_eq!(warm.status, StatusCode::OK, "{backend:?}: {}", warm.text());
        let store = &app.state.store;
        let (queries_before, polls_before) = (store.acquisitions(), app.state.changes.polls());
        for _ in 0..20 {
            let reply = app.post_json(&callback, summary_request()).await;
            assert_eq!(
                reply.status,
                StatusCode::OK,
                "{backend:?}: {}",
                reply.text()
            );
            let layout = app.get(&format!("{SALES}_dash-layout")).await;
            assert_eq!(layout.status, StatusCode::OK, "{backend:?}");
        }
        let queries = store.acquisitions() - queries_before;
        let polls = app.state.changes.polls() - polls_before;
        // The replica's own change-counter polls (one query each) are all there may be.
        assert!(
            queries <= polls,
            "{backend:?}: 40 warm Dash requests used the database {queries} times \
             ({polls} of them the change-counter poll)"
        );
        // And the counter is real: a request after a change asks again.
        let before = store.acquisitions();
        admin::set_visibility(store, "demo/sales-explorer", "tenant", &op())
            .await
            .expect("visibility");
        let after_change = store.acquisitions();
        let hidden = app.post_json(&callback, summary_request()).await;
        assert_eq!(
            hidden.status,
            StatusCode::NOT_FOUND,
            "{backend:?}: the change shows at once on the replica that made it"
        );
        assert!(
            store.acquisitions() > after_change && after_change > before,
            "{backend:?}: the request after a change asked the database again"
        );
    }
}

/// Wait until the replica polled the change counter after every change so far (the
/// deploy's own change moves it once more when the poll sees it).
async fn settle(app: &TestApp) {
    let polls = app.state.changes.polls();
    let deadline = Instant::now() + Duration::from_secs(5);
    while app.state.changes.polls() < polls + 2 {
        assert!(
            Instant::now() < deadline,
            "the change counter is not polled"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Bob, a viewer of tenant `b` granted the restricted app `b/report`, and his token.
async fn restricted_app_with_grantee(app: &TestApp) -> String {
    app.deploy("b", "report", "sales_explorer.wasm").await;
    let store = &app.state.store;
    admin::create_user(store, "bob@example.org", None, false, &op())
        .await
        .expect("user");
    admin::grant(store, "bob@example.org", "b", "viewer", &op())
        .await
        .expect("member");
    admin::set_visibility(store, "b/report", "restricted", &op())
        .await
        .expect("restricted");
    let (tenant, report, bob) = ids(app).await;
    store
        .grant_app_to_user(tenant, report, bob, &op())
        .await
        .expect("grant app");
    admin::create_token(store, "bob@example.org", "b", None, 1, &op())
        .await
        .expect("token")
        .token
}

async fn ids(
    app: &TestApp,
) -> (
    platform::ids::TenantId,
    platform::ids::AppId,
    platform::ids::UserId,
) {
    let store = &app.state.store;
    let tenant = store
        .tenant_by_slug(&Slug::parse("b").expect("slug"))
        .await
        .expect("q")
        .expect("b")
        .id;
    let report = store
        .app_id(tenant, &Slug::parse("report").expect("slug"))
        .await
        .expect("q")
        .expect("app");
    let bob = store
        .user_by_email(&platform::tenancy::Email::parse("bob@example.org").expect("email"))
        .await
        .expect("q")
        .expect("bob")
        .id;
    (tenant, report, bob)
}

async fn layout_for(replica: &TestApp, token: &str) -> (StatusCode, String) {
    let reply = replica
        .request(
            Request::get("/apps/b/report/_dash-layout")
                .header(header::AUTHORIZATION, format!("Bearer {token}"))
                .body(Body::empty())
                .expect("request"),
        )
        .await;
    (reply.status, reply.text())
}

/// Ask `replica` until `done` holds for its answer; the time it took, or a panic at 5 s.
async fn until(
    replica: &TestApp,
    token: &str,
    what: &str,
    done: impl Fn(&(StatusCode, String)) -> bool,
) -> Duration {
    let started = Instant::now();
    loop {
        let answer = layout_for(replica, token).await;
        if done(&answer) {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{what}: still {:?} after 5 s",
            answer.0
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test]
async fn a_revocation_and_a_deploy_reach_the_other_replica_within_two_seconds() {
    for db in TestDatabase::all().await.expect("databases") {
        let backend = db.backend;
        let first = TestApp::on(db).await;
        let token = restricted_app_with_grantee(&first).await;
        let second = TestApp::replica_of(&first).await;
        // Both replicas serve bob, and have the answer cached.
        let (status, sales_layout) = layout_for(&second, &token).await;
        assert_eq!(status, StatusCode::OK, "{backend:?}: {sales_layout}");
        assert_eq!(layout_for(&first, &token).await.0, StatusCode::OK);

        // A deploy through the first replica: the second serves the new layout.
        first.deploy("b", "report", "hello.wasm").await;
        let took = until(&second, &token, "deploy", |(status, body)| {
            *status == StatusCode::OK && *body != sales_layout
        })
        .await;
        assert!(
            took < Duration::from_secs(2),
            "{backend:?}: the deploy took {took:?} to reach the other replica"
        );

        // The grant revoked through the first replica: the second hides the app.
        let (tenant, report, bob) = ids(&first).await;
        let revoked = first
            .state
            .store
            .revoke_app_from_user(tenant, report, bob, &op())
            .await
            .expect("revoke");
        assert!(revoked);
        let took = until(&second, &token, "revocation", |(status, _)| {
            *status == StatusCode::NOT_FOUND
        })
        .await;
        assert!(
            took < Duration::from_secs(2),
            "{backend:?}: the revocation took {took:?} to reach the other replica"
        );
        assert_eq!(
            layout_for(&first, &token).await.0,
            StatusCode::NOT_FOUND,
            "{backend:?}: and at once on the replica that made it"
        );
    }
}
