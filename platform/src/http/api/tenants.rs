//! `/api/v1/tenants` and `/api/v1/tenants/{tenant}`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::ToSchema;

use super::schema::{Errors, PageQuery, QuotasBody, TenantBody, TenantPage};
use super::{ApiJson, ApiPath, ApiQuery, RemoteAddr, scope};
use crate::error::ApiError;
use crate::platform_admin;
use crate::policy::{self, Action, Principal, Resource};
use crate::state::AppState;
use crate::store::Quotas;
use crate::tenancy;

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
    let tenant = scope::tenant(&state, &principal, &slug).await?;
    let name = match &body.name {
        Some(name) => {
            scope::allow(
                &principal,
                Action::UpdateTenant,
                &Resource::Tenant(tenant.id),
            )?;
            Some(tenancy::tenant_name(name)?)
        }
        None => None,
    };
    let quotas = match &body.quotas {
        Some(q) => {
            scope::allow(&principal, Action::ManageQuotas, &Resource::Platform)?;
            Some(validate_quotas(q, &tenant.quotas)?)
        }
        None => None,
    };
    if name.is_none() && quotas.is_none() {
        // Still an authorization question: an empty change is allowed to whoever may
        // rename the tenant.
        scope::allow(
            &principal,
            Action::UpdateTenant,
            &Resource::Tenant(tenant.id),
        )?;
    }
    let actor = principal.audit_actor();
    let change = scope::change(&state, &actor, &remote);
    let updated = state
        .store
        .update_tenant(tenant.id, name.as_deref(), quotas.as_ref(), &change)
        .await?;
    Ok(Json(updated.into()))
}

/// Quotas within the ranges the schema states; the optional ones left out keep their
/// `current` values.
pub fn validate_quotas(q: &QuotasBody, current: &Quotas) -> Result<Quotas, ApiError> {
    let cpu_weight = q.cpu_weight.unwrap_or(current.cpu_weight);
    let max_jobs = q.max_jobs.unwrap_or(current.max_jobs);
    let job_deadline_ms = q.job_deadline_ms.unwrap_or(current.job_deadline_ms);
    let cache_bytes = q.cache_bytes.unwrap_or(current.cache_bytes);
    let checks: [(&str, i64, i64, i64); 9] = [
        ("max_apps", q.max_apps, 0, 1_000_000),
        (
            "max_concurrent_callbacks",
            q.max_concurrent_callbacks,
            1,
            10_000,
        ),
        ("callback_memory_mb", q.callback_memory_mb, 1, 4_096),
        (
            "callback_deadline_ms",
            q.callback_deadline_ms,
            1,
            86_400_000,
        ),
        (
            "max_version_storage_bytes",
            q.max_version_storage_bytes,
            0,
            1 << 40,
        ),
        ("cpu_weight", cpu_weight, 1, 10_000),
        ("max_jobs", max_jobs, 1, 10_000),
        ("job_deadline_ms", job_deadline_ms, 1, 86_400_000),
        ("cache_bytes", cache_bytes, 0, 1 << 40),
    ];
    for (name, value, min, max) in checks {
        if !(min..=max).contains(&value) {
            return Err(ApiError::validation(format!(
                "{name} must be between {min} and {max} (got {value})"
            )));
        }
    }
    Ok(Quotas {
        max_apps: q.max_apps,
        max_concurrent_callbacks: q.max_concurrent_callbacks,
        callback_memory_mb: q.callback_memory_mb,
        callback_deadline_ms: q.callback_deadline_ms,
        max_version_storage_bytes: q.max_version_storage_bytes,
        cpu_weight,
        max_jobs,
        job_deadline_ms,
        cache_bytes,
    })
}
