//! SAML 2.0 sign-in routes of a tenant's `kind = "saml"` provider (the rules are in
//! [`crate::auth::saml`]):
//!
//! - `GET  /auth/saml/{tenant}/{provider}/metadata`: the SP metadata for the IdP's admin;
//! - `GET  /auth/saml/{tenant}/{provider}/start?next=`: the AuthnRequest redirect;
//! - `POST /auth/saml/{tenant}/{provider}/acs`: the AssertionConsumerService (HTTP-POST).
//!
//! A sign-in ends like the OIDC and LDAP ones (`sso::complete`); every refusal is the
//! sign-in page with a sentence, an `auth.sign_in_failed` audit row, and no session.

use axum::Router;
use axum::extract::{Extension, Form, Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use tower_sessions::Session;

use super::session::{ClientAddr, local_path};
use super::sso::{Failure, Identity, complete, fail, load_provider};
use crate::auth::providers::{Kind, Settings};
use crate::auth::saml::{self, SamlError, SamlSettings};
use crate::state::AppState;
use crate::store::{ProviderRecord, Tenant};

/// The SAML routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/auth/saml/{tenant}/{provider}/metadata", get(metadata))
        .route("/auth/saml/{tenant}/{provider}/start", get(start))
        .route("/auth/saml/{tenant}/{provider}/acs", post(acs))
}

fn status_of(error: &SamlError) -> StatusCode {
    match error {
        SamlError::Unavailable(_) => StatusCode::BAD_GATEWAY,
        SamlError::Misconfigured(_) => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::UNAUTHORIZED,
    }
}

/// The tenant and its SAML provider, or the failure to show.
async fn provider<'a>(
    state: &AppState,
    tenant: &'a str,
    slug: &'a str,
) -> Result<(Tenant, ProviderRecord, SamlSettings), Failure<'a>> {
    let failure = |reason, detail: String, message, status| Failure {
        tenant: Some((tenant, None)),
        provider: Some(slug),
        method: "saml",
        reason,
        detail,
        message: std::borrow::Cow::Borrowed(message),
        status,
    };
    match load_provider(state, tenant, slug, Kind::Saml).await {
        Ok(Some((t, r, Settings::Saml(s)))) => Ok((t, r, s)),
        Ok(_) => Err(failure(
            "unknown_provider",
            "no such SAML provider".into(),
            "There is no such sign-in provider.",
            StatusCode::NOT_FOUND,
        )),
        Err(e) => Err(failure(
            "misconfigured",
            e,
            "This sign-in provider is misconfigured. Ask an administrator.",
            StatusCode::INTERNAL_SERVER_ERROR,
        )),
    }
}

fn saml_failure<'a>(tenant: &'a Tenant, record: &'a ProviderRecord, e: &SamlError) -> Failure<'a> {
    Failure {
        tenant: Some((tenant.slug.as_str(), Some(tenant.id))),
        provider: Some(record.slug.as_str()),
        method: "saml",
        reason: e.reason(),
        detail: e.to_string(),
        message: std::borrow::Cow::Borrowed(e.public_message()),
        status: status_of(e),
    }
}

async fn metadata(
    State(state): State<AppState>,
    Path((tenant, slug)): Path<(String, String)>,
) -> Response {
    let Ok((tenant, record, settings)) = provider(&state, &tenant, &slug).await else {
        return (StatusCode::NOT_FOUND, "There is no such SAML provider.\n").into_response();
    };
    let endpoints = saml::endpoints(
        &state.config.public_url,
        &tenant.slug,
        &record.slug,
        &settings,
    );
    match saml::sp_metadata(&endpoints) {
        Ok(xml) => (
            [(header::CONTENT_TYPE, "application/samlmetadata+xml")],
            xml,
        )
            .into_response(),
        Err(e) => {
            crate::error::ApiError::internal("writing the SP metadata failed", &e).into_response()
        }
    }
}

#[derive(Deserialize)]
struct StartQuery {
    next: Option<String>,
}

async fn start(
    State(state): State<AppState>,
    Extension(ClientAddr(addr)): Extension<ClientAddr>,
    Path((tenant, slug)): Path<(String, String)>,
    session: Session,
    Query(q): Query<StartQuery>,
) -> Response {
    let next = local_path(q.next.as_deref().unwrap_or("/")).to_owned();
    let (tenant_record, record, settings) = match provider(&state, &tenant, &slug).await {
        Ok(found) => found,
        Err(f) => return fail(&state, &session, addr.as_deref(), &next, f).await,
    };
    let endpoints = saml::endpoints(
        &state.config.public_url,
        &tenant_record.slug,
        &record.slug,
        &settings,
    );
    let begun = state
        .saml
        .begin(
            &state.handoffs,
            tenant_record.id.0,
            record.id,
            &settings,
            &endpoints,
            next.clone(),
            state.clock.now_millis(),
        )
        .await;
    match begun {
        Ok(url) => Redirect::to(&url).into_response(),
        Err(e) => {
            let f = saml_failure(&tenant_record, &record, &e);
            fail(&state, &session, addr.as_deref(), &next, f).await
        }
    }
}

/// The HTTP-POST binding's form.
#[derive(Deserialize)]
struct AcsForm {
    #[serde(default, rename = "SAMLResponse")]
    saml_response: String,
    #[serde(default, rename = "RelayState")]
    relay_state: String,
}

async fn acs(
    State(state): State<AppState>,
    Extension(ClientAddr(addr)): Extension<ClientAddr>,
    Path((tenant, slug)): Path<(String, String)>,
    session: Session,
    Form(form): Form<AcsForm>,
) -> Response {
    let (tenant_record, record, settings) = match provider(&state, &tenant, &slug).await {
        Ok(found) => found,
        Err(f) => return fail(&state, &session, addr.as_deref(), "/", f).await,
    };
    let endpoints = saml::endpoints(
        &state.config.public_url,
        &tenant_record.slug,
        &record.slug,
        &settings,
    );
    let finished = state
        .saml
        .finish(
            &state.handoffs,
            tenant_record.id.0,
            record.id,
            &settings,
            &endpoints,
            &form.saml_response,
            &form.relay_state,
            state.clock.now_millis(),
        )
        .await;
    let (identity, next) = match finished {
        Ok(done) => done,
        Err(e) => {
            let f = saml_failure(&tenant_record, &record, &e);
            return fail(&state, &session, addr.as_deref(), "/", f).await;
        }
    };
    let next = local_path(&next).to_owned();
    complete(
        &state,
        &session,
        addr.as_deref(),
        &tenant_record,
        &record,
        "saml",
        Identity {
            subject: identity.subject,
            email: identity.email,
            email_verified: settings.emails_verified,
            groups: identity.groups,
        },
        &next,
    )
    .await
}
