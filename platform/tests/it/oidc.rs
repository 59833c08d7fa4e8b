//! Sign-in through identity providers: the real OpenID provider from
//! `tests/services/oidc` (npm `oidc-provider`, started per test on a free port through
//! `scripts/services/start-oidc.sh`), driven by a reqwest client with a cookie jar through
//! the provider's own login form; Tessera serves on a real loopback port.
//!
//! Every refusal is checked for its sentence on the sign-in page, its audit row, and that
//! the browser is not signed in afterwards (the API answers 401).

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use platform::admin;
use platform::auth::providers::{OidcSettings, Settings};
use platform::clock::ShiftedClock;
use platform::store::{AuditEntry, AuditFilter, Change};
use reqwest::StatusCode;
use sha2::Digest;

use crate::support::{TestApp, repo_root};

pub(crate) fn op() -> Change<'static> {
    use platform::clock::Clock;
    Change {
        actor: "test",
        remote_addr: None,
        at: platform::clock::SystemClock.now_millis(),
    }
}

/// A free loopback port (bound, then released).
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// The redirect URI of the test's own client (nothing listens there: the client stops at
/// the redirect and reads the code from it).
pub(crate) const TEST_CLIENT_REDIRECT: &str = "http://127.0.0.1:9/test-client/callback";

/// A running test OpenID provider; stopped on drop.
pub(crate) struct Provider {
    pub(crate) issuer: String,
    run_dir: tempfile::TempDir,
    people_file: PathBuf,
}

impl Provider {
    /// Start one whose main client may redirect to `tessera_base`'s callback.
    pub(crate) fn start(tessera_base: &str, ttl_seconds: u32) -> Self {
        Self::start_with(tessera_base, ttl_seconds, &[], None)
    }

    /// Start one configured by `env` (the variables documented at the top of
    /// tests/services/oidc/provider.js), with its issuer at `issuer_path` when given.
    pub(crate) fn start_with(
        tessera_base: &str,
        ttl_seconds: u32,
        env: &[(&str, &str)],
        issuer_path: Option<&str>,
    ) -> Self {
        for tool in ["node", "npm", "curl"] {
            let found = Command::new("sh")
                .args(["-c", &format!("command -v {tool}")])
                .output()
                .is_ok_and(|o| o.status.success());
            assert!(
                found,
                "{tool} is not installed: the OIDC tests need Node.js, npm and curl"
            );
        }
        let run_dir = tempfile::tempdir().expect("tempdir");
        let people_file = run_dir.path().join("people.json");
        std::fs::write(&people_file, PEOPLE).expect("people file");
        let port = free_port();
        let mut command = Command::new(repo_root().join("scripts/services/start-oidc.sh"));
        command.envs(env.iter().copied());
        if let Some(path) = issuer_path {
            command.env("OIDC_ISSUER", format!("http://127.0.0.1:{port}{path}"));
        }
        let output = command
            .arg(run_dir.path())
            .env("OIDC_PORT", port.to_string())
            .env(
                "OIDC_REDIRECT_URIS",
                format!("{tessera_base}/auth/oidc/callback,{TEST_CLIENT_REDIRECT}"),
            )
            .env("OIDC_TTL_SECONDS", ttl_seconds.to_string())
            .env("OIDC_PEOPLE_FILE", &people_file)
            .output()
            .expect("start-oidc.sh runs");
        assert!(
            output.status.success(),
            "the test OpenID provider did not start: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        let stdout = String::from_utf8_lossy(&output.stdout);
        let issuer = stdout
            .lines()
            .find_map(|l| l.strip_prefix("OIDC_ISSUER="))
            .expect("OIDC_ISSUER line")
            .to_owned();
        Self {
            issuer,
            run_dir,
            people_file,
        }
    }

    /// Add or replace a person (read again by the provider at the next sign-in); their
    /// password is `{who}-pw`.
    pub(crate) fn set_person(&self, who: &str, email: &str, email_verified: bool, groups: &[&str]) {
        let mut people: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&self.people_file).expect("read"))
                .expect("json");
        people[who] = serde_json::json!({
            "password": format!("{who}-pw"),
            "email": email,
            "email_verified": email_verified,
            "name": who,
            "groups": groups,
        });
        std::fs::write(&self.people_file, people.to_string()).expect("write");
    }

    /// Replace someone's groups (read again by the provider at the next sign-in).
    pub(crate) fn set_groups(&self, who: &str, groups: &[&str]) {
        let mut people: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&self.people_file).expect("read"))
                .expect("json");
        people[who]["groups"] = serde_json::json!(groups);
        std::fs::write(&self.people_file, people.to_string()).expect("write");
    }
}

impl Drop for Provider {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // The provider's side of a failed test (its last 4000 characters).
            let log =
                std::fs::read_to_string(self.run_dir.path().join("oidc.log")).unwrap_or_default();
            let tail: String = log
                .chars()
                .rev()
                .take(4000)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            eprintln!("--- the test OpenID provider's log ---\n{tail}");
        }
        let _ = Command::new(repo_root().join("scripts/services/start-oidc.sh"))
            .arg("stop")
            .arg(self.run_dir.path())
            .status();
    }
}

pub(crate) const PEOPLE: &str = r#"{
  "alice": {"password": "alice-pw", "email": "alice@example.org", "email_verified": true, "name": "Alice", "groups": ["analysts"]},
  "bob": {"password": "bob-pw", "email": "bob@example.org", "email_verified": true, "name": "Bob", "groups": ["admins"]},
  "carol": {"password": "carol-pw", "email": "carol@example.org", "email_verified": false, "name": "Carol", "groups": []}
}"#;

