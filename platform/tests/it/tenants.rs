//! A tenant's life cycle through the real router, on SQLite and PostgreSQL: a superadmin
//! suspends a tenant (every route of it answers 503, on another replica after one poll of
//! the change counter; resuming restores it) and deletes one (every row, file and cache
//! entry of it goes; nothing of another tenant is touched; its users stay).

use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use platform::admin;
use platform::cache::CacheScope;
use platform::ids::{AppId, Slug, TenantId, UserId};
use platform::policy::{Principal, UserPrincipal};
use platform::store::Store;
use platform::store::testing::TestDatabase;
use platform::tenancy::{Email, Role};
use serde_json::{Value, json};

use crate::sessions::op;
use crate::support::{Reply, TestApp};

/// A request as `who` (a signed-in person's principal, or a token), JSON in and out.
async fn call(app: &TestApp, who: &Who, method: Method, uri: &str, body: Option<Value>) -> Reply {
    let mut request = Request::builder().method(method).uri(uri);
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
    if let Who::Person(principal) = who {
        request.extensions_mut().insert(principal.clone());
    }
    app.request(request).await
}

enum Who {
    Person(Principal),
    Token(String),
    Nobody,
}

async fn user_id(store: &Store, email: &str) -> UserId {
    store
        .user_by_email(&Email::parse(email).expect("email"))
        .await
        .expect("q")
        .expect("user")
        .id
}

async fn person(store: &Store, email: &str) -> Who {
    let id = user_id(store, email).await;
    let user = store.user(id).await.expect("q").expect("user");
    Who::Person(Principal::User(UserPrincipal {
        id,
        superadmin: user.superadmin,
        memberships: store.memberships_of(id).await.expect("memberships"),
    }))
}

async fn tenant_id(store: &Store, slug: &str) -> TenantId {
    store
        .tenant_by_slug(&Slug::parse(slug).expect("slug"))
        .await
        .expect("q")
        .expect("tenant")
        .id
}

async fn app_id(store: &Store, tenant: TenantId, name: &str) -> AppId {
    store
        .app_id(tenant, &Slug::parse(name).expect("slug"))
        .await
        .expect("q")
        .expect("app")
}

