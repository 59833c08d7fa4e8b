//! Whether the principal that opened a long-lived connection (a WebSocket callback's
//! socket) may still use it.
//!
//! An HTTP request is authenticated and authorized once, and so was the socket's upgrade;
//! but the socket then serves callbacks for hours. Its [`Credential`] is checked again
//! every `[limits] websocket_session_check_secs`: an app session that was signed out
//! (its record or its platform link gone), expired (idle or absolute), or whose user's
//! `session_epoch` moved (sign-out everywhere, password change, disabling); a token
//! revoked or expired; and in every case the app's access for that principal (a grant
//! withdrawn, the app made private). No axum types here.

use tower_sessions::session::Id;
use tower_sessions::session_store::SessionStore;

use super::handoff::{self, APP_SIGNED_IN_KEY, AppSignedIn};
use crate::ids::Slug;
use crate::policy::{self, Action, Principal, Resource};
use crate::state::AppState;

/// What authenticated a connection, kept to check it again.
#[derive(Clone)]
pub enum Credential {
    /// Nobody signed in: only the app's access can end (a public app made private).
    Anonymous,
    /// An `Authorization: Bearer` token, authenticated again at each check.
    Token(String),
    /// An app session on the apps origin `origin`, by its id in the session store.
    AppSession {
        /// The session record's id.
        id: Id,
        /// The apps origin the connection came to.
        origin: String,
    },
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print a token or a session id.
        f.write_str(match self {
            Self::Anonymous => "Credential::Anonymous",
            Self::Token(_) => "Credential::Token",
            Self::AppSession { .. } => "Credential::AppSession",
        })
    }
}

/// The outcome of a check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Standing {
    /// The principal may go on viewing the app.
    Stands,
    /// It may not: why, for the close frame (nothing secret).
    Ended(&'static str),
}

/// Checks `credential` again for the app `tenant`/`app`. `active`: the connection ran
/// callbacks since the last check, which counts as using the session (as HTTP callbacks
/// do), so an app session close to its idle expiry is extended.
///
/// # Errors
///
/// The session store or the database failed; the caller keeps the connection and tries
/// again at the next check (an outage must not close every socket at once).
pub async fn check(
    state: &AppState,
    credential: &Credential,
    tenant: &Slug,
    app: &Slug,
    active: bool,
) -> Result<Standing, String> {
    let now = state.clock.now_millis();
    let principal = match credential {
        Credential::Anonymous => Principal::Anonymous,
        Credential::Token(token) => {
            match super::token::authenticate(&state.store, token, now).await {
                Ok(token) => Principal::Token(token),
                Err(super::Error::InvalidCredentials) => {
                    return Ok(Standing::Ended("the token was revoked or expired"));
                }
                Err(other) => return Err(other.to_string()),
            }
        }
        Credential::AppSession { id, origin } => {
            let Some(mut record) = state.sessions.load(id).await.map_err(|e| e.to_string())? else {
                return Ok(Standing::Ended("the session ended"));
            };
            let signed_in = record
                .data
                .get(APP_SIGNED_IN_KEY)
                .and_then(|value| serde_json::from_value::<AppSignedIn>(value.clone()).ok());
            let Some(signed_in) = signed_in else {
                return Ok(Standing::Ended("the session ended"));
            };
            let absolute = i64::try_from(state.config.sessions.absolute_hours)
                .unwrap_or(i64::MAX / 3_600_000)
                .saturating_mul(3_600_000);
            let user = handoff::app_principal(
                &state.accounts,
                &state.handoffs,
                &signed_in,
                origin,
                absolute,
                now,
            )
            .await
            .map_err(|e| e.to_string())?;
            let Some(user) = user else {
                return Ok(Standing::Ended("the session ended"));
            };
            if active {
                extend_idle(state, &mut record).await?;
            }
            Principal::User(user)
        }
    };
    let access = state
        .access
        .app_access(tenant, app, principal.user_id())
        .await
        .map_err(|e| e.to_string())?;
    let Some(access) = access else {
        return Ok(Standing::Ended(
            "the app is no longer available to this viewer",
        ));
    };
    if policy::authorize(&principal, Action::ViewApp, &Resource::App(access)).is_err() {
        return Ok(Standing::Ended(
            "the app is no longer available to this viewer",
        ));
    }
    Ok(Standing::Stands)
}

/// Pushes an app session's idle expiry forward once less than half of the idle period
/// is left, so a socket in use does not lose its session while the page makes no HTTP
/// request (and checks every few seconds write only twice per idle period).
async fn extend_idle(
    state: &AppState,
    record: &mut tower_sessions::session::Record,
) -> Result<(), String> {
    let idle_minutes = i64::try_from(state.config.sessions.idle_minutes).unwrap_or(i64::MAX / 60);
    let idle = time::Duration::minutes(idle_minutes);
    let now = time::OffsetDateTime::now_utc();
    if record.expiry_date - now >= idle / 2_i32 {
        return Ok(());
    }
    record.expiry_date = now + idle;
    state.sessions.save(record).await.map_err(|e| e.to_string())
}
