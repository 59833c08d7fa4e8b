//! Usage per app (issue 17's charts), on SQLite and PostgreSQL: real guests answer real
//! callbacks through the router (ok, PreventUpdate, the author's errors, a deadline; cache
//! hits and misses through the guest's `cache` import); `GET …/usage` shows them at once
//! (this server's unflushed counts) and after the flush (the stored minutes) for who may
//! deploy the app, 403 for a viewer, 404 for another tenant's admin; two replicas' flushes
//! add up; minutes older than eight days are pruned; the app page shows the table.

use std::time::Duration;

use axum::http::StatusCode;
use platform::admin;
use platform::ids::{AppId, Slug, TenantId};
use platform::store::testing::TestDatabase;
use platform::store::{Quotas, Store, UsageRow};
use platform::usage::Counts;
use serde_json::{Value, json};

use crate::sessions::{Browser, op};
use crate::support::{TestApp, hostile_request};
use crate::ui_admin::{signed_in, tenants};

async fn ids(store: &Store, tenant: &str, app: &str) -> (TenantId, AppId) {
    let tenant = store
        .tenant_by_slug(&Slug::parse(tenant).expect("slug"))
        .await
        .expect("q")
        .expect("tenant")
        .id;
    let app = store
        .app_id(tenant, &Slug::parse(app).expect("slug"))
        .await
        .expect("q")
        .expect("app");
    (tenant, app)
}

/// One callback of the capable guest (`tests/guests/capable`) with `arg`.
fn capable_request(callback: &str, arg: Value) -> String {
    json!({
        "output": format!("{callback}.children"),
        "outputs": {"id": callback, "property": "children"},
        "inputs": [{"id": "go", "property": "n_clicks", "value": arg}],
        "changedPropIds": ["go.n_clicks"]
    })
    .to_string()
}

/// Seven hostile callbacks (3 ok, 1 PreventUpdate, 2 errors, 1 deadline) and three
/// capable ones (a cache set, a hit, a miss), on `app`'s router.
async fn traffic(app: &TestApp) {
    let hostile = "/apps/b/hostile/_dash-update-component";
    for (callback, status) in [
        ("ok", StatusCode::OK),
        ("ok", StatusCode::OK),
        ("ok", StatusCode::OK),
        ("prevent", StatusCode::NO_CONTENT),
        ("fail", StatusCode::INTERNAL_SERVER_ERROR),
        ("fail", StatusCode::INTERNAL_SERVER_ERROR),
    ] {
        let reply = app.post_json(hostile, hostile_request(callback)).await;
        assert_eq!(reply.status, status, "{callback}: {}", reply.text());
    }
    let reply = app.post_json(hostile, hostile_request("spin")).await;
    assert_eq!(reply.error_code(), "callback_deadline", "{}", reply.text());
    let cap = "/apps/b/cap/_dash-update-component";
    for (arg, answer) in [
        (
            json!({"op": "set", "key": "k", "value": "v", "ttl": 600}),
            json!({"ok": null}),
        ),
        (json!({"op": "get", "key": "k"}), json!({"ok": "v"})),
        (json!({"op": "get", "key": "nope"}), json!({"ok": null})),
    ] {
        let reply = app.post_json(cap, capable_request("cache", arg)).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
        assert_eq!(reply.json()["response"]["cache"]["children"], answer);
    }
}

/// The sums a usage answer's points add up to must be its totals.
fn check_sums(body: &Value) {
    let points = body["points"].as_array().expect("points");
    for field in [
        "callbacks",
        "errors",
        "limit_hits",
        "cache_hits",
        "cache_misses",
    ] {
        let sum: u64 = points.iter().map(|p| p[field].as_u64().expect("n")).sum();
        assert_eq!(sum, body["totals"][field], "{field}: {body}");
    }
}

