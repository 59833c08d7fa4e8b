//! The HTTP surface: one router per area, merged here.

mod access;
mod account;
pub mod api;
pub mod dash;
pub mod git;
mod home;
pub mod session;
pub mod sso;

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
        .merge(api::router())
        .merge(git::router())
        .merge(session::router())
        .merge(sso::router())
        .merge(account::router())
        .merge(
            // Every route under /apps/{tenant}/{app}/ passes the access check first: a
            // principal who may not view the app gets the same 404 as for a missing app.
            dash::router().route_layer(axum::middleware::from_fn_with_state(
                state.clone(),
                access::require_app_access,
            )),
        )
        // Sessions: the middleware that reads them runs inside the layer that loads them,
        // and the proxy-aware Secure flag outside both.
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            session::authenticate,
        ))
        .layer(session::layer(&state))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            session::secure_behind_proxy,
        ))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}
