//! The REST API: the authorization matrix generated from the OpenAPI document (the
//! router's own route table), error shapes, pagination and quotas over HTTP. Every test
//! runs on SQLite and on PostgreSQL.

use std::collections::BTreeMap;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use platform::admin;
use platform::ids::{Slug, TeamId, UserId};
use platform::policy::{Principal, UserPrincipal};
use platform::store::testing::TestDatabase;
use platform::store::{Change, NewVersion};
use platform::tenancy::Role;
use serde_json::{Value, json};

use crate::support::{Reply, TestApp};

fn op() -> Change<'static> {
    use platform::clock::Clock;
    Change {
        actor: "test",
        remote_addr: None,
        at: platform::clock::SystemClock.now_millis(),
    }
}

/// What one tenant of the fixture holds: the ids the path templates are filled with.
struct TenantFixture {
    slug: &'static str,
    zed: UserId,
    team: TeamId,
    zed_token: String,
    invitation: i64,
}

/// Who asks.
#[derive(Clone)]
enum Who {
    Anonymous,
    /// A signed-in user (as a session layer would attach it).
    User(Principal),
    /// An API token, sent as `Authorization: Bearer`.
    Token(String),
}

struct Actor {
    name: String,
    who: Who,
    /// Role in tenant `a` (none for the superadmin and anonymous).
    role: Option<Role>,
    superadmin: bool,
    token: bool,
}

struct Fixture {
    app: TestApp,
    tenants: [TenantFixture; 2],
    actors: Vec<Actor>,
}

async fn publish(app: &TestApp, tenant: &str, name: &str, bytes: &[u8]) {
    app.state
        .store
        .publish_version(
            &Slug::parse(tenant).expect("slug"),
            &Slug::parse(name).expect("slug"),
            NewVersion {
                visibility: platform::tenancy::Visibility::Public,
                component: bytes,
                title: "T",
                source: "test",
            },
            1,
        )
        .await
        .expect("publish");
}

async fn user_principal(app: &TestApp, email: &str) -> (UserId, Principal) {
    let store = &app.state.store;
    let user = store
        .user_by_email(&platform::tenancy::Email::parse(email).expect("email"))
        .await
        .expect("q")
        .expect("user");
    let memberships = store.memberships_of(user.id).await.expect("memberships");
    (
        user.id,
        Principal::User(UserPrincipal {
            id: user.id,
            superadmin: user.superadmin,
            memberships,
        }),
    )
}

/// Tenants `a` and `b`, each with app `hello` (visibility `tenant`), a team `ops`, a
/// member `zed` in it with a token, and one user per role; the actors are `a`'s users
/// (as sessions and as tokens), a superadmin and the anonymous principal.
async fn fixture(db: TestDatabase) -> Fixture {
    let app = TestApp::on(db).await;
    let store = &app.state.store;
    let mut tenants = Vec::new();
    for slug in ["a", "b"] {
        admin::create_tenant(store, slug, None, None, &op())
            .await
            .expect("tenant");
        publish(&app, slug, "hello", b"component").await;
        admin::set_visibility(store, &format!("{slug}/hello"), "tenant", &op())
            .await
            .expect("visibility");
        // A data source `shop` (an empty SQLite file in the tenant's folder).
        let sources = app.state.config.sources_dir().join(slug);
        std::fs::create_dir_all(&sources).expect("sources folder");
        std::fs::write(sources.join("shop.db"), b"").expect("sqlite file");
        let tenant_row = store
            .tenant_by_slug(&Slug::parse(slug).expect("slug"))
            .await
            .expect("q")
            .expect("tenant");
        app.state
            .datasources
            .put(
                &tenant_row,
                "shop",
                platform::datasources::Kind::Sqlite,
                &platform::datasources::ConnectionInput {
                    path: Some("shop.db".into()),
                    ..Default::default()
                },
                &Default::default(),
                &op(),
            )
            .await
            .expect("data source");
        for role in ["owner", "admin", "author", "viewer"] {
            let email = format!("{role}-{slug}@example.org");
            admin::create_user(store, &email, None, false, &op())
                .await
                .expect("user");
            admin::grant(store, &email, slug, role, &op())
                .await
                .expect("grant");
        }
        let zed_email = format!("zed-{slug}@example.org");
        admin::create_user(store, &zed_email, None, false, &op())
            .await
            .expect("zed");
        admin::grant(store, &zed_email, slug, "viewer", &op())
            .await
            .expect("grant zed");
        let (zed, _) = user_principal(&app, &zed_email).await;
        let tenant = store
            .tenant_by_slug(&Slug::parse(slug).expect("slug"))
            .await
            .expect("q")
            .expect("tenant");
        let team = store
            .create_team(tenant.id, "ops", &op())
            .await
            .expect("team");
        store
            .add_team_member(tenant.id, team, zed, &op())
            .await
            .expect("team member");
        let zed_token = admin::create_token(store, &zed_email, slug, None, 1, &op())
            .await
            .expect("token")
            .public_id;
        let invitation = store
            .create_invitation(
                tenant.id,
                &platform::store::NewInvitation {
                    token_sha256: &format!("{slug}-fixture"),
                    role: Role::Viewer,
                    note: "",
                    expires_at: op().at + 60_000,
                },
                &op(),
            )
            .await
            .expect("invitation");
        tenants.push(TenantFixture {
            slug,
            zed,
            team,
            zed_token,
            invitation,
        });
    }
    admin::create_user(store, "root@example.org", None, true, &op())
        .await
        .expect("superadmin");
    let mut actors = vec![
        Actor {
            name: "anonymous".into(),
            who: Who::Anonymous,
            role: None,
            superadmin: false,
            token: false,
        },
        Actor {
            name: "superadmin".into(),
            who: Who::User(user_principal(&app, "root@example.org").await.1),
            role: None,
            superadmin: true,
            token: false,
        },
    ];
    for role in Role::ALL {
        let email = format!("{role}-a@example.org");
        actors.push(Actor {
            name: format!("{role} (session)"),
            who: Who::User(user_principal(&app, &email).await.1),
            role: Some(role),
            superadmin: false,
            token: false,
        });
        let token = admin::create_token(store, &email, "a", None, 1, &op())
            .await
            .expect("token")
            .token;
        actors.push(Actor {
            name: format!("{role} (token)"),
            who: Who::Token(token),
            role: Some(role),
            superadmin: false,
            token: true,
        });
    }
    let [a, b]: [TenantFixture; 2] = tenants.try_into().ok().expect("two tenants");
    Fixture {
        app,
        tenants: [a, b],
        actors,
    }
}