#[tokio::test]
async fn usage_counts_real_callbacks_for_who_may_deploy_and_replicas_add_up() {
    for db in TestDatabase::all().await.expect("databases") {
        let backend = db.backend;
        let app = tenants(Some(db)).await;
        let store = &app.state.store;
        let (b, _) = ids(store, "b", "hello").await;
        store
            .set_quotas(
                b,
                &Quotas {
                    callback_deadline_ms: 300,
                    ..Quotas::DEFAULT
                },
                &op(),
            )
            .await
            .expect("quotas");
        app.deploy("b", "hostile", "guest_hostile.wasm").await;
        app.deploy("b", "cap", "guest_capable.wasm").await;
        let (_, hostile) = ids(store, "b", "hostile").await;
        traffic(&app).await;

        // Before any flush: this server's counts, at once.
        let mut ada = signed_in(&app, "ada@example.org").await;
        let reply = ada.get("/api/v1/tenants/b/apps/hostile/usage").await;
        assert_eq!(reply.status, StatusCode::OK, "{backend:?} {}", reply.text());
        let body = reply.json();
        assert_eq!(body["window"], "1h");
        assert_eq!(body["step_minutes"], 1);
        assert_eq!(body["points"].as_array().expect("points").len(), 60);
        let totals = &body["totals"];
        assert_eq!(totals["callbacks"], 7, "{backend:?} {totals}");
        assert_eq!(totals["errors"], 3, "{totals}");
        assert_eq!(totals["limit_hits"], 1, "{totals}");
        assert_eq!(totals["cache_hits"], 0, "{totals}");
        assert_eq!(totals["cache_hit_ratio"], Value::Null, "{totals}");
        // The deadline call took 300 ms or more: the p99 is among the slow ones.
        assert!(totals["p99_ms"].as_f64().expect("p99") >= 250.0, "{totals}");
        assert!(totals["p50_ms"].as_f64().expect("p50") < 250.0, "{totals}");
        check_sums(&body);
        assert!(
            store
                .app_usage(b, hostile, 0)
                .await
                .expect("rows")
                .is_empty(),
            "{backend:?}: nothing stored before the flush"
        );

        // After the flush: the same figures, from the database.
        app.state.usage.flush(store).await.expect("flush");
        assert!(app.state.usage.pending(b, hostile, 0).is_empty());
        let stored = store.app_usage(b, hostile, 0).await.expect("rows");
        assert_eq!(
            stored.iter().map(|(_, c)| c.callbacks).sum::<u64>(),
            7,
            "{backend:?}"
        );
        let cap = ada.get("/api/v1/tenants/b/apps/cap/usage?window=6h").await;
        assert_eq!(cap.status, StatusCode::OK, "{}", cap.text());
        let cap = cap.json();
        assert_eq!(cap["step_minutes"], 5);
        assert_eq!(cap["points"].as_array().expect("points").len(), 72);
        assert_eq!(cap["totals"]["callbacks"], 3, "{backend:?} {cap}");
        assert_eq!(cap["totals"]["errors"], 0, "{cap}");
        assert_eq!(cap["totals"]["cache_hits"], 1, "{cap}");
        assert_eq!(cap["totals"]["cache_misses"], 1, "{cap}");
        assert_eq!(cap["totals"]["cache_hit_ratio"], 0.5, "{cap}");
        check_sums(&cap);

        // A second replica on the same database serves the same traffic; both flush.
        let replica = TestApp::replica_of(&app).await;
        traffic(&replica).await;
        traffic(&app).await;
        replica.state.usage.flush(store).await.expect("flush");
        let reply = ada
            .get("/api/v1/tenants/b/apps/hostile/usage?window=24h")
            .await;
        assert_eq!(
            reply.json()["totals"]["callbacks"],
            21,
            "{backend:?}: memory + two replicas"
        );
        app.state
            .usage
            .flush(&app.state.store)
            .await
            .expect("flush");
        let body = ada.get("/api/v1/tenants/b/apps/hostile/usage").await.json();
        assert_eq!(body["totals"]["callbacks"], 21, "{backend:?} {body}");
        assert_eq!(body["totals"]["errors"], 9, "{body}");
        assert_eq!(body["totals"]["limit_hits"], 3, "{body}");
        check_sums(&body);

        // Who may see it: the policy of the app page's deploy rights.
        let mut bob = signed_in(&app, "bob@example.org").await;
        let reply = bob.get("/api/v1/tenants/b/apps/hostile/usage").await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", reply.text());
        assert_eq!(reply.error_code(), "forbidden");
        let mut cleo = signed_in(&app, "cleo@example.org").await;
        let reply = cleo.get("/api/v1/tenants/b/apps/hostile/usage").await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{}", reply.text());
        let reply = Browser::new(&app)
            .get("/api/v1/tenants/b/apps/hostile/usage")
            .await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{}", reply.text());
        let reply = ada
            .get("/api/v1/tenants/b/apps/hostile/usage?window=2h")
            .await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.text());
        assert_eq!(reply.error_code(), "validation_failed");

        // The console's app page: the table for the admin, nothing for the viewer.
        let page = ada.get("/ui/b/apps/hostile").await;
        assert_eq!(page.status, StatusCode::OK);
        let html = page.text();
        assert!(html.contains("id=\"usage\""), "{html}");
        assert!(html.contains("id=\"usage-data\""));
        assert!(
            html.contains("<tr id=\"usage-totals\"><th scope=\"row\">Total</th><td>21</td><td>9</td><td>3</td>"),
            "{html}"
        );
        assert!(html.contains("src=\"/ui/static/plotly.min.js\""));
        let six = ada.get("/ui/b/apps/hostile?window=6h").await.text();
        assert!(six.contains("id=\"usage-window-6h\" aria-current=\"page\""));
        let page = bob.get("/ui/b/apps/hello").await;
        assert_eq!(page.status, StatusCode::OK);
        assert!(!page.text().contains("id=\"usage\""));
        for script in ["/ui/static/usage.js", "/ui/static/plotly.min.js"] {
            let reply = app.get(script).await;
            assert_eq!(reply.status, StatusCode::OK, "{script}");
            assert!(
                reply
                    .content_type
                    .as_deref()
                    .is_some_and(|t| t.starts_with("text/javascript")),
                "{script}"
            );
        }
    }
}

