//! Local sign-in and sessions: cookie flags, id rotation, failures that leave no session,
//! throttling, open redirects, CSRF, sign-out and sign-out-everywhere, forced password change.

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode, header};
use platform::admin;
use platform::store::testing::TestDatabase;
use platform::store::{AuditFilter, Change};

use crate::support::{Reply, TestApp};

pub(crate) const PASSWORD: &str = "correct horse battery";

pub(crate) fn op() -> Change<'static> {
    use platform::clock::Clock;
    Change {
        actor: "test",
        remote_addr: None,
        at: platform::clock::SystemClock.now_millis(),
    }
}

/// Tenant `b` with a restricted `hello` granted to bob; carl is a member without the grant.
pub(crate) async fn setup(db: Option<TestDatabase>) -> TestApp {
    let app = match db {
        Some(db) => TestApp::on(db).await,
        None => TestApp::new().await,
    };
    app.deploy("b", "hello", "hello.wasm").await;
    let store = &app.state.store;
    for email in ["bob@example.org", "carl@example.org"] {
        admin::create_user(store, email, Some(PASSWORD), false, &op())
            .await
            .expect("user");
        admin::grant(store, email, "b", "viewer", &op())
            .await
            .expect("grant");
    }
    admin::set_visibility(store, "b/hello", "restricted", &op())
        .await
        .expect("restricted");
    let b = store
        .tenant_by_slug(&platform::ids::Slug::parse("b").expect("slug"))
        .await
        .expect("q")
        .expect("b");
    let hello = store
        .app_id(b.id, &platform::ids::Slug::parse("hello").expect("slug"))
        .await
        .expect("q")
        .expect("app");
    let bob = store
        .user_by_email(&platform::tenancy::Email::parse("bob@example.org").expect("e"))
        .await
        .expect("q")
        .expect("bob");
    store
        .grant_app_to_user(b.id, hello, bob.id, &op())
        .await
        .expect("grant app");
    app
}

/// The platform's host in [`TestApp`] (its public URL is `http://127.0.0.1:8080`).
const PLATFORM_HOST: &str = "127.0.0.1:8080";

/// One browser: the cookies it holds per host and the address it comes from.
pub(crate) struct Browser<'a> {
    app: &'a TestApp,
    /// The platform's session cookie (its whole `Set-Cookie`).
    pub(crate) cookie: Option<String>,
    /// Cookies of the apps origins: (host, name, `name=value`).
    jar: Vec<(String, String, String)>,
    pub(crate) peer: SocketAddr,
}

pub(crate) fn set_cookie(reply: &Reply) -> Option<String> {
    reply
        .headers
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().expect("ascii").to_owned())
        .find(|c| c.starts_with("tessera_session="))
}

fn location(reply: &Reply) -> Option<String> {
    reply
        .headers
        .get(header::LOCATION)
        .map(|l| l.to_str().expect("ascii").to_owned())
}

pub(crate) fn csrf_of(html: &str) -> String {
    let at = html.find("name=\"csrf\" value=\"").expect("csrf field") + 19;
    html[at..at + 64].to_owned()
}

impl<'a> Browser<'a> {
    pub(crate) fn new(app: &'a TestApp) -> Self {
        Self {
            app,
            cookie: None,
            jar: Vec::new(),
            peer: "192.0.2.10:5000".parse().expect("addr"),
        }
    }

    /// The host and path of `uri`: an absolute URL names its host; an app path goes to its
    /// apps origin, anything else to the platform.
    fn target(&self, uri: &str) -> (String, String) {
        if let Some(rest) = uri.strip_prefix("http://") {
            let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
            return (host.to_owned(), path.to_owned());
        }
        let host = crate::support::apps_host(&self.app.state, uri)
            .unwrap_or_else(|| PLATFORM_HOST.to_owned());
        (host, uri.to_owned())
    }

