//! Authorization in one place: [`authorize`] decides every action of every principal.
//!
//! Handlers and the CLI ask here and never compare roles themselves. The rules:
//!
//! - A **platform superadmin** (a signed-in user, never a token) may do everything.
//! - **Platform actions** (creating, suspending and deleting tenants, managing users, quotas and identity providers,
//!   the platform-wide audit log) are for superadmins only.
//! - **Tenant actions** need a role in that tenant: viewer sees the tenant, author creates
//!   apps, admin manages members, teams, the tenant itself and reads its audit log, owner
//!   also grants the owner role. Tokens cannot mint tokens.
//! - **An app** that is `public` is open to anyone; `tenant`, to any member; `restricted`,
//!   to the tenant's admins and owners, the app's collaborators and the users and teams
//!   granted it. Deploying and managing an app is for admins and owners, and for authors
//!   who are its collaborators. Viewers never write.
//! - **A token** acts only in its own tenant, with its own role (already capped by its
//!   user's current role there when it was authenticated); on every other tenant it is
//!   nobody. It never carries superadmin rights.
//!
//! Nothing here does I/O: the caller loads the facts ([`AppAccess`] for the principal's
//! user) and this module judges them.

use std::fmt;

use crate::ids::{TenantId, TokenId, UserId};
use crate::store::AppAccess;
use crate::tenancy::{Role, Visibility};

/// Who is asking.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Principal {
    /// No credentials.
    Anonymous,
    /// A person (signed in; sessions come with sign-in).
    User(UserPrincipal),
    /// A machine using an API token.
    Token(TokenPrincipal),
}

/// A person with their memberships loaded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserPrincipal {
    /// The user.
    pub id: UserId,
    /// Platform superadmin.
    pub superadmin: bool,
    /// Their role in each tenant they belong to.
    pub memberships: Vec<(TenantId, Role)>,
}

/// An authenticated API token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenPrincipal {
    /// The token's row.
    pub id: TokenId,
    /// Its public id (for logs and the audit trail).
    pub public_id: String,
    /// Whose token it is.
    pub user_id: UserId,
    /// The one tenant it works in.
    pub tenant_id: TenantId,
    /// What it may do there.
    pub role: Role,
}

impl Principal {
    /// The user behind the principal, if any.
    pub fn user_id(&self) -> Option<UserId> {
        match self {
            Principal::Anonymous => None,
            Principal::User(user) => Some(user.id),
            Principal::Token(token) => Some(token.user_id),
        }
    }

    /// The principal's role in `tenant`; a token has none outside its own tenant.
    pub fn role_in(&self, tenant: TenantId) -> Option<Role> {
        match self {
            Principal::Anonymous => None,
            Principal::User(user) => user
                .memberships
                .iter()
                .find(|(t, _)| *t == tenant)
                .map(|(_, role)| *role),
            Principal::Token(token) => (token.tenant_id == tenant).then_some(token.role),
        }
    }

    fn is_superadmin(&self) -> bool {
        matches!(self, Principal::User(user) if user.superadmin)
    }

    /// How the audit log names this principal.
    pub fn audit_actor(&self) -> String {
        match self {
            Principal::Anonymous => "anonymous".to_owned(),
            Principal::User(user) => format!("user:{}", user.id),
            Principal::Token(token) => format!("token:{}", token.public_id),
        }
    }
}

/// Everything a principal may try.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// Create a tenant (platform).
    CreateTenant,
    /// Suspend, resume and delete tenants (platform).
    ManageTenants,
    /// Create, disable and promote users (platform).
    ManageUsers,
    /// Change a tenant's quotas (platform).
    ManageQuotas,
    /// Read the audit log of every tenant (platform).
    ViewPlatformAudit,
    /// Configure a tenant's identity providers (platform: a provider makes the server
    /// connect to the hosts it names, and its group mappings grant roles).
    ManageIdentityProviders,
    /// See a tenant and list its apps (tenant).
    ViewTenant,
    /// Rename a tenant, change its settings (tenant).
    UpdateTenant,
    /// Add and remove members, change roles below owner (tenant).
    ManageMembers,
    /// Grant or take the owner role (tenant).
    GrantOwner,
    /// Create teams and change their members (tenant).
    ManageTeams,
    /// Read the tenant's audit log (tenant).
    ViewTenantAudit,
    /// Try one of the tenant's identity providers: its bind or discovery, and what it
    /// would grant a sample account (tenant; reads, changes nothing).
    TestIdentityProvider,
    /// Register, change, remove, test and grant the tenant's data sources (tenant).
    ManageDataSources,
    /// Create a new app (tenant).
    CreateApp,
    /// Create an API token for oneself (tenant).
    CreateToken,
    /// Open an app and run its callbacks (app).
    ViewApp,
    /// Deploy a new version of an app (app).
    DeployApp,
    /// Change an app's visibility, grants and collaborators (app).
    ManageApp,
}

