//! The HTTP surface: one router per area, merged here, and two origins.
//!
//! The platform's origin (the public URL) serves its pages, `/api/v1`, sign-in and git;
//! the apps origin serves only `/apps/{tenant}/{app}/…`, its hand-off endpoint and
//! `/healthz`. Each has its own session cookie, so an app's JavaScript never runs where
//! the platform's cookie is sent. [`crate::origin`] decides which origin a request reached.

mod access;
mod account;
pub mod api;
mod console;
mod console_connections;
mod console_device;
mod console_platform;
mod console_tenant;
mod console_usage;
pub mod dash;
mod dash_ws;
pub mod git;
mod handoff;
mod home;
mod ops;
mod saml;
pub mod session;
pub mod sso;

use axum::Router;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Request};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;
use tower::ServiceExt;
use tower_http::trace::TraceLayer;

use crate::origin::{self, Site};
use crate::state::AppState;

/// Every (method, path template) the web console serves, for the authorization matrix.
pub fn console_routes() -> Vec<(&'static str, &'static str)> {
    console::route_table()
}

/// Largest request body accepted (callback inputs can carry `dcc.Store` data).
pub const MAX_BODY_BYTES: usize = 8 << 20;

/// The whole application: each request goes to the router of the origin it reached.
pub fn router(state: AppState) -> Router {
    let (platform, apps) = match state.config.cluster.role {
        crate::config::Role::Builder => {
            (builder_router(state.clone()), builder_router(state.clone()))
        }
        crate::config::Role::All | crate::config::Role::Web => {
            (platform_router(state.clone()), apps_router(state.clone()))
        }
    };
    let dispatch = tower::service_fn(move |mut request: Request| {
        let site = site_of(&state, &request);
        let router = match site {
            Site::Apps(_) => apps.clone(),
            Site::Platform => platform.clone(),
        };
        request.extensions_mut().insert(site);
        router.oneshot(request)
    });
    Router::new()
        .fallback_service(dispatch)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        // A 5xx is logged where it arises (internal causes once, callback failures through
        // the per-app rate-limited log), never once per response: a tenant hammering its
        // failing app must not be able to fill the server's disk with log lines.
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(ops::request_span)
                .on_failure(
                    tower_http::trace::DefaultOnFailure::new().level(tracing::Level::DEBUG),
                ),
        )
        // Outermost: the id is settled before the span above is made, and answered on
        // every response, errors included.
        .layer(axum::middleware::from_fn(ops::request_id))
}

/// Which origin `request` reached (by its host; `X-Forwarded-Host` from trusted proxies).
fn site_of(state: &AppState, request: &Request) -> Site {
    let headers = request.headers();
    let text = |name| {
        headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    };
    let host = text(header::HOST).or_else(|| request.uri().authority().map(|a| a.as_str()));
    let peer = request
        .extensions()
        .get::<ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip());
    let host = origin::request_host(
        host,
        text(header::HeaderName::from_static("x-forwarded-host")),
        peer,
        &state.config.sessions.trusted_proxies,
    );
    state.origins.classify(host)
}

/// A builder replica: `git push` (forwarded by web replicas), health, readiness and
/// metrics; nothing of apps, the API or the UI, which the web replicas serve.
fn builder_router(state: AppState) -> Router {
    Router::new()
        .merge(home::health_router())
        .merge(ops::router())
        .merge(git::router())
        .fallback(builder_only)
        .layer(axum::middleware::from_fn(ops::count_requests))
        .with_state(state)
}

async fn builder_only() -> (axum::http::StatusCode, &'static str) {
    (
        axum::http::StatusCode::NOT_FOUND,
        "this replica is a builder: it serves /git/ only; apps, the API and the UI are on the web replicas\n",
    )
}

/// The platform's origin: pages, API, sign-in, git; `/apps/…` is sent to the apps origin.
fn platform_router(state: AppState) -> Router {
    Router::new()
        .merge(home::router())
        .merge(ops::router())
        .merge(console::router())
        .merge(api::router())
        .merge(git::router())
        .merge(session::router())
        .merge(sso::router())
        .merge(saml::router())
        .merge(account::router())
        .merge(handoff::platform_router())
        .fallback(console::not_found)
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
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            platform_headers,
        ))
        .layer(axum::middleware::from_fn(ops::count_requests))
        .with_state(state)
}

/// The apps origin: every route under `/apps/{tenant}/{app}/` behind the access gate, the
/// hand-off that starts an app session, `/healthz`; nothing else.
fn apps_router(state: AppState) -> Router {
    Router::new()
        .merge(home::health_router())
        .merge(ops::readiness_router())
        .merge(handoff::apps_router())
        .merge(
            // Every route under /apps/{tenant}/{app}/ passes the access check first: a
            // principal who may not view the app gets the same 404 as for a missing app.
            dash::router().route_layer(axum::middleware::from_fn_with_state(
                state.clone(),
                access::require_app_access,
            )),
        )
        .fallback(handoff::not_an_app_route)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            handoff::authenticate,
        ))
        .layer(handoff::session_layer(&state))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            session::secure_behind_proxy,
        ))
        .layer(axum::middleware::from_fn(ops::count_requests))
        .with_state(state)
}

/// Every answer of the platform's origin: a Content-Security-Policy that allows no script
/// but its own files, and no framing.
async fn platform_headers(
    axum::extract::State(state): axum::extract::State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_SECURITY_POLICY, state.platform_csp.clone());
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    response
}
