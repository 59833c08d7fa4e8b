//! The REST API under `/api/v1`: tenants, members, teams, apps (with their versions and
//! settings), tokens and the audit log.
//!
//! One [`OpenApiRouter`] is the single source of both the axum routes and the OpenAPI
//! document (`/api/v1/openapi.json`): every handler carries its `#[utoipa::path]`, so a
//! route cannot exist without being documented, and the authorization matrix test walks
//! the document's paths. Handlers extract, ask [`crate::policy`] through the helpers in
//! [`scope`], call one store function and map the result; they never compare roles.
//!
//! Denials: no credentials is 401 `unauthorized`; a tenant or app the principal may not
//! see is the same 404 as a missing one (`not_found`); a visible resource the principal
//! may not change is 403 `forbidden`.

mod apps;
mod audit;
mod cli;
mod datasources;
mod extract;
mod invitations;
mod members;
mod outbound;
mod providers;
mod schema;
mod scope;
mod settings;
mod teams;
mod tenants;
mod tokens;

use std::sync::OnceLock;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::ApiError;
use crate::state::AppState;

pub use audit::csv_response;
pub use extract::{ApiJson, ApiPath, ApiQuery, RemoteAddr};
pub use schema::ErrorBody;

/// Largest API request body: the API takes small JSON documents only.
pub const MAX_API_BODY_BYTES: usize = 64 << 10;

/// Largest page a client may ask for.
pub const MAX_PAGE: i64 = 200;

/// Page size when the client does not say.
pub const DEFAULT_PAGE: i64 = 50;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Tessera API",
        version = "1",
        description = "Tenants, members, teams, apps, API tokens and the audit log of a Tessera installation."
    ),
    modifiers(&BearerAuth),
    components(schemas(schema::ErrorBody, schema::ErrorDetail)),
    tags(
        (name = "tenants"), (name = "members"), (name = "teams"), (name = "apps"),
        (name = "tokens"), (name = "audit"), (name = "meta")
    )
)]
struct ApiDoc;

/// Adds the `bearer` security scheme (API tokens `tsr_…`).
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("tsr_<id>_<secret>")
                    .build(),
            ),
        );
    }
}

/// Every API route with its documentation: the one route table.
fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(get_openapi))
        .routes(routes!(tenants::list_tenants, tenants::create_tenant))
        .routes(routes!(
            tenants::get_tenant,
            tenants::update_tenant,
            tenants::delete_tenant
        ))
        .routes(routes!(tenants::suspend_tenant))
        .routes(routes!(tenants::resume_tenant))
        .routes(routes!(members::list_members, members::add_member))
        .routes(routes!(members::update_member, members::remove_member))
        .routes(routes!(
            invitations::list_invitations,
            invitations::create_invitation
        ))
        .routes(routes!(invitations::revoke_invitation))
        .routes(routes!(providers::list_providers))
        .routes(routes!(providers::put_provider, providers::delete_provider))
        .routes(routes!(providers::test_provider))
        .routes(routes!(teams::list_teams, teams::create_team))
        .routes(routes!(teams::add_team_member, teams::remove_team_member))
        .routes(routes!(apps::list_apps))
        .routes(routes!(apps::get_app, apps::update_app, apps::delete_app))
        .routes(routes!(apps::list_versions))
        .routes(routes!(apps::app_logs))
        .routes(routes!(apps::rollback_app))
        .routes(routes!(apps::get_app_usage))
        .routes(routes!(settings::list_settings))
        .routes(routes!(settings::put_setting, settings::delete_setting))
        .routes(routes!(outbound::list_outbound))
        .routes(routes!(outbound::allow_outbound))
        .routes(routes!(outbound::deny_outbound))
        .routes(routes!(apps::get_app_access))
        .routes(routes!(apps::add_collaborator, apps::remove_collaborator))
        .routes(routes!(apps::grant_app_to_user, apps::revoke_app_from_user))
        .routes(routes!(apps::grant_app_to_team, apps::revoke_app_from_team))
        .routes(routes!(tokens::list_tokens, tokens::create_token))
        .routes(routes!(tokens::revoke_token))
        .routes(routes!(cli::start_sign_in))
        .routes(routes!(cli::collect_token))
        .routes(routes!(datasources::list_sources))
        .routes(routes!(
            datasources::grant_source,
            datasources::revoke_source
        ))
        .routes(routes!(
            datasources::get_source,
            datasources::put_source,
            datasources::delete_source
        ))
        .routes(routes!(datasources::test_source))
        .routes(routes!(audit::list_tenant_audit))
        .routes(routes!(audit::export_tenant_audit))
        .routes(routes!(audit::list_platform_audit))
}

/// The OpenAPI document of every route, as served at `/api/v1/openapi.json`.
pub fn openapi() -> utoipa::openapi::OpenApi {
    api().into_openapi()
}

/// The API's routes, with a JSON 404 for unknown paths under `/api/v1` and the API's
/// body limit (413 in our error shape).
pub fn router() -> Router<AppState> {
    let (router, _doc) = api().split_for_parts();
    router
        .route("/api/v1", axum::routing::any(unknown_route))
        .route("/api/v1/{*rest}", axum::routing::any(unknown_route))
        .layer(DefaultBodyLimit::max(MAX_API_BODY_BYTES))
}

async fn unknown_route() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such API route")
}

/// The OpenAPI 3.1 document of this API.
#[utoipa::path(
    get,
    path = "/api/v1/openapi.json",
    tag = "meta",
    responses((status = 200, description = "The OpenAPI document", content_type = "application/json"))
)]
async fn get_openapi() -> Response {
    static DOCUMENT: OnceLock<String> = OnceLock::new();
    let body = DOCUMENT.get_or_init(|| {
        openapi()
            .to_pretty_json()
            .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
    });
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body.clone(),
    )
        .into_response()
}
