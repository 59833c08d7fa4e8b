//! `/api/v1/tenants/{tenant}/apps`: apps, their versions, visibility and access lists.

use axum::Json;
use axum::extract::State;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::schema::{
    AppAccessBody, AppBody, AppPage, Errors, LogBody, LogQuery, PageQuery, VersionBody,
};
use super::{ApiJson, ApiPath, ApiQuery, RemoteAddr, scope};
use crate::error::ApiError;
use crate::ids::{TeamId, UserId};
use crate::manage;
use crate::policy::{self, Action, Principal, Resource};
use crate::state::AppState;
use crate::store::AppAccess;
use crate::usage;

/// The tenant's apps the principal may open, by name.
#[utoipa::path(
    get, path = "/api/v1/tenants/{tenant}/apps", tag = "apps",
    params(("tenant" = String, Path, description = "Tenant slug"), PageQuery),
    security(("bearer" = [])),
    responses((status = 200, body = AppPage), Errors)
)]
pub async fn list_apps(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(slug): ApiPath<String>,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> Result<Json<AppPage>, ApiError> {
    let tenant = scope::tenant(&state, &principal, &slug).await?;
    let limit = scope::limit(&query)?;
    let page = state
        .store
        .list_apps(
            tenant.id,
            principal.user_id(),
            query.cursor.as_deref(),
            limit,
        )
        .await?;
    let next_cursor = (page.len() as i64 == limit)
        .then(|| page.last().map(|(a, _)| a.name.clone()))
        .flatten();
    let items = page
        .into_iter()
        .filter(|(_, access)| {
            policy::authorize(&principal, Action::ViewApp, &Resource::App(*access)).is_ok()
        })
        .map(|(app, _)| AppBody::from(app))
        .collect();
    Ok(Json(AppPage { items, next_cursor }))
}

async fn app_body(state: &AppState, access: &AppAccess) -> Result<AppBody, ApiError> {
    state
        .store
        .app_record(access.tenant_id, access.app_id)
        .await?
        .map(AppBody::from)
        .ok_or_else(|| ApiError::not_found("app", &access.app_id.to_string()))
}

/// One app.
#[utoipa::path(
    get, path = "/api/v1/tenants/{tenant}/apps/{app}", tag = "apps",
    params(
        ("tenant" = String, Path, description = "Tenant slug"),
        ("app" = String, Path, description = "App name")
    ),
    security(("bearer" = [])),
    responses((status = 200, body = AppBody), Errors)
)]
pub async fn get_app(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath((slug, name)): ApiPath<(String, String)>,
) -> Result<Json<AppBody>, ApiError> {
    let tenant = scope::tenant(&state, &principal, &slug).await?;
    let access = scope::app(&state, &principal, &tenant, &name).await?;
    Ok(Json(app_body(&state, &access).await?))
}

/// A change of an app.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateApp {
    /// `public`, `tenant` or `restricted`.
    pub visibility: String,
}

/// Change who may open an app (admins, and authors who collaborate on it).
#[utoipa::path(
    patch, path = "/api/v1/tenants/{tenant}/apps/{app}", tag = "apps",
    params(
        ("tenant" = String, Path, description = "Tenant slug"),
        ("app" = String, Path, description = "App name")
    ),
    request_body = UpdateApp,
    security(("bearer" = [])),
    responses((status = 200, body = AppBody), Errors)
)]
pub async fn update_app(
    State(state): State<AppState>,
    principal: Principal,
    RemoteAddr(remote): RemoteAddr,
    ApiPath((slug, name)): ApiPath<(String, String)>,
    ApiJson(body): ApiJson<UpdateApp>,
) -> Result<Json<AppBody>, ApiError> {
    let actor = principal.audit_actor();
    let change = scope::change(&state, &actor, &remote);
    let app = manage::set_visibility(
        &state,
        &principal,
        (&slug, &name),
        &body.visibility,
        &change,
    )
    .await?;
    Ok(Json(AppBody::from(app)))
}

