//! Browser sessions: the database-backed `tower_sessions` store, what a signed-in session
//! holds, local sign-in, and the in-memory throttle in front of it.
//!
//! No axum types here; `http::session` wires these into the router.

use rand::Rng;
use serde::{Deserialize, Serialize};
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store;

use super::{Error, password};
use crate::ids::UserId;
use crate::store::{Change, Store};
use crate::tenancy::{Email, LoginName};

/// The session key under which [`SignedIn`] is kept.
pub const SIGNED_IN_KEY: &str = "signed_in";
/// The session key of the CSRF synchronizer token.
pub const CSRF_KEY: &str = "csrf";

/// What a signed-in session remembers.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct SignedIn {
    /// Who.
    pub user: i64,
    /// The user's session epoch at sign-in; a higher epoch in the database ends the session.
    pub epoch: i64,
    /// When they signed in (Unix ms), for the absolute timeout.
    pub at: i64,
}

/// A fresh CSRF token: 32 random bytes, hex.
pub fn new_csrf_token() -> String {
    let bytes: [u8; 32] = rand::rng().random();
    hex::encode(bytes)
}

/// Constant-time comparison of a presented CSRF token with the session's.
pub fn csrf_matches(presented: &str, expected: &str) -> bool {
    use subtle::ConstantTimeEq;
    !expected.is_empty() && bool::from(presented.as_bytes().ct_eq(expected.as_bytes()))
}

/// Sessions in the database, so any replica serves any session.
#[derive(Clone)]
pub struct DbSessionStore {
    store: Store,
    clock: crate::clock::SharedClock,
}

impl std::fmt::Debug for DbSessionStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DbSessionStore")
    }
}

impl DbSessionStore {
    /// A store over `store`'s `sessions` table.
    pub fn new(store: Store, clock: crate::clock::SharedClock) -> Self {
        Self { store, clock }
    }
}

fn backend(e: impl std::fmt::Display) -> session_store::Error {
    session_store::Error::Backend(e.to_string())
}

#[async_trait::async_trait]
impl session_store::SessionStore for DbSessionStore {
    async fn save(&self, record: &Record) -> session_store::Result<()> {
        let data = serde_json::to_string(record)
            .map_err(|e| session_store::Error::Encode(e.to_string()))?;
        let expiry = i64::try_from(record.expiry_date.unix_timestamp_nanos() / 1_000_000)
            .unwrap_or(i64::MAX);
        self.store
            .session_save(&record.id.to_string(), &data, expiry)
            .await
            .map_err(backend)
    }

    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        let data = self
            .store
            .session_load(&id.to_string(), self.clock.now_millis())
            .await
            .map_err(backend)?;
        data.map(|d| {
            serde_json::from_str(&d).map_err(|e| session_store::Error::Decode(e.to_string()))
        })
        .transpose()
    }

    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        self.store
            .session_delete(&id.to_string(), self.clock.now_millis())
            .await
            .map_err(backend)
    }
}

/// Failures before an account or address is slowed down.
const ACCOUNT_FREE_FAILURES: u32 = 5;
const ADDRESS_FREE_FAILURES: u32 = 20;
/// Longest wait imposed, in milliseconds (15 minutes).
const MAX_BACKOFF_MS: i64 = 15 * 60 * 1000;

/// Per-account and per-address sign-in throttling with exponential back-off, counted in
/// the database so that every replica sees the same failures (spreading attempts over
/// replicas gains nothing). After the free failures each further failure doubles the wait,
/// from one second up to [`MAX_BACKOFF_MS`]; a success clears the account's count. Rows
/// idle for [`THROTTLE_MEMORY_MS`] are swept, so old failures are forgotten.
///
/// The database failing is logged and lets the attempt through: the sign-in itself needs
/// the database and fails right after anyway.
#[derive(Clone)]
pub struct Throttle {
    store: Store,
}

/// How long failures are remembered after the last one (a day).
pub const THROTTLE_MEMORY_MS: i64 = 24 * 60 * 60 * 1000;

