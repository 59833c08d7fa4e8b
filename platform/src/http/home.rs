//! `/` (the list of live dashboards) and `/healthz`.

use askama::Template;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse};
use axum::routing::get;
use serde_json::json;

use crate::error::ApiError;
use crate::state::AppState;
use crate::store::AppSummary;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(list_apps))
        .route("/healthz", get(health))
}

#[derive(Template)]
#[template(path = "home.html")]
struct HomePage {
    apps: Vec<AppSummary>,
}

async fn list_apps(State(state): State<AppState>) -> Result<Html<String>, ApiError> {
    let apps = state
        .store
        .list_live_apps()
        .await
        .map_err(|e| ApiError::internal("listing apps failed", &e))?;
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
