//! The console's tenant-admin pages through the real router: members and roles,
//! invitations by single-use link (accepted signed in or with a new account; refused when
//! used, withdrawn, expired or of another tenant), teams, the audit log's filters and its
//! CSV export; and the console's authorization matrix, generated from its route table.

use std::collections::BTreeMap;

use axum::http::{StatusCode, header};
use platform::admin;
use platform::ids::Slug;
use platform::store::testing::TestDatabase;
use platform::store::{AuditFilter, NewInvitation, Store};
use platform::tenancy::{Email, Role};

use crate::sessions::{Browser, PASSWORD, csrf_of, op, setup};
use crate::support::{Reply, TestApp};

fn location(reply: &Reply) -> String {
    reply
        .headers
        .get(header::LOCATION)
        .map(|l| l.to_str().expect("ascii").to_owned())
        .unwrap_or_default()
}

/// `setup` (tenant `b`: bob and carl viewers) plus ada, an admin of `b`, olga its owner,
/// and tenant `c` with its own admin, cleo.
pub(crate) async fn tenants(db: Option<TestDatabase>) -> TestApp {
    let app = setup(db).await;
    let store = &app.state.store;
    for (email, tenant, role) in [
        ("ada@example.org", "b", "admin"),
        ("olga@example.org", "b", "owner"),
        ("cleo@example.org", "c", "admin"),
    ] {
        if tenant == "c" {
            admin::create_tenant(store, "c", None, None, &op())
                .await
                .expect("tenant c");
        }
        admin::create_user(store, email, Some(PASSWORD), false, &op())
            .await
            .expect("user");
        admin::grant(store, email, tenant, role, &op())
            .await
            .expect("grant");
    }
    app
}

pub(crate) async fn signed_in<'a>(app: &'a TestApp, email: &str) -> Browser<'a> {
    let mut browser = Browser::new(app);
    let reply = browser.sign_in(email, PASSWORD, "/").await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER, "{}", reply.text());
    browser
}

async fn role_of(store: &Store, tenant: &str, email: &str) -> Option<Role> {
    let tenant = store
        .tenant_by_slug(&Slug::parse(tenant).expect("slug"))
        .await
        .expect("q")
        .expect("tenant");
    let user = store
        .user_by_email(&Email::parse(email).expect("email"))
        .await
        .expect("q")?;
    store.membership(tenant.id, user.id).await.expect("q")
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

/// The link shown once on the members page after creating an invitation.
fn invitation_link(html: &str) -> String {
    let at = html
        .find("id=\"invitation-link\"")
        .expect("the link is shown");
    let rest = &html[at..];
    let start = rest.find("value=\"").expect("value") + 7;
    let end = rest[start..].find('"').expect("end") + start;
    let link = &rest[start..end];
    // The page's own absolute link; the test browser speaks paths.
    link.trim_start_matches("http://127.0.0.1:8080").to_owned()
}

async fn invite(browser: &mut Browser<'_>, tenant: &str, role: &str) -> Reply {
    let page = browser.get(&format!("/ui/{tenant}/members")).await;
    let csrf = csrf_of(&page.text());
    browser
        .post_form(
            &format!("/ui/{tenant}/invitations"),
            &[
                ("csrf", &csrf),
                ("role", role),
                ("note", "for Nina"),
                ("days", "7"),
            ],
        )
        .await
}

#[tokio::test]
async fn an_invitation_link_works_once_for_a_new_account_and_is_audited() {
    for db in TestDatabase::all().await.expect("databases") {
        let app = tenants(Some(db)).await;
        let store = &app.state.store;
        let mut ada = signed_in(&app, "ada@example.org").await;
        let reply = invite(&mut ada, "b", "author").await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
        let link = invitation_link(&reply.text());
        assert!(link.starts_with("/invite/b/"), "{link}");
        // Shown once: the members page lists the invitation, never its link again.
        let page = ada.get("/ui/b/members").await.text();
        assert!(page.contains("for Nina") && !page.contains(&link), "{page}");
        // The invitee opens it signed out: the page offers an account.
        let mut nina = Browser::new(&app);
        let offer = nina.get(&link).await;
        assert_eq!(offer.status, StatusCode::OK, "{}", offer.text());
        assert!(offer.text().contains("id=\"create-account\""));
        assert!(offer.text().contains("id=\"invited-role\">author<"));
        let csrf = csrf_of(&offer.text());
        // A short password is the form's error; the link still works after it.
        let reply = nina
            .post_form(
                &link,
                &[
                    ("csrf", &csrf),
                    ("email", "nina@example.org"),
                    ("password", "short"),
                ],
            )
            .await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.text());
        // Without the CSRF token: refused, nothing created.
        let reply = nina
            .post_form(
                &link,
                &[
                    ("csrf", "forged"),
                    ("email", "nina@example.org"),
                    ("password", PASSWORD),
                ],
            )
            .await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", reply.text());
        assert_eq!(role_of(store, "b", "nina@example.org").await, None);
        let reply = nina
            .post_form(
                &link,
                &[
                    ("csrf", &csrf),
                    ("email", "nina@example.org"),
                    ("password", PASSWORD),
                ],
            )
            .await;
        assert_eq!(reply.status, StatusCode::SEE_OTHER, "{}", reply.text());
        assert_eq!(
            role_of(store, "b", "nina@example.org").await,
            Some(Role::Author)
        );
        // Signed in now: the home page names her.
        assert!(nina.get("/").await.text().contains("nina@example.org"));
        assert_eq!(audited(store, "invitation.create").await, 1);
        assert_eq!(audited(store, "invitation.accept").await, 1);
        // Used: the same link is refused, to her and to anyone else.
        let again = Browser::new(&app).get(&link).await;
        assert_eq!(again.status, StatusCode::NOT_FOUND, "{}", again.text());
        let mut carl = signed_in(&app, "carl@example.org").await;
        let csrf = csrf_of(&carl.get("/").await.text());
        let reply = carl.post_form(&link, &[("csrf", &csrf)]).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{}", reply.text());
        assert_eq!(
            role_of(store, "b", "carl@example.org").await,
            Some(Role::Viewer)
        );
        assert_eq!(audited(store, "invitation.accept").await, 1);
    }
}