impl Throttle {
    /// A throttle counting in `store`.
    pub fn new(store: Store) -> Self {
        Self { store }
    }

    /// Milliseconds the caller must still wait before trying `keys`, if any.
    pub async fn wait_ms(&self, keys: &[String], now: i64) -> Option<i64> {
        match self.store.sign_in_blocked_until(keys).await {
            Ok(until) => Some(until - now).filter(|&wait| wait > 0),
            Err(e) => {
                tracing::warn!(error = %e, "reading the sign-in throttle failed");
                None
            }
        }
    }

    /// Count a failure for the account key (when the attempt named a well-formed account)
    /// and the address key.
    pub async fn fail(&self, account: Option<&str>, address: &str, now: i64) {
        let account = account.map(|key| (key, ACCOUNT_FREE_FAILURES));
        for (key, free) in account
            .into_iter()
            .chain([(address, ADDRESS_FREE_FAILURES)])
        {
            let counted = match self.store.count_sign_in_failure(key, now).await {
                Ok(failures) => failures,
                Err(e) => {
                    tracing::warn!(error = %e, "counting a sign-in failure failed");
                    continue;
                }
            };
            if let Some(until) = blocked_until(counted, free, now)
                && let Err(e) = self.store.block_sign_ins(key, until).await
            {
                tracing::warn!(error = %e, "recording a sign-in wait failed");
            }
        }
    }

    /// Forget the account's failures after a success.
    pub async fn succeed(&self, account: &str) {
        if let Err(e) = self.store.clear_sign_in_failures(account).await {
            tracing::warn!(error = %e, "clearing sign-in failures failed");
        }
    }
}

/// Until when attempts are refused after `failures` failures of a key allowed `free` of
/// them: none below `free`, then 1 s, 2 s, 4 s, … up to [`MAX_BACKOFF_MS`].
fn blocked_until(failures: i64, free: u32, now: i64) -> Option<i64> {
    let over = failures - i64::from(free);
    (over >= 0).then(|| now + (1000_i64 << over.min(20)).min(MAX_BACKOFF_MS))
}

/// The throttle key of an account: its normalized address, the spelling the account
/// lookup uses, so `" A@b"` and `"a@b"` share one budget.
pub fn account_throttle_key(email: &Email) -> String {
    format!("account:{email}")
}

/// The throttle key of a directory user name at one provider (lowercased: one budget
/// whatever the case).
pub fn directory_throttle_key(tenant: &str, provider: &str, name: &LoginName) -> String {
    format!("ldap:{tenant}/{provider}:{}", name.throttle_spelling())
}

/// The throttle key of a client address.
pub fn address_throttle_key(address: &str) -> String {
    format!("address:{address}")
}

/// A successful local sign-in.
#[derive(Debug)]
pub struct LocalSignIn {
    /// Who.
    pub user: UserId,
    /// Their session epoch now.
    pub epoch: i64,
    /// They must change their password before anything else.
    pub must_change: bool,
}

/// Check a local password (on a blocking thread). Unknown users and users without a
/// password cost a hash too, so timing does not reveal which emails exist.
pub async fn sign_in_local(store: &Store, email: &Email, pass: &str) -> Result<LocalSignIn, Error> {
    let user = store.user_by_email(email).await?;
    let hash = match &user {
        Some(u) => store.password_hash(u.id).await?,
        None => None,
    };
    // Without a hash, spend the same time on a dummy one.
    let known = hash.is_some();
    let stored = hash.unwrap_or_else(|| DUMMY_HASH.to_owned());
    let ok = password::verify_off_runtime(pass.to_owned(), stored).await && known;
    let user = user.filter(|_| ok).ok_or(Error::InvalidCredentials)?;
    let epoch = store
        .session_epoch(user.id)
        .await?
        .ok_or(Error::InvalidCredentials)?;
    Ok(LocalSignIn {
        user: user.id,
        epoch,
        must_change: user.password_must_change,
    })
}