pub(crate) fn provider_file(issuer: &str, timeout_seconds: u64) -> String {
    format!(
        r#"kind = "oidc"
display_name = "Example SSO"
issuer = "{issuer}"
client_id = "dashboard"
client_secret = "dashboard-secret"
timeout_seconds = {timeout_seconds}
[[groups]]
group = "analysts"
role = "viewer"
teams = ["analysts"]
[[groups]]
group = "admins"
role = "admin"
"#
    )
}

/// Tenant `acme` with a restricted app `report` granted to the team `analysts`, and the
/// provider `sso` at `issuer`.
async fn setup(app: &TestApp, issuer: &str, timeout_seconds: u64) {
    setup_with_file(app, &provider_file(issuer, timeout_seconds)).await;
}

/// Tenant `acme` with a restricted app `report` granted to the team `analysts`, and the
/// provider `sso` set from `file`.
pub(crate) async fn setup_with_file(app: &TestApp, file: &str) {
    app.deploy("acme", "report", "hello.wasm").await;
    let store = &app.state.store;
    admin::set_visibility(store, "acme/report", "restricted", &op())
        .await
        .expect("restricted");
    let acme = tenant(app).await;
    let team = store
        .create_team(acme.id, "analysts", &op())
        .await
        .expect("team");
    let report = store
        .app_id(
            acme.id,
            &platform::ids::Slug::parse("report").expect("slug"),
        )
        .await
        .expect("q")
        .expect("app");
    store
        .grant_app_to_team(acme.id, report, team, &op())
        .await
        .expect("grant");
    admin::set_provider(store, &app.state.secrets, "acme", "sso", file, &op())
        .await
        .expect("provider set");
}

pub(crate) async fn tenant(app: &TestApp) -> platform::store::Tenant {
    app.state
        .store
        .tenant_by_slug(&platform::ids::Slug::parse("acme").expect("slug"))
        .await
        .expect("q")
        .expect("acme")
}

/// A browser: cookie jar, follows redirects except to a sign-in callback (so the test
/// can look at, replay or alter it).
pub(crate) fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        // Apps answer on their own origin, acme.localhost.
        .dns_resolver(std::sync::Arc::new(crate::support::LoopbackResolver))
        .redirect(reqwest::redirect::Policy::custom(|attempt| {
            let path = attempt.url().path();
            if path == "/auth/oidc/callback" || path == "/test-client/callback" {
                attempt.stop()
            } else if attempt.previous().len() > 20 {
                attempt.error("too many redirects")
            } else {
                attempt.follow()
            }
        }))
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client")
}

/// The `action` of the provider's login form.
fn form_action(html: &str) -> String {
    let at = html
        .find("action=\"")
        .unwrap_or_else(|| panic!("no form on the provider's page: {html}"))
        + 8;
    let end = html[at..].find('"').expect("end of action") + at;
    html[at..end].replace("&#47;", "/")
}

/// Log in at the provider's form reached by `response`; returns the callback URL the
/// provider redirects to.
pub(crate) async fn log_in_at_provider(
    client: &reqwest::Client,
    response: reqwest::Response,
    who: &str,
    password: &str,
) -> String {
    let page_url = response.url().clone();
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "login form at {page_url}"
    );
    let html = response.text().await.expect("body");
    assert!(html.contains("id=\"username\""), "{html}");
    let action = page_url.join(&form_action(&html)).expect("action URL");
    let after = client
        .post(action)
        .form(&[("username", who), ("password", password)])
        .send()
        .await
        .expect("login posts");
    assert_eq!(
        after.status(),
        StatusCode::SEE_OTHER,
        "the provider redirects back: {}",
        after.text().await.unwrap_or_default()
    );
    after
        .headers()
        .get(reqwest::header::LOCATION)
        .expect("location")
        .to_str()
        .expect("ascii")
        .to_owned()
}

/// Start Tessera's sign-in for `next` and log in at the provider; returns the callback URL.
pub(crate) async fn until_callback(
    client: &reqwest::Client,
    base: &str,
    who: &str,
    password: &str,
    next: &str,
) -> String {
    let started = client
        .get(format!("{base}/auth/acme/sso/start?next={next}"))
        .send()
        .await
        .expect("start");
    log_in_at_provider(client, started, who, password).await
}

/// The whole sign-in; returns the final response (the `next` page).
pub(crate) async fn sign_in(
    client: &reqwest::Client,
    base: &str,
    who: &str,
    password: &str,
    next: &str,
) -> reqwest::Response {
    let callback = until_callback(client, base, who, password, next).await;
    assert!(
        callback.starts_with(&format!("{base}/auth/oidc/callback?")),
        "{callback}"
    );
    assert!(
        callback.contains("iss="),
        "RFC 9207 iss is sent: {callback}"
    );
    client.get(callback).send().await.expect("callback")
}

/// Whether this browser is signed in: the tenant API answers 401 to no one.
pub(crate) async fn signed_in(client: &reqwest::Client, base: &str) -> bool {
    let status = client
        .get(format!("{base}/api/v1/tenants/acme/apps"))
        .send()
        .await
        .expect("api")
        .status();
    status != StatusCode::UNAUTHORIZED
}

pub(crate) async fn audit(app: &TestApp, action: &str) -> Vec<AuditEntry> {
    app.state
        .store
        .filtered_audit_entries(
            None,
            &AuditFilter {
                action: Some(action),
                actor: None,
            },
            None,
            100,
        )
        .await
        .expect("audit")
}

pub(crate) async fn role_of(app: &TestApp, email: &str) -> Option<platform::tenancy::Role> {
    let user = app
        .state
        .store
        .user_by_email(&platform::tenancy::Email::parse(email).expect("email"))
        .await
        .expect("q")?;
    app.state
        .store
        .membership(tenant(app).await.id, user.id)
        .await
        .expect("q")
}