#[tokio::test]
async fn a_signed_in_member_accepts_and_wrong_tenant_expired_and_withdrawn_links_are_refused() {
    for db in TestDatabase::all().await.expect("databases") {
        let app = tenants(Some(db)).await;
        let store = &app.state.store;
        let mut ada = signed_in(&app, "ada@example.org").await;
        let link = invitation_link(&invite(&mut ada, "b", "author").await.text());
        // The same secret under another tenant's path finds nothing.
        let other = link.replacen("/invite/b/", "/invite/c/", 1);
        let mut carl = signed_in(&app, "carl@example.org").await;
        assert_eq!(carl.get(&other).await.status, StatusCode::NOT_FOUND);
        let csrf = csrf_of(&carl.get("/").await.text());
        let reply = carl.post_form(&other, &[("csrf", &csrf)]).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{}", reply.text());
        // carl, a viewer of b, accepts signed in: he becomes an author.
        let page = carl.get(&link).await;
        assert!(page.text().contains("id=\"accept\""), "{}", page.text());
        let reply = carl.post_form(&link, &[("csrf", &csrf)]).await;
        assert_eq!(reply.status, StatusCode::SEE_OTHER, "{}", reply.text());
        assert_eq!(
            role_of(store, "b", "carl@example.org").await,
            Some(Role::Author)
        );
        // An admin may not invite an owner: that needs the owner role.
        let reply = invite(&mut ada, "b", "owner").await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", reply.text());
        // A viewer may not invite at all, nor see the members page.
        let mut bob = signed_in(&app, "bob@example.org").await;
        assert_eq!(bob.get("/ui/b/members").await.status, StatusCode::FORBIDDEN);
        let csrf = csrf_of(&bob.get("/").await.text());
        let reply = bob
            .post_form("/ui/b/invitations", &[("csrf", &csrf), ("role", "admin")])
            .await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", reply.text());
        // cleo, admin of c, sees b's page as missing.
        let mut cleo = signed_in(&app, "cleo@example.org").await;
        assert_eq!(
            cleo.get("/ui/b/members").await.status,
            StatusCode::NOT_FOUND
        );
        // Expired: stored with an expiry in the past.
        let b = store
            .tenant_by_slug(&Slug::parse("b").expect("slug"))
            .await
            .expect("q")
            .expect("b");
        let secret = "E".repeat(40);
        let hash = {
            use sha2::Digest;
            hex::encode(sha2::Sha256::digest(secret.as_bytes()))
        };
        store
            .create_invitation(
                b.id,
                &NewInvitation {
                    token_sha256: &hash,
                    role: Role::Admin,
                    note: "",
                    expires_at: op().at - 1,
                },
                &op(),
            )
            .await
            .expect("invitation");
        let expired = format!("/invite/b/{secret}");
        assert_eq!(bob.get(&expired).await.status, StatusCode::NOT_FOUND);
        let reply = bob.post_form(&expired, &[("csrf", &csrf)]).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{}", reply.text());
        assert_eq!(
            role_of(store, "b", "bob@example.org").await,
            Some(Role::Viewer)
        );
        // Withdrawn: the admin withdraws an open one; it no longer works.
        let link = invitation_link(&invite(&mut ada, "b", "admin").await.text());
        let page = ada.get("/ui/b/members").await.text();
        let at = page.find("id=\"revoke-").expect("withdraw button") + 11;
        let id: String = page[at..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        let csrf_ada = csrf_of(&page);
        let reply = ada
            .post_form(
                &format!("/ui/b/invitations/{id}/revoke"),
                &[("csrf", &csrf_ada)],
            )
            .await;
        assert_eq!(reply.status, StatusCode::SEE_OTHER, "{}", reply.text());
        let reply = bob.post_form(&link, &[("csrf", &csrf)]).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{}", reply.text());
        assert_eq!(audited(store, "invitation.revoke").await, 1);
        // Malformed secrets and unknown tenants: the same 404.
        for path in ["/invite/b/short", "/invite/nope/AAAA", "/invite/b/%2e%2e"] {
            assert_eq!(bob.get(path).await.status, StatusCode::NOT_FOUND, "{path}");
        }
    }
}

#[tokio::test]
async fn admins_change_roles_remove_members_and_run_teams_but_never_drop_the_last_owner() {
    for db in TestDatabase::all().await.expect("databases") {
        let app = tenants(Some(db)).await;
        let store = &app.state.store;
        let carl = store
            .user_by_email(&Email::parse("carl@example.org").expect("e"))
            .await
            .expect("q")
            .expect("carl");
        let olga = store
            .user_by_email(&Email::parse("olga@example.org").expect("e"))
            .await
            .expect("q")
            .expect("olga");
        let mut ada = signed_in(&app, "ada@example.org").await;
        let page = ada.get("/ui/b/members").await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.text());
        assert!(page.text().contains("carl@example.org"));
        assert!(
            page.text().contains("id=\"nav-members\""),
            "the layout links the admin pages"
        );
        let csrf = csrf_of(&page.text());
        let c = carl.id.0;
        let reply = ada
            .post_form(
                &format!("/ui/b/members/{c}/role"),
                &[("csrf", &csrf), ("role", "author")],
            )
            .await;
        assert_eq!(reply.status, StatusCode::SEE_OTHER, "{}", reply.text());
        assert_eq!(location(&reply), "/ui/b/members?done=role");
        assert_eq!(
            role_of(store, "b", "carl@example.org").await,
            Some(Role::Author)
        );
        // An admin may not touch the owner's role.
        let o = olga.id.0;
        let reply = ada
            .post_form(
                &format!("/ui/b/members/{o}/role"),
                &[("csrf", &csrf), ("role", "viewer")],
            )
            .await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", reply.text());
        // The owner may not demote herself: the tenant would have no owner left.
        let mut owner = signed_in(&app, "olga@example.org").await;
        let csrf_o = csrf_of(&owner.get("/ui/b/members").await.text());
        let reply = owner
            .post_form(
                &format!("/ui/b/members/{o}/role"),
                &[("csrf", &csrf_o), ("role", "viewer")],
            )
            .await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.text());
        assert!(reply.text().contains("id=\"error\""), "{}", reply.text());
        assert_eq!(
            role_of(store, "b", "olga@example.org").await,
            Some(Role::Owner)
        );
        // Teams: create, add carl by address, remove him.
        let reply = ada
            .post_form(
                "/ui/b/teams",
                &[("csrf", &csrf), ("name", "Analysts, \"core\"")],
            )
            .await;
        assert_eq!(reply.status, StatusCode::SEE_OTHER, "{}", reply.text());
        let teams = store
            .list_teams(carl_tenant(store).await)
            .await
            .expect("teams");
        let team = teams.last().expect("team").id.0;
        let reply = ada
            .post_form(
                &format!("/ui/b/teams/{team}/members"),
                &[("csrf", &csrf), ("email", "carl@example.org")],
            )
            .await;
        assert_eq!(reply.status, StatusCode::SEE_OTHER, "{}", reply.text());
        let page = ada.get("/ui/b/members").await.text();
        assert!(
            page.contains(&format!("id=\"team-{team}-remove-{c}\"")),
            "{page}"
        );
        // Someone outside the tenant cannot be put in a team.
        let reply = ada
            .post_form(
                &format!("/ui/b/teams/{team}/members"),
                &[("csrf", &csrf), ("email", "cleo@example.org")],
            )
            .await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{}", reply.text());
        let reply = ada
            .post_form(
                &format!("/ui/b/teams/{team}/members/{c}/remove"),
                &[("csrf", &csrf)],
            )
            .await;
        assert_eq!(reply.status, StatusCode::SEE_OTHER, "{}", reply.text());
        // Remove carl from the tenant.
        let reply = ada
            .post_form(&format!("/ui/b/members/{c}/remove"), &[("csrf", &csrf)])
            .await;
        assert_eq!(reply.status, StatusCode::SEE_OTHER, "{}", reply.text());
        assert_eq!(role_of(store, "b", "carl@example.org").await, None);
        assert_eq!(audited(store, "membership.remove").await, 1);
        assert_eq!(audited(store, "team.remove_member").await, 1);
    }
}

