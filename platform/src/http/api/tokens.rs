//! `/api/v1/tenants/{tenant}/tokens`: API tokens, shown once at creation, listed without
//! secrets, revocable.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use utoipa::ToSchema;

use super::schema::{CreatedTokenBody, Errors, TokenBody};
use super::{ApiJson, ApiPath, RemoteAddr, scope};
use crate::auth;
use crate::error::ApiError;
use crate::policy::{self, Action, Principal, Resource};
use crate::state::AppState;
use crate::tenancy::Role;

/// The tenant's tokens: all of them for admins, one's own for everyone else.
#[utoipa::path(
    get, path = "/api/v1/tenants/{tenant}/tokens", tag = "tokens",
    params(("tenant" = String, Path, description = "Tenant slug")),
    security(("bearer" = [])),
    responses((status = 200, body = Vec<TokenBody>), Errors)
)]
pub async fn list_tokens(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(slug): ApiPath<String>,
) -> Result<Json<Vec<TokenBody>>, ApiError> {
    let tenant = scope::tenant(&state, &principal, &slug).await?;
    let all = policy::authorize(
        &principal,
        Action::ManageMembers,
        &Resource::Tenant(tenant.id),
    )
    .is_ok();
    let only = if all { None } else { principal.user_id() };
    let tokens = state.store.list_tokens(tenant.id, only).await?;
    Ok(Json(tokens.into_iter().map(TokenBody::from).collect()))
}

/// A token to create for oneself.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    /// At most one's own role (default: one's own role).
    pub role: Option<String>,
    /// Expiry, Unix ms, in the future.
    pub expires_at: Option<i64>,
}

/// Create a token for oneself in this tenant (people only: a token cannot mint tokens).
#[utoipa::path(
    post, path = "/api/v1/tenants/{tenant}/tokens", tag = "tokens",
    params(("tenant" = String, Path, description = "Tenant slug")),
    request_body = CreateToken,
    security(("bearer" = [])),
    responses((status = 201, body = CreatedTokenBody), Errors)
)]
pub async fn create_token(
    State(state): State<AppState>,
    principal: Principal,
    RemoteAddr(remote): RemoteAddr,
    ApiPath(slug): ApiPath<String>,
    ApiJson(body): ApiJson<CreateToken>,
) -> Result<(StatusCode, Json<CreatedTokenBody>), ApiError> {
    let tenant = scope::tenant(&state, &principal, &slug).await?;
    scope::allow(
        &principal,
        Action::CreateToken,
        &Resource::Tenant(tenant.id),
    )?;
    let user = principal
        .user_id()
        .ok_or_else(|| ApiError::validation("only a user can own a token"))?;
    // A superadmin who is no member may create tokens of any role.
    let ceiling = principal.role_in(tenant.id).unwrap_or(Role::Owner);
    let role = match &body.role {
        Some(role) => role.parse::<Role>()?,
        None => ceiling,
    };
    if role > ceiling {
        return Err(ApiError::validation(format!(
            "a token's role cannot exceed yours ({ceiling})"
        )));
    }
    let now = state.clock.now_millis();
    if body.expires_at.is_some_and(|at| at <= now) {
        return Err(ApiError::validation("expires_at must be in the future"));
    }
    let actor = principal.audit_actor();
    let change = scope::change(&state, &actor, &remote);
    let issued = auth::token::issue(
        &state.store,
        tenant.id,
        user,
        role,
        body.expires_at,
        &change,
    )
    .await
    .map_err(|e| ApiError::internal("creating the token failed", &e))?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedTokenBody {
            token: issued.token,
            id: issued.public_id,
            role,
            expires_at: body.expires_at,
        }),
    ))
}

/// Revoke a token: one's own, or any of the tenant's for admins. Revoking a revoked
/// token is a no-op.
#[utoipa::path(
    delete, path = "/api/v1/tenants/{tenant}/tokens/{token_id}", tag = "tokens",
    params(
        ("tenant" = String, Path, description = "Tenant slug"),
        ("token_id" = String, Path, description = "The token's public id")
    ),
    security(("bearer" = [])),
    responses((status = 204, description = "The token is revoked"), Errors)
)]
pub async fn revoke_token(
    State(state): State<AppState>,
    principal: Principal,
    RemoteAddr(remote): RemoteAddr,
    ApiPath((slug, public_id)): ApiPath<(String, String)>,
) -> Result<Response, ApiError> {
    let tenant = scope::tenant(&state, &principal, &slug).await?;
    let token = state
        .store
        .tenant_token(tenant.id, &public_id)
        .await?
        .ok_or_else(|| ApiError::not_found("token", &public_id))?;
    if principal.user_id() != Some(token.user_id) {
        scope::allow(
            &principal,
            Action::ManageMembers,
            &Resource::Tenant(tenant.id),
        )?;
    }
    let actor = principal.audit_actor();
    let change = scope::change(&state, &actor, &remote);
    state
        .store
        .revoke_token_in(Some(tenant.id), &public_id, &change)
        .await?;
    Ok(scope::no_content())
}
