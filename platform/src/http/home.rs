//! `/healthz` (the home page is the console's, `http::console`).

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use serde_json::json;

use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/healthz", get(health))
}

/// `/healthz` alone, for the apps origin.
pub fn health_router() -> Router<AppState> {
    Router::new().route("/healthz", get(health))
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
