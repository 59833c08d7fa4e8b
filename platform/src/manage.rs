//! What people do to apps and to their own API tokens, for the REST API and the web
//! console alike: find the tenant and the app as the principal may see them, ask the
//! policy, call the store (which writes the audit row). One function per action; `http::api`
//! and `http::console` extract, call one of these and map the [`Refusal`].

use crate::auth;
use crate::ids::{Slug, TenantId};
use crate::policy::{self, Action, Principal, Resource};
use crate::settings::{self, MAX_SETTINGS_PER_APP};
use crate::state::AppState;
use crate::store::{
    self, AppAccess, AppRecord, Change, DeletedApp, GalleryApp, GalleryQuery, SettingWrite,
    StoredSetting, Tenant, TokenSummary, VersionRecord,
};
use crate::tenancy::{Role, Visibility};

/// Why an action was not done. The REST API and the console each render it their way.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    /// Nobody is signed in.
    #[error("authentication required")]
    Unauthenticated,
    /// No such thing, or the principal may not see it (the same answer).
    #[error("no {what} {name:?}")]
    NotFound {
        /// `tenant`, `app`, `token`, …
        what: &'static str,
        /// The name asked for.
        name: String,
    },
    /// The principal sees the thing but its role does not allow the action.
    #[error("your role does not allow this")]
    Forbidden,
    /// A value in the request is not acceptable (the message says why).
    #[error("{0}")]
    Invalid(String),
    /// The tenant is suspended: only superadmins reach it until it is resumed.
    #[error("{}", crate::error::TENANT_SUSPENDED)]
    Suspended,
    /// The store refused or failed.
    #[error(transparent)]
    Store(#[from] store::Error),
    /// Something the client cannot act on (logged by the renderer).
    #[error("{0}")]
    Internal(String),
}

impl From<crate::tenancy::InvalidName> for Refusal {
    fn from(error: crate::tenancy::InvalidName) -> Self {
        Refusal::Invalid(error.to_string())
    }
}

impl From<crate::admin::Error> for Refusal {
    fn from(error: crate::admin::Error) -> Self {
        use crate::admin::Error as E;
        match error {
            E::Store(e) => Refusal::Store(e),
            E::UnknownProvider { slug, .. } => Refusal::NotFound {
                what: "identity provider",
                name: slug,
            },
            E::UnknownTenant(name) => Refusal::NotFound {
                what: "tenant",
                name,
            },
            E::UnknownUser(name) => Refusal::NotFound { what: "user", name },
            E::UnknownApp(name) => Refusal::NotFound { what: "app", name },
            E::Auth(e) => {
                tracing::error!(error = %e, "an administrative action failed");
                Refusal::Internal("the action failed".into())
            }
            other => Refusal::Invalid(other.to_string()),
        }
    }
}

impl From<crate::datasources::Error> for Refusal {
    fn from(error: crate::datasources::Error) -> Self {
        use crate::datasources::Error as E;
        match error {
            E::Invalid(message) => Refusal::Invalid(message),
            E::NotFound(name) => Refusal::NotFound {
                what: "data source",
                name,
            },
            E::Store(e) => Refusal::Store(e),
            other @ E::Unreadable(_) => Refusal::Internal(other.to_string()),
        }
    }
}

type Result<T> = std::result::Result<T, Refusal>;

/// The tenant `slug`, if the principal may see it.
pub async fn tenant(state: &AppState, principal: &Principal, slug: &str) -> Result<Tenant> {
    if matches!(principal, Principal::Anonymous) {
        return Err(Refusal::Unauthenticated);
    }
    let missing = || Refusal::NotFound {
        what: "tenant",
        name: slug.to_owned(),
    };
    let parsed = Slug::parse(slug).map_err(|_| missing())?;
    let tenant = state
        .store
        .tenant_by_slug(&parsed)
        .await?
        .ok_or_else(missing)?;
    if policy::authorize(principal, Action::ViewTenant, &Resource::Tenant(tenant.id)).is_err() {
        return Err(missing());
    }
    // Its members (and their tokens) are told, superadmins still manage it.
    let superadmin = matches!(principal, Principal::User(u) if u.superadmin);
    if tenant.suspended_at.is_some() && !superadmin {
        return Err(Refusal::Suspended);
    }
    Ok(tenant)
}

