//! The web console through the real router: the gallery shows what the policy allows, the
//! app page's forms (rollback, settings, visibility, delete) need the CSRF token and the
//! role, tokens on `/account`, error pages by `Accept`, sign-in and back.

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use platform::admin;
use platform::ids::Slug;
use platform::store::testing::TestDatabase;
use platform::store::{AuditFilter, Store};

use crate::sessions::{Browser, PASSWORD, csrf_of, op, setup};
use crate::support::TestApp;

fn location(reply: &crate::support::Reply) -> String {
    reply
        .headers
        .get(header::LOCATION)
        .map(|l| l.to_str().expect("ascii").to_owned())
        .unwrap_or_default()
}

/// `setup` (restricted `b/hello` granted to bob; carl a viewer without it), plus ada, an
/// admin of `b`, a second version of hello and a public `b/open`.
async fn console(db: Option<TestDatabase>) -> TestApp {
    let app = setup(db).await;
    let store = &app.state.store;
    admin::create_user(store, "ada@example.org", Some(PASSWORD), false, &op())
        .await
        .expect("ada");
    admin::grant(store, "ada@example.org", "b", "admin", &op())
        .await
        .expect("grant");
    app.deploy("b", "hello", "hello.wasm").await;
    app.deploy("b", "open", "hello.wasm").await;
    app
}

async fn signed_in<'a>(app: &'a TestApp, email: &str) -> Browser<'a> {
    let mut browser = Browser::new(app);
    let reply = browser.sign_in(email, PASSWORD, "/").await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER, "{}", reply.text());
    browser
}

async fn live_version(store: &Store, tenant: &str, app: &str) -> Option<i64> {
    store
        .live_version(
            &Slug::parse(tenant).expect("slug"),
            &Slug::parse(app).expect("slug"),
        )
        .await
        .expect("query")
        .map(|v| v.number)
}

async fn audited(store: &Store, action: &str) -> usize {
    let filter = AuditFilter {
        action: Some(action),
        actor: None,
    };
    store
        .filtered_audit_entries(None, &filter, None, 100)
        .await
        .expect("audit")
        .len()
}

#[tokio::test]
async fn the_gallery_lists_only_the_apps_each_person_may_open() {
    for db in TestDatabase::all().await.expect("databases") {
        let app = console(Some(db)).await;
        let mut bob = signed_in(&app, "bob@example.org").await;
        let html = bob.get("/").await.text();
        assert!(
            html.contains("id=\"app-b-hello\""),
            "bob is granted hello: {html}"
        );
        assert!(html.contains("id=\"app-b-open\""));
        assert!(
            html.contains("bob@example.org"),
            "the header names the person"
        );
        // A viewer gets no "Manage" link: the app page's forms are for authors.
        assert!(!html.contains("/ui/b/apps/hello\""), "{html}");
        let mut carl = signed_in(&app, "carl@example.org").await;
        let html = carl.get("/").await.text();
        assert!(
            !html.contains("app-b-hello"),
            "carl is not granted hello: {html}"
        );
        assert!(html.contains("id=\"app-b-open\""));
        let mut ada = signed_in(&app, "ada@example.org").await;
        let html = ada.get("/").await.text();
        assert!(html.contains("href=\"/ui/b/apps/hello\""), "{html}");
        // Anonymous: the public app only, and a sign-in link.
        let html = Browser::new(&app).get("/").await.text();
        assert!(html.contains("id=\"app-b-open\"") && !html.contains("app-b-hello"));
        assert!(html.contains("id=\"sign-in\""));
        // Search narrows by name or title.
        let html = ada.get("/?q=ope").await.text();
        assert!(
            html.contains("app-b-open") && !html.contains("app-b-hello"),
            "{html}"
        );
        // The tenant switcher narrows to one tenant.
        let html = ada.get("/?tenant=zzz").await.text();
        assert!(html.contains("id=\"no-apps\""), "{html}");
    }
}

