//! Apps on their own origin (issue 11): the platform's origin serves no app and the apps
//! origin nothing but apps; the hand-off code is single-use, short-lived and bound to its
//! origin, path and browser; the app session opens apps only, and ends with the platform
//! session; platform pages forbid framing and foreign scripts; HTTPS means `__Host-`.

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use platform::admin;
use platform::auth::handoff::{self, CODE_TTL_MS, HandoffError, PlatformSignIn};
use platform::ids::{Slug, UserId};
use platform::store::Change;

use crate::support::{Reply, TestApp};

const PASSWORD: &str = "correct horse battery";

fn op() -> Change<'static> {
    use platform::clock::Clock;
    Change {
        actor: "test",
        remote_addr: None,
        at: platform::clock::SystemClock.now_millis(),
    }
}

async fn get_at(app: &TestApp, host: &str, path: &str, cookie: Option<&str>) -> Reply {
    let mut request = Request::get(path).header(header::HOST, host);
    if let Some(cookie) = cookie {
        request = request.header(header::COOKIE, cookie);
    }
    app.request(request.body(Body::empty()).expect("request"))
        .await
}

fn location(reply: &Reply) -> String {
    reply.headers[header::LOCATION]
        .to_str()
        .expect("ascii")
        .to_owned()
}

/// The `name=value` of the cookie `name` the reply sets.
fn cookie(reply: &Reply, name: &str) -> Option<String> {
    reply
        .headers
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().expect("ascii").to_owned())
        .find(|c| c.starts_with(&format!("{name}=")))
}

fn pair(set_cookie: &str) -> String {
    set_cookie.split(';').next().expect("pair").to_owned()
}

/// Tenants `a` (public hello) and `b` (hello visible to its members), bob a viewer of b.
async fn setup() -> TestApp {
    let app = TestApp::new().await;
    app.deploy("a", "hello", "hello.wasm").await;
    app.deploy("b", "hello", "hello.wasm").await;
    let store = &app.state.store;
    admin::create_user(store, "bob@example.org", Some(PASSWORD), false, &op())
        .await
        .expect("user");
    admin::grant(store, "bob@example.org", "b", "viewer", &op())
        .await
        .expect("grant");
    admin::set_visibility(store, "b/hello", "tenant", &op())
        .await
        .expect("visibility");
    app
}

#[tokio::test]
async fn apps_are_served_only_on_their_origin_and_the_platform_redirects_there() {
    let app = setup().await;
    let platform = "127.0.0.1:8080";
    let moved = get_at(&app, platform, "/apps/a/hello/_dash-layout?x=1", None).await;
    assert_eq!(moved.status, StatusCode::TEMPORARY_REDIRECT);
    assert_eq!(
        location(&moved),
        "http://a.localhost:8080/apps/a/hello/_dash-layout?x=1"
    );
    let served = get_at(&app, "a.localhost:8080", "/apps/a/hello/_dash-layout", None).await;
    assert_eq!(served.status, StatusCode::OK);
    // The apps origin answers nothing of the platform's.
    for path in [
        "/",
        "/login",
        "/account/password",
        "/api/v1/tenants",
        "/api/v1/openapi.json",
        "/auth/apps/handoff?next=/apps/a/hello/&state=x",
        "/git/a/hello.git/info/refs?service=git-upload-pack",
    ] {
        let reply = get_at(&app, "a.localhost:8080", path, None).await;
        assert_eq!(
            reply.status,
            StatusCode::NOT_FOUND,
            "{path}: {}",
            reply.text()
        );
    }
    assert_eq!(
        get_at(&app, "a.localhost:8080", "/healthz", None)
            .await
            .status,
        StatusCode::OK
    );
    // A tenant's origin serves only that tenant's apps.
    for path in ["/apps/a/hello/", "/apps/a/hello/_dash-layout"] {
        let reply = get_at(&app, "b.localhost:8080", path, None).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{path}");
    }
    // X-Forwarded-Host counts only from a trusted proxy (none here).
    let forwarded = app
        .request(
            Request::get("/apps/a/hello/_dash-layout")
                .header(header::HOST, platform)
                .header("x-forwarded-host", "a.localhost:8080")
                .body(Body::empty())
                .expect("request"),
        )
        .await;
    assert_eq!(forwarded.status, StatusCode::TEMPORARY_REDIRECT);
}