async fn carl_tenant(store: &Store) -> platform::ids::TenantId {
    store
        .tenant_by_slug(&Slug::parse("b").expect("slug"))
        .await
        .expect("q")
        .expect("b")
        .id
}

#[tokio::test]
async fn the_audit_page_filters_pages_and_exports_quoted_csv() {
    for db in TestDatabase::all().await.expect("databases") {
        let app = tenants(Some(db)).await;
        let store = &app.state.store;
        let mut ada = signed_in(&app, "ada@example.org").await;
        let csrf = csrf_of(&ada.get("/ui/b/members").await.text());
        // A team whose name needs quoting and one that looks like a formula.
        for name in ["=HYPERLINK(\"http://evil\",\"x\")", "a, \"b\"; c"] {
            ada.post_form("/ui/b/teams", &[("csrf", &csrf), ("name", name)])
                .await;
        }
        let page = ada.get("/ui/b/audit?action=team.create").await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.text());
        let html = page.text();
        assert!(
            html.contains("team.create") && !html.contains("membership.grant"),
            "{html}"
        );
        // The app filter is the app's audit target; the time range bounds the rows.
        let html = ada.get("/ui/b/audit?app=hello").await.text();
        assert!(
            html.contains("app:b/hello") && !html.contains("team.create"),
            "{html}"
        );
        // (The test deploys are stamped at the epoch; the teams now.)
        let html = ada.get("/ui/b/audit?from=2100-01-01").await.text();
        assert!(html.contains("id=\"no-rows\""), "{html}");
        let reply = ada.get("/ui/b/audit?from=yesterday").await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST);
        // Export: the filtered rows as CSV a spreadsheet cannot run.
        let reply = ada.get("/ui/b/audit.csv?action=team.create").await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
        assert!(
            reply.headers[header::CONTENT_TYPE]
                .to_str()
                .expect("ascii")
                .starts_with("text/csv")
        );
        let csv_text = reply.text();
        let mut reader = csv::Reader::from_reader(csv_text.as_bytes());
        let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.expect("row")).collect();
        assert_eq!(rows.len(), 2, "{csv_text}");
        let details: Vec<serde_json::Value> = rows
            .iter()
            .map(|r| serde_json::from_str(&r[6]).expect("detail is JSON"))
            .collect();
        assert!(
            details.iter().any(|d| d["name"] == "a, \"b\"; c"),
            "{csv_text}"
        );
        assert!(rows.iter().all(|r| &r[3] == "team.create"));
        for row in &rows {
            for cell in row {
                assert!(!cell.starts_with(['=', '+', '-', '@']), "{cell:?}");
            }
        }
        // Viewers get neither the page nor the file; another tenant's admin a 404.
        let mut bob = signed_in(&app, "bob@example.org").await;
        assert_eq!(bob.get("/ui/b/audit").await.status, StatusCode::FORBIDDEN);
        assert_eq!(
            bob.get("/ui/b/audit.csv").await.status,
            StatusCode::FORBIDDEN
        );
        let mut cleo = signed_in(&app, "cleo@example.org").await;
        assert_eq!(
            cleo.get("/ui/b/audit.csv").await.status,
            StatusCode::NOT_FOUND
        );
        // Signed out: sign in and back.
        let reply = Browser::new(&app).get("/ui/b/audit").await;
        assert_eq!(reply.status, StatusCode::SEE_OTHER);
        assert!(
            location(&reply).starts_with("/login?next="),
            "{}",
            location(&reply)
        );
        let _ = store;
    }
}

