//! Sessions on the apps origin, and the one-time hand-off that starts them.
//!
//! The apps origin never sees the platform's cookie, so a person who may open a non-public
//! app gets a separate app session there: the apps origin sends the browser to the
//! platform's hand-off endpoint with a random `state` (also left in a cookie on the apps
//! origin); the platform, once the person is signed in, mints a one-time code bound to the
//! user, the apps origin, the target path and that state, stored only as a hash in the
//! database or Redis (so any replica redeems it), alive for [`CODE_TTL_MS`]; the apps
//! origin redeems it once, checks the origin and the state cookie, and starts an app
//! session holding [`AppSignedIn`].
//!
//! An app session is valid only while the user's `session_epoch` holds, within the
//! platform's absolute timeout from the original sign-in, and while its **link** lives: a
//! key the platform session keeps and deletes when it signs out, so signing out of the
//! platform ends the app sessions it made. It only ever authenticates app routes: its
//! session record carries [`APP_SIGNED_IN_KEY`], which the platform's session check never
//! reads. No axum types here.

use rand::Rng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::ids::{Slug, UserId};
use crate::origin::Origins;
use crate::policy::UserPrincipal;
use crate::store::Store;

/// A hand-off code must be redeemed within a minute of being minted.
pub const CODE_TTL_MS: i64 = 60_000;
/// The app session's key for [`AppSignedIn`].
pub const APP_SIGNED_IN_KEY: &str = "app_signed_in";
/// The platform session's key for its link secret.
pub const LINK_KEY: &str = "app_link";
/// The apps origin's path that redeems a code.
pub const REDEEM_PATH: &str = "/_tessera/handoff";
/// The platform's path that mints one.
pub const ISSUE_PATH: &str = "/auth/apps/handoff";
/// Longest `state` accepted (ours are 64 hex characters).
const MAX_STATE_LEN: usize = 128;

/// What a valid app session remembers.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct AppSignedIn {
    /// Who.
    pub user: i64,
    /// The user's session epoch when the platform session signed in.
    pub epoch: i64,
    /// When the platform session signed in (Unix ms): the absolute timeout counts from it.
    pub at: i64,
    /// The apps origin the session was handed to.
    pub origin: String,
    /// The link secret of the platform session that handed it over.
    pub link: String,
}

/// What the code stands for, stored under its hash.
#[derive(Debug, Serialize, Deserialize)]
struct Grant {
    user: i64,
    epoch: i64,
    at: i64,
    origin: String,
    path: String,
    state_hash: String,
    link: String,
    /// Checked here too, so the rule holds whatever the store's own expiry does.
    expires_at: i64,
}

/// The platform session's sign-in, as the hand-off needs it.
#[derive(Clone, Copy, Debug)]
pub struct PlatformSignIn {
    /// Who.
    pub user: UserId,
    /// Their epoch at sign-in.
    pub epoch: i64,
    /// When (Unix ms).
    pub at: i64,
}

/// Why a hand-off was refused.
#[derive(Debug, thiserror::Error)]
pub enum HandoffError {
    /// Unknown, already used or expired: sign in again from the app.
    #[error("this sign-in link is unknown, was already used or has expired")]
    Invalid,
    /// Minted for another apps origin.
    #[error("this sign-in link was made for another site")]
    WrongOrigin,
    /// The browser redeeming it is not the one that asked for it (no or another state).
    #[error("this sign-in link was started in another browser")]
    WrongBrowser,
    /// `next` is not an app's path.
    #[error("not an app path: {0:?}")]
    NotAnAppPath(String),
    /// `state` is missing or malformed.
    #[error("the request has no valid state")]
    BadState,
    /// The store failed.
    #[error("hand-off storage failed: {0}")]
    Storage(String),
}

/// Where hand-off codes and links live: Redis when configured (like sessions), else the
/// database.
#[derive(Clone)]
pub enum Handoffs {
    /// The `app_handoffs` table.
    Database(Store),
    /// Redis keys with the expiry as their TTL.
    Redis(redis::aio::ConnectionManager),
}

impl std::fmt::Debug for Handoffs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Database(_) => "Handoffs::Database",
            Self::Redis(_) => "Handoffs::Redis",
        })
    }
}

fn storage(e: impl std::fmt::Display) -> HandoffError {
    HandoffError::Storage(e.to_string())
}

fn redis_key(key: &str) -> String {
    format!("tessera:handoff:{key}")
}