/// What a route needs.
#[derive(Clone, Copy, Debug)]
enum Needs {
    /// Nothing (the OpenAPI document, the sign-in of `tessera login`).
    Nothing,
    /// Any authenticated principal.
    Authenticated,
    /// A platform superadmin.
    Superadmin,
    /// At least this role in the route's tenant.
    Role(Role),
    /// At least this role, and a person rather than a token.
    PersonWithRole(Role),
}

/// The expected rule and success status of every route. A route in the OpenAPI document
/// missing here (or one here missing there) fails the test.
fn expectations() -> BTreeMap<(&'static str, &'static str), (Needs, u16)> {
    use Needs::{Authenticated, Nothing, PersonWithRole, Superadmin};
    use platform::tenancy::Role::{Admin, Viewer};
    let t = "/api/v1/tenants/{tenant}";
    let rows: Vec<(&str, String, Needs, u16)> = vec![
        ("GET", "/api/v1/openapi.json".into(), Nothing, 200),
        // `tessera login`: anyone may start a sign-in; a made-up device code gets nothing.
        ("POST", "/api/v1/cli/sign-ins".into(), Nothing, 201),
        ("POST", "/api/v1/cli/sign-ins/token".into(), Nothing, 400),
        ("GET", "/api/v1/tenants".into(), Authenticated, 200),
        ("POST", "/api/v1/tenants".into(), Superadmin, 201),
        ("GET", "/api/v1/audit".into(), Superadmin, 200),
        ("GET", t.into(), Needs::Role(Viewer), 200),
        ("PATCH", t.into(), Needs::Role(Admin), 200),
        ("DELETE", t.into(), Superadmin, 200),
        ("POST", format!("{t}/suspend"), Superadmin, 200),
        ("POST", format!("{t}/resume"), Superadmin, 200),
        ("GET", format!("{t}/members"), Needs::Role(Admin), 200),
        ("POST", format!("{t}/members"), Needs::Role(Admin), 200),
        (
            "PATCH",
            format!("{t}/members/{{user_id}}"),
            Needs::Role(Admin),
            200,
        ),
        (
            "DELETE",
            format!("{t}/members/{{user_id}}"),
            Needs::Role(Admin),
            204,
        ),
        ("GET", format!("{t}/invitations"), Needs::Role(Admin), 200),
        ("POST", format!("{t}/invitations"), Needs::Role(Admin), 201),
        (
            "DELETE",
            format!("{t}/invitations/{{invitation_id}}"),
            Needs::Role(Admin),
            204,
        ),
        ("GET", format!("{t}/teams"), Needs::Role(Viewer), 200),
        ("POST", format!("{t}/teams"), Needs::Role(Admin), 201),
        (
            "PUT",
            format!("{t}/teams/{{team_id}}/members/{{user_id}}"),
            Needs::Role(Admin),
            204,
        ),
        (
            "DELETE",
            format!("{t}/teams/{{team_id}}/members/{{user_id}}"),
            Needs::Role(Admin),
            204,
        ),
        ("GET", format!("{t}/apps"), Needs::Role(Viewer), 200),
        ("GET", format!("{t}/apps/{{app}}"), Needs::Role(Viewer), 200),
        (
            "PATCH",
            format!("{t}/apps/{{app}}"),
            Needs::Role(Admin),
            200,
        ),
        (
            "DELETE",
            format!("{t}/apps/{{app}}"),
            Needs::Role(Admin),
            204,
        ),
        (
            "GET",
            format!("{t}/apps/{{app}}/versions"),
            Needs::Role(Viewer),
            200,
        ),
        (
            "GET",
            format!("{t}/apps/{{app}}/logs"),
            Needs::Role(Admin),
            200,
        ),
        (
            "POST",
            format!("{t}/apps/{{app}}/rollback"),
            Needs::Role(Admin),
            200,
        ),
        (
            "GET",
            format!("{t}/apps/{{app}}/usage"),
            Needs::Role(Admin),
            200,
        ),
        ("GET", format!("{t}/identity-providers"), Superadmin, 200),
        (
            "PUT",
            format!("{t}/identity-providers/{{slug}}"),
            Superadmin,
            200,
        ),
        (
            "DELETE",
            format!("{t}/identity-providers/{{slug}}"),
            Superadmin,
            204,
        ),
        (
            "POST",
            format!("{t}/identity-providers/{{slug}}/test"),
            Needs::Role(Admin),
            200,
        ),
        (
            "GET",
            format!("{t}/apps/{{app}}/settings"),
            Needs::Role(Admin),
            200,
        ),
        (
            "PUT",
            format!("{t}/apps/{{app}}/settings/{{name}}"),
            Needs::Role(Admin),
            200,
        ),
        (
            "DELETE",
            format!("{t}/apps/{{app}}/settings/{{name}}"),
            Needs::Role(Admin),
            204,
        ),
        (
            "GET",
            format!("{t}/apps/{{app}}/outbound"),
            Needs::Role(Admin),
            200,
        ),
        (
            "POST",
            format!("{t}/apps/{{app}}/outbound/allow"),
            Needs::Role(Admin),
            200,
        ),
        (
            "POST",
            format!("{t}/apps/{{app}}/outbound/deny"),
            Needs::Role(Admin),
            200,
        ),
        (
            "GET",
            format!("{t}/apps/{{app}}/access"),
            Needs::Role(Admin),
            200,
        ),
        (
            "PUT",
            format!("{t}/apps/{{app}}/collaborators/{{user_id}}"),
            Needs::Role(Admin),
            204,
        ),
        (
            "DELETE",
            format!("{t}/apps/{{app}}/collaborators/{{user_id}}"),
            Needs::Role(Admin),
            204,
        ),
        (
            "PUT",
            format!("{t}/apps/{{app}}/grants/users/{{user_id}}"),
            Needs::Role(Admin),
            204,
        ),
        (
            "DELETE",
            format!("{t}/apps/{{app}}/grants/users/{{user_id}}"),
            Needs::Role(Admin),
            204,
        ),
        (
            "PUT",
            format!("{t}/apps/{{app}}/grants/teams/{{team_id}}"),
            Needs::Role(Admin),
            204,
        ),
        (
            "DELETE",
            format!("{t}/apps/{{app}}/grants/teams/{{team_id}}"),
            Needs::Role(Admin),
            204,
        ),
        ("GET", format!("{t}/tokens"), Needs::Role(Viewer), 200),
        ("POST", format!("{t}/tokens"), PersonWithRole(Viewer), 201),
        (
            "DELETE",
            format!("{t}/tokens/{{token_id}}"),
            Needs::Role(Admin),
            204,
        ),
        ("GET", format!("{t}/audit"), Needs::Role(Admin), 200),
        ("GET", format!("{t}/audit/export"), Needs::Role(Admin), 200),
        ("GET", format!("{t}/data-sources"), Needs::Role(Admin), 200),
        (
            "GET",
            format!("{t}/data-sources/{{source}}"),
            Needs::Role(Admin),
            200,
        ),
        (
            "PUT",
            format!("{t}/data-sources/{{source}}"),
            Needs::Role(Admin),
            200,
        ),
        (
            "DELETE",
            format!("{t}/data-sources/{{source}}"),
            Needs::Role(Admin),
            204,
        ),
        (
            "POST",
            format!("{t}/data-sources/{{source}}/test"),
            Needs::Role(Admin),
            200,
        ),
        (
            "PUT",
            format!("{t}/data-sources/{{source}}/grants/{{app}}"),
            Needs::Role(Admin),
            204,
        ),
        (
            "DELETE",
            format!("{t}/data-sources/{{source}}/grants/{{app}}"),
            Needs::Role(Admin),
            204,
        ),
    ];
    rows.into_iter()
        .map(|(m, p, n, s)| ((m, &*Box::leak(p.into_boxed_str())), (n, s)))
        .collect()
}