#[tokio::test]
async fn a_superadmin_creates_tenants_lists_users_and_reads_the_health_of_the_platform() {
    for db in TestDatabase::all().await.expect("databases") {
        let app = tenants(Some(db)).await;
        let store = &app.state.store;
        admin::create_user(store, "root@example.org", Some(PASSWORD), true, &op())
            .await
            .expect("superadmin");
        let mut root = signed_in(&app, "root@example.org").await;
        let page = root.get("/ui/admin/tenants").await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.text());
        let html = page.text();
        assert!(
            html.contains("id=\"tenant-b\"") && html.contains("id=\"tenant-c\""),
            "{html}"
        );
        assert!(html.contains("Database</th><td>answers"), "{html}");
        let csrf = csrf_of(&html);
        let created_before = audited(store, "tenant.create").await;
        let reply = root
            .post_form(
                "/ui/admin/tenants",
                &[
                    ("csrf", &csrf),
                    ("slug", "zeta"),
                    ("name", "Zeta Corp"),
                    ("owner", "ada@example.org"),
                ],
            )
            .await;
        assert_eq!(reply.status, StatusCode::SEE_OTHER, "{}", reply.text());
        assert_eq!(
            role_of(store, "zeta", "ada@example.org").await,
            Some(Role::Owner)
        );
        assert_eq!(audited(store, "tenant.create").await, created_before + 1);
        // A bad slug and a taken one are the form's errors.
        for slug in ["Not A Slug", "zeta"] {
            let reply = root
                .post_form("/ui/admin/tenants", &[("csrf", &csrf), ("slug", slug)])
                .await;
            assert_eq!(
                reply.status,
                StatusCode::BAD_REQUEST,
                "{slug}: {}",
                reply.text()
            );
            assert!(reply.text().contains("id=\"error\""));
        }
        let users = root.get("/ui/admin/users").await.text();
        assert!(
            users.contains("ada@example.org") && users.contains("superadmin"),
            "{users}"
        );
        // Tenant admins are not platform admins.
        let mut ada = signed_in(&app, "ada@example.org").await;
        assert_eq!(
            ada.get("/ui/admin/tenants").await.status,
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            ada.get("/ui/admin/users").await.status,
            StatusCode::FORBIDDEN
        );
        let csrf = csrf_of(&ada.get("/").await.text());
        let reply = ada
            .post_form("/ui/admin/tenants", &[("csrf", &csrf), ("slug", "mine")])
            .await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", reply.text());
    }
}

