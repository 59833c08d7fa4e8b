//! `/account`: who is signed in, the identities linked to the account, and the explicit,
//! audited linking of a tenant's provider by the account's owner (`POST
//! /account/link/{tenant}/{provider}`: the OIDC code flow with a link intent kept in the
//! session, or the LDAP user name and password checked against the directory).
//!
//! A provider never links an account on its own word about an email address (see
//! `tenancy::AccountTies`); this page is how an owner does it.

use askama::Template;
use axum::Router;
use axum::extract::{Extension, Form, Path, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde_json::json;
use tower_sessions::Session;

use super::console::{self, Chrome};
use super::session::{ClientAddr, check_csrf, csrf_token, form_context};
use super::sso::{self, Failure, LdapForm};
use crate::auth::providers::Kind;
use crate::auth::session as sessions;
use crate::error::ApiError;
use crate::ids::UserId;
use crate::manage::{self, NewToken, Refusal};
use crate::policy::Principal;
use crate::state::AppState;
use crate::store::{LinkRefusal, LinkableProvider, LinkedIdentity, ProviderRecord, Tenant};
use crate::tenancy::{Subject, clip};

/// The account routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/account", get(show_account))
        .route("/account/link/{tenant}/{provider}", post(link_provider))
        .route("/account/tokens", post(create_token))
        .route("/account/tokens/revoke", post(revoke_token))
}

/// A token as the account page lists it.
struct TokenRow {
    id: String,
    tenant: String,
    role: String,
    created: String,
    revoked: bool,
}

#[derive(Template)]
#[template(path = "account.html")]
struct AccountPage<'a> {
    chrome: Chrome,
    tokens: Vec<TokenRow>,
    new_token: Option<(String, NewToken)>,
    csrf: &'a str,
    email: &'a str,
    linked: &'a [LinkedIdentity],
    providers: &'a [LinkableProvider],
    error: Option<&'a str>,
    notice: Option<&'a str>,
}

/// The account page of `user` with an optional error or notice.
async fn account_page(
    state: &AppState,
    session: &Session,
    user: UserId,
    error: Option<&str>,
    notice: Option<&str>,
    status: StatusCode,
) -> Response {
    account_page_with(state, session, user, (error, notice), None, status).await
}

/// The account page, showing a token just created once.
async fn account_page_with(
    state: &AppState,
    session: &Session,
    user: UserId,
    (error, notice): (Option<&str>, Option<&str>),
    new_token: Option<(String, NewToken)>,
    status: StatusCode,
) -> Response {
    let csrf = match csrf_token(session).await {
        Ok(t) => t,
        Err(r) => return r,
    };
    let loaded = async {
        let record = state.store.user(user).await?;
        let linked = state.store.linked_identities(user).await?;
        let providers = state.store.linkable_providers(user).await?;
        Ok::<_, crate::store::Error>((record, linked, providers))
    };
    let (record, linked, mut providers) = match loaded.await {
        Ok((Some(record), linked, providers)) => (record, linked, providers),
        Ok((None, _, _)) => return Redirect::to("/login?next=/account").into_response(),
        Err(e) => return ApiError::internal("loading the account failed", &e).into_response(),
    };
    // Linking is offered for OIDC and LDAP; a SAML identity is not linked from here yet.
    providers.retain(|p| p.kind != Kind::Saml.as_str());
    let principal = match state.store.memberships_of(user).await {
        Ok(memberships) => Principal::User(crate::policy::UserPrincipal {
            id: user,
            superadmin: record.superadmin,
            memberships,
        }),
        Err(e) => return ApiError::internal("loading the account failed", &e).into_response(),
    };
    let chrome = match console::chrome(state, &principal, session, "/account", None).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let tokens = match manage::own_tokens(state, &principal).await {
        Ok(tokens) => tokens,
        Err(e) => return ApiError::internal("listing tokens failed", &e).into_response(),
    };
    let tokens = tokens
        .into_iter()
        .map(|(tenant, t)| TokenRow {
            revoked: t.revoked_at.is_some(),
            id: t.public_id,
            tenant,
            role: t.role.to_string(),
            created: console::when(t.created_at),
        })
        .collect();
    let page = AccountPage {
        chrome,
        tokens,
        new_token,
        csrf: &csrf,
        email: &record.email,
        linked: &linked,
        providers: &providers,
        error,
        notice,
    };
    match page.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => ApiError::internal("rendering a page failed", &e).into_response(),
    }
}