async fn team_count(app: &TestApp, email: &str) -> usize {
    let user = app
        .state
        .store
        .user_by_email(&platform::tenancy::Email::parse(email).expect("email"))
        .await
        .expect("q")
        .expect("user");
    app.state
        .store
        .teams_of(tenant(app).await.id, user.id)
        .await
        .expect("q")
        .len()
}

pub(crate) async fn served() -> (TestApp, String, Arc<ShiftedClock>) {
    let clock = Arc::new(ShiftedClock::default());
    let (app, base) = TestApp::served(clock.clone()).await;
    (app, base, clock)
}

#[tokio::test]
async fn the_code_flow_signs_in_through_the_providers_form_and_opens_the_granted_app() {
    let (app, base, _clock) = served().await;
    let provider = Provider::start(&base, 600);
    setup(&app, &provider.issuer, 10).await;

    let alice = browser();
    let page = sign_in(&alice, &base, "alice", "alice-pw", "/apps/acme/report/").await;
    assert_eq!(page.url().path(), "/apps/acme/report/");
    assert_eq!(
        page.status(),
        StatusCode::OK,
        "alice's group grants the app"
    );
    assert!(signed_in(&alice, &base).await);
    assert_eq!(
        role_of(&app, "alice@example.org").await,
        Some(platform::tenancy::Role::Viewer)
    );
    assert_eq!(team_count(&app, "alice@example.org").await, 1);
    let links = audit(&app, "identity.link").await;
    assert_eq!(links.len(), 1, "{links:?}");
    assert_eq!(links[0].detail["provider"], "sso");
    let sign_ins = audit(&app, "auth.sign_in").await;
    assert_eq!(sign_ins[0].detail["method"], "oidc");
    assert_eq!(
        sign_ins[0].detail["groups"],
        serde_json::json!(["analysts"])
    );

    // A wrong password at the provider keeps the person there.
    let mallory = browser();
    let started = mallory
        .get(format!("{base}/auth/acme/sso/start?next=/"))
        .send()
        .await
        .expect("start");
    let html = started.text().await.expect("form");
    let wrong = mallory
        .post(
            reqwest::Url::parse(&provider.issuer)
                .expect("issuer")
                .join(&form_action(&html))
                .expect("url"),
        )
        .form(&[("username", "alice"), ("password", "nope")])
        .send()
        .await
        .expect("post");
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert!(!signed_in(&mallory, &base).await);

    // carol signs in (a new account) but no group of hers grants the app: 404.
    let carol = browser();
    let page = sign_in(&carol, &base, "carol", "carol-pw", "/apps/acme/report/").await;
    assert_eq!(page.url().path(), "/apps/acme/report/");
    assert_eq!(page.status(), StatusCode::NOT_FOUND);
    assert_eq!(role_of(&app, "carol@example.org").await, None);

    // bob's group makes him an admin, who opens every app of the tenant.
    let bob = browser();
    let page = sign_in(&bob, &base, "bob", "bob-pw", "/apps/acme/report/").await;
    assert_eq!(page.status(), StatusCode::OK);
    assert_eq!(
        role_of(&app, "bob@example.org").await,
        Some(platform::tenancy::Role::Admin)
    );
}

#[tokio::test]
async fn roles_and_teams_follow_the_groups_at_every_sign_in_and_manual_grants_stay() {
    let (app, base, _clock) = served().await;
    let provider = Provider::start(&base, 600);
    setup(&app, &provider.issuer, 10).await;
    let store = &app.state.store;
    // bob already has a local account (verified address: linked) and is an author by hand.
    admin::create_user(store, "bob@example.org", None, false, &op())
        .await
        .expect("bob");
    admin::grant(store, "bob@example.org", "acme", "author", &op())
        .await
        .expect("author");

    let alice = browser();
    let page = sign_in(&alice, &base, "alice", "alice-pw", "/apps/acme/report/").await;
    assert_eq!(page.status(), StatusCode::OK);
    let bob = browser();
    sign_in(&bob, &base, "bob", "bob-pw", "/").await;
    assert_eq!(
        role_of(&app, "bob@example.org").await,
        Some(platform::tenancy::Role::Admin),
        "the group raises the manual role"
    );

    provider.set_groups("alice", &[]);
    provider.set_groups("bob", &[]);
    let alice = browser();
    let page = sign_in(&alice, &base, "alice", "alice-pw", "/apps/acme/report/").await;
    assert_eq!(page.status(), StatusCode::NOT_FOUND, "the group is gone");
    assert_eq!(role_of(&app, "alice@example.org").await, None);
    let bob = browser();
    sign_in(&bob, &base, "bob", "bob-pw", "/").await;
    assert_eq!(
        role_of(&app, "bob@example.org").await,
        Some(platform::tenancy::Role::Author),
        "the manual role is back, not removed"
    );
    assert_eq!(audit(&app, "membership.remove").await.len(), 1);

    // The group comes back: role and team again, each change audited.
    provider.set_groups("alice", &["analysts"]);
    let alice = browser();
    let page = sign_in(&alice, &base, "alice", "alice-pw", "/apps/acme/report/").await;
    assert_eq!(page.status(), StatusCode::OK);
    assert_eq!(team_count(&app, "alice@example.org").await, 1);
    let team_adds = audit(&app, "team.add_member").await;
    assert_eq!(team_adds.len(), 2, "{team_adds:?}");
    assert!(team_adds.iter().all(|e| e.detail["provider"] == "sso"));
}