#[tokio::test]
async fn the_flush_prunes_minutes_older_than_eight_days_and_deleting_the_app_removes_its_rows() {
    for db in TestDatabase::all().await.expect("databases") {
        let backend = db.backend;
        let app = tenants(Some(db)).await;
        let store = &app.state.store;
        let (b, hello) = ids(store, "b", "hello").await;
        let now = app.state.clock.now_millis() / 60_000 * 60_000;
        let day = 24 * 60 * 60_000;
        let mut one = Counts::default();
        one.count_callback("ok", Duration::from_millis(2));
        let row = |minute: i64| UsageRow {
            tenant: b,
            app: hello,
            minute,
            counts: one,
        };
        // Nine days old, seven days old, now; and the same minute twice (adds).
        store
            .add_app_usage(
                &[row(now - 9 * day), row(now - 7 * day), row(now), row(now)],
                0,
            )
            .await
            .expect("rows");
        let minutes: Vec<(i64, u64)> = store
            .app_usage(b, hello, 0)
            .await
            .expect("rows")
            .into_iter()
            .map(|(m, c)| (m, c.callbacks))
            .collect();
        assert_eq!(
            minutes,
            vec![(now - 9 * day, 1), (now - 7 * day, 1), (now, 2)],
            "{backend:?}"
        );
        // A row of an app that no longer exists is not written.
        store
            .add_app_usage(
                &[UsageRow {
                    app: AppId(hello.0 + 1000),
                    ..row(now)
                }],
                0,
            )
            .await
            .expect("rows");
        assert!(
            store
                .app_usage(b, AppId(hello.0 + 1000), 0)
                .await
                .expect("q")
                .is_empty()
        );

        app.state.usage.flush(store).await.expect("flush");
        let minutes: Vec<i64> = store
            .app_usage(b, hello, 0)
            .await
            .expect("rows")
            .into_iter()
            .map(|(m, _)| m)
            .collect();
        assert_eq!(minutes, vec![now - 7 * day, now], "{backend:?}: pruned");

        // Deleting the app deletes its minutes.
        let root = admin::create_user(store, "root@example.org", None, true, &op())
            .await
            .expect("root");
        let principal = platform::policy::Principal::User(platform::policy::UserPrincipal {
            id: root.id,
            superadmin: true,
            memberships: Vec::new(),
        });
        platform::manage::delete_app(&app.state, &principal, ("b", "hello"), &op())
            .await
            .expect("deleted");
        assert!(
            store.app_usage(b, hello, 0).await.expect("rows").is_empty(),
            "{backend:?}: the deleted app's usage stays"
        );
    }
}
