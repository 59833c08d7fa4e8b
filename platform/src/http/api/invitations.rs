//! `/api/v1/tenants/{tenant}/invitations`: single-use links that make whoever opens them a
//! member with a role. Accepting is a browser step (`/invite/{tenant}/{secret}`).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::schema::Errors;
use super::{ApiJson, ApiPath, RemoteAddr, scope};
use crate::error::ApiError;
use crate::policy::Principal;
use crate::state::AppState;
use crate::store::Invitation;
use crate::tenant_admin;

/// An invitation to create.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateInvitation {
    /// The role it grants: `owner` (by owners), `admin`, `author` or `viewer`.
    pub role: String,
    /// Who it is for (shown to admins and the invitee), at most 200 characters.
    #[serde(default)]
    pub note: String,
    /// How many days it works, 1 to 30 (default 7).
    pub days: Option<i64>,
}

/// A new invitation: the link is in this answer only.
#[derive(Debug, Serialize, ToSchema)]
pub struct NewInvitationBody {
    /// Its id.
    pub id: i64,
    /// The single-use link to hand to the invitee.
    pub link: String,
    /// The role it grants.
    pub role: String,
    /// When it stops working, Unix ms.
    pub expires_at: i64,
}

/// An invitation (never its link).
#[derive(Debug, Serialize, ToSchema)]
pub struct InvitationBody {
    /// Its id.
    pub id: i64,
    /// The role it grants.
    pub role: String,
    /// Who it is for.
    pub note: String,
    /// Who created it.
    pub created_by: String,
    /// When, Unix ms.
    pub created_at: i64,
    /// When it stops working, Unix ms.
    pub expires_at: i64,
    /// When it was used, Unix ms.
    pub accepted_at: Option<i64>,
    /// Who used it.
    pub accepted_by: Option<i64>,
    /// When it was withdrawn, Unix ms.
    pub revoked_at: Option<i64>,
}

impl From<Invitation> for InvitationBody {
    fn from(i: Invitation) -> Self {
        Self {
            id: i.id,
            role: i.role.as_str().to_owned(),
            note: i.note,
            created_by: i.created_by,
            created_at: i.created_at,
            expires_at: i.expires_at,
            accepted_at: i.accepted.map(|a| a.0),
            accepted_by: i.accepted.map(|a| (a.1).0),
            revoked_at: i.revoked_at,
        }
    }
}

/// The tenant's last 100 invitations, newest first (admins).
#[utoipa::path(
    get, path = "/api/v1/tenants/{tenant}/invitations", tag = "members",
    params(("tenant" = String, Path, description = "Tenant slug")),
    security(("bearer" = [])),
    responses((status = 200, body = Vec<InvitationBody>), Errors)
)]
pub async fn list_invitations(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(slug): ApiPath<String>,
) -> Result<Json<Vec<InvitationBody>>, ApiError> {
    let list = tenant_admin::invitations(&state, &principal, &slug).await?;
    Ok(Json(list.into_iter().map(InvitationBody::from).collect()))
}

/// Create an invitation (admins; an owner invitation by owners). The answer holds the
/// link, once.
#[utoipa::path(
    post, path = "/api/v1/tenants/{tenant}/invitations", tag = "members",
    params(("tenant" = String, Path, description = "Tenant slug")),
    request_body = CreateInvitation,
    security(("bearer" = [])),
    responses((status = 201, body = NewInvitationBody), Errors)
)]
pub async fn create_invitation(
    State(state): State<AppState>,
    principal: Principal,
    RemoteAddr(remote): RemoteAddr,
    ApiPath(slug): ApiPath<String>,
    ApiJson(body): ApiJson<CreateInvitation>,
) -> Result<(StatusCode, Json<NewInvitationBody>), ApiError> {
    let actor = principal.audit_actor();
    let change = scope::change(&state, &actor, &remote);
    let new = tenant_admin::create_invitation(
        &state,
        &principal,
        &slug,
        (&body.role, &body.note, body.days),
        &change,
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(NewInvitationBody {
            id: new.id,
            link: new.link,
            role: new.role.as_str().to_owned(),
            expires_at: new.expires_at,
        }),
    ))
}

/// Withdraw an invitation (admins); a used or withdrawn one stays as it is.
#[utoipa::path(
    delete, path = "/api/v1/tenants/{tenant}/invitations/{invitation_id}", tag = "members",
    params(
        ("tenant" = String, Path, description = "Tenant slug"),
        ("invitation_id" = i64, Path, description = "Invitation id")
    ),
    security(("bearer" = [])),
    responses((status = 204, description = "The invitation no longer works"), Errors)
)]
pub async fn revoke_invitation(
    State(state): State<AppState>,
    principal: Principal,
    RemoteAddr(remote): RemoteAddr,
    ApiPath((slug, id)): ApiPath<(String, i64)>,
) -> Result<Response, ApiError> {
    let actor = principal.audit_actor();
    let change = scope::change(&state, &actor, &remote);
    tenant_admin::revoke_invitation(&state, &principal, &slug, id, &change).await?;
    Ok(scope::no_content())
}
