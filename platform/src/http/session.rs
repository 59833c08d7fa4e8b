//! Browser sign-in: the session layer, the middleware that turns a session into a
//! [`Principal`], CSRF checks, and the `/login`, `/logout` and `/account/password` pages.
//!
//! A Bearer token always wins over a cookie, and Bearer calls need no CSRF token (a browser
//! never adds that header on its own). Every state-changing form carries the session's
//! synchronizer token; cookie-authenticated `/api/v1` calls send it as `X-CSRF-Token`.

use std::net::SocketAddr;

use askama::Template;
use axum::Router;
use axum::extract::{ConnectInfo, Extension, Form, Query, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use tower_sessions::cookie::SameSite;
use tower_sessions::{Expiry, Session, SessionManagerLayer};

use crate::auth::session::{
    self as sessions, CSRF_KEY, SIGNED_IN_KEY, SessionBackend, SignedIn, Throttle,
};
use crate::auth::{self, password};
use crate::error::ApiError;
use crate::ids::UserId;
use crate::policy::{Principal, UserPrincipal};
use crate::state::AppState;
use crate::store::Change;
use crate::tenancy::{Email, clip};

/// The session cookie's name (`__Host-tessera_session` when the public URL is HTTPS).
pub const COOKIE: &str = "tessera_session";

/// The client's address as the middleware saw it (for throttling and the audit log).
#[derive(Clone, Debug)]
pub struct ClientAddr(pub Option<String>);

/// The session layer over the configured store.
pub fn layer(state: &AppState) -> SessionManagerLayer<SessionBackend> {
    let config = &state.config.sessions;
    let idle = i64::try_from(config.idle_minutes).unwrap_or(i64::MAX / 60_000);
    let https = state.origins.platform_https();
    SessionManagerLayer::new(state.sessions.clone())
        .with_name(crate::auth::handoff::cookie_name(COOKIE, https))
        .with_http_only(true)
        .with_same_site(SameSite::Lax)
        .with_secure(https || config.secure_cookies)
        .with_path("/")
        .with_expiry(Expiry::OnInactivity(time::Duration::minutes(idle)))
}

/// The sign-in routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/login", get(login_form).post(login))
        .route("/logout", post(logout))
        .route("/logout/everywhere", post(logout_everywhere))
        .route(
            "/account/password",
            get(password_form).post(change_password),
        )
}

/// Outermost: mark our cookies (the platform's or the apps origin's) `Secure` when a
/// trusted proxy says the client used HTTPS.
pub async fn secure_behind_proxy(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let https = peer.is_some_and(|ip| state.config.sessions.trusted_proxies.contains(&ip))
        && request
            .headers()
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("https"));
    let mut response = next.run(request).await;
    if https {
        let cookies: Vec<HeaderValue> = response
            .headers_mut()
            .get_all(header::SET_COOKIE)
            .iter()
            .cloned()
            .collect();
        response.headers_mut().remove(header::SET_COOKIE);
        for cookie in cookies {
            let text = cookie.to_str().unwrap_or_default();
            let ours = text.starts_with("tessera_") || text.starts_with("__Host-tessera_");
            let fixed = if ours && !text.contains("Secure") {
                HeaderValue::from_str(&format!("{text}; Secure")).unwrap_or(cookie)
            } else {
                cookie
            };
            response.headers_mut().append(header::SET_COOKIE, fixed);
        }
    }
    response
}

/// Inside the session layer: a valid signed-in session becomes a [`Principal::User`];
/// cookie-authenticated API writes must carry `X-CSRF-Token`.
pub async fn authenticate(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let addr = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_string());
    request.extensions_mut().insert(ClientAddr(addr));
    if request.headers().contains_key(header::AUTHORIZATION) {
        return next.run(request).await;
    }
    let Some(session) = request.extensions().get::<Session>().cloned() else {
        return next.run(request).await;
    };
    let user = match signed_in_user(&state, &session).await {
        Ok(user) => user,
        Err(e) => return e,
    };
    let Some((principal, must_change)) = user else {
        return next.run(request).await;
    };
    let path = request.uri().path().to_owned();
    let unsafe_method = !matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    );
    if unsafe_method && path.starts_with("/api/") {
        let expected: String = session
            .get(CSRF_KEY)
            .await
            .ok()
            .flatten()
            .unwrap_or_default();
        let presented = request
            .headers()
            .get("x-csrf-token")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        if !sessions::csrf_matches(presented, &expected) {
            return ApiError::new(
                StatusCode::FORBIDDEN,
                "csrf",
                "missing or wrong X-CSRF-Token",
            )
            .into_response();
        }
    }
    if must_change
        && !matches!(
            path.as_str(),
            "/account/password" | "/logout" | "/logout/everywhere"
        )
    {
        return Redirect::to("/account/password").into_response();
    }
    request.extensions_mut().insert(Principal::User(principal));
    next.run(request).await
}