/// An argon2id hash of a random password, with our parameters.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$1N7lp1yJ2m5Qd8sWnG0Qn3oV6m0Hq3Xn3b9l9wq6t1A";

/// The audit actor/target and remote address for a sign-in attempt.
pub fn change<'a>(actor: &'a str, remote: Option<&'a str>, at: i64) -> Change<'a> {
    Change {
        actor,
        remote_addr: remote,
        at,
    }
}

/// Sessions in Redis (when `TESSERA_REDIS_URL` is set): one key per session with the
/// session's expiry as the key's TTL, so every replica sharing the Redis serves it.
#[derive(Clone)]
pub struct RedisSessionStore {
    connection: redis::aio::ConnectionManager,
    clock: crate::clock::SharedClock,
}

impl std::fmt::Debug for RedisSessionStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RedisSessionStore")
    }
}

impl RedisSessionStore {
    /// Connect to the Redis at `url`.
    pub async fn connect(url: &str, clock: crate::clock::SharedClock) -> redis::RedisResult<Self> {
        let client = redis::Client::open(url)?;
        let connection = redis::aio::ConnectionManager::new(client).await?;
        Ok(Self { connection, clock })
    }
}

/// Only the id's sha256 names the key, as in the database.
fn redis_key(id: &Id) -> String {
    format!(
        "tessera:session:{}",
        crate::store::session_key(&id.to_string())
    )
}

#[async_trait::async_trait]
impl session_store::SessionStore for RedisSessionStore {
    async fn save(&self, record: &Record) -> session_store::Result<()> {
        let data = serde_json::to_string(record)
            .map_err(|e| session_store::Error::Encode(e.to_string()))?;
        let expiry = i64::try_from(record.expiry_date.unix_timestamp_nanos() / 1_000_000)
            .unwrap_or(i64::MAX);
        let ttl = u64::try_from(expiry - self.clock.now_millis())
            .unwrap_or(0)
            .max(1);
        let mut connection = self.connection.clone();
        redis::cmd("SET")
            .arg(redis_key(&record.id))
            .arg(data)
            .arg("PX")
            .arg(ttl)
            .query_async::<()>(&mut connection)
            .await
            .map_err(backend)
    }

    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        let mut connection = self.connection.clone();
        let data: Option<String> = redis::cmd("GET")
            .arg(redis_key(id))
            .query_async(&mut connection)
            .await
            .map_err(backend)?;
        data.map(|d| {
            serde_json::from_str(&d).map_err(|e| session_store::Error::Decode(e.to_string()))
        })
        .transpose()
    }

    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        let mut connection = self.connection.clone();
        redis::cmd("DEL")
            .arg(redis_key(id))
            .query_async::<()>(&mut connection)
            .await
            .map_err(backend)
    }
}

/// Where sessions live: Redis when configured, else the database.
#[derive(Clone, Debug)]
pub enum SessionBackend {
    /// The `sessions` table.
    Database(DbSessionStore),
    /// Redis.
    Redis(RedisSessionStore),
}

#[async_trait::async_trait]
impl session_store::SessionStore for SessionBackend {
    async fn save(&self, record: &Record) -> session_store::Result<()> {
        match self {
            Self::Database(s) => s.save(record).await,
            Self::Redis(s) => s.save(record).await,
        }
    }

    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        match self {
            Self::Database(s) => s.load(id).await,
            Self::Redis(s) => s.load(id).await,
        }
    }

    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        match self {
            Self::Database(s) => s.delete(id).await,
            Self::Redis(s) => s.delete(id).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{MAX_BACKOFF_MS, blocked_until};

    #[test]
    fn the_wait_doubles_after_the_free_failures_up_to_the_cap() {
        assert_eq!(blocked_until(4, 5, 0), None);
        assert_eq!(blocked_until(5, 5, 0), Some(1_000));
        assert_eq!(blocked_until(6, 5, 10), Some(2_010));
        assert_eq!(blocked_until(9, 5, 0), Some(16_000));
        assert_eq!(blocked_until(1_000, 5, 0), Some(MAX_BACKOFF_MS));
    }
}