#[tokio::test]
async fn rollback_needs_the_role_and_the_csrf_token_and_is_audited() {
    for db in TestDatabase::all().await.expect("databases") {
        let app = console(Some(db)).await;
        let store = &app.state.store;
        assert_eq!(live_version(store, "b", "hello").await, Some(2));
        // bob may open hello but not deploy it: the page has no rollback button, and a
        // forged post is refused with 403.
        let mut bob = signed_in(&app, "bob@example.org").await;
        let page = bob.get("/ui/b/apps/hello").await;
        assert_eq!(page.status, StatusCode::OK);
        assert!(!page.text().contains("id=\"rollback-1\""));
        // Nor its callback graph: that is for who may deploy it.
        assert!(!page.text().contains("id=\"callback-graph\""));
        let csrf = csrf_of(&page.text());
        let reply = bob
            .post_form(
                "/ui/b/apps/hello/rollback",
                &[("csrf", &csrf), ("version", "1")],
            )
            .await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", reply.text());
        assert!(reply.text().contains("Not allowed"));
        // carl may not even see it: the same 404 as a missing app.
        let mut carl = signed_in(&app, "carl@example.org").await;
        let csrf = csrf_of(&carl.get("/").await.text());
        let reply = carl
            .post_form(
                "/ui/b/apps/hello/rollback",
                &[("csrf", &csrf), ("version", "1")],
            )
            .await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND);
        assert_eq!(
            carl.get("/ui/b/apps/hello").await.status,
            StatusCode::NOT_FOUND
        );
        assert_eq!(live_version(store, "b", "hello").await, Some(2));
        // ada without the CSRF token, or with a wrong one: refused, nothing changes.
        let mut ada = signed_in(&app, "ada@example.org").await;
        for token in [
            "",
            "0000000000000000000000000000000000000000000000000000000000000000",
        ] {
            let reply = ada
                .post_form(
                    "/ui/b/apps/hello/rollback",
                    &[("csrf", token), ("version", "1")],
                )
                .await;
            assert_eq!(reply.status, StatusCode::FORBIDDEN);
        }
        assert_eq!(live_version(store, "b", "hello").await, Some(2));
        assert_eq!(audited(store, "app.rollback").await, 0);
        // With it: live again, audited, back on the page with a notice.
        let page = ada.get("/ui/b/apps/hello").await.text();
        assert!(page.contains("id=\"rollback-1\""), "{page}");
        // The live version's callback graph, drawn from the component the runtime serves:
        // one callback from name.value to greeting.children, an arrow in and one out.
        assert!(page.contains("id=\"callback-graph\""), "{page}");
        assert!(
            page.contains("A callback reads name.value and writes greeting.children"),
            "{page}"
        );
        assert_eq!(
            page.matches("marker-end=\"url(#arrow)\"").count(),
            2,
            "{page}"
        );
        assert_eq!(page.matches("<g class=\"prop\">").count(), 2, "{page}");
        assert_eq!(page.matches("<g class=\"callback\">").count(), 1, "{page}");
        assert!(page.contains("git remote add tessera http://127.0.0.1:8080/git/b/hello.git"));
        let reply = ada
            .post_form(
                "/ui/b/apps/hello/rollback",
                &[("csrf", &csrf_of(&page)), ("version", "1")],
            )
            .await;
        assert_eq!(reply.status, StatusCode::SEE_OTHER, "{}", reply.text());
        assert_eq!(location(&reply), "/ui/b/apps/hello?done=rollback");
        assert_eq!(live_version(store, "b", "hello").await, Some(1));
        assert_eq!(audited(store, "app.rollback").await, 1);
        let page = ada.get(&location(&reply)).await.text();
        assert!(page.contains("The version is live."));
    }
}

