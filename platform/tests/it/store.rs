//! The store's tenancy suite, run on SQLite always and on PostgreSQL when
//! `TESSERA_TEST_POSTGRES_URL` is set (each test on fresh databases of its own).

use platform::auth::{self, token};
use platform::ids::{Slug, UserId};
use platform::store::testing::TestDatabase;
use platform::store::{Change, Error, NewUser, NewVersion, Store};
use platform::tenancy::{Email, Role, Visibility};

const CLI: Change<'static> = Change {
    actor: "test",
    remote_addr: Some("127.0.0.1"),
    at: 1_000,
};

/// Every configured backend, each with a fresh migrated store.
async fn stores() -> Vec<(TestDatabase, Store)> {
    let mut out = Vec::new();
    for db in TestDatabase::all().await.expect("test databases") {
        let store = db.store().await.expect("store connects");
        eprintln!("backend: {:?}", db.backend);
        out.push((db, store));
    }
    out
}

fn slug(s: &str) -> Slug {
    Slug::parse(s).expect("slug")
}

fn email(s: &str) -> Email {
    Email::parse(s).expect("email")
}

async fn user(store: &Store, address: &str) -> UserId {
    store
        .create_user(
            &NewUser {
                email: &email(address),
                password_hash: None,
                password_must_change: false,
                superadmin: false,
            },
            &CLI,
        )
        .await
        .expect("user created")
        .id
}

async fn publish(store: &Store, tenant: &str, app: &str) {
    store
        .publish_version(
            &slug(tenant),
            &slug(app),
            NewVersion {
                visibility: platform::tenancy::Visibility::Public,
                component: b"c",
                title: "T",
                source: "test",
            },
            1,
        )
        .await
        .expect("published");
}

#[tokio::test]
async fn create_tenant_with_owner_makes_the_membership_and_audits_both() {
    for (_db, store) in stores().await {
        let alice = user(&store, "alice@example.org").await;
        let tenant = store
            .create_tenant(&slug("acme"), "Acme", Some(alice), &CLI)
            .await
            .expect("tenant");
        assert_eq!(
            (tenant.slug.as_str(), tenant.name.as_str()),
            ("acme", "Acme")
        );
        assert_eq!(tenant.quotas.max_apps, 100);
        assert_eq!(tenant.quotas.callback_deadline_ms, 5_000);
        // The migrations' defaults are the ones the code assumes for a tenant not yet made.
        assert_eq!(tenant.quotas, platform::store::Quotas::DEFAULT);
        assert_eq!(
            store.membership(tenant.id, alice).await.expect("query"),
            Some(Role::Owner)
        );
        let audit = store
            .audit_entries(tenant.id, None, 50)
            .await
            .expect("audit");
        let actions: Vec<_> = audit.iter().map(|e| e.action.as_str()).collect();
        assert_eq!(actions, ["membership.grant", "tenant.create"]);
        assert_eq!(audit[1].actor, "test");
        assert_eq!(audit[1].remote_addr.as_deref(), Some("127.0.0.1"));
        assert_eq!(audit[1].target, "tenant:acme");
        assert_eq!(audit[1].detail["name"], "Acme");
    }
}

#[tokio::test]
async fn duplicate_tenant_slug_is_a_conflict_and_changes_nothing() {
    for (_db, store) in stores().await {
        let first = store
            .create_tenant(&slug("acme"), "Acme", None, &CLI)
            .await
            .expect("first");
        let err = store
            .create_tenant(&slug("acme"), "Other", None, &CLI)
            .await
            .expect_err("duplicate refused");
        assert!(
            matches!(&err, Error::Conflict { what: "tenant", value } if value == "acme"),
            "{err:?}"
        );
        assert_eq!(err.to_string(), "tenant \"acme\" already exists");
        let still = store
            .tenant_by_slug(&slug("acme"))
            .await
            .expect("query")
            .expect("kept");
        assert_eq!((still.id, still.name.as_str()), (first.id, "Acme"));
        let audit = store
            .audit_entries(first.id, None, 50)
            .await
            .expect("audit");
        assert_eq!(audit.len(), 1, "the refused create left no audit row");
    }
}