/// Delete an app with its repository, versions, assets, data files, settings and grants
/// (whoever may manage it), audited as `app.delete`. Its name is free again afterwards.
#[utoipa::path(
    delete, path = "/api/v1/tenants/{tenant}/apps/{app}", tag = "apps",
    params(
        ("tenant" = String, Path, description = "Tenant slug"),
        ("app" = String, Path, description = "App name")
    ),
    security(("bearer" = [])),
    responses((status = 204, description = "The app is deleted"), Errors)
)]
pub async fn delete_app(
    State(state): State<AppState>,
    principal: Principal,
    RemoteAddr(remote): RemoteAddr,
    ApiPath((slug, name)): ApiPath<(String, String)>,
) -> Result<Response, ApiError> {
    let actor = principal.audit_actor();
    let change = scope::change(&state, &actor, &remote);
    manage::delete_app(&state, &principal, (&slug, &name), &change).await?;
    Ok(scope::no_content())
}

/// The app's versions, newest first.
#[utoipa::path(
    get, path = "/api/v1/tenants/{tenant}/apps/{app}/versions", tag = "apps",
    params(
        ("tenant" = String, Path, description = "Tenant slug"),
        ("app" = String, Path, description = "App name")
    ),
    security(("bearer" = [])),
    responses((status = 200, body = Vec<VersionBody>), Errors)
)]
pub async fn list_versions(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath((slug, name)): ApiPath<(String, String)>,
) -> Result<Json<Vec<VersionBody>>, ApiError> {
    let tenant = scope::tenant(&state, &principal, &slug).await?;
    let access = scope::app(&state, &principal, &tenant, &name).await?;
    let versions = state.store.list_versions(tenant.id, access.app_id).await?;
    Ok(Json(versions.into_iter().map(VersionBody::from).collect()))
}

/// The app's log, for who may deploy it: what its guests wrote (stdout, stderr,
/// `host.log`) and its failed callbacks with their error ids, oldest first; follow it by
/// asking again with `after` set to the answer's `next`.
#[utoipa::path(
    get, path = "/api/v1/tenants/{tenant}/apps/{app}/logs", tag = "apps",
    params(
        ("tenant" = String, Path, description = "Tenant slug"),
        ("app" = String, Path, description = "App name"),
        LogQuery
    ),
    security(("bearer" = [])),
    responses((status = 200, body = LogBody), Errors)
)]
pub async fn app_logs(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath((slug, name)): ApiPath<(String, String)>,
    ApiQuery(query): ApiQuery<LogQuery>,
) -> Result<Json<LogBody>, ApiError> {
    let tail = manage::app_log(
        &state,
        &principal,
        (&slug, &name),
        query.after.as_deref(),
        query.limit,
    )
    .await?;
    Ok(Json(tail.into()))
}

/// Which version a rollback makes live.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Rollback {
    /// A kept version's number; without it, the newest version older than the live one.
    #[schema(minimum = 1)]
    pub version: Option<i64>,
}

/// Make a kept version live again (who may deploy the app). One atomic switch, audited as
/// `app.rollback`; callbacks in flight finish on the version they started on. Rolling
/// back to the live version changes nothing. 404 for a version that is not kept (pruned
/// or never deployed), 409 when there is no older version to fall back to.
#[utoipa::path(
    post, path = "/api/v1/tenants/{tenant}/apps/{app}/rollback", tag = "apps",
    params(
        ("tenant" = String, Path, description = "Tenant slug"),
        ("app" = String, Path, description = "App name")
    ),
    request_body(content = Rollback, description = "The target; `{}` for the previous version"),
    security(("bearer" = [])),
    responses((status = 200, body = VersionBody, description = "The version now live"), Errors)
)]
pub async fn rollback_app(
    State(state): State<AppState>,
    principal: Principal,
    RemoteAddr(remote): RemoteAddr,
    ApiPath((slug, name)): ApiPath<(String, String)>,
    ApiJson(body): ApiJson<Rollback>,
) -> Result<Json<VersionBody>, ApiError> {
    let actor = principal.audit_actor();
    let change = scope::change(&state, &actor, &remote);
    let live = manage::rollback(&state, &principal, (&slug, &name), body.version, &change).await?;
    Ok(Json(VersionBody::from(live)))
}

