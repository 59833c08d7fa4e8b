//! Identity providers as an administrator meets them (issue 13): sign-in against an
//! Active-Directory-shaped directory (real slapd, `crate::ldap`'s), removing a provider
//! (what it granted is taken back, or kept as hand-given), and "test this provider" through
//! the domain function, the CLI and the REST API, for LDAP and for the real OpenID provider.

use std::process::Command;

use platform::admin;
use platform::tenancy::{Email, Role};
use reqwest::StatusCode;

use crate::ldap::{ad_provider_file, directory, post_directory_form};
use crate::oidc::{audit, browser, csrf_of, op, served, signed_in};
use crate::support::{TestApp, repo_root, tessera_command};

async fn role_of(app: &TestApp, tenant: &str, email: &str) -> Option<Role> {
    let store = &app.state.store;
    let user = store
        .user_by_email(&Email::parse(email).expect("email"))
        .await
        .expect("q")?;
    let tenant = store
        .tenant_by_slug(&platform::ids::Slug::parse(tenant).expect("slug"))
        .await
        .expect("q")
        .expect("tenant");
    store.membership(tenant.id, user.id).await.expect("q")
}

async fn team_count(app: &TestApp, tenant: &str, email: &str) -> usize {
    let store = &app.state.store;
    let Some(user) = store
        .user_by_email(&Email::parse(email).expect("email"))
        .await
        .expect("q")
    else {
        return 0;
    };
    let tenant = store
        .tenant_by_slug(&platform::ids::Slug::parse(tenant).expect("slug"))
        .await
        .expect("q")
        .expect("tenant");
    store.teams_of(tenant.id, user.id).await.expect("q").len()
}

/// Tenant `acme` with the AD provider `corp` (`extra` lines added to its file).
async fn acme_with_ad(app: &TestApp, extra: &str) {
    let store = &app.state.store;
    admin::create_tenant(store, "acme", None, None, &op())
        .await
        .expect("acme");
    set_ad(app, extra).await;
}

async fn set_ad(app: &TestApp, extra: &str) {
    admin::set_provider(
        &app.state.store,
        &app.state.secrets,
        "acme",
        "corp",
        &ad_provider_file(extra),
        &op(),
    )
    .await
    .expect("provider");
}

/// Sign in through acme's `corp` form as `user` (password `{user}-pw`).
async fn ad_sign_in(base: &str, user: &str) -> (reqwest::Client, reqwest::Response) {
    let client = browser();
    let html = client
        .get(format!("{base}/login?tenant=acme"))
        .send()
        .await
        .expect("login page")
        .text()
        .await
        .expect("html");
    let response = post_directory_form(
        &client,
        base,
        "/login/acme/corp",
        &csrf_of(&html),
        user,
        &format!("{user}-pw"),
    )
    .await;
    (client, response)
}