#[tokio::test]
async fn a_failed_owner_step_leaves_no_tenant_behind() {
    for (_db, store) in stores().await {
        // The owner does not exist: the membership insert fails after the tenant insert.
        let err = store
            .create_tenant(&slug("acme"), "Acme", Some(UserId(999_999)), &CLI)
            .await
            .expect_err("unknown owner refused");
        assert!(matches!(err, Error::Database(_)), "{err:?}");
        assert_eq!(
            store.tenant_by_slug(&slug("acme")).await.expect("query"),
            None
        );
        assert!(
            store
                .platform_audit_entries(None, 50)
                .await
                .expect("audit")
                .is_empty(),
            "no audit row of the rolled-back change"
        );
        // The slug is still free.
        store
            .create_tenant(&slug("acme"), "Acme", None, &CLI)
            .await
            .expect("slug still free");
    }
}

#[tokio::test]
async fn emails_are_unique_whatever_their_case() {
    for (_db, store) in stores().await {
        user(&store, "Alice@Example.org").await;
        let err = store
            .create_user(
                &NewUser {
                    email: &email("ALICE@example.ORG"),
                    password_hash: Some("x"),
                    password_must_change: false,
                    superadmin: true,
                },
                &CLI,
            )
            .await
            .expect_err("duplicate refused");
        assert!(
            matches!(err, Error::Conflict { what: "user", .. }),
            "{err:?}"
        );
        let found = store
            .user_by_email(&email("alice@EXAMPLE.org"))
            .await
            .expect("query")
            .expect("found");
        assert_eq!(found.email, "alice@example.org");
        assert!(!found.superadmin && !found.has_password);
        assert_eq!(store.user_count().await.expect("count"), 1);
    }
}

#[tokio::test]
async fn only_the_very_first_user_is_created_by_create_first_user() {
    for (_db, store) in stores().await {
        let admin = email("admin@localhost");
        let new = NewUser {
            email: &admin,
            password_hash: Some("$argon2id$stub"),
            password_must_change: true,
            superadmin: true,
        };
        let first = store
            .create_first_user(&new, &CLI)
            .await
            .expect("query")
            .expect("created");
        assert!(first.superadmin && first.password_must_change && first.has_password);
        let other = email("other@localhost");
        let again = NewUser {
            email: &other,
            ..new
        };
        assert_eq!(
            store.create_first_user(&again, &CLI).await.expect("query"),
            None
        );
        assert_eq!(store.user_count().await.expect("count"), 1);
    }
}

#[tokio::test]
async fn grant_role_replaces_the_role_and_reports_the_previous_one() {
    for (_db, store) in stores().await {
        let bob = user(&store, "bob@example.org").await;
        let a = store
            .create_tenant(&slug("a"), "A", None, &CLI)
            .await
            .expect("a");
        let b = store
            .create_tenant(&slug("b"), "B", None, &CLI)
            .await
            .expect("b");
        assert_eq!(
            store
                .grant_role(a.id, bob, Role::Viewer, &CLI)
                .await
                .expect("grant"),
            None
        );
        assert_eq!(
            store
                .grant_role(a.id, bob, Role::Admin, &CLI)
                .await
                .expect("grant"),
            Some(Role::Viewer)
        );
        store
            .grant_role(b.id, bob, Role::Author, &CLI)
            .await
            .expect("grant");
        assert_eq!(
            store.memberships_of(bob).await.expect("query"),
            vec![(a.id, Role::Admin), (b.id, Role::Author)]
        );
        let a_audit = store.audit_entries(a.id, None, 50).await.expect("audit");
        assert!(
            a_audit.iter().all(|e| e.tenant_id == Some(a.id)),
            "{a_audit:?}"
        );
        assert_eq!(a_audit[0].detail["previous"], "viewer");
    }
}

