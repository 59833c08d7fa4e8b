//! `/api/v1/tenants/{tenant}/members`: who belongs to a tenant, with which role.

use axum::Json;
use axum::extract::State;
use axum::response::Response;
use serde::Deserialize;
use utoipa::ToSchema;

use super::schema::{Errors, MemberBody, MemberPage, PageQuery};
use super::{ApiJson, ApiPath, ApiQuery, RemoteAddr, scope};
use crate::error::ApiError;
use crate::ids::UserId;
use crate::policy::Principal;
use crate::state::AppState;
use crate::tenant_admin;

/// A tenant's members, by user id (admins).
#[utoipa::path(
    get, path = "/api/v1/tenants/{tenant}/members", tag = "members",
    params(("tenant" = String, Path, description = "Tenant slug"), PageQuery),
    security(("bearer" = [])),
    responses((status = 200, body = MemberPage), Errors)
)]
pub async fn list_members(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(slug): ApiPath<String>,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> Result<Json<MemberPage>, ApiError> {
    let limit = scope::limit(&query)?;
    let page =
        tenant_admin::members(&state, &principal, &slug, scope::id_cursor(&query)?, limit).await?;
    let next_cursor = page.next.map(|n| n.to_string());
    let items = page.members.into_iter().map(member_body).collect();
    Ok(Json(MemberPage { items, next_cursor }))
}

/// A user to add to the tenant, or whose role to set.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddMember {
    /// The user's address (the user must exist).
    pub email: String,
    /// `owner`, `admin`, `author` or `viewer`.
    pub role: String,
}

/// A new role.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateMember {
    /// `owner`, `admin`, `author` or `viewer`.
    pub role: String,
}

/// Add a user to the tenant, or set the role of a member (admins; the owner role by
/// owners).
#[utoipa::path(
    post, path = "/api/v1/tenants/{tenant}/members", tag = "members",
    params(("tenant" = String, Path, description = "Tenant slug")),
    request_body = AddMember,
    security(("bearer" = [])),
    responses((status = 200, body = MemberBody), Errors)
)]
pub async fn add_member(
    State(state): State<AppState>,
    principal: Principal,
    RemoteAddr(remote): RemoteAddr,
    ApiPath(slug): ApiPath<String>,
    ApiJson(body): ApiJson<AddMember>,
) -> Result<Json<MemberBody>, ApiError> {
    let actor = principal.audit_actor();
    let change = scope::change(&state, &actor, &remote);
    let member = tenant_admin::add_member(
        &state,
        &principal,
        &slug,
        (&body.email, &body.role),
        &change,
    )
    .await?;
    Ok(Json(member_body(member)))
}

fn member_body(m: crate::store::Member) -> MemberBody {
    MemberBody {
        user_id: m.user_id.0,
        email: m.email,
        role: m.role,
    }
}

/// Change a member's role.
#[utoipa::path(
    patch, path = "/api/v1/tenants/{tenant}/members/{user_id}", tag = "members",
    params(
        ("tenant" = String, Path, description = "Tenant slug"),
        ("user_id" = i64, Path, description = "The member's user id")
    ),
    request_body = UpdateMember,
    security(("bearer" = [])),
    responses((status = 200, body = MemberBody), Errors)
)]
pub async fn update_member(
    State(state): State<AppState>,
    principal: Principal,
    RemoteAddr(remote): RemoteAddr,
    ApiPath((slug, user)): ApiPath<(String, i64)>,
    ApiJson(body): ApiJson<UpdateMember>,
) -> Result<Json<MemberBody>, ApiError> {
    let actor = principal.audit_actor();
    let change = scope::change(&state, &actor, &remote);
    let member =
        tenant_admin::change_role(&state, &principal, &slug, UserId(user), &body.role, &change)
            .await?;
    Ok(Json(member_body(member)))
}

/// Remove a member with their team memberships, grants and collaborations. Removing a
/// non-member is a no-op; the last owner cannot be removed.
#[utoipa::path(
    delete, path = "/api/v1/tenants/{tenant}/members/{user_id}", tag = "members",
    params(
        ("tenant" = String, Path, description = "Tenant slug"),
        ("user_id" = i64, Path, description = "The member's user id")
    ),
    security(("bearer" = [])),
    responses((status = 204, description = "Removed (or was not a member)"), Errors)
)]
pub async fn remove_member(
    State(state): State<AppState>,
    principal: Principal,
    RemoteAddr(remote): RemoteAddr,
    ApiPath((slug, user)): ApiPath<(String, i64)>,
) -> Result<Response, ApiError> {
    let actor = principal.audit_actor();
    let change = scope::change(&state, &actor, &remote);
    tenant_admin::remove_member(&state, &principal, &slug, UserId(user), &change).await?;
    Ok(scope::no_content())
}