#[tokio::test]
async fn ad_people_sign_in_through_the_page_with_roles_from_nested_groups_and_the_rest_are_refused()
{
    let (app, base, _clock) = served().await;
    acme_with_ad(&app, "").await;
    for (who, role, teams) in [
        ("ada", Some(Role::Viewer), 1),
        ("ben", Some(Role::Admin), 0),
        ("fay", Some(Role::Viewer), 1),
        // dee's only group maps to nothing: an account, but no role in acme (its apps
        // answer 404 as to a stranger).
        ("dee", None, 0),
    ] {
        let (client, response) = ad_sign_in(&base, who).await;
        assert_eq!(response.status(), StatusCode::OK, "{who}");
        assert!(signed_in(&client, &base).await, "{who}");
        let email = format!("{who}@corp.example.com");
        assert_eq!(role_of(&app, "acme", &email).await, role, "{who}");
        assert_eq!(team_count(&app, "acme", &email).await, teams, "{who}");
    }
    let sign_ins = audit(&app, "auth.sign_in").await;
    let ben = sign_ins
        .iter()
        .find(|e| {
            e.detail["groups"]
                .as_array()
                .is_some_and(|g| g.iter().any(|g| g == "IT Ops"))
        })
        .expect("ben's sign-in row");
    assert_eq!(ben.detail["method"], "ldap");

    // Refusals: a sentence, an audit row with the reason, no session.
    async fn refused_with(
        app: &TestApp,
        base: &str,
        who: &str,
        status: StatusCode,
        reason: &str,
        sentence: &str,
    ) {
        let before = audit(app, "auth.sign_in_failed").await.len();
        let (client, response) = ad_sign_in(base, who).await;
        assert_eq!(response.status(), status, "{who}");
        let html = response.text().await.expect("page");
        assert!(html.contains(sentence), "{who}: {html}");
        assert!(!signed_in(&client, base).await, "no session for {who}");
        let failed = audit(app, "auth.sign_in_failed").await;
        assert_eq!(failed.len(), before + 1, "{who}");
        // Newest first.
        assert_eq!(failed[0].detail["reason"], reason, "{who}: {:?}", failed[0]);
    }
    // cy is disabled (userAccountControl 514): the user filter leaves cy out.
    refused_with(
        &app,
        &base,
        "cy",
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
        "Wrong user name or password.",
    )
    .await;
    assert_eq!(
        app.state
            .store
            .user_by_email(&Email::parse("cy@corp.example.com").expect("email"))
            .await
            .expect("q"),
        None
    );
    // nest10's groups go ten levels up; the provider follows eight.
    refused_with(
        &app,
        &base,
        "nest10",
        StatusCode::FORBIDDEN,
        "groups_too_deep",
        "Your directory groups are nested too deeply to work out your roles",
    )
    .await;
    let failed = audit(&app, "auth.sign_in_failed").await;
    assert!(
        failed[0].detail["error"]
            .as_str()
            .is_some_and(|e| e.contains("nested_depth = 8")),
        "{:?}",
        failed[0]
    );
    // With nested_depth = 10 nest10 gets in, through Chain-12.
    set_ad(&app, "nested_depth = 10").await;
    let (_, response) = ad_sign_in(&base, "nest10").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        role_of(&app, "acme", "nest10@corp.example.com").await,
        Some(Role::Viewer)
    );
    // A provider whose user base is a referral to another server.
    let d = directory();
    let referred = ad_provider_file("").replace(
        &format!("user_base = {:?}", d.get("LDAP_AD_USER_BASE")),
        &format!("user_base = {:?}", d.get("LDAP_AD_REFERRAL_BASE")),
    );
    assert_ne!(referred, ad_provider_file(""));
    admin::set_provider(
        &app.state.store,
        &app.state.secrets,
        "acme",
        "corp",
        &referred,
        &op(),
    )
    .await
    .expect("provider");
    refused_with(
        &app,
        &base,
        "ada",
        StatusCode::BAD_GATEWAY,
        "directory_referral",
        "The directory sent this sign-in to another server, which is not followed.",
    )
    .await;
}

#[tokio::test]
async fn removing_a_provider_takes_back_what_it_granted() {
    let (app, base, _clock) = served().await;
    let store = &app.state.store;
    acme_with_ad(&app, "").await;
    // A hand-made member whose role the directory raises: dee is author by hand, and
    // (once Sales maps to admin) admin through the directory.
    for who in ["ada", "ben", "dee"] {
        let (_, response) = ad_sign_in(&base, who).await;
        assert_eq!(response.status(), StatusCode::OK, "{who}");
    }
    admin::grant(store, "dee@corp.example.com", "acme", "author", &op())
        .await
        .expect("hand grant");
    set_ad(&app, "[[groups]]\ngroup = \"Sales\"\nrole = \"admin\"").await;
    let (_, response) = ad_sign_in(&base, "dee").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        role_of(&app, "acme", "dee@corp.example.com").await,
        Some(Role::Admin)
    );
    // A member the provider never touched stays whatever happens.
    admin::create_user(store, "hand@example.org", None, false, &op())
        .await
        .expect("user");
    admin::grant(store, "hand@example.org", "acme", "viewer", &op())
        .await
        .expect("grant");

    let removal = admin::remove_provider(store, "acme", "corp", &op())
        .await
        .expect("removed");
    assert_eq!(
        (
            removal.memberships_removed,
            removal.roles_restored,
            removal.team_memberships_removed,
            removal.memberships_kept
        ),
        (2, 1, 1, 0),
        "{removal:?}"
    );
    assert_eq!(role_of(&app, "acme", "ada@corp.example.com").await, None);
    assert_eq!(team_count(&app, "acme", "ada@corp.example.com").await, 0);
    assert_eq!(role_of(&app, "acme", "ben@corp.example.com").await, None);
    assert_eq!(
        role_of(&app, "acme", "dee@corp.example.com").await,
        Some(Role::Author),
        "dee's hand-given role comes back"
    );
    assert_eq!(
        role_of(&app, "acme", "hand@example.org").await,
        Some(Role::Viewer)
    );
    let removed = audit(&app, "membership.remove").await;
    assert_eq!(removed.len(), 2, "{removed:?}");
    assert!(removed.iter().all(
        |e| e.detail["provider"] == "corp" && e.detail["reason"] == "identity_provider.remove"
    ));
    let row = &audit(&app, "identity_provider.remove").await[0];
    assert_eq!(row.detail["keep_memberships"], false);
    assert_eq!(row.detail["memberships_removed"], 2);
    // Gone means gone: the identities are unlinked, the provider answers 404.
    let (_, response) = ad_sign_in(&base, "ada").await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert!(
        admin::remove_provider(store, "acme", "corp", &op())
            .await
            .is_err()
    );
}