/// The app's collaborators and grants (whoever may manage it).
#[utoipa::path(
    get, path = "/api/v1/tenants/{tenant}/apps/{app}/access", tag = "apps",
    params(
        ("tenant" = String, Path, description = "Tenant slug"),
        ("app" = String, Path, description = "App name")
    ),
    security(("bearer" = [])),
    responses((status = 200, body = AppAccessBody), Errors)
)]
pub async fn get_app_access(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath((slug, name)): ApiPath<(String, String)>,
) -> Result<Json<AppAccessBody>, ApiError> {
    let tenant = scope::tenant(&state, &principal, &slug).await?;
    let access = scope::app(&state, &principal, &tenant, &name).await?;
    scope::allow(&principal, Action::ManageApp, &Resource::App(access))?;
    let lists = state
        .store
        .app_access_lists(tenant.id, access.app_id)
        .await?;
    Ok(Json(AppAccessBody {
        collaborators: lists.collaborators.into_iter().map(|u| u.0).collect(),
        user_grants: lists.user_grants.into_iter().map(|u| u.0).collect(),
        team_grants: lists.team_grants.into_iter().map(|t| t.0).collect(),
    }))
}

/// Which access list a PUT or DELETE changes.
#[derive(Clone, Copy)]
enum List {
    Collaborators,
    UserGrants,
    TeamGrants,
}

async fn change_list(
    state: &AppState,
    principal: &Principal,
    remote: &Option<String>,
    (slug, name, id): (String, String, i64),
    list: List,
    add: bool,
) -> Result<Response, ApiError> {
    let tenant = scope::tenant(state, principal, &slug).await?;
    let access = scope::app(state, principal, &tenant, &name).await?;
    scope::allow(principal, Action::ManageApp, &Resource::App(access))?;
    let actor = principal.audit_actor();
    let change = scope::change(state, &actor, remote);
    let (store, t, a) = (&state.store, tenant.id, access.app_id);
    match (list, add) {
        (List::Collaborators, true) => store.add_collaborator(t, a, UserId(id), &change).await?,
        (List::UserGrants, true) => store.grant_app_to_user(t, a, UserId(id), &change).await?,
        (List::TeamGrants, true) => store.grant_app_to_team(t, a, TeamId(id), &change).await?,
        (List::Collaborators, false) => {
            store.remove_collaborator(t, a, UserId(id), &change).await?;
        }
        (List::UserGrants, false) => {
            store
                .revoke_app_from_user(t, a, UserId(id), &change)
                .await?;
        }
        (List::TeamGrants, false) => {
            store
                .revoke_app_from_team(t, a, TeamId(id), &change)
                .await?;
        }
    }
    Ok(scope::no_content())
}

/// Let a member of the tenant deploy the app.
#[utoipa::path(
    put, path = "/api/v1/tenants/{tenant}/apps/{app}/collaborators/{user_id}", tag = "apps",
    params(
        ("tenant" = String, Path, description = "Tenant slug"),
        ("app" = String, Path, description = "App name"),
        ("user_id" = i64, Path, description = "User id of a member of the tenant")
    ),
    security(("bearer" = [])),
    responses((status = 204, description = "The user is a collaborator"), Errors)
)]
pub async fn add_collaborator(
    State(state): State<AppState>,
    principal: Principal,
    RemoteAddr(remote): RemoteAddr,
    ApiPath(path): ApiPath<(String, String, i64)>,
) -> Result<Response, ApiError> {
    change_list(&state, &principal, &remote, path, List::Collaborators, true).await
}

