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
    let access = match state
        .store
        .app_access(&tenant, &app, principal.user_id())
        .await
    {
        Ok(Some(access)) => access,
        Ok(None) => return ApiError::app_not_found().into_response(),
        Err(e) => return ApiError::internal("checking app access failed", &e).into_response(),
    };
    if let Err(denied) = policy::authorize(&principal, Action::ViewApp, &Resource::App(access)) {
        // A person who is not signed in and opens the app's page is sent to sign in and
        // back; Dash's XHR endpoints keep answering 404.
        let index = format!("/apps/{tenant}/{app}/");
        if matches!(principal, Principal::Anonymous) && request.uri().path() == index {
            let next = request
                .uri()
                .path_and_query()
                .map_or(index.as_str(), |p| p.as_str());
            return axum::response::Redirect::to(&format!("/login?next={}", encode_query(next)))
                .into_response();
        }
        tracing::debug!(%tenant, %app, principal = %principal.audit_actor(), %denied, "app hidden");
        return ApiError::app_not_found().into_response();
    }
    next.run(request).await
}

/// Percent-encode `value` for a query string (everything but unreserved characters and `/`).
fn encode_query(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
