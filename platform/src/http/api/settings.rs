//! `/api/v1/tenants/{tenant}/apps/{app}/settings`: an app's settings and secrets, for
//! whoever may deploy the app. A secret's value is write-only: listings say that it is set,
//! never what it is.

use axum::Json;
use axum::extract::State;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::schema::Errors;
use super::{ApiJson, ApiPath, RemoteAddr, scope};
use crate::error::ApiError;
use crate::manage;
use crate::policy::Principal;
use crate::state::AppState;
use crate::store::StoredSetting;

/// A setting as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct SettingBody {
    /// Its name.
    pub name: String,
    /// Whether it is a secret.
    pub secret: bool,
    /// The value of a plain setting; always null for a secret.
    pub value: Option<String>,
    /// When it was last set, Unix ms.
    pub updated_at: i64,
    /// Who last set it.
    pub updated_by: String,
}

impl From<StoredSetting> for SettingBody {
    fn from(s: StoredSetting) -> Self {
        Self {
            value: (!s.secret).then_some(s.value),
            name: s.name,
            secret: s.secret,
            updated_at: s.updated_at,
            updated_by: s.updated_by,
        }
    }
}

/// The new value of a setting.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SettingValue {
    /// The value (UTF-8, at most 32 KiB, no NUL).
    #[schema(max_length = 32768)]
    pub value: String,
    /// Store it as a secret: sealed at rest, never shown again, masked in the app's logs.
    #[serde(default)]
    pub secret: bool,
}

/// The app's settings and secrets by name (who may deploy the app). Secrets are listed
/// without their values.
#[utoipa::path(
    get, path = "/api/v1/tenants/{tenant}/apps/{app}/settings", tag = "apps",
    params(
        ("tenant" = String, Path, description = "Tenant slug"),
        ("app" = String, Path, description = "App name")
    ),
    security(("bearer" = [])),
    responses((status = 200, body = Vec<SettingBody>), Errors)
)]
pub async fn list_settings(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath((slug, name)): ApiPath<(String, String)>,
) -> Result<Json<Vec<SettingBody>>, ApiError> {
    let stored = manage::list_settings(&state, &principal, (&slug, &name)).await?;
    Ok(Json(stored.into_iter().map(SettingBody::from).collect()))
}

#[utoipa::path(
    put, path = "/api/v1/tenants/{tenant}/apps/{app}/settings/{name}", tag = "apps",
    params(
        ("tenant" = String, Path, description = "Tenant slug"),
        ("app" = String, Path, description = "App name"),
        ("name" = String, Path, description = "Setting name: a letter or '_', then letters, digits and '_' (at most 64)")
    ),
    request_body(content = SettingValue),
    security(("bearer" = [])),
    responses((status = 200, body = SettingBody, description = "The setting as stored"), Errors)
)]
pub async fn put_setting(
    State(state): State<AppState>,
    principal: Principal,
    RemoteAddr(remote): RemoteAddr,
    ApiPath((slug, name, setting)): ApiPath<(String, String, String)>,
    ApiJson(body): ApiJson<SettingValue>,
) -> Result<Json<SettingBody>, ApiError> {
    let actor = principal.audit_actor();
    let change = scope::change(&state, &actor, &remote);
    let stored = manage::set_setting(
        &state,
        &principal,
        (&slug, &name),
        (&setting, &body.value, body.secret),
        &change,
    )
    .await?;
    Ok(Json(SettingBody::from(stored)))
}

/// Remove a setting (who may deploy the app; a no-op when the app has no such setting).
/// Audited as `app.settings.unset`.
#[utoipa::path(
    delete, path = "/api/v1/tenants/{tenant}/apps/{app}/settings/{name}", tag = "apps",
    params(
        ("tenant" = String, Path, description = "Tenant slug"),
        ("app" = String, Path, description = "App name"),
        ("name" = String, Path, description = "Setting name")
    ),
    security(("bearer" = [])),
    responses((status = 204, description = "The app has no such setting"), Errors)
)]
pub async fn delete_setting(
    State(state): State<AppState>,
    principal: Principal,
    RemoteAddr(remote): RemoteAddr,
    ApiPath((slug, name, setting)): ApiPath<(String, String, String)>,
) -> Result<Response, ApiError> {
    let actor = principal.audit_actor();
    let change = scope::change(&state, &actor, &remote);
    manage::unset_setting(&state, &principal, (&slug, &name), &setting, &change).await?;
    Ok(scope::no_content())
}