/// The session's user if the session is signed in and still valid; ends it otherwise.
async fn signed_in_user(
    state: &AppState,
    session: &Session,
) -> Result<Option<(UserPrincipal, bool)>, Response> {
    let internal = |e: &dyn std::fmt::Display| {
        ApiError::internal("loading the session failed", &e.to_string()).into_response()
    };
    let Some(signed_in) = session
        .get::<SignedIn>(SIGNED_IN_KEY)
        .await
        .map_err(|e| internal(&e))?
    else {
        return Ok(None);
    };
    let now = state.clock.now_millis();
    let absolute = i64::try_from(state.config.sessions.absolute_hours)
        .unwrap_or(i64::MAX / 3_600_000)
        * 3_600_000;
    let user = UserId(signed_in.user);
    let account = state
        .accounts
        .account(user)
        .await
        .map_err(|e| internal(&e))?;
    match account {
        Some(account) if account.epoch == signed_in.epoch && now - signed_in.at < absolute => {
            Ok(Some((
                UserPrincipal {
                    id: user,
                    superadmin: account.superadmin,
                    memberships: account.memberships,
                },
                account.must_change,
            )))
        }
        _ => {
            session.flush().await.map_err(|e| internal(&e))?;
            Ok(None)
        }
    }
}

/// `next=` only to a path on this site: one leading `/`, no `//`, no backslash, no control
/// characters; anything else goes home.
pub fn local_path(next: &str) -> &str {
    let ok = next.starts_with('/')
        && !next.starts_with("//")
        && !next.contains('\\')
        && !next.chars().any(|c| c.is_control());
    if ok { next } else { "/" }
}

pub(crate) async fn csrf_token(session: &Session) -> Result<String, Response> {
    let existing: Option<String> = session
        .get(CSRF_KEY)
        .await
        .map_err(|e| ApiError::internal("session", &e.to_string()).into_response())?;
    if let Some(token) = existing {
        return Ok(token);
    }
    let token = sessions::new_csrf_token();
    session
        .insert(CSRF_KEY, &token)
        .await
        .map_err(|e| ApiError::internal("session", &e.to_string()).into_response())?;
    Ok(token)
}

pub(crate) async fn check_csrf(session: &Session, presented: &str) -> Result<(), Response> {
    let expected: String = session
        .get(CSRF_KEY)
        .await
        .ok()
        .flatten()
        .unwrap_or_default();
    if sessions::csrf_matches(presented, &expected) {
        Ok(())
    } else {
        Err((StatusCode::FORBIDDEN, Html("<h1>Forbidden</h1><p>The form expired or did not come from this site. Reload the page and try again.</p>")).into_response())
    }
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage<'a> {
    csrf: &'a str,
    next: &'a str,
    email: &'a str,
    error: Option<&'a str>,
    providers: &'a [ProviderLink],
}

/// A sign-in provider offered on the page.
pub(crate) struct ProviderLink {
    /// `oidc`, `ldap` or `saml`.
    pub kind: &'static str,
    /// The tenant's slug.
    pub tenant: String,
    /// The provider's slug.
    pub slug: String,
    /// Its name.
    pub display_name: String,
    /// `next` as a URL query value.
    pub next_query: String,
}

/// The tenant whose providers the sign-in page shows: `?tenant=`, else the tenant of a
/// `next=/apps/{tenant}/…` (also inside the apps-origin hand-off's own `next=`).
fn tenant_of_page<'a>(tenant: Option<&'a str>, next: &'a str) -> Option<&'a str> {
    let next = next
        .strip_prefix(crate::auth::handoff::ISSUE_PATH)
        .and_then(|q| q.split_once("next=").map(|(_, rest)| rest))
        .unwrap_or(next);
    tenant.filter(|t| !t.is_empty()).or_else(|| {
        next.strip_prefix("/apps/")
            .and_then(|rest| rest.split(['/', '?', '&']).next())
            .filter(|t| !t.is_empty())
    })
}