/// Stop a user collaborating on the app (a no-op when they do not).
#[utoipa::path(
    delete, path = "/api/v1/tenants/{tenant}/apps/{app}/collaborators/{user_id}", tag = "apps",
    params(
        ("tenant" = String, Path, description = "Tenant slug"),
        ("app" = String, Path, description = "App name"),
        ("user_id" = i64, Path, description = "User id")
    ),
    security(("bearer" = [])),
    responses((status = 204, description = "The user is not a collaborator"), Errors)
)]
pub async fn remove_collaborator(
    State(state): State<AppState>,
    principal: Principal,
    RemoteAddr(remote): RemoteAddr,
    ApiPath(path): ApiPath<(String, String, i64)>,
) -> Result<Response, ApiError> {
    change_list(
        &state,
        &principal,
        &remote,
        path,
        List::Collaborators,
        false,
    )
    .await
}

/// Let a member of the tenant open the (restricted) app.
#[utoipa::path(
    put, path = "/api/v1/tenants/{tenant}/apps/{app}/grants/users/{user_id}", tag = "apps",
    params(
        ("tenant" = String, Path, description = "Tenant slug"),
        ("app" = String, Path, description = "App name"),
        ("user_id" = i64, Path, description = "User id of a member of the tenant")
    ),
    security(("bearer" = [])),
    responses((status = 204, description = "The user is granted the app"), Errors)
)]
pub async fn grant_app_to_user(
    State(state): State<AppState>,
    principal: Principal,
    RemoteAddr(remote): RemoteAddr,
    ApiPath(path): ApiPath<(String, String, i64)>,
) -> Result<Response, ApiError> {
    change_list(&state, &principal, &remote, path, List::UserGrants, true).await
}

/// Take a user's grant of the app away (a no-op when there is none).
#[utoipa::path(
    delete, path = "/api/v1/tenants/{tenant}/apps/{app}/grants/users/{user_id}", tag = "apps",
    params(
        ("tenant" = String, Path, description = "Tenant slug"),
        ("app" = String, Path, description = "App name"),
        ("user_id" = i64, Path, description = "User id")
    ),
    security(("bearer" = [])),
    responses((status = 204, description = "The user is not granted the app"), Errors)
)]
pub async fn revoke_app_from_user(
    State(state): State<AppState>,
    principal: Principal,
    RemoteAddr(remote): RemoteAddr,
    ApiPath(path): ApiPath<(String, String, i64)>,
) -> Result<Response, ApiError> {
    change_list(&state, &principal, &remote, path, List::UserGrants, false).await
}

/// Let every member of a team of the tenant open the (restricted) app.
#[utoipa::path(
    put, path = "/api/v1/tenants/{tenant}/apps/{app}/grants/teams/{team_id}", tag = "apps",
    params(
        ("tenant" = String, Path, description = "Tenant slug"),
        ("app" = String, Path, description = "App name"),
        ("team_id" = i64, Path, description = "Team id")
    ),
    security(("bearer" = [])),
    responses((status = 204, description = "The team is granted the app"), Errors)
)]
pub async fn grant_app_to_team(
    State(state): State<AppState>,
    principal: Principal,
    RemoteAddr(remote): RemoteAddr,
    ApiPath(path): ApiPath<(String, String, i64)>,
) -> Result<Response, ApiError> {
    change_list(&state, &principal, &remote, path, List::TeamGrants, true).await
}

/// Take a team's grant of the app away (a no-op when there is none).
#[utoipa::path(
    delete, path = "/api/v1/tenants/{tenant}/apps/{app}/grants/teams/{team_id}", tag = "apps",
    params(
        ("tenant" = String, Path, description = "Tenant slug"),
        ("app" = String, Path, description = "App name"),
        ("team_id" = i64, Path, description = "Team id")
    ),
    security(("bearer" = [])),
    responses((status = 204, description = "The team is not granted the app"), Errors)
)]
pub async fn revoke_app_from_team(
    State(state): State<AppState>,
    principal: Principal,
    RemoteAddr(remote): RemoteAddr,
    ApiPath(path): ApiPath<(String, String, i64)>,
) -> Result<Response, ApiError> {
    change_list(&state, &principal, &remote, path, List::TeamGrants, false).await
}

/// The span of a usage answer.
#[derive(Clone, Copy, Debug, Default, Deserialize, ToSchema)]
pub enum UsageWindow {
    /// The last hour, one point a minute.
    #[default]
    #[serde(rename = "1h")]
    Hour,
    /// The last six hours, one point every five minutes.
    #[serde(rename = "6h")]
    SixHours,
    /// The last 24 hours, one point every fifteen minutes.
    #[serde(rename = "24h")]
    Day,
}

