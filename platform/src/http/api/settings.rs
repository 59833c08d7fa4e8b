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
use crate::policy::{Action, Principal, Resource};
use crate::settings::{self, MAX_SETTINGS_PER_APP};
use crate::state::AppState;
use crate::store::{SettingWrite, StoredSetting};

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
    let tenant = scope::tenant(&state, &principal, &slug).await?;
    let access = scope::app(&state, &principal, &tenant, &name).await?;
    scope::allow(&principal, Action::DeployApp, &Resource::App(access))?;
    let stored = state.store.app_settings(access.app_id).await?;
    Ok(Json(stored.into_iter().map(SettingBody::from).collect()))
}

/// Create or replace a setting (who may deploy the app). Running servers load the live
/// version again with the new value within a second; audited as `app.settings.set`
/// (names only). 409 `quota_exceeded` past 100 settings per app.
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
    let tenant = scope::tenant(&state, &principal, &slug).await?;
    let access = scope::app(&state, &principal, &tenant, &name).await?;
    scope::allow(&principal, Action::DeployApp, &Resource::App(access))?;
    settings::check_name(&setting).map_err(|e| ApiError::validation(e.to_string()))?;
    settings::check_value(&setting, &body.value)
        .map_err(|e| ApiError::validation(e.to_string()))?;
    let write = SettingWrite {
        name: &setting,
        secret: body.secret,
        stored_value: settings::stored_value(
            &state.secrets,
            access.app_id,
            &setting,
            &body.value,
            body.secret,
        ),
    };
    let actor = principal.audit_actor();
    let change = scope::change(&state, &actor, &remote);
    state
        .store
        .set_app_settings(
            tenant.id,
            access.app_id,
            &[write],
            MAX_SETTINGS_PER_APP,
            &change,
        )
        .await?;
    let stored = state.store.app_settings(access.app_id).await?;
    stored
        .into_iter()
        .find(|s| s.name == setting)
        .map(|s| Json(SettingBody::from(s)))
        .ok_or_else(|| ApiError::not_found("setting", &setting))
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
    let tenant = scope::tenant(&state, &principal, &slug).await?;
    let access = scope::app(&state, &principal, &tenant, &name).await?;
    scope::allow(&principal, Action::DeployApp, &Resource::App(access))?;
    let actor = principal.audit_actor();
    let change = scope::change(&state, &actor, &remote);
    state
        .store
        .unset_app_settings(tenant.id, access.app_id, &[setting.as_str()], &change)
        .await?;
    Ok(scope::no_content())
}
