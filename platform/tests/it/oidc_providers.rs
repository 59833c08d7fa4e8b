//! Sign-in through OpenID providers shaped like the ones organizations run, each the real
//! provider from `tests/services/oidc` configured through its environment: ES256 id_tokens
//! with `client_secret_post` only (Auth0, Keycloak's "client secret sent as post"), PS256
//! with `private_key_jwt` only (Tessera's own key, fetched by the provider from Tessera's
//! JWKS URL), and Keycloak's realm roles under `realm_access.roles` with an issuer that has
//! a path. For each: the right people sign in with the right roles, the rest do not get in.
//!
//! The forged id_tokens (`alg: none`, HMAC keyed with the public key, an algorithm the
//! provider does not publish, a key missing from its JWKS) come from
//! `tests/services/oidc/forger.js`, a stand-in token endpoint: a real provider never issues
//! them, they reach a relying party only from a compromised or impersonated token endpoint.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use platform::tenancy::Role;
use reqwest::StatusCode;

use crate::oidc::{
    Provider, assert_refused, audit, browser, free_port, provider_file, role_of, served,
    setup_with_file, sign_in, signed_in,
};
use crate::support::repo_root;

/// `provider_file` with `extra` top-level settings (before the `[[groups]]`).
fn file_with(issuer: &str, extra: &str) -> String {
    provider_file(issuer, 10).replacen("[[groups]]", &format!("{extra}\n[[groups]]"), 1)
}

/// The provider's discovery document.
async fn discovery(issuer: &str) -> serde_json::Value {
    reqwest::get(format!("{issuer}/.well-known/openid-configuration"))
        .await
        .expect("discovery")
        .json()
        .await
        .expect("json")
}

/// alice (analysts) gets the viewer role and the app, bob (admins) the admin role, carol
/// (no group) signs in with no role and no app, and a wrong password never comes back.
async fn the_right_people_get_the_right_roles(
    app: &crate::support::TestApp,
    base: &str,
    shape: &str,
) {
    let alice = browser();
    let page = sign_in(&alice, base, "alice", "alice-pw", "/apps/acme/report/").await;
    assert_eq!(
        page.status(),
        StatusCode::OK,
        "{shape}: alice opens the app; {:?}",
        audit(app, "auth.sign_in_failed").await
    );
    assert_eq!(
        role_of(app, "alice@example.org").await,
        Some(Role::Viewer),
        "{shape}"
    );
    let bob = browser();
    let page = sign_in(&bob, base, "bob", "bob-pw", "/").await;
    assert_eq!(page.status(), StatusCode::OK, "{shape}");
    assert_eq!(
        role_of(app, "bob@example.org").await,
        Some(Role::Admin),
        "{shape}"
    );
    let carol = browser();
    let page = sign_in(&carol, base, "carol", "carol-pw", "/apps/acme/report/").await;
    assert_eq!(
        page.status(),
        StatusCode::NOT_FOUND,
        "{shape}: carol's groups grant nothing"
    );
    assert_eq!(role_of(app, "carol@example.org").await, None, "{shape}");

    // A wrong password stays at the provider: no code, no session.
    let mallory = browser();
    let form = mallory
        .get(format!("{base}/auth/acme/sso/start?next=/"))
        .send()
        .await
        .expect("start");
    let url = form.url().clone();
    let html = form.text().await.expect("form");
    let at = html.find("action=\"").expect("form") + 8;
    let action = &html[at..at + html[at..].find('"').expect("end")];
    let refused = mallory
        .post(url.join(&action.replace("&#47;", "/")).expect("action"))
        .form(&[("username", "alice"), ("password", "wrong")])
        .send()
        .await
        .expect("login");
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED, "{shape}");
    assert!(!signed_in(&mallory, base).await, "{shape}");
}

#[tokio::test]
async fn es256_id_tokens_and_client_secret_post_only() {
    let (app, base, _clock) = served().await;
    let provider = Provider::start_with(
        &base,
        600,
        &[
            ("OIDC_ID_TOKEN_ALG", "ES256"),
            ("OIDC_TOKEN_AUTH_METHOD", "client_secret_post"),
        ],
        None,
    );
    let doc = discovery(&provider.issuer).await;
    assert_eq!(
        doc["token_endpoint_auth_methods_supported"],
        serde_json::json!(["client_secret_post"])
    );
    assert_eq!(
        doc["id_token_signing_alg_values_supported"],
        serde_json::json!(["ES256"])
    );
    // No method in the settings: Tessera takes the one discovery lists.
    setup_with_file(&app, &provider_file(&provider.issuer, 10)).await;
    the_right_people_get_the_right_roles(&app, &base, "ES256 + client_secret_post").await;
    assert!(audit(&app, "auth.sign_in_failed").await.is_empty());
}