async fn tenant_record(store: &Store, slug: &str) -> platform::store::Tenant {
    store
        .tenant_by_slug(&Slug::parse(slug).expect("slug"))
        .await
        .expect("q")
        .expect("tenant")
}

#[tokio::test]
async fn the_console_changes_quotas_and_sets_and_tests_identity_providers_and_sources() {
    let app = tenants(None).await;
    let store = &app.state.store;
    admin::create_user(store, "root@example.org", Some(PASSWORD), true, &op())
        .await
        .expect("superadmin");
    let mut root = signed_in(&app, "root@example.org").await;
    let csrf = csrf_of(&root.get("/ui/admin/tenants").await.text());
    // Quotas through the same function as the REST PATCH: a blank field keeps its value.
    let before = tenant_record(store, "b").await.quotas;
    let reply = root
        .post_form(
            "/ui/admin/tenants/b/quotas",
            &[("csrf", &csrf), ("max_apps", "7"), ("max_jobs", " ")],
        )
        .await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER, "{}", reply.text());
    let after = tenant_record(store, "b").await.quotas;
    assert_eq!(after.max_apps, 7);
    assert_eq!(after.max_jobs, before.max_jobs);
    assert_eq!(audited(store, "tenant.set_quotas").await, 1);
    let page = root.get(&location(&reply)).await.text();
    assert!(page.contains("The quotas of b are changed."), "{page}");
    let reply = root
        .post_form(
            "/ui/admin/tenants/b/quotas",
            &[("csrf", &csrf), ("callback_memory_mb", "999999")],
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.text());
    assert!(
        reply
            .text()
            .contains("callback_memory_mb must be between 1 and 4096 (got 999999)"),
        "{}",
        reply.text()
    );
    assert_eq!(
        tenant_record(store, "b").await.quotas.callback_memory_mb,
        before.callback_memory_mb
    );

    // A superadmin sets a provider from its file; nothing answers at its issuer.
    let file = "kind = \"oidc\"\ndisplay_name = \"Nowhere SSO\"\nissuer = \"http://127.0.0.1:9\"\n\
                client_id = \"dashboard\"\nclient_secret = \"sekret-never-shown\"\n";
    let reply = root
        .post_form(
            "/ui/b/connections/providers",
            &[("csrf", &csrf), ("slug", "sso"), ("file", file)],
        )
        .await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER, "{}", reply.text());
    // The tenant's admin sees it (never its secret) and tests it: the report says in
    // words what failed, and the test is audited.
    let mut ada = signed_in(&app, "ada@example.org").await;
    let page = ada.get("/ui/b/connections").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text());
    let html = page.text();
    assert!(html.contains("id=\"provider-sso\""), "{html}");
    assert!(!html.contains("sekret-never-shown"), "{html}");
    assert!(
        !html.contains("id=\"set-provider\""),
        "only superadmins set providers"
    );
    let csrf = csrf_of(&html);
    let reply = ada
        .post_form("/ui/b/connections/providers/sso/test", &[("csrf", &csrf)])
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert!(
        reply.text().contains("The provider sso does not work: "),
        "{}",
        reply.text()
    );
    assert!(!reply.text().contains("sekret-never-shown"));
    assert_eq!(audited(store, "identity_provider.test").await, 1);
    // A source that is not there is the form's error; an admin may not set providers.
    let reply = ada
        .post_form(
            "/ui/b/connections/data-sources/nope/test",
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.text());
    assert!(reply.text().contains("the tenant has no data source"));
    let reply = ada
        .post_form(
            "/ui/b/connections/providers",
            &[("csrf", &csrf), ("slug", "mine"), ("file", file)],
        )
        .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", reply.text());
    assert!(
        store
            .identity_provider(tenant_record(store, "b").await.id, "mine")
            .await
            .expect("q")
            .is_none()
    );
}