impl Action {
    /// Every action.
    pub const ALL: [Action; 19] = [
        Action::CreateTenant,
        Action::ManageTenants,
        Action::ManageUsers,
        Action::ManageQuotas,
        Action::ViewPlatformAudit,
        Action::ManageIdentityProviders,
        Action::ViewTenant,
        Action::UpdateTenant,
        Action::ManageMembers,
        Action::GrantOwner,
        Action::ManageTeams,
        Action::ViewTenantAudit,
        Action::TestIdentityProvider,
        Action::ManageDataSources,
        Action::CreateApp,
        Action::CreateToken,
        Action::ViewApp,
        Action::DeployApp,
        Action::ManageApp,
    ];
}

/// What an action is done to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resource {
    /// The installation as a whole.
    Platform,
    /// One tenant.
    Tenant(TenantId),
    /// One app, with the facts about the asking principal's user.
    App(AppAccess),
}

/// A refusal, with the reason for logs (never shown to a client that may not learn that
/// the resource exists).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub struct Denied {
    /// What was refused.
    pub action: Action,
    /// Why, in a few words.
    pub reason: &'static str,
}

impl fmt::Display for Denied {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?} denied: {}", self.action, self.reason)
    }
}

/// Decide whether `principal` may do `action` to `resource`.
pub fn authorize(principal: &Principal, action: Action, resource: &Resource) -> Result<(), Denied> {
    let deny = |reason| Err(Denied { action, reason });
    let allow_if = |ok: bool, reason| if ok { Ok(()) } else { deny(reason) };
    use Action as A;
    match (action, resource) {
        (
            A::CreateTenant
            | A::ManageTenants
            | A::ManageUsers
            | A::ManageQuotas
            | A::ViewPlatformAudit
            | A::ManageIdentityProviders,
            Resource::Platform,
        ) => allow_if(principal.is_superadmin(), "platform superadmins only"),
        (
            A::ViewTenant
            | A::UpdateTenant
            | A::ManageMembers
            | A::GrantOwner
            | A::ManageTeams
            | A::ViewTenantAudit
            | A::TestIdentityProvider
            | A::ManageDataSources
            | A::CreateApp
            | A::CreateToken,
            Resource::Tenant(tenant),
        ) => {
            if principal.is_superadmin() {
                return Ok(());
            }
            if action == A::CreateToken && matches!(principal, Principal::Token(_)) {
                return deny("a token cannot create tokens");
            }
            let Some(role) = principal.role_in(*tenant) else {
                return deny("not a member of the tenant");
            };
            let needed = match action {
                A::GrantOwner => Role::Owner,
                A::UpdateTenant
                | A::ManageMembers
                | A::ManageTeams
                | A::ViewTenantAudit
                | A::TestIdentityProvider
                | A::ManageDataSources => Role::Admin,
                A::CreateApp => Role::Author,
                _ => Role::Viewer,
            };
            allow_if(role >= needed, "the role does not allow it")
        }
        (A::ViewApp | A::DeployApp | A::ManageApp, Resource::App(app)) => {
            if action == A::ViewApp && app.visibility == Visibility::Public {
                return Ok(());
            }
            if principal.is_superadmin() {
                return Ok(());
            }
            let Some(role) = principal.role_in(app.tenant_id) else {
                return deny("not a member of the app's tenant");
            };
            let ok = match action {
                A::ViewApp => match app.visibility {
                    Visibility::Public | Visibility::Tenant => true,
                    Visibility::Restricted => {
                        role >= Role::Admin || app.collaborator || app.granted
                    }
                },
                _ => role >= Role::Admin || (role >= Role::Author && app.collaborator),
            };
            allow_if(ok, "no access to the app")
        }
        _ => deny("the action does not apply to this resource"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::AppId;

    const A: TenantId = TenantId(1);
    const B: TenantId = TenantId(2);

    /// The principals every rule is checked against, in the column order of the tables.
    fn principals() -> Vec<(&'static str, Principal)> {
        let user = |id, superadmin, memberships: &[(TenantId, Role)]| {
            Principal::User(UserPrincipal {
                id: UserId(id),
                superadmin,
                memberships: memberships.to_vec(),
            })
        };
        let token = |tenant, role, user| {
            Principal::Token(TokenPrincipal {
                id: TokenId(user),
                public_id: format!("t{user}"),
                user_id: UserId(user),
                tenant_id: tenant,
                role,
            })
        };
        vec![
            ("anonymous", Principal::Anonymous),
            ("viewer", user(1, false, &[(A, Role::Viewer)])),
            ("author", user(2, false, &[(A, Role::Author)])),
            ("admin", user(3, false, &[(A, Role::Admin)])),
            ("owner", user(4, false, &[(A, Role::Owner)])),
            ("superadmin", user(5, true, &[])),
            ("owner of B", user(6, false, &[(B, Role::Owner)])),
            ("no tenant", user(7, false, &[])),
            ("token viewer A", token(A, Role::Viewer, 8)),
            ("token author A", token(A, Role::Author, 9)),
            ("token owner A", token(A, Role::Owner, 10)),
            ("token owner B", token(B, Role::Owner, 11)),
        ]
    }

    fn app(visibility: Visibility, collaborator: bool, granted: bool) -> Resource {
        Resource::App(AppAccess {
            tenant_id: A,
            app_id: AppId(1),
            visibility,
            collaborator,
            granted,
        })
    }

    /// One row: an action on a resource, and the verdict for each principal of
    /// [`principals`] in order (`Y` allowed, `.` denied).
    fn check(table: &[(Action, Resource, &str)]) {
        let principals = principals();
        let mut failures = Vec::new();
        for (action, resource, verdicts) in table {
            let verdicts: Vec<char> = verdicts.chars().filter(|c| !c.is_whitespace()).collect();
            assert_eq!(verdicts.len(), principals.len(), "{action:?} {resource:?}");
            for ((name, principal), verdict) in principals.iter().zip(verdicts) {
                let expected = verdict == 'Y';
                let got = authorize(principal, *action, resource).is_ok();
                if got != expected {
                    failures.push(format!(
                        "{action:?} on {resource:?} by {name}: expected {expected}, got {got}"
                    ));
                }
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    use Action as Act;
    use Visibility as V;

    #[test]
    fn platform_and_tenant_actions() {
        //        columns: anon viewer author admin owner super ownerB none | tokV tokAu tokO tokOB
        check(&[
            (
                Act::CreateTenant,
                Resource::Platform,
                "  . . . . .  Y . .  . . . .",
            ),
            (
                Act::ManageTenants,
                Resource::Platform,
                "  . . . . .  Y . .  . . . .",
            ),
            (
                Act::ManageUsers,
                Resource::Platform,
                "   . . . . .  Y . .  . . . .",
            ),
            (
                Act::ManageQuotas,
                Resource::Platform,
                "  . . . . .  Y . .  . . . .",
            ),
            (
                Act::ViewPlatformAudit,
                Resource::Platform,
                ". . . . .  Y . .  . . . .",
            ),
            (
                Act::ManageIdentityProviders,
                Resource::Platform,
                ". . . . .  Y . .  . . . .",
            ),
            (
                Act::ViewTenant,
                Resource::Tenant(A),
                "    . Y Y Y Y  Y . .  Y Y Y .",
            ),
            (
                Act::CreateApp,
                Resource::Tenant(A),
                "     . . Y Y Y  Y . .  . Y Y .",
            ),
            (
                Act::UpdateTenant,
                Resource::Tenant(A),
                "  . . . Y Y  Y . .  . . Y .",
            ),
            (
                Act::ManageMembers,
                Resource::Tenant(A),
                " . . . Y Y  Y . .  . . Y .",
            ),
            (
                Act::ManageTeams,
                Resource::Tenant(A),
                "   . . . Y Y  Y . .  . . Y .",
            ),
            (
                Act::ViewTenantAudit,
                Resource::Tenant(A),
                ". . . Y Y  Y . .  . . Y .",
            ),
            (
                Act::TestIdentityProvider,
                Resource::Tenant(A),
                ". . . Y Y  Y . .  . . Y .",
            ),
            (
                Act::ManageDataSources,
                Resource::Tenant(A),
                ". . . Y Y  Y . .  . . Y .",
            ),
            (
                Act::GrantOwner,
                Resource::Tenant(A),
                "    . . . . Y  Y . .  . . Y .",
            ),
            (
                Act::CreateToken,
                Resource::Tenant(A),
                "   . Y Y Y Y  Y . .  . . . .",
            ),
            // Tenant B: only B's owner, B's token and the superadmin.
            (
                Act::ViewTenant,
                Resource::Tenant(B),
                "    . . . . .  Y Y .  . . . Y",
            ),
            (
                Act::GrantOwner,
                Resource::Tenant(B),
                "    . . . . .  Y Y .  . . . Y",
            ),
        ]);
    }

    #[test]
    fn app_actions_by_visibility_and_relation() {
        //        columns: anon viewer author admin owner super ownerB none | tokV tokAu tokO tokOB
        check(&[
            (
                Act::ViewApp,
                app(V::Public, false, false),
                "       Y Y Y Y Y  Y Y Y  Y Y Y Y",
            ),
            (
                Act::ViewApp,
                app(V::Tenant, false, false),
                "       . Y Y Y Y  Y . .  Y Y Y .",
            ),
            (
                Act::ViewApp,
                app(V::Restricted, false, false),
                "   . . . Y Y  Y . .  . . Y .",
            ),
            (
                Act::ViewApp,
                app(V::Restricted, false, true),
                "    . Y Y Y Y  Y . .  Y Y Y .",
            ),
            (
                Act::ViewApp,
                app(V::Restricted, true, false),
                "    . Y Y Y Y  Y . .  Y Y Y .",
            ),
            (
                Act::DeployApp,
                app(V::Public, false, false),
                "     . . . Y Y  Y . .  . . Y .",
            ),
            (
                Act::DeployApp,
                app(V::Public, true, false),
                "      . . Y Y Y  Y . .  . Y Y .",
            ),
            (
                Act::DeployApp,
                app(V::Restricted, true, true),
                "   . . Y Y Y  Y . .  . Y Y .",
            ),
            (
                Act::ManageApp,
                app(V::Tenant, false, true),
                "      . . . Y Y  Y . .  . . Y .",
            ),
            (
                Act::ManageApp,
                app(V::Tenant, true, false),
                "      . . Y Y Y  Y . .  . Y Y .",
            ),
        ]);
    }

    #[test]
    fn a_principal_of_another_tenant_is_nobody_there_whatever_the_facts_say() {
        // Even if a grant or collaboration were reported for them, a principal without a
        // role in tenant A gets nothing of A's non-public apps.
        let outsiders: Vec<_> = principals()
            .into_iter()
            .filter(|(name, _)| {
                ["owner of B", "token owner B", "no tenant", "anonymous"].contains(name)
            })
            .collect();
        for (name, principal) in outsiders {
            for action in [Act::ViewApp, Act::DeployApp, Act::ManageApp] {
                for visibility in [V::Tenant, V::Restricted] {
                    let resource = app(visibility, true, true);
                    assert!(
                        authorize(&principal, action, &resource).is_err(),
                        "{name} {action:?} {visibility:?}"
                    );
                }
            }
            for action in Action::ALL {
                assert!(
                    authorize(&principal, action, &Resource::Tenant(A)).is_err(),
                    "{name} {action:?} on tenant A"
                );
            }
        }
    }

    #[test]
    fn actions_on_the_wrong_kind_of_resource_are_denied_even_for_superadmins() {
        let superadmin = principals().remove(5).1;
        let kinds = [
            Resource::Platform,
            Resource::Tenant(A),
            app(V::Public, true, true),
        ];
        for action in Action::ALL {
            let applies = kinds
                .iter()
                .filter(|r| authorize(&superadmin, action, r).is_ok())
                .count();
            assert_eq!(
                applies, 1,
                "{action:?} must apply to exactly one kind of resource"
            );
        }
    }

    #[test]
    fn a_higher_role_never_has_fewer_rights() {
        let resources = [
            Resource::Tenant(A),
            app(V::Tenant, false, false),
            app(V::Restricted, false, false),
            app(V::Restricted, true, false),
            app(V::Restricted, false, true),
        ];
        let member = |role| {
            Principal::User(UserPrincipal {
                id: UserId(1),
                superadmin: false,
                memberships: vec![(A, role)],
            })
        };
        for pair in Role::ALL.windows(2) {
            for action in Action::ALL {
                for resource in &resources {
                    let lower = authorize(&member(pair[0]), action, resource).is_ok();
                    let higher = authorize(&member(pair[1]), action, resource).is_ok();
                    assert!(
                        !lower || higher,
                        "{action:?} {resource:?}: {:?} > {:?}",
                        pair[0],
                        pair[1]
                    );
                }
            }
        }
    }
}