/// The (method, path template) pairs of the served OpenAPI document.
fn documented_routes() -> Vec<(String, String)> {
    let doc = serde_json::to_value(platform::http::api::openapi()).expect("document");
    let mut routes = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in ["get", "post", "put", "patch", "delete"] {
            if item.get(method).is_some() {
                routes.push((method.to_uppercase(), path.clone()));
            }
        }
    }
    routes
}

fn expected(actor: &Actor, needs: Needs, own_tenant: bool, success: u16) -> u16 {
    if matches!(needs, Needs::Nothing) {
        return success;
    }
    if matches!(actor.who, Who::Anonymous) {
        return 401;
    }
    if actor.superadmin {
        return success;
    }
    let role = actor.role;
    match needs {
        Needs::Nothing | Needs::Authenticated => success,
        Needs::Superadmin => 403,
        Needs::Role(_) | Needs::PersonWithRole(_) if !own_tenant => 404,
        Needs::Role(min) => {
            if role >= Some(min) {
                success
            } else {
                403
            }
        }
        Needs::PersonWithRole(min) => {
            if role >= Some(min) && !actor.token {
                success
            } else {
                403
            }
        }
    }
}

async fn send(app: &TestApp, who: &Who, method: &str, uri: &str, body: Option<Value>) -> Reply {
    let mut request = Request::builder()
        .method(Method::from_bytes(method.as_bytes()).expect("method"))
        .uri(uri);
    if let Who::Token(token) = who {
        request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let body = match body {
        Some(body) => {
            request = request.header(header::CONTENT_TYPE, "application/json");
            Body::from(body.to_string())
        }
        None => Body::empty(),
    };
    let mut request = request.body(body).expect("request");
    if let Who::User(principal) = who {
        request.extensions_mut().insert(principal.clone());
    }
    app.request(request).await
}

fn body_for(method: &str, path: &str, tenant: &TenantFixture, n: usize) -> Option<Value> {
    let tail = path.trim_start_matches("/api/v1/tenants/{tenant}");
    match (method, path, tail) {
        ("POST", "/api/v1/tenants", _) => Some(json!({"slug": format!("new-{n}")})),
        ("POST", "/api/v1/cli/sign-ins", _) => Some(json!({"client_name": format!("m{n}")})),
        ("POST", "/api/v1/cli/sign-ins/token", _) => Some(json!({"device_code": "A".repeat(40)})),
        ("PATCH", _, "") => Some(json!({"name": "Renamed"})),
        ("POST", _, "/members") => {
            Some(json!({"email": format!("zed-{}@example.org", tenant.slug), "role": "viewer"}))
        }
        ("PATCH", _, "/members/{user_id}") => Some(json!({"role": "viewer"})),
        ("POST", _, "/teams") => Some(json!({"name": format!("team {n}")})),
        ("POST", _, "/invitations") => Some(json!({"role": "viewer", "note": format!("n{n}")})),
        ("PATCH", _, "/apps/{app}") => Some(json!({"visibility": "tenant"})),
        // The fixture's app has one version: rolling back to it (the live one) is allowed
        // and changes nothing, so every permitted principal gets 200.
        ("POST", _, "/apps/{app}/rollback") => Some(json!({"version": 1})),
        ("POST", _, "/tokens") => Some(json!({})),
        ("PUT", _, "/identity-providers/{slug}") => Some(json!({
            "kind": "oidc",
            "display_name": format!("SSO {n}"),
            "issuer": "https://sso.example.org",
            "client_id": "tessera",
            "client_secret": "s3cret",
            "groups": [{"group": "staff", "role": "viewer"}]
        })),
        ("PUT", _, "/data-sources/{source}") => {
            Some(json!({"kind": "sqlite", "connection": {"path": "shop.db"}}))
        }
        ("PUT", _, "/apps/{app}/settings/{name}") => {
            Some(json!({"value": format!("value {n}"), "secret": n.is_multiple_of(2)}))
        }
        ("POST", _, "/apps/{app}/outbound/allow" | "/apps/{app}/outbound/deny") => {
            Some(json!({"patterns": [format!("https://h{n}.example.com")]}))
        }
        _ => None,
    }
}

fn fill(path: &str, tenant: &TenantFixture) -> String {
    path.replace("{tenant}", tenant.slug)
        .replace("{app}", "hello")
        .replace("{user_id}", &tenant.zed.0.to_string())
        .replace("{team_id}", &tenant.team.0.to_string())
        .replace("{invitation_id}", &tenant.invitation.to_string())
        .replace("{token_id}", &tenant.zed_token)
        .replace("{name}", "REGION")
        .replace("{slug}", "sso")
        .replace("{source}", "shop")
}

#[tokio::test]
async fn every_route_answers_every_principal_as_the_policy_says() {
    let expectations = expectations();
    let mut routes = documented_routes();
    let documented: Vec<(String, String)> = routes.clone();
    for (method, path) in &documented {
        assert!(
            expectations.contains_key(&(method.as_str(), path.as_str())),
            "{method} {path} is served but has no row in the authorization matrix"
        );
    }
    for (method, path) in expectations.keys() {
        assert!(
            documented.contains(&(method.to_string(), path.to_string())),
            "{method} {path} is in the matrix but not in the OpenAPI document"
        );
    }
    // Deletions last (they are idempotent, but they take zed out of lists other routes
    // need); removing the member itself very last.
    routes.sort_by_key(|(method, path)| {
        (
            method == "DELETE",
            path.ends_with("/members/{user_id}") && method == "DELETE",
        )
    });
    for db in TestDatabase::all().await.expect("databases") {
        let backend = db.backend;
        let fx = fixture(db).await;
        let mut failures = Vec::new();
        let mut n = 0;
        for (method, path) in &routes {
            let (needs, success) = expectations[&(method.as_str(), path.as_str())];
            let tenant_scoped = path.contains("{tenant}");
            let targets: &[(bool, &TenantFixture)] = if tenant_scoped {
                &[(true, &fx.tenants[0]), (false, &fx.tenants[1])]
            } else {
                &[(true, &fx.tenants[0])]
            };
            for actor in &fx.actors {
                for (own, tenant) in targets {
                    n += 1;
                    let mut uri = fill(path, tenant);
                    // Deleting an app: each request gets an app of its own to delete, so
                    // the fixture's app stays for the other routes.
                    if method == "DELETE" && path == "/api/v1/tenants/{tenant}/apps/{app}" {
                        fx.app.deploy(tenant.slug, "doomed", "hello.wasm").await;
                        uri = uri.replace("/apps/hello", "/apps/doomed");
                    }
                    // A tenant's life cycle: each request acts on a tenant of its own, so
                    // the fixture's tenants stay running for the other routes.
                    let life = (method == "DELETE" && path == "/api/v1/tenants/{tenant}")
                        || path.ends_with("/suspend")
                        || path.ends_with("/resume");
                    if life {
                        let slug = format!("life-{n}");
                        admin::create_tenant(&fx.app.state.store, &slug, None, None, &op())
                            .await
                            .expect("tenant");
                        uri = format!("{}?confirm={slug}", path.replace("{tenant}", &slug));
                    }
                    let body = body_for(method, path, tenant, n);
                    let reply = send(&fx.app, &actor.who, method, &uri, body).await;
                    let want = expected(actor, needs, *own, success);
                    let got = reply.status.as_u16();
                    if got != want {
                        failures.push(format!(
                            "{method} {uri} as {} ({}): expected {want}, got {got}: {}",
                            actor.name,
                            if *own { "own tenant" } else { "other tenant" },
                            reply.text()
                        ));
                    } else if got >= 400 {
                        let code = reply.error_code();
                        let want_code = match got {
                            401 => "unauthorized",
                            403 => "forbidden",
                            // A made-up device code (`tessera login`).
                            400 if path.ends_with("/cli/sign-ins/token") => "invalid_grant",
                            _ => "not_found",
                        };
                        if code != want_code {
                            failures.push(format!(
                                "{method} {uri} as {}: code {code:?}, expected {want_code:?}",
                                actor.name
                            ));
                        }
                    }
                }
            }
        }
        assert!(
            failures.is_empty(),
            "{backend:?}: {} of {n} requests wrong:\n{}",
            failures.len(),
            failures.join("\n")
        );
    }
}

async fn owner_token(fx: &Fixture) -> String {
    fx.actors
        .iter()
        .find_map(|a| match (&a.who, a.role, a.token) {
            (Who::Token(t), Some(Role::Owner), true) => Some(t.clone()),
            _ => None,
        })
        .expect("owner token")
}

#[tokio::test]
async fn bad_bodies_and_unknown_routes_answer_in_the_error_shape() {
    for db in TestDatabase::all().await.expect("databases") {
        let fx = fixture(db).await;
        let token = Who::Token(owner_token(&fx).await);
        let uri = "/api/v1/tenants/a/teams";
        let raw = |body: &'static str, content_type: &'static str| {
            let mut r = Request::post(uri)
                .header(header::CONTENT_TYPE, content_type)
                .body(Body::from(body))
                .expect("request");
            if let Who::Token(t) = &token {
                r.headers_mut().insert(
                    header::AUTHORIZATION,
                    format!("Bearer {t}").parse().expect("header"),
                );
            }
            r
        };
        let reply = fx.app.request(raw("{not json", "application/json")).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.text());
        assert_eq!(reply.error_code(), "validation_failed");
        let reply = fx
            .app
            .request(raw("{\"name\": 5}", "application/json"))
            .await;
        assert_eq!(reply.error_code(), "validation_failed", "{}", reply.text());
        let reply = fx.app.request(raw("{\"name\": \"x\"}", "text/plain")).await;
        assert_eq!(reply.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        assert_eq!(reply.error_code(), "unsupported_media_type");
        let big = format!("{{\"name\": \"{}\"}}", "x".repeat(100 << 10));
        let reply = send(&fx.app, &token, "POST", uri, Some(json!({"name": big}))).await;
        assert_eq!(
            reply.status,
            StatusCode::PAYLOAD_TOO_LARGE,
            "{}",
            reply.text()
        );
        assert_eq!(reply.error_code(), "payload_too_large");
        let reply = send(&fx.app, &token, "POST", uri, Some(json!({"name": ""}))).await;
        assert_eq!(reply.error_code(), "validation_failed");
        let reply = send(&fx.app, &token, "POST", uri, Some(json!({"name": "ops"}))).await;
        assert_eq!(reply.status, StatusCode::CONFLICT, "{}", reply.text());
        assert_eq!(reply.error_code(), "conflict");
        let reply = send(&fx.app, &token, "GET", "/api/v1/nope", None).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND);
        assert_eq!(reply.error_code(), "not_found");
        let reply = send(
            &fx.app,
            &token,
            "GET",
            "/api/v1/tenants/a/apps?limit=0",
            None,
        )
        .await;
        assert_eq!(reply.error_code(), "validation_failed");
        let reply = send(
            &fx.app,
            &token,
            "DELETE",
            "/api/v1/tenants/a/members/x",
            None,
        )
        .await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{}", reply.text());
        assert_eq!(reply.error_code(), "not_found");
    }
}