async fn show_account(
    State(state): State<AppState>,
    principal: Principal,
    session: Session,
) -> Response {
    let Principal::User(user) = principal else {
        return Redirect::to("/login?next=/account").into_response();
    };
    account_page(&state, &session, user.id, None, None, StatusCode::OK).await
}

async fn link_provider(
    State(state): State<AppState>,
    Extension(ClientAddr(addr)): Extension<ClientAddr>,
    Path((tenant, provider)): Path<(String, String)>,
    principal: Principal,
    session: Session,
    Form(form): Form<LdapForm>,
) -> Response {
    if let Err(r) = check_csrf(&session, &form.csrf).await {
        return r;
    }
    let Principal::User(user) = principal else {
        return Redirect::to("/login?next=/account").into_response();
    };
    let oidc = sso::load_provider(&state, &tenant, &provider, Kind::Oidc).await;
    if matches!(oidc, Ok(Some(_)) | Err(_)) {
        let begun = sso::begin_oidc(
            &state,
            &session,
            &tenant,
            &provider,
            oidc,
            "/account".to_owned(),
            Some(user.id.0),
        )
        .await;
        return match begun {
            Ok(redirect) => redirect,
            Err(f) => link_failed(&state, &session, addr.as_deref(), user.id, f).await,
        };
    }
    match sso::check_directory(&state, addr.as_deref(), &tenant, &provider, &form).await {
        Ok((tenant_record, record, directory_user)) => {
            link(
                &state,
                &session,
                addr.as_deref(),
                user.id,
                &tenant_record,
                &record,
                "ldap",
                &directory_user.dn,
            )
            .await
        }
        Err(f) => link_failed(&state, &session, addr.as_deref(), user.id, f).await,
    }
}

/// The OIDC callback of a link started here: the browser must still be signed in as the
/// account that asked.
#[expect(
    clippy::too_many_arguments,
    reason = "the request's parts, the provider and the identity, each needed once"
)]
pub(super) async fn finish_link(
    state: &AppState,
    session: &Session,
    addr: Option<&str>,
    principal: &Principal,
    owner: i64,
    tenant: &Tenant,
    record: &ProviderRecord,
    method: &'static str,
    subject: &str,
) -> Response {
    match principal {
        Principal::User(user) if user.id.0 == owner => {
            link(
                state, session, addr, user.id, tenant, record, method, subject,
            )
            .await
        }
        _ => {
            let f = Failure {
                tenant: Some((tenant.slug.as_str(), Some(tenant.id))),
                provider: Some(record.slug.as_str()),
                method,
                reason: "not_signed_in_as_owner",
                detail: format!("link asked by user {owner}"),
                message: "This browser is no longer signed in to the account that asked for the link. Sign in and link again."
                    .into(),
                status: StatusCode::FORBIDDEN,
            };
            sso::fail(state, session, addr, "/account", f).await
        }
    }
}

/// Link the identity to `user` (refused when another account has it), audited.
#[expect(
    clippy::too_many_arguments,
    reason = "the request's parts, the provider and the identity, each needed once"
)]
async fn link(
    state: &AppState,
    session: &Session,
    addr: Option<&str>,
    user: UserId,
    tenant: &Tenant,
    record: &ProviderRecord,
    method: &'static str,
    subject: &str,
) -> Response {
    let failure = |reason, detail: String, message: &'static str| Failure {
        tenant: Some((tenant.slug.as_str(), Some(tenant.id))),
        provider: Some(record.slug.as_str()),
        method,
        reason,
        detail,
        message: message.into(),
        status: StatusCode::CONFLICT,
    };
    let Ok(subject) = Subject::parse(subject) else {
        let f = failure(
            "invalid_subject",
            format!("subject {:?}", clip(subject, 64)),
            "The sign-in provider sent an unusable identifier for you. Ask an administrator.",
        );
        return link_failed(state, session, addr, user, f).await;
    };
    let actor = format!("user:{}", user.0);
    let change = sessions::change(&actor, addr, state.clock.now_millis());
    match state
        .store
        .link_external_identity(tenant.id, record, &subject, user, &change)
        .await
    {
        Ok(Ok(_)) => {
            let notice = format!("{} is linked to your account.", record.display_name);
            account_page(state, session, user, None, Some(&notice), StatusCode::OK).await
        }
        Ok(Err(LinkRefusal::LinkedToAnother)) => {
            let f = failure(
                "linked_to_another",
                format!("subject {}", subject.as_str()),
                "This identity already signs in to another account; it was not linked.",
            );
            link_failed(state, session, addr, user, f).await
        }
        Err(e) => ApiError::internal("linking the identity failed", &e).into_response(),
    }
}

