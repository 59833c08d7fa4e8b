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
use crate::policy::{Action, Principal, Resource};
use crate::state::AppState;
use crate::store::Tenant;
use crate::tenancy::{Email, Role};

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
    let tenant = scope::tenant(&state, &principal, &slug).await?;
    scope::allow(
        &principal,
        Action::ManageMembers,
        &Resource::Tenant(tenant.id),
    )?;
    let limit = scope::limit(&query)?;
    let page = state
        .store
        .list_members(tenant.id, scope::id_cursor(&query)?, limit)
        .await?;
    let next_cursor = (page.len() as i64 == limit)
        .then(|| page.last().map(|m| m.user_id.to_string()))
        .flatten();
    let items = page
        .into_iter()
        .map(|m| MemberBody {
            user_id: m.user_id.0,
            email: m.email,
            role: m.role,
        })
        .collect();
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

/// The action a role change needs: granting or taking the owner role is for owners.
fn needed(role: Role, previous: Option<Role>) -> Action {
    if role == Role::Owner || previous == Some(Role::Owner) {
        Action::GrantOwner
    } else {
        Action::ManageMembers
    }
}

async fn set_role(
    state: &AppState,
    principal: &Principal,
    remote: &Option<String>,
    tenant: &Tenant,
    user: UserId,
    role: Role,
    must_exist: bool,
) -> Result<MemberBody, ApiError> {
    scope::allow(
        principal,
        Action::ManageMembers,
        &Resource::Tenant(tenant.id),
    )?;
    let previous = state.store.membership(tenant.id, user).await?;
    scope::allow(
        principal,
        needed(role, previous),
        &Resource::Tenant(tenant.id),
    )?;
    let actor = principal.audit_actor();
    let change = scope::change(state, &actor, remote);
    match previous {
        Some(_) => {
            state
                .store
                .change_role(tenant.id, user, role, &change)
                .await?;
        }
        None if must_exist => return Err(ApiError::not_found("member", &user.to_string())),
        None => {
            state
                .store
                .grant_role(tenant.id, user, role, &change)
                .await?;
        }
    }
    let email = state
        .store
        .user(user)
        .await?
        .map(|u| u.email)
        .unwrap_or_default();
    Ok(MemberBody {
        user_id: user.0,
        email,
        role,
    })
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
    let tenant = scope::tenant(&state, &principal, &slug).await?;
    scope::allow(
        &principal,
        Action::ManageMembers,
        &Resource::Tenant(tenant.id),
    )?;
    let role: Role = body.role.parse()?;
    let email = Email::parse(&body.email)?;
    let user = state
        .store
        .user_by_email(&email)
        .await?
        .ok_or_else(|| ApiError::not_found("user", email.as_str()))?;
    let member = set_role(&state, &principal, &remote, &tenant, user.id, role, false).await?;
    Ok(Json(member))
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
    let tenant = scope::tenant(&state, &principal, &slug).await?;
    scope::allow(
        &principal,
        Action::ManageMembers,
        &Resource::Tenant(tenant.id),
    )?;
    let role: Role = body.role.parse()?;
    let member = set_role(
        &state,
        &principal,
        &remote,
        &tenant,
        UserId(user),
        role,
        true,
    )
    .await?;
    Ok(Json(member))
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
    let tenant = scope::tenant(&state, &principal, &slug).await?;
    let resource = Resource::Tenant(tenant.id);
    scope::allow(&principal, Action::ManageMembers, &resource)?;
    let user = UserId(user);
    if state.store.membership(tenant.id, user).await? == Some(Role::Owner) {
        scope::allow(&principal, Action::GrantOwner, &resource)?;
    }
    let actor = principal.audit_actor();
    let change = scope::change(&state, &actor, &remote);
    state.store.remove_member(tenant.id, user, &change).await?;
    Ok(scope::no_content())
}