#[tokio::test]
async fn apps_and_audit_page_with_cursors() {
    for db in TestDatabase::all().await.expect("databases") {
        let fx = fixture(db).await;
        for i in 0..5 {
            publish(&fx.app, "a", &format!("app-{i}"), b"x").await;
        }
        let token = Who::Token(owner_token(&fx).await);
        let mut names = Vec::new();
        let mut uri = "/api/v1/tenants/a/apps?limit=2".to_owned();
        loop {
            let page = send(&fx.app, &token, "GET", &uri, None).await.json();
            names.extend(
                page["items"]
                    .as_array()
                    .expect("items")
                    .iter()
                    .map(|a| a["name"].as_str().expect("name").to_owned()),
            );
            match page["next_cursor"].as_str() {
                Some(c) => uri = format!("/api/v1/tenants/a/apps?limit=2&cursor={c}"),
                None => break,
            }
        }
        assert_eq!(
            names,
            ["app-0", "app-1", "app-2", "app-3", "app-4", "hello"]
        );
        let page = send(
            &fx.app,
            &token,
            "GET",
            "/api/v1/tenants/a/audit?limit=3&action=app.deploy",
            None,
        )
        .await
        .json();
        let items = page["items"].as_array().expect("items");
        assert_eq!(items.len(), 3);
        assert!(
            items
                .iter()
                .all(|e| e["action"] == "app.deploy" && e["tenant_id"].is_i64())
        );
        let cursor = page["next_cursor"].as_str().expect("more pages");
        let next = send(
            &fx.app,
            &token,
            "GET",
            &format!("/api/v1/tenants/a/audit?limit=3&action=app.deploy&cursor={cursor}"),
            None,
        )
        .await
        .json();
        let ids = |v: &Value| -> Vec<i64> {
            v["items"]
                .as_array()
                .expect("items")
                .iter()
                .map(|e| e["id"].as_i64().expect("id"))
                .collect()
        };
        assert!(
            ids(&next)
                .iter()
                .all(|id| ids(&page).iter().all(|p| id < p))
        );
        // No entry of tenant b leaks into a's log.
        let b_entries = send(&fx.app, &token, "GET", "/api/v1/tenants/b/audit", None).await;
        assert_eq!(b_entries.status, StatusCode::NOT_FOUND);
    }
}

