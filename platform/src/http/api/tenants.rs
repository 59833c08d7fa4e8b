//! `/api/v1/tenants` and `/api/v1/tenants/{tenant}`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::schema::{DeletedTenantBody, Errors, PageQuery, QuotasBody, TenantBody, TenantPage};
use super::{ApiJson, ApiPath, ApiQuery, RemoteAddr, scope};
use crate::error::ApiError;
use crate::platform_admin::{self, QuotaChange};
use crate::policy::{self, Action, Principal, Resource};
use crate::state::AppState;

/// The tenants the principal can see: every tenant for a superadmin, else its own.
#[utoipa::path(
    get, path = "/api/v1/tenants", tag = "tenants",
    params(PageQuery),
    security(("bearer" = [])),
    responses((status = 200, body = TenantPage), Errors)
)]
pub async fn list_tenants(
    State(state): State<AppState>,
    principal: Principal,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> Result<Json<TenantPage>, ApiError> {
    scope::authenticated(&principal)?;
    let limit = scope::limit(&query)?;
    let everything =
        policy::authorize(&principal, Action::CreateTenant, &Resource::Platform).is_ok();
    let member = if everything {
        None
    } else {
        principal.user_id()
    };
    let page = state
        .store
        .list_tenants(member, query.cursor.as_deref(), limit)
        .await?;
    let next_cursor = (page.len() as i64 == limit)
        .then(|| page.last().map(|t| t.slug.clone()))
        .flatten();
    let items = page
        .into_iter()
        .filter(|t| {
            policy::authorize(&principal, Action::ViewTenant, &Resource::Tenant(t.id)).is_ok()
        })
        .map(TenantBody::from)
        .collect();
    Ok(Json(TenantPage { items, next_cursor }))
}

/// A new tenant.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTenant {
    /// 1-63 lowercase letters, digits or `-`; not a reserved word.
    pub slug: String,
    /// Display name (defaults to the slug).
    pub name: Option<String>,
    /// Email of an existing user who becomes its owner.
    pub owner_email: Option<String>,
}

/// Create a tenant (platform superadmins), with its owner in the same transaction.
#[utoipa::path(
    post, path = "/api/v1/tenants", tag = "tenants",
    request_body = CreateTenant,
    security(("bearer" = [])),
    responses((status = 201, body = TenantBody), Errors)
)]
pub async fn create_tenant(
    State(state): State<AppState>,
    principal: Principal,
    RemoteAddr(remote): RemoteAddr,
    ApiJson(body): ApiJson<CreateTenant>,
) -> Result<(StatusCode, Json<TenantBody>), ApiError> {
    scope::authenticated(&principal)?;
    let actor = principal.audit_actor();
    let change = scope::change(&state, &actor, &remote);
    let tenant = platform_admin::create_tenant(
        &state,
        &principal,
        (
            &body.slug,
            body.name.as_deref(),
            body.owner_email.as_deref(),
        ),
        &change,
    )
    .await?;
    Ok((StatusCode::CREATED, Json(tenant.into())))
}

/// One tenant.
#[utoipa::path(
    get, path = "/api/v1/tenants/{tenant}", tag = "tenants",
    params(("tenant" = String, Path, description = "Tenant slug")),
    security(("bearer" = [])),
    responses((status = 200, body = TenantBody), Errors)
)]
pub async fn get_tenant(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(slug): ApiPath<String>,
) -> Result<Json<TenantBody>, ApiError> {
    let tenant = scope::tenant(&state, &principal, &slug).await?;
    Ok(Json(tenant.into()))
}

/// A change of a tenant: its name (admins) and/or its quotas (platform superadmins).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateTenant {
    /// New display name.
    pub name: Option<String>,
    /// New quotas (all of them; `cpu_weight`, `max_jobs`, `job_deadline_ms` and
    /// `cache_bytes` may be left out to keep their values).
    pub quotas: Option<QuotasBody>,
}