/// Tenants `b` and `c`, each with: app `hello` (public, two versions, an asset), a
/// setting and a secret, an owner and a viewer (the viewer in team `ops`, collaborator
/// and granted the app, the team granted too), a token of the owner, an invitation, an
/// identity provider, a data source granted to the app, a cache entry, a minute of usage,
/// a repository and a data folder on disk. `root` is a superadmin; `both` belongs to both tenants.
/// Returns the owner tokens of `b` and `c`.
async fn two_tenants(app: &TestApp) -> (String, String) {
    let store = &app.state.store;
    admin::create_user(store, "root@example.org", None, true, &op())
        .await
        .expect("root");
    admin::create_user(store, "both@example.org", None, false, &op())
        .await
        .expect("both");
    let root = person(store, "root@example.org").await;
    let mut tokens = Vec::new();
    for t in ["b", "c"] {
        app.deploy(t, "hello", "hello.wasm").await;
        app.deploy_with_assets(
            t,
            "hello",
            "hello.wasm",
            vec![platform::assets::AssetFile {
                path: "site.css".into(),
                bytes: b"body { margin: 0 }".to_vec(),
            }],
        )
        .await
        .expect("second version");
        admin::set_visibility(store, &format!("{t}/hello"), "public", &op())
            .await
            .expect("public");
        let tenant = tenant_id(store, t).await;
        let hello = app_id(store, tenant, "hello").await;
        for (email, role) in [
            (format!("owner-{t}@example.org"), "owner"),
            (format!("viewer-{t}@example.org"), "viewer"),
            ("both@example.org".to_owned(), "viewer"),
        ] {
            if !email.starts_with("both") {
                admin::create_user(store, &email, None, false, &op())
                    .await
                    .expect("user");
            }
            admin::grant(store, &email, t, role, &op())
                .await
                .expect("grant");
        }
        let viewer = user_id(store, &format!("viewer-{t}@example.org")).await;
        let owner = user_id(store, &format!("owner-{t}@example.org")).await;
        let team = store.create_team(tenant, "ops", &op()).await.expect("team");
        store
            .add_team_member(tenant, team, viewer, &op())
            .await
            .expect("team member");
        let base = format!("/api/v1/tenants/{t}");
        let sources = app.state.config.sources_dir().join(t);
        std::fs::create_dir_all(&sources).expect("sources folder");
        std::fs::write(sources.join("shop.db"), b"").expect("sqlite file");
        let writes: Vec<(Method, String, Option<Value>)> = vec![
            (
                Method::PUT,
                format!("{base}/apps/hello/settings/API_KEY"),
                Some(json!({"value": "s3cret", "secret": true})),
            ),
            (
                Method::PUT,
                format!("{base}/apps/hello/settings/REGION"),
                Some(json!({"value": "eu"})),
            ),
            (
                Method::PUT,
                format!("{base}/apps/hello/collaborators/{}", viewer.0),
                None,
            ),
            (
                Method::PUT,
                format!("{base}/apps/hello/grants/users/{}", viewer.0),
                None,
            ),
            (
                Method::PUT,
                format!("{base}/apps/hello/grants/teams/{}", team.0),
                None,
            ),
            (
                Method::POST,
                format!("{base}/invitations"),
                Some(json!({"role": "viewer", "note": "welcome"})),
            ),
            (
                Method::PUT,
                format!("{base}/identity-providers/sso"),
                Some(json!({
                    "kind": "oidc",
                    "display_name": "SSO",
                    "issuer": "https://sso.example.org",
                    "client_id": "tessera",
                    "client_secret": "s3cret",
                    "groups": [{"group": "staff", "role": "viewer"}]
                })),
            ),
            (
                Method::PUT,
                format!("{base}/data-sources/shop"),
                Some(json!({"kind": "sqlite", "connection": {"path": "shop.db"}})),
            ),
            (
                Method::PUT,
                format!("{base}/data-sources/shop/grants/hello"),
                None,
            ),
        ];
        for (method, uri, body) in writes {
            let reply = call(app, &root, method.clone(), &uri, body).await;
            assert!(
                reply.status.is_success(),
                "{method} {uri}: {} {}",
                reply.status,
                reply.text()
            );
        }
        let issued = platform::auth::token::issue(store, tenant, owner, Role::Owner, None, &op())
            .await
            .expect("token");
        tokens.push(issued.token);
        // A `tessera login` the owner approved (and nobody collected yet).
        let started = platform::cli_sign_in::start(&app.state, "laptop", Some(t), None)
            .await
            .expect("sign-in");
        let owner_principal = platform::policy::Principal::User(platform::policy::UserPrincipal {
            id: owner,
            superadmin: false,
            memberships: store.memberships_of(owner).await.expect("memberships"),
        });
        platform::cli_sign_in::approve(&app.state, &owner_principal, &started.user_code, t, &op())
            .await
            .expect("approve");
        app.state
            .cache
            .set(
                CacheScope { tenant, app: hello },
                "answer",
                b"42",
                Duration::from_secs(600),
            )
            .await
            .expect("cache entry");
        // A minute of usage, as a replica's flush writes it.
        let mut counts = platform::usage::Counts::default();
        counts.count_callback("ok", Duration::from_millis(3));
        app.state
            .store
            .add_app_usage(
                &[platform::store::UsageRow {
                    tenant,
                    app: hello,
                    minute: app.state.clock.now_millis() / 60_000 * 60_000,
                    counts,
                }],
                0,
            )
            .await
            .expect("usage");
        let repo = app
            .state
            .config
            .data_dir
            .join("git")
            .join(t)
            .join("hello.git");
        std::fs::create_dir_all(&repo).expect("repository");
        std::fs::write(repo.join("HEAD"), b"ref: refs/heads/main\n").expect("HEAD");
        let folder =
            app.state
                .config
                .app_data_dir()
                .join(format!("{}-{}", tenant.0, "ab".repeat(32)));
        std::fs::create_dir_all(&folder).expect("data folder");
        std::fs::write(folder.join("rows.csv"), b"a,b\n").expect("data file");
    }
    let c = tokens.pop().expect("c's token");
    let b = tokens.pop().expect("b's token");
    (b, c)
}