async fn audit_link_failure(state: &AppState, addr: Option<&str>, actor: &str, f: &Failure<'_>) {
    let change = sessions::change(actor, addr, state.clock.now_millis());
    if let Err(e) = state
        .store
        .audit_provider_sign_in(
            &change,
            f.tenant.and_then(|t| t.1),
            "identity.link_failed",
            &sso::failure_target(f),
            json!({"method": f.method, "reason": f.reason, "error": clip(&f.detail, 512)}),
        )
        .await
    {
        tracing::warn!(error = %e, "auditing a failed link failed");
    }
}

/// A refused link: audited under the account's owner, shown on the account page.
async fn link_failed(
    state: &AppState,
    session: &Session,
    addr: Option<&str>,
    user: UserId,
    f: Failure<'_>,
) -> Response {
    audit_link_failure(state, addr, &format!("user:{}", user.0), &f).await;
    account_page(
        state,
        session,
        user,
        Some(f.message.as_ref()),
        None,
        f.status,
    )
    .await
}

#[derive(Debug, serde::Deserialize)]
struct TokenForm {
    csrf: String,
    tenant: String,
    #[serde(default)]
    role: String,
    #[serde(default)]
    id: String,
}

/// A refused token action, shown on the account page.
fn token_refusal(refusal: Refusal) -> (StatusCode, String) {
    let api = ApiError::from(refusal);
    (api.status, api.message)
}

/// `POST /account/tokens`: a token of one's own, shown once on the page that answers.
async fn create_token(
    State(state): State<AppState>,
    Extension(ClientAddr(addr)): Extension<ClientAddr>,
    principal: Principal,
    session: Session,
    Form(form): Form<TokenForm>,
) -> Response {
    let form_change = match form_context(&state, &session, &principal, addr, &form.csrf).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let Principal::User(user) = &principal else {
        return Redirect::to("/login?next=/account").into_response();
    };
    let change = form_change.change();
    let role = Some(form.role.as_str()).filter(|r| !r.is_empty());
    match manage::issue_token(&state, &principal, &form.tenant, role, None, &change).await {
        Ok(token) => {
            let shown = Some((form.tenant.clone(), token));
            account_page_with(
                &state,
                &session,
                user.id,
                (None, None),
                shown,
                StatusCode::OK,
            )
            .await
        }
        Err(refusal) => {
            let (status, message) = token_refusal(refusal);
            account_page(&state, &session, user.id, Some(&message), None, status).await
        }
    }
}

/// `POST /account/tokens/revoke`: revoke one of one's tokens.
async fn revoke_token(
    State(state): State<AppState>,
    Extension(ClientAddr(addr)): Extension<ClientAddr>,
    principal: Principal,
    session: Session,
    Form(form): Form<TokenForm>,
) -> Response {
    let form_change = match form_context(&state, &session, &principal, addr, &form.csrf).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let Principal::User(user) = &principal else {
        return Redirect::to("/login?next=/account").into_response();
    };
    let change = form_change.change();
    match manage::revoke_token(&state, &principal, &form.tenant, &form.id, &change).await {
        Ok(()) => {
            let notice = format!("The token {} is revoked.", form.id);
            account_page(
                &state,
                &session,
                user.id,
                None,
                Some(&notice),
                StatusCode::OK,
            )
            .await
        }
        Err(refusal) => {
            let (status, message) = token_refusal(refusal);
            account_page(&state, &session, user.id, Some(&message), None, status).await
        }
    }
}