#[tokio::test]
async fn the_last_owner_cannot_leave_or_be_demoted_and_tokens_never_show_secrets() {
    for db in TestDatabase::all().await.expect("databases") {
        let fx = fixture(db).await;
        let token = Who::Token(owner_token(&fx).await);
        let (owner, _) = user_principal(&fx.app, "owner-a@example.org").await;
        let uri = format!("/api/v1/tenants/a/members/{}", owner.0);
        let reply = send(&fx.app, &token, "DELETE", &uri, None).await;
        assert_eq!(reply.status, StatusCode::CONFLICT, "{}", reply.text());
        assert_eq!(reply.error_code(), "last_owner");
        let reply = send(
            &fx.app,
            &token,
            "PATCH",
            &uri,
            Some(json!({"role": "admin"})),
        )
        .await;
        assert_eq!(reply.error_code(), "last_owner");
        let tokens = send(&fx.app, &token, "GET", "/api/v1/tenants/a/tokens", None).await;
        assert_eq!(tokens.status, StatusCode::OK);
        assert!(!tokens.text().contains("tsr_"), "{}", tokens.text());
        assert!(!tokens.text().contains("sha256"), "{}", tokens.text());
        // A person creates a token; it is shown once and works in its tenant only.
        let (_, person) = user_principal(&fx.app, "author-a@example.org").await;
        let created = send(
            &fx.app,
            &Who::User(person),
            "POST",
            "/api/v1/tenants/a/tokens",
            Some(json!({"role": "owner"})),
        )
        .await;
        assert_eq!(
            created.error_code(),
            "validation_failed",
            "role above one's own"
        );
        let reply = send(&fx.app, &token, "GET", "/api/v1/tenants/b", None).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND);
    }
}

