//! Who is asking ([`Principal`] as an axum extractor) and the gate in front of an app's
//! Dash routes.
//!
//! `Authorization: Bearer <token>` becomes a token principal; no header is the anonymous
//! principal; anything else is a 401. The gate asks [`policy::authorize`] whether the
//! principal may open the app and answers a refusal with exactly the 404 of a missing app,
//! so nobody learns that an app they may not see exists.

use std::collections::HashMap;

use axum::extract::{FromRequestParts, Path, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::auth;
use crate::error::ApiError;
use crate::ids::Slug;
use crate::origin::Site;
use crate::policy::{self, Action, Principal, Resource};
use crate::state::AppState;

impl FromRequestParts<AppState> for Principal {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        // A layer that authenticated the request another way (sessions, issue 5) leaves
        // the principal in the extensions; a client cannot put anything there.
        if let Some(principal) = parts.extensions.get::<Principal>() {
            return Ok(principal.clone());
        }
        let Some(value) = parts.headers.get(header::AUTHORIZATION) else {
            return Ok(Principal::Anonymous);
        };
        let token = value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .ok_or_else(|| unauthorized("use Authorization: Bearer <token>"))?;
        match auth::token::authenticate(&state.store, token, state.clock.now_millis()).await {
            Ok(principal) => Ok(Principal::Token(principal)),
            Err(auth::Error::InvalidCredentials) => {
                Err(unauthorized("the token is invalid, expired or revoked"))
            }
            Err(auth::Error::TenantSuspended) => Err(ApiError::tenant_suspended().into_response()),
            Err(other) => {
                Err(ApiError::internal("checking the token failed", &other).into_response())
            }
        }
    }
}

pub(crate) fn unauthorized(message: &str) -> Response {
    let mut response =
        ApiError::new(StatusCode::UNAUTHORIZED, "invalid_token", message).into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"tessera\""),
    );
    response
}

/// Middleware for the routes under `/apps/{tenant}/{app}/`: continue only if the principal
/// may view the app; otherwise the same 404 as an app that does not exist.
pub async fn require_app_access(
    State(state): State<AppState>,
    Path(params): Path<HashMap<String, String>>,
    principal: Principal,
    request: Request,
    next: Next,
) -> Response {
    let names = (
        params.get("tenant").map(|t| Slug::parse(t)),
        params.get("app").map(|a| Slug::parse(a)),
    );
    let (Some(Ok(tenant)), Some(Ok(app))) = names else {
        return ApiError::app_not_found().into_response();
    };
    // A per-tenant apps origin serves its own tenant's apps only.
    let serves = request
        .extensions()
        .get::<Site>()
        .is_some_and(|site| site.serves_tenant(&tenant));
    if !serves {
        return ApiError::app_not_found().into_response();
    }
    let turn = state.admission.enter(tenant.as_str()).await;
    let access = state
        .access
        .app_access(&tenant, &app, principal.user_id())
        .await;
    drop(turn);
    let dev = crate::dev::session_for(&state, tenant.as_str(), app.as_str());
    let access = match access {
        Ok(Some(access)) => access,
        // `tessera dev` before its first good build: the failure, not a 404.
        Ok(None) => match dev.and_then(|dev| dev.error()) {
            Some(error) => {
                return axum::response::Html(crate::dev::page_without_version(&error))
                    .into_response();
            }
            None => return ApiError::app_not_found().into_response(),
        },
        Err(e) => return ApiError::internal("checking app access failed", &e).into_response(),
    };
    if let Err(denied) = policy::authorize(&principal, Action::ViewApp, &Resource::App(access)) {
        // A person without an app session who opens the app's page is sent through the
        // platform's hand-off (signing in there if needed) and back; Dash's XHR endpoints
        // keep answering 404.
        let index = format!("/apps/{tenant}/{app}/");
        if matches!(principal, Principal::Anonymous) && request.uri().path() == index {
            let next = request
                .uri()
                .path_and_query()
                .map_or(index.as_str(), |p| p.as_str());
            return super::handoff::start(&state, next);
        }
        tracing::debug!(%tenant, %app, principal = %principal.audit_actor(), %denied, "app hidden");
        return ApiError::app_not_found().into_response();
    }
    // Asked only once the principal may open the app: nobody learns from the 503 that a
    // tenant exists. Every Dash route (the WebSocket upgrade too) passes here.
    match state.suspensions.is_suspended(&tenant).await {
        Ok(false) => {}
        Ok(true) => return tenant_suspended(request.headers()),
        Err(e) => {
            return ApiError::internal("checking the tenant's state failed", &e).into_response();
        }
    }
    // Authors of the app see their callbacks' error details; viewers an error id. The one
    // person `tessera dev` serves on loopback is the author.
    let author = dev.is_some()
        || policy::authorize(&principal, Action::DeployApp, &Resource::App(access)).is_ok();
    let mut request = request;
    request.extensions_mut().insert(AppAuthor(author));
    // The handlers behind the gate read the principal again (the callback's viewer):
    // from here, without authenticating a token a second time.
    request.extensions_mut().insert(principal);
    next.run(request).await
}

/// The 503 of a suspended tenant's app: a short page for a browser, the API's error shape
/// for everything else (the renderer's XHRs, scripts).
pub(crate) fn tenant_suspended(headers: &axum::http::HeaderMap) -> Response {
    let html = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("text/html"));
    if !html {
        return ApiError::tenant_suspended().into_response();
    }
    let page = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>Tenant suspended</title></head><body><main>\
         <h1>This tenant is suspended</h1><p>{}.</p>\
         <p>If you run this tenant, ask the platform's administrators why.</p>\
         </main></body></html>\n",
        crate::error::TENANT_SUSPENDED
    );
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))],
        axum::response::Html(page),
    )
        .into_response()
}

/// Whether the principal may deploy the app it is viewing (set by the gate).
#[derive(Clone, Copy, Debug)]
pub struct AppAuthor(pub bool);