#[tokio::test]
async fn an_unverified_address_of_an_existing_account_is_not_linked() {
    let (app, base, _clock) = served().await;
    let provider = Provider::start(&base, 600);
    setup(&app, &provider.issuer, 10).await;
    admin::create_user(&app.state.store, "carol@example.org", None, false, &op())
        .await
        .expect("carol");
    let carol = browser();
    let page = sign_in(&carol, &base, "carol", "carol-pw", "/").await;
    assert_eq!(page.status(), StatusCode::FORBIDDEN);
    let html = page.text().await.expect("page");
    assert!(html.contains("has not verified the address"), "{html}");
    assert!(!signed_in(&carol, &base).await);
    let failed = audit(&app, "auth.sign_in_failed").await;
    assert_eq!(failed[0].detail["reason"], "email_not_verified");
    assert!(audit(&app, "identity.link").await.is_empty());
}

/// Refused: the page says so in plain words, an audit row names the reason, and the
/// browser is not signed in.
pub(crate) async fn assert_refused(
    app: &TestApp,
    client: &reqwest::Client,
    base: &str,
    response: reqwest::Response,
    reason: &str,
    sentence: &str,
) {
    let status = response.status();
    let html = response.text().await.expect("page");
    assert!(
        status.is_client_error() || status.is_server_error(),
        "{status}: {html}"
    );
    assert!(html.contains(sentence), "{sentence:?} not in {html}");
    assert!(html.contains("role=\"alert\""), "{html}");
    let failed = audit(app, "auth.sign_in_failed").await;
    assert!(
        failed.iter().any(|e| e.detail["reason"] == reason),
        "{reason}: {failed:?}"
    );
    assert!(!signed_in(client, base).await, "no session after {reason}");
}

#[tokio::test]
async fn a_callback_with_another_state_is_refused() {
    let (app, base, _clock) = served().await;
    let provider = Provider::start(&base, 600);
    setup(&app, &provider.issuer, 10).await;
    let client = browser();
    let callback = until_callback(&client, &base, "alice", "alice-pw", "/").await;
    let mut url = reqwest::Url::parse(&callback).expect("url");
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .map(|(k, v)| {
            let v = if k == "state" {
                "forged-state".to_owned()
            } else {
                v.into_owned()
            };
            (k.into_owned(), v)
        })
        .collect();
    url.query_pairs_mut().clear().extend_pairs(pairs);
    let response = client.get(url).send().await.expect("callback");
    assert_refused(
        &app,
        &client,
        &base,
        response,
        "bad_state",
        "not valid here",
    )
    .await;
    // The pending sign-in was used up by the forged attempt: the genuine one fails too.
    let response = client.get(&callback).send().await.expect("callback");
    assert_refused(
        &app,
        &client,
        &base,
        response,
        "bad_state",
        "not valid here",
    )
    .await;
    assert!(audit(&app, "auth.sign_in").await.is_empty());
}

#[tokio::test]
async fn a_replayed_callback_is_refused() {
    let (app, base, _clock) = served().await;
    let provider = Provider::start(&base, 600);
    setup(&app, &provider.issuer, 10).await;
    let victim = browser();
    let callback = until_callback(&victim, &base, "alice", "alice-pw", "/").await;
    let first = victim.get(&callback).send().await.expect("callback");
    assert_eq!(first.status(), StatusCode::OK);
    assert!(signed_in(&victim, &base).await);
    // Someone who captured the callback URL replays it in their own browser.
    let attacker = browser();
    let response = attacker.get(&callback).send().await.expect("replay");
    assert_refused(
        &app,
        &attacker,
        &base,
        response,
        "bad_state",
        "not valid here",
    )
    .await;
    // The same browser replaying it: the pending sign-in is gone too.
    let again = victim.get(&callback).send().await.expect("replay");
    assert_eq!(again.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(audit(&app, "auth.sign_in").await.len(), 1);
}

#[tokio::test]
async fn an_expired_id_token_is_refused() {
    let (app, base, clock) = served().await;
    // Tokens live 60 s; Tessera's clock then jumps 5 minutes before the callback.
    let provider = Provider::start(&base, 60);
    setup(&app, &provider.issuer, 10).await;
    let client = browser();
    let callback = until_callback(&client, &base, "alice", "alice-pw", "/").await;
    clock.advance(5 * 60 * 1000);
    let response = client.get(&callback).send().await.expect("callback");
    assert_refused(
        &app,
        &client,
        &base,
        response,
        "invalid_id_token",
        "could not be verified",
    )
    .await;
    let failed = audit(&app, "auth.sign_in_failed").await;
    let error = failed[0].detail["error"].as_str().unwrap_or_default();
    assert!(error.to_lowercase().contains("expire"), "{error}");
}

/// The provider's authorization code flow for the test's own client `client_id`; returns
/// the real id_token it issues and the nonce it carries.
async fn token_for_client(issuer: &str, client_id: &str, secret: &str) -> (String, String) {
    let client = browser();
    let verifier = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>());
    let challenge = URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes()));
    let nonce = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 16]>());
    let mut authorize = reqwest::Url::parse(&format!("{issuer}/auth")).expect("url");
    authorize
        .query_pairs_mut()
        .append_pair("client_id", client_id)
        .append_pair("response_type", "code")
        .append_pair("scope", "openid email groups")
        .append_pair("redirect_uri", TEST_CLIENT_REDIRECT)
        .append_pair("state", "test-state")
        .append_pair("nonce", &nonce)
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256");
    let form = client.get(authorize).send().await.expect("authorize");
    let callback = log_in_at_provider(&client, form, "alice", "alice-pw").await;
    let callback = reqwest::Url::parse(&callback).expect("callback url");
    let code = callback
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| panic!("no code in {callback}"));
    let tokens: serde_json::Value = client
        .post(format!("{issuer}/token"))
        .basic_auth(client_id, Some(secret))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", TEST_CLIENT_REDIRECT),
            ("code_verifier", &verifier),
        ])
        .send()
        .await
        .expect("token")
        .json()
        .await
        .expect("token json");
    let id_token = tokens["id_token"]
        .as_str()
        .unwrap_or_else(|| panic!("no id_token: {tokens}"))
        .to_owned();
    (id_token, nonce)
}