#[tokio::test]
async fn the_openapi_document_names_the_bearer_scheme_and_the_error_shape() {
    let app = TestApp::new().await;
    let reply = app.get("/api/v1/openapi.json").await;
    assert_eq!(reply.status, StatusCode::OK);
    let doc = reply.json();
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    assert!(doc["components"]["schemas"]["ErrorBody"].is_object());
    let get_app = &doc["paths"]["/api/v1/tenants/{tenant}/apps/{app}"]["get"];
    assert!(get_app["responses"]["404"].is_object(), "{get_app}");
    assert!(get_app["security"].is_array());
}

/// Identity providers through the API: only superadmins, the body checked like the CLI's
/// provider file, the secret sealed and never returned.
#[tokio::test]
async fn identity_providers_are_set_by_superadmins_and_keep_their_secret() {
    let fx = fixture(TestDatabase::sqlite().expect("sqlite")).await;
    let superadmin = fx
        .actors
        .iter()
        .find(|a| a.superadmin)
        .expect("superadmin")
        .who
        .clone();
    let owner = Who::Token(owner_token(&fx).await);
    let uri = "/api/v1/tenants/a/identity-providers/sso";
    let good = json!({
        "kind": "oidc",
        "display_name": "Company SSO",
        "issuer": "https://sso.example.org",
        "client_id": "tessera",
        "client_secret": "very-secret-value",
        "groups": [{"group": "staff", "role": "author", "teams": ["analysts"]}]
    });
    // A tenant owner may not point the server at a host of their choosing.
    let refused = send(&fx.app, &owner, "PUT", uri, Some(good.clone())).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.text());
    for (body, says) in [
        (json!(["not", "an", "object"]), "JSON object"),
        (
            json!({"kind": "kerberos", "display_name": "x"}),
            "kind must be",
        ),
        (
            json!({"kind": "oidc", "display_name": "x", "issuer": null}),
            "cannot be read",
        ),
        (
            json!({"kind": "oidc", "display_name": "x", "issuer": "https://i", "client_id": "c",
                   "client_secret": "s", "colour": "blue"}),
            "colour",
        ),
        (
            json!({"kind": "oidc", "display_name": "x", "issuer": "https://i", "client_id": "c",
                   "client_secret": "s", "groups": [{"group": "g", "role": "owner"}]}),
            "owner role",
        ),
    ] {
        let reply = send(&fx.app, &superadmin, "PUT", uri, Some(body.clone())).await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{body}: {}",
            reply.text()
        );
        assert_eq!(reply.error_code(), "validation_failed", "{body}");
        assert!(reply.text().contains(says), "{body}: {}", reply.text());
    }
    let set = send(&fx.app, &superadmin, "PUT", uri, Some(good)).await;
    assert_eq!(set.status, StatusCode::OK, "{}", set.text());
    assert_eq!(
        set.json(),
        json!({"slug": "sso", "kind": "oidc", "display_name": "Company SSO",
               "location": "https://sso.example.org", "groups": ["staff"]})
    );
    let list = send(
        &fx.app,
        &superadmin,
        "GET",
        "/api/v1/tenants/a/identity-providers",
        None,
    )
    .await;
    assert_eq!(list.json().as_array().map(Vec::len), Some(1));
    let store = &fx.app.state.store;
    let tenant = store
        .tenant_by_slug(&Slug::parse("a").expect("slug"))
        .await
        .expect("query")
        .expect("tenant a");
    let stored = store
        .identity_providers(tenant.id)
        .await
        .expect("providers");
    let everything = format!("{} {:?}", list.text(), stored);
    assert!(!everything.contains("very-secret-value"), "{everything}");
    // The sign-in page offers it.
    let page = fx.app.get("/login?tenant=a").await;
    assert!(page.text().contains("Company SSO"), "{}", page.text());
    for _ in 0..2 {
        let gone = send(&fx.app, &superadmin, "DELETE", uri, None).await;
        assert_eq!(gone.status, StatusCode::NO_CONTENT, "{}", gone.text());
    }
    let page = fx.app.get("/login?tenant=a").await;
    assert!(!page.text().contains("Company SSO"), "{}", page.text());
}