    pub(crate) async fn send(
        &mut self,
        builder: axum::http::request::Builder,
        body: Body,
    ) -> Reply {
        let uri = builder.uri_ref().expect("uri").to_string();
        let (host, path) = self.target(&uri);
        let mut builder = builder.uri(path).header(header::HOST, &host);
        let platform = host == PLATFORM_HOST;
        let cookies: Vec<String> = if platform {
            self.cookie
                .iter()
                .map(|c| c.split(';').next().expect("pair").to_owned())
                .collect()
        } else {
            self.jar
                .iter()
                .filter(|(h, _, _)| *h == host)
                .map(|(_, _, pair)| pair.clone())
                .collect()
        };
        if !cookies.is_empty() {
            builder = builder.header(header::COOKIE, cookies.join("; "));
        }
        let mut request = builder.body(body).expect("request");
        request.extensions_mut().insert(ConnectInfo(self.peer));
        let reply = self.app.request(request).await;
        if platform {
            if let Some(c) = set_cookie(&reply) {
                // An expired cookie is the server ending the session.
                self.cookie = if c.contains("Max-Age=0") {
                    None
                } else {
                    Some(c)
                };
            }
        } else {
            for c in reply.headers.get_all(header::SET_COOKIE) {
                let c = c.to_str().expect("ascii");
                let pair = c.split(';').next().expect("pair").to_owned();
                let name = pair.split('=').next().expect("name").to_owned();
                self.jar.retain(|(h, n, _)| !(*h == host && *n == name));
                if !c.contains("Max-Age=0") {
                    self.jar.push((host.clone(), name, pair));
                }
            }
        }
        reply
    }

    /// GET `uri`; an app page that sends the browser to the platform's hand-off is
    /// followed through it when the platform has a session (as a browser would), and
    /// answered as the first redirect when it has none.
    pub(crate) async fn get(&mut self, uri: &str) -> Reply {
        let reply = self.send(Request::get(uri), Body::empty()).await;
        let handoff = format!(
            "http://{PLATFORM_HOST}{}",
            platform::auth::handoff::ISSUE_PATH
        );
        let Some(to_platform) = location(&reply).filter(|l| l.starts_with(&handoff)) else {
            return reply;
        };
        let issued = self.send(Request::get(&to_platform), Body::empty()).await;
        let Some(to_apps) = location(&issued).filter(|l| l.contains("/_tessera/handoff?code="))
        else {
            return reply;
        };
        let redeemed = self.send(Request::get(&to_apps), Body::empty()).await;
        assert_eq!(
            redeemed.status,
            StatusCode::SEE_OTHER,
            "{}",
            redeemed.text()
        );
        let (host, _) = self.target(&to_apps);
        let back = location(&redeemed).expect("back to the app");
        self.send(Request::get(format!("http://{host}{back}")), Body::empty())
            .await
    }

    pub(crate) async fn post_form(&mut self, uri: &str, form: &[(&str, &str)]) -> Reply {
        let body: String = form
            .iter()
            .map(|(k, v)| format!("{k}={}", enc(v)))
            .collect::<Vec<_>>()
            .join("&");
        self.send(
            Request::post(uri).header(header::CONTENT_TYPE, "application/x-www-form-urlencoded"),
            Body::from(body),
        )
        .await
    }

    /// GET /login, then POST it; returns the POST's reply.
    pub(crate) async fn sign_in(&mut self, email: &str, password: &str, next: &str) -> Reply {
        let form = self.get("/login").await;
        assert_eq!(form.status, StatusCode::OK);
        let csrf = csrf_of(&form.text());
        self.post_form(
            "/login",
            &[
                ("csrf", &csrf),
                ("email", email),
                ("password", password),
                ("next", next),
            ],
        )
        .await
    }

    /// The `Cookie` header this browser sends to `host` (an apps origin), if any.
    pub(crate) fn cookies_for(&self, host: &str) -> Option<String> {
        let pairs: Vec<&str> = self
            .jar
            .iter()
            .filter(|(h, _, _)| h == host)
            .map(|(_, _, pair)| pair.as_str())
            .collect();
        (!pairs.is_empty()).then(|| pairs.join("; "))
    }

    pub(crate) async fn csrf(&mut self) -> String {
        csrf_of(&self.get("/login").await.text())
    }
}