/// The app `name` of `tenant`, if the principal may open it.
pub async fn app(
    state: &AppState,
    principal: &Principal,
    tenant: &Tenant,
    name: &str,
) -> Result<AppAccess> {
    let missing = || Refusal::NotFound {
        what: "app",
        name: name.to_owned(),
    };
    let parsed = Slug::parse(name).map_err(|_| missing())?;
    let tenant_slug = Slug::parse(&tenant.slug).map_err(|_| missing())?;
    let access = state
        .store
        .app_access(&tenant_slug, &parsed, principal.user_id())
        .await?
        .filter(|a| a.tenant_id == tenant.id)
        .ok_or_else(missing)?;
    if policy::authorize(principal, Action::ViewApp, &Resource::App(access)).is_err() {
        return Err(missing());
    }
    Ok(access)
}

/// Allowed, or [`Refusal::Forbidden`] (for things the principal may already see).
pub fn allow(principal: &Principal, action: Action, resource: &Resource) -> Result<()> {
    policy::authorize(principal, action, resource).map_err(|denied| {
        tracing::debug!(principal = %principal.audit_actor(), %denied, "action refused");
        Refusal::Forbidden
    })
}

/// Whether the principal may do `action` on the app (for showing or hiding a form; the
/// action itself asks again).
pub fn may(principal: &Principal, action: Action, access: AppAccess) -> bool {
    policy::authorize(principal, action, &Resource::App(access)).is_ok()
}

/// The tenant and app named, the app openable by the principal and `action` allowed on it.
pub(crate) async fn app_for(
    state: &AppState,
    principal: &Principal,
    (tenant, app): (&str, &str),
    action: Action,
) -> Result<(Tenant, AppAccess)> {
    let tenant = self::tenant(state, principal, tenant).await?;
    let access = self::app(state, principal, &tenant, app).await?;
    allow(principal, action, &Resource::App(access))?;
    Ok((tenant, access))
}

/// The app's record.
pub async fn app_record(state: &AppState, access: &AppAccess) -> Result<AppRecord> {
    state
        .store
        .app_record(access.tenant_id, access.app_id)
        .await?
        .ok_or_else(|| Refusal::NotFound {
            what: "app",
            name: access.app_id.to_string(),
        })
}

/// Make a kept version live again (`to`, or the newest older than the live one): the
/// REST rollback, the console's rollback button and `tessera apps rollback` all end in
/// [`store::Store::rollback`]; this is the path of the first two. Returns the version now live.
pub async fn rollback(
    state: &AppState,
    principal: &Principal,
    app: (&str, &str),
    to: Option<i64>,
    change: &Change<'_>,
) -> Result<VersionRecord> {
    let (tenant, access) = app_for(state, principal, app, Action::DeployApp).await?;
    if let Some(version) = to
        && version < 1
    {
        return Err(Refusal::Invalid(format!(
            "version must be a version number (1 or more), got {version}"
        )));
    }
    let done = state
        .store
        .rollback(tenant.id, access.app_id, to, change)
        .await?;
    let versions = state.store.list_versions(tenant.id, access.app_id).await?;
    versions
        .into_iter()
        .find(|v| v.number == done.to)
        .ok_or_else(|| Refusal::NotFound {
            what: "version",
            name: done.to.to_string(),
        })
}

/// Change who may open the app (`public`, `tenant` or `restricted`).
pub async fn set_visibility(
    state: &AppState,
    principal: &Principal,
    app: (&str, &str),
    visibility: &str,
    change: &Change<'_>,
) -> Result<AppRecord> {
    let (tenant, access) = app_for(state, principal, app, Action::ManageApp).await?;
    let visibility: Visibility = visibility.parse()?;
    state
        .store
        .set_app_visibility(tenant.id, access.app_id, visibility, change)
        .await?;
    app_record(state, &access).await
}