#[tokio::test]
async fn the_console_suspends_resumes_and_deletes_a_tenant_once_its_slug_is_typed() {
    let app = tenants(None).await;
    let store = &app.state.store;
    admin::create_user(store, "root@example.org", Some(PASSWORD), true, &op())
        .await
        .expect("superadmin");
    let mut root = signed_in(&app, "root@example.org").await;
    let mut ada = signed_in(&app, "ada@example.org").await;
    assert_eq!(ada.get("/ui/b/members").await.status, StatusCode::OK);
    let csrf = csrf_of(&root.get("/ui/admin/tenants").await.text());
    let reply = root
        .post_form("/ui/admin/tenants/b/suspend", &[("csrf", &csrf)])
        .await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER, "{}", reply.text());
    let page = root.get(&location(&reply)).await.text();
    assert!(page.contains("The tenant b is suspended"), "{page}");
    assert!(page.contains("id=\"resume-b\""), "{page}");
    // Its admin's pages say what happened and what to do.
    let refused = ada.get("/ui/b/members").await;
    assert_eq!(refused.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        refused.text().contains("Tenant suspended"),
        "{}",
        refused.text()
    );
    let reply = root
        .post_form("/ui/admin/tenants/b/resume", &[("csrf", &csrf)])
        .await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER, "{}", reply.text());
    assert_eq!(ada.get("/ui/b/members").await.status, StatusCode::OK);
    assert_eq!(audited(store, "tenant.suspend").await, 1);
    assert_eq!(audited(store, "tenant.resume").await, 1);

    // A slip of the keyboard deletes nothing.
    let reply = root
        .post_form(
            "/ui/admin/tenants/b/delete",
            &[("csrf", &csrf), ("confirm", "c")],
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.text());
    assert!(
        reply.text().contains("slug, b, to confirm its deletion"),
        "{}",
        reply.text()
    );
    assert!(role_of(store, "b", "ada@example.org").await.is_some());
    let reply = root
        .post_form(
            "/ui/admin/tenants/b/delete",
            &[("csrf", &csrf), ("confirm", "b")],
        )
        .await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER, "{}", reply.text());
    let page = root.get(&location(&reply)).await.text();
    assert!(
        page.contains("The tenant b and everything of it are deleted"),
        "{page}"
    );
    assert!(!page.contains("id=\"tenant-b\""), "{page}");
    assert!(page.contains("id=\"tenant-c\""), "{page}");
    assert_eq!(
        store
            .tenant_by_slug(&Slug::parse("b").expect("slug"))
            .await
            .expect("q"),
        None
    );
    // Ada stays a user; her tenant is gone, so its pages are not found.
    assert!(
        store
            .user_by_email(&Email::parse("ada@example.org").expect("e"))
            .await
            .expect("q")
            .is_some()
    );
    assert_eq!(ada.get("/ui/b/members").await.status, StatusCode::NOT_FOUND);
    assert_eq!(audited(store, "tenant.delete").await, 1);
}

/// What a console route needs.
#[derive(Clone, Copy, Debug)]
enum Needs {
    /// Anyone, signed in or not.
    Anyone,
    /// At least this role in the route's tenant (or a superadmin).
    Role(Role),
    /// Anyone holding the link (invitations).
    Link,
    /// Anyone signed in (the code form of `tessera login`).
    SignedIn,
    /// Anyone signed in holding a sign-in code (`tessera login`'s approval).
    Code,
    /// A platform superadmin.
    Superadmin,
}

