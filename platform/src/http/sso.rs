//! Sign-in through a tenant's identity providers: `GET /auth/{tenant}/{provider}/start`
//! and the one OIDC redirect URI `GET /auth/oidc/callback`, and the LDAP form
//! `POST /login/{tenant}/{provider}`. Both (and SAML, `http::saml`) end in the same provisioning
//! (`Store::external_sign_in`) and the same session start as local sign-in.
//!
//! Every failure shows the sign-in page with a clear sentence (no internals), writes an
//! `auth.sign_in_failed` audit row with the reason, and leaves the browser signed out.

use axum::Router;
use axum::extract::{Extension, Form, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::json;
use tower_sessions::Session;

use super::session::{ClientAddr, check_csrf, local_path, login_page, start_signed_in_session};
use crate::auth::ldap::{self, LdapError};
use crate::auth::oidc::{OidcError, PendingSignIn, state_matches};
use crate::auth::providers::{self, GroupMapping, Kind, Settings};
use crate::auth::session as sessions;
use crate::ids::{Slug, TenantId};
use crate::policy::Principal;
use crate::state::AppState;
use crate::store::{ExternalSignIn, ProviderRecord, Refusal, Tenant};
use crate::tenancy::{Email, LoginName, Subject, clip};

/// The session key of a started OIDC sign-in.
pub const PENDING_KEY: &str = "oidc_pending";
/// A started sign-in must come back within this long.
const PENDING_MAX_AGE_MS: i64 = 10 * 60 * 1000;

/// The provider sign-in routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/auth/{tenant}/{provider}/start", get(start))
        .route("/auth/oidc/callback", get(callback))
        .route("/auth/{tenant}/{provider}/jwks.json", get(client_jwks))
        .route("/login/{tenant}/{provider}", post(ldap_sign_in))
}

/// The redirect URI every OIDC provider is registered with.
pub fn redirect_uri(state: &AppState) -> String {
    format!("{}/auth/oidc/callback", state.config.public_url)
}

/// What went wrong, for the page, the audit row and the status.
pub(super) struct Failure<'a> {
    pub(super) tenant: Option<(&'a str, Option<TenantId>)>,
    pub(super) provider: Option<&'a str>,
    pub(super) method: &'static str,
    pub(super) reason: &'static str,
    /// For the audit row and the log: never a secret (clipped when written).
    pub(super) detail: String,
    pub(super) message: std::borrow::Cow<'a, str>,
    pub(super) status: StatusCode,
}

pub(super) async fn fail(
    state: &AppState,
    session: &Session,
    addr: Option<&str>,
    next: &str,
    failure: Failure<'_>,
) -> Response {
    let change = sessions::change("anonymous", addr, state.clock.now_millis());
    let (tenant_slug, tenant_id) = failure.tenant.unzip();
    let target = failure_target(&failure);
    // Provider error texts and callback parameters come from outside: bounded here.
    let detail = clip(&failure.detail, 512);
    tracing::info!(
        reason = failure.reason,
        %detail,
        %target,
        "sign-in through a provider failed"
    );
    if let Err(e) = state
        .store
        .audit_provider_sign_in(
            &change,
            tenant_id.flatten(),
            "auth.sign_in_failed",
            &target,
            json!({"method": failure.method, "reason": failure.reason, "error": detail}),
        )
        .await
    {
        tracing::warn!(error = %e, "auditing a failed sign-in failed");
    }
    login_page(
        state,
        session,
        tenant_slug,
        next,
        "",
        Some(failure.message.as_ref()),
        failure.status,
    )
    .await
}

/// The audit target of a failure: the provider when it is known.
pub(super) fn failure_target(failure: &Failure<'_>) -> String {
    match (failure.tenant.map(|t| t.0), failure.provider) {
        (Some(t), Some(p)) => format!("identity_provider:{}/{}", clip(t, 64), clip(p, 64)),
        _ => "identity_provider:unknown".to_owned(),
    }
}

pub(super) fn status_of(error: &OidcError) -> StatusCode {
    match error {
        OidcError::Unavailable(_) => StatusCode::BAD_GATEWAY,
        OidcError::Misconfigured(_) => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::UNAUTHORIZED,
    }
}