fn settings_for(issuer: &str, client_id: &str, secret: &str) -> OidcSettings {
    let Settings::Oidc(mut settings) =
        platform::auth::providers::parse_file(&provider_file(issuer, 10))
            .expect("parses")
            .settings
    else {
        panic!("oidc")
    };
    settings.client_id = client_id.to_owned();
    settings.client_secret = secret.to_owned();
    settings
}

/// Sign `header.payload` with a fresh RSA key (node's crypto): a token that names the
/// provider's key but was not signed by it.
fn re_sign(token: &str) -> String {
    let signing_input = token.rsplit_once('.').expect("jwt").0;
    let script = "const c=require('node:crypto');\
        const {privateKey}=c.generateKeyPairSync('rsa',{modulusLength:2048});\
        const s=c.createSign('RSA-SHA256');s.update(process.argv[1]);\
        process.stdout.write(s.sign(privateKey).toString('base64url'));";
    let output = Command::new("node")
        .args(["-e", script, signing_input])
        .output()
        .expect("node runs");
    assert!(output.status.success(), "{output:?}");
    format!(
        "{signing_input}.{}",
        String::from_utf8(output.stdout).expect("utf-8")
    )
}

/// A wrong audience or a foreign signature can only reach Tessera through a compromised
/// or impersonated token endpoint, which the real provider will not be. So these take a
/// real token the provider issued (to the second client, `other`), alter it as an attacker
/// would, and feed it to `Discovery::verify_id_token`, the function the callback uses.
#[tokio::test]
async fn id_tokens_for_another_audience_or_signed_by_another_key_are_rejected() {
    let (app, base, _clock) = served().await;
    let provider = Provider::start(&base, 600);
    setup(&app, &provider.issuer, 10).await;
    let record = app
        .state
        .store
        .identity_provider(tenant(&app).await.id, "sso")
        .await
        .expect("q")
        .expect("sso");
    let (token, nonce) = token_for_client(&provider.issuer, "other", "other-secret").await;
    let verify = |settings: OidcSettings, token: String, nonce: String| {
        let state = app.state.clone();
        async move {
            state
                .oidc
                .verify_id_token(record.id, &settings, &token, &nonce, &state.clock)
                .await
        }
    };
    let ours = settings_for(&provider.issuer, "dashboard", "dashboard-secret");
    let theirs = settings_for(&provider.issuer, "other", "other-secret");

    // The control: the untouched token is valid for the client it was issued to.
    let claims = verify(theirs.clone(), token.clone(), nonce.clone())
        .await
        .expect("valid for its own audience");
    assert_eq!(claims.groups, ["analysts"]);
    assert_eq!(claims.email.as_deref(), Some("alice@example.org"));

    let wrong_audience = verify(ours, token.clone(), nonce.clone())
        .await
        .expect_err("another client's token");
    assert!(
        wrong_audience
            .to_string()
            .to_lowercase()
            .contains("audience"),
        "{wrong_audience}"
    );
    assert_eq!(wrong_audience.reason(), "invalid_id_token");

    let forged = verify(theirs.clone(), re_sign(&token), nonce.clone())
        .await
        .expect_err("signed by another key");
    assert!(
        forged.to_string().to_lowercase().contains("signature"),
        "{forged}"
    );

    // Claims changed under the provider's own signature.
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    let mut payload: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(&parts[1]).expect("b64")).expect("json");
    payload["groups"] = serde_json::json!(["admins"]);
    parts[1] = URL_SAFE_NO_PAD.encode(payload.to_string());
    let altered = verify(theirs.clone(), parts.join("."), nonce.clone())
        .await
        .expect_err("altered claims");
    assert!(
        altered.to_string().to_lowercase().contains("signature"),
        "{altered}"
    );

    let other_nonce = verify(theirs, token, "another-nonce".into())
        .await
        .expect_err("nonce");
    assert!(
        other_nonce.to_string().to_lowercase().contains("nonce"),
        "{other_nonce}"
    );
}

#[tokio::test]
async fn a_provider_that_is_down_is_a_clear_error() {
    let (app, base, _clock) = served().await;
    let closed = free_port();
    setup(&app, &format!("http://127.0.0.1:{closed}"), 2).await;
    let client = browser();
    let response = client
        .get(format!("{base}/auth/acme/sso/start?next=/"))
        .send()
        .await
        .expect("start");
    assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
    assert_refused(
        &app,
        &client,
        &base,
        response,
        "provider_unavailable",
        "not reachable",
    )
    .await;
}

#[tokio::test]
async fn a_provider_that_never_answers_fails_within_its_timeout() {
    let (app, base, _clock) = served().await;
    // Accepts connections and never says a word.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let silent = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    setup(&app, &format!("http://{silent}"), 1).await;
    let client = browser();
    let began = Instant::now();
    let response = client
        .get(format!("{base}/auth/acme/sso/start?next=/"))
        .send()
        .await
        .expect("start");
    let took = began.elapsed();
    assert!(took < Duration::from_secs(5), "took {took:?}");
    assert!(took >= Duration::from_millis(900), "took {took:?}");
    assert_refused(
        &app,
        &client,
        &base,
        response,
        "provider_unavailable",
        "not reachable",
    )
    .await;
}

/// Sign in with a local password in this browser (the `/login` form).
pub(crate) async fn local_sign_in(client: &reqwest::Client, base: &str, email: &str, pw: &str) {
    let html = client
        .get(format!("{base}/login"))
        .send()
        .await
        .expect("login")
        .text()
        .await
        .expect("html");
    let signed = client
        .post(format!("{base}/login"))
        .form(&[
            ("csrf", csrf_of(&html).as_str()),
            ("email", email),
            ("password", pw),
            ("next", "/account"),
        ])
        .send()
        .await
        .expect("sign in");
    assert_eq!(signed.status(), StatusCode::OK, "{email} signs in");
    assert_eq!(signed.url().path(), "/account");
}