#[tokio::test]
async fn teams_hold_only_members_of_their_own_tenant() {
    for (_db, store) in stores().await {
        let carol = user(&store, "carol@example.org").await;
        let dave = user(&store, "dave@example.org").await;
        let a = store
            .create_tenant(&slug("a"), "A", None, &CLI)
            .await
            .expect("a");
        let b = store
            .create_tenant(&slug("b"), "B", None, &CLI)
            .await
            .expect("b");
        store
            .grant_role(a.id, carol, Role::Viewer, &CLI)
            .await
            .expect("grant");
        store
            .grant_role(b.id, dave, Role::Viewer, &CLI)
            .await
            .expect("grant");
        let analysts = store
            .create_team(a.id, "Analysts", &CLI)
            .await
            .expect("team");
        let err = store
            .create_team(a.id, "Analysts", &CLI)
            .await
            .expect_err("dup");
        assert!(
            matches!(err, Error::Conflict { what: "team", .. }),
            "{err:?}"
        );
        // The same name in another tenant is fine.
        let b_team = store
            .create_team(b.id, "Analysts", &CLI)
            .await
            .expect("team in b");
        assert_eq!(
            store.team_by_name(a.id, "Analysts").await.expect("q"),
            Some(analysts)
        );
        store
            .add_team_member(a.id, analysts, carol, &CLI)
            .await
            .expect("member added");
        let not_member = store.add_team_member(a.id, analysts, dave, &CLI).await;
        assert!(
            matches!(not_member, Err(Error::NotFound { .. })),
            "{not_member:?}"
        );
        let foreign_team = store.add_team_member(a.id, b_team, carol, &CLI).await;
        assert!(
            matches!(foreign_team, Err(Error::NotFound { .. })),
            "{foreign_team:?}"
        );
        assert_eq!(
            store.teams_of(a.id, carol).await.expect("q"),
            vec![analysts]
        );
        assert!(store.teams_of(b.id, carol).await.expect("q").is_empty());
    }
}

#[tokio::test]
async fn app_access_reports_grants_collaborators_and_teams_per_tenant() {
    for (_db, store) in stores().await {
        let (erin, frank, gina) = (
            user(&store, "erin@example.org").await,
            user(&store, "frank@example.org").await,
            user(&store, "gina@example.org").await,
        );
        publish(&store, "a", "report").await;
        publish(&store, "b", "report").await;
        let a = store
            .tenant_by_slug(&slug("a"))
            .await
            .expect("q")
            .expect("a");
        let b = store
            .tenant_by_slug(&slug("b"))
            .await
            .expect("q")
            .expect("b");
        for u in [erin, frank, gina] {
            store
                .grant_role(a.id, u, Role::Viewer, &CLI)
                .await
                .expect("grant");
        }
        let app = store
            .app_id(a.id, &slug("report"))
            .await
            .expect("q")
            .expect("app");
        let b_app = store
            .app_id(b.id, &slug("report"))
            .await
            .expect("q")
            .expect("b app");
        // A's app id does not exist under B.
        let wrong = store
            .set_app_visibility(b.id, app, Visibility::Restricted, &CLI)
            .await;
        assert!(matches!(wrong, Err(Error::NotFound { .. })), "{wrong:?}");
        store
            .set_app_visibility(a.id, app, Visibility::Restricted, &CLI)
            .await
            .expect("visibility");
        let team = store.create_team(a.id, "Ops", &CLI).await.expect("team");
        store
            .add_team_member(a.id, team, gina, &CLI)
            .await
            .expect("member");
        store
            .grant_app_to_user(a.id, app, erin, &CLI)
            .await
            .expect("grant");
        store
            .add_collaborator(a.id, app, frank, &CLI)
            .await
            .expect("collab");
        store
            .grant_app_to_team(a.id, app, team, &CLI)
            .await
            .expect("team grant");
        let facts = |u: Option<UserId>| {
            let store = store.clone();
            async move {
                store
                    .app_access(&slug("a"), &slug("report"), u)
                    .await
                    .expect("query")
                    .expect("app")
            }
        };
        let e = facts(Some(erin)).await;
        assert_eq!(
            (e.visibility, e.granted, e.collaborator),
            (Visibility::Restricted, true, false)
        );
        let f = facts(Some(frank)).await;
        assert_eq!((f.granted, f.collaborator), (false, true));
        let g = facts(Some(gina)).await;
        assert_eq!((g.granted, g.collaborator), (true, false));
        let nobody = facts(None).await;
        assert_eq!((nobody.granted, nobody.collaborator), (false, false));
        assert_eq!((nobody.tenant_id, nobody.app_id), (a.id, app));
        // Nothing granted in A carries over to B's app of the same name.
        let in_b = store
            .app_access(&slug("b"), &slug("report"), Some(erin))
            .await
            .expect("q")
            .expect("b app");
        assert_eq!(
            (in_b.app_id, in_b.granted, in_b.collaborator),
            (b_app, false, false)
        );
        assert_eq!(in_b.visibility, Visibility::Public);
        // Grants need a member of the app's tenant.
        let outsider = user(&store, "outsider@example.org").await;
        let refused = store.grant_app_to_user(a.id, app, outsider, &CLI).await;
        assert!(
            matches!(refused, Err(Error::NotFound { .. })),
            "{refused:?}"
        );
        let refused = store.grant_app_to_user(b.id, app, erin, &CLI).await;
        assert!(
            matches!(refused, Err(Error::NotFound { .. })),
            "{refused:?}"
        );
        assert_eq!(
            store
                .app_access(&slug("a"), &slug("missing"), None)
                .await
                .expect("q"),
            None
        );
    }
}