/// The providers of `tenant` for the sign-in page (none for an unknown tenant).
async fn provider_links(state: &AppState, tenant: Option<&str>, next: &str) -> Vec<ProviderLink> {
    let Some(slug) = tenant.and_then(|t| crate::ids::Slug::parse(t).ok()) else {
        return Vec::new();
    };
    let Ok(Some(tenant)) = state.store.tenant_by_slug(&slug).await else {
        return Vec::new();
    };
    let providers = state
        .store
        .identity_providers(tenant.id)
        .await
        .unwrap_or_default();
    let next_query = form_urlencoded(next);
    providers
        .into_iter()
        .filter_map(|p| {
            let kind = crate::auth::providers::Kind::parse(&p.kind)?.as_str();
            Some(ProviderLink {
                kind,
                tenant: tenant.slug.clone(),
                slug: p.slug,
                display_name: p.display_name,
                next_query: next_query.clone(),
            })
        })
        .collect()
}

/// Percent-encode a query value.
fn form_urlencoded(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The sign-in page of `tenant` (or of `next`'s tenant) with an optional error.
pub(crate) async fn login_page(
    state: &AppState,
    session: &Session,
    tenant: Option<&str>,
    next: &str,
    email: &str,
    error: Option<&str>,
    status: StatusCode,
) -> Response {
    let csrf = match csrf_token(session).await {
        Ok(t) => t,
        Err(r) => return r,
    };
    let next = local_path(next);
    let providers = provider_links(state, tenant_of_page(tenant, next), next).await;
    render(
        &LoginPage {
            csrf: &csrf,
            next,
            email,
            error,
            providers: &providers,
        },
        status,
    )
}

/// Sign `user` in on this session: a new session id (a session id planted before sign-in
/// is worthless after), the signed-in record and a fresh CSRF token. Every way of signing
/// in goes through here.
pub(crate) async fn start_signed_in_session(
    session: &Session,
    user: UserId,
    epoch: i64,
    now: i64,
) -> Result<(), Response> {
    let signed_in = SignedIn {
        user: user.0,
        epoch,
        at: now,
    };
    let rotated = async {
        session.cycle_id().await?;
        session.insert(SIGNED_IN_KEY, &signed_in).await?;
        session.insert(CSRF_KEY, sessions::new_csrf_token()).await
    };
    rotated.await.map_err(|e| {
        ApiError::internal("starting the session failed", &e.to_string()).into_response()
    })
}

fn render(page: &impl Template, status: StatusCode) -> Response {
    match page.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => ApiError::internal("rendering a page failed", &e).into_response(),
    }
}

#[derive(Deserialize)]
struct NextQuery {
    next: Option<String>,
    tenant: Option<String>,
}

async fn login_form(
    State(state): State<AppState>,
    session: Session,
    Query(q): Query<NextQuery>,
) -> Response {
    login_page(
        &state,
        &session,
        q.tenant.as_deref(),
        q.next.as_deref().unwrap_or("/"),
        "",
        None,
        StatusCode::OK,
    )
    .await
}

#[derive(Deserialize)]
struct LoginForm {
    email: String,
    password: String,
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    next: String,
}

async fn login(
    State(state): State<AppState>,
    Extension(ClientAddr(addr)): Extension<ClientAddr>,
    session: Session,
    Form(form): Form<LoginForm>,
) -> Response {
    if let Err(r) = check_csrf(&session, &form.csrf).await {
        return r;
    }
    let next = local_path(&form.next);
    let now = state.clock.now_millis();
    let address = addr.clone().unwrap_or_else(|| "unknown".to_owned());
    let address_key = sessions::address_throttle_key(&address);
    let throttle: &Throttle = &state.throttle;
    let change = sessions::change("anonymous", addr.as_deref(), now);
    // Normalized and bounded once: the throttle, the lookup, the audit row and the page all
    // use this; a malformed (or 4 MiB) address goes no further than a marker.
    let email = Email::parse(&form.email);
    let (target, echo) = match &email {
        Ok(e) => (format!("email:{e}"), e.to_string()),
        Err(_) => ("email:invalid".to_owned(), clip(form.email.trim(), 254)),
    };
    let mut keys = vec![address_key.clone()];
    if let Ok(e) = &email {
        keys.push(sessions::account_throttle_key(e));
    }
    let audit_failure = |reason: &'static str| {
        let store = state.store.clone();
        let target = target.clone();
        async move {
            if let Err(e) = store
                .audit_sign_in(
                    &change,
                    "auth.sign_in_failed",
                    &target,
                    serde_json::json!({"method": "local", "reason": reason}),
                )
                .await
            {
                tracing::warn!(error = %e, "auditing a failed sign-in failed");
            }
        }
    };
    if let Some(wait) = throttle.wait_ms(&keys, now).await {
        audit_failure("throttled").await;
        let message = format!(
            "Too many failed attempts. Try again in {} seconds.",
            (wait + 999) / 1000
        );
        return login_page(
            &state,
            &session,
            None,
            next,
            &echo,
            Some(&message),
            StatusCode::TOO_MANY_REQUESTS,
        )
        .await;
    }
    let Ok(email) = email else {
        throttle.fail(None, &address_key, now).await;
        audit_failure("invalid_email").await;
        return login_page(
            &state,
            &session,
            None,
            next,
            &echo,
            Some("Enter a valid email address (local@domain, at most 254 characters)."),
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
    };
    let account_key = sessions::account_throttle_key(&email);
    match auth::session::sign_in_local(&state.store, &email, &form.password).await {
        Ok(ok) => {
            throttle.succeed(&account_key).await;
            if let Err(r) = start_signed_in_session(&session, ok.user, ok.epoch, now).await {
                return r;
            }
            let actor = format!("user:{}", ok.user.0);
            let change = sessions::change(&actor, addr.as_deref(), now);
            if let Err(e) = state
                .store
                .audit_sign_in(
                    &change,
                    "auth.sign_in",
                    &target,
                    serde_json::json!({"method": "local"}),
                )
                .await
            {
                tracing::warn!(error = %e, "auditing a sign-in failed");
            }
            let to = if ok.must_change {
                "/account/password"
            } else {
                next
            };
            Redirect::to(to).into_response()
        }
        Err(auth::Error::InvalidCredentials) => {
            throttle.fail(Some(&account_key), &address_key, now).await;
            audit_failure("invalid_credentials").await;
            login_page(
                &state,
                &session,
                None,
                next,
                &echo,
                Some("Wrong email or password."),
                StatusCode::UNAUTHORIZED,
            )
            .await
        }
        Err(e) => ApiError::internal("signing in failed", &e).into_response(),
    }
}

#[derive(Deserialize)]
struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

async fn logout(
    State(state): State<AppState>,
    session: Session,
    Form(form): Form<CsrfForm>,
) -> Response {
    if let Err(r) = check_csrf(&session, &form.csrf).await {
        return r;
    }
    // The app sessions this session handed over end with it.
    let link: Option<String> = session
        .get(crate::auth::handoff::LINK_KEY)
        .await
        .ok()
        .flatten();
    if let Some(link) = link
        && let Err(e) = crate::auth::handoff::end_link(&state.handoffs, &link).await
    {
        return ApiError::internal("ending the app sessions failed", &e).into_response();
    }
    if let Err(e) = session.flush().await {
        return ApiError::internal("ending the session failed", &e.to_string()).into_response();
    }
    Redirect::to("/login").into_response()
}

async fn logout_everywhere(
    State(state): State<AppState>,
    Extension(ClientAddr(addr)): Extension<ClientAddr>,
    principal: Principal,
    session: Session,
    Form(form): Form<CsrfForm>,
) -> Response {
    if let Err(r) = check_csrf(&session, &form.csrf).await {
        return r;
    }
    let Principal::User(user) = principal else {
        return Redirect::to("/login").into_response();
    };
    let actor = format!("user:{}", user.id.0);
    let change = sessions::change(&actor, addr.as_deref(), state.clock.now_millis());
    if let Err(e) = state.store.bump_session_epoch(user.id, &change).await {
        return ApiError::internal("signing out everywhere failed", &e).into_response();
    }
    let _ = session.flush().await;
    Redirect::to("/login").into_response()
}

#[derive(Template)]
#[template(path = "password.html")]
struct PasswordPage<'a> {
    csrf: &'a str,
    must_change: bool,
    error: Option<&'a str>,
    done: bool,
}

