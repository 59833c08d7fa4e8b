//! The audit log: a tenant's (admins) and the whole platform's (superadmins), newest
//! first, with cursor pagination and exact-match filters.

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use utoipa::IntoParams;

use super::schema::{AuditBody, AuditPage, Errors, PageQuery};
use super::{ApiPath, ApiQuery, scope};
use crate::error::ApiError;
use crate::ids::TenantId;
use crate::policy::{Action, Principal, Resource};
use crate::state::AppState;
use crate::store::AuditFilter;

/// Audit listing parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Items per page, 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<i64>,
    /// Opaque cursor from the previous page.
    pub cursor: Option<String>,
    /// Only this action, e.g. `app.deploy`.
    pub action: Option<String>,
    /// Only this actor, e.g. `token:abc123def456`.
    pub actor: Option<String>,
}

async fn page(
    state: &AppState,
    tenant: Option<TenantId>,
    query: AuditQuery,
) -> Result<Json<AuditPage>, ApiError> {
    let paging = PageQuery {
        limit: query.limit,
        cursor: query.cursor,
    };
    let limit = scope::limit(&paging)?;
    let filter = AuditFilter {
        action: query.action.as_deref(),
        actor: query.actor.as_deref(),
    };
    let entries = state
        .store
        .filtered_audit_entries(tenant, &filter, scope::id_cursor(&paging)?, limit)
        .await?;
    let next_cursor = (entries.len() as i64 == limit)
        .then(|| entries.last().map(|e| e.id.to_string()))
        .flatten();
    Ok(Json(AuditPage {
        items: entries.into_iter().map(AuditBody::from).collect(),
        next_cursor,
    }))
}

/// The tenant's audit log (admins).
#[utoipa::path(
    get, path = "/api/v1/tenants/{tenant}/audit", tag = "audit",
    params(("tenant" = String, Path, description = "Tenant slug"), AuditQuery),
    security(("bearer" = [])),
    responses((status = 200, body = AuditPage), Errors)
)]
pub async fn list_tenant_audit(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(slug): ApiPath<String>,
    ApiQuery(query): ApiQuery<AuditQuery>,
) -> Result<Json<AuditPage>, ApiError> {
    let tenant = scope::tenant(&state, &principal, &slug).await?;
    scope::allow(
        &principal,
        Action::ViewTenantAudit,
        &Resource::Tenant(tenant.id),
    )?;
    page(&state, Some(tenant.id), query).await
}

/// The whole platform's audit log (platform superadmins).
#[utoipa::path(
    get, path = "/api/v1/audit", tag = "audit",
    params(AuditQuery),
    security(("bearer" = [])),
    responses((status = 200, body = AuditPage), Errors)
)]
pub async fn list_platform_audit(
    State(state): State<AppState>,
    principal: Principal,
    ApiQuery(query): ApiQuery<AuditQuery>,
) -> Result<Json<AuditPage>, ApiError> {
    scope::authenticated(&principal)?;
    scope::allow(&principal, Action::ViewPlatformAudit, &Resource::Platform)?;
    page(&state, None, query).await
}