#[tokio::test]
async fn tokens_authenticate_only_while_valid_and_only_as_much_as_their_user() {
    for (_db, store) in stores().await {
        let hana = user(&store, "hana@example.org").await;
        let a = store
            .create_tenant(&slug("a"), "A", None, &CLI)
            .await
            .expect("a");
        store
            .grant_role(a.id, hana, Role::Admin, &CLI)
            .await
            .expect("grant");
        let issued = token::issue(&store, a.id, hana, Role::Admin, Some(10_000), &CLI)
            .await
            .expect("issued");
        assert!(
            issued
                .token
                .starts_with(&format!("tsr_{}_", issued.public_id))
        );
        let principal = token::authenticate(&store, &issued.token, 2_000)
            .await
            .expect("valid");
        assert_eq!(
            (principal.tenant_id, principal.role, principal.user_id),
            (a.id, Role::Admin, hana)
        );
        let record = store
            .token_by_public_id(&issued.public_id)
            .await
            .expect("q")
            .expect("stored");
        assert_eq!(record.last_used_at, Some(2_000));
        assert!(
            !record.secret_sha256.contains(&issued.token[17..]),
            "only a hash is stored"
        );
        // Used again within the minute: no new write.
        token::authenticate(&store, &issued.token, 3_000)
            .await
            .expect("valid");
        let record = store
            .token_by_public_id(&issued.public_id)
            .await
            .expect("q")
            .expect("t");
        assert_eq!(record.last_used_at, Some(2_000));

        // Demoting the user demotes the token.
        store
            .grant_role(a.id, hana, Role::Viewer, &CLI)
            .await
            .expect("demote");
        let demoted = token::authenticate(&store, &issued.token, 4_000)
            .await
            .expect("valid");
        assert_eq!(demoted.role, Role::Viewer);

        // A wrong secret with the right public id, expiry and revocation are all refused.
        let mut forged = issued.token.clone();
        let last = forged.pop().expect("char");
        forged.push(if last == 'a' { 'b' } else { 'a' });
        for (presented, at) in [
            (forged.as_str(), 4_000),
            (issued.token.as_str(), 10_000),
            ("tsr_nonsense", 4_000),
        ] {
            let err = token::authenticate(&store, presented, at)
                .await
                .expect_err("refused");
            assert!(matches!(err, auth::Error::InvalidCredentials), "{err:?}");
        }
        assert!(
            store
                .revoke_token(&issued.public_id, &CLI)
                .await
                .expect("revoke")
        );
        assert!(
            !store
                .revoke_token(&issued.public_id, &CLI)
                .await
                .expect("again")
        );
        let err = token::authenticate(&store, &issued.token, 5_000)
            .await
            .expect_err("revoked");
        assert!(matches!(err, auth::Error::InvalidCredentials), "{err:?}");
        let missing = store.revoke_token("nosuchtoken0", &CLI).await;
        assert!(
            matches!(missing, Err(Error::NotFound { what: "token", .. })),
            "{missing:?}"
        );
        let actions: Vec<_> = store
            .audit_entries(a.id, None, 50)
            .await
            .expect("audit")
            .into_iter()
            .map(|e| e.action)
            .collect();
        assert!(
            actions.contains(&"token.create".to_owned())
                && actions.contains(&"token.revoke".to_owned())
        );
    }
}

