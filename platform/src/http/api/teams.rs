//! `/api/v1/tenants/{tenant}/teams`: teams and their members.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use utoipa::ToSchema;

use super::schema::{Errors, TeamBody};
use super::{ApiJson, ApiPath, RemoteAddr, scope};
use crate::error::ApiError;
use crate::ids::{TeamId, UserId};
use crate::policy::Principal;
use crate::state::AppState;
use crate::tenant_admin;

/// The tenant's teams with their members (any member of the tenant).
#[utoipa::path(
    get, path = "/api/v1/tenants/{tenant}/teams", tag = "teams",
    params(("tenant" = String, Path, description = "Tenant slug")),
    security(("bearer" = [])),
    responses((status = 200, body = Vec<TeamBody>), Errors)
)]
pub async fn list_teams(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(slug): ApiPath<String>,
) -> Result<Json<Vec<TeamBody>>, ApiError> {
    let teams = tenant_admin::teams(&state, &principal, &slug).await?;
    Ok(Json(
        teams
            .into_iter()
            .map(|t| TeamBody {
                id: t.id.0,
                name: t.name,
                members: t.members.into_iter().map(|u| u.0).collect(),
            })
            .collect(),
    ))
}

/// A new team.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTeam {
    /// 1-100 characters, unique in the tenant.
    pub name: String,
}

/// Create a team (admins).
#[utoipa::path(
    post, path = "/api/v1/tenants/{tenant}/teams", tag = "teams",
    params(("tenant" = String, Path, description = "Tenant slug")),
    request_body = CreateTeam,
    security(("bearer" = [])),
    responses((status = 201, body = TeamBody), Errors)
)]
pub async fn create_team(
    State(state): State<AppState>,
    principal: Principal,
    RemoteAddr(remote): RemoteAddr,
    ApiPath(slug): ApiPath<String>,
    ApiJson(body): ApiJson<CreateTeam>,
) -> Result<(StatusCode, Json<TeamBody>), ApiError> {
    let actor = principal.audit_actor();
    let change = scope::change(&state, &actor, &remote);
    let (id, name) =
        tenant_admin::create_team(&state, &principal, &slug, &body.name, &change).await?;
    Ok((
        StatusCode::CREATED,
        Json(TeamBody {
            id: id.0,
            name,
            members: Vec::new(),
        }),
    ))
}

/// Put a member of the tenant in a team (admins).
#[utoipa::path(
    put, path = "/api/v1/tenants/{tenant}/teams/{team_id}/members/{user_id}", tag = "teams",
    params(
        ("tenant" = String, Path, description = "Tenant slug"),
        ("team_id" = i64, Path, description = "Team id"),
        ("user_id" = i64, Path, description = "User id of a member of the tenant")
    ),
    security(("bearer" = [])),
    responses((status = 204, description = "The user is in the team"), Errors)
)]
pub async fn add_team_member(
    State(state): State<AppState>,
    principal: Principal,
    RemoteAddr(remote): RemoteAddr,
    ApiPath((slug, team, user)): ApiPath<(String, i64, i64)>,
) -> Result<Response, ApiError> {
    let actor = principal.audit_actor();
    let change = scope::change(&state, &actor, &remote);
    tenant_admin::add_team_member(
        &state,
        &principal,
        &slug,
        (TeamId(team), UserId(user)),
        &change,
    )
    .await?;
    Ok(scope::no_content())
}

/// Take a user out of a team (admins); a no-op when they are not in it.
#[utoipa::path(
    delete, path = "/api/v1/tenants/{tenant}/teams/{team_id}/members/{user_id}", tag = "teams",
    params(
        ("tenant" = String, Path, description = "Tenant slug"),
        ("team_id" = i64, Path, description = "Team id"),
        ("user_id" = i64, Path, description = "User id")
    ),
    security(("bearer" = [])),
    responses((status = 204, description = "The user is not in the team"), Errors)
)]
pub async fn remove_team_member(
    State(state): State<AppState>,
    principal: Principal,
    RemoteAddr(remote): RemoteAddr,
    ApiPath((slug, team, user)): ApiPath<(String, i64, i64)>,
) -> Result<Response, ApiError> {
    let actor = principal.audit_actor();
    let change = scope::change(&state, &actor, &remote);
    tenant_admin::remove_team_member(
        &state,
        &principal,
        &slug,
        (TeamId(team), UserId(user)),
        &change,
    )
    .await?;
    Ok(scope::no_content())
}