#[tokio::test]
async fn ps256_id_tokens_and_private_key_jwt_with_tesseras_key() {
    let (app, base, _clock) = served().await;
    let jwks_url = format!("{base}/auth/acme/sso/jwks.json");
    let provider = Provider::start_with(
        &base,
        600,
        &[
            ("OIDC_ID_TOKEN_ALG", "PS256"),
            ("OIDC_TOKEN_AUTH_METHOD", "private_key_jwt"),
            ("OIDC_CLIENT_JWKS_URI", &jwks_url),
        ],
        None,
    );
    // No client secret at all: Tessera signs with a key of its own for this provider.
    let file = file_with(
        &provider.issuer,
        "token_endpoint_auth_method = \"private_key_jwt\"",
    )
    .replace("client_secret = \"dashboard-secret\"\n", "");
    assert!(!file.contains("client_secret"));
    setup_with_file(&app, &file).await;
    let jwks: serde_json::Value = reqwest::get(&jwks_url)
        .await
        .expect("jwks")
        .json()
        .await
        .expect("json");
    let key = &jwks["keys"][0];
    assert_eq!(
        (
            key["kty"].as_str(),
            key["crv"].as_str(),
            key["alg"].as_str()
        ),
        (Some("EC"), Some("P-256"), Some("ES256")),
        "{jwks}"
    );
    assert!(key.get("d").is_none(), "only the public half: {jwks}");
    the_right_people_get_the_right_roles(&app, &base, "PS256 + private_key_jwt").await;
    // The key is Tessera's, stable: the same after setting the provider again.
    setup_again(&app, &file).await;
    let again: serde_json::Value = reqwest::get(&jwks_url)
        .await
        .expect("jwks")
        .json()
        .await
        .expect("json");
    assert_eq!(again, jwks);
    assert!(audit(&app, "auth.sign_in_failed").await.is_empty());
}

/// Set the provider `sso` of acme again (the tenant and app exist).
async fn setup_again(app: &crate::support::TestApp, file: &str) {
    platform::admin::set_provider(
        &app.state.store,
        &app.state.secrets,
        "acme",
        "sso",
        file,
        &crate::oidc::op(),
    )
    .await
    .expect("provider set");
}

#[tokio::test]
async fn keycloak_realm_roles_under_an_issuer_with_a_path() {
    let (app, base, _clock) = served().await;
    let provider = Provider::start_with(
        &base,
        600,
        &[("OIDC_ROLES_SHAPE", "keycloak")],
        Some("/realms/acme"),
    );
    assert!(
        provider.issuer.ends_with("/realms/acme"),
        "{}",
        provider.issuer
    );
    let doc = discovery(&provider.issuer).await;
    assert_eq!(doc["issuer"], provider.issuer.as_str());
    setup_with_file(
        &app,
        &file_with(&provider.issuer, "groups_claim = \"realm_access.roles\""),
    )
    .await;
    the_right_people_get_the_right_roles(&app, &base, "Keycloak realm roles").await;

    // The client's roles, with the client id quoted as a segment.
    setup_again(
        &app,
        &file_with(
            &provider.issuer,
            "groups_claim = 'resource_access.\"dashboard\".roles'",
        ),
    )
    .await;
    let bob = browser();
    sign_in(&bob, &base, "bob", "bob-pw", "/").await;
    assert_eq!(role_of(&app, "bob@example.org").await, Some(Role::Admin));

    // The control: read as a plain `groups` claim, which this provider does not send,
    // the roles are gone at the next sign-in.
    setup_again(
        &app,
        &file_with(&provider.issuer, "groups_claim = \"groups\""),
    )
    .await;
    let bob = browser();
    sign_in(&bob, &base, "bob", "bob-pw", "/").await;
    assert_eq!(role_of(&app, "bob@example.org").await, None);
}