#[tokio::test]
async fn a_suspended_tenant_answers_503_everywhere_on_every_replica_and_resumes() {
    for db in TestDatabase::all().await.expect("databases") {
        let backend = db.backend;
        let app = TestApp::on(db).await;
        let (b_token, c_token) = two_tenants(&app).await;
        let store = &app.state.store;
        let root = person(store, "root@example.org").await;
        let owner_b = person(store, "owner-b@example.org").await;
        let other = TestApp::replica_of(&app).await;
        // The other replica has the tenant's state cached before the suspension.
        assert_eq!(
            other.get("/apps/b/hello/_dash-layout").await.status,
            StatusCode::OK
        );

        // Only a superadmin suspends; the tenant's owner and tokens may not.
        for who in [&owner_b, &Who::Token(b_token.clone())] {
            let reply = call(&app, who, Method::POST, "/api/v1/tenants/b/suspend", None).await;
            assert_eq!(
                reply.status,
                StatusCode::FORBIDDEN,
                "{backend:?} {}",
                reply.text()
            );
        }
        let reply = call(
            &app,
            &Who::Nobody,
            Method::POST,
            "/api/v1/tenants/b/suspend",
            None,
        )
        .await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
        let reply = call(&app, &root, Method::POST, "/api/v1/tenants/b/suspend", None).await;
        assert_eq!(reply.status, StatusCode::OK, "{backend:?} {}", reply.text());
        assert!(reply.json()["suspended_at"].is_i64(), "{}", reply.text());

        let suspended = |reply: &Reply, what: &str| {
            assert_eq!(
                reply.status,
                StatusCode::SERVICE_UNAVAILABLE,
                "{backend:?} {what}: {}",
                reply.text()
            );
        };
        // The other replica sees it after one poll of the change counter.
        other.state.changes.poll().await.expect("poll");
        for replica in [&app, &other] {
            let layout = replica.get("/apps/b/hello/_dash-layout").await;
            suspended(&layout, "layout");
            assert_eq!(layout.error_code(), "tenant_suspended");
            let page = replica
                .request(
                    Request::get("/apps/b/hello/")
                        .header(header::ACCEPT, "text/html")
                        .body(Body::empty())
                        .expect("request"),
                )
                .await;
            suspended(&page, "index page");
            assert!(
                page.text().contains("This tenant is suspended"),
                "{}",
                page.text()
            );
            let update = replica
                .post_json("/apps/b/hello/_dash-update-component", "{}")
                .await;
            suspended(&update, "callback");
            let socket = replica
                .request(
                    Request::get("/apps/b/hello/_dash-ws-callback")
                        .header(header::CONNECTION, "upgrade")
                        .header(header::UPGRADE, "websocket")
                        .header(header::SEC_WEBSOCKET_VERSION, "13")
                        .header(header::SEC_WEBSOCKET_KEY, "dGhlIHNhbXBsZSBub25jZQ==")
                        .body(Body::empty())
                        .expect("request"),
                )
                .await;
            suspended(&socket, "websocket upgrade");
            // The other tenant runs on.
            assert_eq!(
                replica.get("/apps/c/hello/_dash-layout").await.status,
                StatusCode::OK
            );
        }
        // Its members' tokens, on the API and on git; its members' sessions on its pages.
        let api = app.get_with_token("/api/v1/tenants/b/apps", &b_token).await;
        suspended(&api, "token on the API");
        assert_eq!(api.error_code(), "tenant_suspended");
        let push = app
            .get_with_token(
                "/git/b/hello.git/info/refs?service=git-receive-pack",
                &b_token,
            )
            .await;
        suspended(&push, "git push");
        let apps = call(&app, &owner_b, Method::GET, "/api/v1/tenants/b/apps", None).await;
        suspended(&apps, "a member's session on the API");
        assert_eq!(
            app.get_with_token("/api/v1/tenants/c/apps", &c_token)
                .await
                .status,
            StatusCode::OK
        );
        // The superadmin still sees it; the home page's gallery no longer lists its apps.
        let seen = call(&app, &root, Method::GET, "/api/v1/tenants/b", None).await;
        assert_eq!(seen.status, StatusCode::OK, "{}", seen.text());

        let reply = call(&app, &root, Method::POST, "/api/v1/tenants/b/resume", None).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
        assert!(reply.json()["suspended_at"].is_null());
        other.state.changes.poll().await.expect("poll");
        for replica in [&app, &other] {
            assert_eq!(
                replica.get("/apps/b/hello/_dash-layout").await.status,
                StatusCode::OK,
                "{backend:?}"
            );
        }
        assert_eq!(
            app.get_with_token("/api/v1/tenants/b/apps", &b_token)
                .await
                .status,
            StatusCode::OK
        );
        let audit = store.platform_audit_entries(None, 50).await.expect("audit");
        for action in ["tenant.suspend", "tenant.resume"] {
            assert_eq!(
                audit.iter().filter(|e| e.action == action).count(),
                1,
                "{backend:?} {action}"
            );
        }
    }
}

