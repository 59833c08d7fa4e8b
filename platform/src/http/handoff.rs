//! The two ends of the apps-origin hand-off ([`crate::auth::handoff`] holds the rules):
//! on the platform, `GET /auth/apps/handoff?next=&state=` mints a one-time code for the
//! signed-in person (signing in first) and `/apps/…` redirects to the apps origin; on the
//! apps origin, `GET /_tessera/handoff?code=` redeems it and starts the app session, and a
//! middleware turns a valid app session into a [`Principal`].

use axum::Router;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{any, get};
use serde::Deserialize;
use tower_sessions::cookie::{Cookie, SameSite};
use tower_sessions::{Expiry, Session, SessionManagerLayer};

use crate::auth::handoff::{
    self, APP_SIGNED_IN_KEY, AppSignedIn, HandoffError, ISSUE_PATH, LINK_KEY, PlatformSignIn,
    REDEEM_PATH,
};
use crate::auth::session::{SIGNED_IN_KEY, SessionBackend, SignedIn};
use crate::error::ApiError;
use crate::origin::{Origins, Site};
use crate::policy::Principal;
use crate::state::AppState;

/// The app session cookie's name (before the `__Host-` prefix of HTTPS).
const APP_COOKIE: &str = "tessera_app_session";
/// The cookie holding the hand-off's state on the apps origin.
const STATE_COOKIE: &str = "tessera_app_handoff";
/// How long a started hand-off's state cookie lives (the sign-in may take a while).
const STATE_MAX_AGE_MINUTES: i64 = 30;

/// The platform's side.
pub fn platform_router() -> Router<AppState> {
    Router::new()
        .route(ISSUE_PATH, get(issue))
        .route("/apps/{*rest}", any(to_apps_origin))
}

/// The apps origin's side.
pub fn apps_router() -> Router<AppState> {
    Router::new().route(REDEEM_PATH, get(redeem))
}

/// The app session layer: its own cookie, host-only, over the same session stores.
pub fn session_layer(state: &AppState) -> SessionManagerLayer<SessionBackend> {
    let config = &state.config.sessions;
    let idle = i64::try_from(config.idle_minutes).unwrap_or(i64::MAX / 60_000);
    let https = state.origins.apps_https();
    SessionManagerLayer::new(state.sessions.clone())
        .with_name(handoff::cookie_name(APP_COOKIE, https))
        .with_http_only(true)
        .with_same_site(SameSite::Lax)
        .with_secure(https || config.secure_cookies)
        .with_path("/")
        .with_expiry(Expiry::OnInactivity(time::Duration::minutes(idle)))
}

fn absolute_ms(state: &AppState) -> i64 {
    i64::try_from(state.config.sessions.absolute_hours).unwrap_or(i64::MAX / 3_600_000) * 3_600_000
}

/// The apps origin a request reached (the dispatcher put its [`Site`] in the extensions).
fn site_origin(state: &AppState, request_site: Option<&Site>) -> Option<String> {
    request_site.and_then(|site| state.origins.site_url(site))
}

/// Apps origin, inside the app session layer: a valid app session becomes the principal.
/// A Bearer header wins (the [`Principal`] extractor reads it).
pub async fn authenticate(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    if request.headers().contains_key(header::AUTHORIZATION) {
        return next.run(request).await;
    }
    let Some(session) = request.extensions().get::<Session>().cloned() else {
        return next.run(request).await;
    };
    let internal = |e: &dyn std::fmt::Display| {
        ApiError::internal("loading the app session failed", &e.to_string()).into_response()
    };
    let signed_in = match session.get::<AppSignedIn>(APP_SIGNED_IN_KEY).await {
        Ok(Some(s)) => s,
        Ok(None) => return next.run(request).await,
        Err(e) => return internal(&e),
    };
    let origin = site_origin(&state, request.extensions().get::<Site>()).unwrap_or_default();
    let now = state.clock.now_millis();
    match handoff::app_principal(
        &state.accounts,
        &state.handoffs,
        &signed_in,
        &origin,
        absolute_ms(&state),
        now,
    )
    .await
    {
        Ok(Some(principal)) => {
            request.extensions_mut().insert(Principal::User(principal));
        }
        Ok(None) => {
            if let Err(e) = session.flush().await {
                return internal(&e);
            }
        }
        Err(e) => return internal(&e),
    }
    next.run(request).await
}

/// Anything on the apps origin that is not an app route.
pub async fn not_an_app_route() -> Response {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        "this origin serves apps only (/apps/{tenant}/{app}/)",
    )
    .into_response()
}

/// A request for an app that reached the platform's origin: the same path on the apps
/// origin (apps are never served here).
async fn to_apps_origin(State(state): State<AppState>, request: Request) -> Response {
    let uri = request.uri();
    match Origins::app_path_tenant(uri.path()) {
        Some(tenant) => {
            let path = uri.path_and_query().map_or(uri.path(), |p| p.as_str());
            Redirect::temporary(&state.origins.app_url(&tenant, path)).into_response()
        }
        None => ApiError::app_not_found().into_response(),
    }
}