/// Set one setting or secret of the app (sealed when secret). Returns it as stored.
pub async fn set_setting(
    state: &AppState,
    principal: &Principal,
    app: (&str, &str),
    (name, value, secret): (&str, &str, bool),
    change: &Change<'_>,
) -> Result<StoredSetting> {
    let (tenant, access) = app_for(state, principal, app, Action::DeployApp).await?;
    settings::check_name(name).map_err(|e| Refusal::Invalid(e.to_string()))?;
    settings::check_value(name, value).map_err(|e| Refusal::Invalid(e.to_string()))?;
    let write = SettingWrite {
        name,
        secret,
        stored_value: settings::stored_value(&state.secrets, access.app_id, name, value, secret),
    };
    state
        .store
        .set_app_settings(
            tenant.id,
            access.app_id,
            &[write],
            MAX_SETTINGS_PER_APP,
            change,
        )
        .await?;
    state
        .store
        .app_settings(access.app_id)
        .await?
        .into_iter()
        .find(|s| s.name == name)
        .ok_or_else(|| Refusal::NotFound {
            what: "setting",
            name: name.to_owned(),
        })
}

/// Remove one setting of the app (nothing when it has none by that name).
pub async fn unset_setting(
    state: &AppState,
    principal: &Principal,
    app: (&str, &str),
    name: &str,
    change: &Change<'_>,
) -> Result<()> {
    let (tenant, access) = app_for(state, principal, app, Action::DeployApp).await?;
    state
        .store
        .unset_app_settings(tenant.id, access.app_id, &[name], change)
        .await?;
    Ok(())
}

/// The app's settings, secrets included (their values are sealed: callers show only that
/// they are set).
pub async fn list_settings(
    state: &AppState,
    principal: &Principal,
    app: (&str, &str),
) -> Result<Vec<StoredSetting>> {
    let (_, access) = app_for(state, principal, app, Action::DeployApp).await?;
    Ok(state.store.app_settings(access.app_id).await?)
}

/// What an app's page shows: the app, its versions, its settings (for who may deploy
/// it) and what the principal may do.
#[derive(Clone, Debug)]
pub struct AppOverview {
    /// The app.
    pub record: AppRecord,
    /// Its kept versions, newest first.
    pub versions: Vec<VersionRecord>,
    /// Its settings (secrets sealed); empty for who may not deploy it.
    pub settings: Vec<StoredSetting>,
    /// The principal may deploy it (roll back, change settings).
    pub may_deploy: bool,
    /// The principal may manage it (visibility, deletion).
    pub may_manage: bool,
    /// The live version's callbacks (for who may deploy it; `None` without a live
    /// version or when it does not load: the page says so).
    pub dependencies: Option<crate::dash::dependencies::Dependencies>,
    /// Its latest log lines, oldest first, and where to follow them from (who may deploy
    /// it; `None` otherwise or when the shared feed did not answer).
    pub log: Option<crate::applog::Tail>,
}

/// The app's page, for who may open it.
pub async fn app_overview(
    state: &AppState,
    principal: &Principal,
    (tenant, app): (&str, &str),
) -> Result<AppOverview> {
    let tenant = self::tenant(state, principal, tenant).await?;
    let access = self::app(state, principal, &tenant, app).await?;
    let record = app_record(state, &access).await?;
    let versions = state.store.list_versions(tenant.id, access.app_id).await?;
    let may_deploy = may(principal, Action::DeployApp, access);
    let settings = if may_deploy {
        state.store.app_settings(access.app_id).await?
    } else {
        Vec::new()
    };
    // The graph comes from the component the runtime serves (loaded once, kept while it
    // is live), never from anything the page could be told.
    let dependencies = match (may_deploy, record.live_version) {
        (true, Some(_)) => live_dependencies(state, &tenant.slug, app).await,
        _ => None,
    };
    Ok(AppOverview {
        record,
        versions,
        settings,
        may_deploy,
        may_manage: may(principal, Action::ManageApp, access),
        dependencies,
        log: match may_deploy {
            true => state
                .app_log
                .tail(&tenant.slug, app, None, crate::applog::RECENT_LINES)
                .await
                .inspect_err(
                    |error| tracing::warn!(%error, "reading an app's log for its page failed"),
                )
                .ok(),
            false => None,
        },
    })
}

/// Log lines answered when the caller gives no limit.
pub const DEFAULT_LOG_LINES: i64 = 100;