/// Rename a tenant or change its quotas.
#[utoipa::path(
    patch, path = "/api/v1/tenants/{tenant}", tag = "tenants",
    params(("tenant" = String, Path, description = "Tenant slug")),
    request_body = UpdateTenant,
    security(("bearer" = [])),
    responses((status = 200, body = TenantBody), Errors)
)]
pub async fn update_tenant(
    State(state): State<AppState>,
    principal: Principal,
    RemoteAddr(remote): RemoteAddr,
    ApiPath(slug): ApiPath<String>,
    ApiJson(body): ApiJson<UpdateTenant>,
) -> Result<Json<TenantBody>, ApiError> {
    let quotas = body.quotas.as_ref().map(|q| QuotaChange {
        max_apps: Some(q.max_apps),
        max_concurrent_callbacks: Some(q.max_concurrent_callbacks),
        callback_memory_mb: Some(q.callback_memory_mb),
        callback_deadline_ms: Some(q.callback_deadline_ms),
        max_version_storage_bytes: Some(q.max_version_storage_bytes),
        cpu_weight: q.cpu_weight,
        max_jobs: q.max_jobs,
        job_deadline_ms: q.job_deadline_ms,
        cache_bytes: q.cache_bytes,
    });
    let actor = principal.audit_actor();
    let change = scope::change(&state, &actor, &remote);
    let updated = platform_admin::update_tenant(
        &state,
        &principal,
        &slug,
        (body.name.as_deref(), quotas.as_ref()),
        &change,
    )
    .await?;
    Ok(Json(updated.into()))
}

/// Suspend a tenant (platform superadmins): its apps, pushes, its members' tokens and its
/// pages answer 503 `tenant_suspended` on every replica within a second, until it is
/// resumed. Suspending a suspended tenant changes nothing.
#[utoipa::path(
    post, path = "/api/v1/tenants/{tenant}/suspend", tag = "tenants",
    params(("tenant" = String, Path, description = "Tenant slug")),
    security(("bearer" = [])),
    responses((status = 200, body = TenantBody), Errors)
)]
pub async fn suspend_tenant(
    State(state): State<AppState>,
    principal: Principal,
    RemoteAddr(remote): RemoteAddr,
    ApiPath(slug): ApiPath<String>,
) -> Result<Json<TenantBody>, ApiError> {
    let actor = principal.audit_actor();
    let change = scope::change(&state, &actor, &remote);
    let tenant = platform_admin::set_suspended(&state, &principal, &slug, true, &change).await?;
    Ok(Json(tenant.into()))
}

/// Resume a suspended tenant (platform superadmins).
#[utoipa::path(
    post, path = "/api/v1/tenants/{tenant}/resume", tag = "tenants",
    params(("tenant" = String, Path, description = "Tenant slug")),
    security(("bearer" = [])),
    responses((status = 200, body = TenantBody), Errors)
)]
pub async fn resume_tenant(
    State(state): State<AppState>,
    principal: Principal,
    RemoteAddr(remote): RemoteAddr,
    ApiPath(slug): ApiPath<String>,
) -> Result<Json<TenantBody>, ApiError> {
    let actor = principal.audit_actor();
    let change = scope::change(&state, &actor, &remote);
    let tenant = platform_admin::set_suspended(&state, &principal, &slug, false, &change).await?;
    Ok(Json(tenant.into()))
}

/// `DELETE …?confirm={tenant}`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DeleteTenantQuery {
    /// The tenant's slug again: a deletion cannot be undone.
    pub confirm: Option<String>,
}

/// Delete a tenant and everything of it (platform superadmins): apps, versions, assets,
/// data files, settings, grants, teams, memberships, tokens, invitations, identity
/// providers, data sources, repositories, data folders and cache entries. The users stay;
/// the slug stays reserved. Audited `tenant.delete` in the platform's log.
#[utoipa::path(
    delete, path = "/api/v1/tenants/{tenant}", tag = "tenants",
    params(("tenant" = String, Path, description = "Tenant slug"), DeleteTenantQuery),
    security(("bearer" = [])),
    responses((status = 200, body = DeletedTenantBody), Errors)
)]
pub async fn delete_tenant(
    State(state): State<AppState>,
    principal: Principal,
    RemoteAddr(remote): RemoteAddr,
    ApiPath(slug): ApiPath<String>,
    ApiQuery(query): ApiQuery<DeleteTenantQuery>,
) -> Result<Json<DeletedTenantBody>, ApiError> {
    let actor = principal.audit_actor();
    let change = scope::change(&state, &actor, &remote);
    let confirm = query.confirm.unwrap_or_default();
    let removed =
        platform_admin::delete_tenant(&state, &principal, &slug, &confirm, &change).await?;
    Ok(Json(removed.into()))
}