async fn password_form(
    State(state): State<AppState>,
    principal: Principal,
    session: Session,
) -> Response {
    let Principal::User(user) = principal else {
        return Redirect::to("/login?next=/account/password").into_response();
    };
    let csrf = match csrf_token(&session).await {
        Ok(t) => t,
        Err(r) => return r,
    };
    let must_change =
        matches!(state.store.user(user.id).await, Ok(Some(u)) if u.password_must_change);
    render(
        &PasswordPage {
            csrf: &csrf,
            must_change,
            error: None,
            done: false,
        },
        StatusCode::OK,
    )
}

#[derive(Deserialize)]
struct PasswordForm {
    #[serde(default)]
    csrf: String,
    current: String,
    new: String,
}

/// Shortest password accepted (NIST SP 800-63B asks for at least 8; we ask 12).
const MIN_PASSWORD_CHARS: usize = 12;

async fn change_password(
    State(state): State<AppState>,
    Extension(ClientAddr(addr)): Extension<ClientAddr>,
    principal: Principal,
    session: Session,
    Form(form): Form<PasswordForm>,
) -> Response {
    if let Err(r) = check_csrf(&session, &form.csrf).await {
        return r;
    }
    let Principal::User(user) = principal else {
        return Redirect::to("/login?next=/account/password").into_response();
    };
    let csrf: String = session
        .get(CSRF_KEY)
        .await
        .ok()
        .flatten()
        .unwrap_or_default();
    let page = |error: Option<&str>, status| {
        render(
            &PasswordPage {
                csrf: &csrf,
                must_change: false,
                error,
                done: error.is_none(),
            },
            status,
        )
    };
    let current_ok = match state.store.password_hash(user.id).await {
        Ok(Some(hash)) => password::verify_off_runtime(form.current.clone(), hash).await,
        Ok(None) => false,
        Err(e) => return ApiError::internal("reading the password failed", &e).into_response(),
    };
    if !current_ok {
        return page(
            Some("The current password is wrong."),
            StatusCode::UNAUTHORIZED,
        );
    }
    if form.new.chars().count() < MIN_PASSWORD_CHARS || form.new == form.current {
        return page(
            Some(
                "The new password must have at least 12 characters and differ from the current one.",
            ),
            StatusCode::UNPROCESSABLE_ENTITY,
        );
    }
    let hash = match password::hash_off_runtime(form.new.clone()).await {
        Ok(h) => h,
        Err(e) => return ApiError::internal("hashing failed", &e).into_response(),
    };
    let actor = format!("user:{}", user.id.0);
    let now = state.clock.now_millis();
    let change = sessions::change(&actor, addr.as_deref(), now);
    // The change ends every session of the user (the epoch rises); this one carries on
    // under the new epoch with a new id.
    let epoch = match state.store.set_password(user.id, &hash, &change).await {
        Ok(epoch) => epoch,
        Err(e) => return ApiError::internal("changing the password failed", &e).into_response(),
    };
    let signed_in_at = match session.get::<SignedIn>(SIGNED_IN_KEY).await {
        Ok(Some(signed_in)) => signed_in.at,
        _ => now,
    };
    if let Err(r) = start_signed_in_session(&session, user.id, epoch, signed_in_at).await {
        return r;
    }
    let csrf: String = session
        .get(CSRF_KEY)
        .await
        .ok()
        .flatten()
        .unwrap_or_default();
    render(
        &PasswordPage {
            csrf: &csrf,
            must_change: false,
            error: None,
            done: true,
        },
        StatusCode::OK,
    )
}

