//! What a platform superadmin does across tenants, for the REST API and the web console
//! alike: list, create and change tenants (their quotas), set a tenant's identity
//! providers, list users, read the platform's health from the same checks as `/readyz`. Like [`crate::manage`]: ask the policy, call the store (which
//! writes the audit row).

use crate::manage::{self, Refusal};
use crate::observe::Readiness;
use crate::policy::{Action, Principal, Resource};
use crate::state::AppState;
use crate::store::{Change, DeletedTenant, Quotas, Tenant, User};
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

/// A change of a tenant's quotas: each `None` keeps the current value.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QuotaChange {
    /// Number of apps (0 to 1,000,000).
    pub max_apps: Option<i64>,
    /// Callbacks running at once (1 to 10,000).
    pub max_concurrent_callbacks: Option<i64>,
    /// Memory cap of one callback in MiB (1 to 4,096).
    pub callback_memory_mb: Option<i64>,
    /// Deadline of one callback in ms (1 to 86,400,000).
    pub callback_deadline_ms: Option<i64>,
    /// Bytes of stored app versions (0 to 2^40).
    pub max_version_storage_bytes: Option<i64>,
    /// CPU share when tenants compete (1 to 10,000).
    pub cpu_weight: Option<i64>,
    /// Background jobs at once (1 to 10,000).
    pub max_jobs: Option<i64>,
    /// Deadline of one background job in ms (1 to 86,400,000).
    pub job_deadline_ms: Option<i64>,
    /// Bytes of the shared cache (0 to 2^40).
    pub cache_bytes: Option<i64>,
}

impl QuotaChange {
    /// The quotas after the change, each within its range (the message names the first
    /// one that is not).
    pub fn apply(&self, current: &Quotas) -> Result<Quotas> {
        let pick = |new: Option<i64>, old: i64| new.unwrap_or(old);
        let quotas = Quotas {
            max_apps: pick(self.max_apps, current.max_apps),
            max_concurrent_callbacks: pick(
                self.max_concurrent_callbacks,
                current.max_concurrent_callbacks,
            ),
            callback_memory_mb: pick(self.callback_memory_mb, current.callback_memory_mb),
            callback_deadline_ms: pick(self.callback_deadline_ms, current.callback_deadline_ms),
            max_version_storage_bytes: pick(
                self.max_version_storage_bytes,
                current.max_version_storage_bytes,
            ),
            cpu_weight: pick(self.cpu_weight, current.cpu_weight),
            max_jobs: pick(self.max_jobs, current.max_jobs),
            job_deadline_ms: pick(self.job_deadline_ms, current.job_deadline_ms),
            cache_bytes: pick(self.cache_bytes, current.cache_bytes),
        };
        let checks: [(&str, i64, i64, i64); 9] = [
            ("max_apps", quotas.max_apps, 0, 1_000_000),
            (
                "max_concurrent_callbacks",
                quotas.max_concurrent_callbacks,
                1,
                10_000,
            ),
            ("callback_memory_mb", quotas.callback_memory_mb, 1, 4_096),
            (
                "callback_deadline_ms",
                quotas.callback_deadline_ms,
                1,
                86_400_000,
            ),
            (
                "max_version_storage_bytes",
                quotas.max_version_storage_bytes,
                0,
                1 << 40,
            ),
            ("cpu_weight", quotas.cpu_weight, 1, 10_000),
            ("max_jobs", quotas.max_jobs, 1, 10_000),
            ("job_deadline_ms", quotas.job_deadline_ms, 1, 86_400_000),
            ("cache_bytes", quotas.cache_bytes, 0, 1 << 40),
        ];
        for (name, value, min, max) in checks {
            if !(min..=max).contains(&value) {
                return Err(Refusal::Invalid(format!(
                    "{name} must be between {min} and {max} (got {value})"
                )));
            }
        }
        Ok(quotas)
    }
}

/// Rename a tenant (its admins) and/or change its quotas (superadmins, asked before the
/// tenant is looked up), in one transaction, audited `tenant.rename` and
/// `tenant.set_quotas`. An empty change is still asked of the policy as a rename.
pub async fn update_tenant(
    state: &AppState,
    principal: &Principal,
    slug: &str,
    (name, quotas): (Option<&str>, Option<&QuotaChange>),
    change: &Change<'_>,
) -> Result<Tenant> {
    if quotas.is_some() {
        superadmin(principal, Action::ManageQuotas)?;
    }
    let tenant = manage::tenant(state, principal, slug).await?;
    let name = match name {
        Some(name) => {
            manage::allow(
                principal,
                Action::UpdateTenant,
                &Resource::Tenant(tenant.id),
            )?;
            Some(tenancy::tenant_name(name)?)
        }
        None => None,
    };
    let quotas = match quotas {
        Some(q) => {
            manage::allow(principal, Action::ManageQuotas, &Resource::Platform)?;
            Some(q.apply(&tenant.quotas)?)
        }
        None => None,
    };
    if name.is_none() && quotas.is_none() {
        manage::allow(
            principal,
            Action::UpdateTenant,
            &Resource::Tenant(tenant.id),
        )?;
    }
    Ok(state
        .store
        .update_tenant(tenant.id, name.as_deref(), quotas.as_ref(), change)
        .await?)
}