#[tokio::test]
async fn removing_a_provider_keeping_memberships_makes_them_hand_given_and_audits_each() {
    let (app, base, _clock) = served().await;
    let store = &app.state.store;
    acme_with_ad(&app, "").await;
    for who in ["ada", "ben"] {
        let (_, response) = ad_sign_in(&base, who).await;
        assert_eq!(response.status(), StatusCode::OK, "{who}");
    }
    let removal = admin::remove_provider_with(store, "acme", "corp", true, &op())
        .await
        .expect("removed");
    assert_eq!(
        (
            removal.memberships_kept,
            removal.team_memberships_kept,
            removal.memberships_removed
        ),
        (2, 1, 0)
    );
    assert_eq!(
        role_of(&app, "acme", "ada@corp.example.com").await,
        Some(Role::Viewer)
    );
    assert_eq!(team_count(&app, "acme", "ada@corp.example.com").await, 1);
    assert_eq!(
        role_of(&app, "acme", "ben@corp.example.com").await,
        Some(Role::Admin)
    );
    let kept = audit(&app, "membership.keep").await;
    assert_eq!(kept.len(), 2, "{kept:?}");
    assert!(
        kept.iter()
            .all(|e| e.detail["now"] == "hand_given" && e.detail["provider"] == "corp")
    );
    assert_eq!(audit(&app, "team.keep_member").await.len(), 1);
    // Hand-given now: a new provider whose mappings grant nothing does not take them back.
    admin::set_provider(
        store,
        &app.state.secrets,
        "acme",
        "corp",
        ad_provider_file("")
            .split("[[groups]]")
            .next()
            .expect("head"),
        &op(),
    )
    .await
    .expect("provider again");
    let (_, response) = ad_sign_in(&base, "ben").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        role_of(&app, "acme", "ben@corp.example.com").await,
        Some(Role::Admin)
    );
}

