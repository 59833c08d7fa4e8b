//! `/api/v1/tenants/{tenant}/identity-providers`: a tenant's OIDC and LDAP providers, for
//! platform superadmins (what `tessera admin idp` does). A provider makes the server connect
//! to the hosts it names and its group mappings grant roles, so tenant admins may not set
//! one. The body is the provider file of the CLI as a JSON object; secrets are sealed before
//! they are stored and never returned.

use axum::Json;
use axum::extract::State;
use axum::response::Response;
use serde::Serialize;
use utoipa::ToSchema;

use super::schema::Errors;
use super::{ApiJson, ApiPath, RemoteAddr, scope};
use crate::admin::{self, ProviderSummary};
use crate::error::ApiError;
use crate::policy::{Action, Principal, Resource};
use crate::state::AppState;

/// An identity provider as listed (never its secret).
#[derive(Debug, Serialize, ToSchema)]
pub struct ProviderBody {
    /// Its slug in the tenant (the sign-in URL's last segment).
    pub slug: String,
    /// `oidc` or `ldap`.
    pub kind: String,
    /// The name on the sign-in page.
    pub display_name: String,
    /// The issuer or the directory URL.
    pub location: String,
    /// The external groups it maps.
    pub groups: Vec<String>,
}

impl From<ProviderSummary> for ProviderBody {
    fn from(p: ProviderSummary) -> Self {
        Self {
            slug: p.slug,
            kind: p.kind,
            display_name: p.display_name,
            location: p.location,
            groups: p.groups,
        }
    }
}

/// Superadmins only, decided before the tenant is looked up so that the answer says
/// nothing about which tenants exist.
async fn tenant(state: &AppState, principal: &Principal, slug: &str) -> Result<String, ApiError> {
    scope::authenticated(principal)?;
    scope::allow(
        principal,
        Action::ManageIdentityProviders,
        &Resource::Platform,
    )?;
    Ok(scope::tenant(state, principal, slug).await?.slug)
}

fn refused(error: admin::Error) -> ApiError {
    use admin::Error as E;
    match error {
        E::Provider(_) | E::Invalid(_) => ApiError::validation(error.to_string()),
        E::UnknownTenant(slug) => ApiError::not_found("tenant", &slug),
        E::Store(e) => e.into(),
        other => ApiError::internal("the identity provider change failed", &other),
    }
}

/// The tenant's identity providers by slug (superadmins).
#[utoipa::path(
    get, path = "/api/v1/tenants/{tenant}/identity-providers", tag = "tenants",
    params(("tenant" = String, Path, description = "Tenant slug")),
    security(("bearer" = [])),
    responses((status = 200, body = Vec<ProviderBody>), Errors)
)]
pub async fn list_providers(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(slug): ApiPath<String>,
) -> Result<Json<Vec<ProviderBody>>, ApiError> {
    let tenant = tenant(&state, &principal, &slug).await?;
    let providers = admin::list_providers(&state.store, &tenant)
        .await
        .map_err(refused)?;
    Ok(Json(
        providers.into_iter().map(ProviderBody::from).collect(),
    ))
}

/// Create or replace an identity provider (superadmins). The body has the keys of the
/// provider file (`kind`, `display_name`, `groups` and the kind's settings, e.g. `issuer`,
/// `client_id`, `client_secret` for OIDC); it is checked like the file. Audited without
/// the secret.
#[utoipa::path(
    put, path = "/api/v1/tenants/{tenant}/identity-providers/{slug}", tag = "tenants",
    params(
        ("tenant" = String, Path, description = "Tenant slug"),
        ("slug" = String, Path, description = "Provider slug")
    ),
    request_body(content = serde_json::Value, description = "The provider file's keys as a JSON object"),
    security(("bearer" = [])),
    responses((status = 200, body = ProviderBody, description = "The provider as stored"), Errors)
)]
pub async fn put_provider(
    State(state): State<AppState>,
    principal: Principal,
    RemoteAddr(remote): RemoteAddr,
    ApiPath((slug, provider)): ApiPath<(String, String)>,
    ApiJson(body): ApiJson<serde_json::Value>,
) -> Result<Json<ProviderBody>, ApiError> {
    let tenant = tenant(&state, &principal, &slug).await?;
    if !body.is_object() {
        return Err(ApiError::validation(
            "the body must be a JSON object with the provider file's keys",
        ));
    }
    // The CLI's file format is the one definition of a provider: the object goes through
    // the same parser and checks.
    let file = toml::to_string(&body)
        .map_err(|e| ApiError::validation(format!("the provider cannot be read: {e}")))?;
    let actor = principal.audit_actor();
    let change = scope::change(&state, &actor, &remote);
    admin::set_provider(
        &state.store,
        &state.secrets,
        &tenant,
        &provider,
        &file,
        &change,
    )
    .await
    .map_err(refused)?;
    let listed = admin::list_providers(&state.store, &tenant)
        .await
        .map_err(refused)?;
    listed
        .into_iter()
        .find(|p| p.slug == provider)
        .map(|p| Json(ProviderBody::from(p)))
        .ok_or_else(|| ApiError::not_found("identity provider", &provider))
}

/// Remove an identity provider and its links to users (superadmins; a no-op when there is
/// none by that slug). Memberships it granted stay, as if granted by hand.
#[utoipa::path(
    delete, path = "/api/v1/tenants/{tenant}/identity-providers/{slug}", tag = "tenants",
    params(
        ("tenant" = String, Path, description = "Tenant slug"),
        ("slug" = String, Path, description = "Provider slug")
    ),
    security(("bearer" = [])),
    responses((status = 204, description = "The tenant has no such provider"), Errors)
)]
pub async fn delete_provider(
    State(state): State<AppState>,
    principal: Principal,
    RemoteAddr(remote): RemoteAddr,
    ApiPath((slug, provider)): ApiPath<(String, String)>,
) -> Result<Response, ApiError> {
    let tenant = tenant(&state, &principal, &slug).await?;
    let actor = principal.audit_actor();
    let change = scope::change(&state, &actor, &remote);
    match admin::remove_provider(&state.store, &tenant, &provider, &change).await {
        Ok(()) | Err(admin::Error::UnknownProvider { .. }) => Ok(scope::no_content()),
        Err(e) => Err(refused(e)),
    }
}