#[tokio::test]
async fn platform_pages_forbid_framing_and_foreign_scripts() {
    let app = setup().await;
    let page = get_at(&app, "127.0.0.1:8080", "/login", None).await;
    let csp = page.headers[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .expect("ascii");
    for part in [
        "default-src 'none'",
        "script-src 'self'",
        "frame-ancestors 'none'",
        "form-action 'self' http://*.localhost:8080",
    ] {
        assert!(csp.contains(part), "{csp}");
    }
    assert_eq!(page.headers[header::X_FRAME_OPTIONS], "DENY");
    let api = get_at(&app, "127.0.0.1:8080", "/api/v1/tenants", None).await;
    assert!(api.headers.contains_key(header::CONTENT_SECURITY_POLICY));
}

#[tokio::test]
async fn https_origins_use_host_prefixed_secure_cookies_and_a_public_host_needs_an_apps_origin() {
    let app = TestApp::with_origins(
        "https://dash.example.org",
        Some("https://{tenant}.apps.example.org"),
    )
    .await
    .expect("starts");
    app.deploy("b", "hello", "hello.wasm").await;
    admin::set_visibility(&app.state.store, "b/hello", "tenant", &op())
        .await
        .expect("visibility");
    let login = get_at(&app, "dash.example.org", "/login", None).await;
    let session = cookie(&login, "__Host-tessera_session").expect("platform cookie");
    assert!(
        session.contains("Secure") && session.contains("Path=/") && !session.contains("Domain"),
        "{session}"
    );
    let page = get_at(&app, "b.apps.example.org", "/apps/b/hello/", None).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert!(
        location(&page).starts_with("https://dash.example.org/auth/apps/handoff?next="),
        "{}",
        location(&page)
    );
    let state = cookie(&page, "__Host-tessera_app_handoff").expect("state cookie");
    assert!(
        state.contains("Secure") && state.contains("HttpOnly"),
        "{state}"
    );

    let err = TestApp::with_origins("https://dash.example.org", None)
        .await
        .err()
        .expect("refused");
    assert!(err.contains("TESSERA_APPS_ORIGIN"), "{err}");
    let err = TestApp::with_origins(
        "https://dash.example.org",
        Some("https://dash.example.org:8443"),
    )
    .await
    .err()
    .expect("refused");
    assert!(err.contains("shares the host"), "{err}");
}

/// The whole hand-off by hand: the app's page → the platform (sign in) → the code → the
/// apps origin's session → the app; then the app cookie is tried on the platform.
#[tokio::test]
async fn the_hand_off_signs_in_to_the_app_only_and_the_app_cookie_opens_no_platform_route() {
    let app = setup().await;
    let apps = "b.localhost:8080";
    let platform = "127.0.0.1:8080";
    let page = get_at(&app, apps, "/apps/b/hello/", None).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    let state = pair(&cookie(&page, "tessera_app_handoff").expect("state cookie"));
    let to_platform = location(&page);
    let issue_path = to_platform
        .strip_prefix("http://127.0.0.1:8080")
        .expect("to the platform")
        .to_owned();
    // Sign in on the platform.
    let form = get_at(&app, platform, "/login", None).await;
    let anonymous = pair(&cookie(&form, "tessera_session").expect("session"));
    let html = form.text();
    let at = html.find("name=\"csrf\" value=\"").expect("csrf") + 19;
    let csrf = &html[at..at + 64];
    let signed = app
        .request(
            Request::post("/login")
                .header(header::HOST, platform)
                .header(header::COOKIE, &anonymous)
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(Body::from(format!(
                    "csrf={csrf}&email=bob%40example.org&password=correct+horse+battery&next={}",
                    handoff::encode_query(&issue_path).replace('&', "%26")
                )))
                .expect("request"),
        )
        .await;
    assert_eq!(signed.status, StatusCode::SEE_OTHER, "{}", signed.text());
    assert_eq!(location(&signed), issue_path);
    let platform_cookie = pair(&cookie(&signed, "tessera_session").expect("rotated"));
    let issued = get_at(&app, platform, &issue_path, Some(&platform_cookie)).await;
    assert_eq!(issued.status, StatusCode::SEE_OTHER, "{}", issued.text());
    let to_apps = location(&issued);
    let redeem_path = to_apps
        .strip_prefix("http://b.localhost:8080")
        .expect("to b's apps origin")
        .to_owned();
    assert!(
        redeem_path.starts_with("/_tessera/handoff?code="),
        "{redeem_path}"
    );
    // Another browser (without the state cookie) cannot use the code; it is spent even so.
    let stolen = get_at(&app, apps, &redeem_path, None).await;
    assert_eq!(stolen.status, StatusCode::FORBIDDEN);
    assert!(
        stolen.text().contains("another browser"),
        "{}",
        stolen.text()
    );
    // Start over in the right browser.
    let issued = get_at(&app, platform, &issue_path, Some(&platform_cookie)).await;
    let redeem_path = location(&issued)
        .strip_prefix("http://b.localhost:8080")
        .expect("to b's apps origin")
        .to_owned();
    let redeemed = get_at(&app, apps, &redeem_path, Some(&state)).await;
    assert_eq!(
        redeemed.status,
        StatusCode::SEE_OTHER,
        "{}",
        redeemed.text()
    );
    assert_eq!(location(&redeemed), "/apps/b/hello/");
    let app_set = cookie(&redeemed, "tessera_app_session").expect("app session");
    assert!(
        app_set.contains("HttpOnly")
            && app_set.contains("SameSite=Lax")
            && !app_set.contains("Domain"),
        "{app_set}"
    );
    let app_cookie = pair(&app_set);
    assert_eq!(
        get_at(&app, apps, "/apps/b/hello/", Some(&app_cookie))
            .await
            .status,
        StatusCode::OK
    );
    // Single use: the same code again is refused.
    let again = get_at(&app, apps, &redeem_path, Some(&state)).await;
    assert_eq!(again.status, StatusCode::FORBIDDEN, "{}", again.text());
    // The app cookie (under either name) opens nothing on the platform.
    let value = app_cookie.split_once('=').expect("pair").1;
    for presented in [format!("tessera_session={value}"), app_cookie.clone()] {
        let account = get_at(&app, platform, "/account/password", Some(&presented)).await;
        assert_eq!(account.status, StatusCode::SEE_OTHER, "{presented}");
        assert!(
            location(&account).starts_with("/login"),
            "{}",
            location(&account)
        );
        let api = get_at(&app, platform, "/api/v1/tenants", Some(&presented)).await;
        assert_eq!(api.status, StatusCode::UNAUTHORIZED, "{presented}");
    }
    // Nor does the platform cookie open the app on the apps origin.
    let crossed = get_at(
        &app,
        apps,
        "/apps/b/hello/_dash-layout",
        Some(&format!(
            "tessera_app_session={}",
            platform_cookie.split_once('=').expect("pair").1
        )),
    )
    .await;
    assert_eq!(crossed.status, StatusCode::NOT_FOUND);
    // Signing out of the platform ends the app session it handed over.
    let html = get_at(&app, platform, "/account/password", Some(&platform_cookie))
        .await
        .text();
    let at = html.find("name=\"csrf\" value=\"").expect("csrf") + 19;
    let csrf = html[at..at + 64].to_owned();
    let out = app
        .request(
            Request::post("/logout")
                .header(header::HOST, platform)
                .header(header::COOKIE, &platform_cookie)
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(Body::from(format!("csrf={csrf}")))
                .expect("request"),
        )
        .await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    assert_eq!(
        get_at(&app, apps, "/apps/b/hello/_dash-layout", Some(&app_cookie))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
}

/// The code's rules, on the database and on Redis: once, within a minute, on its origin,
/// in the browser holding its state, to the path it was minted for.
#[tokio::test]
async fn a_hand_off_code_is_single_use_expires_and_is_bound_to_origin_path_and_browser() {
    for app in [TestApp::new().await, TestApp::with_redis().await] {
        let s = &app.state;
        let link = handoff::ensure_link(&s.handoffs, None, UserId(7), i64::MAX / 2, 1_000)
            .await
            .expect("link");
        let sign_in = PlatformSignIn {
            user: UserId(7),
            epoch: 1,
            at: 500,
        };
        let mint = |next: &'static str, now: i64| {
            let link = link.clone();
            async move {
                let url = handoff::issue(
                    &s.handoffs,
                    &s.origins,
                    sign_in,
                    &link,
                    next,
                    "browserstate",
                    now,
                )
                .await
                .expect("issued");
                let (origin, code) = url.split_once("/_tessera/handoff?code=").expect("url");
                (origin.to_owned(), code.to_owned())
            }
        };
        let (origin, code) = mint("/apps/acme/sales/page?x=1", 1_000).await;
        assert_eq!(origin, "http://acme.localhost:8080");
        let redeemed = handoff::redeem(&s.handoffs, &code, &origin, Some("browserstate"), 1_001)
            .await
            .expect("redeemed");
        assert_eq!(redeemed.path, "/apps/acme/sales/page?x=1");
        assert_eq!(redeemed.session.user, 7);
        assert_eq!(redeemed.session.origin, origin);
        let again = handoff::redeem(&s.handoffs, &code, &origin, Some("browserstate"), 1_002).await;
        assert!(matches!(again, Err(HandoffError::Invalid)), "{again:?}");

        let (origin, code) = mint("/apps/acme/sales/", 2_000).await;
        let late = handoff::redeem(
            &s.handoffs,
            &code,
            &origin,
            Some("browserstate"),
            2_000 + CODE_TTL_MS,
        )
        .await;
        assert!(matches!(late, Err(HandoffError::Invalid)), "{late:?}");

        let (_, code) = mint("/apps/acme/sales/", 3_000).await;
        let other = s.origins.apps_url(&Slug::parse("other").expect("slug"));
        let elsewhere =
            handoff::redeem(&s.handoffs, &code, &other, Some("browserstate"), 3_001).await;
        assert!(
            matches!(elsewhere, Err(HandoffError::WrongOrigin)),
            "{elsewhere:?}"
        );

        let (origin, code) = mint("/apps/acme/sales/", 4_000).await;
        let foreign = handoff::redeem(&s.handoffs, &code, &origin, Some("attacker"), 4_001).await;
        assert!(
            matches!(foreign, Err(HandoffError::WrongBrowser)),
            "{foreign:?}"
        );

        for bad in [
            "/account/password",
            "//evil.example/apps/a/b/",
            "/apps/acme/",
        ] {
            let refused = handoff::issue(
                &s.handoffs,
                &s.origins,
                sign_in,
                &link,
                bad,
                "browserstate",
                5_000,
            )
            .await;
            assert!(
                matches!(refused, Err(HandoffError::NotAnAppPath(_))),
                "{bad}: {refused:?}"
            );
        }
        handoff::end_link(&s.handoffs, &link).await.expect("end");
    }
}