/// The account page of this browser's user.
pub(crate) async fn account_page(client: &reqwest::Client, base: &str) -> String {
    client
        .get(format!("{base}/account"))
        .send()
        .await
        .expect("account")
        .text()
        .await
        .expect("html")
}

pub(crate) const ROOT_PASSWORD: &str = "root password of the platform";

/// A superadmin with a password, and bea, the owner of another tenant (no password).
async fn accounts_outside_acme(app: &TestApp) {
    superadmin_and_other_owner(app, "root@example.org", "bea@example.org").await;
}

/// The accounts a tenant's provider must never sign in to: the superadmin `superadmin`
/// (password [`ROOT_PASSWORD`]) and `owner`, who owns the tenant `other` (no password).
pub(crate) async fn superadmin_and_other_owner(app: &TestApp, superadmin: &str, owner: &str) {
    let store = &app.state.store;
    admin::create_user(store, superadmin, Some(ROOT_PASSWORD), true, &op())
        .await
        .expect("superadmin");
    admin::create_user(store, owner, None, false, &op())
        .await
        .expect("owner");
    admin::create_tenant(store, "other", None, Some(owner), &op())
        .await
        .expect("other tenant");
}

#[tokio::test]
async fn a_tenants_provider_never_signs_in_as_a_superadmin_or_another_tenants_user() {
    let (app, base, _clock) = served().await;
    let provider = Provider::start(&base, 600);
    setup(&app, &provider.issuer, 10).await;
    accounts_outside_acme(&app).await;
    let store = &app.state.store;
    let users = store.user_count().await.expect("count");
    let grants = audit(&app, "membership.grant").await.len();
    let mut attempts = 0;
    for address in ["root@example.org", "bea@example.org"] {
        for verified in [true, false] {
            attempts += 1;
            // acme's provider asserts the address, in the group that grants admin.
            let who = format!("mallory{attempts}");
            provider.set_person(&who, address, verified, &["admins"]);
            let client = browser();
            let page = sign_in(&client, &base, &who, &format!("{who}-pw"), "/").await;
            assert_eq!(page.status(), StatusCode::FORBIDDEN, "{address} {verified}");
            let html = page.text().await.expect("page");
            assert!(
                html.contains("An account with this email address already exists. Sign in to it, then link Example SSO from your account page."),
                "{html}"
            );
            assert!(!signed_in(&client, &base).await, "no session as {address}");
            let failed = audit(&app, "auth.sign_in_failed").await;
            assert_eq!(failed.len(), attempts, "{failed:?}");
            assert!(
                failed
                    .iter()
                    .all(|e| e.detail["reason"] == "account_exists")
            );
            let provider_id = store
                .identity_provider(tenant(&app).await.id, "sso")
                .await
                .expect("q")
                .expect("sso")
                .id;
            assert_eq!(
                store.external_identity(provider_id, &who).await.expect("q"),
                None,
                "nothing linked"
            );
        }
    }
    assert_eq!(
        store.user_count().await.expect("count"),
        users,
        "nothing created"
    );
    assert!(audit(&app, "identity.link").await.is_empty());
    assert_eq!(
        audit(&app, "membership.grant").await.len(),
        grants,
        "no role granted"
    );
    assert_eq!(role_of(&app, "root@example.org").await, None);
    assert_eq!(role_of(&app, "bea@example.org").await, None);
}

#[tokio::test]
async fn an_account_acmes_provider_made_is_not_signed_in_by_it_once_another_tenant_adds_it() {
    let (app, base, _clock) = served().await;
    let provider = Provider::start(&base, 600);
    setup(&app, &provider.issuer, 10).await;
    accounts_outside_acme(&app).await;
    // acme's provider plants an account for someone else's address...
    provider.set_person("planted", "victim@corp.example", true, &["analysts"]);
    let first = browser();
    let page = sign_in(&first, &base, "planted", "planted-pw", "/account").await;
    assert_eq!(page.status(), StatusCode::OK);
    assert!(signed_in(&first, &base).await);
    // ...and another tenant's admin adds that address (the existing account) as admin.
    admin::grant(
        &app.state.store,
        "victim@corp.example",
        "other",
        "admin",
        &op(),
    )
    .await
    .expect("grant in other");
    let grants = audit(&app, "membership.grant").await.len();
    let again = browser();
    let page = sign_in(&again, &base, "planted", "planted-pw", "/account").await;
    assert_eq!(page.status(), StatusCode::FORBIDDEN);
    assert_refused(
        &app,
        &again,
        &base,
        page,
        "link_outgrown_tenant",
        "Example SSO alone no longer signs in to this account. Sign in to it another way, then link Example SSO from your account page.",
    )
    .await;
    assert_eq!(audit(&app, "membership.grant").await.len(), grants);
}