#[tokio::test]
async fn a_token_of_a_user_who_left_the_tenant_is_refused() {
    for (_db, store) in stores().await {
        let ivan = user(&store, "ivan@example.org").await;
        let a = store
            .create_tenant(&slug("a"), "A", None, &CLI)
            .await
            .expect("a");
        // Issued without a membership (the CLI refuses this; the check at use still holds).
        let issued = token::issue(&store, a.id, ivan, Role::Viewer, None, &CLI)
            .await
            .expect("issued");
        let err = token::authenticate(&store, &issued.token, 2_000)
            .await
            .expect_err("refused");
        assert!(matches!(err, auth::Error::InvalidCredentials), "{err:?}");
    }
}

#[tokio::test]
async fn audit_entries_are_per_tenant_and_paginate_newest_first() {
    for (_db, store) in stores().await {
        let a = store
            .create_tenant(&slug("a"), "A", None, &CLI)
            .await
            .expect("a");
        let b = store
            .create_tenant(&slug("b"), "B", None, &CLI)
            .await
            .expect("b");
        for name in ["t1", "t2", "t3"] {
            store.create_team(a.id, name, &CLI).await.expect("team");
        }
        let page = store.audit_entries(a.id, None, 2).await.expect("page");
        assert_eq!(page.len(), 2);
        assert_eq!(page[0].detail["name"], "t3");
        let rest = store
            .audit_entries(a.id, Some(page[1].id), 10)
            .await
            .expect("rest");
        let rest: Vec<_> = rest.iter().map(|e| e.action.as_str()).collect();
        assert_eq!(rest, ["team.create", "tenant.create"]);
        let b_entries = store.audit_entries(b.id, None, 50).await.expect("b");
        assert_eq!(b_entries.len(), 1);
        assert_eq!(b_entries[0].target, "tenant:b");
        assert_eq!(
            store
                .platform_audit_entries(None, 50)
                .await
                .expect("all")
                .len(),
            5
        );
    }
}