/// The app's log lines after `after` (the `next` of an earlier answer; without it, the
/// latest `limit`, default [`DEFAULT_LOG_LINES`], at most
/// [`crate::applog::shared::MAX_TAIL_LINES`]), for who may deploy it: what its guests wrote (stdout, stderr,
/// `host.log`) and its failed callbacks with their error ids, from every replica when
/// they share Redis.
pub async fn app_log(
    state: &AppState,
    principal: &Principal,
    app: (&str, &str),
    after: Option<&str>,
    limit: Option<i64>,
) -> Result<crate::applog::Tail> {
    let most = crate::applog::shared::MAX_TAIL_LINES;
    let limit = match limit.unwrap_or(DEFAULT_LOG_LINES) {
        n if n >= 1 && n as usize <= most => n as usize,
        n => {
            return Err(Refusal::Invalid(format!(
                "limit must be between 1 and {most} (got {n})"
            )));
        }
    };
    let (tenant, _) = app_for(state, principal, app, Action::DeployApp).await?;
    state
        .app_log
        .tail(&tenant.slug, app.1, after, limit)
        .await
        .map_err(|error| match error {
            crate::applog::TailError::BadCursor(_) => Refusal::Invalid(error.to_string()),
            crate::applog::TailError::Unavailable(_) => Refusal::Internal(error.to_string()),
        })
}

async fn live_dependencies(
    state: &AppState,
    tenant: &str,
    app: &str,
) -> Option<crate::dash::dependencies::Dependencies> {
    let (tenant, app) = (Slug::parse(tenant).ok()?, Slug::parse(app).ok()?);
    match state.runtime.live(&tenant, &app).await {
        Ok(live) => live.map(|live| live.dependencies.clone()),
        Err(e) => {
            tracing::warn!(error = %e, %tenant, %app, "loading the live version for its callback graph failed");
            None
        }
    }
}

/// The principal's own tokens in each of its tenants, with the tenant's slug.
pub async fn own_tokens(
    state: &AppState,
    principal: &Principal,
) -> Result<Vec<(String, TokenSummary)>> {
    let Some(user) = principal.user_id() else {
        return Err(Refusal::Unauthenticated);
    };
    let mut all = Vec::new();
    for tenant in state.store.list_tenants(Some(user), None, 100).await? {
        for token in state.store.list_tokens(tenant.id, Some(user)).await? {
            all.push((tenant.slug.clone(), token));
        }
    }
    Ok(all)
}

/// Delete the app with its versions, assets, data files, settings and grants (audited
/// `app.delete`), then its git repository. Who may manage the app may delete it.
pub async fn delete_app(
    state: &AppState,
    principal: &Principal,
    app: (&str, &str),
    change: &Change<'_>,
) -> Result<DeletedApp> {
    let (tenant, access) = app_for(state, principal, app, Action::ManageApp).await?;
    let deleted = state
        .store
        .delete_app(tenant.id, access.app_id, change)
        .await?;
    // The rows are gone; the repository on disk follows. A failure here leaves a
    // repository without an app, which a push of the same name would reuse: logged.
    if let (Ok(t), Ok(a)) = (Slug::parse(app.0), Slug::parse(app.1)) {
        let (_, dir) = crate::deploy::push::repo_dir(state, &t, &a);
        match tokio::fs::remove_dir_all(&dir).await {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::error!(error = %e, dir = %dir.display(), "removing a deleted app's repository failed");
            }
        }
    }
    Ok(deleted)
}

/// A token just created: its secret is shown once.
#[derive(Clone, Debug)]
pub struct NewToken {
    /// The whole token (`tsr_<id>_<secret>`).
    pub token: String,
    /// Its public id.
    pub public_id: String,
    /// Its role.
    pub role: Role,
    /// Its expiry.
    pub expires_at: Option<i64>,
}

/// Create an API token for the principal's own user in `tenant`, with `role` (at most
/// theirs; theirs when `None`).
pub async fn issue_token(
    state: &AppState,
    principal: &Principal,
    tenant: &str,
    role: Option<&str>,
    expires_at: Option<i64>,
    change: &Change<'_>,
) -> Result<NewToken> {
    let tenant = self::tenant(state, principal, tenant).await?;
    allow(principal, Action::CreateToken, &Resource::Tenant(tenant.id))?;
    let user = principal
        .user_id()
        .ok_or_else(|| Refusal::Invalid("only a user can own a token".into()))?;
    // A superadmin who is no member may create tokens of any role.
    let ceiling = principal.role_in(tenant.id).unwrap_or(Role::Owner);
    let role = match role {
        Some(role) => role.parse::<Role>()?,
        None => ceiling,
    };
    if role > ceiling {
        return Err(Refusal::Invalid(format!(
            "a token's role cannot exceed yours ({ceiling})"
        )));
    }
    if expires_at.is_some_and(|at| at <= state.clock.now_millis()) {
        return Err(Refusal::Invalid("expires_at must be in the future".into()));
    }
    let issued = auth::token::issue(&state.store, tenant.id, user, role, expires_at, change)
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "creating a token failed");
            Refusal::Internal("creating the token failed".into())
        })?;
    Ok(NewToken {
        token: issued.token,
        public_id: issued.public_id,
        role,
        expires_at,
    })
}