#[tokio::test]
async fn a_client_authentication_method_the_provider_does_not_take_is_refused_clearly() {
    let (app, base, _clock) = served().await;
    // The provider takes post and private_key_jwt in general; this client is registered
    // for post, so a signed assertion from it is the wrong method.
    let provider = Provider::start_with(
        &base,
        600,
        &[
            ("OIDC_TOKEN_AUTH_METHOD", "client_secret_post"),
            ("OIDC_AUTH_METHODS", "client_secret_post,private_key_jwt"),
        ],
        None,
    );
    setup_with_file(
        &app,
        &file_with(
            &provider.issuer,
            "token_endpoint_auth_method = \"private_key_jwt\"",
        ),
    )
    .await;
    let client = browser();
    let response = sign_in(&client, &base, "alice", "alice-pw", "/").await;
    assert_refused(
        &app,
        &client,
        &base,
        response,
        "client_authentication_failed",
        "did not accept the client credentials of this site",
    )
    .await;
    let error = last_error(&app).await;
    assert!(
        error.contains("invalid_client") && error.contains("private_key_jwt"),
        "{error}"
    );
    assert!(!error.contains("dashboard-secret"), "{error}");

    // A method discovery does not list is refused before anyone types a password.
    setup_again(
        &app,
        &file_with(
            &provider.issuer,
            "token_endpoint_auth_method = \"client_secret_basic\"",
        ),
    )
    .await;
    let client = browser();
    let response = client
        .get(format!("{base}/auth/acme/sso/start?next=/"))
        .send()
        .await
        .expect("start");
    assert_refused(
        &app,
        &client,
        &base,
        response,
        "misconfigured",
        "This sign-in provider is misconfigured.",
    )
    .await;
    let error = last_error(&app).await;
    assert!(
        error.contains("client_secret_basic") && error.contains("client_secret_post"),
        "{error}"
    );

    // The control: the method the client is registered for signs in.
    setup_again(
        &app,
        &file_with(
            &provider.issuer,
            "token_endpoint_auth_method = \"client_secret_post\"",
        ),
    )
    .await;
    let client = browser();
    let page = sign_in(&client, &base, "alice", "alice-pw", "/apps/acme/report/").await;
    assert_eq!(page.status(), StatusCode::OK);
}