/// Suspend (`true`) or resume a tenant (superadmins, asked before the tenant is looked
/// up), audited `tenant.suspend` / `tenant.resume`. While suspended, its apps (every Dash
/// route and the WebSocket), pushes, its members' tokens and its pages answer 503 on every
/// replica within one poll of the change counter; superadmins still reach its pages.
pub async fn set_suspended(
    state: &AppState,
    principal: &Principal,
    slug: &str,
    suspended: bool,
    change: &Change<'_>,
) -> Result<Tenant> {
    superadmin(principal, Action::ManageTenants)?;
    let tenant = manage::tenant(state, principal, slug).await?;
    Ok(state
        .store
        .set_tenant_suspended(tenant.id, suspended, change)
        .await?)
}

/// What deleting a tenant removed: its rows, and on this server's disk its repositories
/// and data folders, and its cache entries.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TenantRemoval {
    /// The rows.
    pub rows: DeletedTenant,
    /// Data folders removed from `{data_dir}/appdata`.
    pub data_folders: usize,
    /// Cache entries removed.
    pub cache_entries: u64,
}

/// Delete a tenant and everything of it (superadmins; `confirm` must be its slug, typed
/// again): see [`crate::store::Store::delete_tenant`] for the rows (users stay); then its
/// git repositories, its data folders and its cache entries. Audited `tenant.delete` in
/// the platform's log. Files of a builder replica elsewhere are its own to sweep: a web
/// replica keeps no repository, and data folders nobody lists are swept by age.
pub async fn delete_tenant(
    state: &AppState,
    principal: &Principal,
    slug: &str,
    confirm: &str,
    change: &Change<'_>,
) -> Result<TenantRemoval> {
    superadmin(principal, Action::ManageTenants)?;
    let tenant = manage::tenant(state, principal, slug).await?;
    if confirm.trim() != tenant.slug {
        return Err(Refusal::Invalid(format!(
            "type the tenant's slug, {}, to confirm its deletion",
            tenant.slug
        )));
    }
    let rows = state.store.delete_tenant(tenant.id, change).await?;
    // The rows are gone (and the slug reserved): what is left on disk and in the cache
    // belongs to nobody. A failure is logged; nothing can reach those files any more.
    let repositories = state.config.data_dir.join("git").join(&tenant.slug);
    if let Err(e) = remove_dir(&repositories).await {
        tracing::error!(error = %e, dir = %repositories.display(), "removing a deleted tenant's repositories failed");
    }
    let data_folders = crate::appdata::AppDataDirs::new(state.config.app_data_dir())
        .remove_tenant(tenant.id)
        .await
        .unwrap_or_else(|e| {
            tracing::error!(error = %e, "removing a deleted tenant's data folders failed");
            0
        });
    let cache_entries = state.cache.purge_tenant(tenant.id).await;
    Ok(TenantRemoval {
        rows,
        data_folders,
        cache_entries,
    })
}

async fn remove_dir(dir: &std::path::Path) -> std::io::Result<()> {
    match tokio::fs::remove_dir_all(dir).await {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

/// Create or replace the identity provider `slug` of `tenant` from a provider file (TOML,
/// see [`crate::auth::providers`]; superadmins: a provider makes the server connect to the
/// hosts it names and its group mappings grant roles). Decided before the tenant is looked
/// up, so the answer says nothing about which tenants exist. `true` when it was created.
pub async fn set_provider(
    state: &AppState,
    principal: &Principal,
    (tenant, slug): (&str, &str),
    file: &str,
    change: &Change<'_>,
) -> Result<bool> {
    superadmin(principal, Action::ManageIdentityProviders)?;
    let tenant = manage::tenant(state, principal, tenant).await?;
    crate::admin::set_provider(
        &state.store,
        &state.secrets,
        &tenant.slug,
        slug,
        file,
        change,
    )
    .await
    .map_err(Refusal::from)
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