/// Every console route with what it needs. A route the console serves that is missing
/// here (or a row here the console does not serve) fails the matrix test.
fn console_matrix() -> BTreeMap<(&'static str, &'static str), Needs> {
    use Needs::{Anyone, Link};
    use Role::{Admin, Viewer};
    [
        ("GET", "/", Anyone),
        ("GET", "/ui/static/tessera.css", Anyone),
        ("GET", "/ui/static/console-log.js", Anyone),
        ("GET", "/ui/static/usage.js", Anyone),
        ("GET", "/ui/static/plotly.min.js", Anyone),
        ("GET", "/ui/{tenant}/apps/{app}", Needs::Role(Viewer)),
        (
            "POST",
            "/ui/{tenant}/apps/{app}/rollback",
            Needs::Role(Admin),
        ),
        (
            "POST",
            "/ui/{tenant}/apps/{app}/settings",
            Needs::Role(Admin),
        ),
        (
            "POST",
            "/ui/{tenant}/apps/{app}/settings/delete",
            Needs::Role(Admin),
        ),
        (
            "POST",
            "/ui/{tenant}/apps/{app}/visibility",
            Needs::Role(Admin),
        ),
        ("POST", "/ui/{tenant}/apps/{app}/delete", Needs::Role(Admin)),
        ("GET", "/ui/{tenant}/members", Needs::Role(Admin)),
        ("POST", "/ui/{tenant}/members/add", Needs::Role(Admin)),
        (
            "POST",
            "/ui/{tenant}/members/{user}/role",
            Needs::Role(Admin),
        ),
        (
            "POST",
            "/ui/{tenant}/members/{user}/remove",
            Needs::Role(Admin),
        ),
        ("POST", "/ui/{tenant}/invitations", Needs::Role(Admin)),
        (
            "POST",
            "/ui/{tenant}/invitations/{id}/revoke",
            Needs::Role(Admin),
        ),
        ("POST", "/ui/{tenant}/teams", Needs::Role(Admin)),
        (
            "POST",
            "/ui/{tenant}/teams/{team}/members",
            Needs::Role(Admin),
        ),
        (
            "POST",
            "/ui/{tenant}/teams/{team}/members/{user}/remove",
            Needs::Role(Admin),
        ),
        ("GET", "/ui/{tenant}/connections", Needs::Role(Admin)),
        (
            "POST",
            "/ui/{tenant}/connections/providers",
            Needs::Superadmin,
        ),
        (
            "POST",
            "/ui/{tenant}/connections/providers/{provider}/test",
            Needs::Role(Admin),
        ),
        (
            "POST",
            "/ui/{tenant}/connections/data-sources/{source}/test",
            Needs::Role(Admin),
        ),
        ("GET", "/ui/{tenant}/audit", Needs::Role(Admin)),
        ("GET", "/ui/{tenant}/audit.csv", Needs::Role(Admin)),
        ("GET", "/ui/admin/tenants", Needs::Superadmin),
        ("POST", "/ui/admin/tenants", Needs::Superadmin),
        (
            "POST",
            "/ui/admin/tenants/{tenant}/quotas",
            Needs::Superadmin,
        ),
        (
            "POST",
            "/ui/admin/tenants/{tenant}/suspend",
            Needs::Superadmin,
        ),
        (
            "POST",
            "/ui/admin/tenants/{tenant}/resume",
            Needs::Superadmin,
        ),
        (
            "POST",
            "/ui/admin/tenants/{tenant}/delete",
            Needs::Superadmin,
        ),
        ("GET", "/ui/admin/users", Needs::Superadmin),
        ("GET", "/invite/{tenant}/{secret}", Link),
        ("POST", "/invite/{tenant}/{secret}", Link),
        ("GET", "/device", Needs::SignedIn),
        ("POST", "/device/{code}/approve", Needs::Code),
        ("POST", "/device/{code}/deny", Needs::Code),
    ]
    .into_iter()
    .map(|(method, path, needs)| ((method, path), needs))
    .collect()
}

/// What one request should get: the page or the form's success, a refusal page, or
/// (signed out) the way to sign in.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Done,
    Forbidden,
    NotFound,
    SignIn,
}

fn outcome(reply: &Reply) -> Outcome {
    match reply.status {
        StatusCode::FORBIDDEN => Outcome::Forbidden,
        StatusCode::NOT_FOUND => Outcome::NotFound,
        StatusCode::SEE_OTHER if location(reply).starts_with("/login") => Outcome::SignIn,
        s if s.is_success() || s.is_redirection() => Outcome::Done,
        // A form's own error (400) is past the policy: the action was allowed.
        StatusCode::BAD_REQUEST => Outcome::Done,
        _ => Outcome::NotFound,
    }
}

