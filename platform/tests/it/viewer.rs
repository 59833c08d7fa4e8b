//! The viewer of a callback reaches a 0.2.0 guest (`host.viewer`) through the real router:
//! user id, email and team names for a member of the app's tenant; no email and no groups
//! for an outsider opening a public app; none for an anonymous viewer. The guest is
//! tests/guests/capable, whose `viewer.children` answers what `host.viewer` said.

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use platform::admin;
use platform::ids::Slug;
use platform::store::Change;
use platform::store::testing::TestDatabase;
use platform::tenancy::Email;
use serde_json::{Value, json};

use crate::support::{TestApp, hostile_request};

const UPDATE: &str = "/apps/acme/cap/_dash-update-component";

fn op() -> Change<'static> {
    use platform::clock::Clock;
    Change {
        actor: "test",
        remote_addr: None,
        at: platform::clock::SystemClock.now_millis(),
    }
}

/// What `viewer.children` answered for a request with `token` (anonymous without).
async fn viewer_seen(app: &TestApp, token: Option<&str>) -> Value {
    let mut request = Request::post(UPDATE).header(header::CONTENT_TYPE, "application/json");
    if let Some(token) = token {
        request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let reply = app
        .request(
            request
                .body(Body::from(hostile_request("viewer")))
                .expect("request"),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    reply.json()["response"]["viewer"]["children"].clone()
}

#[tokio::test]
async fn a_0_2_0_guest_sees_the_viewer_of_the_request() {
    for db in TestDatabase::all().await.expect("databases") {
        let backend = db.backend;
        let app = TestApp::on(db).await;
        app.deploy("acme", "cap", "guest_capable.wasm").await;
        app.deploy("zed", "other", "guest_capable.wasm").await;
        let store = &app.state.store;
        admin::set_visibility(store, "acme/cap", "public", &op())
            .await
            .expect("public");
        for (email, tenant) in [("ada@example.org", "acme"), ("eve@example.org", "zed")] {
            admin::create_user(store, email, None, false, &op())
                .await
                .expect("user");
            admin::grant(store, email, tenant, "viewer", &op())
                .await
                .expect("grant");
        }
        let acme = store
            .tenant_by_slug(&Slug::parse("acme").expect("slug"))
            .await
            .expect("q")
            .expect("acme");
        let ada = store
            .user_by_email(&Email::parse("ada@example.org").expect("email"))
            .await
            .expect("q")
            .expect("ada");
        let eve = store
            .user_by_email(&Email::parse("eve@example.org").expect("email"))
            .await
            .expect("q")
            .expect("eve");
        // Created out of order: the guest gets the names sorted.
        for team in ["sales", "analysts"] {
            let id = store.create_team(acme.id, team, &op()).await.expect("team");
            store
                .add_team_member(acme.id, id, ada.id, &op())
                .await
                .expect("member");
        }
        let token = |email: &'static str, tenant: &'static str| async move {
            admin::create_token(store, email, tenant, None, 1, &op())
                .await
                .expect("token")
                .token
        };

        let ada_token = token("ada@example.org", "acme").await;
        assert_eq!(
            viewer_seen(&app, Some(&ada_token)).await,
            json!({"ok": {
                "user_id": ada.id.0.to_string(),
                "email": "ada@example.org",
                "groups": ["analysts", "sales"],
            }}),
            "{backend:?}"
        );
        // An outsider on a public app: who they are, but not their address or groups.
        let eve_token = token("eve@example.org", "zed").await;
        assert_eq!(
            viewer_seen(&app, Some(&eve_token)).await,
            json!({"ok": {"user_id": eve.id.0.to_string(), "email": null, "groups": []}}),
            "{backend:?}"
        );
        assert_eq!(
            viewer_seen(&app, None).await,
            json!({"ok": null}),
            "{backend:?}"
        );
    }
}

#[tokio::test]
async fn a_query_on_a_source_the_app_was_not_granted_is_not_granted_through_the_platform() {
    let app = TestApp::new().await;
    app.deploy("acme", "cap", "guest_capable.wasm").await;
    admin::set_visibility(&app.state.store, "acme/cap", "public", &op())
        .await
        .expect("public");
    let reply = app.post_json(UPDATE, hostile_request("query")).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(
        reply.json()["response"]["query"]["children"]["err"]["kind"],
        "not-granted"
    );
}