/// The tenant and its provider `slug` of `kind`, with the secret opened.
pub(super) async fn load_provider(
    state: &AppState,
    tenant: &str,
    slug: &str,
    kind: Kind,
) -> Result<Option<(Tenant, ProviderRecord, Settings)>, String> {
    let Ok(tenant_slug) = Slug::parse(tenant) else {
        return Ok(None);
    };
    let Some(tenant) = state
        .store
        .tenant_by_slug(&tenant_slug)
        .await
        .map_err(|e| e.to_string())?
    else {
        return Ok(None);
    };
    let Some(record) = state
        .store
        .identity_provider(tenant.id, slug)
        .await
        .map_err(|e| e.to_string())?
    else {
        return Ok(None);
    };
    if record.kind != kind.as_str() {
        return Ok(None);
    }
    let settings = providers::open_settings(kind, &record.settings, &state.secrets)
        .map_err(|e| e.to_string())?;
    Ok(Some((tenant, record, settings)))
}

/// The public keys Tessera signs `private_key_jwt` client assertions with for this OIDC
/// provider: the JWKS URL to register at the provider (public, like any JWKS).
async fn client_jwks(
    State(state): State<AppState>,
    Path((tenant, provider)): Path<(String, String)>,
) -> Response {
    match load_provider(&state, &tenant, &provider, Kind::Oidc).await {
        Ok(Some((_, record, Settings::Oidc(settings)))) => {
            match crate::auth::oidc::client_jwks(record.id, &settings, &state.secrets) {
                Ok(jwks) => axum::Json(jwks).into_response(),
                Err(e) => crate::error::ApiError::internal("the client key", &e.to_string())
                    .into_response(),
            }
        }
        Ok(_) => StatusCode::NOT_FOUND.into_response(),
        Err(e) => crate::error::ApiError::internal("loading the provider", &e).into_response(),
    }
}

#[derive(Deserialize)]
struct StartQuery {
    next: Option<String>,
}

async fn start(
    State(state): State<AppState>,
    Extension(ClientAddr(addr)): Extension<ClientAddr>,
    Path((tenant, provider)): Path<(String, String)>,
    session: Session,
    Query(q): Query<StartQuery>,
) -> Response {
    let next = local_path(q.next.as_deref().unwrap_or("/")).to_owned();
    let loaded = load_provider(&state, &tenant, &provider, Kind::Oidc).await;
    match begin_oidc(
        &state,
        &session,
        &tenant,
        &provider,
        loaded,
        next.clone(),
        None,
    )
    .await
    {
        Ok(redirect) => redirect,
        Err(f) => fail(&state, &session, addr.as_deref(), &next, f).await,
    }
}

/// Keep a new code flow's secrets (and, for a link, the account's owner) in the session
/// and send the browser to the provider; shared by sign-in and by linking from the
/// account page.
pub(super) async fn begin_oidc<'a>(
    state: &AppState,
    session: &Session,
    tenant: &'a str,
    provider: &'a str,
    loaded: Result<Option<(Tenant, ProviderRecord, Settings)>, String>,
    next: String,
    link_user: Option<i64>,
) -> Result<Response, Failure<'a>> {
    let failure = |reason, detail: String, message, status| Failure {
        tenant: Some((tenant, None)),
        provider: Some(provider),
        method: "oidc",
        reason,
        detail,
        message: message_of(message),
        status,
    };
    let (tenant_record, record, settings) = match loaded {
        Ok(Some((t, r, Settings::Oidc(s)))) => (t, r, s),
        Ok(_) => {
            return Err(failure(
                "unknown_provider",
                "no such OIDC provider".into(),
                "There is no such sign-in provider.",
                StatusCode::NOT_FOUND,
            ));
        }
        Err(e) => {
            return Err(failure(
                "misconfigured",
                e,
                "This sign-in provider is misconfigured. Ask an administrator.",
                StatusCode::INTERNAL_SERVER_ERROR,
            ));
        }
    };
    let started = state
        .oidc
        .start(record.id, &settings, &redirect_uri(state))
        .await;
    let (url, flow) = match started {
        Ok(ok) => ok,
        Err(e) => {
            let mut f = failure(e.reason(), e.to_string(), e.public_message(), status_of(&e));
            f.tenant = Some((tenant, Some(tenant_record.id)));
            return Err(f);
        }
    };
    let pending = PendingSignIn {
        tenant: tenant_record.id.0,
        tenant_slug: tenant_record.slug.clone(),
        provider: record.id,
        provider_slug: record.slug.clone(),
        state: flow.state,
        nonce: flow.nonce,
        pkce_verifier: flow.pkce_verifier,
        next,
        at: state.clock.now_millis(),
        link_user,
    };
    if let Err(e) = session.insert(PENDING_KEY, &pending).await {
        return Ok(
            crate::error::ApiError::internal("saving the sign-in failed", &e.to_string())
                .into_response(),
        );
    }
    Ok(Redirect::to(&url).into_response())
}