#[tokio::test]
async fn the_owner_links_the_provider_from_the_account_page_and_the_identity_then_signs_in() {
    let (app, base, _clock) = served().await;
    let provider = Provider::start(&base, 600);
    setup(&app, &provider.issuer, 10).await;
    accounts_outside_acme(&app).await;
    let store = &app.state.store;
    // dora has a password, is a viewer in acme and an author in other: only she may link.
    admin::create_user(store, "dora@example.org", Some(ROOT_PASSWORD), false, &op())
        .await
        .expect("dora");
    admin::grant(store, "dora@example.org", "acme", "viewer", &op())
        .await
        .expect("viewer");
    admin::grant(store, "dora@example.org", "other", "author", &op())
        .await
        .expect("author");
    provider.set_person("dora-at-idp", "dora@work.example", true, &["analysts"]);

    let dora = browser();
    local_sign_in(&dora, &base, "dora@example.org", ROOT_PASSWORD).await;
    let page = account_page(&dora, &base).await;
    assert!(page.contains("Link Example SSO"), "{page}");
    let csrf = csrf_of(&page);
    let started = dora
        .post(format!("{base}/account/link/acme/sso"))
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .expect("link starts");
    let callback = log_in_at_provider(&dora, started, "dora-at-idp", "dora-at-idp-pw").await;
    let linked = dora.get(callback).send().await.expect("callback");
    assert_eq!(linked.status(), StatusCode::OK);
    let html = linked.text().await.expect("page");
    assert!(
        html.contains("Example SSO is linked to your account."),
        "{html}"
    );
    assert!(html.contains("id=\"linked-acme-sso\""), "{html}");
    let links = audit(&app, "identity.link").await;
    assert_eq!(links.len(), 1, "{links:?}");
    let dora_id = store
        .user_by_email(&platform::tenancy::Email::parse("dora@example.org").expect("e"))
        .await
        .expect("q")
        .expect("dora")
        .id;
    assert_eq!(links[0].actor, format!("user:{}", dora_id.0));
    assert_eq!(links[0].detail["explicit"], true);
    assert_eq!(links[0].detail["subject"], "dora-at-idp");

    // The linked identity now signs in to dora's account, from a fresh browser.
    let fresh = browser();
    let page = sign_in(&fresh, &base, "dora-at-idp", "dora-at-idp-pw", "/account").await;
    assert_eq!(page.status(), StatusCode::OK);
    assert!(
        page.text()
            .await
            .expect("page")
            .contains("dora@example.org")
    );

    // The superadmin cannot take the identity over: it signs in to dora already.
    let root = browser();
    local_sign_in(&root, &base, "root@example.org", ROOT_PASSWORD).await;
    let csrf = csrf_of(&account_page(&root, &base).await);
    let started = root
        .post(format!("{base}/account/link/acme/sso"))
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .expect("link starts");
    let callback = log_in_at_provider(&root, started, "dora-at-idp", "dora-at-idp-pw").await;
    let refused = root.get(callback).send().await.expect("callback");
    assert_eq!(refused.status(), StatusCode::CONFLICT);
    let html = refused.text().await.expect("page");
    assert!(
        html.contains("already signs in to another account"),
        "{html}"
    );
    let failed = audit(&app, "identity.link_failed").await;
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].detail["reason"], "linked_to_another");
    assert_eq!(audit(&app, "identity.link").await.len(), 1);

    // A link callback reaching a browser that signed in as someone else meanwhile links
    // nothing: the link was asked by root, the browser is dora's now.
    let mixed = browser();
    local_sign_in(&mixed, &base, "root@example.org", ROOT_PASSWORD).await;
    let csrf = csrf_of(&account_page(&mixed, &base).await);
    let started = mixed
        .post(format!("{base}/account/link/acme/sso"))
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .expect("link starts");
    let callback = log_in_at_provider(&mixed, started, "alice", "alice-pw").await;
    local_sign_in(&mixed, &base, "dora@example.org", ROOT_PASSWORD).await;
    let refused = mixed.get(callback).send().await.expect("callback");
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    let failed = audit(&app, "auth.sign_in_failed").await;
    assert!(
        failed
            .iter()
            .any(|e| e.detail["reason"] == "not_signed_in_as_owner"),
        "{failed:?}"
    );
    assert_eq!(audit(&app, "identity.link").await.len(), 1);
}

#[tokio::test]
async fn the_sign_in_page_lists_the_tenants_providers() {
    let (app, base, _clock) = served().await;
    setup(&app, "http://127.0.0.1:1", 2).await;
    admin::set_provider(
        &app.state.store,
        &app.state.secrets,
        "acme",
        "corp-ldap",
        LDAP_FILE,
        &op(),
    )
    .await
    .expect("ldap provider");
    let client = browser();
    for query in ["?tenant=acme", "?next=/apps/acme/report/"] {
        let html = client
            .get(format!("{base}/login{query}"))
            .send()
            .await
            .expect("login")
            .text()
            .await
            .expect("html");
        assert!(html.contains("/auth/acme/sso/start?next="), "{html}");
        assert!(html.contains("Sign in with Example SSO"), "{html}");
        assert!(html.contains("action=\"/login/acme/corp-ldap\""), "{html}");
    }
    let plain = client
        .get(format!("{base}/login"))
        .send()
        .await
        .expect("login")
        .text()
        .await
        .expect("html");
    assert!(!plain.contains("Example SSO"));
}

const LDAP_FILE: &str = r#"
kind = "ldap"
display_name = "Corporate directory"
url = "ldap://127.0.0.1:1"
bind_dn = "cn=admin,dc=example,dc=org"
bind_password = "admin-secret"
user_base = "ou=people,dc=example,dc=org"
group_base = "ou=groups,dc=example,dc=org"
timeout_seconds = 2
[[groups]]
group = "analysts"
role = "viewer"
"#;

pub(crate) fn csrf_of(html: &str) -> String {
    let at = html.find("name=\"csrf\" value=\"").expect("csrf field") + 19;
    html[at..at + 64].to_owned()
}

