//! `/` (the list of live dashboards, linked on their apps origin) and `/healthz`.

use askama::Template;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse};
use axum::routing::get;
use serde_json::json;

use crate::error::ApiError;
use crate::policy::{self, Action, Principal, Resource};
use crate::state::AppState;
use crate::store::{AppAccess, AppSummary};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(list_apps))
        .route("/healthz", get(health))
}

/// `/healthz` alone, for the apps origin.
pub fn health_router() -> Router<AppState> {
    Router::new().route("/healthz", get(health))
}

#[derive(Template)]
#[template(path = "home.html")]
struct HomePage {
    apps: Vec<AppSummary>,
}

/// The live apps the principal may open. Restricted apps are judged without loading each
/// one's grants, so a grantee who is not an admin does not see them listed (the app itself
/// still opens for them).
async fn list_apps(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Html<String>, ApiError> {
    let apps = state
        .store
        .list_live_apps()
        .await
        .map_err(|e| ApiError::internal("listing apps failed", &e))?
        .into_iter()
        .filter(|app| {
            let access = AppAccess {
                tenant_id: app.tenant_id,
                app_id: app.app_id,
                visibility: app.visibility,
                collaborator: false,
                granted: false,
            };
            policy::authorize(&principal, Action::ViewApp, &Resource::App(access)).is_ok()
        })
        .collect();
    HomePage { apps }
        .render()
        .map(Html)
        .map_err(|e| ApiError::internal("rendering the app list failed", &e))
}

/// 200 when the database answers, 503 otherwise, so a load balancer can take a replica
/// out of rotation.
async fn health(State(state): State<AppState>) -> impl IntoResponse {
    match state.store.ping().await {
        Ok(()) => (StatusCode::OK, axum::Json(json!({"status": "ok"}))),
        Err(e) => {
            tracing::warn!(error = %e, "health check failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                axum::Json(json!({"status": "unavailable", "reason": "database"})),
            )
        }
    }
}