/// The forging stand-in token endpoint (`tests/services/oidc/forger.js`); stopped on drop.
struct Forger {
    issuer: String,
    child: Child,
    mode_file: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Forger {
    async fn start() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let mode_file = dir.path().join("mode.json");
        std::fs::write(&mode_file, r#"{"mode":"valid"}"#).expect("mode");
        let port = free_port();
        let child = Command::new("node")
            .arg(repo_root().join("tests/services/oidc/forger.js"))
            .env("FORGER_PORT", port.to_string())
            .env("FORGER_MODE_FILE", &mode_file)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("node runs forger.js (Node.js is needed for the OIDC tests)");
        let issuer = format!("http://127.0.0.1:{port}");
        let forger = Self {
            issuer,
            child,
            mode_file,
            _dir: dir,
        };
        for _ in 0..100 {
            if reqwest::get(format!("{}/_test/stats", forger.issuer))
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                return forger;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("forger.js did not start");
    }

    fn set(&self, mode: &str, publish_second: bool) {
        std::fs::write(
            &self.mode_file,
            serde_json::json!({"mode": mode, "publish_second": publish_second}).to_string(),
        )
        .expect("mode");
    }

    async fn jwks_fetches(&self) -> u64 {
        let stats: serde_json::Value = reqwest::get(format!("{}/_test/stats", self.issuer))
            .await
            .expect("stats")
            .json()
            .await
            .expect("json");
        stats["jwks_fetches"].as_u64().expect("count")
    }
}

impl Drop for Forger {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Tessera's sign-in through the stand-in (it answers the authorization at once).
async fn forged_sign_in(client: &reqwest::Client, base: &str) -> reqwest::Response {
    let redirected = client
        .get(format!("{base}/auth/acme/sso/start?next=/"))
        .send()
        .await
        .expect("start");
    assert_eq!(redirected.status(), StatusCode::SEE_OTHER);
    let callback = redirected
        .headers()
        .get(reqwest::header::LOCATION)
        .expect("location")
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(callback.starts_with(&format!("{base}/auth/oidc/callback?")));
    client.get(callback).send().await.expect("callback")
}

/// The latest failed sign-in's error text.
async fn last_error(app: &crate::support::TestApp) -> String {
    audit(app, "auth.sign_in_failed").await[0].detail["error"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn forged_id_tokens_are_refused_on_the_sign_in_page_and_keys_refresh_once_rate_limited() {
    let (app, base, clock) = served().await;
    let forger = Forger::start().await;
    setup_with_file(&app, &provider_file(&forger.issuer, 10)).await;

    // The control: a token signed as published signs mallory in (admins → admin).
    let client = browser();
    let page = forged_sign_in(&client, &base).await;
    assert_eq!(page.status(), StatusCode::OK);
    assert!(signed_in(&client, &base).await);
    assert_eq!(
        role_of(&app, "mallory@example.org").await,
        Some(Role::Admin)
    );
    assert_eq!(forger.jwks_fetches().await, 1, "discovery fetched the keys");

    for (mode, needle) in [
        ("none", "none"),
        ("hs256-public-key", "HS256"),
        ("unpublished-alg", "PS256"),
    ] {
        forger.set(mode, false);
        let client = browser();
        let response = forged_sign_in(&client, &base).await;
        assert_refused(
            &app,
            &client,
            &base,
            response,
            "invalid_id_token",
            "could not be verified",
        )
        .await;
        let error = last_error(&app).await;
        assert!(error.contains(needle), "{mode}: {error}");
    }
    assert_eq!(
        forger.jwks_fetches().await,
        1,
        "a refused algorithm fetches nothing"
    );

    // A key the JWKS lacks: the keys are fetched again once, then the token is refused.
    forger.set("unknown-key", false);
    let client = browser();
    let response = forged_sign_in(&client, &base).await;
    assert_refused(
        &app,
        &client,
        &base,
        response,
        "invalid_id_token",
        "could not be verified",
    )
    .await;
    assert_eq!(forger.jwks_fetches().await, 2, "one refresh");
    // Again at once: no second refresh within the interval.
    let client = browser();
    let response = forged_sign_in(&client, &base).await;
    assert_refused(
        &app,
        &client,
        &base,
        response,
        "invalid_id_token",
        "could not be verified",
    )
    .await;
    assert!(last_error(&app).await.contains("fetched again less than"));
    assert_eq!(forger.jwks_fetches().await, 2, "rate-limited");

    // The provider rotates: the new key is published. Within the interval Tessera still
    // does not fetch; after it, one fetch and the sign-in goes through.
    forger.set("unknown-key", true);
    let client = browser();
    let response = forged_sign_in(&client, &base).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(forger.jwks_fetches().await, 2);
    clock.advance(platform::auth::oidc::KEY_REFRESH_INTERVAL_MS + 1_000);
    let client = browser();
    let page = forged_sign_in(&client, &base).await;
    assert_eq!(page.status(), StatusCode::OK, "the rotated key is taken");
    assert!(signed_in(&client, &base).await);
    assert_eq!(forger.jwks_fetches().await, 3);
}

#[test]
fn claim_paths_read_nested_roles_lists_and_single_strings() {
    use platform::auth::oidc::{ExtraClaims, claim_path};
    let claims: ExtraClaims = serde_json::from_value(serde_json::json!({
        "groups": ["g1"],
        "realm_access": {"roles": ["viewer-role", 7, "admins"]},
        "resource_access": {"my.app": {"roles": "one"}},
        "https://example.com/roles": ["namespaced"],
        "dep": {"a": {"b": {"c": ["deep"]}}},
    }))
    .expect("claims");
    assert_eq!(claims.groups("groups"), ["g1"]);
    assert_eq!(
        claims.groups("realm_access.roles"),
        ["viewer-role", "admins"]
    );
    assert_eq!(claims.groups(r#"resource_access."my.app".roles"#), ["one"]);
    assert_eq!(claims.groups("https://example.com/roles"), ["namespaced"]);
    assert_eq!(claims.groups("dep.a.b.c"), ["deep"]);
    assert!(
        claims.groups("realm_access").is_empty(),
        "an object is no list"
    );
    assert!(claims.groups("realm_access.roles.x").is_empty());
    assert!(claims.groups("missing.path").is_empty());
    assert_eq!(
        claim_path(r#"a."b.c"."d\"e\\".f"#).expect("parses"),
        ["a", "b.c", "d\"e\\", "f"]
    );
    for bad in ["", "a..b", ".a", "a.", r#"a."b"#, r#"a"b".c"#, r#""a"b"#] {
        assert!(claim_path(bad).is_err(), "{bad:?}");
    }
}

#[tokio::test]
async fn every_other_published_algorithm_signs_in_too() {
    let (app, base, _clock) = served().await;
    for alg in ["EdDSA", "ES384", "RS512", "PS384"] {
        let provider = Provider::start_with(&base, 600, &[("OIDC_ID_TOKEN_ALG", alg)], None);
        if alg == "EdDSA" {
            setup_with_file(&app, &provider_file(&provider.issuer, 10)).await;
        } else {
            setup_again(&app, &provider_file(&provider.issuer, 10)).await;
        }
        let doc = discovery(&provider.issuer).await;
        assert_eq!(
            doc["id_token_signing_alg_values_supported"],
            serde_json::json!([alg])
        );
        let alice = browser();
        let page = sign_in(&alice, &base, "alice", "alice-pw", "/apps/acme/report/").await;
        assert_eq!(
            page.status(),
            StatusCode::OK,
            "{alg}: {:?}",
            audit(&app, "auth.sign_in_failed").await
        );
    }
}