/// The git remote beside the REST API: fetching an app's source needs the right to deploy
/// it (admins, or authors who are its collaborators), pushing likewise, and pushing a new
/// app name needs the right to create apps (authors). Only tokens (Basic password) are
/// accepted; a session alone gets the 401 challenge. Another tenant's repository is the
/// 404 of a missing one. A push request for an app nobody created leaves no repository.
#[tokio::test]
async fn git_fetch_and_push_answer_every_principal_as_the_policy_says() {
    use base64::Engine;
    use platform::tenancy::Role::{Admin, Author, Viewer};
    for db in TestDatabase::all().await.expect("databases") {
        let backend = db.backend;
        let fx = fixture(db).await;
        let mut failures = Vec::new();
        // (service, app, needs): the existing app "hello" is tenant-visible, the author
        // is not its collaborator.
        let rows = [
            ("git-upload-pack", "hello", Admin),
            ("git-receive-pack", "hello", Admin),
            ("git-receive-pack", "ghost", Author),
        ];
        for (service, app_name, needs) in rows {
            for actor in &fx.actors {
                for (own, tenant) in [(true, &fx.tenants[0]), (false, &fx.tenants[1])] {
                    let uri = format!(
                        "/git/{}/{app_name}.git/info/refs?service={service}",
                        tenant.slug
                    );
                    let mut request = Request::builder().method(Method::GET).uri(&uri);
                    if let Who::Token(token) = &actor.who {
                        let basic = base64::engine::general_purpose::STANDARD
                            .encode(format!("git:{token}"));
                        request = request.header(header::AUTHORIZATION, format!("Basic {basic}"));
                    }
                    let mut request = request.body(Body::empty()).expect("request");
                    if let Who::User(principal) = &actor.who {
                        request.extensions_mut().insert(principal.clone());
                    }
                    let reply = fx.app.request(request).await;
                    let want = match (&actor.who, actor.role) {
                        (Who::Token(_), _) if !own => 404,
                        (Who::Token(_), Some(role)) if role >= needs => 200,
                        // A viewer of the tenant-visible app, or an author: they see the
                        // app, so the refusal says why.
                        (Who::Token(_), Some(role)) if role >= Viewer => 403,
                        (Who::Token(_), _) => 404,
                        _ => 401,
                    };
                    let got = reply.status.as_u16();
                    if got != want {
                        failures.push(format!(
                            "GET {uri} as {}: expected {want}, got {got}: {}",
                            actor.name,
                            reply.text()
                        ));
                    }
                }
            }
        }
        let git_root = fx.app.state.config.data_dir.join("git");
        for tenant in ["a", "b"] {
            let ghost = git_root.join(tenant).join("ghost.git");
            // The background cleanup runs as git http-backend exits.
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
            while ghost.exists() && std::time::Instant::now() < deadline {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            if ghost.exists() {
                failures.push(format!(
                    "{} is left for an app nobody created",
                    ghost.display()
                ));
            }
        }
        assert!(
            failures.is_empty(),
            "{backend:?}: {} wrong:\n{}",
            failures.len(),
            failures.join("\n")
        );
    }
}