/// The provisioning of an external sign-in on every backend: the first sign-in makes the
/// account, links it and applies the mapped role and team; a later one without the group
/// takes back what the provider granted and nothing else. An existing account with the
/// same address is linked by email only when it belongs to the provider's tenant and the
/// provider verified the address; any other account (a superadmin, a local password, a
/// role or identity elsewhere) is refused whatever the provider says, and is linked only
/// by its owner's explicit link, after which the identity signs it in.
#[tokio::test]
async fn external_sign_ins_provision_map_and_unmap_on_every_backend() {
    use platform::store::{ExternalSignIn, LinkRefusal, Refusal};
    use platform::tenancy::Subject;
    for (_db, store) in stores().await {
        let owner = user(&store, "owner@example.org").await;
        platform::admin::create_tenant(&store, "acme", None, Some("owner@example.org"), &CLI)
            .await
            .expect("tenant");
        let tenant = store
            .tenant_by_slug(&slug("acme"))
            .await
            .expect("q")
            .expect("acme");
        let sealer = platform::secretbox::SecretBox::from_key(&[7; 32]);
        let file = "kind = \"oidc\"\ndisplay_name = \"SSO\"\nissuer = \"http://127.0.0.1:9\"\n\
                    client_id = \"c\"\nclient_secret = \"s\"\n\
                    [[groups]]\ngroup = \"analysts\"\nrole = \"author\"\nteams = [\"analysts\"]\n";
        platform::admin::set_provider(&store, &sealer, "acme", "sso", file, &CLI)
            .await
            .expect("provider");
        let provider = store
            .identity_provider(tenant.id, "sso")
            .await
            .expect("q")
            .expect("provider");
        let alice = email("alice@example.org");
        let teams = vec!["analysts".to_owned()];
        let alice_sub = Subject::parse("alice-sub").expect("subject");
        let first = ExternalSignIn {
            tenant: tenant.id,
            provider: provider.id,
            provider_slug: "sso",
            subject: &alice_sub,
            email: Some(&alice),
            email_verified: true,
            role: Some(Role::Author),
            teams: &teams,
        };
        let done = store
            .external_sign_in(&first, &CLI)
            .await
            .expect("store")
            .expect("provisioned");
        assert!(done.created && done.linked);
        assert_eq!(
            store.membership(tenant.id, done.user).await.expect("q"),
            Some(Role::Author)
        );
        let team = store
            .team_by_name(tenant.id, "analysts")
            .await
            .expect("q")
            .expect("the mapped team was made");
        assert_eq!(
            store.teams_of(tenant.id, done.user).await.expect("q"),
            vec![team]
        );

        let none: Vec<String> = Vec::new();
        let later = ExternalSignIn {
            role: None,
            teams: &none,
            ..first
        };
        let again = store
            .external_sign_in(&later, &CLI)
            .await
            .expect("store")
            .expect("provisioned");
        assert_eq!(again.user, done.user);
        assert!(!again.created && !again.linked);
        assert_eq!(
            store.membership(tenant.id, done.user).await.expect("q"),
            None
        );
        assert!(
            store
                .teams_of(tenant.id, done.user)
                .await
                .expect("q")
                .is_empty()
        );
        assert_eq!(
            store.membership(tenant.id, owner).await.expect("q"),
            Some(Role::Owner),
            "what the provider never granted is left alone"
        );

        let owner_email = email("owner@example.org");
        let someone_else = Subject::parse("someone-else").expect("subject");
        let unverified = ExternalSignIn {
            subject: &someone_else,
            email: Some(&owner_email),
            email_verified: false,
            ..later
        };
        assert_eq!(
            store
                .external_sign_in(&unverified, &CLI)
                .await
                .expect("store"),
            Err(Refusal::EmailNotVerified)
        );
        assert_eq!(
            store
                .external_identity(provider.id, "someone-else")
                .await
                .expect("q"),
            None,
            "a refusal links nothing"
        );

        // Accounts that do not belong to acme: never linked by email, verified or not.
        let superadmin = store
            .create_user(
                &NewUser {
                    email: &email("root@example.org"),
                    password_hash: None,
                    password_must_change: false,
                    superadmin: true,
                },
                &CLI,
            )
            .await
            .expect("superadmin")
            .id;
        user(&store, "bea@example.org").await;
        platform::admin::create_tenant(&store, "other", None, Some("bea@example.org"), &CLI)
            .await
            .expect("other tenant");
        store
            .create_user(
                &NewUser {
                    email: &email("pat@example.org"),
                    password_hash: Some("$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaA"),
                    password_must_change: false,
                    superadmin: false,
                },
                &CLI,
            )
            .await
            .expect("pat");
        let users_before = store.user_count().await.expect("count");
        for address in ["root@example.org", "bea@example.org", "pat@example.org"] {
            for verified in [true, false] {
                let claimed = email(address);
                let subject = Subject::parse(&format!("claim-{address}-{verified}")).expect("s");
                let claim = ExternalSignIn {
                    subject: &subject,
                    email: Some(&claimed),
                    email_verified: verified,
                    role: Some(Role::Admin),
                    ..later
                };
                assert_eq!(
                    store.external_sign_in(&claim, &CLI).await.expect("store"),
                    Err(Refusal::AccountExists),
                    "{address}, verified: {verified}"
                );
                assert_eq!(
                    store
                        .external_identity(provider.id, subject.as_str())
                        .await
                        .expect("q"),
                    None
                );
            }
        }
        assert_eq!(store.user_count().await.expect("count"), users_before);
        assert_eq!(
            store.membership(tenant.id, superadmin).await.expect("q"),
            None,
            "nothing granted"
        );

        // The superadmin links the identity themselves; then it signs them in.
        let root_sub = Subject::parse("root-sub").expect("subject");
        assert_eq!(
            store
                .link_external_identity(tenant.id, &provider, &root_sub, superadmin, &CLI)
                .await
                .expect("store"),
            Ok(true)
        );
        assert_eq!(
            store
                .link_external_identity(tenant.id, &provider, &root_sub, superadmin, &CLI)
                .await
                .expect("store"),
            Ok(false),
            "linking again changes nothing"
        );
        assert_eq!(
            store
                .link_external_identity(tenant.id, &provider, &root_sub, owner, &CLI)
                .await
                .expect("store"),
            Err(LinkRefusal::LinkedToAnother)
        );
        let signed = store
            .external_sign_in(
                &ExternalSignIn {
                    subject: &root_sub,
                    email: None,
                    ..later
                },
                &CLI,
            )
            .await
            .expect("store")
            .expect("the linked identity signs in");
        assert_eq!(signed.user, superadmin);
        assert!(!signed.created && !signed.linked);
        let links = store
            .linked_identities(superadmin)
            .await
            .expect("identities");
        assert_eq!(links.len(), 1);
        assert_eq!(
            (links[0].tenant.as_str(), links[0].provider.as_str()),
            ("acme", "sso")
        );
    }
}