#[tokio::test]
async fn secrets_are_write_only_and_visibility_changes_from_the_page() {
    let app = console(None).await;
    let mut ada = signed_in(&app, "ada@example.org").await;
    let csrf = csrf_of(&ada.get("/ui/b/apps/hello").await.text());
    let secret_value = "hunter2-the-secret-value";
    let reply = ada
        .post_form(
            "/ui/b/apps/hello/settings",
            &[
                ("csrf", &csrf),
                ("name", "API_KEY"),
                ("value", secret_value),
                ("secret", "on"),
            ],
        )
        .await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER, "{}", reply.text());
    let reply = ada
        .post_form(
            "/ui/b/apps/hello/settings",
            &[("csrf", &csrf), ("name", "REGION"), ("value", "eu-west")],
        )
        .await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER);
    let page = ada.get("/ui/b/apps/hello").await.text();
    assert!(page.contains("id=\"setting-API_KEY\"") && page.contains("secret, set"));
    assert!(
        !page.contains(secret_value),
        "a secret is never shown again"
    );
    assert!(page.contains("eu-west"));
    // A bad name is shown on the page, not stored.
    let reply = ada
        .post_form(
            "/ui/b/apps/hello/settings",
            &[("csrf", &csrf), ("name", "1bad"), ("value", "x")],
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert!(reply.text().contains("invalid setting name"));
    let reply = ada
        .post_form(
            "/ui/b/apps/hello/settings/delete",
            &[("csrf", &csrf), ("name", "REGION")],
        )
        .await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER);
    assert!(!ada.get("/ui/b/apps/hello").await.text().contains("eu-west"));
    // bob (a viewer) cannot set one.
    let mut bob = signed_in(&app, "bob@example.org").await;
    let bob_csrf = csrf_of(&bob.get("/").await.text());
    let reply = bob
        .post_form(
            "/ui/b/apps/hello/settings",
            &[("csrf", &bob_csrf), ("name", "X"), ("value", "y")],
        )
        .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    // Visibility: restricted → tenant, and carl now sees it in his gallery.
    let reply = ada
        .post_form(
            "/ui/b/apps/hello/visibility",
            &[("csrf", &csrf), ("visibility", "tenant")],
        )
        .await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER);
    let mut carl = signed_in(&app, "carl@example.org").await;
    assert!(carl.get("/").await.text().contains("id=\"app-b-hello\""));
}

#[tokio::test]
async fn deleting_an_app_needs_its_name_typed_and_removes_it_everywhere() {
    for db in TestDatabase::all().await.expect("databases") {
        let app = console(Some(db)).await;
        let store = &app.state.store;
        let mut ada = signed_in(&app, "ada@example.org").await;
        let csrf = csrf_of(&ada.get("/ui/b/apps/hello").await.text());
        let reply = ada
            .post_form(
                "/ui/b/apps/hello/settings",
                &[("csrf", &csrf), ("name", "REGION"), ("value", "eu")],
            )
            .await;
        assert_eq!(reply.status, StatusCode::SEE_OTHER);
        let reply = ada
            .post_form(
                "/ui/b/apps/hello/delete",
                &[("csrf", &csrf), ("confirm", "hell")],
            )
            .await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST);
        assert!(live_version(store, "b", "hello").await.is_some());
        // bob may open it but not delete it.
        let mut bob = signed_in(&app, "bob@example.org").await;
        let bob_csrf = csrf_of(&bob.get("/").await.text());
        let reply = bob
            .post_form(
                "/ui/b/apps/hello/delete",
                &[("csrf", &bob_csrf), ("confirm", "hello")],
            )
            .await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN);
        let reply = ada
            .post_form(
                "/ui/b/apps/hello/delete",
                &[("csrf", &csrf), ("confirm", "hello")],
            )
            .await;
        assert_eq!(reply.status, StatusCode::SEE_OTHER, "{}", reply.text());
        assert_eq!(live_version(store, "b", "hello").await, None);
        assert_eq!(audited(store, "app.delete").await, 1);
        assert_eq!(
            ada.get("/ui/b/apps/hello").await.status,
            StatusCode::NOT_FOUND
        );
        assert!(!ada.get("/").await.text().contains("app-b-hello"));
        // The name is free again: a new deploy starts at version 1 with no settings.
        app.deploy("b", "hello", "hello.wasm").await;
        assert_eq!(live_version(store, "b", "hello").await, Some(1));
        let page = ada.get("/ui/b/apps/hello").await.text();
        assert!(!page.contains("setting-REGION"), "{page}");
    }
}