#[tokio::test]
async fn testing_an_ldap_provider_reports_the_bind_the_groups_and_the_roles() {
    let (app, _base, _clock) = served().await;
    let store = &app.state.store;
    acme_with_ad(&app, "").await;
    let test = |user: Option<&'static str>| {
        let app = &app;
        async move {
            admin::test_provider(
                &app.state.store,
                &app.state.secrets,
                "acme",
                "corp",
                user,
                &op(),
            )
            .await
            .expect("test runs")
        }
    };
    let ben = test(Some("ben")).await;
    assert!(ben.ok, "{ben:?}");
    let directory = ben.directory.as_ref().expect("directory");
    assert!(directory.service_bind.contains("svc-tessera"));
    assert!(!directory.in_chain.supported);
    let user = directory.user.as_ref().expect("ben");
    assert_eq!(user.groups, ["Dash-Admins", "IT Ops", "Platform Engineers"]);
    let mapped = ben.mapped.as_ref().expect("mapped");
    assert_eq!(mapped.role.as_deref(), Some("admin"));
    assert_eq!(
        mapped.matched,
        ["CN=Dash-Admins, OU=Groups, DC=corp, DC=example, DC=com"]
    );
    // No user name: the bind and detection only.
    let bare = test(None).await;
    assert!(bare.ok && bare.mapped.is_none(), "{bare:?}");
    // The disabled account is not found, and the report says why that may be.
    let cy = test(Some("cy")).await;
    assert!(!cy.ok);
    assert!(
        cy.error.as_deref().is_some_and(|e| e.contains("disabled")),
        "{cy:?}"
    );
    // Too deep: the same refusal as at sign-in.
    let deep = test(Some("deep")).await;
    assert!(
        deep.error
            .as_deref()
            .is_some_and(|e| e.contains("nested_depth = 8")),
        "{deep:?}"
    );
    // A wrong service password fails the test, without the password in the report.
    let wrong = ad_provider_file("").replace("svc-tessera-pw", "not-the-password");
    admin::set_provider(store, &app.state.secrets, "acme", "bad", &wrong, &op())
        .await
        .expect("provider");
    let bad = admin::test_provider(store, &app.state.secrets, "acme", "bad", Some("ada"), &op())
        .await
        .expect("test runs");
    assert!(!bad.ok);
    let text = serde_json::to_string(&bad).expect("json");
    assert!(text.contains("service bind"), "{text}");
    assert!(!text.contains("not-the-password"), "{text}");
    let rows = audit(&app, "identity_provider.test").await;
    assert_eq!(rows.len(), 5, "{rows:?}");
    assert_eq!(rows[0].detail["ok"], false);
    assert_eq!(rows[0].detail["provider"], "bad");
    // Bad input: a control character in the sample name, an unknown provider.
    assert!(
        admin::test_provider(
            store,
            &app.state.secrets,
            "acme",
            "corp",
            Some("a\0b"),
            &op()
        )
        .await
        .is_err()
    );
    assert!(
        admin::test_provider(store, &app.state.secrets, "acme", "nope", None, &op())
            .await
            .is_err()
    );
}

#[tokio::test]
async fn the_rest_api_tests_a_provider_for_tenant_admins_only() {
    use axum::body::Body;
    use axum::http::{Request, header};
    let (app, _base, _clock) = served().await;
    let store = &app.state.store;
    acme_with_ad(&app, "").await;
    admin::create_tenant(store, "other", None, None, &op())
        .await
        .expect("other");
    let mut tokens = Vec::new();
    for (email, tenant, role) in [
        ("admin@acme.example", "acme", "admin"),
        ("viewer@acme.example", "acme", "viewer"),
        ("admin@other.example", "other", "admin"),
    ] {
        admin::create_user(store, email, None, false, &op())
            .await
            .expect("user");
        admin::grant(store, email, tenant, role, &op())
            .await
            .expect("grant");
        tokens.push(
            admin::create_token(store, email, tenant, None, 1, &op())
                .await
                .expect("token")
                .token,
        );
    }
    let post = |token: String, body: &'static str| {
        let app = &app;
        async move {
            app.request(
                Request::post("/api/v1/tenants/acme/identity-providers/corp/test")
                    .header(header::AUTHORIZATION, format!("Bearer {token}"))
                    .header(header::CONTENT_TYPE, "application/json")
                    .body(Body::from(body))
                    .expect("request"),
            )
            .await
        }
    };
    let reply = post(tokens[0].clone(), r#"{"username": "ada"}"#).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let report = reply.json();
    assert_eq!(report["ok"], true);
    assert_eq!(report["kind"], "ldap");
    assert_eq!(report["mapped"]["role"], "viewer");
    assert_eq!(
        report["directory"]["user"]["groups"],
        serde_json::json!(["Analysts", "Dash-Viewers"])
    );
    // No body at all is a test without a sample user.
    let reply = post(tokens[0].clone(), "").await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert!(reply.json()["directory"]["user"].is_null());
    // Bad bodies are refused with a reason.
    for body in [r#"{"user": "ada"}"#, "not json", r#"{"username": 7}"#] {
        let reply = post(tokens[0].clone(), body).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(reply.error_code(), "validation_failed", "{body}");
    }
    // A viewer may not; another tenant's admin does not see acme; no token is 401.
    assert_eq!(
        post(tokens[1].clone(), "{}").await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        post(tokens[2].clone(), "{}").await.status,
        StatusCode::NOT_FOUND
    );
    let anonymous = app
        .request(
            Request::post("/api/v1/tenants/acme/identity-providers/corp/test")
                .body(Body::empty())
                .expect("request"),
        )
        .await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    let rows = audit(&app, "identity_provider.test").await;
    assert_eq!(rows.len(), 2, "only the admin's tests ran: {rows:?}");
    assert!(
        rows[0].actor.starts_with("token:") || rows[0].actor.starts_with("user:"),
        "{:?}",
        rows[0]
    );
}