/// The redirect that starts a hand-off for an anonymous visitor of `path_and_query` on the
/// apps origin: to the platform, with a fresh state also set in a cookie here.
pub fn start(state: &AppState, path_and_query: &str) -> Response {
    let nonce = handoff::new_secret();
    let https = state.origins.apps_https();
    let cookie = Cookie::build((handoff::cookie_name(STATE_COOKIE, https), nonce.clone()))
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(https || state.config.sessions.secure_cookies)
        .path("/")
        .max_age(time::Duration::minutes(STATE_MAX_AGE_MINUTES))
        .build();
    let mut response =
        Redirect::to(&handoff::start_url(&state.origins, path_and_query, &nonce)).into_response();
    if let Ok(value) = HeaderValue::from_str(&cookie.to_string()) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

#[derive(Deserialize)]
struct IssueQuery {
    #[serde(default)]
    next: String,
    #[serde(default)]
    state: String,
}

/// Platform: mint a code for the signed-in person and send the browser to the apps origin
/// to redeem it; sign in first (and come back here) when nobody is.
async fn issue(
    State(state): State<AppState>,
    principal: Principal,
    session: Session,
    request: Request,
) -> Response {
    let Query(query) = match Query::<IssueQuery>::try_from_uri(request.uri()) {
        Ok(q) => q,
        Err(e) => return plain(StatusCode::BAD_REQUEST, &e.to_string()),
    };
    let signed_in = match session.get::<SignedIn>(SIGNED_IN_KEY).await {
        Ok(s) => s,
        Err(e) => {
            return ApiError::internal("loading the session failed", &e.to_string())
                .into_response();
        }
    };
    let (Principal::User(_), Some(signed_in)) = (&principal, signed_in) else {
        let here = request
            .uri()
            .path_and_query()
            .map_or(ISSUE_PATH, |p| p.as_str());
        let tenant = Origins::app_path_tenant(&query.next)
            .map(|t| format!("tenant={t}&"))
            .unwrap_or_default();
        return Redirect::to(&format!(
            "/login?{tenant}next={}",
            handoff::encode_query(here)
        ))
        .into_response();
    };
    let now = state.clock.now_millis();
    let existing: Option<String> = session.get(LINK_KEY).await.ok().flatten();
    let user = crate::ids::UserId(signed_in.user);
    let link = match handoff::ensure_link(
        &state.handoffs,
        existing.as_deref(),
        user,
        signed_in.at + absolute_ms(&state),
        now,
    )
    .await
    {
        Ok(link) => link,
        Err(e) => return ApiError::internal("starting the app session failed", &e).into_response(),
    };
    if existing.as_deref() != Some(link.as_str())
        && let Err(e) = session.insert(LINK_KEY, &link).await
    {
        return ApiError::internal("starting the app session failed", &e.to_string())
            .into_response();
    }
    let sign_in = PlatformSignIn {
        user,
        epoch: signed_in.epoch,
        at: signed_in.at,
    };
    match handoff::issue(
        &state.handoffs,
        &state.origins,
        sign_in,
        &link,
        &query.next,
        &query.state,
        now,
    )
    .await
    {
        Ok(url) => Redirect::to(&url).into_response(),
        Err(e @ (HandoffError::NotAnAppPath(_) | HandoffError::BadState)) => {
            plain(StatusCode::BAD_REQUEST, &e.to_string())
        }
        Err(e) => ApiError::internal("starting the app session failed", &e).into_response(),
    }
}

#[derive(Deserialize)]
struct RedeemQuery {
    #[serde(default)]
    code: String,
}

/// Apps origin: redeem the code once and start the app session.
async fn redeem(
    State(state): State<AppState>,
    session: Session,
    Query(query): Query<RedeemQuery>,
    request: Request,
) -> Response {
    let origin = site_origin(&state, request.extensions().get::<Site>()).unwrap_or_default();
    let https = state.origins.apps_https();
    let state_name = handoff::cookie_name(STATE_COOKIE, https);
    let presented = request
        .headers()
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| Cookie::split_parse(v).filter_map(Result::ok))
        .find(|c| c.name() == state_name)
        .map(|c| c.value().to_owned());
    let now = state.clock.now_millis();
    let redeemed = match handoff::redeem(
        &state.handoffs,
        &query.code,
        &origin,
        presented.as_deref(),
        now,
    )
    .await
    {
        Ok(r) => r,
        Err(HandoffError::Storage(e)) => {
            return ApiError::internal("redeeming a hand-off failed", &e).into_response();
        }
        Err(e) => {
            tracing::info!(error = %e, %origin, "app hand-off refused");
            return plain(
                StatusCode::FORBIDDEN,
                &format!("{e}. Open the app again to sign in."),
            );
        }
    };
    let started = async {
        session.cycle_id().await?;
        session.insert(APP_SIGNED_IN_KEY, &redeemed.session).await
    };
    if let Err(e) = started.await {
        return ApiError::internal("starting the app session failed", &e.to_string())
            .into_response();
    }
    let mut response = Redirect::to(&redeemed.path).into_response();
    let gone = Cookie::build((state_name, ""))
        .path("/")
        .max_age(time::Duration::ZERO)
        .build();
    if let Ok(value) = HeaderValue::from_str(&gone.to_string()) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    // The code is in this URL: keep it out of any Referer.
    response.headers_mut().insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

fn plain(status: StatusCode, message: &str) -> Response {
    (
        status,
        [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))],
        message.to_owned(),
    )
        .into_response()
}