/// The tenant's tokens the principal may list: all of them for who manages members, their
/// own otherwise.
pub async fn list_tokens(
    state: &AppState,
    principal: &Principal,
    tenant: &str,
) -> Result<Vec<TokenSummary>> {
    let tenant = self::tenant(state, principal, tenant).await?;
    Ok(tokens_of(state, principal, tenant.id).await?)
}

async fn tokens_of(
    state: &AppState,
    principal: &Principal,
    tenant: TenantId,
) -> store::Result<Vec<TokenSummary>> {
    let all =
        policy::authorize(principal, Action::ManageMembers, &Resource::Tenant(tenant)).is_ok();
    let only = if all { None } else { principal.user_id() };
    state.store.list_tokens(tenant, only).await
}

/// Revoke a token of `tenant`: one's own, or anyone's for who manages members.
pub async fn revoke_token(
    state: &AppState,
    principal: &Principal,
    tenant: &str,
    public_id: &str,
    change: &Change<'_>,
) -> Result<()> {
    let tenant = self::tenant(state, principal, tenant).await?;
    let token = state
        .store
        .tenant_token(tenant.id, public_id)
        .await?
        .ok_or_else(|| Refusal::NotFound {
            what: "token",
            name: public_id.to_owned(),
        })?;
    if principal.user_id() != Some(token.user_id) {
        allow(
            principal,
            Action::ManageMembers,
            &Resource::Tenant(tenant.id),
        )?;
    }
    state
        .store
        .revoke_token_in(Some(tenant.id), public_id, change)
        .await?;
    Ok(())
}

/// Apps per page of the home page's gallery.
pub const GALLERY_PAGE: usize = 50;
/// Rows read per query while filling a gallery page: most pages take one query.
const GALLERY_BATCH: i64 = 200;
/// Queries at most per page, so a person who may open few of many candidates gets a
/// short page with a "more" link rather than a scan of every app.
const GALLERY_MAX_QUERIES: usize = 10;

/// One page of the gallery.
#[derive(Clone, Debug, Default)]
pub struct Gallery {
    /// The apps, in tenant and name order.
    pub apps: Vec<GalleryApp>,
    /// Where the next page starts (`tenant/app`), if there may be one.
    pub next: Option<String>,
}

/// The live apps the principal may open, matching `search`, in `tenant` (a slug; all
/// when `None`), after `after` (`tenant/app`).
pub async fn gallery(
    state: &AppState,
    principal: &Principal,
    search: &str,
    tenant_filter: Option<&str>,
    after: Option<&str>,
) -> Result<Gallery> {
    let (mut tenant, mut app) = after
        .and_then(|a| a.split_once('/'))
        .map(|(t, a)| (t.to_owned(), a.to_owned()))
        .unwrap_or_default();
    let every_tenant = matches!(principal, Principal::User(u) if u.superadmin);
    let mut page = Gallery::default();
    for _ in 0..GALLERY_MAX_QUERIES {
        let rows = state
            .store
            .gallery(GalleryQuery {
                user: principal.user_id(),
                every_tenant,
                tenant: tenant_filter,
                search,
                after: (&tenant, &app),
                limit: GALLERY_BATCH,
            })
            .await?;
        let exhausted = (rows.len() as i64) < GALLERY_BATCH;
        for row in rows {
            (tenant, app) = (row.tenant.clone(), row.name.clone());
            if may(principal, Action::ViewApp, row.access) {
                page.apps.push(row);
                if page.apps.len() == GALLERY_PAGE {
                    page.next = Some(format!("{tenant}/{app}"));
                    return Ok(page);
                }
            }
        }
        if exhausted {
            return Ok(page);
        }
    }
    page.next = Some(format!("{tenant}/{app}"));
    Ok(page)
}