#[test]
fn the_idp_cli_tests_a_provider_and_removes_it_keeping_memberships_on_request() {
    let dir = tempfile::tempdir().expect("tempdir");
    let run = |args: &[&str]| {
        tessera_command(dir.path())
            .args(args)
            .output()
            .expect("run")
    };
    assert!(run(&["admin", "create-tenant", "acme"]).status.success());
    let file = dir.path().join("corp.toml");
    std::fs::write(&file, ad_provider_file("")).expect("file");
    let set = run(&[
        "admin",
        "idp",
        "set",
        "acme",
        "corp",
        "--file",
        file.to_str().expect("path"),
    ]);
    assert!(
        set.status.success(),
        "{}",
        String::from_utf8_lossy(&set.stderr)
    );
    let ok = run(&[
        "admin",
        "idp",
        "test",
        "--tenant",
        "acme",
        "corp",
        "--username",
        "ben",
    ]);
    let stdout = String::from_utf8_lossy(&ok.stdout);
    assert!(
        ok.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let report: serde_json::Value = serde_json::from_str(&stdout).expect("JSON report");
    assert_eq!(report["mapped"]["role"], "admin");
    assert_eq!(report["directory"]["in_chain"]["supported"], false);
    assert!(!stdout.contains("svc-tessera-pw"));
    let disabled = run(&[
        "admin",
        "idp",
        "test",
        "--tenant",
        "acme",
        "corp",
        "--username",
        "cy",
    ]);
    assert!(!disabled.status.success());
    assert!(
        String::from_utf8_lossy(&disabled.stderr).contains("failed"),
        "{}",
        String::from_utf8_lossy(&disabled.stderr)
    );
    let kept = run(&[
        "admin",
        "idp",
        "remove",
        "acme",
        "corp",
        "--keep-memberships",
    ]);
    let stdout = String::from_utf8_lossy(&kept.stdout);
    assert!(kept.status.success(), "{stdout}");
    assert!(stdout.contains("kept as hand-given: 0 roles"), "{stdout}");
    let again = run(&["admin", "idp", "remove", "acme", "corp"]);
    assert!(!again.status.success());
}

/// The test OpenID provider on a free port; stopped on drop.
struct OidcProvider {
    issuer: String,
    run_dir: tempfile::TempDir,
}

impl OidcProvider {
    fn start() -> Self {
        let run_dir = tempfile::tempdir().expect("tempdir");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("port")
            .port();
        let output = Command::new(repo_root().join("scripts/services/start-oidc.sh"))
            .arg(run_dir.path())
            .env("OIDC_PORT", port.to_string())
            .env("OIDC_REDIRECT_URIS", "http://127.0.0.1:9/callback")
            .output()
            .expect("start-oidc.sh runs");
        assert!(
            output.status.success(),
            "the test OpenID provider did not start (it needs node and npm): {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        let issuer = String::from_utf8_lossy(&output.stdout)
            .lines()
            .find_map(|l| l.strip_prefix("OIDC_ISSUER="))
            .expect("OIDC_ISSUER line")
            .to_owned();
        Self { issuer, run_dir }
    }
}

impl Drop for OidcProvider {
    fn drop(&mut self) {
        let _ = Command::new(repo_root().join("scripts/services/start-oidc.sh"))
            .arg("stop")
            .arg(self.run_dir.path())
            .status();
    }
}

fn oidc_file(issuer: &str) -> String {
    format!(
        "kind = \"oidc\"\ndisplay_name = \"SSO\"\nissuer = {issuer:?}\nclient_id = \"dashboard\"\n\
         client_secret = \"dashboard-secret\"\ntimeout_seconds = 3\n"
    )
}

#[tokio::test]
async fn testing_an_oidc_provider_reports_its_discovery_document() {
    let provider = OidcProvider::start();
    let (app, _base, _clock) = served().await;
    let store = &app.state.store;
    admin::create_tenant(store, "acme", None, None, &op())
        .await
        .expect("acme");
    admin::set_provider(
        store,
        &app.state.secrets,
        "acme",
        "sso",
        &oidc_file(&provider.issuer),
        &op(),
    )
    .await
    .expect("provider");
    // The provider answers discovery about a second after it starts.
    let mut report = None;
    for _ in 0..40 {
        let r = admin::test_provider(store, &app.state.secrets, "acme", "sso", None, &op())
            .await
            .expect("test runs");
        if r.ok {
            report = Some(r);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    let report = report.expect("discovery succeeds once the provider is up");
    assert_eq!(report.kind, "oidc");
    let discovery = report.discovery.as_ref().expect("discovery");
    assert_eq!(discovery.issuer, provider.issuer);
    assert!(
        discovery
            .token_endpoint
            .as_deref()
            .is_some_and(|t| t.starts_with(&provider.issuer)),
        "{discovery:?}"
    );
    assert!(discovery.jwks_uri.starts_with(&provider.issuer));
    assert!(
        discovery.id_token_signing_algs.iter().any(|a| a == "RS256"),
        "{discovery:?}"
    );
    assert!(
        discovery
            .token_endpoint_auth_methods
            .iter()
            .any(|m| m == "client_secret_basic"),
        "{discovery:?}"
    );
    assert!(!discovery.keys.is_empty(), "{discovery:?}");
    assert!(report.directory.is_none() && report.mapped.is_none());
    assert!(
        !serde_json::to_string(&report)
            .expect("json")
            .contains("dashboard-secret")
    );

    // A provider where nothing answers fails the test with the reason.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    admin::set_provider(
        store,
        &app.state.secrets,
        "acme",
        "down",
        &oidc_file(&format!("http://127.0.0.1:{port}")),
        &op(),
    )
    .await
    .expect("provider");
    let down = admin::test_provider(store, &app.state.secrets, "acme", "down", None, &op())
        .await
        .expect("test runs");
    assert!(!down.ok);
    assert!(
        down.error
            .as_deref()
            .is_some_and(|e| e.contains("unavailable")),
        "{down:?}"
    );
}

#[tokio::test]
async fn the_rest_api_removes_a_provider_keeping_memberships_when_asked() {
    use axum::body::Body;
    use axum::http::Request;
    use platform::policy::{Principal, UserPrincipal};
    let (app, base, _clock) = served().await;
    let store = &app.state.store;
    acme_with_ad(&app, "").await;
    let (_, response) = ad_sign_in(&base, "ada").await;
    assert_eq!(response.status(), StatusCode::OK);
    let root = admin::create_user(store, "root@example.org", None, true, &op())
        .await
        .expect("superadmin");
    let principal = Principal::User(UserPrincipal {
        id: root.id,
        superadmin: true,
        memberships: Vec::new(),
    });
    let delete = |query: &'static str| {
        let app = &app;
        let principal = principal.clone();
        async move {
            let mut request = Request::delete(format!(
                "/api/v1/tenants/acme/identity-providers/corp{query}"
            ))
            .body(Body::empty())
            .expect("request");
            request.extensions_mut().insert(principal);
            app.request(request).await
        }
    };
    // A value that is not a boolean is refused, and nothing is removed.
    let bad = delete("?keep_memberships=yes").await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{}", bad.text());
    assert_eq!(
        admin::list_providers(store, "acme")
            .await
            .expect("list")
            .len(),
        1
    );
    let kept = delete("?keep_memberships=true").await;
    assert_eq!(kept.status, StatusCode::NO_CONTENT, "{}", kept.text());
    assert!(
        admin::list_providers(store, "acme")
            .await
            .expect("list")
            .is_empty()
    );
    assert_eq!(
        role_of(&app, "acme", "ada@corp.example.com").await,
        Some(Role::Viewer)
    );
    let rows = audit(&app, "membership.keep").await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert!(rows[0].actor.starts_with("user:"), "{:?}", rows[0]);
}
