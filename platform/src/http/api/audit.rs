//! The audit log: a tenant's (admins) and the whole platform's (superadmins), newest
//! first, with cursor pagination and exact-match filters.

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa::IntoParams;

use super::schema::{AuditBody, AuditPage, Errors, PageQuery};
use super::{ApiPath, ApiQuery, scope};
use crate::error::ApiError;
use crate::policy::Principal;
use crate::state::AppState;
use crate::store::AuditSearch;
use crate::tenant_admin;

/// Audit listing parameters.
#[derive(Debug, Default, Deserialize, IntoParams)]
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
    /// Only this target, e.g. `app:acme/sales`.
    pub target: Option<String>,
    /// Only rows at or after this time (Unix milliseconds).
    pub since: Option<i64>,
    /// Only rows before this time (Unix milliseconds).
    pub until: Option<i64>,
}

impl AuditQuery {
    fn search(&self) -> AuditSearch<'_> {
        AuditSearch {
            action: self.action.as_deref(),
            actor: self.actor.as_deref(),
            target: self.target.as_deref(),
            since: self.since,
            until: self.until,
        }
    }
}

async fn page(
    state: &AppState,
    principal: &Principal,
    tenant: Option<&str>,
    query: AuditQuery,
) -> Result<Json<AuditPage>, ApiError> {
    let paging = PageQuery {
        limit: query.limit,
        cursor: query.cursor.clone(),
    };
    let limit = scope::limit(&paging)?;
    let entries = tenant_admin::audit(
        state,
        principal,
        tenant,
        &query.search(),
        scope::id_cursor(&paging)?,
        limit,
    )
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
    page(&state, &principal, Some(slug.as_str()), query).await
}

/// The tenant's audit log rows matching the filters as CSV, newest first (admins; at most
/// 10,000 rows; cells that start like a spreadsheet formula get a leading `'`).
#[utoipa::path(
    get, path = "/api/v1/tenants/{tenant}/audit/export", tag = "audit",
    params(("tenant" = String, Path, description = "Tenant slug"), AuditQuery),
    security(("bearer" = [])),
    responses((status = 200, content_type = "text/csv", body = String), Errors)
)]
pub async fn export_tenant_audit(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(slug): ApiPath<String>,
    ApiQuery(query): ApiQuery<AuditQuery>,
) -> Result<Response, ApiError> {
    let csv =
        tenant_admin::audit_csv(&state, &principal, Some(slug.as_str()), &query.search()).await?;
    Ok(csv_response(&format!("audit-{slug}.csv"), csv))
}

/// A CSV file to download.
pub fn csv_response(filename: &str, csv: String) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{filename}\""),
            ),
            (header::CACHE_CONTROL, "no-store".to_owned()),
        ],
        csv,
    )
        .into_response()
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
    page(&state, &principal, None, query).await
}