/// Every table that holds a tenant's rows, with the query counting one tenant's (`$1`).
const TENANT_TABLES: [(&str, &str); 23] = [
    ("apps", "tenant_id = $1"),
    (
        "app_versions",
        "app_id in (select id from apps where tenant_id = $1)",
    ),
    (
        "app_assets",
        "version_id in (select v.id from app_versions v join apps a on a.id = v.app_id \
         where a.tenant_id = $1)",
    ),
    ("app_version_data", "tenant_id = $1"),
    ("app_data_blobs", "tenant_id = $1"),
    ("app_components", "tenant_id = $1"),
    (
        "app_settings",
        "app_id in (select id from apps where tenant_id = $1)",
    ),
    (
        "data_source_grants",
        "source_id in (select id from data_sources where tenant_id = $1)",
    ),
    ("app_user_grants", "tenant_id = $1"),
    ("app_team_grants", "tenant_id = $1"),
    ("app_collaborators", "tenant_id = $1"),
    ("data_sources", "tenant_id = $1"),
    ("teams", "tenant_id = $1"),
    ("team_members", "tenant_id = $1"),
    ("provider_memberships", "tenant_id = $1"),
    ("provider_team_members", "tenant_id = $1"),
    ("identity_providers", "tenant_id = $1"),
    (
        "external_identities",
        "provider_id in (select id from identity_providers where tenant_id = $1)",
    ),
    ("cli_sign_ins", "tenant_id = $1"),
    ("api_tokens", "tenant_id = $1"),
    ("invitations", "tenant_id = $1"),
    ("memberships", "tenant_id = $1"),
    ("app_usage", "tenant_id = $1"),
];

/// (table, rows of `tenant`, rows in all) for every tenant table, and the users.
async fn counts(pool: &sqlx::AnyPool, tenant: TenantId) -> Vec<(&'static str, i64, i64)> {
    let mut out = Vec::new();
    for (table, filter) in TENANT_TABLES {
        let own: i64 = sqlx::query_scalar(&format!("select count(*) from {table} where {filter}"))
            .bind(tenant.0)
            .fetch_one(pool)
            .await
            .expect("count");
        let all: i64 = sqlx::query_scalar(&format!("select count(*) from {table}"))
            .fetch_one(pool)
            .await
            .expect("count");
        out.push((table, own, all));
    }
    let users: i64 = sqlx::query_scalar("select count(*) from users")
        .fetch_one(pool)
        .await
        .expect("count");
    out.push(("users", users, users));
    out
}

