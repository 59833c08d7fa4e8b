//! What the operator's `tessera admin …` commands do, and the superadmin created on first
//! start. No printing and no argument parsing here (that is `cli`): these functions take
//! raw text, validate it through [`crate::tenancy`], and change the store, which writes
//! the audit row of each change in the same transaction.
//!
//! The operator runs these with direct access to the database, so they are not asked of
//! [`crate::policy`]; they are audited under the actor `cli:<os user>`.

use crate::auth::{self, password, token};
use crate::ids::{AppId, Slug, TenantId};
use crate::store::{self, Change, NewUser, Store, Tenant, User};
use crate::tenancy::{self, Email, InvalidName, Role, Visibility};

/// Why an admin command was refused. Each message says what to do.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A name, email, role or visibility did not validate.
    #[error(transparent)]
    Invalid(#[from] InvalidName),
    /// A password that is too short or too long.
    #[error("the password must be {min} to {max} characters long (got {got})")]
    Password {
        /// Shortest allowed.
        min: usize,
        /// Longest allowed.
        max: usize,
        /// Its length.
        got: usize,
    },
    /// No such user.
    #[error("no user {0}; create it first with `tessera admin create-user {0}`")]
    UnknownUser(String),
    /// No such tenant.
    #[error("no tenant {0:?}; create it first with `tessera admin create-tenant {0}`")]
    UnknownTenant(String),
    /// No such app.
    #[error("no app {0:?}")]
    UnknownApp(String),
    /// `tenant/app` was expected.
    #[error("expected tenant/app, for example demo/sales-explorer (got {0:?})")]
    Target(String),
    /// The user may not hold a token in that tenant.
    #[error("{email} is not a member of {tenant}; grant a role first with `tessera admin grant`")]
    NotMember {
        /// The user.
        email: String,
        /// The tenant.
        tenant: String,
    },
    /// A token cannot have more rights than its user.
    #[error("{email} is {has} in {tenant}; a token of theirs cannot be {wanted}")]
    RoleTooHigh {
        /// The user.
        email: String,
        /// The tenant.
        tenant: String,
        /// Their role.
        has: Role,
        /// The role asked for.
        wanted: Role,
    },
    /// A taken slug or email, an unknown token, or a database failure.
    #[error(transparent)]
    Store(#[from] store::Error),
    /// Hashing or token creation failed.
    #[error(transparent)]
    Auth(#[from] auth::Error),
    /// An identity provider file was refused.
    #[error(transparent)]
    Provider(#[from] auth::providers::Error),
    /// No such identity provider.
    #[error("tenant {tenant} has no identity provider {slug:?}")]
    UnknownProvider {
        /// The tenant.
        tenant: String,
        /// The provider's slug.
        slug: String,
    },
}

/// Result of this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Shortest password `create-user --password-stdin` accepts.
pub const MIN_PASSWORD_CHARS: usize = 12;
/// Longest password accepted (argon2 would take more, but nobody types this much).
pub const MAX_PASSWORD_CHARS: usize = 1024;

async fn user(store: &Store, email: &str) -> Result<User> {
    let email = Email::parse(email)?;
    store
        .user_by_email(&email)
        .await?
        .ok_or_else(|| Error::UnknownUser(email.to_string()))
}

async fn tenant(store: &Store, slug: &str) -> Result<Tenant> {
    let parsed = Slug::parse(slug).map_err(|_| InvalidName::Slug(slug.to_owned()))?;
    store
        .tenant_by_slug(&parsed)
        .await?
        .ok_or_else(|| Error::UnknownTenant(slug.to_owned()))
}

/// `create-tenant`: a tenant, and its owner when given, in one transaction.
pub async fn create_tenant(
    store: &Store,
    slug: &str,
    name: Option<&str>,
    owner: Option<&str>,
    change: &Change<'_>,
) -> Result<Tenant> {
    let slug = tenancy::tenant_slug(slug)?;
    let name = tenancy::tenant_name(name.unwrap_or(slug.as_str()))?;
    let owner = match owner {
        Some(email) => Some(user(store, email).await?.id),
        None => None,
    };
    Ok(store.create_tenant(&slug, &name, owner, change).await?)
}

/// The password policy's length rule (NIST SP 800-63B: length, not composition).
fn check_password_length(password: &str) -> Result<()> {
    let got = password.chars().count();
    if (MIN_PASSWORD_CHARS..=MAX_PASSWORD_CHARS).contains(&got) {
        Ok(())
    } else {
        Err(Error::Password {
            min: MIN_PASSWORD_CHARS,
            max: MAX_PASSWORD_CHARS,
            got,
        })
    }
}

/// `create-user`: with an argon2id hash of `password` when given.
pub async fn create_user(
    store: &Store,
    email: &str,
    password: Option<&str>,
    superadmin: bool,
    change: &Change<'_>,
) -> Result<User> {
    let email = Email::parse(email)?;
    let hash = match password {
        Some(password) => {
            check_password_length(password)?;
            Some(hash_blocking(password.to_owned()).await?)
        }
        None => None,
    };
    let new = NewUser {
        email: &email,
        password_hash: hash.as_deref(),
        password_must_change: false,
        superadmin,
    };
    Ok(store.create_user(&new, change).await?)
}

/// argon2id takes tens of milliseconds of CPU: run it off the async threads.
async fn hash_blocking(password: String) -> Result<String> {
    Ok(password::hash_off_runtime(password).await?)
}

/// `grant`: give the user `role` in the tenant; returns the previous role.
pub async fn grant(
    store: &Store,
    email: &str,
    tenant_slug: &str,
    role: &str,
    change: &Change<'_>,
) -> Result<Option<Role>> {
    let role: Role = role.parse()?;
    let user = user(store, email).await?;
    let tenant = tenant(store, tenant_slug).await?;
    Ok(store.grant_role(tenant.id, user.id, role, change).await?)
}

/// `set-visibility`: who may open `tenant/app`.
pub async fn set_visibility(
    store: &Store,
    target: &str,
    visibility: &str,
    change: &Change<'_>,
) -> Result<(TenantId, AppId, Visibility)> {
    let visibility: Visibility = visibility.parse()?;
    let (tenant_slug, app) = target
        .split_once('/')
        .ok_or_else(|| Error::Target(target.to_owned()))?;
    let tenant = tenant(store, tenant_slug).await?;
    let app_slug = Slug::parse(app).map_err(|_| InvalidName::Slug(app.to_owned()))?;
    let app = store
        .app_id(tenant.id, &app_slug)
        .await?
        .ok_or_else(|| Error::UnknownApp(target.to_owned()))?;
    store
        .set_app_visibility(tenant.id, app, visibility, change)
        .await?;
    Ok((tenant.id, app, visibility))
}

/// `token create`: a token for the user in one tenant, never with more than their role
/// there (a superadmin may pick any role; without one asked, admin).
pub async fn create_token(
    store: &Store,
    email: &str,
    tenant_slug: &str,
    role: Option<&str>,
    expires_in_days: u32,
    change: &Change<'_>,
) -> Result<token::Issued> {
    let wanted: Option<Role> = role.map(str::parse).transpose()?;
    let user = user(store, email).await?;
    let tenant = tenant(store, tenant_slug).await?;
    let member = store.membership(tenant.id, user.id).await?;
    let role = match (member, user.superadmin) {
        (_, true) => wanted.or(member).unwrap_or(Role::Admin),
        (Some(has), false) => match wanted {
            Some(wanted) if wanted > has => {
                return Err(Error::RoleTooHigh {
                    email: user.email,
                    tenant: tenant.slug,
                    has,
                    wanted,
                });
            }
            Some(wanted) => wanted,
            None => has,
        },
        (None, false) => {
            return Err(Error::NotMember {
                email: user.email,
                tenant: tenant.slug,
            });
        }
    };
    let expires_at = change
        .at
        .saturating_add(i64::from(expires_in_days) * 86_400_000);
    Ok(token::issue(store, tenant.id, user.id, role, Some(expires_at), change).await?)
}

/// `token revoke`: `false` when it was already revoked.
pub async fn revoke_token(store: &Store, public_id: &str, change: &Change<'_>) -> Result<bool> {
    Ok(store.revoke_token(public_id.trim(), change).await?)
}

/// `reset-password`: give `email` a new password that must be changed at the next sign-in
/// and end all of the user's sessions. The password is `chosen`, or a random one that is
/// returned to be shown once.
pub async fn reset_password(
    store: &Store,
    email: &str,
    chosen: Option<&str>,
    change: &Change<'_>,
) -> Result<String> {
    let email = Email::parse(email)?;
    let user = store
        .user_by_email(&email)
        .await?
        .ok_or_else(|| Error::UnknownUser(email.to_string()))?;
    let password = match chosen {
        Some(p) => {
            check_password_length(p)?;
            p.to_owned()
        }
        None => password::generate(),
    };
    let hash = hash_blocking(password.clone()).await?;
    store.force_password_reset(user.id, &hash, change).await?;
    Ok(password)
}

/// On first start (no users at all), create the superadmin `email` with a random password
/// that must be changed at first sign-in, and return that password to show once. `None`
/// when users exist (including when another replica created the first one meanwhile).
pub async fn ensure_first_superadmin(
    store: &Store,
    email: &str,
    change: &Change<'_>,
) -> Result<Option<(User, String)>> {
    let email = Email::parse(email)?;
    if store.user_count().await? > 0 {
        return Ok(None);
    }
    let password = password::generate();
    let hash = hash_blocking(password.clone()).await?;
    let new = NewUser {
        email: &email,
        password_hash: Some(&hash),
        password_must_change: true,
        superadmin: true,
    };
    Ok(store
        .create_first_user(&new, change)
        .await?
        .map(|user| (user, password)))
}

/// One provider as `idp list` shows it: no secrets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProviderSummary {
    /// Its slug.
    pub slug: String,
    /// `oidc`, `ldap` or `saml`.
    pub kind: String,
    /// Its name on the sign-in page.
    pub display_name: String,
    /// Issuer, directory URL or SAML metadata URL.
    pub location: String,
    /// The groups it maps.
    pub groups: Vec<String>,
}

/// `idp set`: create or replace the provider `slug` of the tenant from a provider file
/// (TOML, see [`auth::providers`]); its secret is sealed before it is stored. `true` when
/// it was created.
pub async fn set_provider(
    store: &Store,
    sealer: &crate::secretbox::SecretBox,
    tenant_slug: &str,
    slug: &str,
    file_text: &str,
    change: &Change<'_>,
) -> Result<bool> {
    let tenant = tenant(store, tenant_slug).await?;
    let slug = Slug::parse(slug).map_err(|_| InvalidName::Slug(slug.to_owned()))?;
    let config = auth::providers::parse_file(file_text)?;
    let settings = auth::providers::seal_settings(&config.settings, sealer);
    let mappings = serde_json::to_string(&config.groups).unwrap_or_else(|_| "[]".to_owned());
    let detail = serde_json::json!({
        "kind": config.settings.kind().as_str(),
        "display_name": config.display_name,
        "location": config.settings.location(),
        "groups": config.groups.iter().map(|g| g.group.as_str()).collect::<Vec<_>>(),
    });
    let new = store::NewProvider {
        slug: slug.as_str(),
        kind: config.settings.kind().as_str(),
        display_name: config.display_name.trim(),
        settings: &settings,
        group_mappings: &mappings,
        audit_detail: &detail,
    };
    Ok(store.set_identity_provider(tenant.id, &new, change).await?)
}

/// `idp list`: the tenant's providers, without secrets.
pub async fn list_providers(store: &Store, tenant_slug: &str) -> Result<Vec<ProviderSummary>> {
    let tenant = tenant(store, tenant_slug).await?;
    let records = store.identity_providers(tenant.id).await?;
    Ok(records
        .into_iter()
        .map(|r| {
            let settings: serde_json::Value = serde_json::from_str(&r.settings).unwrap_or_default();
            let location = settings
                .get("issuer")
                .or_else(|| settings.get("url"))
                .or_else(|| settings.get("idp_metadata_url"))
                .and_then(|v| v.as_str())
                .unwrap_or_default()
                .to_owned();
            let groups: Vec<auth::providers::GroupMapping> =
                serde_json::from_str(&r.group_mappings).unwrap_or_default();
            ProviderSummary {
                slug: r.slug,
                kind: r.kind,
                display_name: r.display_name,
                location,
                groups: groups.into_iter().map(|g| g.group).collect(),
            }
        })
        .collect())
}

/// `idp remove`: remove the provider and its links to users, and take back the roles and
/// team memberships it granted (see [`remove_provider_with`]).
pub async fn remove_provider(
    store: &Store,
    tenant_slug: &str,
    slug: &str,
    change: &Change<'_>,
) -> Result<store::ProviderRemoval> {
    remove_provider_with(store, tenant_slug, slug, false, change).await
}

/// `idp remove [--keep-memberships]`: remove the provider and its links to users. What it
/// granted is taken back (a hand-given role it had raised comes back; a member it brought
/// in leaves the tenant; its team memberships end), unless `keep_memberships`: then it all
/// stays, hand-given from now on, each membership audited as such.
pub async fn remove_provider_with(
    store: &Store,
    tenant_slug: &str,
    slug: &str,
    keep_memberships: bool,
    change: &Change<'_>,
) -> Result<store::ProviderRemoval> {
    let tenant = tenant(store, tenant_slug).await?;
    match store
        .remove_identity_provider(tenant.id, slug, keep_memberships, change)
        .await?
    {
        Some(removal) => Ok(removal),
        None => Err(Error::UnknownProvider {
            tenant: tenant.slug,
            slug: slug.to_owned(),
        }),
    }
}

/// `idp test`: try the provider `slug` of the tenant (LDAP: service bind, in-chain support,
/// and a sample user's groups and the roles they map to; OIDC: discovery). Changes
/// nothing but the audit log (`identity_provider.test`, with the outcome).
pub async fn test_provider(
    store: &Store,
    sealer: &crate::secretbox::SecretBox,
    tenant_slug: &str,
    slug: &str,
    username: Option<&str>,
    change: &Change<'_>,
) -> Result<auth::providers::ProviderReport> {
    let tenant = tenant(store, tenant_slug).await?;
    let unknown = || Error::UnknownProvider {
        tenant: tenant.slug.clone(),
        slug: slug.to_owned(),
    };
    let record = store
        .identity_provider(tenant.id, slug)
        .await?
        .ok_or_else(unknown)?;
    let username = username.map(str::trim).filter(|u| !u.is_empty());
    if let Some(name) = username
        && (name.chars().count() > auth::providers::MAX_SAMPLE_USERNAME_CHARS
            || name.chars().any(char::is_control))
    {
        return Err(Error::Provider(auth::providers::Error::Invalid(format!(
            "the sample user name must be 1-{} characters without control characters",
            auth::providers::MAX_SAMPLE_USERNAME_CHARS
        ))));
    }
    let kind = auth::providers::Kind::parse(&record.kind).ok_or_else(unknown)?;
    let settings = auth::providers::open_settings(kind, &record.settings, sealer)?;
    let mappings: Vec<auth::providers::GroupMapping> = serde_json::from_str(&record.group_mappings)
        .map_err(|e| {
            Error::Provider(auth::providers::Error::Invalid(format!(
                "stored group mappings: {e}"
            )))
        })?;
    let report = auth::providers::test_provider(record.id, &settings, &mappings, username).await;
    let detail = serde_json::json!({
        "provider": record.slug,
        "kind": report.kind,
        "ok": report.ok,
        "username": username,
        "error": report.error.as_deref().map(|e| e.chars().take(300).collect::<String>()),
        "role": report.mapped.as_ref().and_then(|m| m.role.clone()),
    });
    store
        .audit_provider_sign_in(
            change,
            Some(tenant.id),
            "identity_provider.test",
            &format!("identity_provider:{}", record.slug),
            detail,
        )
        .await?;
    Ok(report)
}