impl Handoffs {
    /// Connect to the Redis at `url`.
    pub async fn connect_redis(url: &str) -> redis::RedisResult<Self> {
        let client = redis::Client::open(url)?;
        Ok(Self::Redis(
            redis::aio::ConnectionManager::new(client).await?,
        ))
    }

    pub(crate) async fn put(
        &self,
        key: &str,
        data: &str,
        expires_at: i64,
        now: i64,
    ) -> Result<(), HandoffError> {
        match self {
            Self::Database(store) => store
                .handoff_put(key, data, expires_at, now)
                .await
                .map_err(storage),
            Self::Redis(connection) => {
                let ttl = u64::try_from(expires_at - now).unwrap_or(0).max(1);
                redis::cmd("SET")
                    .arg(redis_key(key))
                    .arg(data)
                    .arg("PX")
                    .arg(ttl)
                    .query_async::<()>(&mut connection.clone())
                    .await
                    .map_err(storage)
            }
        }
    }

    /// Remove and return (GETDEL: atomic, so a code is redeemed once across replicas).
    pub(crate) async fn take(&self, key: &str, now: i64) -> Result<Option<String>, HandoffError> {
        match self {
            Self::Database(store) => store.handoff_take(key, now).await.map_err(storage),
            Self::Redis(connection) => redis::cmd("GETDEL")
                .arg(redis_key(key))
                .query_async(&mut connection.clone())
                .await
                .map_err(storage),
        }
    }

    async fn alive(&self, key: &str, now: i64) -> Result<bool, HandoffError> {
        match self {
            Self::Database(store) => store.handoff_alive(key, now).await.map_err(storage),
            Self::Redis(connection) => redis::cmd("EXISTS")
                .arg(redis_key(key))
                .query_async::<i64>(&mut connection.clone())
                .await
                .map(|n| n > 0)
                .map_err(storage),
        }
    }

    async fn delete(&self, key: &str) -> Result<(), HandoffError> {
        match self {
            Self::Database(store) => store.handoff_delete(key).await.map_err(storage),
            Self::Redis(connection) => redis::cmd("DEL")
                .arg(redis_key(key))
                .query_async::<()>(&mut connection.clone())
                .await
                .map_err(storage),
        }
    }
}

/// 32 random bytes, hex: codes, links and states.
pub fn new_secret() -> String {
    let bytes: [u8; 32] = rand::rng().random();
    hex::encode(bytes)
}

/// `{kind}:{sha256 of the secret}`: how a secret is stored as a key.
pub(crate) fn hashed(kind: &str, secret: &str) -> String {
    format!("{kind}:{}", hex::encode(Sha256::digest(secret.as_bytes())))
}

