//! The HTTP surface: one router per area, merged here.

pub mod dash;
mod home;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use tower_http::trace::TraceLayer;

use crate::state::AppState;

/// Largest request body accepted (callback inputs can carry `dcc.Store` data).
pub const MAX_BODY_BYTES: usize = 8 << 20;

/// The whole application.
pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(home::router())
        .merge(dash::router())
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}