impl From<UsageWindow> for usage::Window {
    fn from(window: UsageWindow) -> Self {
        match window {
            UsageWindow::Hour => usage::Window::Hour,
            UsageWindow::SixHours => usage::Window::SixHours,
            UsageWindow::Day => usage::Window::Day,
        }
    }
}

/// `GET …/usage?window=6h`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct UsageQuery {
    /// `1h` (default), `6h` or `24h`.
    #[param(inline)]
    pub window: Option<UsageWindow>,
}

/// One point of a usage series: what happened in one step of the window.
#[derive(Debug, Serialize, ToSchema)]
pub struct UsagePointBody {
    /// The step's start (Unix milliseconds).
    pub at: i64,
    /// Callbacks run in the sandbox (background jobs included).
    pub callbacks: u64,
    /// Of them, failures (the app's errors, traps, limits, invalid input).
    pub errors: u64,
    /// Of the failures, those stopped by a sandbox limit (deadline, memory, output size).
    pub limit_hits: u64,
    /// Shared-cache lookups answered (the app's `cache.get` and memoized callbacks).
    pub cache_hits: u64,
    /// Shared-cache lookups not answered.
    pub cache_misses: u64,
    /// Hits over lookups; null without lookups.
    pub cache_hit_ratio: Option<f64>,
    /// Median callback latency in ms (interpolated within its histogram bucket); null
    /// without callbacks.
    pub p50_ms: Option<f64>,
    /// 99th percentile callback latency in ms; null without callbacks.
    pub p99_ms: Option<f64>,
    /// Mean callback latency in ms; null without callbacks.
    pub mean_ms: Option<f64>,
}

impl From<usage::UsagePoint> for UsagePointBody {
    fn from(p: usage::UsagePoint) -> Self {
        Self {
            at: p.at,
            callbacks: p.callbacks,
            errors: p.errors,
            limit_hits: p.limit_hits,
            cache_hits: p.cache_hits,
            cache_misses: p.cache_misses,
            cache_hit_ratio: p.cache_hit_ratio,
            p50_ms: p.p50_ms,
            p99_ms: p.p99_ms,
            mean_ms: p.mean_ms,
        }
    }
}

/// An app's usage over a window.
#[derive(Debug, Serialize, ToSchema)]
pub struct UsageBody {
    /// `1h`, `6h` or `24h`.
    pub window: String,
    /// Minutes per point (1, 5 or 15).
    pub step_minutes: i64,
    /// Every step of the window, oldest first; the last holds the current minute.
    pub points: Vec<UsagePointBody>,
    /// The whole window in one (`at` is the window's start).
    pub totals: UsagePointBody,
}

/// An app's usage per minute (who may deploy it): callbacks, errors, sandbox limit hits,
/// shared-cache hits and misses, p50/p99 latency. Stored minutes of every replica plus
/// this server's not yet stored ones; kept for eight days.
#[utoipa::path(
    get, path = "/api/v1/tenants/{tenant}/apps/{app}/usage", tag = "apps",
    params(
        ("tenant" = String, Path, description = "Tenant slug"),
        ("app" = String, Path, description = "App name"),
        UsageQuery
    ),
    security(("bearer" = [])),
    responses((status = 200, body = UsageBody), Errors)
)]
pub async fn get_app_usage(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath((slug, name)): ApiPath<(String, String)>,
    ApiQuery(query): ApiQuery<UsageQuery>,
) -> Result<Json<UsageBody>, ApiError> {
    let window = query.window.unwrap_or_default().into();
    let found = usage::app_usage(&state, &principal, (&slug, &name), window).await?;
    Ok(Json(UsageBody {
        window: found.window.to_owned(),
        step_minutes: found.step_minutes,
        points: found.points.into_iter().map(UsagePointBody::from).collect(),
        totals: found.totals.into(),
    }))
}
