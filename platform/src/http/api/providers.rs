//! `/api/v1/tenants/{tenant}/identity-providers`: a tenant's OIDC and LDAP providers, for
//! platform superadmins (what `tessera admin idp` does). A provider makes the server connect
//! to the hosts it names and its group mappings grant roles, so tenant admins may not set
//! one. The body is the provider file of the CLI as a JSON object; secrets are sealed before
//! they are stored and never returned.

use axum::Json;
use axum::extract::State;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::schema::Errors;
use super::{ApiJson, ApiPath, ApiQuery, RemoteAddr, scope};
use crate::admin::{self, ProviderSummary};
use crate::error::ApiError;
use crate::policy::{Action, Principal, Resource};
use crate::state::AppState;
use crate::{platform_admin, tenant_admin};

/// An identity provider as listed (never its secret).
#[derive(Debug, Serialize, ToSchema)]
pub struct ProviderBody {
    /// Its slug in the tenant (the sign-in URL's last segment).
    pub slug: String,
    /// `oidc`, `ldap` or `saml`.
    pub kind: String,
    /// The name on the sign-in page.
    pub display_name: String,
    /// The issuer, the directory URL or the SAML metadata URL.
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

/// The provider file (TOML) that a JSON body stands for: the CLI's file format is the one
/// definition of a provider, so the body then goes through the same parser and checks.
fn provider_file(body: &serde_json::Value) -> Result<String, String> {
    if !body.is_object() {
        return Err("the body must be a JSON object with the provider file's keys".into());
    }
    toml::to_string(body).map_err(|e| format!("the provider cannot be read: {e}"))
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
    let file = provider_file(&body).map_err(ApiError::validation)?;
    let actor = principal.audit_actor();
    let change = scope::change(&state, &actor, &remote);
    platform_admin::set_provider(&state, &principal, (&tenant, &provider), &file, &change).await?;
    let listed = admin::list_providers(&state.store, &tenant)
        .await
        .map_err(refused)?;
    listed
        .into_iter()
        .find(|p| p.slug == provider)
        .map(|p| Json(ProviderBody::from(p)))
        .ok_or_else(|| ApiError::not_found("identity provider", &provider))
}

/// `DELETE …?keep_memberships=true`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct RemoveQuery {
    /// Keep the roles and team memberships the provider granted, as hand-given ones (each
    /// audited); by default they are taken back.
    pub keep_memberships: Option<bool>,
}

/// Remove an identity provider and its links to users (superadmins; a no-op when there is
/// none by that slug). The roles and team memberships it granted are taken back (a
/// hand-given role it raised comes back; a member it brought in leaves the tenant) unless
/// `keep_memberships=true`, which keeps them as hand-given, each audited as such.
#[utoipa::path(
    delete, path = "/api/v1/tenants/{tenant}/identity-providers/{slug}", tag = "tenants",
    params(
        ("tenant" = String, Path, description = "Tenant slug"),
        ("slug" = String, Path, description = "Provider slug"),
        RemoveQuery
    ),
    security(("bearer" = [])),
    responses((status = 204, description = "Removed, or the tenant has no such provider"), Errors)
)]
pub async fn delete_provider(
    State(state): State<AppState>,
    principal: Principal,
    RemoteAddr(remote): RemoteAddr,
    ApiPath((slug, provider)): ApiPath<(String, String)>,
    ApiQuery(query): ApiQuery<RemoveQuery>,
) -> Result<Response, ApiError> {
    let tenant = tenant(&state, &principal, &slug).await?;
    let actor = principal.audit_actor();
    let change = scope::change(&state, &actor, &remote);
    let keep = query.keep_memberships.unwrap_or(false);
    match admin::remove_provider_with(&state.store, &tenant, &provider, keep, &change).await {
        Ok(_) | Err(admin::Error::UnknownProvider { .. }) => Ok(scope::no_content()),
        Err(e) => Err(refused(e)),
    }
}

/// The optional body of a provider test.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TestBody {
    /// LDAP: a user name to look up (no password is sent or checked).
    pub username: Option<String>,
}

