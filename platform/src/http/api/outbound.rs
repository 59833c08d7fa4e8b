//! `/api/v1/tenants/{tenant}/apps/{app}/outbound`: the hosts an app may reach over HTTP
//! (its allowlist, the setting `TESSERA_OUTBOUND_HOSTS`), for whoever may deploy the app;
//! the same edits as `tessera apps outbound`, through [`crate::outbound::edit`].

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::schema::Errors;
use super::{ApiJson, ApiPath, RemoteAddr, scope};
use crate::error::ApiError;
use crate::outbound::{self, Edit, EditError};
use crate::policy::{Action, Principal, Resource};
use crate::state::AppState;

/// An app's outbound allowlist.
#[derive(Debug, Serialize, ToSchema)]
pub struct OutboundHosts {
    /// The patterns, normalized (`https://api.example.com`, `https://*.example.com`,
    /// `http://10.0.0.5:8080`).
    pub hosts: Vec<String>,
    /// Patterns of the request that changed nothing: already allowed, or not allowed.
    pub unchanged: Vec<String>,
}

/// Patterns to allow or deny.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OutboundPatterns {
    /// `scheme://host[:port]` patterns (at most 64 on the list).
    pub patterns: Vec<String>,
}

impl From<EditError> for ApiError {
    fn from(error: EditError) -> Self {
        match error {
            EditError::Store(e) => e.into(),
            other => ApiError::validation(other.to_string()),
        }
    }
}

fn strings(patterns: &[sandbox::HostPattern]) -> Vec<String> {
    patterns.iter().map(ToString::to_string).collect()
}

/// The hosts the app may reach (who may deploy the app).
#[utoipa::path(
    get, path = "/api/v1/tenants/{tenant}/apps/{app}/outbound", tag = "apps",
    params(
        ("tenant" = String, Path, description = "Tenant slug"),
        ("app" = String, Path, description = "App name")
    ),
    security(("bearer" = [])),
    responses((status = 200, body = OutboundHosts), Errors)
)]
pub async fn list_outbound(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath((slug, name)): ApiPath<(String, String)>,
) -> Result<Json<OutboundHosts>, ApiError> {
    let tenant = scope::tenant(&state, &principal, &slug).await?;
    let access = scope::app(&state, &principal, &tenant, &name).await?;
    scope::allow(&principal, Action::DeployApp, &Resource::App(access))?;
    let hosts = outbound::list(&state.store, access.app_id).await?;
    Ok(Json(OutboundHosts {
        hosts: strings(&hosts),
        unchanged: Vec::new(),
    }))
}

async fn edit(
    state: AppState,
    principal: Principal,
    remote: Option<String>,
    (slug, name): (String, String),
    kind: Edit,
    patterns: &[String],
) -> Result<Json<OutboundHosts>, ApiError> {
    let tenant = scope::tenant(&state, &principal, &slug).await?;
    let access = scope::app(&state, &principal, &tenant, &name).await?;
    scope::allow(&principal, Action::DeployApp, &Resource::App(access))?;
    let actor = principal.audit_actor();
    let change = scope::change(&state, &actor, &remote);
    let edited = outbound::edit(
        &state.store,
        tenant.id,
        access.app_id,
        kind,
        patterns,
        &change,
    )
    .await?;
    Ok(Json(OutboundHosts {
        hosts: strings(&edited.hosts),
        unchanged: strings(&edited.unchanged),
    }))
}

/// Let the app reach these hosts (who may deploy the app). Running servers load the app
/// again within a second; audited as `app.settings.set` of `TESSERA_OUTBOUND_HOSTS`.
#[utoipa::path(
    post, path = "/api/v1/tenants/{tenant}/apps/{app}/outbound/allow", tag = "apps",
    params(
        ("tenant" = String, Path, description = "Tenant slug"),
        ("app" = String, Path, description = "App name")
    ),
    request_body(content = OutboundPatterns),
    security(("bearer" = [])),
    responses((status = 200, body = OutboundHosts, description = "The allowlist now"), Errors)
)]
pub async fn allow_outbound(
    State(state): State<AppState>,
    principal: Principal,
    RemoteAddr(remote): RemoteAddr,
    ApiPath(path): ApiPath<(String, String)>,
    ApiJson(body): ApiJson<OutboundPatterns>,
) -> Result<Json<OutboundHosts>, ApiError> {
    edit(state, principal, remote, path, Edit::Allow, &body.patterns).await
}

/// Take hosts off the app's allowlist (who may deploy the app; a pattern that is not on it
/// is reported in `unchanged`). Audited as a settings change.
#[utoipa::path(
    post, path = "/api/v1/tenants/{tenant}/apps/{app}/outbound/deny", tag = "apps",
    params(
        ("tenant" = String, Path, description = "Tenant slug"),
        ("app" = String, Path, description = "App name")
    ),
    request_body(content = OutboundPatterns),
    security(("bearer" = [])),
    responses((status = 200, body = OutboundHosts, description = "The allowlist now"), Errors)
)]
pub async fn deny_outbound(
    State(state): State<AppState>,
    principal: Principal,
    RemoteAddr(remote): RemoteAddr,
    ApiPath(path): ApiPath<(String, String)>,
    ApiJson(body): ApiJson<OutboundPatterns>,
) -> Result<Json<OutboundHosts>, ApiError> {
    edit(state, principal, remote, path, Edit::Deny, &body.patterns).await
}