fn message_of(message: &'static str) -> std::borrow::Cow<'static, str> {
    std::borrow::Cow::Borrowed(message)
}

/// The callback's query. Unknown parameters (`iss`, `session_state`, …) are accepted.
#[derive(Deserialize)]
struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    iss: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

async fn callback(
    State(state): State<AppState>,
    Extension(ClientAddr(addr)): Extension<ClientAddr>,
    principal: Principal,
    session: Session,
    Query(q): Query<CallbackQuery>,
) -> Response {
    // Taken out on first use: a replayed callback finds nothing.
    let pending: Option<PendingSignIn> = session.remove(PENDING_KEY).await.ok().flatten();
    let Some(pending) = pending else {
        let f = Failure {
            tenant: None,
            provider: None,
            method: "oidc",
            reason: "bad_state",
            detail: "no sign-in is pending in this session (replayed or forged callback)".into(),
            message: message_of(OidcError::BadState(String::new()).public_message()),
            status: StatusCode::UNAUTHORIZED,
        };
        return fail(&state, &session, addr.as_deref(), "/", f).await;
    };
    let next = pending.next.clone();
    let tenant_id = TenantId(pending.tenant);
    let failure = |e: &OidcError| Failure {
        tenant: Some((pending.tenant_slug.as_str(), Some(tenant_id))),
        provider: Some(pending.provider_slug.as_str()),
        method: "oidc",
        reason: e.reason(),
        detail: e.to_string(),
        message: message_of(e.public_message()),
        status: status_of(e),
    };
    let checked = check_callback(&state, &pending, &q).await;
    let (tenant, record, settings, code) = match checked {
        Ok(ok) => ok,
        Err(e) => return fail(&state, &session, addr.as_deref(), &next, failure(&e)).await,
    };
    let claims = match state
        .oidc
        .finish(
            record.id,
            &settings,
            &state.secrets,
            &redirect_uri(&state),
            &pending,
            &code,
            &state.clock,
        )
        .await
    {
        Ok(claims) => claims,
        Err(e) => return fail(&state, &session, addr.as_deref(), &next, failure(&e)).await,
    };
    let identity = Identity {
        subject: claims.subject,
        email: claims.email,
        email_verified: claims.email_verified,
        groups: claims.groups,
    };
    if let Some(owner) = pending.link_user {
        return super::account::finish_link(
            &state,
            &session,
            addr.as_deref(),
            &principal,
            owner,
            &tenant,
            &record,
            "oidc",
            &identity.subject,
        )
        .await;
    }
    complete(
        &state,
        &session,
        addr.as_deref(),
        &tenant,
        &record,
        "oidc",
        identity,
        &next,
    )
    .await
}

/// Check the callback against the pending sign-in; the provider and its settings.
async fn check_callback(
    state: &AppState,
    pending: &PendingSignIn,
    q: &CallbackQuery,
) -> Result<(Tenant, ProviderRecord, providers::OidcSettings, String), OidcError> {
    if !state_matches(q.state.as_deref().unwrap_or_default(), &pending.state) {
        return Err(OidcError::BadState(
            "the state parameter does not match".into(),
        ));
    }
    if state.clock.now_millis() - pending.at > PENDING_MAX_AGE_MS {
        return Err(OidcError::BadState(
            "the sign-in took longer than 10 minutes".into(),
        ));
    }
    let tenant = state
        .store
        .tenant(TenantId(pending.tenant))
        .await
        .map_err(|e| OidcError::Misconfigured(e.to_string()))?
        .ok_or_else(|| OidcError::Misconfigured("the tenant is gone".into()))?;
    let record = state
        .store
        .identity_provider_by_id(tenant.id, pending.provider)
        .await
        .map_err(|e| OidcError::Misconfigured(e.to_string()))?
        .ok_or_else(|| OidcError::Misconfigured("the provider was removed".into()))?;
    let settings = match providers::open_settings(Kind::Oidc, &record.settings, &state.secrets) {
        Ok(Settings::Oidc(s)) => s,
        Ok(_) => return Err(OidcError::Misconfigured("not an OIDC provider".into())),
        Err(e) => return Err(OidcError::Misconfigured(e.to_string())),
    };
    if let Some(error) = &q.error {
        return Err(OidcError::Refused(format!(
            "{error}: {}",
            q.error_description.as_deref().unwrap_or_default()
        )));
    }
    // RFC 9207: when the provider names itself, it must be the one we started with.
    if let Some(iss) = &q.iss
        && iss != &settings.issuer
    {
        return Err(OidcError::BadState(format!(
            "the response names issuer {iss:?}, not the provider's"
        )));
    }
    let code = q
        .code
        .clone()
        .filter(|c| !c.is_empty())
        .ok_or_else(|| OidcError::BadState("the response carries no code".into()))?;
    Ok((tenant, record, settings, code))
}

/// Who a provider vouched for.
pub(super) struct Identity {
    pub(super) subject: String,
    pub(super) email: Option<String>,
    pub(super) email_verified: bool,
    pub(super) groups: Vec<String>,
}

/// The most group names an audit row lists, and their longest length.
const AUDIT_GROUPS: usize = 50;
const AUDIT_GROUP_CHARS: usize = 128;

/// Provision, apply the mappings, start the session, audit, and go to `next`.
#[allow(clippy::too_many_arguments)]
pub(super) async fn complete(
    state: &AppState,
    session: &Session,
    addr: Option<&str>,
    tenant: &Tenant,
    record: &ProviderRecord,
    method: &'static str,
    identity: Identity,
    next: &str,
) -> Response {
    let now = state.clock.now_millis();
    let failure = |reason, detail: String, message: String, status| Failure {
        tenant: Some((tenant.slug.as_str(), Some(tenant.id))),
        provider: Some(record.slug.as_str()),
        method,
        reason,
        detail,
        message: message.into(),
        status,
    };
    let mappings: Vec<GroupMapping> = match serde_json::from_str(&record.group_mappings) {
        Ok(m) => m,
        Err(e) => {
            let f = failure(
                "misconfigured",
                format!("stored group mappings: {e}"),
                "This sign-in provider is misconfigured. Ask an administrator.".into(),
                StatusCode::INTERNAL_SERVER_ERROR,
            );
            return fail(state, session, addr, next, f).await;
        }
    };
    let Ok(subject) = Subject::parse(&identity.subject) else {
        let f = failure(
            "invalid_subject",
            format!("subject {:?}", clip(&identity.subject, 64)),
            "The sign-in provider sent an unusable identifier for you. Ask an administrator."
                .into(),
            StatusCode::FORBIDDEN,
        );
        return fail(state, session, addr, next, f).await;
    };
    let (role, teams) = providers::mapped_access(&mappings, &identity.groups);
    let email = identity.email.as_deref().and_then(|e| Email::parse(e).ok());
    let actor = format!("identity_provider:{}/{}", tenant.slug, record.slug);
    let change = sessions::change(&actor, addr, now);
    let input = ExternalSignIn {
        tenant: tenant.id,
        provider: record.id,
        provider_slug: &record.slug,
        subject: &subject,
        email: email.as_ref(),
        email_verified: identity.email_verified,
        role,
        teams: &teams,
    };
    let provisioned = match state.store.external_sign_in(&input, &change).await {
        Ok(Ok(p)) => p,
        Ok(Err(refusal)) => {
            let (reason, message) = match refusal {
                Refusal::NoEmail => (
                    "no_email",
                    "The sign-in provider did not give an email address, so no account can be made.".to_owned(),
                ),
                Refusal::AccountExists => (
                    "account_exists",
                    format!(
                        "An account with this email address already exists. Sign in to it, then link {} from your account page.",
                        record.display_name
                    ),
                ),
                Refusal::AccountLeftTenant => (
                    "link_outgrown_tenant",
                    format!(
                        "{} alone no longer signs in to this account. Sign in to it another way, then link {} from your account page.",
                        record.display_name, record.display_name
                    ),
                ),
                Refusal::EmailNotVerified => (
                    "email_not_verified",
                    "An account with this email address already exists and the provider has not verified the address. Sign in with your password, or ask an administrator to link the accounts.".to_owned(),
                ),
                Refusal::Disabled => ("disabled", "This account is disabled.".to_owned()),
            };
            let f = failure(
                reason,
                format!("subject {}", subject.as_str()),
                message,
                StatusCode::FORBIDDEN,
            );
            return fail(state, session, addr, next, f).await;
        }
        Err(e) => {
            return crate::error::ApiError::internal("provisioning the user failed", &e)
                .into_response();
        }
    };
    let epoch = match state.store.session_epoch(provisioned.user).await {
        Ok(Some(epoch)) => epoch,
        Ok(None) => {
            return crate::error::ApiError::internal("provisioning the user failed", &"no user")
                .into_response();
        }
        Err(e) => {
            return crate::error::ApiError::internal("reading the user failed", &e).into_response();
        }
    };
    if let Err(r) = start_signed_in_session(session, provisioned.user, epoch, now).await {
        return r;
    }
    let user_actor = format!("user:{}", provisioned.user.0);
    let change = sessions::change(&user_actor, addr, now);
    let groups: Vec<String> = identity
        .groups
        .iter()
        .take(AUDIT_GROUPS)
        .map(|g| clip(g, AUDIT_GROUP_CHARS))
        .collect();
    if let Err(e) = state
        .store
        .audit_provider_sign_in(
            &change,
            Some(tenant.id),
            "auth.sign_in",
            &format!("user:{}", provisioned.user.0),
            json!({
                "method": method,
                "provider": record.slug,
                "created": provisioned.created,
                "linked": provisioned.linked,
                "groups": groups,
            }),
        )
        .await
    {
        tracing::warn!(error = %e, "auditing a sign-in failed");
    }
    Redirect::to(next).into_response()
}

/// The LDAP sign-in form (also the account page's link form).
#[derive(Deserialize)]
pub(super) struct LdapForm {
    #[serde(default)]
    pub(super) username: String,
    #[serde(default)]
    pub(super) password: String,
    #[serde(default)]
    pub(super) csrf: String,
    #[serde(default)]
    pub(super) next: String,
}

/// A directory answered for a user name (or why not), with the throttle counted; shared
/// by sign-in and by linking from the account page.
pub(super) async fn check_directory<'a>(
    state: &AppState,
    addr: Option<&str>,
    tenant: &'a str,
    provider: &'a str,
    form: &LdapForm,
) -> Result<(Tenant, ProviderRecord, ldap::DirectoryUser), Failure<'a>> {
    let now = state.clock.now_millis();
    let address = addr.unwrap_or("unknown");
    let address_key = sessions::address_throttle_key(address);
    // Bounded and trimmed once: the directory, the throttle and the audit row see this.
    let name = LoginName::parse(&form.username);
    let account_key = name
        .as_ref()
        .ok()
        .map(|n| sessions::directory_throttle_key(tenant, provider, n));
    let shown = name
        .as_ref()
        .map_or_else(|_| "(invalid)".to_owned(), |n| n.as_str().to_owned());
    let failure = |reason, detail: String, message: String, status| Failure {
        tenant: Some((tenant, None)),
        provider: Some(provider),
        method: "ldap",
        reason,
        detail,
        message: message.into(),
        status,
    };
    let keys: Vec<String> = account_key
        .iter()
        .cloned()
        .chain([address_key.clone()])
        .collect();
    if let Some(wait) = state.throttle.wait_ms(&keys, now).await {
        let message = format!(
            "Too many failed attempts. Try again in {} seconds.",
            (wait + 999) / 1000
        );
        return Err(failure(
            "throttled",
            format!("user {shown:?}"),
            message,
            StatusCode::TOO_MANY_REQUESTS,
        ));
    }
    let (tenant_record, record, settings) =
        match load_provider(state, tenant, provider, Kind::Ldap).await {
            Ok(Some((t, r, Settings::Ldap(s)))) => (t, r, s),
            Ok(_) => {
                return Err(failure(
                    "unknown_provider",
                    "no such LDAP provider".into(),
                    "There is no such sign-in provider.".into(),
                    StatusCode::NOT_FOUND,
                ));
            }
            Err(e) => {
                return Err(failure(
                    "misconfigured",
                    e,
                    "This sign-in provider is misconfigured. Ask an administrator.".into(),
                    StatusCode::INTERNAL_SERVER_ERROR,
                ));
            }
        };
    let known = |f: Failure<'a>| Failure {
        tenant: Some((tenant, Some(tenant_record.id))),
        ..f
    };
    // An empty password is an unauthenticated bind that some directories accept: never
    // send one.
    let name = match name {
        Ok(name) if !form.password.is_empty() => name,
        _ => {
            state
                .throttle
                .fail(account_key.as_deref(), &address_key, now)
                .await;
            return Err(known(failure(
                "empty_credentials",
                format!("user {shown:?}"),
                "Enter your user name and password.".into(),
                StatusCode::UNAUTHORIZED,
            )));
        }
    };
    match ldap::authenticate(&settings, name.as_str(), &form.password).await {
        Ok(user) => {
            if let Some(key) = &account_key {
                state.throttle.succeed(key).await;
            }
            Ok((tenant_record, record, user))
        }
        Err(e) => {
            let (reason, message, status) = match &e {
                LdapError::InvalidCredentials => {
                    state
                        .throttle
                        .fail(account_key.as_deref(), &address_key, now)
                        .await;
                    (
                        "invalid_credentials",
                        "Wrong user name or password.",
                        StatusCode::UNAUTHORIZED,
                    )
                }
                LdapError::Unavailable(_) => (
                    "directory_unavailable",
                    "The directory is not reachable right now. Try again later.",
                    StatusCode::SERVICE_UNAVAILABLE,
                ),
                LdapError::Misconfigured(_) => (
                    "misconfigured",
                    "This sign-in provider is misconfigured. Ask an administrator.",
                    StatusCode::INTERNAL_SERVER_ERROR,
                ),
                LdapError::Referral(_) => (
                    "directory_referral",
                    "The directory sent this sign-in to another server, which is not followed. Ask an administrator to point the provider at the server that holds the accounts.",
                    StatusCode::BAD_GATEWAY,
                ),
                LdapError::NestingTooDeep(_) => (
                    "groups_too_deep",
                    "Your directory groups are nested too deeply to work out your roles, so you cannot sign in here. Ask an administrator.",
                    StatusCode::FORBIDDEN,
                ),
            };
            Err(known(failure(
                reason,
                format!("user {shown:?}: {e}"),
                message.into(),
                status,
            )))
        }
    }
}

async fn ldap_sign_in(
    State(state): State<AppState>,
    Extension(ClientAddr(addr)): Extension<ClientAddr>,
    Path((tenant, provider)): Path<(String, String)>,
    session: Session,
    Form(form): Form<LdapForm>,
) -> Response {
    if let Err(r) = check_csrf(&session, &form.csrf).await {
        return r;
    }
    let next = local_path(&form.next).to_owned();
    match check_directory(&state, addr.as_deref(), &tenant, &provider, &form).await {
        Ok((tenant_record, record, user)) => {
            let identity = Identity {
                subject: user.dn,
                email: user.email,
                // The directory is the authority on its own entries (which links nothing
                // outside the provider's tenant: see `AccountTies`).
                email_verified: true,
                // Names first, then DNs, so that a mapping may name a group either way.
                groups: user.groups.into_iter().chain(user.group_dns).collect(),
            };
            complete(
                &state,
                &session,
                addr.as_deref(),
                &tenant_record,
                &record,
                "ldap",
                identity,
                &next,
            )
            .await
        }
        Err(f) => fail(&state, &session, addr.as_deref(), &next, f).await,
    }
}