#[tokio::test]
async fn every_console_route_answers_every_person_as_the_policy_says() {
    let matrix = console_matrix();
    let served = platform::http::console_routes();
    for (method, path) in &served {
        assert!(
            matrix.contains_key(&(*method, *path)),
            "{method} {path} is served by the console but has no row in its authorization matrix"
        );
    }
    for key in matrix.keys() {
        assert!(
            served.contains(key),
            "{key:?} is in the matrix but not served"
        );
    }
    let app = tenants(None).await;
    let store = &app.state.store;
    app.deploy("c", "hello", "hello.wasm").await;
    admin::create_user(store, "root@example.org", Some(PASSWORD), true, &op())
        .await
        .expect("superadmin");
    admin::create_user(store, "avery@example.org", Some(PASSWORD), false, &op())
        .await
        .expect("author");
    admin::grant(store, "avery@example.org", "b", "author", &op())
        .await
        .expect("grant");
    // hello of b: every member of b may open it (the viewer row of the app page).
    admin::set_visibility(store, "b/hello", "tenant", &op())
        .await
        .expect("visibility");
    let bob = store
        .user_by_email(&Email::parse("bob@example.org").expect("e"))
        .await
        .expect("q")
        .expect("bob")
        .id
        .0;
    // (name, email, role in b; None: signed out)
    let people: [(&str, Option<&str>, Option<Role>, bool); 6] = [
        ("anonymous", None, None, false),
        (
            "viewer",
            Some("carl@example.org"),
            Some(Role::Viewer),
            false,
        ),
        (
            "author",
            Some("avery@example.org"),
            Some(Role::Author),
            false,
        ),
        ("admin", Some("ada@example.org"), Some(Role::Admin), false),
        ("owner", Some("olga@example.org"), Some(Role::Owner), false),
        ("superadmin", Some("root@example.org"), None, true),
    ];
    let mut failures = Vec::new();
    let mut n = 0;
    for (name, email, role, superadmin) in people {
        let mut browser = Browser::new(&app);
        if let Some(email) = email {
            let reply = browser.sign_in(email, PASSWORD, "/").await;
            assert_eq!(reply.status, StatusCode::SEE_OTHER, "{name}");
        }
        for (tenant, own) in [("b", true), ("c", false)] {
            for ((method, path), needs) in &matrix {
                n += 1;
                // Each row starts from the same facts: bob (the member the forms act on)
                // is a viewer of the tenant, whatever the row before did to him.
                admin::grant(store, "bob@example.org", tenant, "viewer", &op())
                    .await
                    .expect("bob");
                let team = store
                    .create_team(carl_tenant(store).await, &format!("t{n}"), &op())
                    .await
                    .expect("team")
                    .0;
                // A tenant's life cycle acts on a tenant of its own, so b and c keep
                // running for the other rows.
                let life = ["/suspend", "/resume", "/delete"]
                    .iter()
                    .any(|end| path.starts_with("/ui/admin/tenants/") && path.ends_with(end));
                let life_slug = format!("life-{n}");
                if life {
                    admin::create_tenant(store, &life_slug, None, None, &op())
                        .await
                        .expect("tenant");
                }
                let uri = path
                    .replace("{tenant}", if life { life_slug.as_str() } else { tenant })
                    .replace(
                        "{app}",
                        if *method == "POST"
                            && path.ends_with("/delete")
                            && !path.contains("settings")
                        {
                            "doomed"
                        } else {
                            "hello"
                        },
                    )
                    .replace("{user}", &bob.to_string())
                    .replace("{team}", &team.to_string())
                    .replace("{id}", "1")
                    .replace("{provider}", "sso")
                    .replace("{source}", "db")
                    .replace("{secret}", &"A".repeat(40))
                    .replace("{code}", "BCDF-GHJK");
                if uri.ends_with("/apps/doomed/delete") {
                    app.deploy(tenant, "doomed", "hello.wasm").await;
                    admin::set_visibility(store, &format!("{tenant}/doomed"), "tenant", &op())
                        .await
                        .expect("visibility");
                }
                let slug = format!("new-{n}");
                let reply = if *method == "GET" {
                    browser.get(&uri).await
                } else {
                    let csrf = browser.csrf().await;
                    let fields: Vec<(&str, &str)> = vec![
                        ("csrf", csrf.as_str()),
                        ("role", "viewer"),
                        ("name", "REGION"),
                        ("value", "x"),
                        ("visibility", "tenant"),
                        ("confirm", if life { life_slug.as_str() } else { "doomed" }),
                        ("email", "bob@example.org"),
                        ("version", "1"),
                        ("slug", slug.as_str()),
                    ];
                    browser.post_form(&uri, &fields).await
                };
                let got = outcome(&reply);
                let want = match needs {
                    Needs::Anyone => Outcome::Done,
                    // No such invitation: every holder of a wrong link gets the same 404.
                    Needs::Link => Outcome::NotFound,
                    Needs::SignedIn | Needs::Code if email.is_none() => Outcome::SignIn,
                    Needs::SignedIn => Outcome::Done,
                    // No such sign-in: every signed-in person gets the same 404.
                    Needs::Code => Outcome::NotFound,
                    Needs::Superadmin if email.is_none() => Outcome::SignIn,
                    Needs::Superadmin if superadmin => Outcome::Done,
                    Needs::Superadmin => Outcome::Forbidden,
                    Needs::Role(_) if email.is_none() => Outcome::SignIn,
                    Needs::Role(_) if superadmin => Outcome::Done,
                    Needs::Role(_) if !own => Outcome::NotFound,
                    Needs::Role(min) => {
                        if role >= Some(*min) {
                            Outcome::Done
                        } else {
                            Outcome::Forbidden
                        }
                    }
                };
                // The app page of b is open to members; in c nobody here but the
                // superadmin sees the app.
                if got != want {
                    failures.push(format!(
                        "{method} {uri} as {name}: expected {want:?}, got {:?} {}",
                        reply.status,
                        reply.text().chars().take(200).collect::<String>()
                    ));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {n} requests wrong:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
