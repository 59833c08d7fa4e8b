//! `/device`: where a person approves or denies a `tessera login` (the verification page
//! of the device authorization grant). Signed out, it leads to sign-in and back with the
//! code kept; the forms call [`crate::cli_sign_in`].

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use tower_sessions::Session;

use super::console::{
    Chrome, Posted, Routes, chrome, csrf_field, refused, render, url_encode, when,
};
use crate::cli_sign_in::{self, TOKEN_DAYS};
use crate::policy::Principal;
use crate::state::AppState;

/// The page and its two forms.
pub(super) fn routes(routes: Routes) -> Routes {
    routes
        .get("/device", device_page)
        .post("/device/{code}/approve", approve)
        .post("/device/{code}/deny", deny)
}

/// A pending sign-in as the page shows it.
struct OfferView {
    code: String,
    client: String,
    addr: String,
    asked: String,
    hint: String,
    /// (slug, name, role)
    tenants: Vec<(String, String, String)>,
}

#[derive(Template)]
#[template(path = "console_device.html")]
struct DevicePage {
    chrome: Chrome,
    offer: Option<OfferView>,
    done: Option<String>,
    days: i64,
}

#[derive(Debug, Default, Deserialize)]
struct CodeQuery {
    #[serde(default)]
    code: String,
}

async fn page(
    state: &AppState,
    principal: &Principal,
    session: &Session,
    (offer, done): (Option<OfferView>, Option<String>),
    status: StatusCode,
) -> Response {
    let here = match &offer {
        Some(offer) => format!("/device?code={}", url_encode(&offer.code)),
        None => "/device".to_owned(),
    };
    match chrome(state, principal, session, &here, None).await {
        Ok(chrome) => render(
            &DevicePage {
                chrome,
                offer,
                done,
                days: TOKEN_DAYS,
            },
            status,
        ),
        Err(r) => r,
    }
}

/// `GET /device[?code=…]`: the code form, or the sign-in behind the code to approve.
async fn device_page(
    State(state): State<AppState>,
    principal: Principal,
    session: Session,
    Query(query): Query<CodeQuery>,
) -> Response {
    let here = if query.code.is_empty() {
        "/device".to_owned()
    } else {
        format!("/device?code={}", url_encode(&query.code))
    };
    if query.code.trim().is_empty() {
        return match cli_sign_in::may_enter_code(&principal) {
            Ok(()) => page(&state, &principal, &session, (None, None), StatusCode::OK).await,
            Err(r) => refused(&state, &principal, &session, &here, r).await,
        };
    }
    match cli_sign_in::offer(&state, &principal, &query.code).await {
        Ok(offer) => {
            let view = OfferView {
                code: offer.sign_in.user_code,
                client: offer.sign_in.client_name,
                addr: offer.sign_in.client_addr,
                asked: when(offer.sign_in.created_at),
                hint: offer.sign_in.tenant_hint,
                tenants: offer
                    .tenants
                    .into_iter()
                    .map(|(slug, name, role)| (slug, name, role.as_str().to_owned()))
                    .collect(),
            };
            page(
                &state,
                &principal,
                &session,
                (Some(view), None),
                StatusCode::OK,
            )
            .await
        }
        Err(r) => refused(&state, &principal, &session, &here, r).await,
    }
}

#[derive(Debug, Deserialize)]
struct ApproveForm {
    csrf: String,
    #[serde(default)]
    tenant: String,
}

#[derive(Debug, Deserialize)]
struct DenyForm {
    csrf: String,
}

csrf_field!(ApproveForm, DenyForm);

/// Approve: the token is created and waits for the command line.
async fn approve(Path(code): Path<String>, posted: Posted<ApproveForm>) -> Response {
    let (state, principal, session) = (&posted.state, &posted.principal, &posted.session);
    let here = format!("/device?code={}", url_encode(&code));
    let change = posted.change();
    match cli_sign_in::approve(state, principal, &code, &posted.fields.tenant, &change).await {
        Ok(sign_in) => {
            let done = format!(
                "Approved: the command line on {} is signed in to {}.",
                sign_in.client_name, posted.fields.tenant
            );
            page(
                state,
                principal,
                session,
                (None, Some(done)),
                StatusCode::OK,
            )
            .await
        }
        Err(r) => refused(state, principal, session, &here, r).await,
    }
}

/// Deny: the command line is told and gets nothing.
async fn deny(Path(code): Path<String>, posted: Posted<DenyForm>) -> Response {
    let (state, principal, session) = (&posted.state, &posted.principal, &posted.session);
    let here = format!("/device?code={}", url_encode(&code));
    match cli_sign_in::deny(state, principal, &code).await {
        Ok(()) => {
            let done = "Denied: that command line gets no token.".to_owned();
            page(
                state,
                principal,
                session,
                (None, Some(done)),
                StatusCode::OK,
            )
            .await
        }
        Err(r) => refused(state, principal, session, &here, r).await,
    }
}