#[tokio::test]
async fn the_rest_api_deletes_an_app_through_the_same_function() {
    let app = console(None).await;
    let mut ada = signed_in(&app, "ada@example.org").await;
    let csrf = csrf_of(&ada.get("/account").await.text());
    let reply = ada
        .send(
            Request::delete("/api/v1/tenants/b/apps/open").header("x-csrf-token", &csrf),
            Body::empty(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.text());
    assert_eq!(live_version(&app.state.store, "b", "open").await, None);
    let reply = ada
        .send(
            Request::delete("/api/v1/tenants/b/apps/open").header("x-csrf-token", &csrf),
            Body::empty(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(reply.error_code(), "not_found");
}

#[tokio::test]
async fn tokens_are_created_shown_once_listed_and_revoked_from_the_account_page() {
    let app = console(None).await;
    let mut ada = signed_in(&app, "ada@example.org").await;
    let csrf = csrf_of(&ada.get("/account").await.text());
    let reply = ada
        .post_form("/account/tokens", &[("tenant", "b"), ("role", "viewer")])
        .await;
    assert_eq!(
        reply.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "no CSRF field"
    );
    let reply = ada
        .post_form(
            "/account/tokens",
            &[("csrf", &csrf), ("tenant", "b"), ("role", "viewer")],
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let html = reply.text();
    let at = html.find("tsr_").expect("the token is shown");
    let token: String = html[at..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    let api = app.get_with_token("/api/v1/tenants/b/apps", &token).await;
    assert_eq!(api.status, StatusCode::OK, "{}", api.text());
    // Shown once: the next visit lists it without the secret.
    let listed = ada.get("/account").await.text();
    assert!(!listed.contains(&token));
    let public_id = token.split('_').nth(1).expect("id").to_owned();
    assert!(listed.contains(&format!("id=\"token-{public_id}\"")));
    // A role above one's own is refused; a tenant one is not in is a 404.
    let mut bob = signed_in(&app, "bob@example.org").await;
    let bob_csrf = csrf_of(&bob.get("/account").await.text());
    let reply = bob
        .post_form(
            "/account/tokens",
            &[("csrf", &bob_csrf), ("tenant", "b"), ("role", "admin")],
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    // bob cannot revoke ada's token.
    let reply = bob
        .post_form(
            "/account/tokens/revoke",
            &[("csrf", &bob_csrf), ("tenant", "b"), ("id", &public_id)],
        )
        .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    let reply = ada
        .post_form(
            "/account/tokens/revoke",
            &[("csrf", &csrf), ("tenant", "b"), ("id", &public_id)],
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    let api = app.get_with_token("/api/v1/tenants/b/apps", &token).await;
    assert_eq!(api.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn error_pages_are_html_for_browsers_and_json_for_the_api() {
    let app = console(None).await;
    let browser_get = |uri: &str| {
        Request::get(uri)
            .header(header::ACCEPT, "text/html,application/xhtml+xml")
            .header(header::HOST, "127.0.0.1:8080")
            .body(Body::empty())
            .expect("request")
    };
    let reply = app.request(browser_get("/no/such/page")).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert!(reply.text().contains("id=\"error-heading\">Not found"));
    assert!(reply.text().contains("Back to your apps"));
    let reply = app.get("/no/such/page").await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(reply.error_code(), "not_found");
    // The API's JSON is unchanged, whatever the Accept header says.
    let reply = app.request(browser_get("/api/v1/nope")).await;
    assert_eq!(reply.error_code(), "not_found");
    // The stylesheet is served from the platform origin; the page loads it and no script.
    let css = app.get("/ui/static/tessera.css").await;
    assert_eq!(css.status, StatusCode::OK);
    assert!(css.text().contains("prefers-color-scheme: dark"));
    let home = app.request(browser_get("/")).await;
    assert!(home.text().contains("/ui/static/tessera.css"));
    assert!(!home.text().contains("<script"));
    let csp = home.headers[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .expect("csp");
    assert!(csp.contains("script-src 'self'"), "{csp}");
}

#[tokio::test]
async fn a_signed_out_visit_to_a_console_page_signs_in_and_comes_back() {
    let app = console(None).await;
    let mut browser = Browser::new(&app);
    let reply = browser.get("/ui/b/apps/hello").await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER);
    assert_eq!(location(&reply), "/login?next=/ui/b/apps/hello");
    let reply = browser
        .sign_in("ada@example.org", PASSWORD, "/ui/b/apps/hello")
        .await;
    assert_eq!(location(&reply), "/ui/b/apps/hello");
    assert_eq!(browser.get("/ui/b/apps/hello").await.status, StatusCode::OK);
    // A deep link to a private app on the apps origin leads to sign-in, not JSON.
    let mut stranger = Browser::new(&app);
    let reply = stranger.get("/apps/b/hello/").await;
    let to = location(&reply);
    assert!(reply.status.is_redirection(), "{}", reply.text());
    assert!(!to.is_empty() && reply.content_type.as_deref() != Some("application/json"));
}

#[tokio::test]
async fn the_gallery_pages_through_many_apps_fifty_at_a_time() {
    let app = TestApp::new().await;
    for n in 0..55 {
        app.deploy("many", &format!("app-{n:03}"), "hello.wasm")
            .await;
    }
    let first = app.get("/").await.text();
    assert_eq!(first.matches("class=\"card\"").count(), 50);
    let at = first.find("id=\"next-page\"").expect("a next page");
    let href_at = first[..at].rfind("href=\"").expect("href") + 6;
    let next = first[href_at..]
        .split('"')
        .next()
        .expect("href")
        .replace("&#38;", "&")
        .replace("&amp;", "&");
    let second = app.get(&next).await.text();
    assert_eq!(second.matches("class=\"card\"").count(), 5, "{next}");
    assert!(second.contains("app-many-app-054") && !second.contains("app-many-app-000"));
}

#[tokio::test]
async fn the_app_page_shows_the_latest_log_lines_to_who_may_deploy_it() {
    let app = console(None).await;
    let store = &app.state.store;
    // A name no other test uses: the app log is the process's.
    app.deploy("b", "log-tail", "guest_hostile.wasm").await;
    admin::set_visibility(store, "b/log-tail", "public", &op())
        .await
        .expect("public");
    let reply = app
        .post_json(
            "/apps/b/log-tail/_dash-update-component",
            crate::support::hostile_request("log"),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let mut ada = signed_in(&app, "ada@example.org").await;
    let page = ada.get("/ui/b/apps/log-tail").await.text();
    for line in [
        "hello from host.log",
        "hello from stdout",
        "hello from stderr",
    ] {
        assert!(page.contains(line), "{line}: {page}");
    }
    assert!(page.contains("<td>stderr</td>"), "{page}");
    // The page follows the log from where it stopped, with its own script (CSP: 'self').
    let next = page
        .split("data-next=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the table's cursor")
        .to_owned();
    assert!(
        page.contains("<script src=\"/ui/static/console-log.js\" defer>"),
        "{page}"
    );
    let script = ada.get("/ui/static/console-log.js").await;
    assert_eq!(script.status, StatusCode::OK);
    assert!(script.text().contains("data"), "served");
    // The API answers the same lines, then only what came after the page's cursor: a
    // failed callback, with the error id its viewer was told.
    let api = "/api/v1/tenants/b/apps/log-tail/logs";
    let all = ada.get(api).await;
    assert_eq!(all.status, StatusCode::OK, "{}", all.text());
    let all = all.json();
    assert_eq!(all["next"].as_str(), Some(next.as_str()), "{all}");
    assert!(all["lines"].as_array().expect("lines").len() >= 3, "{all}");
    let nothing_new = ada.get(&format!("{api}?after={next}")).await.json();
    assert_eq!(nothing_new["lines"], serde_json::json!([]), "{nothing_new}");
    assert_eq!(nothing_new["next"].as_str(), Some(next.as_str()));
    let failed = app
        .post_json(
            "/apps/b/log-tail/_dash-update-component",
            crate::support::hostile_request("fail"),
        )
        .await;
    assert_eq!(
        failed.status,
        StatusCode::INTERNAL_SERVER_ERROR,
        "{}",
        failed.text()
    );
    let error_id = failed
        .text()
        .split("error id ")
        .nth(1)
        .map(|rest| {
            rest.chars()
                .take_while(char::is_ascii_alphanumeric)
                .collect::<String>()
        })
        .filter(|id| id.len() == 10)
        .unwrap_or_else(|| panic!("an error id: {}", failed.text()));
    let newer = ada.get(&format!("{api}?after={next}")).await.json();
    let lines = newer["lines"].as_array().expect("lines");
    assert_eq!(lines.len(), 1, "{newer}");
    assert_eq!(lines[0]["stream"], "error");
    let message = lines[0]["message"].as_str().expect("text");
    assert!(
        message.contains("callback fail.children failed") && message.contains(&error_id),
        "{message}"
    );
    assert_eq!(newer["next"], lines[0]["cursor"]);
    let page = ada.get("/ui/b/apps/log-tail").await.text();
    assert!(
        page.contains("class=\"log-error\"") && page.contains(&error_id),
        "{page}"
    );
    for bad in ["?after=x", "?after=-1", "?limit=0", "?limit=501"] {
        let reply = ada.get(&format!("{api}{bad}")).await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{bad}: {}",
            reply.text()
        );
    }
    // A viewer of the tenant opens the app's page but not its log, nor through the API.
    let mut carl = signed_in(&app, "carl@example.org").await;
    let page = carl.get("/ui/b/apps/log-tail").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(!page.text().contains("hello from stdout"));
    assert!(!page.text().contains("id=\"log-heading\""));
    assert_eq!(carl.get(api).await.status, StatusCode::FORBIDDEN);
}