#[tokio::test]
async fn deleting_a_tenant_leaves_nothing_of_it_and_touches_nothing_of_another() {
    for db in TestDatabase::all().await.expect("databases") {
        let backend = db.backend;
        let app = TestApp::on(db).await;
        let (b_token, c_token) = two_tenants(&app).await;
        let store = &app.state.store;
        sqlx::any::install_default_drivers();
        let pool = sqlx::AnyPool::connect(&app.state.config.database_url)
            .await
            .expect("connect");
        let (b, c) = (tenant_id(store, "b").await, tenant_id(store, "c").await);
        let (b_hello, c_hello) = (
            app_id(store, b, "hello").await,
            app_id(store, c, "hello").await,
        );
        let root = person(store, "root@example.org").await;
        let b_before = counts(&pool, b).await;
        let c_before = counts(&pool, c).await;
        for (table, own, _) in &b_before {
            if ![
                "app_version_data",
                "app_data_blobs",
                "provider_memberships",
                "provider_team_members",
                "external_identities",
            ]
            .contains(table)
            {
                assert!(*own > 0, "{backend:?}: the fixture has no {table} row of b");
            }
        }

        // The slug typed again, by a superadmin only.
        let owner_b = person(store, "owner-b@example.org").await;
        let reply = call(
            &app,
            &owner_b,
            Method::DELETE,
            "/api/v1/tenants/b?confirm=b",
            None,
        )
        .await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", reply.text());
        for uri in ["/api/v1/tenants/b", "/api/v1/tenants/b?confirm=c"] {
            let reply = call(&app, &root, Method::DELETE, uri, None).await;
            assert_eq!(
                reply.status,
                StatusCode::BAD_REQUEST,
                "{uri}: {}",
                reply.text()
            );
        }
        assert_eq!(
            counts(&pool, b).await,
            b_before,
            "{backend:?}: refused, yet changed"
        );

        let reply = call(
            &app,
            &root,
            Method::DELETE,
            "/api/v1/tenants/b?confirm=b",
            None,
        )
        .await;
        assert_eq!(reply.status, StatusCode::OK, "{backend:?} {}", reply.text());
        let report = reply.json();
        assert_eq!(report["apps"], 1, "{report}");
        assert_eq!(report["versions"], 2, "{report}");
        assert_eq!(report["memberships"], 3, "{report}");
        assert_eq!(report["data_folders"], 1, "{report}");
        assert_eq!(report["cache_entries"], 1, "{report}");

        // Every row left in a tenant table is c's, and c has every row it had; the users
        // (b's own, and the one in both tenants) stay.
        let c_after = counts(&pool, c).await;
        for ((table, own_before, _), (_, own_after, all_after)) in c_before.iter().zip(&c_after) {
            assert_eq!(own_before, own_after, "{backend:?}: c's {table} changed");
            if *table != "users" {
                assert_eq!(
                    own_after, all_after,
                    "{backend:?}: {table} keeps rows of the deleted tenant"
                );
            }
        }
        assert_eq!(
            c_after.last(),
            b_before.last(),
            "{backend:?}: users were removed"
        );
        // Files and cache entries: b's are gone, c's are there.
        let git = app.state.config.data_dir.join("git");
        assert!(!git.join("b").exists(), "b's repositories are left");
        assert!(git.join("c").join("hello.git").join("HEAD").exists());
        let folders: Vec<String> = std::fs::read_dir(app.state.config.app_data_dir())
            .expect("appdata")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            folders,
            [format!("{}-{}", c.0, "ab".repeat(32))],
            "{backend:?}"
        );
        assert_eq!(
            app.state
                .cache
                .get(
                    CacheScope {
                        tenant: b,
                        app: b_hello
                    },
                    "answer"
                )
                .await
                .expect("get"),
            None
        );
        assert_eq!(
            app.state
                .cache
                .get(
                    CacheScope {
                        tenant: c,
                        app: c_hello
                    },
                    "answer"
                )
                .await
                .expect("get"),
            Some(b"42".to_vec())
        );

        // Nothing answers for b; its slug stays taken; c runs on; the platform's log has it.
        assert_eq!(
            app.get("/apps/b/hello/_dash-layout").await.status,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            app.get("/apps/c/hello/_dash-layout").await.status,
            StatusCode::OK
        );
        let gone = app.get_with_token("/api/v1/tenants/b/apps", &b_token).await;
        assert!(
            gone.status.is_client_error() || gone.status == StatusCode::SERVICE_UNAVAILABLE,
            "{}",
            gone.text()
        );
        assert_eq!(
            app.get_with_token("/api/v1/tenants/c/apps", &c_token)
                .await
                .status,
            StatusCode::OK
        );
        let reply = call(&app, &root, Method::GET, "/api/v1/tenants/b", None).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{}", reply.text());
        let reply = call(
            &app,
            &root,
            Method::POST,
            "/api/v1/tenants",
            Some(json!({"slug": "b"})),
        )
        .await;
        assert_eq!(reply.status, StatusCode::CONFLICT, "{}", reply.text());
        let audit = store
            .platform_audit_entries(None, 200)
            .await
            .expect("audit");
        let deleted: Vec<_> = audit
            .iter()
            .filter(|e| e.action == "tenant.delete")
            .collect();
        assert_eq!(deleted.len(), 1, "{backend:?}");
        assert_eq!(deleted[0].target, "tenant:b");
        pool.close().await;
    }
}
