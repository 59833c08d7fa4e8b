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
use crate::error::ApiError;
use crate::manage;
use crate::policy::Principal;
use crate::state::AppState;

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
    let tokens = manage::list_tokens(&state, &principal, &slug).await?;
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
    let actor = principal.audit_actor();
    let change = scope::change(&state, &actor, &remote);
    let issued = manage::issue_token(
        &state,
        &principal,
        &slug,
        body.role.as_deref(),
        body.expires_at,
        &change,
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedTokenBody {
            token: issued.token,
            id: issued.public_id,
            role: issued.role,
            expires_at: issued.expires_at,
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
    let actor = principal.audit_actor();
    let change = scope::change(&state, &actor, &remote);
    manage::revoke_token(&state, &principal, &slug, &public_id, &change).await?;
    Ok(scope::no_content())
}
