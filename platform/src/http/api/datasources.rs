//! `/api/v1/tenants/{tenant}/data-sources`: a tenant's data sources and their grants to
//! apps, for the tenant's admins (what `tessera sources` does). A password is write-only:
//! no answer ever contains it.

use axum::Json;
use axum::extract::State;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::schema::Errors;
use super::{ApiJson, ApiPath, RemoteAddr, scope};
use crate::datasources::{self, ConnectionInput, Kind, SourceLimits, SourceView, TestReport};
use crate::error::ApiError;
use crate::policy::{Action, Principal, Resource};
use crate::state::AppState;
use crate::store::Tenant;
use crate::tenant_admin;

/// A source to register or replace: its kind, its connection (a URL, fields, or both:
/// fields override the URL) and optional limits below the operator's.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SourceBody {
    /// `postgres`, `mysql` (also MariaDB) or `sqlite`; optional with a URL.
    #[serde(default)]
    pub kind: Option<Kind>,
    /// The connection.
    #[serde(default)]
    pub connection: ConnectionInput,
    /// Limits below the operator's.
    #[serde(default)]
    pub limits: SourceLimits,
}

/// The answer to a registration.
#[derive(Debug, Serialize, ToSchema)]
pub struct PutAnswer {
    /// Whether the source is new (else it was replaced).
    pub created: bool,
    /// The source as stored.
    pub source: SourceView,
}

/// The tenant if the principal may manage its data sources (404 if it may not see it,
/// 403 if it may see but not manage).
async fn admin_tenant(
    state: &AppState,
    principal: &Principal,
    slug: &str,
) -> Result<Tenant, ApiError> {
    let tenant = scope::tenant(state, principal, slug).await?;
    scope::allow(
        principal,
        Action::ManageDataSources,
        &Resource::Tenant(tenant.id),
    )?;
    Ok(tenant)
}

impl From<datasources::Error> for ApiError {
    fn from(error: datasources::Error) -> Self {
        use datasources::Error as E;
        match error {
            E::Invalid(message) => ApiError::validation(message),
            E::NotFound(name) => ApiError::not_found("data source", &name),
            E::Store(e) => e.into(),
            other @ E::Unreadable(_) => ApiError::internal("a data source cannot be read", &other),
        }
    }
}

/// The tenant's data sources (admins), without passwords.
#[utoipa::path(
    get, path = "/api/v1/tenants/{tenant}/data-sources", tag = "tenants",
    params(("tenant" = String, Path, description = "Tenant slug")),
    security(("bearer" = [])),
    responses((status = 200, body = Vec<SourceView>), Errors)
)]
pub async fn list_sources(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(slug): ApiPath<String>,
) -> Result<Json<Vec<SourceView>>, ApiError> {
    let tenant = admin_tenant(&state, &principal, &slug).await?;
    Ok(Json(state.datasources.list(tenant.id).await?))
}

/// One data source (admins), without its password.
#[utoipa::path(
    get, path = "/api/v1/tenants/{tenant}/data-sources/{source}", tag = "tenants",
    params(
        ("tenant" = String, Path, description = "Tenant slug"),
        ("source" = String, Path, description = "Data source name")
    ),
    security(("bearer" = [])),
    responses((status = 200, body = SourceView), Errors)
)]
pub async fn get_source(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath((slug, name)): ApiPath<(String, String)>,
) -> Result<Json<SourceView>, ApiError> {
    let tenant = admin_tenant(&state, &principal, &slug).await?;
    Ok(Json(state.datasources.show(tenant.id, &name).await?))
}

/// Register or replace a data source (admins). The connection settings are sealed; a
/// SQLite file must lie in the tenant's folder of the sources directory; a host that
/// resolves to a private address is refused unless the operator allows it. Audited as
/// `data_source.create` or `data_source.update`.
#[utoipa::path(
    put, path = "/api/v1/tenants/{tenant}/data-sources/{source}", tag = "tenants",
    params(
        ("tenant" = String, Path, description = "Tenant slug"),
        ("source" = String, Path, description = "Data source name: a lowercase letter, then lowercase letters, digits, '-' and '_' (at most 63)")
    ),
    request_body(content = SourceBody),
    security(("bearer" = [])),
    responses((status = 200, body = PutAnswer), Errors)
)]
pub async fn put_source(
    State(state): State<AppState>,
    principal: Principal,
    RemoteAddr(remote): RemoteAddr,
    ApiPath((slug, name)): ApiPath<(String, String)>,
    ApiJson(body): ApiJson<SourceBody>,
) -> Result<Json<PutAnswer>, ApiError> {
    let tenant = admin_tenant(&state, &principal, &slug).await?;
    let kind = body
        .kind
        .or_else(|| {
            body.connection
                .url
                .as_deref()
                .and_then(datasources::connection::kind_of_url)
        })
        .ok_or_else(|| ApiError::validation("give the kind or a URL naming it"))?;
    let actor = principal.audit_actor();
    let change = scope::change(&state, &actor, &remote);
    let (created, source) = state
        .datasources
        .put(
            &tenant,
            &name,
            kind,
            &body.connection,
            &body.limits,
            &change,
        )
        .await?;
    Ok(Json(PutAnswer { created, source }))
}