#[tokio::test]
async fn an_unreachable_directory_is_a_clear_error_and_empty_passwords_never_bind() {
    let (app, base, _clock) = served().await;
    app.deploy("acme", "report", "hello.wasm").await;
    let closed = free_port();
    let file = LDAP_FILE.replace("ldap://127.0.0.1:1", &format!("ldap://127.0.0.1:{closed}"));
    admin::set_provider(
        &app.state.store,
        &app.state.secrets,
        "acme",
        "corp-ldap",
        &file,
        &op(),
    )
    .await
    .expect("ldap provider");
    let client = browser();
    let html = client
        .get(format!("{base}/login?tenant=acme"))
        .send()
        .await
        .expect("login")
        .text()
        .await
        .expect("html");
    let csrf = csrf_of(&html);
    let post = |password: &'static str, csrf: String| {
        let client = client.clone();
        let base = base.clone();
        async move {
            client
                .post(format!("{base}/login/acme/corp-ldap"))
                .form(&[
                    ("csrf", csrf.as_str()),
                    ("username", "alice"),
                    ("password", password),
                    ("next", "/apps/acme/report/"),
                ])
                .send()
                .await
                .expect("post")
        }
    };
    let response = post("alice-pw", csrf.clone()).await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_refused(
        &app,
        &client,
        &base,
        response,
        "directory_unavailable",
        "directory is not reachable",
    )
    .await;
    let response = post("", csrf.clone()).await;
    assert_refused(
        &app,
        &client,
        &base,
        response,
        "empty_credentials",
        "Enter your user name and password.",
    )
    .await;
    // Without the form's CSRF token: refused before anything else.
    let response = post("alice-pw", "0".repeat(64)).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn provider_secrets_are_sealed_at_rest_and_never_listed() {
    let (app, _base, _clock) = served().await;
    setup(&app, "http://127.0.0.1:9400", 10).await;
    let store = &app.state.store;
    let record = store
        .identity_provider(tenant(&app).await.id, "sso")
        .await
        .expect("q")
        .expect("sso");
    assert!(
        !record.settings.contains("dashboard-secret"),
        "{}",
        record.settings
    );
    let listed = admin::list_providers(store, "acme").await.expect("list");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].location, "http://127.0.0.1:9400");
    assert_eq!(listed[0].groups, ["analysts", "admins"]);
    let set = audit(&app, "identity_provider.set").await;
    assert!(!set[0].detail.to_string().contains("dashboard-secret"));
    // A bad file is refused and the stored provider is unchanged.
    let err = admin::set_provider(
        store,
        &app.state.secrets,
        "acme",
        "sso",
        "kind = \"oidc\"\ndisplay_name = \"x\"\n",
        &op(),
    )
    .await
    .expect_err("incomplete file");
    assert!(err.to_string().contains("issuer"), "{err}");
    let unchanged = store
        .identity_provider(tenant(&app).await.id, "sso")
        .await
        .expect("q")
        .expect("still there");
    assert_eq!(unchanged, record);
    admin::remove_provider(store, "acme", "sso", &op())
        .await
        .expect("removed");
    assert!(
        admin::list_providers(store, "acme")
            .await
            .expect("list")
            .is_empty()
    );
    assert!(
        admin::remove_provider(store, "acme", "sso", &op())
            .await
            .is_err()
    );
}

#[test]
fn the_idp_commands_set_list_and_remove_without_showing_or_storing_the_secret() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let tessera = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_tessera"))
            .env_remove("TESSERA_DATABASE_URL")
            .env_remove("TESSERA_CONFIG")
            .env_remove("TESSERA_SECRET_KEY")
            .env_remove("TESSERA_SECRET_KEY_FILE")
            .env("TESSERA_DATA_DIR", dir.path())
            .env("RUST_LOG", "warn")
            .args(args)
            .output()
            .expect("run tessera")
    };
    let created = tessera(&["admin", "create-tenant", "acme"]);
    assert!(created.status.success(), "{created:?}");
    let file = dir.path().join("sso.toml");
    std::fs::write(&file, provider_file("http://127.0.0.1:9400", 10)).expect("write");
    let file = file.to_str().expect("utf-8");
    let set = tessera(&["admin", "idp", "set", "acme", "sso", "--file", file]);
    let out = String::from_utf8_lossy(&set.stdout).into_owned();
    assert!(set.status.success(), "{set:?}");
    assert!(
        out.contains("created identity provider sso of acme"),
        "{out}"
    );
    let key = dir.path().join("secret.key");
    let mode = std::fs::metadata(&key)
        .expect("key file")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    let list = tessera(&["admin", "idp", "list", "acme"]);
    let listed = String::from_utf8_lossy(&list.stdout).into_owned();
    assert!(
        listed.contains("sso\toidc\tExample SSO\thttp://127.0.0.1:9400"),
        "{listed}"
    );
    assert!(!listed.contains("dashboard-secret"), "{listed}");

    // The database file itself never holds the secret in clear.
    let mut stored = Vec::new();
    for entry in std::fs::read_dir(dir.path()).expect("dir") {
        let path = entry.expect("entry").path();
        if path.to_string_lossy().contains("tessera.db") {
            stored.extend(std::fs::read(&path).expect("read db"));
        }
    }
    assert!(!stored.is_empty());
    assert!(
        !stored.windows(16).any(|w| w == b"dashboard-secret"),
        "the client secret is in the database file in clear"
    );

    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "kind = \"oidc\"\ndisplay_name = \"x\"\nissuer = \"ftp://x\"\n",
    )
    .expect("write");
    let refused = tessera(&[
        "admin",
        "idp",
        "set",
        "acme",
        "sso",
        "--file",
        bad.to_str().expect("utf-8"),
    ]);
    let err = String::from_utf8_lossy(&refused.stderr).into_owned();
    assert!(!refused.status.success());
    assert!(
        err.contains("refused") && err.contains("client_id"),
        "{err}"
    );

    let removed = tessera(&["admin", "idp", "remove", "acme", "sso"]);
    assert!(removed.status.success(), "{removed:?}");
    let again = tessera(&["admin", "idp", "remove", "acme", "sso"]);
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("no identity provider"),
        "{again:?}"
    );
}