/// The pre-claim attack: tenant T's admin, who runs T's identity provider, has it create
/// an account for someone else's address; tenant U later adds that address as a member
/// (which picks the existing account). T's identity must not then sign in with U's role.
/// A link the provider made itself (`created`, `email`) signs in only while the account
/// belongs to T; one the owner made (`explicit`) keeps signing in.
#[tokio::test]
async fn a_provider_made_link_stops_signing_in_once_the_account_leaves_its_tenant() {
    use platform::store::{ExternalSignIn, Refusal};
    use platform::tenancy::Subject;
    for (_db, store) in stores().await {
        user(&store, "mallory@example.org").await;
        platform::admin::create_tenant(&store, "evil", None, Some("mallory@example.org"), &CLI)
            .await
            .expect("tenant T");
        user(&store, "ursula@example.org").await;
        platform::admin::create_tenant(&store, "corp", None, Some("ursula@example.org"), &CLI)
            .await
            .expect("tenant U");
        let evil = store
            .tenant_by_slug(&slug("evil"))
            .await
            .expect("q")
            .expect("evil");
        let corp = store
            .tenant_by_slug(&slug("corp"))
            .await
            .expect("q")
            .expect("corp");
        let sealer = platform::secretbox::SecretBox::from_key(&[7; 32]);
        let file = "kind = \"oidc\"\ndisplay_name = \"SSO\"\nissuer = \"http://127.0.0.1:9\"\n\
                    client_id = \"c\"\nclient_secret = \"s\"\n";
        platform::admin::set_provider(&store, &sealer, "evil", "sso", file, &CLI)
            .await
            .expect("provider");
        let provider = store
            .identity_provider(evil.id, "sso")
            .await
            .expect("q")
            .expect("provider");
        let victim_email = email("victim@corp.example");
        let sub = Subject::parse("planted").expect("subject");
        let none: Vec<String> = Vec::new();
        let planted = ExternalSignIn {
            tenant: evil.id,
            provider: provider.id,
            provider_slug: "sso",
            subject: &sub,
            email: Some(&victim_email),
            email_verified: true,
            role: Some(Role::Viewer),
            teams: &none,
        };
        // Step 1: T's provider creates the account (nothing wrong yet: it is T's).
        let made = store
            .external_sign_in(&planted, &CLI)
            .await
            .expect("store")
            .expect("created");
        assert!(made.created && made.linked);
        let victim = made.user;
        store
            .external_sign_in(&planted, &CLI)
            .await
            .expect("store")
            .expect("while the account is T's, T's identity signs it in");

        // Step 2: U's admin adds victim@corp.example (by email: the existing account).
        platform::admin::grant(&store, "victim@corp.example", "corp", "admin", &CLI)
            .await
            .expect("grant in U");
        assert_eq!(
            store.membership(corp.id, victim).await.expect("q"),
            Some(Role::Admin)
        );

        // T's identity no longer signs the account in, and nothing is granted or touched.
        let audit_before = store.audit_entries(evil.id, None, 1_000).await.expect("a");
        let escalate = ExternalSignIn {
            role: Some(Role::Admin),
            ..planted
        };
        assert_eq!(
            store
                .external_sign_in(&escalate, &CLI)
                .await
                .expect("store"),
            Err(Refusal::AccountLeftTenant)
        );
        assert_eq!(
            store.membership(evil.id, victim).await.expect("q"),
            Some(Role::Viewer),
            "the refusal granted nothing in T"
        );
        assert_eq!(
            store.membership(corp.id, victim).await.expect("q"),
            Some(Role::Admin)
        );
        assert_eq!(
            store.audit_entries(evil.id, None, 1_000).await.expect("a"),
            audit_before,
            "a refusal writes nothing in the store (the sign-in page audits it)"
        );

        // A link T's provider made by email to an account of T's ends the same way.
        let carol = user(&store, "carol@corp.example").await;
        store
            .grant_role(evil.id, carol, Role::Viewer, &CLI)
            .await
            .expect("carol in T");
        let carol_email = email("carol@corp.example");
        let carol_sub = Subject::parse("carol-sub").expect("subject");
        let carol_in = ExternalSignIn {
            subject: &carol_sub,
            email: Some(&carol_email),
            ..planted
        };
        let linked = store
            .external_sign_in(&carol_in, &CLI)
            .await
            .expect("store")
            .expect("linked by verified email");
        assert!(!linked.created && linked.linked);
        assert_eq!(linked.user, carol);
        platform::admin::grant(&store, "carol@corp.example", "corp", "viewer", &CLI)
            .await
            .expect("grant in U");
        assert_eq!(
            store
                .external_sign_in(&carol_in, &CLI)
                .await
                .expect("store"),
            Err(Refusal::AccountLeftTenant)
        );

        // The owner, signed in another way, links the identity on /account: their choice,
        // so from now on it signs them in.
        assert_eq!(
            store
                .link_external_identity(evil.id, &provider, &sub, victim, &CLI)
                .await
                .expect("store"),
            Ok(true),
            "a provider-made link becomes explicit"
        );
        assert_eq!(
            store
                .link_external_identity(evil.id, &provider, &sub, victim, &CLI)
                .await
                .expect("store"),
            Ok(false),
            "linking again changes nothing"
        );
        let back = store
            .external_sign_in(&planted, &CLI)
            .await
            .expect("store")
            .expect("an explicit link signs in");
        assert_eq!(back.user, victim);
        assert!(!back.created && !back.linked);
        assert_eq!(
            store.membership(corp.id, victim).await.expect("q"),
            Some(Role::Admin),
            "T's provider never touches U's role"
        );
    }
}

#[tokio::test]
async fn a_lease_has_one_holder_until_it_expires_or_is_released() {
    for (_db, store) in stores().await {
        let take = |holder: &'static str, now: i64| {
            let store = store.clone();
            async move {
                store
                    .try_take_lease("push:acme/sales", holder, now, 1_000)
                    .await
                    .expect("query")
            }
        };
        assert!(take("a", 0).await, "a free lease is taken");
        assert!(!take("b", 500).await, "held by a until 1000");
        assert!(take("a", 900).await, "its holder renews it, until 1900");
        assert!(!take("b", 1_500).await);
        assert!(take("b", 1_900).await, "expired: anyone may take it");
        assert!(!take("a", 2_000).await);
        // Only the holder's release frees it.
        store
            .release_lease("push:acme/sales", "a")
            .await
            .expect("release");
        assert!(!take("a", 2_000).await);
        store
            .release_lease("push:acme/sales", "b")
            .await
            .expect("release");
        assert!(take("a", 2_000).await);
        // Other names are independent.
        assert!(
            store
                .try_take_lease("push:acme/other", "b", 2_000, 1_000)
                .await
                .expect("query")
        );
    }
}
