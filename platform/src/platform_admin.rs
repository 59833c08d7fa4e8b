//! What a platform superadmin does across tenants, for the REST API and the web console
//! alike: list and create tenants, list users, read the platform's health from the same
//! checks as `/readyz`. Like [`crate::manage`]: ask the policy, call the store (which
//! writes the audit row).

use crate::manage::{self, Refusal};
use crate::observe::Readiness;
use crate::policy::{Action, Principal, Resource};
use crate::state::AppState;
use crate::store::{Change, Tenant, User};
use crate::tenancy::{self, Email};

type Result<T> = std::result::Result<T, Refusal>;

/// Rows per page of the superadmin's lists.
pub const PAGE: i64 = 50;

fn superadmin(principal: &Principal, action: Action) -> Result<()> {
    if matches!(principal, Principal::Anonymous) {
        return Err(Refusal::Unauthenticated);
    }
    manage::allow(principal, action, &Resource::Platform)
}

/// One page of every tenant, by slug, after `after` (superadmins).
pub async fn tenants(
    state: &AppState,
    principal: &Principal,
    after: Option<&str>,
) -> Result<(Vec<Tenant>, Option<String>)> {
    superadmin(principal, Action::CreateTenant)?;
    let tenants = state.store.list_tenants(None, after, PAGE).await?;
    let next = (tenants.len() as i64 == PAGE)
        .then(|| tenants.last().map(|t| t.slug.clone()))
        .flatten();
    Ok((tenants, next))
}

/// Create a tenant (superadmins), with the existing user `owner_email` as its owner in
/// the same transaction.
pub async fn create_tenant(
    state: &AppState,
    principal: &Principal,
    (slug, name, owner_email): (&str, Option<&str>, Option<&str>),
    change: &Change<'_>,
) -> Result<Tenant> {
    superadmin(principal, Action::CreateTenant)?;
    let slug_checked = tenancy::tenant_slug(slug)?;
    let name = tenancy::tenant_name(name.filter(|n| !n.trim().is_empty()).unwrap_or(slug))?;
    let owner = match owner_email.filter(|e| !e.trim().is_empty()) {
        Some(email) => {
            let email = Email::parse(email)?;
            let user =
                state
                    .store
                    .user_by_email(&email)
                    .await?
                    .ok_or_else(|| Refusal::NotFound {
                        what: "user",
                        name: email.to_string(),
                    })?;
            Some(user.id)
        }
        None => None,
    };
    Ok(state
        .store
        .create_tenant(&slug_checked, &name, owner, change)
        .await?)
}

/// One page of every user with how many tenants each belongs to, after the user id
/// `after` (superadmins).
pub async fn users(
    state: &AppState,
    principal: &Principal,
    after: Option<i64>,
) -> Result<(Vec<(User, i64)>, Option<i64>)> {
    superadmin(principal, Action::ManageUsers)?;
    let users = state.store.list_users(after, PAGE).await?;
    let next = (users.len() as i64 == PAGE)
        .then(|| users.last().map(|u| u.0.id.0))
        .flatten();
    Ok((users, next))
}

/// The platform's health as this replica sees it.
#[derive(Clone, Debug)]
pub struct Health {
    /// `/readyz`'s checks: the database, and Redis when configured.
    pub readiness: Readiness,
    /// Builds running here, and how many may run at once.
    pub builds: (usize, usize),
    /// The database pool's open and idle connections.
    pub pool: (u32, usize),
    /// Background-callback answers dropped, and jobs cancelled, because their page
    /// stopped polling (since this replica started).
    pub jobs: (u64, u64),
}

/// The platform's health (superadmins).
pub async fn health(state: &AppState, principal: &Principal) -> Result<Health> {
    superadmin(principal, Action::ViewPlatformAudit)?;
    let readiness = Readiness::check(&state.store, &state.cache).await;
    let jobs = state.jobs.stats();
    Ok(Health {
        readiness,
        builds: state.builds.load(),
        pool: state.store.pool_size(),
        jobs: (jobs.dropped_answers, jobs.cancelled_unpolled),
    })
}