/// Who changes what, from where and when: the audit row of a form post.
pub(crate) struct FormChange {
    actor: String,
    remote_addr: Option<String>,
    at: i64,
}

impl FormChange {
    pub(crate) fn change(&self) -> Change<'_> {
        Change {
            actor: &self.actor,
            remote_addr: self.remote_addr.as_deref(),
            at: self.at,
        }
    }
}

/// The CSRF check every form post passes first, then the audit row's who and when.
pub(crate) async fn form_context(
    state: &AppState,
    session: &Session,
    principal: &Principal,
    addr: Option<String>,
    csrf: &str,
) -> Result<FormChange, Response> {
    check_csrf(session, csrf).await?;
    Ok(FormChange {
        actor: principal.audit_actor(),
        remote_addr: addr,
        at: state.clock.now_millis(),
    })
}

#[cfg(test)]
mod tests {
    use super::local_path;

    #[test]
    fn next_only_goes_to_local_paths() {
        assert_eq!(local_path("/apps/a/b/?x=1"), "/apps/a/b/?x=1");
        for bad in [
            "//evil.example",
            "https://evil.example/",
            "/\\evil.example",
            "\\\\evil",
            "evil",
            "",
            "/\t/evil",
        ] {
            assert_eq!(local_path(bad), "/", "{bad:?}");
        }
    }
}