/// Remove a data source and its grants (admins; a no-op when there is none). Audited as
/// `data_source.remove`.
#[utoipa::path(
    delete, path = "/api/v1/tenants/{tenant}/data-sources/{source}", tag = "tenants",
    params(
        ("tenant" = String, Path, description = "Tenant slug"),
        ("source" = String, Path, description = "Data source name")
    ),
    security(("bearer" = [])),
    responses((status = 204, description = "The tenant has no such source"), Errors)
)]
pub async fn delete_source(
    State(state): State<AppState>,
    principal: Principal,
    RemoteAddr(remote): RemoteAddr,
    ApiPath((slug, name)): ApiPath<(String, String)>,
) -> Result<Response, ApiError> {
    let tenant = admin_tenant(&state, &principal, &slug).await?;
    let actor = principal.audit_actor();
    let change = scope::change(&state, &actor, &remote);
    state.datasources.remove(tenant.id, &name, &change).await?;
    Ok(scope::no_content())
}

/// Connect to a data source and run a trivial query (admins): a sentence saying what
/// happened (never the password).
#[utoipa::path(
    post, path = "/api/v1/tenants/{tenant}/data-sources/{source}/test", tag = "tenants",
    params(
        ("tenant" = String, Path, description = "Tenant slug"),
        ("source" = String, Path, description = "Data source name")
    ),
    security(("bearer" = [])),
    responses((status = 200, body = TestReport), Errors)
)]
pub async fn test_source(
    State(state): State<AppState>,
    principal: Principal,
    RemoteAddr(remote): RemoteAddr,
    ApiPath((slug, name)): ApiPath<(String, String)>,
) -> Result<Json<TestReport>, ApiError> {
    let actor = principal.audit_actor();
    let change = scope::change(&state, &actor, &remote);
    let report =
        tenant_admin::test_data_source(&state, &principal, (&slug, &name), &change).await?;
    Ok(Json(report))
}

async fn set_grant(
    state: &AppState,
    principal: &Principal,
    remote: &Option<String>,
    (slug, name, app): (String, String, String),
    granted: bool,
) -> Result<Response, ApiError> {
    let tenant = admin_tenant(state, principal, &slug).await?;
    let actor = principal.audit_actor();
    let change = scope::change(state, &actor, remote);
    state
        .datasources
        .set_grant(tenant.id, &name, &app, granted, &change)
        .await?;
    Ok(scope::no_content())
}

/// Grant a data source to an app of the tenant (admins; a no-op when granted). Audited
/// as `data_source.grant`.
#[utoipa::path(
    put, path = "/api/v1/tenants/{tenant}/data-sources/{source}/grants/{app}", tag = "tenants",
    params(
        ("tenant" = String, Path, description = "Tenant slug"),
        ("source" = String, Path, description = "Data source name"),
        ("app" = String, Path, description = "App name")
    ),
    security(("bearer" = [])),
    responses((status = 204, description = "The app may query the source"), Errors)
)]
pub async fn grant_source(
    State(state): State<AppState>,
    principal: Principal,
    RemoteAddr(remote): RemoteAddr,
    ApiPath(path): ApiPath<(String, String, String)>,
) -> Result<Response, ApiError> {
    set_grant(&state, &principal, &remote, path, true).await
}

/// Revoke a data source from an app (admins; a no-op when not granted or when the
/// source is gone). Audited as `data_source.revoke`.
#[utoipa::path(
    delete, path = "/api/v1/tenants/{tenant}/data-sources/{source}/grants/{app}", tag = "tenants",
    params(
        ("tenant" = String, Path, description = "Tenant slug"),
        ("source" = String, Path, description = "Data source name"),
        ("app" = String, Path, description = "App name")
    ),
    security(("bearer" = [])),
    responses((status = 204, description = "The app may no longer query the source"), Errors)
)]
pub async fn revoke_source(
    State(state): State<AppState>,
    principal: Principal,
    RemoteAddr(remote): RemoteAddr,
    ApiPath(path): ApiPath<(String, String, String)>,
) -> Result<Response, ApiError> {
    set_grant(&state, &principal, &remote, path, false).await
}
