//! SAML 2.0 sign-in against a real identity provider: samlify's IdentityProvider from
//! `tests/services/saml` (started per test on a free port through
//! `scripts/services/start-saml.sh`, with new RSA keys), driven by a reqwest browser through
//! the IdP's login form; Tessera serves on a real loopback port and the IdP fetches
//! Tessera's SP metadata from its entity id.
//!
//! The attacks are replayed on real responses the IdP signed: the signature stripped, a key
//! the metadata does not publish, signature wrapping, an altered signed assertion, an
//! expired assertion, a replayed response, and a response to another sign-in. Each is
//! checked for its sentence on the sign-in page, its audit row, and no session.

use std::process::Command;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use platform::admin;
use reqwest::StatusCode;

use crate::oidc::{audit, browser, op, served, signed_in};
use crate::support::{TestApp, repo_root};

/// A running test IdP; stopped on drop.
struct Idp {
    metadata_url: String,
    rogue_metadata_url: String,
    run_dir: tempfile::TempDir,
}

impl Idp {
    fn start() -> Self {
        let run_dir = tempfile::tempdir().expect("tempdir");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("bind")
            .local_addr()
            .expect("addr")
            .port();
        let output = Command::new(repo_root().join("scripts/services/start-saml.sh"))
            .arg(run_dir.path())
            .env("SAML_PORT", port.to_string())
            .output()
            .expect("start-saml.sh runs");
        assert!(
            output.status.success(),
            "the test SAML IdP did not start (it needs node, npm, openssl and curl): {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        let stdout = String::from_utf8_lossy(&output.stdout);
        let line = |key: &str| {
            stdout
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .unwrap_or_else(|| panic!("{key} in {stdout}"))
                .to_owned()
        };
        Self {
            metadata_url: line("SAML_METADATA_URL="),
            rogue_metadata_url: line("SAML_ROGUE_METADATA_URL="),
            run_dir,
        }
    }
}

impl Drop for Idp {
    fn drop(&mut self) {
        let _ = Command::new(repo_root().join("scripts/services/start-saml.sh"))
            .arg("stop")
            .arg(self.run_dir.path())
            .status();
    }
}

const MAPPINGS: &str = r#"
[[groups]]
group = "analysts"
role = "viewer"
teams = ["analysts"]
[[groups]]
group = "admins"
role = "admin"
"#;

/// Tenant `acme` with a restricted app `report` granted to the team `analysts`, and the
/// SAML provider `slug` whose metadata is at `metadata_url`.
async fn setup(app: &TestApp, slug: &str, metadata_url: &str) {
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
    set_provider(
        app,
        slug,
        &format!("kind = \"saml\"\ndisplay_name = \"Example SAML\"\nidp_metadata_url = \"{metadata_url}\"\n{MAPPINGS}"),
    )
    .await;
}

async fn set_provider(app: &TestApp, slug: &str, file: &str) {
    admin::set_provider(
        &app.state.store,
        &app.state.secrets,
        "acme",
        slug,
        file,
        &op(),
    )
    .await
    .expect("provider set");
}

async fn tenant(app: &TestApp) -> platform::store::Tenant {
    app.state
        .store
        .tenant_by_slug(&platform::ids::Slug::parse("acme").expect("slug"))
        .await
        .expect("q")
        .expect("acme")
}

async fn role_of(app: &TestApp, email: &str) -> Option<platform::tenancy::Role> {
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

/// The value of the hidden input `name` of an HTML form (the IdP escapes as `&#NN;`).
fn hidden(html: &str, name: &str) -> String {
    let key = format!("name=\"{name}\" value=\"");
    let at = html
        .find(&key)
        .unwrap_or_else(|| panic!("no {name} in {html}"))
        + key.len();
    let end = html[at..].find('"').expect("end of value") + at;
    let mut value = html[at..end].to_owned();
    for (code, c) in [("&#43;", "+"), ("&#47;", "/"), ("&#61;", "=")] {
        value = value.replace(code, c);
    }
    value
}

fn form_action(html: &str) -> String {
    let at = html.find("action=\"").expect("a form") + 8;
    let end = html[at..].find('"').expect("end of action") + at;
    html[at..end].replace("&#47;", "/").replace("&#58;", ":")
}

/// What the IdP posts back: the ACS URL, the SAMLResponse (base64) and the RelayState.
struct Posted {
    acs: String,
    response: String,
    relay_state: String,
}

impl Posted {
    fn xml(&self) -> String {
        String::from_utf8(STANDARD.decode(&self.response).expect("base64")).expect("utf-8")
    }

    fn with_xml(&self, xml: &str) -> Self {
        Self {
            acs: self.acs.clone(),
            response: STANDARD.encode(xml),
            relay_state: self.relay_state.clone(),
        }
    }

    async fn post(&self, client: &reqwest::Client) -> reqwest::Response {
        client
            .post(&self.acs)
            .form(&[
                ("SAMLResponse", self.response.as_str()),
                ("RelayState", self.relay_state.as_str()),
            ])
            .send()
            .await
            .expect("ACS post")
    }
}

/// Start Tessera's sign-in through provider `slug` and log in at the IdP as `who`; returns
/// what the IdP's auto-submitting form would post (not posted yet).
async fn until_acs(
    client: &reqwest::Client,
    base: &str,
    slug: &str,
    who: &str,
    next: &str,
) -> Posted {
    let started = client
        .get(format!("{base}/auth/saml/acme/{slug}/start?next={next}"))
        .send()
        .await
        .expect("start");
    let login_url = started.url().clone();
    assert_eq!(
        started.status(),
        StatusCode::OK,
        "IdP login form at {login_url}"
    );
    let html = started.text().await.expect("form");
    assert!(html.contains("id=\"username\""), "{html}");
    let answer = client
        .post(login_url.join(&form_action(&html)).expect("action"))
        .form(&[
            ("SAMLRequest", hidden(&html, "SAMLRequest").as_str()),
            ("RelayState", hidden(&html, "RelayState").as_str()),
            ("username", who),
            ("password", &format!("{who}-pw")),
        ])
        .send()
        .await
        .expect("login");
    let status = answer.status();
    let html = answer.text().await.expect("answer");
    assert_eq!(status, StatusCode::OK, "{html}");
    Posted {
        acs: form_action(&html),
        response: hidden(&html, "SAMLResponse"),
        relay_state: hidden(&html, "RelayState"),
    }
}

/// Refused: the sentence on the sign-in page, an audit row with `reason`, no session.
async fn assert_refused(
    app: &TestApp,
    client: &reqwest::Client,
    base: &str,
    response: reqwest::Response,
    reason: &str,
    sentence: &str,
) -> String {
    let status = response.status();
    let html = response.text().await.expect("page");
    assert!(status.is_client_error(), "{status}: {html}");
    assert!(html.contains(sentence), "{sentence:?} not in {html}");
    assert!(html.contains("role=\"alert\""), "{html}");
    let failed = audit(app, "auth.sign_in_failed").await;
    let row = failed
        .iter()
        .find(|e| e.detail["reason"] == reason && e.detail["method"] == "saml")
        .unwrap_or_else(|| panic!("{reason}: {failed:?}"));
    assert!(!signed_in(client, base).await, "no session after {reason}");
    row.detail["error"].as_str().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn the_right_people_sign_in_through_the_idp_with_the_right_roles() {
    let (app, base, _clock) = served().await;
    let idp = Idp::start();
    setup(&app, "corp", &idp.metadata_url).await;

    // The SP metadata the IdP reads (and fetches during the sign-in).
    let metadata = reqwest::get(format!("{base}/auth/saml/acme/corp/metadata"))
        .await
        .expect("metadata");
    assert_eq!(metadata.status(), StatusCode::OK);
    let xml = metadata.text().await.expect("xml");
    assert!(
        xml.contains(&format!("entityID=\"{base}/auth/saml/acme/corp/metadata\"")),
        "{xml}"
    );
    assert!(
        xml.contains(&format!("Location=\"{base}/auth/saml/acme/corp/acs\"")),
        "{xml}"
    );
    assert!(xml.contains("WantAssertionsSigned=\"true\""), "{xml}");

    // The sign-in page offers the provider.
    let page = browser()
        .get(format!("{base}/login?tenant=acme"))
        .send()
        .await
        .expect("login page")
        .text()
        .await
        .expect("html");
    assert!(page.contains("/auth/saml/acme/corp/start"), "{page}");

    let alice = browser();
    let posted = until_acs(&alice, &base, "corp", "alice", "/apps/acme/report/").await;
    assert_eq!(posted.acs, format!("{base}/auth/saml/acme/corp/acs"));
    let xml = posted.xml();
    assert!(xml.contains("<ds:SignatureValue>"), "the IdP signs: {xml}");
    let page = posted.post(&alice).await;
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
    let sign_ins = audit(&app, "auth.sign_in").await;
    assert_eq!(sign_ins[0].detail["method"], "saml");
    assert_eq!(sign_ins[0].detail["provider"], "corp");
    assert_eq!(
        sign_ins[0].detail["groups"],
        serde_json::json!(["analysts"])
    );

    // bob's group makes him an admin.
    let bob = browser();
    let page = until_acs(&bob, &base, "corp", "bob", "/apps/acme/report/")
        .await
        .post(&bob)
        .await;
    assert_eq!(page.status(), StatusCode::OK);
    assert_eq!(
        role_of(&app, "bob@example.org").await,
        Some(platform::tenancy::Role::Admin)
    );

    // carol signs in (a new account) but no group of hers grants the app: 404.
    let carol = browser();
    let page = until_acs(&carol, &base, "corp", "carol", "/apps/acme/report/")
        .await
        .post(&carol)
        .await;
    assert_eq!(page.status(), StatusCode::NOT_FOUND);
    assert_eq!(role_of(&app, "carol@example.org").await, None);
}

#[tokio::test]
async fn metadata_given_as_xml_signs_in_too() {
    let (app, base, _clock) = served().await;
    let idp = Idp::start();
    setup(&app, "corp", &idp.metadata_url).await;
    let idp_xml = reqwest::get(&idp.metadata_url)
        .await
        .expect("IdP metadata")
        .text()
        .await
        .expect("xml");
    set_provider(
        &app,
        "inline",
        &format!(
            "kind = \"saml\"\ndisplay_name = \"Inline\"\nidp_metadata_xml = '''{idp_xml}'''\n{MAPPINGS}"
        ),
    )
    .await;
    let bob = browser();
    let page = until_acs(&bob, &base, "inline", "bob", "/")
        .await
        .post(&bob)
        .await;
    assert_eq!(page.status(), StatusCode::OK);
    assert!(signed_in(&bob, &base).await);
    assert_eq!(
        role_of(&app, "bob@example.org").await,
        Some(platform::tenancy::Role::Admin)
    );

    // Unusable metadata is refused when the provider is set, with the reason.
    let err = admin::set_provider(
        &app.state.store,
        &app.state.secrets,
        "acme",
        "broken",
        "kind = \"saml\"\ndisplay_name = \"Broken\"\nidp_metadata_xml = '<EntityDescriptor xmlns=\"urn:oasis:names:tc:SAML:2.0:metadata\" entityID=\"x\"/>'\n",
        &op(),
    )
    .await
    .expect_err("no certificate, no SSO service");
    assert!(err.to_string().contains("signing certificate"), "{err}");
}

/// The signed assertion, from `<saml:Assertion` to `</saml:Assertion>`.
fn assertion_of(xml: &str) -> &str {
    let from = xml.find("<saml:Assertion").expect("assertion");
    let to = xml.find("</saml:Assertion>").expect("end") + "</saml:Assertion>".len();
    &xml[from..to]
}

fn without_signature(assertion: &str) -> String {
    let from = assertion.find("<ds:Signature").expect("signature");
    let to = assertion.find("</ds:Signature>").expect("end") + "</ds:Signature>".len();
    format!("{}{}", &assertion[..from], &assertion[to..])
}

#[tokio::test]
async fn unsigned_altered_and_wrapped_responses_are_refused() {
    let (app, base, _clock) = served().await;
    let idp = Idp::start();
    setup(&app, "corp", &idp.metadata_url).await;

    // The signature stripped: nothing vouches for the assertion.
    let mallory = browser();
    let posted = until_acs(&mallory, &base, "corp", "alice", "/").await;
    let xml = posted.xml();
    let signed = assertion_of(&xml);
    let unsigned = xml.replace(signed, &without_signature(signed));
    let response = posted.with_xml(&unsigned).post(&mallory).await;
    assert_refused(
        &app,
        &mallory,
        &base,
        response,
        "invalid_response",
        "could not be verified",
    )
    .await;

    // The signed assertion altered (alice's group made admins): the digest no longer matches.
    let posted = until_acs(&mallory, &base, "corp", "alice", "/").await;
    let xml = posted.xml();
    let altered = xml.replace(">analysts<", ">admins<");
    assert_ne!(altered, xml);
    let response = posted.with_xml(&altered).post(&mallory).await;
    let error = assert_refused(
        &app,
        &mallory,
        &base,
        response,
        "invalid_response",
        "could not be verified",
    )
    .await;
    assert!(error.contains("signature"), "{error}");

    // Signature wrapping: a forged assertion (alice as an admin, under bob's name) where the
    // SP reads, the genuine signed one moved inside it so its signature still verifies.
    let posted = until_acs(&mallory, &base, "corp", "alice", "/").await;
    let xml = posted.xml();
    let signed = assertion_of(&xml).to_owned();
    let forged = without_signature(&signed)
        .replace(">analysts<", ">admins<")
        .replace("person-alice", "person-bob")
        .replacen("ID=\"", "ID=\"forged", 1);
    let inner_end = forged.rfind("</saml:Assertion>").expect("end");
    let wrapped = format!("{}{}{}", &forged[..inner_end], signed, &forged[inner_end..]);
    let response = posted
        .with_xml(&xml.replace(&signed, &wrapped))
        .post(&mallory)
        .await;
    assert_refused(
        &app,
        &mallory,
        &base,
        response,
        "malformed_response",
        "not in the expected form",
    )
    .await;

    // The other classic shape: the forged assertion beside the genuine one.
    let posted = until_acs(&mallory, &base, "corp", "alice", "/").await;
    let xml = posted.xml();
    let signed = assertion_of(&xml).to_owned();
    let forged = without_signature(&signed)
        .replace(">analysts<", ">admins<")
        .replacen("ID=\"", "ID=\"forged", 1);
    let response = posted
        .with_xml(&xml.replace(&signed, &format!("{forged}{signed}")))
        .post(&mallory)
        .await;
    assert_refused(
        &app,
        &mallory,
        &base,
        response,
        "malformed_response",
        "not in the expected form",
    )
    .await;

    assert!(audit(&app, "auth.sign_in").await.is_empty());
    assert_eq!(role_of(&app, "alice@example.org").await, None);
}

#[tokio::test]
async fn a_response_signed_with_a_key_the_metadata_does_not_publish_is_refused() {
    let (app, base, _clock) = served().await;
    let idp = Idp::start();
    setup(&app, "corp", &idp.metadata_url).await;
    // The rogue endpoint publishes the genuine certificate but signs with another key.
    set_provider(
        &app,
        "rogue",
        &format!(
            "kind = \"saml\"\ndisplay_name = \"Rogue\"\nidp_metadata_url = \"{}\"\n{MAPPINGS}",
            idp.rogue_metadata_url
        ),
    )
    .await;
    let client = browser();
    let posted = until_acs(&client, &base, "rogue", "bob", "/").await;
    assert!(posted.xml().contains("<ds:SignatureValue>"));
    let response = posted.post(&client).await;
    let error = assert_refused(
        &app,
        &client,
        &base,
        response,
        "invalid_response",
        "could not be verified",
    )
    .await;
    assert!(error.contains("signature"), "{error}");
    assert_eq!(role_of(&app, "bob@example.org").await, None);
}

#[tokio::test]
async fn expired_replayed_and_misdirected_responses_are_refused() {
    let (app, base, clock) = served().await;
    let idp = Idp::start();
    setup(&app, "corp", &idp.metadata_url).await;

    // Replay: the victim's response, posted again (by the victim or anyone who captured it).
    let victim = browser();
    let posted = until_acs(&victim, &base, "corp", "alice", "/").await;
    let first = posted.post(&victim).await;
    assert_eq!(first.status(), StatusCode::OK);
    assert!(signed_in(&victim, &base).await);
    let attacker = browser();
    let response = posted.post(&attacker).await;
    assert_refused(
        &app,
        &attacker,
        &base,
        response,
        "bad_state",
        "not valid here",
    )
    .await;
    assert_eq!(audit(&app, "auth.sign_in").await.len(), 1);

    // A genuine response to one sign-in, posted with the RelayState of another: its
    // InResponseTo names the other request.
    let client = browser();
    let one = until_acs(&client, &base, "corp", "bob", "/").await;
    let other = until_acs(&client, &base, "corp", "bob", "/").await;
    let crossed = Posted {
        acs: one.acs.clone(),
        response: one.response.clone(),
        relay_state: other.relay_state.clone(),
    };
    let response = crossed.post(&client).await;
    let error = assert_refused(
        &app,
        &client,
        &base,
        response,
        "invalid_response",
        "could not be verified",
    )
    .await;
    assert!(error.contains("InResponseTo"), "{error}");

    // Expired: the IdP's assertions live 5 minutes; Tessera's clock moves 7 minutes on
    // (the pending sign-in itself lives 10).
    let late = browser();
    let posted = until_acs(&late, &base, "corp", "bob", "/").await;
    clock.advance(7 * 60 * 1000);
    let response = posted.post(&late).await;
    let error = assert_refused(
        &app,
        &late,
        &base,
        response,
        "invalid_response",
        "could not be verified",
    )
    .await;
    assert!(error.contains("expired"), "{error}");
    assert_eq!(role_of(&app, "bob@example.org").await, None);
}

#[tokio::test]
async fn testing_a_saml_provider_reports_the_idp_metadata() {
    let idp = Idp::start();
    let (app, _base, _clock) = served().await;
    setup(&app, "corp", &idp.metadata_url).await;
    let report = admin::test_provider(
        &app.state.store,
        &app.state.secrets,
        "acme",
        "corp",
        None,
        &op(),
    )
    .await
    .expect("test runs");
    assert!(report.ok, "{report:?}");
    assert_eq!(report.kind, "saml");
    let metadata = report.idp.as_ref().expect("metadata report");
    assert!(metadata.entity_id.is_some(), "{metadata:?}");
    assert!(
        metadata
            .sign_on
            .iter()
            .any(|[binding, location]| binding.ends_with("HTTP-Redirect")
                && location.starts_with("http://127.0.0.1:")),
        "{metadata:?}"
    );
    assert!(metadata.certificates >= 1, "{metadata:?}");

    // A metadata URL that answers nothing is a failed test with the reason, not a panic.
    set_provider(
        &app,
        "gone",
        &format!(
            "kind = \"saml\"\ndisplay_name = \"Gone\"\nidp_metadata_url = \"{}/nothing-here\"\ntimeout_seconds = 2\n",
            idp.metadata_url.trim_end_matches("/metadata")
        ),
    )
    .await;
    let report = admin::test_provider(
        &app.state.store,
        &app.state.secrets,
        "acme",
        "gone",
        None,
        &op(),
    )
    .await
    .expect("test runs");
    assert!(!report.ok);
    assert!(report.idp.is_none());
    assert!(
        report
            .error
            .as_deref()
            .is_some_and(|e| e.contains("metadata")),
        "{report:?}"
    );
}