fn valid_state(state: &str) -> bool {
    !state.is_empty()
        && state.len() <= MAX_STATE_LEN
        && state.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// Where the apps origin sends a visitor without an app session: the platform's hand-off
/// endpoint with the target and the state the browser keeps in a cookie.
pub fn start_url(origins: &Origins, path_and_query: &str, state: &str) -> String {
    format!(
        "{}{ISSUE_PATH}?next={}&state={state}",
        origins.platform_url(),
        encode_query(path_and_query)
    )
}

/// The link of a platform session: `existing` if it still lives, else a new one that lives
/// until `expires_at` (the session's absolute end). Returns the secret to keep in the
/// platform session.
pub async fn ensure_link(
    handoffs: &Handoffs,
    existing: Option<&str>,
    user: UserId,
    expires_at: i64,
    now: i64,
) -> Result<String, HandoffError> {
    if let Some(link) = existing
        && handoffs.alive(&hashed("link", link), now).await?
    {
        return Ok(link.to_owned());
    }
    let link = new_secret();
    handoffs
        .put(&hashed("link", &link), &user.0.to_string(), expires_at, now)
        .await?;
    Ok(link)
}

/// End the app sessions a platform session handed over (at its sign-out).
pub async fn end_link(handoffs: &Handoffs, link: &str) -> Result<(), HandoffError> {
    handoffs.delete(&hashed("link", link)).await
}

/// Mint a code for `signed_in` to open `next` (an app's path) on its tenant's apps origin,
/// for the browser holding `state`. Returns the URL to send the browser to.
pub async fn issue(
    handoffs: &Handoffs,
    origins: &Origins,
    signed_in: PlatformSignIn,
    link: &str,
    next: &str,
    state: &str,
    now: i64,
) -> Result<String, HandoffError> {
    let tenant = app_target(next)?;
    if !valid_state(state) {
        return Err(HandoffError::BadState);
    }
    let origin = origins.apps_url(&tenant);
    let grant = Grant {
        user: signed_in.user.0,
        epoch: signed_in.epoch,
        at: signed_in.at,
        origin: origin.clone(),
        path: next.to_owned(),
        state_hash: hashed("state", state),
        link: link.to_owned(),
        expires_at: now + CODE_TTL_MS,
    };
    let code = new_secret();
    let data = serde_json::to_string(&grant).map_err(storage)?;
    handoffs
        .put(&hashed("code", &code), &data, now + CODE_TTL_MS, now)
        .await?;
    Ok(format!("{origin}{REDEEM_PATH}?code={code}"))
}

/// The tenant of `next` if it is a plain local path to an app.
fn app_target(next: &str) -> Result<Slug, HandoffError> {
    let plain = !next.contains("//")
        && !next.contains('\\')
        && !next.chars().any(|c| c.is_control() || c.is_whitespace());
    plain
        .then(|| Origins::app_path_tenant(next))
        .flatten()
        .ok_or_else(|| HandoffError::NotAnAppPath(next.chars().take(200).collect()))
}

/// A redeemed code: the app session to start and where to go.
#[derive(Debug)]
pub struct Redeemed {
    /// What the new app session holds.
    pub session: AppSignedIn,
    /// The app path to send the browser to.
    pub path: String,
}

/// Redeem `code` once on the apps origin `origin` by the browser whose state cookie is
/// `state`. The code is gone afterwards whatever the outcome.
pub async fn redeem(
    handoffs: &Handoffs,
    code: &str,
    origin: &str,
    state: Option<&str>,
    now: i64,
) -> Result<Redeemed, HandoffError> {
    if code.is_empty() || code.len() > MAX_STATE_LEN {
        return Err(HandoffError::Invalid);
    }
    let data = handoffs
        .take(&hashed("code", code), now)
        .await?
        .ok_or(HandoffError::Invalid)?;
    let grant: Grant = serde_json::from_str(&data).map_err(storage)?;
    if now >= grant.expires_at {
        return Err(HandoffError::Invalid);
    }
    if grant.origin != origin {
        return Err(HandoffError::WrongOrigin);
    }
    let state_ok = state.is_some_and(|s| {
        use subtle::ConstantTimeEq;
        bool::from(
            hashed("state", s)
                .as_bytes()
                .ct_eq(grant.state_hash.as_bytes()),
        )
    });
    if !state_ok {
        return Err(HandoffError::WrongBrowser);
    }
    Ok(Redeemed {
        session: AppSignedIn {
            user: grant.user,
            epoch: grant.epoch,
            at: grant.at,
            origin: grant.origin,
            link: grant.link,
        },
        path: grant.path,
    })
}

/// The principal of an app session on `origin`, if it is still valid: same origin, the
/// user's epoch unchanged, within `absolute_ms` of the sign-in, its link alive.
pub async fn app_principal(
    accounts: &crate::lookup::AccountCache,
    handoffs: &Handoffs,
    session: &AppSignedIn,
    origin: &str,
    absolute_ms: i64,
    now: i64,
) -> Result<Option<UserPrincipal>, HandoffError> {
    if session.origin != origin || now - session.at >= absolute_ms {
        return Ok(None);
    }
    let user = UserId(session.user);
    let Some(account) = accounts.account(user).await.map_err(storage)? else {
        return Ok(None);
    };
    if account.epoch != session.epoch {
        return Ok(None);
    }
    if !handoffs.alive(&hashed("link", &session.link), now).await? {
        return Ok(None);
    }
    Ok(Some(UserPrincipal {
        id: user,
        superadmin: account.superadmin,
        memberships: account.memberships,
    }))
}

/// Percent-encode a query value (everything but unreserved characters and `/`).
pub fn encode_query(value: &str) -> String {
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

/// The cookie names: `__Host-` (Secure, path `/`, no Domain: a sibling host cannot plant
/// one) whenever the origin is HTTPS.
pub fn cookie_name(base: &'static str, https: bool) -> String {
    if https {
        format!("__Host-{base}")
    } else {
        base.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_app_paths_are_targets() {
        assert!(app_target("/apps/acme/sales/").is_ok());
        assert!(app_target("/apps/acme/sales/page?x=1").is_ok());
        for bad in [
            "/login",
            "//evil/apps/a/b/",
            "/apps/a/b/\\x",
            "/apps/../",
            "/apps/a/",
        ] {
            assert!(app_target(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn states_are_plain_and_bounded() {
        assert!(valid_state(&new_secret()));
        assert!(!valid_state(""));
        assert!(!valid_state("a&b"));
        assert!(!valid_state(&"a".repeat(200)));
    }
}