fn enc(v: &str) -> String {
    v.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

pub(crate) async fn failures(app: &TestApp) -> usize {
    app.state
        .store
        .filtered_audit_entries(
            None,
            &AuditFilter {
                action: Some("auth.sign_in_failed"),
                actor: None,
            },
            None,
            100,
        )
        .await
        .expect("audit")
        .len()
}

#[tokio::test]
async fn sign_in_sets_a_rotated_http_only_lax_cookie_and_opens_the_granted_app() {
    for db in TestDatabase::all().await.expect("databases") {
        let app = setup(Some(db)).await;
        let mut bob = Browser::new(&app);
        // The app's page, on its own origin, sends an anonymous visitor to the platform's
        // hand-off, which sends them to sign in.
        let first = bob.get("/apps/b/hello/").await;
        assert_eq!(first.status, StatusCode::SEE_OTHER);
        let to_platform = location(&first).expect("location");
        assert!(
            to_platform
                .starts_with("http://127.0.0.1:8080/auth/apps/handoff?next=/apps/b/hello/&state="),
            "{to_platform}"
        );
        let to_login = bob.get(&to_platform).await;
        assert_eq!(
            location(&to_login).expect("location"),
            format!(
                "/login?tenant=b&next={}",
                platform::auth::handoff::encode_query(
                    to_platform.trim_start_matches("http://127.0.0.1:8080")
                )
            )
        );
        bob.get("/login?next=/apps/b/hello/").await;
        let before = bob
            .cookie
            .clone()
            .expect("a pre-sign-in session for the CSRF token");
        assert!(
            before.contains("HttpOnly")
                && before.contains("SameSite=Lax")
                && !before.contains("Secure"),
            "{before}"
        );
        let csrf = bob.csrf().await;
        let signed = bob
            .post_form(
                "/login",
                &[
                    ("csrf", &csrf),
                    ("email", "bob@example.org"),
                    ("password", PASSWORD),
                    ("next", "/apps/b/hello/"),
                ],
            )
            .await;
        assert_eq!(signed.status, StatusCode::SEE_OTHER, "{}", signed.text());
        assert_eq!(signed.headers[header::LOCATION], "/apps/b/hello/");
        let after = set_cookie(&signed).expect("a new cookie at sign-in");
        assert_ne!(
            after.split(';').next(),
            before.split(';').next(),
            "the id is rotated"
        );
        assert!(
            after.contains("HttpOnly") && after.contains("SameSite=Lax"),
            "{after}"
        );
        assert_eq!(bob.get("/apps/b/hello/").await.status, StatusCode::OK);
        assert_eq!(
            bob.get("/apps/b/hello/_dash-layout").await.status,
            StatusCode::OK
        );
        let entries = app
            .state
            .store
            .filtered_audit_entries(
                None,
                &AuditFilter {
                    action: Some("auth.sign_in"),
                    actor: None,
                },
                None,
                10,
            )
            .await
            .expect("audit");
        assert_eq!(entries.len(), 1);

        let mut carl = Browser::new(&app);
        assert_eq!(
            carl.sign_in("carl@example.org", PASSWORD, "/apps/b/hello/")
                .await
                .status,
            StatusCode::SEE_OTHER
        );
        assert_eq!(
            carl.get("/apps/b/hello/").await.status,
            StatusCode::NOT_FOUND
        );
    }
}

#[tokio::test]
async fn wrong_password_or_unknown_user_shows_an_error_sets_no_session_and_is_audited() {
    let app = setup(None).await;
    for (email, password, status, sentence) in [
        (
            "bob@example.org",
            "wrong password",
            StatusCode::UNAUTHORIZED,
            "Wrong email or password.",
        ),
        (
            "nobody@example.org",
            PASSWORD,
            StatusCode::UNAUTHORIZED,
            "Wrong email or password.",
        ),
        (
            "not an email",
            "x",
            StatusCode::UNPROCESSABLE_ENTITY,
            "Enter a valid email address",
        ),
    ] {
        let mut browser = Browser::new(&app);
        let csrf = browser.csrf().await;
        let reply = browser
            .post_form(
                "/login",
                &[("csrf", &csrf), ("email", email), ("password", password)],
            )
            .await;
        assert_eq!(reply.status, status, "{email}");
        assert!(reply.text().contains(sentence), "{email}");
        assert!(
            set_cookie(&reply).is_none(),
            "{email}: no Set-Cookie on failure"
        );
        assert_eq!(
            browser.get("/apps/b/hello/").await.status,
            StatusCode::SEE_OTHER,
            "still signed out"
        );
    }
    assert_eq!(failures(&app).await, 3);
}

#[tokio::test]
async fn repeated_failures_throttle_the_account_even_with_the_right_password() {
    let app = setup(None).await;
    let mut browser = Browser::new(&app);
    for _ in 0..5 {
        let reply = browser
            .sign_in("bob@example.org", "wrong password", "/")
            .await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    }
    let reply = browser.sign_in("bob@example.org", PASSWORD, "/").await;
    assert_eq!(reply.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(
        reply.text().contains("Too many failed attempts"),
        "{}",
        reply.text()
    );
    assert_eq!(failures(&app).await, 6);
    // Another account from another address is not affected.
    let mut other = Browser::new(&app);
    other.peer = "192.0.2.99:1".parse().expect("addr");
    assert_eq!(
        other
            .sign_in("carl@example.org", PASSWORD, "/")
            .await
            .status,
        StatusCode::SEE_OTHER
    );
}

/// The throttle counts in the database: failures on one replica slow the account down on
/// every other (on both backends). Fails if the count were kept per process.
#[tokio::test]
async fn failures_on_one_replica_throttle_the_account_on_another() {
    for db in TestDatabase::all().await.expect("databases") {
        let app = setup(Some(db)).await;
        let replica = TestApp::replica_of(&app).await;
        let mut first = Browser::new(&app);
        for _ in 0..5 {
            let reply = first
                .sign_in("bob@example.org", "wrong password", "/")
                .await;
            assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
        }
        let mut second = Browser::new(&replica);
        second.peer = "192.0.2.77:1".parse().expect("addr");
        let reply = second.sign_in("bob@example.org", PASSWORD, "/").await;
        assert_eq!(
            reply.status,
            StatusCode::TOO_MANY_REQUESTS,
            "{}",
            reply.text()
        );
        // The wait ends (one second after the fifth failure), and a success clears the
        // count on every replica.
        tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
        let reply = second.sign_in("bob@example.org", PASSWORD, "/").await;
        assert_eq!(reply.status, StatusCode::SEE_OTHER, "{}", reply.text());
        let mut third = Browser::new(&app);
        let reply = third
            .sign_in("bob@example.org", "wrong password", "/")
            .await;
        assert_eq!(
            reply.status,
            StatusCode::UNAUTHORIZED,
            "one failure after a success is not throttled"
        );
    }
}

#[tokio::test]
async fn next_never_redirects_off_site() {
    let app = setup(None).await;
    for bad in [
        "//evil.example/",
        "https://evil.example/",
        "/\\evil.example",
        "\\\\evil.example",
        "javascript:alert(1)",
    ] {
        let mut browser = Browser::new(&app);
        let reply = browser.sign_in("bob@example.org", PASSWORD, bad).await;
        assert_eq!(reply.status, StatusCode::SEE_OTHER);
        assert_eq!(reply.headers[header::LOCATION], "/", "{bad}");
    }
}

#[tokio::test]
async fn missing_or_wrong_csrf_tokens_are_forbidden() {
    let app = setup(None).await;
    let mut browser = Browser::new(&app);
    browser.get("/login").await;
    for token in [
        "",
        "0000000000000000000000000000000000000000000000000000000000000000",
    ] {
        let reply = browser
            .post_form(
                "/login",
                &[
                    ("csrf", token),
                    ("email", "bob@example.org"),
                    ("password", PASSWORD),
                ],
            )
            .await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN);
        assert!(set_cookie(&reply).is_none());
    }
    assert_eq!(
        browser
            .sign_in("bob@example.org", PASSWORD, "/")
            .await
            .status,
        StatusCode::SEE_OTHER
    );
    let logout = browser.post_form("/logout", &[]).await;
    assert_eq!(logout.status, StatusCode::FORBIDDEN);
    // A cookie-authenticated API write needs X-CSRF-Token; with it the request gets through.
    let api = browser
        .send(
            Request::post("/api/v1/tenants").header(header::CONTENT_TYPE, "application/json"),
            Body::from("{}"),
        )
        .await;
    assert_eq!(
        (api.status, api.error_code().as_str()),
        (StatusCode::FORBIDDEN, "csrf")
    );
    let csrf = csrf_of(&browser.get("/account/password").await.text());
    let api = browser
        .send(
            Request::post("/api/v1/tenants")
                .header(header::CONTENT_TYPE, "application/json")
                .header("x-csrf-token", &csrf),
            Body::from("{}"),
        )
        .await;
    assert_ne!(api.status, StatusCode::FORBIDDEN, "{}", api.text());
    // Bearer calls carry no cookie authority and need no CSRF token: an invalid token is a 401.
    let bearer = app
        .request(
            Request::post("/api/v1/tenants")
                .header(header::AUTHORIZATION, "Bearer tsr_nope")
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from("{}"))
                .expect("r"),
        )
        .await;
    assert_eq!(bearer.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn sign_out_ends_the_session_and_sign_out_everywhere_ends_the_others() {
    let app = setup(None).await;
    let mut laptop = Browser::new(&app);
    let mut phone = Browser::new(&app);
    let mut tablet = Browser::new(&app);
    for b in [&mut laptop, &mut phone, &mut tablet] {
        assert_eq!(
            b.sign_in("bob@example.org", PASSWORD, "/").await.status,
            StatusCode::SEE_OTHER
        );
        assert_eq!(b.get("/apps/b/hello/").await.status, StatusCode::OK);
    }
    let stolen = laptop.cookie.clone();
    let csrf = csrf_of(&laptop.get("/account/password").await.text());
    assert_eq!(
        laptop.post_form("/logout", &[("csrf", &csrf)]).await.status,
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        laptop.get("/apps/b/hello/").await.status,
        StatusCode::SEE_OTHER
    );
    // The old cookie replayed is worthless: the session is gone from the store.
    laptop.cookie = stolen;
    assert_eq!(
        laptop.get("/apps/b/hello/").await.status,
        StatusCode::SEE_OTHER
    );
    assert_eq!(phone.get("/apps/b/hello/").await.status, StatusCode::OK);

    let csrf = csrf_of(&phone.get("/account/password").await.text());
    assert_eq!(
        phone
            .post_form("/logout/everywhere", &[("csrf", &csrf)])
            .await
            .status,
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        phone.get("/apps/b/hello/").await.status,
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        tablet.get("/apps/b/hello/").await.status,
        StatusCode::SEE_OTHER,
        "the other session ended too"
    );
    assert_eq!(
        tablet
            .sign_in("bob@example.org", PASSWORD, "/")
            .await
            .status,
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        tablet.get("/apps/b/hello/").await.status,
        StatusCode::OK,
        "signing in again works"
    );
}

#[tokio::test]
async fn a_forced_reset_sends_the_user_to_change_their_password_first() {
    let app = setup(None).await;
    admin::create_user(
        &app.state.store,
        "eve@example.org",
        Some(PASSWORD),
        false,
        &op(),
    )
    .await
    .expect("user");
    // Eve is signed in when the operator resets her password: that session ends.
    let mut earlier = Browser::new(&app);
    earlier
        .sign_in("eve@example.org", PASSWORD, "/account/password")
        .await;
    assert_eq!(
        earlier.get("/account/password").await.status,
        StatusCode::OK
    );
    let one_time = admin::reset_password(&app.state.store, "eve@example.org", None, &op())
        .await
        .expect("reset");
    assert_eq!(
        earlier.get("/account/password").await.status,
        StatusCode::SEE_OTHER,
        "a forced reset ends the user's sessions"
    );
    let mut eve = Browser::new(&app);
    assert_eq!(
        eve.sign_in("eve@example.org", PASSWORD, "/").await.status,
        StatusCode::UNAUTHORIZED,
        "the old password no longer works"
    );
    let reply = eve
        .sign_in("eve@example.org", &one_time, "/apps/b/hello/")
        .await;
    assert_eq!(reply.headers[header::LOCATION], "/account/password");
    assert_eq!(
        eve.get("/").await.headers[header::LOCATION],
        "/account/password"
    );
    let csrf = csrf_of(&eve.get("/account/password").await.text());
    let wrong = eve
        .post_form(
            "/account/password",
            &[
                ("csrf", &csrf),
                ("current", "nope"),
                ("new", "a much longer password"),
            ],
        )
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    let short = eve
        .post_form(
            "/account/password",
            &[("csrf", &csrf), ("current", &one_time), ("new", "short")],
        )
        .await;
    assert_eq!(short.status, StatusCode::UNPROCESSABLE_ENTITY);
    let done = eve
        .post_form(
            "/account/password",
            &[
                ("csrf", &csrf),
                ("current", &one_time),
                ("new", "a much longer password"),
            ],
        )
        .await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.text());
    assert_eq!(eve.get("/").await.status, StatusCode::OK);
    let mut again = Browser::new(&app);
    assert_eq!(
        again
            .sign_in("eve@example.org", "a much longer password", "/")
            .await
            .status,
        StatusCode::SEE_OTHER
    );
}

#[tokio::test]
async fn the_cookie_is_secure_only_behind_a_trusted_proxy_that_says_https() {
    let mut config_app = setup(None).await;
    let proxy: SocketAddr = "10.0.0.1:443".parse().expect("addr");
    std::sync::Arc::get_mut(&mut config_app.state.0)
        .expect("sole owner")
        .config
        .sessions
        .trusted_proxies = vec![proxy.ip()];
    let app = config_app;
    for (peer, proto, secure) in [
        (proxy, "https", true),
        (proxy, "http", false),
        ("192.0.2.1:1".parse().expect("addr"), "https", false),
    ] {
        let mut browser = Browser::new(&app);
        browser.peer = peer;
        let reply = browser
            .send(
                Request::get("/login").header("x-forwarded-proto", proto),
                Body::empty(),
            )
            .await;
        let cookie = set_cookie(&reply).expect("cookie");
        assert_eq!(
            cookie.contains("Secure"),
            secure,
            "{peer} {proto}: {cookie}"
        );
    }
}

#[tokio::test]
async fn two_replicas_sharing_redis_share_sessions_and_sign_out() {
    let first = TestApp::with_redis().await;
    let second = TestApp::replica_of(&first).await;
    admin::create_user(
        &first.state.store,
        "bob@example.org",
        Some(PASSWORD),
        false,
        &op(),
    )
    .await
    .expect("user");
    let mut on_first = Browser::new(&first);
    assert_eq!(
        on_first
            .sign_in("bob@example.org", PASSWORD, "/account/password")
            .await
            .status,
        StatusCode::SEE_OTHER
    );
    let mut on_second = Browser::new(&second);
    on_second.cookie = on_first.cookie.clone();
    let page = on_second.get("/account/password").await;
    assert_eq!(
        page.status,
        StatusCode::OK,
        "the session works on the other replica"
    );
    let csrf = csrf_of(&page.text());
    assert_eq!(
        on_second
            .post_form("/logout", &[("csrf", &csrf)])
            .await
            .status,
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        on_first.get("/account/password").await.status,
        StatusCode::SEE_OTHER,
        "signed out on both"
    );
}

#[tokio::test]
async fn the_sweep_removes_expired_database_sessions_only() {
    let app = TestApp::new().await;
    let store = &app.state.store;
    let now = 1_000_000;
    store
        .session_save("expired", "{}", now - 1)
        .await
        .expect("save");
    store
        .session_save("live", "{}", now + 60_000)
        .await
        .expect("save");
    assert_eq!(store.sweep_expired_sessions(now).await.expect("sweep"), 1);
    assert!(
        store
            .session_load("live", now)
            .await
            .expect("load")
            .is_some()
    );
    assert_eq!(store.sweep_expired_sessions(now).await.expect("sweep"), 0);
}

/// Wait until `replica` read the change counter twice more: once after every change made
/// so far, whichever poll was under way.
async fn next_poll(replica: &TestApp) {
    let polls = replica.state.changes.polls();
    let started = std::time::Instant::now();
    while replica.state.changes.polls() < polls + 2 {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "the change counter is not polled"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Issue 16: a replica keeps the account behind each session in memory, so a warm
/// signed-in request reads its session record and nothing else; a sign-out through another
/// replica ends the session on this one at once, and sign-out-everywhere or a password change
/// through another replica end its cached platform and app sessions at its next poll of the
/// change counter. Two states on one database (SQLite, then PostgreSQL).
#[tokio::test]
async fn a_session_ended_through_one_replica_is_refused_by_another_that_cached_it() {
    for db in TestDatabase::all().await.expect("databases") {
        let backend = db.backend;
        let one = setup(Some(db)).await;
        let two = TestApp::replica_of(&one).await;
        next_poll(&two).await;
        let mut on_one = Browser::new(&one);
        let signed = on_one.sign_in("bob@example.org", PASSWORD, "/").await;
        assert_eq!(signed.status, StatusCode::SEE_OTHER, "{backend:?}");
        let mut on_two = Browser::new(&two);
        on_two.cookie = on_one.cookie.clone();
        assert_eq!(on_two.get("/healthz").await.status, StatusCode::OK);

        // Warm: the session record is loaded (and its idle expiry saved), nothing else.
        let page = on_two.get("/account/password").await;
        assert_eq!(page.status, StatusCode::OK, "{backend:?}: signed in on two");
        let store = &two.state.store;
        let (queries, polls) = (store.acquisitions(), two.state.changes.polls());
        assert_eq!(on_two.get("/healthz").await.status, StatusCode::OK);
        let made = (store.acquisitions() - queries) - (two.state.changes.polls() - polls);
        assert!(
            made <= 2,
            "{backend:?}: a warm signed-in request made {made} queries (its session's load and save expected)"
        );

        // Signed out through one: two refuses the cookie at once.
        let csrf = csrf_of(&on_one.get("/account/password").await.text());
        assert_eq!(
            on_one.post_form("/logout", &[("csrf", &csrf)]).await.status,
            StatusCode::SEE_OTHER
        );
        assert_eq!(
            on_two.get("/account/password").await.status,
            StatusCode::SEE_OTHER,
            "{backend:?}: signed out through one, still signed in on two"
        );

        // Sign-out everywhere, then a password change, through one: two's cached account
        // (platform session and app session) ends at its next poll.
        for ending in ["sign-out everywhere", "password change"] {
            let mut on_one = Browser::new(&one);
            let signed = on_one.sign_in("bob@example.org", PASSWORD, "/").await;
            assert_eq!(signed.status, StatusCode::SEE_OTHER, "{backend:?} {ending}");
            let mut on_two = Browser::new(&two);
            on_two.cookie = on_one.cookie.clone();
            assert_eq!(
                on_two.get("/apps/b/hello/").await.status,
                StatusCode::OK,
                "{backend:?} {ending}: the app through two"
            );
            assert_eq!(on_two.get("/account/password").await.status, StatusCode::OK);
            let csrf = csrf_of(&on_one.get("/account/password").await.text());
            let ended = match ending {
                "sign-out everywhere" => {
                    on_one
                        .post_form("/logout/everywhere", &[("csrf", &csrf)])
                        .await
                }
                _ => {
                    on_one
                        .post_form(
                            "/account/password",
                            &[
                                ("csrf", &csrf),
                                ("current", PASSWORD),
                                ("new", "a much longer password"),
                            ],
                        )
                        .await
                }
            };
            assert!(
                ended.status == StatusCode::SEE_OTHER || ended.status == StatusCode::OK,
                "{backend:?} {ending}: {}",
                ended.text()
            );
            next_poll(&two).await;
            assert_eq!(
                on_two.get("/account/password").await.status,
                StatusCode::SEE_OTHER,
                "{backend:?} {ending}: the platform session on two"
            );
            assert_ne!(
                on_two.get("/apps/b/hello/").await.status,
                StatusCode::OK,
                "{backend:?} {ending}: the app session on two"
            );
        }
    }
}