/// Try an identity provider (tenant admins): for LDAP the service bind, in-chain support,
/// a sample user's groups (nested) and the roles they map to; for OIDC the discovery
/// document (issuer, endpoints, signing algorithms, token endpoint authentication methods,
/// keys). Changes nothing; audited as `identity_provider.test`. A provider that fails the
/// test is still a 200 with `ok: false` and the reason.
#[utoipa::path(
    post, path = "/api/v1/tenants/{tenant}/identity-providers/{slug}/test", tag = "tenants",
    params(
        ("tenant" = String, Path, description = "Tenant slug"),
        ("slug" = String, Path, description = "Provider slug")
    ),
    request_body(content = TestBody, description = "Optional (no body is `{}`): a sample user name"),
    security(("bearer" = [])),
    responses((status = 200, body = serde_json::Value, description = "The report"), Errors)
)]
pub async fn test_provider(
    State(state): State<AppState>,
    principal: Principal,
    RemoteAddr(remote): RemoteAddr,
    ApiPath((slug, provider)): ApiPath<(String, String)>,
    body: axum::body::Bytes,
) -> Result<Json<serde_json::Value>, ApiError> {
    // Who may test is asked before the body is read (then again by the test itself).
    let tenant = scope::tenant(&state, &principal, &slug).await?;
    scope::allow(
        &principal,
        Action::TestIdentityProvider,
        &Resource::Tenant(tenant.id),
    )?;
    // The body is optional: none (or whitespace) is `{}`.
    let body: TestBody = if body.iter().all(u8::is_ascii_whitespace) {
        TestBody::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| ApiError::validation(format!("the body: {e}")))?
    };
    let actor = principal.audit_actor();
    let change = scope::change(&state, &actor, &remote);
    let report = tenant_admin::test_provider(
        &state,
        &principal,
        (&tenant.slug, &provider),
        body.username.as_deref(),
        &change,
    )
    .await?;
    serde_json::to_value(report)
        .map(Json)
        .map_err(|e| ApiError::internal("the provider report", &e))
}

#[cfg(test)]
mod tests {
    use super::provider_file;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};
    use serde_json::{Value, json};

    /// A random JSON value biased towards the shapes of a provider file.
    fn value(rng: &mut StdRng, depth: u32) -> Value {
        const KEYS: [&str; 12] = [
            "kind",
            "display_name",
            "issuer",
            "client_id",
            "client_secret",
            "groups",
            "group",
            "role",
            "teams",
            "url",
            "scopes",
            "x\u{0}y",
        ];
        const STRINGS: [&str; 9] = [
            "oidc",
            "ldap",
            "owner",
            "admin",
            "https://i",
            "ldap://h",
            "",
            " ",
            "\u{7f}é\n",
        ];
        match rng.random_range(0..if depth > 3 { 4 } else { 7 }) {
            0 => Value::Null,
            1 => json!(rng.random::<bool>()),
            2 => json!(rng.random::<i64>()),
            3 => json!(STRINGS[rng.random_range(0..STRINGS.len())]),
            4 => json!(rng.random::<f64>()),
            5 => Value::Array(
                (0..rng.random_range(0..4))
                    .map(|_| value(rng, depth + 1))
                    .collect(),
            ),
            _ => Value::Object(
                (0..rng.random_range(0..6))
                    .map(|_| {
                        let key = KEYS[rng.random_range(0..KEYS.len())].to_owned();
                        (key, value(rng, depth + 1))
                    })
                    .collect(),
            ),
        }
    }

    /// Untrusted bodies never panic the conversion or the provider-file parser: each is
    /// either a provider or a refusal with a message.
    #[test]
    fn random_bodies_are_read_or_refused_without_panicking() {
        let mut rng = StdRng::seed_from_u64(0x7e55e7a);
        let mut parsed = 0;
        for _ in 0..20_000 {
            let mut body = value(&mut rng, 0);
            if rng.random_range(0..3) == 0 {
                // Often start from a valid provider and break one thing.
                let mut good = json!({"kind": "oidc", "display_name": "SSO",
                    "issuer": "https://i", "client_id": "c", "client_secret": "s"});
                let key = ["kind", "issuer", "groups", "scopes", "timeout_seconds"]
                    [rng.random_range(0..5)];
                good[key] = value(&mut rng, 1);
                body = good;
            }
            match provider_file(&body) {
                Ok(file) => match crate::auth::providers::parse_file(&file) {
                    Ok(_) => parsed += 1,
                    Err(e) => assert!(!e.to_string().is_empty()),
                },
                Err(message) => assert!(!message.is_empty()),
            }
        }
        assert!(parsed > 0, "some mutated bodies are still valid providers");
    }
}
